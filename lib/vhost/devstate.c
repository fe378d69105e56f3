/* SPDX-License-Identifier: MIT */
/*
 * Device-state transfer on the back-end side: SET_DEVICE_STATE_FD and CHECK_DEVICE_STATE
 * (protocol feature DEVICE_STATE, vhost-user.md section 5), on top of the stream writer and
 * reader of state_transfer.c.
 *
 * A transfer is accepted only while the device is suspended (every vring stopped). Its
 * channel is handed to the caller's loop (GABI_VHOST_WATCH_STATE_*), which calls
 * gabi_vhost_backend_process_state() whenever the channel is ready; nothing here blocks.
 * CHECK_DEVICE_STATE is answered at once when the outcome is known, else its reply is held
 * until the transfer ends, and the connection takes no other request meanwhile (the
 * front-end is waiting for that reply). A vring that starts, a reset, a new transfer or the
 * end of the connection cancels a transfer that is not over: the device hears save_end or
 * load_abort, so it never runs on half a state.
 *
 * SET_DEVICE_STATE_FD's reply: 0x100 "accepted, keep your fd"; 0 with an fd "accepted, use
 * mine"; 0x100 | errno (bits 0-7) without an fd for a refusal, after which the connection goes
 * on. CHECK_DEVICE_STATE's reply: 0, or the enum gabi_vhost_state_outcome of the failure.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "vhost/internal.h"
#include "vhost/state_internal.h"

#define OWN_PIPE_SIZE (1 << 20)

/* ---- the device's ops, as the stream's source and sink --------------------------------- */

static int source_get(void *userdata, uint64_t offset, size_t max, void *scratch,
                      size_t scratch_size, struct gabi_vhost_state_seg *ret,
                      struct gabi_error *reterr)
{
    struct gabi_vhost_backend *b = userdata;

    return b->state->save_get(b, offset, max, scratch, scratch_size, ret, reterr, b->userdata);
}

static const struct gabi_vhost_state_source_ops source_ops = {.get = source_get};

static int sink_accept(void *userdata, const struct gabi_vhost_state_info *info,
                       struct gabi_error *reterr)
{
    struct gabi_vhost_backend *b = userdata;

    return b->state->load_accept(b, info, reterr, b->userdata);
}

static int sink_begin(void *userdata, const struct gabi_vhost_state_info *info,
                      struct gabi_error *reterr)
{
    struct gabi_vhost_backend *b = userdata;

    return b->state->load_begin ? b->state->load_begin(b, info, reterr, b->userdata) : 0;
}

static int sink_dest(void *userdata, uint64_t offset, size_t max, struct gabi_vhost_state_seg *ret,
                     struct gabi_error *reterr)
{
    struct gabi_vhost_backend *b = userdata;

    /* without load_dest the reader's default stands: COPY, handed to load_write */
    return b->state->load_dest ? b->state->load_dest(b, offset, max, ret, reterr, b->userdata) : 0;
}

static int sink_write(void *userdata, uint64_t offset, const void *buf, size_t size,
                      struct gabi_error *reterr)
{
    struct gabi_vhost_backend *b = userdata;

    if (!b->state->load_write)
        return gabi_error_set(reterr, -ENOTSUP, NULL, "the device takes no copied bytes");
    return b->state->load_write(b, offset, buf, size, reterr, b->userdata);
}

static int sink_commit(void *userdata, struct gabi_error *reterr)
{
    struct gabi_vhost_backend *b = userdata;

    return b->state->load_commit(b, reterr, b->userdata);
}

static void sink_abort(void *userdata)
{
    struct gabi_vhost_backend *b = userdata;

    b->state->load_abort(b, b->userdata);
}

static const struct gabi_vhost_state_sink_ops sink_ops = {
    .accept = sink_accept,
    .begin = sink_begin,
    .dest = sink_dest,
    .write = sink_write,
    .commit = sink_commit,
    .abort = sink_abort,
};

int vhost_state_ops_check(const struct gabi_vhost_state_ops *ops, struct gabi_error *reterr)
{
    if (!ops->device_type || !state_name_valid(ops->device_type, GABI_VHOST_STATE_TYPE_SIZE))
        return gabi_error_set(reterr, -EINVAL, NULL,
                              "device-state type must be 1..31 printable ASCII characters");
    if (!ops->version || !state_name_valid(ops->version, GABI_VHOST_STATE_VERSION_SIZE))
        return gabi_error_set(reterr, -EINVAL, ops->device_type,
                              "device-state version must be 1..15 printable ASCII characters");
    if (!ops->save_begin || !ops->save_get)
        return gabi_error_set(reterr, -EINVAL, ops->device_type,
                              "device-state ops need save_begin and save_get");
    if (!ops->load_accept || !ops->load_commit || !ops->load_abort ||
        (!ops->load_dest && !ops->load_write))
        return gabi_error_set(reterr, -EINVAL, ops->device_type,
                              "device-state ops need load_accept, load_commit, load_abort, and "
                              "load_dest or load_write");
    return 0;
}

int gabi_vhost_state_own_pipe(struct gabi_vhost_backend *b, enum gabi_vhost_state_direction dir,
                              int *ret_local, int *ret_remote, void *userdata)
{
    int p[2];

    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    if (fcntl(p[0], F_SETPIPE_SZ, OWN_PIPE_SIZE) < 0) {
        /* the default size works too */
    }
    *ret_local = dir == GABI_VHOST_STATE_SAVE ? p[1] : p[0];
    *ret_remote = dir == GABI_VHOST_STATE_SAVE ? p[0] : p[1];
    return 0;
}

/* ---- one transfer ------------------------------------------------------------------------ */

static const char *dir_name(enum gabi_vhost_state_direction dir)
{
    return dir == GABI_VHOST_STATE_SAVE ? "save" : "load";
}

static bool running(const struct vhost_xfer *x)
{
    return x->writer || x->reader;
}

static uint64_t check_code(enum gabi_vhost_state_outcome o)
{
    return o == GABI_VHOST_STATE_SUCCEEDED ? 0 : (uint64_t)o;
}

/* Answer a held CHECK_DEVICE_STATE; a front-end that cannot take it loses the connection. */
static void send_check_reply(struct gabi_vhost_backend *b)
{
    uint64_t v = check_code(b->xfer.outcome);
    int r;

    b->xfer.check_pending = false;
    r = vhost_send_reply(b, VHOST_USER_CHECK_DEVICE_STATE, &v, sizeof(v), -1);
    if (r < 0) {
        gabi_error_set(&b->error, r, NULL, "CHECK_DEVICE_STATE: cannot send the reply: %s",
                       strerror(-r));
        gabi_vhost_backend_disconnect(b, b->error.message);
    }
}

/* Drop the channel and the writer or reader; the device hears how it ended. */
static void xfer_release(struct gabi_vhost_backend *b, int result)
{
    struct vhost_xfer *x = &b->xfer;

    if (x->fd >= 0)
        vhost_backend_unwatch(b, x->fd);
    x->fd = -1;
    x->writer = gabi_vhost_state_writer_free(x->writer);
    x->reader = gabi_vhost_state_reader_free(x->reader); /* aborts a sink that began */
    if (x->save_begun) {
        x->save_begun = false;
        if (b->state->save_end)
            b->state->save_end(b, result, b->userdata);
    }
}

/* The device hears how a transfer ended (it logs what its operator must see). */
static void state_finished(struct gabi_vhost_backend *b)
{
    const struct vhost_xfer *x = &b->xfer;

    if (b->ops->state_finished && !b->going_away)
        b->ops->state_finished(b, x->dir, x->outcome, &x->err, b->userdata);
}

static void xfer_finish(struct gabi_vhost_backend *b)
{
    struct vhost_xfer *x = &b->xfer;
    struct gabi_error e = {0};
    int result;

    if (x->writer) {
        result = gabi_vhost_state_writer_result(x->writer, &e);
        x->outcome = gabi_vhost_state_writer_outcome(x->writer);
    } else {
        result = gabi_vhost_state_reader_result(x->reader, &e);
        x->outcome = gabi_vhost_state_reader_outcome(x->reader);
    }
    x->err = e;
    xfer_release(b, result);
    if (x->outcome == GABI_VHOST_STATE_SUCCEEDED)
        vhost_backend_logf(b, "device state %s of %s version %s succeeded", dir_name(x->dir),
                           b->state_type, b->state_version);
    else
        vhost_backend_logf(b, "device state %s failed (%s): %s", dir_name(x->dir),
                           gabi_vhost_state_outcome_name(x->outcome), x->err.message);
    state_finished(b);
    if (x->check_pending)
        send_check_reply(b);
}

int gabi_vhost_backend_process_state(struct gabi_vhost_backend *b)
{
    struct vhost_xfer *x = &b->xfer;
    int r;

    if (!running(x))
        return 0;
    if (x->writer)
        r = gabi_vhost_state_writer_process(x->writer, NULL);
    else
        r = gabi_vhost_state_reader_process(x->reader, NULL);
    if (r == GABI_VHOST_STATE_MORE)
        return 0;
    xfer_finish(b);
    return 0;
}

void vhost_state_cancel(struct gabi_vhost_backend *b, const char *reason)
{
    struct vhost_xfer *x = &b->xfer;

    if (!running(x))
        return;
    x->outcome = GABI_VHOST_STATE_CANCELLED;
    gabi_error_set(&x->err, -ECANCELED, NULL, "the %s was cancelled: %s", dir_name(x->dir), reason);
    xfer_release(b, -ECANCELED);
    vhost_backend_logf(b, "device state %s", x->err.message);
    state_finished(b);
    if (x->check_pending)
        send_check_reply(b);
}

void vhost_state_reset(struct gabi_vhost_backend *b, const char *reason)
{
    struct vhost_xfer *x = &b->xfer;

    x->check_pending = false; /* nobody to answer any more */
    vhost_state_cancel(b, reason);
    memset(x, 0, sizeof(*x));
    x->fd = -1;
}

int gabi_vhost_backend_state_result(const struct gabi_vhost_backend *b,
                                    enum gabi_vhost_state_direction *ret_dir,
                                    enum gabi_vhost_state_outcome *ret_outcome,
                                    struct gabi_error *reterr)
{
    const struct vhost_xfer *x = &b->xfer;

    if (ret_dir)
        *ret_dir = x->exists ? x->dir : (enum gabi_vhost_state_direction) - 1;
    if (ret_outcome)
        *ret_outcome = x->exists ? x->outcome : GABI_VHOST_STATE_NO_TRANSFER;
    if (!x->exists)
        return -ENOENT;
    if (x->outcome == GABI_VHOST_STATE_PENDING)
        return -EINPROGRESS;
    if (x->outcome == GABI_VHOST_STATE_SUCCEEDED)
        return 0;
    if (reterr)
        *reterr = x->err;
    return x->err.code < 0 ? x->err.code : -EIO;
}

/* ---- the two messages ------------------------------------------------------------------ */

/* A refusal: bit 8 (no fd) with the errno in bits 0-7; the connection goes on. */
static int refuse(struct gabi_vhost_backend *b, struct vhost_reply *rep, int code, const char *fmt,
                  ...) __attribute__((format(printf, 4, 5)));
static int refuse(struct gabi_vhost_backend *b, struct vhost_reply *rep, int code, const char *fmt,
                  ...)
{
    char why[400];
    va_list ap;
    unsigned c = (unsigned)(code < 0 ? -code : code);

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    vhost_backend_logf(b, "SET_DEVICE_STATE_FD refused: %s", why);
    close_and_clear(&rep->fd);
    rep->p.u64 = GABI_VHOST_STATE_REPLY_NOFD | (c > 0 && c <= 0xff ? c : 1u);
    rep->size = sizeof(uint64_t);
    return 0;
}

static int running_vring(const struct gabi_vhost_backend *b)
{
    for (unsigned i = 0; i < b->n_vrings; i++)
        if (b->vrings[i].started)
            return (int)i;
    return -1;
}

int vhost_on_set_device_state_fd(struct gabi_vhost_backend *b, struct vhost_msg *m,
                                 struct vhost_reply *rep)
{
    struct vhost_xfer *x = &b->xfer;
    uint32_t dir = m->p.transfer.direction, phase = m->p.transfer.phase;
    enum gabi_vhost_watch kind;
    struct gabi_error e = {0};
    int fd, local = -1, vr, r;
    uint64_t size = 0;

    if (!b->state) /* cannot happen: DEVICE_STATE is offered only with state ops */
        return refuse(b, rep, -ENOTSUP, "the device has no state to transfer");
    if (dir > GABI_VHOST_STATE_LOAD)
        return refuse(b, rep, -EINVAL, "direction %" PRIu32 " (0 save, 1 load)", dir);
    if (phase != GABI_VHOST_STATE_PHASE_STOPPED)
        return refuse(b, rep, -EINVAL, "phase %" PRIu32 ": only 0 (stopped) is defined", phase);
    if (m->n_fds != 1)
        return refuse(b, rep, -EBADF, "no fd attached");
    vr = running_vring(b);
    if (vr >= 0)
        return refuse(b, rep, -EBUSY, "vring %d is running: the device is not suspended", vr);
    vhost_state_reset(b, "a new SET_DEVICE_STATE_FD arrived");
    fd = TAKE_FD(m->fds[0]);
    if (b->state->channel) {
        r = b->state->channel(b, (enum gabi_vhost_state_direction)dir, &local, &rep->fd,
                              b->userdata);
        if (r < 0) {
            close(fd);
            return refuse(b, rep, r, "the device has no channel of its own: %s", strerror(-r));
        }
        if (r == 0) {
            close(fd);
            fd = local;
        } else {
            rep->fd = -1;
        }
    }
    if (dir == GABI_VHOST_STATE_SAVE) {
        r = b->state->save_begin(b, &size, &e, b->userdata);
        if (r < 0) {
            close(fd);
            return refuse(b, rep, r, "the device cannot save its state: %s",
                          e.message[0] ? e.message : strerror(-r));
        }
        x->save_begun = true;
        r = gabi_vhost_state_writer_new(fd, b->state_type, b->state_version, size, &source_ops, b,
                                        &x->writer, &e);
        if (r >= 0)
            fd = gabi_vhost_state_writer_get_fd(x->writer);
        kind = GABI_VHOST_WATCH_STATE_WRITE;
    } else {
        r = gabi_vhost_state_reader_new(fd, b->state_type, b->state->max_load_size, &sink_ops, b,
                                        &x->reader, &e);
        if (r >= 0)
            fd = gabi_vhost_state_reader_get_fd(x->reader);
        kind = GABI_VHOST_WATCH_STATE_READ;
    }
    x->dir = (enum gabi_vhost_state_direction)dir;
    if (r >= 0) {
        r = vhost_backend_watch(b, fd, kind, 0);
        if (r >= 0)
            x->fd = fd;
        else
            gabi_error_set(&e, r, NULL, "the channel cannot be watched: %s", strerror(-r));
    }
    if (r < 0) {
        xfer_release(b, r);
        return refuse(b, rep, r, "%s", e.message);
    }
    x->exists = true;
    x->outcome = GABI_VHOST_STATE_PENDING;
    vhost_backend_logf(b, "device state %s of %s started (%s channel)", dir_name(x->dir),
                       b->state_type, rep->fd >= 0 ? "the back-end's" : "the front-end's");
    if (x->dir == GABI_VHOST_STATE_SAVE)
        vhost_backend_logf(b, "saving %" PRIu64 " payload bytes, version %s", size,
                           b->state_version);
    rep->p.u64 = rep->fd >= 0 ? 0 : GABI_VHOST_STATE_REPLY_NOFD;
    rep->size = sizeof(uint64_t);
    return 0;
}

int vhost_on_check_device_state(struct gabi_vhost_backend *b, struct vhost_msg *m,
                                struct vhost_reply *rep)
{
    struct vhost_xfer *x = &b->xfer;
    int vr = running_vring(b);

    rep->size = sizeof(uint64_t);
    if (vr >= 0) {
        vhost_backend_logf(b, "CHECK_DEVICE_STATE refused: vring %d is running", vr);
        rep->p.u64 = GABI_VHOST_STATE_NOT_SUSPENDED;
        return 0;
    }
    if (!x->exists) {
        rep->p.u64 = GABI_VHOST_STATE_NO_TRANSFER;
        return 0;
    }
    if (running(x)) {
        x->check_pending = true; /* answered when the transfer ends */
        rep->defer = true;
        return 0;
    }
    rep->p.u64 = check_code(x->outcome);
    return 0;
}
