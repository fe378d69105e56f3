/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The vhost-user front-end: connect, negotiate, configure and stop vrings, move device state
 * between back-ends, and probe what a back-end offers. Guest memory and a guest driver's
 * virtqueues for tests and benchmarks are test support (tests/support/vhost_guest.h).
 */

#include <guestabi/vhost.h>

/* ---- front-end (client) --------------------------------------------------------------- */

struct gabi_vhost_client;

/* Connect to a back-end's socket (timeout_ms for every reply; 0: 10 s). */
int gabi_vhost_client_connect(const char *path, int timeout_ms, struct gabi_vhost_client **ret,
                              struct gabi_error *reterr);
/* Use a connected socket; takes ownership of fd (even on error). */
int gabi_vhost_client_new_fd(int fd, int timeout_ms, struct gabi_vhost_client **ret);
struct gabi_vhost_client *gabi_vhost_client_free(struct gabi_vhost_client *c);
GABI_DEFINE_FREEP(struct gabi_vhost_client, gabi_vhost_client_free)
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

/* Stop it: ENABLE 0, GET_VRING_BASE; *ret_base is where to restart. */
int gabi_vhost_client_stop_vring(struct gabi_vhost_client *c, unsigned index, uint32_t *ret_base);

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

/* The default of gabi_vhost_client_set_state_limit: far above any device state guestabi's
 * devices write, far below what fills a disk. */
#define GABI_VHOST_STATE_RELAY_LIMIT (16ull << 30)

/* The most stream bytes (header and trailer included) that save_state, load_state and a
 * relaying move_state pass through this client, the source's client for a move; 0: the
 * default. A stream that goes on past it (a source streaming without end) fails the transfer
 * with -EFBIG, having written at most max_bytes to the target. */
void gabi_vhost_client_set_state_limit(struct gabi_vhost_client *c, uint64_t max_bytes);

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
