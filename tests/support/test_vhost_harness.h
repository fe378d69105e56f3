/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A back-end for tests: lib/vhost driven by its own epoll loop in a thread, with a small
 * loopback device (chains taken from TX vring 2i+1 are copied into RX vring 2i), so that our
 * front-end can talk to it over a real unix socket. Everything the test reads from the
 * back-end's side goes through the harness lock.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <guestabi/vhost_vring.h>
#include <guestabi/virtio_net.h>

/* The harness device's state, for DEVICE_STATE (a mode offering it gets these ops). */
struct harness_state_cfg {
    const char *type;    /* stream device type; NULL: "test-dev" */
    const char *version; /* what save writes; NULL: "1" */
    const char *loads;   /* comma-separated versions load_accept takes; NULL: "1" */
    size_t size;         /* state bytes (a pattern from seed); 0: 64 */
    uint64_t seed;
    bool own_channel;   /* answer SET_DEVICE_STATE_FD with a pipe of its own */
    uint64_t max_load;  /* max_load_size; 0: 256 MiB */
    bool fail_commit;   /* load_commit fails (after every byte arrived and verified) */
    size_t fail_get_at; /* save_get fails at this offset (0: never) */
};

struct harness {
    struct gabi_vhost_backend *b;
    pthread_t thread;
    bool running;
    int epfd;
    int stop_fd;
    char dir[64];
    char path[128];

    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct harness_call *pending_call; /* harness_call()'s, for this harness's loop only */
    /* recorded by the device callbacks (under lock) */
    char log[65536]; /* every line the library logged (all at debug level) */
    unsigned n_loud; /* lines it logged above debug level: none */
    unsigned n_connected, n_disconnected;
    char last_disconnect[512];
    unsigned n_broken;
    char broken[512];
    uint64_t n_looped, n_dropped;
    uint8_t rarp_mac[6];
    unsigned n_rarp;
    uint64_t features_seen;
    unsigned n_started, n_stopped, n_resets;
    uint8_t config[64];

    /* device state (under lock once running) */
    struct harness_state_cfg scfg;
    struct gabi_vhost_state_ops state_ops;
    uint8_t *state;
    size_t state_size;
    uint8_t *scratch;
    size_t scratch_size;
    unsigned n_save_begin, n_save_end, n_commit, n_abort, n_accept;
    int last_save_result;
};

/* The bytes of a state of `size` made from `seed` (what the device starts with). */
void harness_pattern(uint8_t *buf, size_t size, uint64_t seed);
/* An Ethernet frame of len bytes (at least 14) whose payload follows from seed. */
void harness_frame(uint8_t *f, size_t len, uint8_t seed);
/* CRC32C of the device's current state (under the lock), and its size. */
uint32_t harness_state_crc(struct harness *h, size_t *ret_size);
/* Start with a state configuration (NULL: defaults). */
int harness_start_ex(struct harness *h, const struct gabi_vhost_mode *mode,
                     enum gabi_device_class cls, uint64_t device_features,
                     const struct harness_state_cfg *scfg);
/* Wait (up to 10 s) until *counter (a harness field) reaches n. */
int harness_wait_count(struct harness *h, const unsigned *counter, unsigned n);

/* A harness back-end in a child process (for killing it mid-transfer): listens on
 * dir/sock; call while this process has no other threads. 0 and *ret_pid, or -errno. */
int harness_spawn(const struct gabi_vhost_mode *mode, const struct harness_state_cfg *scfg,
                  char *ret_path, size_t path_size, pid_t *ret_pid);
/* SIGKILL and reap a spawned back-end; its socket directory is removed. */
void harness_spawn_kill(pid_t pid, const char *path);

/* Every virtio-net feature and protocol feature lib/vhost implements, split rings: 2 pairs of
 * 256. */
extern const struct gabi_vhost_mode harness_mode_all;
/* Every feature but RING_PACKED is harness_mode_all's split-ring world; this one adds
 * VIRTIO_F_RING_PACKED and VIRTIO_F_IN_ORDER (the loopback completes in order). */
extern const struct gabi_vhost_mode harness_mode_packed;

/* Start a back-end in mode listening on a fresh socket in a temporary directory. */
int harness_start(struct harness *h, const struct gabi_vhost_mode *mode);
/* The same for a device class (virtio-blk: one vring per queue, config space). */
int harness_start_class(struct harness *h, const struct gabi_vhost_mode *mode,
                        enum gabi_device_class cls, uint64_t device_features);
void harness_stop(struct harness *h);
/* Wait (up to 10 s) until n disconnects have been seen: 0, or -ETIMEDOUT. */
int harness_wait_disconnects(struct harness *h, unsigned n);
/* Wait (up to 10 s) until n broken vrings have been seen. */
int harness_wait_broken(struct harness *h, unsigned n);
/* Copy of the log / the last disconnect reason / broken reason (under the lock). */
void harness_copy(struct harness *h, const char *what, char *buf, size_t size);
/* Run fn(h, arg) on the back-end thread, between two dispatches, and wait for it. */
void harness_call(struct harness *h, void (*fn)(struct harness *h, void *arg), void *arg);

/* Open fds of this process (the back-end runs in it too). */
unsigned harness_count_fds(void);

/* A connected client, negotiated: features/pf are the wanted masks. */
struct gabi_vhost_client *harness_client(struct harness *h, uint64_t features, uint64_t pf);

/* ---- guestabi-net as a child process, and a guest for it -------------------------------- */

#include <sys/types.h>
#include "vhost_guest.h"

struct netproc {
    pid_t pid;
    char dir[64];
    char sock[4][128]; /* dir/0 .. dir/3 */
    char ctl[128];     /* dir/ctl: "@c" in args */
};

/* Path of the guestabi-net binary of this build. */
const char *harness_net_binary(void);
/* Run guestabi-net with args (NULL-terminated; "@0".."@3" stand for the socket paths, "@c"
 * for a control socket path) and
 * wait for it to be ready (up to 20 s). 0, or -errno (the process is reaped). */
int netproc_start(struct netproc *np, const char *const *args);
/* SIGTERM, wait: the exit status (0 for a clean shutdown), or -errno. */
int netproc_stop(struct netproc *np);
/* SIGKILL, wait, clean up. */
void netproc_kill(struct netproc *np);
/* One request on the control socket: the reply line (NUL-terminated) in buf, its length or
 * -errno. */
int netproc_control(struct netproc *np, const char *request, char *buf, size_t size);
/* Run guestabi-net to completion with args; its exit status and up to size bytes of its
 * stdout+stderr in out. */
int netproc_run(const char *const *args, char *out, size_t size);

#define TGUEST_SLOT 4096u /* bytes per buffer slot */

struct tguest {
    struct gabi_vhost_client *c;
    struct gabi_vhost_guestmem *gm;
    struct gabi_vhost_guestq *q[8]; /* rx0 tx0 rx1 tx1 ... */
    uint64_t slot_gpa[8];           /* per vring: a slot per descriptor head */
    uint32_t slot_len[8][256];
    unsigned n_pairs;
    unsigned hdr_len;
    uint64_t features;
    unsigned qflags;
};

/* Connect to path, negotiate (offered & features), share memory (ADD_MEM_REG when the mode has
 * memory slots), start n_pairs queue pairs of 256 (none: 0; tguest_start() later). */
int tguest_connect(struct tguest *g, const char *path, uint64_t features, unsigned n_pairs,
                   unsigned qflags);
void tguest_free(struct tguest *g);
/* Start n_pairs queue pairs (rings made on first use) at bases (NULL: 0), as QEMU does. */
int tguest_start(struct tguest *g, unsigned n_pairs, const uint32_t *bases);
/* Stop every started vring (GET_VRING_BASE): the device is suspended; bases to restart at. */
int tguest_stop(struct tguest *g, uint32_t *ret_bases);
/* Post n RX buffers of size bytes (<= TGUEST_SLOT) on pair. */
int tguest_post_rx(struct tguest *g, unsigned pair, unsigned n, uint32_t size);
/* Fill every RX buffer of pair with byte c: what a driver's recycled buffers may hold. */
void tguest_fill_rx(struct tguest *g, unsigned pair, uint8_t c);
/* Send a frame on pair with hdr (NULL: zeroes) in front; split: header in its own descriptor;
 * indirect: as an indirect table. */
int tguest_send(struct tguest *g, unsigned pair, const struct gabi_virtio_net_hdr *hdr,
                const void *frame, size_t len, bool split, bool indirect);
/* Receive one frame on pair (up to timeout_ms): its length and header (num_buffers chains
 * are gathered), -ETIMEDOUT, or -EBADMSG. */
int tguest_recv(struct tguest *g, unsigned pair, struct gabi_virtio_net_hdr *hdr, void *frame,
                size_t max, int timeout_ms);
/* Reap TX completions: how many. */
unsigned tguest_reap_tx(struct tguest *g, unsigned pair);
