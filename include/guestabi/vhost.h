/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * vhost-user, as QEMU's docs/interop/vhost-user.rst defines it (docs/vhost.md is the guide).
 *
 *   back-end  a device: one listening socket path (or one connected fd), one front-end at a
 *             time. Device behaviour comes through `struct gabi_vhost_ops` plus userdata.
 *             The library owns no thread and no loop: it asks the caller to watch fds
 *             (ops->watch / ops->unwatch) and the caller calls gabi_vhost_backend_dispatch()
 *             when the socket is readable, and processes a vring when its kick fd is.
 *   mode      the back-end runs exactly one compat mode: it offers that mode's features,
 *             protocol features, queue count and queue size, and refuses anything beyond it.
 *   vring     a split virtqueue seen from the device: pop descriptor chains as iovecs (guest
 *             addresses translated and bounds-checked), push them back used, flush once per
 *             batch. Hostile rings mark that vring broken; they never crash the process.
 *   client    the front-end: connect, negotiate, share memfd guest memory, start and stop
 *             vrings; with guestmem and guestq it plays a guest driver for tests/benchmarks.
 *
 * Functions return >= 0 on success and -errno on failure.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <guestabi/error.h>
#include <guestabi/features.h>
#include <guestabi/log.h>
#include <guestabi/vhost_state.h>

/* ---- limits --------------------------------------------------------------------------- */

#define GABI_VHOST_MAX_QUEUE_PAIRS 128u         /* per device (net: 2 vrings per pair) */
#define GABI_VHOST_MAX_QUEUE_SIZE  32768u       /* descriptors per vring (a power of 2) */
#define GABI_VHOST_MAX_MEM_SLOTS   32u          /* regions: SET_MEM_TABLE takes at most 8 */
#define GABI_VHOST_MAX_FDS         8u           /* file descriptors on one message */
#define GABI_VHOST_MAX_CONFIG_SIZE 256u         /* GET/SET_CONFIG */
#define GABI_VHOST_ELEM_MAX_SEGS   64u          /* segments of one descriptor chain */
#define GABI_VHOST_MAX_LOG_SIZE    (1ull << 30) /* dirty log: covers 32 TiB of guest memory */
#define GABI_VHOST_LOG_PAGE        4096u

/* Virtio transport bits lib/vhost implements itself (the device adds its class's bits). */
#define GABI_VHOST_TRANSPORT_FEATURES                                                              \
    ((1ull << GABI_F_LOG_ALL) | (1ull << GABI_F_INDIRECT_DESC) | (1ull << GABI_F_EVENT_IDX) |      \
     (1ull << GABI_F_PROTOCOL_FEATURES) | (1ull << GABI_F_VERSION_1))

/* Protocol features lib/vhost implements. CONFIG needs ops->get_config; DEVICE_STATE
 * (SET_DEVICE_STATE_FD / CHECK_DEVICE_STATE) needs a `struct gabi_vhost_state_ops` in the
 * back-end's configuration. */
#define GABI_VHOST_PROTOCOL_FEATURES                                                               \
    ((1ull << GABI_PF_MQ) | (1ull << GABI_PF_LOG_SHMFD) | (1ull << GABI_PF_RARP) |                 \
     (1ull << GABI_PF_REPLY_ACK) | (1ull << GABI_PF_NET_MTU) | (1ull << GABI_PF_BACKEND_REQ) |     \
     (1ull << GABI_PF_CONFIG) | (1ull << GABI_PF_RESET_DEVICE) |                                   \
     (1ull << GABI_PF_CONFIGURE_MEM_SLOTS) | (1ull << GABI_PF_STATUS) |                            \
     (1ull << GABI_PF_DEVICE_STATE))

/* Virtio device status bits (SET/GET_STATUS). */
#define GABI_VIRTIO_STATUS_ACKNOWLEDGE 0x01u
#define GABI_VIRTIO_STATUS_DRIVER      0x02u
#define GABI_VIRTIO_STATUS_DRIVER_OK   0x04u
#define GABI_VIRTIO_STATUS_FEATURES_OK 0x08u
#define GABI_VIRTIO_STATUS_NEEDS_RESET 0x40u
#define GABI_VIRTIO_STATUS_FAILED      0x80u

/* ---- compat mode ---------------------------------------------------------------------- */

/* What a back-end offers, all of it and nothing more (a catalog mode, without the catalog). */
struct gabi_vhost_mode {
    const char *name;           /* for messages: "upstream.guestabi-net.v2" */
    uint64_t features;          /* GET_FEATURES */
    uint64_t protocol_features; /* GET_PROTOCOL_FEATURES */
    uint32_t max_queue_pairs;   /* GET_QUEUE_NUM (virtio-blk: queues) */
    uint32_t max_queue_size;    /* largest SET_VRING_NUM accepted */
};

/* ---- back-end ------------------------------------------------------------------------- */

struct gabi_vhost_backend;
struct gabi_vhost_vring;

enum gabi_vhost_watch {
    GABI_VHOST_WATCH_SOCKET,      /* readable: call gabi_vhost_backend_dispatch() */
    GABI_VHOST_WATCH_KICK,        /* readable: the guest kicked vring `index`; process it */
    GABI_VHOST_WATCH_STATE_READ,  /* the device-state channel of a load: readable (or hung up):
                                   * call gabi_vhost_backend_process_state() */
    GABI_VHOST_WATCH_STATE_WRITE, /* the device-state channel of a save: writable (or in
                                   * error): call gabi_vhost_backend_process_state() */
};

/*
 * Device behaviour. Every member may be NULL except watch/unwatch (unless the caller polls
 * gabi_vhost_backend_socket_fd() and every vring itself). Callbacks run inside
 * gabi_vhost_backend_dispatch() (or the call that caused them) and must not free the back-end.
 */
struct gabi_vhost_ops {
    /* Watch fd until unwatch(fd): for input, or for output with GABI_VHOST_WATCH_STATE_WRITE
     * (level-triggered). Return <0 to refuse (closes the connection; a device-state channel's
     * SET_DEVICE_STATE_FD is refused instead). unwatch may come after the fd was closed: a
     * finished device-state channel is closed by its writer or reader (epoll drops it then). */
    int (*watch)(struct gabi_vhost_backend *b, int fd, enum gabi_vhost_watch kind, unsigned index,
                 void *userdata);
    void (*unwatch)(struct gabi_vhost_backend *b, int fd, void *userdata);

    /* A front-end connected / the connection ended (every vring was stopped before). */
    void (*connected)(struct gabi_vhost_backend *b, void *userdata);
    void (*disconnected)(struct gabi_vhost_backend *b, const char *reason, void *userdata);

    /* SET_FEATURES accepted (features are within the mode); <0 refuses them. */
    int (*features_changed)(struct gabi_vhost_backend *b, uint64_t features, void *userdata);
    /* A vring started (SET_VRING_KICK with its rings mapped) or stopped (GET_VRING_BASE,
     * reset, disconnect). After stopped, the device must not touch the vring. */
    void (*vring_started)(struct gabi_vhost_backend *b, unsigned index, void *userdata);
    void (*vring_stopped)(struct gabi_vhost_backend *b, unsigned index, void *userdata);
    void (*vring_enabled)(struct gabi_vhost_backend *b, unsigned index, bool enabled,
                          void *userdata);
    /* A vring was found broken (reason also in gabi_vhost_vring_broken()). */
    void (*vring_broken)(struct gabi_vhost_backend *b, unsigned index, const char *reason,
                         void *userdata);

    /* GET_CONFIG / SET_CONFIG (protocol feature CONFIG): <0 refuses the access. flags 1 is a
     * migration restore. */
    int (*get_config)(struct gabi_vhost_backend *b, uint32_t offset, void *buf, uint32_t size,
                      void *userdata);
    int (*set_config)(struct gabi_vhost_backend *b, uint32_t offset, const void *buf, uint32_t size,
                      uint32_t flags, void *userdata);
    /* NET_SET_MTU (<0 refuses), SEND_RARP, SET_STATUS, RESET_DEVICE/RESET_OWNER. */
    int (*set_mtu)(struct gabi_vhost_backend *b, uint64_t mtu, void *userdata);
    void (*send_rarp)(struct gabi_vhost_backend *b, const uint8_t mac[6], void *userdata);
    void (*status_changed)(struct gabi_vhost_backend *b, uint8_t status, void *userdata);
    void (*reset)(struct gabi_vhost_backend *b, void *userdata);

    /* Everything the back-end has to say about its connection: refusals, broken vrings,
     * disconnects (GABI_LOG_ERR/WARNING), and each message (GABI_LOG_DEBUG). Lines are
     * already prefixed with the back-end's name. NULL: use gabi_log() at debug level. */
    void (*log)(struct gabi_vhost_backend *b, enum gabi_log_level level, const char *msg,
                void *userdata);
};

/* ---- device state (protocol feature DEVICE_STATE, docs/vhost.md "Device state") ---------- */

enum gabi_vhost_state_direction {
    GABI_VHOST_STATE_SAVE = 0, /* back-end -> front-end: the source's state goes out */
    GABI_VHOST_STATE_LOAD = 1, /* front-end -> back-end: the destination takes it in */
};

#define GABI_VHOST_STATE_PHASE_STOPPED 0u /* the only phase: the device is suspended */

/*
 * A device's state, for SET_DEVICE_STATE_FD / CHECK_DEVICE_STATE. The back-end accepts a
 * transfer only while the device is suspended (every vring stopped: gabi_vhost_vring_started()
 * is false for all), streams it through the channel in the caller's loop (watch kinds
 * GABI_VHOST_WATCH_STATE_*), frames it as docs/state-stream.md says (header with type and
 * version, payload, checksum trailer), and answers CHECK_DEVICE_STATE with the real outcome
 * once it is known. A vring that starts before a transfer is over cancels it (save_end with
 * -ECANCELED, or load_abort), so a device never runs on half a state and a source whose
 * migration failed resumes exactly as it was.
 *
 * The payload may be any size: it is supplied and received in segments (memory that is
 * vmspliced, file ranges that are spliced, or copied bytes; vhost_state.h), so a GiB disk image
 * never has to be in memory at once and a switch port's few hundred bytes are one segment.
 *
 * Every callback gets the back-end and the back-end's userdata. Exactly one transfer exists
 * at a time per connection.
 */
struct gabi_vhost_state_ops {
    /* What the stream's header says: the device type ("guestabi-net", the catalog's
     * device-type name) and the state version save writes (the catalog rule's `writes`, newest
     * first: its first entry). Both required; copied when the back-end is created. */
    const char *device_type;
    const char *version;
    /* The largest payload load takes (a larger declared size is refused before any payload
     * byte: `too-large`); 0 for no limit beyond what load_begin refuses. */
    uint64_t max_load_size;

    /* ---- save (the source) ---- */
    /* SET_DEVICE_STATE_FD(SAVE) arrived and the device is suspended: fix what will be written
     * (a snapshot of a small state, or a promise to keep memory and files unchanged until
     * save_end) and say how many payload bytes that is. <0 refuses the transfer (reterr says
     * why; it is logged, and the front-end gets an error reply). Required for save. */
    int (*save_begin)(struct gabi_vhost_backend *b, uint64_t *ret_size, struct gabi_error *reterr,
                      void *userdata);
    /* Supply payload bytes from `offset` on, as gabi_vhost_state_source_ops.get: one segment of
     * 1..max bytes (COPY into scratch, MEMORY, or FILE). Required for save. */
    int (*save_get)(struct gabi_vhost_backend *b, uint64_t offset, size_t max, void *scratch,
                    size_t scratch_size, struct gabi_vhost_state_seg *ret,
                    struct gabi_error *reterr, void *userdata);
    /* The save is over: 0 when the whole stream went into the channel, else -errno (the reader
     * went away, the device failed, the transfer was cancelled). Exactly once after a
     * successful save_begin. The device's state was never touched by a save. Optional.
     * MEMORY and FILE segments were vmspliced or spliced: the channel may still refer to those
     * pages until its reader has taken them, so they stay allocated and unchanged beyond
     * save_end, as long as the device is suspended (a resumed source's changes then fail the
     * destination's checksum, never load silently). COPY segments are free at once. */
    void (*save_end)(struct gabi_vhost_backend *b, int result, void *userdata);

    /* ---- load (the destination): the sink of vhost_state.h, called in the same order ---- */
    /* Does the device load this (device type, state version)? The device program answers from
     * the catalog (gabi_versions_accepts() on its device type's `loads`), never from a rule of
     * its own; <0 refuses (`refused`, with reterr's reason). Required for load. */
    int (*load_accept)(struct gabi_vhost_backend *b, const struct gabi_vhost_state_info *info,
                       struct gabi_error *reterr, void *userdata);
    /* Prepare a scratch area for info->payload_size bytes. Optional. */
    int (*load_begin)(struct gabi_vhost_backend *b, const struct gabi_vhost_state_info *info,
                      struct gabi_error *reterr, void *userdata);
    /* Where payload bytes from `offset` go (MEMORY, FILE, or COPY for load_write). Optional. */
    int (*load_dest)(struct gabi_vhost_backend *b, uint64_t offset, size_t max,
                     struct gabi_vhost_state_seg *ret, struct gabi_error *reterr, void *userdata);
    /* Payload bytes [offset, offset + size) in order (COPY segments). Required unless
     * load_dest never answers COPY. */
    int (*load_write)(struct gabi_vhost_backend *b, uint64_t offset, const void *buf, size_t size,
                      struct gabi_error *reterr, void *userdata);
    /* Every byte arrived and was verified (length, checksums): make the state live. <0 fails
     * the load (load_abort follows). Required for load. */
    int (*load_commit)(struct gabi_vhost_backend *b, struct gabi_error *reterr, void *userdata);
    /* Drop what load_begin/load_write prepared: the device stays exactly as it was. Required
     * for load. */
    void (*load_abort)(struct gabi_vhost_backend *b, void *userdata);

    /* ---- the channel ---- */
    /* Optional: use a channel of the device's own instead of the front-end's fd (vhost-user
     * lets a back-end answer SET_DEVICE_STATE_FD with its own fd). Fill *ret_local (the end the
     * back-end writes on save, reads on load; taken by the library) and *ret_remote (the end
     * sent to the front-end in the reply, then closed here) and return 0; return 1 to use the
     * front-end's fd; <0 refuses the transfer. gabi_vhost_state_own_pipe() is a ready one. */
    int (*channel)(struct gabi_vhost_backend *b, enum gabi_vhost_state_direction dir,
                   int *ret_local, int *ret_remote, void *userdata);
};

/* A `channel` callback: a fresh pipe of the back-end's own (grown to 1 MiB where allowed). */
int gabi_vhost_state_own_pipe(struct gabi_vhost_backend *b, enum gabi_vhost_state_direction dir,
                              int *ret_local, int *ret_remote, void *userdata);

struct gabi_vhost_backend_config {
    const char *name;                   /* log prefix, e.g. the socket path (copied) */
    enum gabi_device_class cls;         /* NET: 2 vrings per queue pair; BLK: 1 per queue */
    const struct gabi_vhost_mode *mode; /* copied */
    uint64_t device_features;           /* class feature bits the device implements */
    uint32_t max_mem_slots;             /* GET_MAX_MEM_SLOTS; 0: GABI_VHOST_MAX_MEM_SLOTS */
    /* The device's state transfer; NULL when it has none (a mode offering DEVICE_STATE is then
     * refused). Not copied: it must outlive the back-end (a static table). */
    const struct gabi_vhost_state_ops *state;
};

/*
 * Guest memory and the dirty log are mappings of the front-end's files, and a front-end can
 * shrink an unsealed file (ftruncate) under them: the back-end's next access there would die
 * of SIGBUS. This installs, once per process, a SIGBUS handler that puts a zero page over a
 * faulting page of such a mapping and lets the access complete; the back-end then breaks its
 * started vrings with a reason naming the region (at its next pop or message), and refuses to
 * start vrings on it. A SIGBUS anywhere else goes to the handler that was there before (or
 * the default action). Call it early in main(), before threads start; a program that does
 * not is left as it was.
 */
int gabi_vhost_guard_sigbus(struct gabi_error *reterr);

/* Checks that the mode is within what the library and the device implement: a mode asking
 * for more fails with -EOPNOTSUPP and a reterr naming the first missing bit. */
int gabi_vhost_backend_new(const struct gabi_vhost_backend_config *cfg,
                           const struct gabi_vhost_ops *ops, void *userdata,
                           struct gabi_vhost_backend **ret, struct gabi_error *reterr);
/* Closes the connection (ops->disconnected is not called), the listening socket (the socket
 * file is unlinked) and everything else. NULL-safe; returns NULL. */
struct gabi_vhost_backend *gabi_vhost_backend_free(struct gabi_vhost_backend *b);

/* Listen on a unix socket path (a stale socket file there is replaced). One front-end at a
 * time; after it disconnects the next one is accepted. */
int gabi_vhost_backend_listen(struct gabi_vhost_backend *b, const char *path,
                              struct gabi_error *reterr);
/* Serve an already connected AF_UNIX stream socket; takes ownership of fd (even on error). */
int gabi_vhost_backend_attach_fd(struct gabi_vhost_backend *b, int fd, struct gabi_error *reterr);
/* The socket is readable: accept, or read and handle the messages that have arrived (never
 * blocks; a partial message waits for the rest). Bad input closes the connection (see
 * gabi_vhost_backend_error()) and returns 0; <0 only for a failure of the back-end itself. */
int gabi_vhost_backend_dispatch(struct gabi_vhost_backend *b);
/* Close the connection (if any) as if the front-end had gone, with this reason. */
void gabi_vhost_backend_disconnect(struct gabi_vhost_backend *b, const char *reason);

/* The fd to watch for dispatch (listening or connected socket), -1 when none. */
int gabi_vhost_backend_socket_fd(const struct gabi_vhost_backend *b);
bool gabi_vhost_backend_connected(const struct gabi_vhost_backend *b);
const char *gabi_vhost_backend_name(const struct gabi_vhost_backend *b);
const struct gabi_vhost_mode *gabi_vhost_backend_mode(const struct gabi_vhost_backend *b);
/* Negotiated state of the current connection (0 before negotiation). */
uint64_t gabi_vhost_backend_features(const struct gabi_vhost_backend *b);
uint64_t gabi_vhost_backend_protocol_features(const struct gabi_vhost_backend *b);
uint8_t gabi_vhost_backend_status(const struct gabi_vhost_backend *b);
uint64_t gabi_vhost_backend_mtu(const struct gabi_vhost_backend *b); /* 0: never set */
/* Why the last connection was closed ("" while none has been). */
const char *gabi_vhost_backend_error(const struct gabi_vhost_backend *b);
/* Number of connections accepted or attached so far. */
unsigned gabi_vhost_backend_n_connections(const struct gabi_vhost_backend *b);
/* Whether dirty logging is on (LOG_ALL acked and a log mapped). */
bool gabi_vhost_backend_logging(const struct gabi_vhost_backend *b);

unsigned gabi_vhost_backend_n_vrings(const struct gabi_vhost_backend *b);
/* NULL when index >= gabi_vhost_backend_n_vrings(). */
struct gabi_vhost_vring *gabi_vhost_backend_vring(struct gabi_vhost_backend *b, unsigned index);

/* The device is suspended: connected, and no vring started (vhost-user.md 4.2). While it is,
 * the device must not write guest memory, signal anything or send back-end messages; it keeps
 * its state, and may be resumed (vrings restarted) or stopped. */
bool gabi_vhost_backend_suspended(const struct gabi_vhost_backend *b);

/* The device-state channel is ready (GABI_VHOST_WATCH_STATE_*): move what it takes without
 * blocking; a finished transfer ends here (save_end / load_commit or load_abort, then the
 * deferred CHECK_DEVICE_STATE reply). Returns 0; a transfer's failure is its outcome. */
int gabi_vhost_backend_process_state(struct gabi_vhost_backend *b);
/* The current or last transfer of this connection: its direction (-1 when none), outcome
 * (GABI_VHOST_STATE_PENDING while it runs) and, for a failure, *reterr with the reason. The
 * result is 0 for success, -EINPROGRESS, -ENOENT when there was none, or the failure. */
int gabi_vhost_backend_state_result(const struct gabi_vhost_backend *b,
                                    enum gabi_vhost_state_direction *ret_dir,
                                    enum gabi_vhost_state_outcome *ret_outcome,
                                    struct gabi_error *reterr);

/* Mark a guest-memory range written by the device, when logging is on (vring pushes already
 * log what they wrote; this is for devices writing guest memory by other means). */
void gabi_vhost_backend_log_write(struct gabi_vhost_backend *b, uint64_t gpa, uint64_t len);

/* ---- vrings (device side, split layout) ---------------------------------------------- */

/* One descriptor chain: device-readable segments first, then device-writable ones. */
struct gabi_vhost_elem {
    uint16_t head;    /* descriptor index, handed back by push */
    uint16_t n_out;   /* readable segments: iov[0 .. n_out) */
    uint16_t n_in;    /* writable segments: iov[n_out .. n_out + n_in) */
    uint32_t out_len; /* bytes readable */
    uint32_t in_len;  /* bytes writable */
    struct iovec iov[GABI_VHOST_ELEM_MAX_SEGS];
    uint64_t gpa[GABI_VHOST_ELEM_MAX_SEGS]; /* guest-physical start of each segment */
};

unsigned gabi_vhost_vring_index(const struct gabi_vhost_vring *vr);
/* Started (kick received, rings mapped) and not broken: the device may process it. */
bool gabi_vhost_vring_ready(const struct gabi_vhost_vring *vr);
bool gabi_vhost_vring_started(const struct gabi_vhost_vring *vr);
/* SET_VRING_ENABLE state (started + disabled: consume without side effects). */
bool gabi_vhost_vring_enabled(const struct gabi_vhost_vring *vr);
/* Why the vring is broken, NULL when it is not. */
const char *gabi_vhost_vring_broken(const struct gabi_vhost_vring *vr);
/* The device found a chain it cannot even answer (a request with no room for its status):
 * mark the started vring broken with this reason, as lib/vhost does for hostile rings (err
 * fd signalled, NEEDS_RESET with STATUS, ops->vring_broken). Chains pushed and not flushed
 * are dropped. No effect on a stopped or already broken vring. */
void gabi_vhost_vring_set_broken(struct gabi_vhost_vring *vr, const char *reason);
uint16_t gabi_vhost_vring_size(const struct gabi_vhost_vring *vr);
/* Next avail index the device will consume (what GET_VRING_BASE returns). */
uint16_t gabi_vhost_vring_last_avail(const struct gabi_vhost_vring *vr);
/* Per-vring device data. */
void gabi_vhost_vring_set_userdata(struct gabi_vhost_vring *vr, void *userdata);
void *gabi_vhost_vring_userdata(const struct gabi_vhost_vring *vr);

/* Consume a pending kick (read the eventfd); call before processing on a kick. */
void gabi_vhost_vring_kick_drain(struct gabi_vhost_vring *vr);
/* Next available chain: 1 and *elem, 0 when none is available, -EIO when the vring is (now)
 * broken, -ENOTCONN when it is not started. */
int gabi_vhost_vring_pop(struct gabi_vhost_vring *vr, struct gabi_vhost_elem *elem);
/* Up to n chains at once into elems[0..): how many (0 when none is available), or -EIO /
 * -ENOTCONN as pop when none could be popped. The avail index is read once per burst; a
 * burst that drains the ring asks for a kick as an empty pop does (EVENT_IDX), and takes what
 * came meanwhile. Each chain's first buffer is prefetched. A chain that breaks the vring ends
 * the burst: the chains before it are the caller's (their pushes are then ignored). */
int gabi_vhost_vring_pop_burst(struct gabi_vhost_vring *vr, struct gabi_vhost_elem *elems,
                               unsigned n);
/* Chains available and not yet popped (0 when not ready). */
unsigned gabi_vhost_vring_avail_count(struct gabi_vhost_vring *vr);
/* Give back the last n popped and not pushed chains (they are popped again next time). */
void gabi_vhost_vring_unpop(struct gabi_vhost_vring *vr, unsigned n);
/* Hand a popped chain back with `written` bytes written to its writable segments (logged
 * when dirty logging is on). Becomes visible to the guest at the next flush. */
void gabi_vhost_vring_push(struct gabi_vhost_vring *vr, const struct gabi_vhost_elem *elem,
                           uint32_t written);
/* As push for elems[0..n), with written[i] bytes each (written NULL: none written, as a
 * transmit queue hands chains back). */
void gabi_vhost_vring_push_burst(struct gabi_vhost_vring *vr, const struct gabi_vhost_elem *elems,
                                 const uint32_t *written, unsigned n);
/* Publish pushed chains (one used-index update) and interrupt the guest if it asked for it
 * (EVENT_IDX or NO_INTERRUPT). Returns 1 when the call fd was signalled, else 0. */
int gabi_vhost_vring_flush(struct gabi_vhost_vring *vr);
/* Ask the guest for kicks (true) or not (false). Enabling returns true when chains arrived
 * meanwhile (process again instead of sleeping). */
bool gabi_vhost_vring_notify(struct gabi_vhost_vring *vr, bool enable);

/* Copy helpers over an element's segments (bounded by the segments' lengths). */
size_t gabi_vhost_elem_read(const struct gabi_vhost_elem *elem, size_t offset, void *buf,
                            size_t size);
size_t gabi_vhost_elem_write(const struct gabi_vhost_elem *elem, size_t offset, const void *buf,
                             size_t size);

/* ---- guest memory (front-end side) ---------------------------------------------------- */

/* memfd-backed guest RAM, shareable with a back-end: n_regions equal regions adjacent in
 * guest-physical space from gpa 0 (like QEMU's split around the PCI hole, without the hole). */
struct gabi_vhost_guestmem;

struct gabi_vhost_region {
    uint64_t gpa;
    uint64_t size;
    uint64_t uaddr;       /* front-end virtual address (ring addresses are these) */
    uint64_t mmap_offset; /* into the fd */
};

int gabi_vhost_guestmem_new(uint64_t size, unsigned n_regions, struct gabi_vhost_guestmem **ret,
                            struct gabi_error *reterr);
struct gabi_vhost_guestmem *gabi_vhost_guestmem_free(struct gabi_vhost_guestmem *gm);
int gabi_vhost_guestmem_fd(const struct gabi_vhost_guestmem *gm);
uint64_t gabi_vhost_guestmem_size(const struct gabi_vhost_guestmem *gm);
unsigned gabi_vhost_guestmem_n_regions(const struct gabi_vhost_guestmem *gm);
const struct gabi_vhost_region *gabi_vhost_guestmem_region(const struct gabi_vhost_guestmem *gm,
                                                           unsigned i);
/* Host pointer to [gpa, gpa+len), or NULL when it is not all guest RAM. */
void *gabi_vhost_guestmem_ptr(const struct gabi_vhost_guestmem *gm, uint64_t gpa, uint64_t len);
/* Front-end virtual address of gpa (0 when outside). */
uint64_t gabi_vhost_guestmem_uaddr(const struct gabi_vhost_guestmem *gm, uint64_t gpa);
/* Bump allocator over guest RAM: 0 and *ret_gpa, or -ENOMEM. align: a power of 2. */
int gabi_vhost_guestmem_alloc(struct gabi_vhost_guestmem *gm, uint64_t size, uint64_t align,
                              uint64_t *ret_gpa);

/* ---- guest driver virtqueue (front-end side, split layout) ---------------------------- */

struct gabi_vhost_guestq;

/* A buffer in guest memory. */
struct gabi_vhost_gbuf {
    uint64_t gpa;
    uint32_t len;
};

#define GABI_VHOST_GUESTQ_EVENT_IDX 0x1u /* use used_event/avail_event */
#define GABI_VHOST_GUESTQ_INDIRECT  0x2u /* may post chains as indirect tables */

/* Rings in gm, plus a kick and a call eventfd. */
int gabi_vhost_guestq_new(struct gabi_vhost_guestmem *gm, uint16_t size, unsigned flags,
                          struct gabi_vhost_guestq **ret);
struct gabi_vhost_guestq *gabi_vhost_guestq_free(struct gabi_vhost_guestq *q);
struct gabi_vhost_guestmem *gabi_vhost_guestq_guestmem(const struct gabi_vhost_guestq *q);
uint16_t gabi_vhost_guestq_size(const struct gabi_vhost_guestq *q);
void gabi_vhost_guestq_addrs(const struct gabi_vhost_guestq *q, uint64_t *ret_desc,
                             uint64_t *ret_avail, uint64_t *ret_used);
int gabi_vhost_guestq_kick_fd(const struct gabi_vhost_guestq *q);
int gabi_vhost_guestq_call_fd(const struct gabi_vhost_guestq *q);
/* The head the next add will use (drivers keying buffers by head), or -ENOSPC. */
int gabi_vhost_guestq_next_head(const struct gabi_vhost_guestq *q);
/* Free descriptors. */
unsigned gabi_vhost_guestq_n_free(const struct gabi_vhost_guestq *q);
/* Post a chain: n_out device-readable buffers then n_in writable ones; indirect: as one
 * indirect table (needs GABI_VHOST_GUESTQ_INDIRECT). Returns the head id, or -ENOSPC. Not
 * visible to the device before gabi_vhost_guestq_publish(). */
int gabi_vhost_guestq_add(struct gabi_vhost_guestq *q, const struct gabi_vhost_gbuf *bufs,
                          unsigned n_out, unsigned n_in, bool indirect);
/* Make added chains visible (one avail-index update). */
void gabi_vhost_guestq_publish(struct gabi_vhost_guestq *q);
/* Kick the device unless it asked not to be (NO_NOTIFY / avail_event). 1 when kicked. */
int gabi_vhost_guestq_kick(struct gabi_vhost_guestq *q);
/* Reap one used chain: 1 with *ret_id and *ret_len, 0 when none (descriptors are freed). */
int gabi_vhost_guestq_get_used(struct gabi_vhost_guestq *q, uint32_t *ret_id, uint32_t *ret_len);
/* Ask for interrupts (call fd writes) or not. */
void gabi_vhost_guestq_set_interrupts(struct gabi_vhost_guestq *q, bool enable);
/* Wait up to timeout_ms for the call fd (and consume it): 1 signalled, 0 timeout. */
int gabi_vhost_guestq_wait(struct gabi_vhost_guestq *q, int timeout_ms);
/* Avail index the driver will publish next (the base to restart a vring at is the one
 * GET_VRING_BASE returned). */
uint16_t gabi_vhost_guestq_avail_idx(const struct gabi_vhost_guestq *q);
/* Used index as the device wrote it. */
uint16_t gabi_vhost_guestq_used_idx(const struct gabi_vhost_guestq *q);

/* ---- front-end (client) --------------------------------------------------------------- */

struct gabi_vhost_client;

/* Connect to a back-end's socket (timeout_ms for every reply; 0: 10 s). */
int gabi_vhost_client_connect(const char *path, int timeout_ms, struct gabi_vhost_client **ret,
                              struct gabi_error *reterr);
/* Use a connected socket; takes ownership of fd (even on error). */
int gabi_vhost_client_new_fd(int fd, int timeout_ms, struct gabi_vhost_client **ret);
struct gabi_vhost_client *gabi_vhost_client_free(struct gabi_vhost_client *c);
/* Called with the stream bytes that went through this front-end so far, after every step of a
 * state transfer it relays (save, load, and a move where it copies between the back-ends):
 * often, so the callee decides what to show and when. */
typedef void (*gabi_vhost_progress_fn)(uint64_t bytes, void *userdata);
void gabi_vhost_client_set_progress(struct gabi_vhost_client *c, gabi_vhost_progress_fn fn,
                                    void *userdata);
int gabi_vhost_client_fd(const struct gabi_vhost_client *c);

/*
 * One request, raw: sends header + payload + fds; waits for the reply when the message always
 * has one, or when need_reply is set (REPLY_ACK; the u64 ack then decides: non-zero is -EIO).
 * reply/ret_reply_size may be NULL. -EPIPE/-ECONNRESET when the back-end closed the
 * connection, -ETIMEDOUT, -EPROTO for a malformed reply.
 */
int gabi_vhost_client_request(struct gabi_vhost_client *c, uint32_t request, bool need_reply,
                              const void *payload, uint32_t size, const int *fds, unsigned n_fds,
                              void *reply, uint32_t reply_max, uint32_t *ret_reply_size);
/* Set NEED_REPLY on every request without a reply once REPLY_ACK is negotiated (default on),
 * so refusals surface as -EIO at once. */
void gabi_vhost_client_set_ack(struct gabi_vhost_client *c, bool ack);

int gabi_vhost_client_get_features(struct gabi_vhost_client *c, uint64_t *ret);
int gabi_vhost_client_set_features(struct gabi_vhost_client *c, uint64_t features);
int gabi_vhost_client_get_protocol_features(struct gabi_vhost_client *c, uint64_t *ret);
int gabi_vhost_client_set_protocol_features(struct gabi_vhost_client *c, uint64_t pf);
int gabi_vhost_client_set_owner(struct gabi_vhost_client *c);
int gabi_vhost_client_reset_owner(struct gabi_vhost_client *c);
int gabi_vhost_client_reset_device(struct gabi_vhost_client *c);
int gabi_vhost_client_get_queue_num(struct gabi_vhost_client *c, uint64_t *ret);
int gabi_vhost_client_get_max_mem_slots(struct gabi_vhost_client *c, uint64_t *ret);
/* All of gm's regions in one SET_MEM_TABLE, or one ADD_MEM_REG / REM_MEM_REG each. */
int gabi_vhost_client_set_mem_table(struct gabi_vhost_client *c,
                                    const struct gabi_vhost_guestmem *gm);
int gabi_vhost_client_add_mem_reg(struct gabi_vhost_client *c, const struct gabi_vhost_guestmem *gm,
                                  unsigned region);
int gabi_vhost_client_rem_mem_reg(struct gabi_vhost_client *c, const struct gabi_vhost_guestmem *gm,
                                  unsigned region);
int gabi_vhost_client_set_vring_num(struct gabi_vhost_client *c, unsigned index, uint32_t num);
int gabi_vhost_client_set_vring_base(struct gabi_vhost_client *c, unsigned index, uint32_t base);
int gabi_vhost_client_get_vring_base(struct gabi_vhost_client *c, unsigned index,
                                     uint32_t *ret_base);
int gabi_vhost_client_set_vring_addr(struct gabi_vhost_client *c, unsigned index, uint32_t flags,
                                     uint64_t desc_uaddr, uint64_t used_uaddr, uint64_t avail_uaddr,
                                     uint64_t log_gpa);
/* fd -1 sends the "no fd" flag. */
int gabi_vhost_client_set_vring_kick(struct gabi_vhost_client *c, unsigned index, int fd);
int gabi_vhost_client_set_vring_call(struct gabi_vhost_client *c, unsigned index, int fd);
int gabi_vhost_client_set_vring_err(struct gabi_vhost_client *c, unsigned index, int fd);
int gabi_vhost_client_set_vring_enable(struct gabi_vhost_client *c, unsigned index, bool on);
int gabi_vhost_client_get_config(struct gabi_vhost_client *c, uint32_t offset, void *buf,
                                 uint32_t size);
int gabi_vhost_client_set_config(struct gabi_vhost_client *c, uint32_t offset, const void *buf,
                                 uint32_t size, uint32_t flags);
int gabi_vhost_client_set_status(struct gabi_vhost_client *c, uint8_t status);
int gabi_vhost_client_get_status(struct gabi_vhost_client *c, uint8_t *ret);
int gabi_vhost_client_net_set_mtu(struct gabi_vhost_client *c, uint64_t mtu);
int gabi_vhost_client_send_rarp(struct gabi_vhost_client *c, const uint8_t mac[6]);
/* Takes no ownership: the fd is passed (duplicated into the back-end). */
int gabi_vhost_client_set_backend_req_fd(struct gabi_vhost_client *c, int fd);

/* The usual start: GET_FEATURES, GET/SET_PROTOCOL_FEATURES (offer & want_pf), SET_OWNER,
 * SET_FEATURES (offer & want_features). The results are in *ret_features / *ret_pf. */
int gabi_vhost_client_negotiate(struct gabi_vhost_client *c, uint64_t want_features,
                                uint64_t want_pf, uint64_t *ret_features, uint64_t *ret_pf);
uint64_t gabi_vhost_client_features(const struct gabi_vhost_client *c);
uint64_t gabi_vhost_client_protocol_features(const struct gabi_vhost_client *c);

/* Start vring `index` on q, as QEMU does: NUM, BASE (base), ADDR (flags: VHOST_VRING_F_LOG
 * = 1 with log_gpa the used ring's gpa), KICK, CALL, ENABLE 1. */
int gabi_vhost_client_start_vring(struct gabi_vhost_client *c, unsigned index,
                                  struct gabi_vhost_guestq *q, uint16_t base, bool log);
/* Stop it: ENABLE 0, GET_VRING_BASE; *ret_base is where to restart. */
int gabi_vhost_client_stop_vring(struct gabi_vhost_client *c, unsigned index, uint16_t *ret_base);

/* Dirty log: a memfd log covering guest_size bytes of guest memory, sent by SET_LOG_BASE. */
int gabi_vhost_client_set_log(struct gabi_vhost_client *c, uint64_t guest_size);
/* Whether the page holding gpa is marked dirty (false without a log). */
bool gabi_vhost_client_log_dirty(const struct gabi_vhost_client *c, uint64_t gpa);
/* Number of dirty pages, and clear the log. */
uint64_t gabi_vhost_client_log_count(const struct gabi_vhost_client *c);
void gabi_vhost_client_log_clear(struct gabi_vhost_client *c);

/* ---- front-end: device state (QEMU >= 8.2's vhost_save/load_backend_state) ------------- */

/* The reply bits of SET_DEVICE_STATE_FD: bits 0-7 an error code, bit 8 "no fd returned". */
#define GABI_VHOST_STATE_REPLY_ERROR_MASK 0xffu
#define GABI_VHOST_STATE_REPLY_NOFD       0x100u

/*
 * SET_DEVICE_STATE_FD(dir, phase) with fd, the front-end's end of the channel (not taken: the
 * caller closes its copy, since a pipe reports EOF only when every writer closed). 0 with
 * *ret_fd = -1: the back-end uses fd; 0 with *ret_fd >= 0: the back-end's own channel (read it
 * for a save, write it for a load), which replaces fd and is the caller's to close. Fails
 * early with -EOPNOTSUPP (nothing sent) unless DEVICE_STATE was negotiated; a refusal is
 * -code, the back-end's error code (guestabi back-ends: an errno such as EBUSY for a running
 * vring); -EPROTO for a reply that breaks the encoding (an fd with an error or with bit 8).
 */
int gabi_vhost_client_set_device_state_fd(struct gabi_vhost_client *c,
                                          enum gabi_vhost_state_direction dir, uint32_t phase,
                                          int fd, int *ret_fd);
/* CHECK_DEVICE_STATE, waiting up to timeout_ms (0: the client's timeout) for the back-end,
 * which answers once the transfer is over. 0 for success; -EIO with *ret_code (may be NULL)
 * the back-end's non-zero answer (guestabi back-ends: the enum gabi_vhost_state_outcome of the
 * failure, e.g. GABI_VHOST_STATE_TRUNCATED); -EOPNOTSUPP without DEVICE_STATE. */
int gabi_vhost_client_check_device_state(struct gabi_vhost_client *c, int timeout_ms,
                                         uint64_t *ret_code);

/* What a helper below did. */
struct gabi_vhost_state_xfer {
    uint64_t bytes;         /* stream bytes that went through the front-end (0: none did) */
    uint64_t spliced;       /* of those, moved by splice() */
    bool backend_fd[2];     /* [SAVE] / [LOAD] side answered with a channel of its own */
    bool relayed;           /* the front-end copied the bytes between the two channels */
    uint64_t check_code[2]; /* CHECK_DEVICE_STATE answers: [0] source/save, [1] destination */
};

/*
 * Save the back-end's state into out_fd (a file, pipe or socket; written from its current
 * position, blocking), as QEMU's vhost_save_backend_state does: a pipe, SET_DEVICE_STATE_FD
 * (SAVE, STOPPED), every byte until EOF (spliced where the kernel can), then
 * CHECK_DEVICE_STATE. Every vring must be stopped (gabi_vhost_client_stop_vring()). Waits up
 * to timeout_ms (0: the client's timeout) for each step of progress. 0, or -errno with
 * *reterr saying which step failed and, for a CHECK failure, the back-end's outcome. The
 * device's state is untouched either way: restart the vrings to resume it.
 */
int gabi_vhost_client_save_state(struct gabi_vhost_client *c, int out_fd, int timeout_ms,
                                 struct gabi_vhost_state_xfer *ret_xfer, struct gabi_error *reterr);
/* Load a state from in_fd (read to EOF) into the back-end, as vhost_load_backend_state: a
 * pipe, SET_DEVICE_STATE_FD(LOAD, STOPPED), the bytes, close, CHECK_DEVICE_STATE. A failure
 * leaves the device as it was (the back-end aborted the load). */
int gabi_vhost_client_load_state(struct gabi_vhost_client *c, int in_fd, int timeout_ms,
                                 struct gabi_vhost_state_xfer *ret_xfer, struct gabi_error *reterr);
/*
 * Move the state of src's back-end straight into dst's: one pipe whose write end goes to src
 * (SAVE) and read end to dst (LOAD), so the bytes go from back-end to back-end without
 * passing through this process; when a back-end answers with a channel of its own, the other
 * one gets that channel directly, or (both did) the front-end splices between them. Then
 * CHECK_DEVICE_STATE on both (waiting up to timeout_ms each). dst is asked first, so a
 * destination that refuses costs the source nothing. 0 when both said success; otherwise
 * -errno and *reterr (the source's state is untouched: restart its vrings to resume it; the
 * destination aborted its load).
 */
int gabi_vhost_client_move_state(struct gabi_vhost_client *src, struct gabi_vhost_client *dst,
                                 int timeout_ms, struct gabi_vhost_state_xfer *ret_xfer,
                                 struct gabi_error *reterr);

/* What a back-end offers a front-end (for the probe): GET_FEATURES, GET_PROTOCOL_FEATURES,
 * GET_QUEUE_NUM (1 without MQ) and the largest ring SET_VRING_NUM accepts (a power of 2). */
struct gabi_vhost_offer {
    uint64_t features;
    uint64_t protocol_features;
    uint32_t max_queue_pairs;
    uint32_t max_queue_size;
};

/* Read the offer of the back-end listening at path. Ring sizes are tried on fresh
 * connections (a refusal may end one: ours closes it), at most 5 of them, each with the
 * start QEMU would make; nothing is ever started. */
int gabi_vhost_client_probe_offer(const char *path, int timeout_ms, struct gabi_vhost_offer *ret,
                                  struct gabi_error *reterr);

/* The name of a front-end request code ("SET_VRING_ADDR"), "?" when unknown. */
const char *gabi_vhost_request_name(uint32_t request);
