/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A vhost-user back-end: a device runs exactly one compat mode, offers that mode's features,
 * protocol features, queue count and queue size, and refuses anything beyond it. Device
 * behaviour comes through `struct gabi_vhost_ops` plus userdata. The library owns no thread
 * and no loop: it asks the caller to watch fds (ops->watch / ops->unwatch), and the caller
 * calls gabi_vhost_backend_dispatch() when the socket is readable and processes a vring
 * (<guestabi/vhost_vring.h>) when its kick fd is.
 */

#include <guestabi/log.h>
#include <guestabi/vhost.h>
#include <guestabi/vhost_state.h>

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
    /* A device-state transfer ended: succeeded, failed or cancelled (outcome); err says why when
     * it did not succeed, and is what CHECK_DEVICE_STATE answers. */
    void (*state_finished)(struct gabi_vhost_backend *b, enum gabi_vhost_state_direction dir,
                           enum gabi_vhost_state_outcome outcome, const struct gabi_error *err,
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

    /* Everything the back-end has to say about its connection (refusals, broken vrings,
     * disconnects, each message), always at GABI_LOG_DEBUG: a library logs at debug level at
     * most. What a program shows its operator it logs itself, at its own level, from the
     * callbacks above (disconnected, vring_broken) and gabi_vhost_backend_error(). Lines are
     * already prefixed with the back-end's name. NULL: use gabi_log() at debug level. */
    void (*log)(struct gabi_vhost_backend *b, enum gabi_log_level level, const char *msg,
                void *userdata);
};

/* ---- device state (protocol feature DEVICE_STATE, docs/vhost.md "Device state") ---------- */

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
GABI_DEFINE_FREEP(struct gabi_vhost_backend, gabi_vhost_backend_free)

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
