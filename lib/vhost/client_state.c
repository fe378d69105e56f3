/* SPDX-License-Identifier: MIT */
/*
 * Device-state transfer on the front-end side: SET_DEVICE_STATE_FD and CHECK_DEVICE_STATE,
 * and what QEMU (>= 8.2) does around them in vhost_save_backend_state() and
 * vhost_load_backend_state(), plus what only a front-end holding both ends can do: hand the
 * source back-end's channel straight to the destination back-end.
 *
 * These helpers block (with timeouts), as the rest of the front-end does: they are for tests,
 * benchmarks and a host agent, not for a back-end's loop. Writing into a pipe whose reader
 * went away would raise SIGPIPE; the helpers block it around their own writes and consume the
 * one they caused, so a caller need not ignore SIGPIPE for them.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "vhost/internal.h"

#define PIPE_WANT  (1 << 20)
#define RELAY_STEP (1 << 20)
#define COPY_BUF   (256 << 10)

static bool has_device_state(const struct gabi_vhost_client *c)
{
    return gabi_vhost_client_protocol_features(c) & (1ull << GABI_PF_DEVICE_STATE);
}

int gabi_vhost_client_set_device_state_fd(struct gabi_vhost_client *c,
                                          enum gabi_vhost_state_direction dir, uint32_t phase,
                                          int fd, int *ret_fd)
{
    struct vhost_transfer_state t = {.direction = (uint32_t)dir, .phase = phase};
    uint64_t v = 0, code;
    uint32_t size = 0;
    int got = -1, r;

    if (!has_device_state(c))
        return -EOPNOTSUPP;
    if (fd < 0)
        return -EBADF;
    r = vhost_client_call(c, VHOST_USER_SET_DEVICE_STATE_FD, &t, sizeof(t), &fd, 1, &v, sizeof(v),
                          &size, &got, 0);
    if (r < 0)
        return r;
    code = v & GABI_VHOST_STATE_REPLY_ERROR_MASK;
    if (size != sizeof(v) ||
        (v & ~(uint64_t)(GABI_VHOST_STATE_REPLY_ERROR_MASK | GABI_VHOST_STATE_REPLY_NOFD)) ||
        (got >= 0 && (v & GABI_VHOST_STATE_REPLY_NOFD)) ||
        (got < 0 && !(v & GABI_VHOST_STATE_REPLY_NOFD) && !code) || (got >= 0 && code)) {
        /* an error with an fd, an fd with "no fd", "use mine" without one: not the encoding */
        close_and_clear(&got);
        return -EPROTO;
    }
    if (code)
        return -(int)code;
    *ret_fd = got;
    return 0;
}

int gabi_vhost_client_check_device_state(struct gabi_vhost_client *c, int timeout_ms,
                                         uint64_t *ret_code)
{
    uint64_t v = 0;
    uint32_t size = 0;
    int r;

    if (!has_device_state(c))
        return -EOPNOTSUPP;
    r = vhost_client_call(c, VHOST_USER_CHECK_DEVICE_STATE, NULL, 0, NULL, 0, &v, sizeof(v), &size,
                          NULL, timeout_ms);
    if (r < 0)
        return r;
    if (size != sizeof(v))
        return -EPROTO;
    if (ret_code)
        *ret_code = v;
    return v ? -EIO : 0;
}

/* ---- moving bytes ------------------------------------------------------------------------ */

static int wait_fd(int fd, short events, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = events};

    for (;;) {
        int r = poll(&p, 1, timeout_ms);

        if (r > 0)
            return 0;
        if (r == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

/* Write all of buf to fd (which may be non-blocking). */
static int write_all(int fd, const uint8_t *buf, size_t n, int timeout_ms)
{
    while (n) {
        ssize_t k = write(fd, buf, n);

        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && errno == EAGAIN) {
            int r = wait_fd(fd, POLLOUT, timeout_ms);

            if (r < 0)
                return r;
            continue;
        }
        if (k < 0)
            return -errno;
        buf += k;
        n -= (size_t)k;
    }
    return 0;
}

/* SIGPIPE blocked for the calling thread while it writes into pipes; a SIGPIPE this caused is
 * consumed, one that was pending before is left alone. */
struct sigpipe_guard {
    sigset_t old;
    bool was_pending;
};

static void sigpipe_block(struct sigpipe_guard *g)
{
    sigset_t set, pending;

    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigpending(&pending);
    g->was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

static void sigpipe_restore(struct sigpipe_guard *g)
{
    sigset_t set, pending;

    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigpending(&pending);
    if (!g->was_pending && sigismember(&pending, SIGPIPE)) {
        static const struct timespec zero = {0, 0};

        while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/*
 * Copy in_fd to EOF into out_fd, at most limit bytes: splice() while the kernel can (one of
 * them is a pipe), read()/write() otherwise. Waits up to timeout_ms for each step of progress.
 * Returns 0, -EFBIG when in_fd goes on past limit (nothing beyond it written), or -errno;
 * which side failed in *ret_side ("reading" / "writing").
 */
static int relay(const struct gabi_vhost_client *c, int in_fd, int out_fd, uint64_t limit,
                 int timeout_ms, struct gabi_vhost_state_xfer *x, const char **ret_side)
{
    void *userdata = NULL;
    gabi_vhost_progress_fn progress = vhost_client_progress(c, &userdata);
    struct sigpipe_guard guard;
    uint8_t *buf = NULL;
    bool use_splice = true;
    int r = 0;

    *ret_side = "reading";
    sigpipe_block(&guard);
    for (;;) {
        uint64_t room = limit - x->bytes;
        ssize_t n;

        if (room == 0) {
            uint8_t extra;

            /* the limit is reached: only the end of the stream may follow */
            n = read(in_fd, &extra, 1);
            if (n > 0) {
                r = -EFBIG;
                break;
            }
        } else if (use_splice) {
            n = splice(in_fd, NULL, out_fd, NULL, (size_t)MIN(room, (uint64_t)RELAY_STEP),
                       SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
            if (n < 0 && errno == EINVAL) {
                use_splice = false;
                continue;
            }
            if (n < 0 && errno == EPIPE)
                *ret_side = "writing";
        } else {
            if (!buf && !(buf = malloc(COPY_BUF))) {
                r = -ENOMEM;
                break;
            }
            n = read(in_fd, buf, (size_t)MIN(room, (uint64_t)COPY_BUF));
            if (n > 0) {
                r = write_all(out_fd, buf, (size_t)n, timeout_ms);
                if (r < 0) {
                    *ret_side = "writing";
                    break;
                }
            }
        }
        if (n > 0) {
            x->bytes += (uint64_t)n;
            if (use_splice)
                x->spliced += (uint64_t)n;
            if (progress)
                progress(x->bytes, userdata);
            continue;
        }
        if (n == 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN) {
            r = -errno;
            break;
        }
        /* nothing to read, or no room to write: wait for the one, then the other */
        r = wait_fd(in_fd, POLLIN, timeout_ms);
        if (r >= 0 && use_splice && room > 0) {
            r = wait_fd(out_fd, POLLOUT, timeout_ms);
            if (r < 0)
                *ret_side = "writing";
        }
        if (r < 0)
            break;
    }
    sigpipe_restore(&guard);
    free(buf);
    return r;
}

/* The failure of a relay, in reterr. */
static int relay_failed(int r, const char *what, const char *side, uint64_t limit,
                        const struct gabi_vhost_state_xfer *x, struct gabi_error *reterr)
{
    if (r == -EFBIG)
        return gabi_error_set(reterr, r, what,
                              "the stream goes on past the front-end's limit of %" PRIu64
                              " bytes (gabi_vhost_client_set_state_limit): a source streaming "
                              "without end is cut off there",
                              limit);
    return gabi_error_set(reterr, r, what, "%s the state failed after %" PRIu64 " bytes: %s", side,
                          x->bytes, strerror(-r));
}

/* A pipe for a transfer: ours is non-blocking, theirs is sent to the back-end. */
static int transfer_pipe(int p[2])
{
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    if (fcntl(p[0], F_SETPIPE_SZ, PIPE_WANT) < 0) {
        /* the default size works too */
    }
    return 0;
}

static const char *outcome_text(uint64_t code)
{
    const char *n =
        code < 256 ? gabi_vhost_state_outcome_name((enum gabi_vhost_state_outcome)code) : NULL;

    return n ? n : "not a guestabi outcome";
}

/* CHECK_DEVICE_STATE on one side; a failure fills reterr unless it already says something. */
static int check(struct gabi_vhost_client *c, const char *who, int timeout_ms, uint64_t *ret_code,
                 struct gabi_error *reterr, bool first_error)
{
    int r = gabi_vhost_client_check_device_state(c, timeout_ms, ret_code);

    if (r == -EIO && first_error)
        return gabi_error_set(reterr, r, who, "CHECK_DEVICE_STATE: the %s failed: %" PRIu64 " (%s)",
                              who, *ret_code, outcome_text(*ret_code));
    if (r < 0 && first_error)
        return gabi_error_set(reterr, r, who, "CHECK_DEVICE_STATE: %s", strerror(-r));
    return r;
}

/* Opens the transfer channel of one side: a pipe, one end handed over with
 * SET_DEVICE_STATE_FD, or the back-end's own fd when it returns one. *ret_chan is the end we
 * read (save) or write (load). */
static int open_channel(struct gabi_vhost_client *c, enum gabi_vhost_state_direction dir,
                        int *ret_chan, struct gabi_vhost_state_xfer *x, struct gabi_error *reterr)
{
    const char *what = dir == GABI_VHOST_STATE_SAVE ? "save" : "load";
    int p[2], give, keep, own = -1, r;

    if (!has_device_state(c))
        return gabi_error_set(reterr, -EOPNOTSUPP, what,
                              dir == GABI_VHOST_STATE_SAVE
                                  ? "the back-end did not negotiate DEVICE_STATE: it cannot "
                                    "migrate its state"
                                  : "the back-end did not negotiate DEVICE_STATE: it cannot take "
                                    "a migrated state");
    r = transfer_pipe(p);
    if (r < 0)
        return gabi_error_set(reterr, r, what, "pipe: %s", strerror(-r));
    give = dir == GABI_VHOST_STATE_SAVE ? p[1] : p[0];
    keep = dir == GABI_VHOST_STATE_SAVE ? p[0] : p[1];
    r = gabi_vhost_client_set_device_state_fd(c, dir, GABI_VHOST_STATE_PHASE_STOPPED, give, &own);
    close(give); /* the back-end's copy is the only one now: its close is the reader's EOF */
    if (r < 0) {
        close(keep);
        return gabi_error_set(reterr, r, what, "SET_DEVICE_STATE_FD(%s) refused: %s",
                              dir == GABI_VHOST_STATE_SAVE ? "SAVE" : "LOAD", strerror(-r));
    }
    if (own >= 0) {
        close(keep);
        keep = own;
        x->backend_fd[dir] = true;
    }
    r = gabi_fd_nonblock_own(&keep);
    if (r < 0) {
        close(keep);
        return gabi_error_set(reterr, r, what, "fcntl: %s", strerror(-r));
    }
    *ret_chan = keep;
    return 0;
}

/* One side's transfer: the state out of the back-end into fd (save), or from fd into it (load),
 * then CHECK_DEVICE_STATE either way: it tells the back-end's side of the story. */
static int transfer(struct gabi_vhost_client *c, enum gabi_vhost_state_direction dir, int fd,
                    int timeout_ms, struct gabi_vhost_state_xfer *ret_xfer,
                    struct gabi_error *reterr)
{
    const char *what = dir == GABI_VHOST_STATE_SAVE ? "save" : "load";
    struct gabi_vhost_state_xfer x = {0};
    const char *side = "";
    uint64_t limit = vhost_client_state_limit(c);
    bool stopped;
    int chan = -1, r, rc;

    if (timeout_ms <= 0)
        timeout_ms = 10000;
    r = open_channel(c, dir, &chan, &x, reterr);
    if (r < 0)
        return r;
    r = dir == GABI_VHOST_STATE_SAVE ? relay(c, chan, fd, limit, timeout_ms, &x, &side)
                                     : relay(c, fd, chan, limit, timeout_ms, &x, &side);
    close(chan); /* loading: the back-end's EOF */
    /* EPIPE while loading: the back-end stopped reading, and CHECK says why */
    stopped = dir == GABI_VHOST_STATE_LOAD && r == -EPIPE;
    if (r < 0 && !stopped)
        relay_failed(r, what, side, limit, &x, reterr);
    rc = check(c, what, timeout_ms, &x.check_code[dir], reterr, r >= 0 || stopped);
    if (ret_xfer)
        *ret_xfer = x;
    return r < 0 && !stopped ? r : rc < 0 ? rc : r;
}

int gabi_vhost_client_save_state(struct gabi_vhost_client *c, int out_fd, int timeout_ms,
                                 struct gabi_vhost_state_xfer *ret_xfer, struct gabi_error *reterr)
{
    return transfer(c, GABI_VHOST_STATE_SAVE, out_fd, timeout_ms, ret_xfer, reterr);
}

int gabi_vhost_client_load_state(struct gabi_vhost_client *c, int in_fd, int timeout_ms,
                                 struct gabi_vhost_state_xfer *ret_xfer, struct gabi_error *reterr)
{
    return transfer(c, GABI_VHOST_STATE_LOAD, in_fd, timeout_ms, ret_xfer, reterr);
}

int gabi_vhost_client_move_state(struct gabi_vhost_client *src, struct gabi_vhost_client *dst,
                                 int timeout_ms, struct gabi_vhost_state_xfer *ret_xfer,
                                 struct gabi_error *reterr)
{
    struct gabi_vhost_state_xfer x = {0};
    const char *side = "";
    int p[2], dst_own = -1, src_own = -1, target, r = 0, rs, rd;

    if (timeout_ms <= 0)
        timeout_ms = 10000;
    if (!has_device_state(src) || !has_device_state(dst))
        return gabi_error_set(reterr, -EOPNOTSUPP, has_device_state(src) ? "destination" : "source",
                              "the %s back-end did not negotiate DEVICE_STATE",
                              has_device_state(src) ? "destination" : "source");
    r = transfer_pipe(p);
    if (r < 0)
        return gabi_error_set(reterr, r, "move", "pipe: %s", strerror(-r));

    /* the destination first: one that refuses costs the source nothing */
    r = gabi_vhost_client_set_device_state_fd(dst, GABI_VHOST_STATE_LOAD,
                                              GABI_VHOST_STATE_PHASE_STOPPED, p[0], &dst_own);
    close(p[0]);
    if (r < 0) {
        close(p[1]);
        return gabi_error_set(reterr, r, "destination", "SET_DEVICE_STATE_FD(LOAD) refused: %s",
                              strerror(-r));
    }
    target = p[1];
    if (dst_own >= 0) {
        close(p[1]);
        target = dst_own;
        x.backend_fd[GABI_VHOST_STATE_LOAD] = true;
    }

    /* the source writes into whatever the destination reads, unless it has its own channel */
    r = gabi_vhost_client_set_device_state_fd(src, GABI_VHOST_STATE_SAVE,
                                              GABI_VHOST_STATE_PHASE_STOPPED, target, &src_own);
    if (r < 0) {
        close(target); /* the destination reads EOF and gives up */
        gabi_error_set(reterr, r, "source", "SET_DEVICE_STATE_FD(SAVE) refused: %s", strerror(-r));
        check(dst, "destination", timeout_ms, &x.check_code[1], reterr, false);
        if (ret_xfer)
            *ret_xfer = x;
        return r;
    }
    if (src_own >= 0) {
        x.backend_fd[GABI_VHOST_STATE_SAVE] = true;
        x.relayed = true;
        r = gabi_fd_nonblock_own(&src_own);
        if (r >= 0)
            r = gabi_fd_nonblock_own(&target);
        if (r >= 0)
            r = relay(src, src_own, target, vhost_client_state_limit(src), timeout_ms, &x, &side);
        close(src_own);
        if (r < 0)
            relay_failed(r, "move", side, vhost_client_state_limit(src), &x, reterr);
    }
    close(target); /* now only the back-ends hold the channel */

    rs = check(src, "source", timeout_ms, &x.check_code[0], reterr, r >= 0);
    rd = check(dst, "destination", timeout_ms, &x.check_code[1], reterr, r >= 0 && rs >= 0);
    if (ret_xfer)
        *ret_xfer = x;
    return r < 0 ? r : rs < 0 ? rs : rd;
}
