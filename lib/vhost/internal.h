/* SPDX-License-Identifier: MIT */
#pragma once

/* lib/vhost internals: the state behind the back-end and vring handles, the memory table and
 * the dirty log, shared by backend.c, messages.c, memory.c and vring.c.
 *
 * Errors, one rule (docs/vhost.md, "Errors"): a fallible function returns >= 0 or -errno and,
 * where a person needs the reason, fills a `struct gabi_error *reterr` its caller passes down
 * (filled only on failure). When a failure outlives the call, the object it ends records it,
 * as a struct gabi_error set through gabi_error_set[v] like any other:
 *   - b->error: why the connection failed or ended. Message handlers return through fail(),
 *     which records "REQUEST: reason"; read_step closes the connection with it; the device
 *     reads it through gabi_vhost_backend_error() and the disconnected callback.
 *   - vr->broken_reason: why a vring is broken (vhost_vring_break), until it stops.
 *   - b->xfer.err and a state writer's or reader's err: why a device-state transfer failed.
 * Nothing else carries an error: no char buffers passed down, no errno left for later.
 */

#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <guestabi/vhost_client.h>
#include <guestabi/vhost_vring.h>

#include <guestabi/util.h>
#include "vhost/protocol.h"
#include "vhost/ring.h"

/* ---- memory table --------------------------------------------------------------------- */

struct vhost_region {
    uint64_t gpa;
    uint64_t size;
    uint64_t uaddr;
    uint64_t mmap_offset;
    uint8_t *host; /* host address of gpa */
    void *map;     /* the mapping: size + mmap_offset bytes from file offset 0 */
    size_t map_size;
    int guard; /* its guard slot (guard.c), -1 for none */
};

struct vhost_mem {
    unsigned n;
    struct vhost_region r[GABI_VHOST_MAX_MEM_SLOTS]; /* sorted by gpa, no overlaps */
};

/* Map one region from fd (not taken): 0, or -errno with reterr. */
int vhost_mem_add(struct vhost_mem *m, unsigned max, const struct vhost_mem_region *reg, int fd,
                  struct gabi_error *reterr);
/* Remove the region matching gpa, uaddr and size: 0 or -ENOENT. */
int vhost_mem_remove(struct vhost_mem *m, const struct vhost_mem_region *reg);
void vhost_mem_clear(struct vhost_mem *m);

/*
 * Guest-physical to host: the host address of gpa and, in *ret_len, how many of the len bytes
 * from there are contiguous in that region (at least 1). NULL when gpa is not guest RAM.
 * *hint caches the last region used.
 */
static inline uint8_t *vhost_mem_gpa(const struct vhost_mem *m, unsigned *hint, uint64_t gpa,
                                     uint64_t len, uint64_t *ret_len)
{
    unsigned i = *hint;

    if (likely(i < m->n && gpa - m->r[i].gpa < m->r[i].size))
        goto found;
    for (i = 0; i < m->n; i++)
        if (gpa - m->r[i].gpa < m->r[i].size)
            goto found;
    return NULL;
found:
    *hint = i;
    *ret_len = MIN(len, m->r[i].size - (gpa - m->r[i].gpa));
    return m->r[i].host + (gpa - m->r[i].gpa);
}

/* Front-end virtual address to host, for len bytes all in one region; NULL otherwise. */
void *vhost_mem_uaddr(const struct vhost_mem *m, uint64_t uaddr, uint64_t len);

/* ---- mappings of a peer's files (guard.c) ---------------------------------------------- */

/* mmap a peer's file shared, read-write, and register it with the SIGBUS guard: the mapping
 * or MAP_FAILED (errno); its slot in *ret_slot (-1 when every slot is taken: unguarded). */
void *vhost_guard_map(int fd, size_t len, int *ret_slot);
void vhost_guard_unmap(void *map, size_t len, int slot);
/* Whether the guard put zero pages into this mapping (its file shrank under it). */
bool vhost_guard_lost(int slot);
/* Pages the guard replaced in this process so far, any mapping. */
extern atomic_uint vhost_guard_hits;

/* ---- vrings ---------------------------------------------------------------------------- */

struct gabi_vhost_vring {
    struct gabi_vhost_backend *b;
    unsigned index;
    void *userdata;

    /* as the front-end set them */
    uint32_t num;
    uint32_t addr_flags;
    bool addr_set;
    uint64_t desc_uaddr, avail_uaddr, used_uaddr, log_gpa;
    uint32_t base; /* SET_VRING_BASE (packed: avail slot | wrap << 15 | (used slot | wrap << 15) <<
                      16) */
    int kick_fd, call_fd, err_fd;
    bool kick_watched;
    bool started;
    /* QEMU starts a vring with SET_VRING_KICK and sends its SET_VRING_CALL after: until that
     * comes, a signal goes to a call fd nobody may read (signalled_unheard), and the new fd
     * gets one interrupt for it (messages.c) */
    bool call_since_start;
    bool signalled_unheard;
    bool enabled;

    /* the running ring */
    struct vring_desc *desc;
    struct vring_avail *avail;
    struct vring_used *used;
    uint16_t mask;
    uint16_t last_avail;   /* next avail entry to consume */
    uint16_t shadow_avail; /* last avail->idx read */
    uint16_t used_idx;     /* used index as last published */
    uint16_t n_shadow;     /* pushed, not yet published */
    bool shadow_wrote;     /* one of them has a length (IN_ORDER batches only those without) */
    uint32_t shadow_slots; /* packed: ring slots the staged chains took */
    uint16_t signalled_used;
    uint16_t used_flags; /* as last written to used->flags */
    bool notify_on;      /* the device wants kicks */
    bool event_idx;
    bool indirect;
    unsigned hint;                  /* memory table region cache */
    struct vring_used_elem *shadow; /* num entries (packed: id | descriptors << 16, len) */

    /* packed rings (VIRTIO_F_RING_PACKED): desc, avail and used above stay NULL; last_avail
     * and used_idx are slots below num, each with its wrap counter */
    bool packed;
    bool in_order;                        /* VIRTIO_F_IN_ORDER negotiated */
    struct vring_packed_desc *pdesc;      /* num descriptors */
    struct vring_packed_event *drv_event; /* the driver's wishes (driver area) */
    struct vring_packed_event *dev_event; /* ours (device area) */
    uint64_t pdesc_gpa, dev_event_gpa;    /* where used writes are logged */
    bool avail_wrap, used_wrap, signalled_valid;
    uint16_t *pop_ndesc; /* descriptors of recent pops, by pop_seq (unpop) */
    uint16_t pop_seq;

    bool broken;
    struct gabi_error broken_reason; /* set by vhost_vring_break while broken */
};

/* Stop processing (the device is told first), and forget the running state. */
void vhost_vring_stop(struct gabi_vhost_vring *vr);
/* Map the rings through the memory table and start; a failure breaks the vring. */
void vhost_vring_start(struct gabi_vhost_vring *vr);
/* Map the rings again after a memory-table change (started vrings). */
void vhost_vring_remap(struct gabi_vhost_vring *vr);
/* Unwatch and close the kick fd, if any. */
void vhost_vring_close_kick(struct gabi_vhost_vring *vr);
/* The vring's teardown: stop it and forget everything the front-end set (fds closed). Every
 * path that ends a vring's use (GET_VRING_BASE aside, which keeps the addresses) comes here. */
void vhost_vring_reset(struct gabi_vhost_vring *vr);
void vhost_vring_break(struct gabi_vhost_vring *vr, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* elem as one direct segment: len bytes at host (guest-physical gpa), device-writable or not
 * (the pop fast paths). */
static inline void vhost_elem_one(struct gabi_vhost_elem *e, uint16_t head, uint8_t *host,
                                  uint64_t gpa, uint32_t len, bool w)
{
    e->head = head;
    e->n_out = !w;
    e->n_in = w;
    e->out_len = w ? 0 : len;
    e->in_len = w ? len : 0;
    e->iov[0].iov_base = host;
    e->iov[0].iov_len = len;
    e->gpa[0] = gpa;
}

/* Signal a call, err or log-call fd of the front-end's (never blocks; -1: nothing). */
void vhost_vring_signal_fd(int fd);
/* Append [gpa, gpa+len) to elem as segments (translated region by region, bounded by
 * GABI_VHOST_ELEM_MAX_SEGS): 0, or -EIO with the vring broken. */
int vhost_vring_add_segments(struct gabi_vhost_vring *vr, struct gabi_vhost_elem *elem,
                             uint64_t gpa, uint32_t len, bool write);

/* ---- packed vrings (vring_packed.c): the same operations as the public ones ------------ */

bool vhost_packed_map(struct gabi_vhost_vring *vr);
/* After mapping: the indices from vr->base; false (vring broken) when they are out of range. */
bool vhost_packed_start(struct gabi_vhost_vring *vr);
/* What GET_VRING_BASE hands back for a stopped packed vring. */
uint32_t vhost_packed_base(const struct gabi_vhost_vring *vr);
int vhost_packed_pop_burst(struct gabi_vhost_vring *vr, struct gabi_vhost_elem *elems, unsigned n);
unsigned vhost_packed_avail_count(struct gabi_vhost_vring *vr);
bool vhost_packed_has_avail(struct gabi_vhost_vring *vr);
void vhost_packed_unpop(struct gabi_vhost_vring *vr, unsigned n);
void vhost_packed_stage(struct gabi_vhost_vring *vr, const struct gabi_vhost_elem *elem,
                        uint32_t len);
int vhost_packed_flush(struct gabi_vhost_vring *vr);
bool vhost_packed_notify(struct gabi_vhost_vring *vr, bool enable);

/* ---- back-end -------------------------------------------------------------------------- */

struct rx_state {
    struct vhost_msg msg;
    uint32_t got; /* bytes of header + payload received so far */
};

/* The device-state transfer of the current connection (devstate.c). */
struct vhost_xfer {
    bool exists; /* SET_DEVICE_STATE_FD was accepted on this connection */
    enum gabi_vhost_state_direction dir;
    struct gabi_vhost_state_writer *writer; /* while a save runs */
    struct gabi_vhost_state_reader *reader; /* while a load runs */
    int fd;                                 /* the channel being watched, -1 when none */
    bool save_begun;                        /* save_end is owed */
    enum gabi_vhost_state_outcome outcome;  /* PENDING while it runs */
    struct gabi_error err;                  /* the failure's reason */
    bool check_pending;                     /* CHECK_DEVICE_STATE waits for the outcome */
};

struct gabi_vhost_backend {
    char *name;
    enum gabi_device_class cls;
    struct gabi_vhost_mode mode;
    char *mode_name;
    uint32_t max_mem_slots;
    const struct gabi_vhost_ops *ops;
    void *userdata;

    char *path; /* listening socket, or NULL */
    int listen_fd;
    int conn_fd;
    bool listen_watched;
    unsigned n_connections;
    struct rx_state rx;

    /* negotiated, per connection */
    bool owner;
    bool features_set;
    bool pf_set;
    uint64_t features;
    uint64_t protocol_features;
    uint8_t status;
    uint64_t mtu;
    int backend_req_fd;
    int log_call_fd;

    struct vhost_mem mem;

    /* dirty log */
    uint8_t *log;
    void *log_map;
    size_t log_map_size;
    int log_guard;
    uint64_t log_size;
    bool logging; /* LOG_ALL acked and log mapped */

    unsigned n_vrings;
    struct gabi_vhost_vring *vrings;
    unsigned guard_seen; /* vhost_guard_hits when this back-end's mappings were last checked */

    /* device state */
    const struct gabi_vhost_state_ops *state;
    char state_type[GABI_VHOST_STATE_TYPE_SIZE];
    char state_version[GABI_VHOST_STATE_VERSION_SIZE];
    struct vhost_xfer xfer;

    /* gabi_vhost_backend_free is tearing it down: the device hears nothing more from it except
     * unwatch (and its state ops, which must release what a transfer holds) */
    bool going_away;

    struct gabi_error error; /* why the connection failed or ended (gabi_vhost_backend_error) */
};

/* What a handler answers (messages.c sends it as the table's reply policy says). */
struct vhost_reply {
    union vhost_user_payload p;
    uint32_t size;
    bool nack;  /* VU_ACK: a failure ack */
    int fd;     /* sent with the reply, then closed; -1 for none */
    bool defer; /* no reply now: the handler's module sends it later (vhost_send_reply) */
};

/* Send a reply to request (flags REPLY, version 1), with fd when >= 0 (not closed). */
int vhost_send_reply(struct gabi_vhost_backend *b, uint32_t request, const void *payload,
                     uint32_t size, int fd);

/* The library's log, at debug level only (shared/STYLE.md): through ops->log, else gabi_log.
 * Failures are reported through return codes and gabi_errors; a line here only repeats them. */
void vhost_backend_logf(struct gabi_vhost_backend *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int vhost_backend_watch(struct gabi_vhost_backend *b, int fd, enum gabi_vhost_watch kind,
                        unsigned index);
void vhost_backend_unwatch(struct gabi_vhost_backend *b, int fd);
/* Refresh b->logging after a features or log change. */
void vhost_backend_update_logging(struct gabi_vhost_backend *b);
void vhost_backend_unmap_log(struct gabi_vhost_backend *b);
/* 0 while this back-end's guest memory and dirty log can be trusted; -EFAULT with the reason
 * in reterr once the guard replaced pages of a shrunk file. */
int vhost_backend_check_memory(const struct gabi_vhost_backend *b, struct gabi_error *reterr);
/* Break every started vring if a mapping lost pages since the last look. */
void vhost_backend_guard_check(struct gabi_vhost_backend *b);
static inline void vhost_backend_guard_poll(struct gabi_vhost_backend *b)
{
    if (unlikely(atomic_load_explicit(&vhost_guard_hits, memory_order_relaxed) != b->guard_seen))
        vhost_backend_guard_check(b);
}
/* Stop and reset every vring (RESET_DEVICE, RESET_OWNER, disconnect). */
void vhost_backend_reset_vrings(struct gabi_vhost_backend *b);

/* Check a header as soon as it has arrived (request known and implemented, negotiated,
 * payload size within bounds): 0, or -errno recorded in b->error. */
int vhost_check_header(struct gabi_vhost_backend *b, const struct vhost_user_hdr *hdr);
/* Handle one complete message: 0, or -errno recorded in b->error (closes the connection).
 * Replies are sent from here. */
int vhost_handle_message(struct gabi_vhost_backend *b, struct vhost_msg *msg);

/* ---- device state (devstate.c) -------------------------------------------------------- */

/* SET_DEVICE_STATE_FD and CHECK_DEVICE_STATE: handlers of the message table. */
int vhost_on_set_device_state_fd(struct gabi_vhost_backend *b, struct vhost_msg *m,
                                 struct vhost_reply *rep);
int vhost_on_check_device_state(struct gabi_vhost_backend *b, struct vhost_msg *m,
                                struct vhost_reply *rep);
/* Stop a transfer that is not over (outcome `cancelled`, the device told: save_end or
 * load_abort); reason is logged. Nothing when none runs. */
void vhost_state_cancel(struct gabi_vhost_backend *b, const char *reason);
/* Forget this connection's transfer (cancelling one that runs): disconnect, free. */
void vhost_state_reset(struct gabi_vhost_backend *b, const char *reason);
/* Check a device's state ops when the back-end is created: 0 or -EINVAL with reterr. */
int vhost_state_ops_check(const struct gabi_vhost_state_ops *ops, struct gabi_error *reterr);

/* ---- front-end (client.c) -------------------------------------------------------------- */

/* The progress callback set on c (NULL: none), and its userdata. */
gabi_vhost_progress_fn vhost_client_progress(const struct gabi_vhost_client *c,
                                             void **ret_userdata);

/* A request that always has a reply, waiting up to timeout_ms (0: the client's) for it; with
 * ret_fd, one fd may come with the reply (*ret_fd, else -1). The reply's size in
 * *ret_reply_size, its first reply_max bytes in reply. */
int vhost_client_call(struct gabi_vhost_client *c, uint32_t request, const void *payload,
                      uint32_t size, const int *fds, unsigned n_fds, void *reply,
                      uint32_t reply_max, uint32_t *ret_reply_size, int *ret_fd, int timeout_ms);

/* The most stream bytes a state relay through this client passes
 * (gabi_vhost_client_set_state_limit). */
uint64_t vhost_client_state_limit(const struct gabi_vhost_client *c);

/* ---- framing (both sides) ------------------------------------------------------------- */

/* sendmsg of header + payload + fds, all of it (EINTR retried, EAGAIN polled up to
 * timeout_ms). 0 or -errno. */
int vhost_send(int fd, const struct vhost_user_hdr *hdr, const void *payload, const int *fds,
               unsigned n_fds, int timeout_ms);
/* recvmsg of up to size bytes into buf, fds appended to fds/n_fds (MSG_CMSG_CLOEXEC); fds
 * beyond max are closed and reported as -EMSGSIZE. Returns bytes read (0 at EOF) or -errno. */
ssize_t vhost_recv(int fd, void *buf, size_t size, int *fds, unsigned *n_fds, unsigned max);
void vhost_close_fds(int *fds, unsigned *n_fds);
/* Room for one SCM_RIGHTS control message of up to GABI_VHOST_MAX_FDS fds. */
union vhost_cmsg_buf {
    char buf[CMSG_SPACE(sizeof(int) * GABI_VHOST_MAX_FDS)];
    struct cmsghdr align;
};
/* Attaches fds (1 to GABI_VHOST_MAX_FDS) to mh as SCM_RIGHTS, in buf. */
void vhost_msg_put_fds(struct msghdr *mh, union vhost_cmsg_buf *buf, const int *fds,
                       unsigned n_fds);
