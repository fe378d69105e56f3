/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * guestabi-net: a vhost-user-net back-end on lib/vhost. Each --socket is a port; a port
 * forwards what its guest transmits to a tap device, to a peer port, or back to itself.
 * One epoll loop drives everything (main.c); port.c is the data path, tap.c the tap device,
 * csum.c checksum completion.
 */

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include <guestabi/abi.h>
#include <guestabi/vhost_vring.h>
#include <guestabi/virtio_net.h>

/* The virtio-net feature bits guestabi-net implements (the library adds the transport).
 * VIRTIO_F_IN_ORDER is the device's word: every port hands chains back in the order it took
 * them (TX and RX, dropped frames included; RX chains a frame does not use are given back
 * unused), so a driver may free its buffers in ring order without reading used ids. */
#define NET_DEVICE_FEATURES                                                                        \
    ((1ull << GABI_NET_F_CSUM) | (1ull << GABI_NET_F_GUEST_CSUM) | (1ull << GABI_NET_F_MTU) |      \
     (1ull << GABI_NET_F_MRG_RXBUF) | (1ull << GABI_F_IN_ORDER))

/* virtio-net's vrings come in pairs: receiveq N is vring 2N, transmitq N is vring 2N + 1. */
static inline bool net_vring_is_rx(unsigned index)
{
    return index % 2 == 0;
}

#define NET_MAX_FRAME   65535u /* Ethernet frame, header excluded */
#define NET_HDR_MAX     12u
#define NET_BURST       64u /* chains per vring per pass */
#define NET_MAX_RX_BUFS 64u /* mergeable buffers for one packet (and chains per RX burst) */
static_assert(NET_BURST <= NET_MAX_RX_BUFS, "a burst of RX chains is popped into rx_elems");

enum net_fwd {
    FWD_PEER,     /* to the paired port */
    FWD_TAP,      /* to/from a tap device */
    FWD_LOOPBACK, /* back to the sender */
    FWD_SINK,     /* dropped (benchmarks: what testpmd's rxonly does) */
    FWD_GENERATE, /* dropped; the guest's RX buffers are filled with one frame, as fast as it
                   * posts them (benchmarks: what testpmd's txonly does) */
};

#define NET_GEN_MIN 60u /* --generate SIZE: Ethernet frame bytes, header excluded */

struct net;
struct net_port;

/* What an epoll event is about (epoll_data.ptr points at one). */
enum source_kind {
    SRC_SOCKET,
    SRC_KICK,
    SRC_TAP,
    SRC_SIGNAL,
    SRC_STATE,   /* a port's device-state channel */
    SRC_CONTROL, /* the control socket (devices/common/devctl.h) */
};

struct source {
    enum source_kind kind;
    struct net_port *port;
    unsigned index; /* vring */
};

/* Counters of one queue pair of a port (part of the port's migrated state). */
struct net_qstats {
    uint64_t tx_packets; /* chains taken from the guest (dropped ones included) */
    uint64_t tx_bytes;   /* their frame bytes (the virtio-net header not counted) */
    uint64_t tx_dropped; /* taken but not forwarded: malformed, link down, tap refused */
    uint64_t rx_packets; /* frames given to the guest */
    uint64_t rx_bytes;
    uint64_t rx_dropped; /* frames for the guest that it had no room (or no link) for */
};

struct net_tap {
    char name[16];
    int fd;
    bool watched; /* in epoll with EPOLLIN */
    struct source src;
};

struct net_port {
    struct net *net;
    unsigned id;
    char *path;
    enum net_fwd fwd;
    struct net_port *peer;
    struct net_tap tap;
    uint8_t *gen_frame;   /* FWD_GENERATE: NET_HDR_MAX bytes for the header, then the frame */
    size_t gen_len;       /* the frame's */
    unsigned gen_hdr_len; /* the header written before the frame (0: none yet) */
    bool gen_pending;     /* FWD_GENERATE without busy-poll: a pass stopped at its budget */
    struct gabi_vhost_backend *b;
    struct source sock_src;
    struct source *vring_src; /* one per vring */
    bool *tx_pending;         /* per vring: a pass stopped at its budget */
    unsigned *tx_active;      /* started TX vrings (busy-poll visits only these) */
    unsigned n_tx_active;

    /* from the negotiated features */
    unsigned hdr_len;
    bool mrg_rxbuf;
    bool guest_csum;
    bool host_csum;
    uint64_t mtu;

    /* the port's state (state.c: what SET_DEVICE_STATE_FD carries) */
    struct net_qstats *q; /* one per queue pair of the mode */
    unsigned n_q;
    bool link_up;      /* administrative link: down drops everything both ways */
    uint8_t *save_buf; /* the snapshot being saved */
    uint8_t *load_buf; /* the state being loaded, until it is committed */
    size_t load_size;
    struct source state_src;

    bool tap_blocked; /* no RX buffers: tap input paused until the guest posts some */
};

#define NET_STATE_TYPE "guestabi-net" /* the catalog's device type */

struct devctl;

struct net {
    int epfd;
    bool busy_poll;
    bool stop;
    const struct gabi_vhost_mode *mode;
    struct gabi_vhost_state_ops state_ops; /* from the catalog's guestabi-net rule */
    const struct gabi_versions *state_loads;
    struct devctl *control;
    struct source control_src;
    unsigned n_ports;
    struct net_port *ports;
    struct gabi_vhost_elem *rx_elems; /* NET_MAX_RX_BUFS scratch elements */
    struct gabi_vhost_elem *tx_elems; /* NET_BURST scratch elements */
    uint8_t *frame;                   /* NET_HDR_MAX + NET_MAX_FRAME scratch */
    bool any_pending;
    /* busy-polling: passes over every port, and those that found nothing to do (how much of
     * its core the data path leaves unused: the stats request reports both) */
    uint64_t passes, idle_passes;
};

/* port.c */
extern const struct gabi_vhost_ops net_port_ops;
/* Process a TX vring (a kick, or a busy-poll pass): the chains taken. */
unsigned net_port_tx(struct net_port *p, unsigned index);
/* Deliver one frame (hdr: the sender's header fields, frame: the Ethernet frame) to the
 * guest of p on its RX vring vr (from net_port_rx_vring(); NULL drops the frame). Returns 0,
 * or -errno when dropped. */
int net_port_rx(struct net_port *p, struct gabi_vhost_vring *vr,
                const struct gabi_virtio_net_hdr *hdr, const struct iovec *frame, unsigned n_frame,
                size_t len);
/* The RX vring of p for queue pair q, or queue pair 0, if ready and enabled; else NULL. */
struct gabi_vhost_vring *net_port_rx_vring(struct net_port *p, unsigned q);
/* Publish what was delivered to p's RX vrings this pass. */
void net_port_flush_rx(struct net_port *p);
/* Feed frames from p's tap to its guest (stops when RX buffers run out). */
void net_port_tap_input(struct net_port *p);

/* Totals over a port's queue pairs. */
void net_port_totals(const struct net_port *p, struct net_qstats *ret);
/* Set the port's administrative link state. */
void net_port_set_link(struct net_port *p, bool up);
/* Fill the guest's RX buffers with p->gen_frame (a burst per RX vring per call; nothing
 * while the link is down); without busy-poll, ask for an RX kick when they run out. The
 * frames written. */
unsigned net_port_generate(struct net_port *p);

/* generate.c */
/* A frame of len bytes (>= NET_GEN_MIN) as testpmd's txonly makes them: Ethernet from
 * 02:00:00:00:00:<port> to 02:00:00:00:00:00, IPv4 198.18.0.1 -> 198.18.0.2 (header
 * checksummed), UDP port 9 -> 9 without checksum, a zero payload. */
void net_frame_template(uint8_t *frame, size_t len, unsigned port);

/* state.c */
/* The state version this guestabi-net writes and decodes. */
#define NET_STATE_VERSION "1"
/* Fill n->state_ops from the catalog's rule for guestabi-net: 0, or -errno with why (no
 * rule, or a `writes` version this build cannot encode). */
int net_state_setup(struct net *n, const struct gabi_device_type *rule, char *why, size_t size);
/* The payload layout of version 1, for docs and tests: 16 bytes + 48 per queue pair. */
#define NET_STATE_V1_HEADER 16u
#define NET_STATE_V1_QUEUE  48u

/* control.c */
/* A control socket at path (stats, link up/down): 0 or -errno with why. */
int net_control_open(struct net *n, const char *path, char *why, size_t size);
void net_control_close(struct net *n);
void net_control_event(struct net *n, struct source *src);

/* tap.c */
int net_tap_open(struct net_tap *tap, const char *name, char *why, size_t why_size);
void net_tap_close(struct net_tap *tap);
/* Header size and offloads for the guest's features; -errno on failure. */
int net_tap_configure(struct net_tap *tap, unsigned hdr_len, bool guest_csum);
int net_tap_set_mtu(struct net_tap *tap, unsigned mtu);

/* csum.c */
/* Complete a partial checksum (NEEDS_CSUM) in a linear frame: 0, or -EINVAL when the
 * start/offset fall outside it. */
int net_csum_complete(uint8_t *frame, size_t len, unsigned start, unsigned offset);
/* Internet checksum of a buffer, folded, not inverted, added to sum. */
uint32_t net_csum_add(uint32_t sum, const uint8_t *p, size_t len);
uint16_t net_csum_fold(uint32_t sum);

/* main.c */
int net_watch(struct net *n, int fd, struct source *src, uint32_t events);
void net_unwatch(struct net *n, int fd);
