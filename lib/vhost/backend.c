/* SPDX-License-Identifier: MIT */
/*
 * The back-end's life cycle: the mode it runs, the listening socket, one connection at a
 * time, reading messages without ever blocking (a partial message waits for the rest), and
 * a clean reset when the connection ends so the next front-end starts from scratch.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "vhost/internal.h"

/* Messages handled per dispatch call at most, so one chatty peer cannot starve the loop. */
#define DISPATCH_BUDGET 64

void vhost_backend_logf(struct gabi_vhost_backend *b, const char *fmt, ...)
{
    bool to_device = b->ops->log && !b->going_away;
    char msg[768], line[1024];
    va_list ap;

    if (!to_device && !gabi_log_enabled(GABI_LOG_DEBUG))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(line, sizeof(line), "%s: %s", b->name, msg);
    if (to_device)
        b->ops->log(b, GABI_LOG_DEBUG, line, b->userdata);
    else
        gabi_log(GABI_LOG_DEBUG, "vhost", "%s", line);
}

int vhost_backend_watch(struct gabi_vhost_backend *b, int fd, enum gabi_vhost_watch kind,
                        unsigned index)
{
    return b->ops->watch ? b->ops->watch(b, fd, kind, index, b->userdata) : 0;
}

void vhost_backend_unwatch(struct gabi_vhost_backend *b, int fd)
{
    if (b->ops->unwatch)
        b->ops->unwatch(b, fd, b->userdata);
}

/* ---- creation: the mode must be within what we implement ------------------------------- */

static int check_mode(const struct gabi_vhost_backend_config *cfg, const struct gabi_vhost_ops *ops,
                      struct gabi_error *reterr)
{
    const struct gabi_vhost_mode *m = cfg->mode;
    const char *name = m->name ? m->name : "(unnamed)";
    uint64_t pf_ok = GABI_VHOST_PROTOCOL_FEATURES, extra;

    if (m->max_queue_pairs == 0 || m->max_queue_pairs > GABI_VHOST_MAX_QUEUE_PAIRS)
        return gabi_error_set(reterr, -EOPNOTSUPP, name,
                              "%" PRIu32 " queue pairs: lib/vhost serves 1 to %u",
                              m->max_queue_pairs, GABI_VHOST_MAX_QUEUE_PAIRS);
    if (m->max_queue_size == 0 || m->max_queue_size > GABI_VHOST_MAX_QUEUE_SIZE ||
        (m->max_queue_size & (m->max_queue_size - 1)))
        return gabi_error_set(reterr, -EOPNOTSUPP, name,
                              "queue size %" PRIu32 ": must be a power of 2 up to %u",
                              m->max_queue_size, GABI_VHOST_MAX_QUEUE_SIZE);
    extra = m->features & ~(GABI_VHOST_TRANSPORT_FEATURES | cfg->device_features);
    if (extra) {
        unsigned bit = (unsigned)__builtin_ctzll(extra);
        const char *fname = gabi_feature_name(cfg->cls, bit);

        return gabi_error_set(reterr, -EOPNOTSUPP, name,
                              "feature %s (bit %u) is not implemented by this back-end",
                              fname ? fname : "?", bit);
    }
    if (!ops->get_config)
        pf_ok &= ~(1ull << GABI_PF_CONFIG);
    if (!cfg->state)
        pf_ok &= ~(1ull << GABI_PF_DEVICE_STATE);
    extra = m->protocol_features & ~pf_ok;
    if (extra) {
        unsigned bit = (unsigned)__builtin_ctzll(extra);
        const char *pname = gabi_protocol_feature_name(bit);

        return gabi_error_set(reterr, -EOPNOTSUPP, name,
                              "protocol feature %s (bit %u) is not implemented by this back-end",
                              pname ? pname : "?", bit);
    }
    if (m->protocol_features && !(m->features & (1ull << GABI_F_PROTOCOL_FEATURES)))
        return gabi_error_set(reterr, -EINVAL, name,
                              "protocol features without VHOST_USER_F_PROTOCOL_FEATURES");
    return 0;
}

int gabi_vhost_backend_new(const struct gabi_vhost_backend_config *cfg,
                           const struct gabi_vhost_ops *ops, void *userdata,
                           struct gabi_vhost_backend **ret, struct gabi_error *reterr)
{
    static const struct gabi_vhost_ops no_ops;
    struct gabi_vhost_backend *b;
    int r;

    if (!cfg || !cfg->mode || !ret)
        return gabi_error_set(reterr, -EINVAL, NULL, "no configuration or mode");
    if (cfg->cls != GABI_CLASS_NET && cfg->cls != GABI_CLASS_BLK)
        return gabi_error_set(reterr, -EINVAL, NULL, "device class %s has no vhost-user back-end",
                              gabi_class_name(cfg->cls));
    if (!ops)
        ops = &no_ops;
    r = check_mode(cfg, ops, reterr);
    if (r < 0)
        return r;
    if (cfg->state && (r = vhost_state_ops_check(cfg->state, reterr)) < 0)
        return r;

    b = calloc(1, sizeof(*b));
    if (!b)
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    b->name = strdup(cfg->name ? cfg->name : "vhost-user");
    b->mode_name = strdup(cfg->mode->name ? cfg->mode->name : "(unnamed)");
    b->cls = cfg->cls;
    b->mode = *cfg->mode;
    b->mode.name = b->mode_name;
    b->max_mem_slots = cfg->max_mem_slots ? MIN(cfg->max_mem_slots, GABI_VHOST_MAX_MEM_SLOTS)
                                          : GABI_VHOST_MAX_MEM_SLOTS;
    b->ops = ops;
    b->userdata = userdata;
    b->listen_fd = -1;
    b->conn_fd = -1;
    b->backend_req_fd = -1;
    b->log_call_fd = -1;
    b->log_guard = -1;
    b->xfer.fd = -1;
    b->state = cfg->state;
    if (cfg->state) {
        gabi_strlcpy(b->state_type, cfg->state->device_type, sizeof(b->state_type));
        gabi_strlcpy(b->state_version, cfg->state->version, sizeof(b->state_version));
    }
    b->n_vrings = cfg->mode->max_queue_pairs * (cfg->cls == GABI_CLASS_NET ? 2u : 1u);
    b->vrings = calloc(b->n_vrings, sizeof(*b->vrings));
    if (!b->name || !b->mode_name || !b->vrings) {
        gabi_vhost_backend_free(b);
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    }
    for (unsigned i = 0; i < b->n_vrings; i++) {
        struct gabi_vhost_vring *vr = &b->vrings[i];

        vr->b = b;
        vr->index = i;
        vr->kick_fd = vr->call_fd = vr->err_fd = -1;
    }
    *ret = b;
    return 0;
}

/* ---- connection ------------------------------------------------------------------------- */

void vhost_backend_unmap_log(struct gabi_vhost_backend *b)
{
    if (b->log_map)
        vhost_guard_unmap(b->log_map, b->log_map_size, b->log_guard);
    b->log_map = NULL;
    b->log = NULL;
    b->log_size = 0;
    vhost_backend_update_logging(b);
}

int vhost_backend_check_memory(const struct gabi_vhost_backend *b, struct gabi_error *reterr)
{
    for (unsigned i = 0; i < b->mem.n; i++) {
        const struct vhost_region *r = &b->mem.r[i];

        if (vhost_guard_lost(r->guard))
            return gabi_error_set(reterr, -EFAULT, NULL,
                                  "the front-end shrank the file behind guest memory gpa 0x%" PRIx64
                                  "+0x%" PRIx64
                                  " after it was mapped: pages of it read as zeros now",
                                  r->gpa, r->size);
    }
    if (b->log_map && vhost_guard_lost(b->log_guard))
        return gabi_error_set(
            reterr, -EFAULT, NULL,
            "the front-end shrank the dirty log's file after it was mapped: pages "
            "this back-end writes may not be logged");
    return 0;
}

void vhost_backend_guard_check(struct gabi_vhost_backend *b)
{
    struct gabi_error e;

    b->guard_seen = atomic_load(&vhost_guard_hits);
    if (vhost_backend_check_memory(b, &e) >= 0)
        return;
    for (unsigned i = 0; i < b->n_vrings; i++)
        if (b->vrings[i].started)
            vhost_vring_break(&b->vrings[i], "%s", e.message);
}

void vhost_backend_update_logging(struct gabi_vhost_backend *b)
{
    b->logging = b->log && (b->features & (1ull << GABI_F_LOG_ALL));
}

void vhost_backend_reset_vrings(struct gabi_vhost_backend *b)
{
    for (unsigned i = 0; i < b->n_vrings; i++)
        vhost_vring_reset(&b->vrings[i]);
}

/* The connection's teardown, from every path that ends one: its message in flight, the
 * device-state transfer, the vrings, guest memory, the dirty log and the fds it brought are
 * released and everything negotiated is forgotten. Unless the back-end is going away, the
 * device hears of it and the listening socket is watched again for the next front-end. */
static void close_connection(struct gabi_vhost_backend *b, bool error, const char *reason)
{
    if (b->conn_fd < 0)
        return;
    if (reason != b->error.message)
        gabi_error_set(&b->error, error ? -EPROTO : -ECONNRESET, NULL, "%s", reason);
    vhost_backend_logf(b, "connection closed: %s", b->error.message);
    vhost_close_fds(b->rx.msg.fds, &b->rx.msg.n_fds);
    b->rx.got = 0;
    vhost_state_reset(b, b->going_away ? reason : "the connection ended");
    vhost_backend_reset_vrings(b);
    vhost_mem_clear(&b->mem);
    vhost_backend_unmap_log(b);
    close_and_clear(&b->backend_req_fd);
    close_and_clear(&b->log_call_fd);
    vhost_backend_unwatch(b, b->conn_fd);
    close_and_clear(&b->conn_fd);
    b->owner = b->features_set = b->pf_set = false;
    b->features = 0;
    b->protocol_features = 0;
    b->status = 0;
    b->mtu = 0;
    b->logging = false;
    if (b->going_away)
        return;
    if (b->ops->disconnected)
        b->ops->disconnected(b, b->error.message, b->userdata);
    if (b->conn_fd < 0 && b->listen_fd >= 0 && !b->listen_watched) {
        if (vhost_backend_watch(b, b->listen_fd, GABI_VHOST_WATCH_SOCKET, 0) >= 0)
            b->listen_watched = true;
    }
}

void gabi_vhost_backend_disconnect(struct gabi_vhost_backend *b, const char *reason)
{
    close_connection(b, false, reason ? reason : "closed by the back-end");
}

static int start_connection(struct gabi_vhost_backend *b, int fd)
{
    int r;

    if (b->listen_watched) {
        vhost_backend_unwatch(b, b->listen_fd);
        b->listen_watched = false;
    }
    b->conn_fd = fd;
    b->rx.got = 0;
    b->rx.msg.n_fds = 0;
    b->n_connections++;
    r = vhost_backend_watch(b, fd, GABI_VHOST_WATCH_SOCKET, 0);
    if (r < 0) {
        /* not watched: make close_connection not unwatch it */
        b->conn_fd = -1;
        close(fd);
        if (b->listen_fd >= 0 &&
            vhost_backend_watch(b, b->listen_fd, GABI_VHOST_WATCH_SOCKET, 0) >= 0)
            b->listen_watched = true;
        return r;
    }
    b->error = (struct gabi_error){0};
    vhost_backend_logf(b, "front-end connected (mode %s)", b->mode.name);
    if (b->ops->connected)
        b->ops->connected(b, b->userdata);
    return 0;
}

int gabi_vhost_backend_listen(struct gabi_vhost_backend *b, const char *path,
                              struct gabi_error *reterr)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct stat st;
    _cleanup_close_ int fd = -1;
    int r;

    if (b->listen_fd >= 0)
        return gabi_error_set(reterr, -EBUSY, path, "already listening on %s", b->path);
    if (strlen(path) >= sizeof(sa.sun_path))
        return gabi_error_set(reterr, -ENAMETOOLONG, path, "socket path longer than %zu bytes",
                              sizeof(sa.sun_path) - 1);
    memcpy(sa.sun_path, path, strlen(path));
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return gabi_error_set(reterr, -EEXIST, path, "exists and is not a socket");
        unlink(path);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return gabi_error_set(reterr, -errno, path, "socket: %s", strerror(errno));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return gabi_error_set(reterr, -errno, path, "bind: %s", strerror(errno));
    if (listen(fd, 4) < 0) {
        r = -errno;
        unlink(path);
        return gabi_error_set(reterr, r, path, "listen: %s", strerror(-r));
    }
    b->path = strdup(path);
    if (!b->path) {
        unlink(path);
        return gabi_error_set(reterr, -ENOMEM, path, "out of memory");
    }
    b->listen_fd = TAKE_FD(fd);
    if (b->conn_fd < 0) {
        r = vhost_backend_watch(b, b->listen_fd, GABI_VHOST_WATCH_SOCKET, 0);
        if (r < 0)
            return gabi_error_set(reterr, r, path, "cannot watch the socket: %s", strerror(-r));
        b->listen_watched = true;
    }
    vhost_backend_logf(b, "listening on %s", path);
    return 0;
}

int gabi_vhost_backend_attach_fd(struct gabi_vhost_backend *b, int fd, struct gabi_error *reterr)
{
    _cleanup_close_ int owned = fd;
    int flags, r;

    if (fd < 0)
        return gabi_error_set(reterr, -EBADF, NULL, "no socket");
    if (b->conn_fd >= 0)
        return gabi_error_set(reterr, -EBUSY, NULL, "a front-end is already connected");
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return gabi_error_set(reterr, -errno, NULL, "fcntl: %s", strerror(errno));
    r = start_connection(b, TAKE_FD(owned));
    if (r < 0)
        return gabi_error_set(reterr, r, NULL, "cannot watch the socket: %s", strerror(-r));
    return 0;
}

static void accept_connection(struct gabi_vhost_backend *b)
{
    int fd = accept4(b->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (fd < 0) {
        if (errno != EAGAIN && errno != EINTR)
            vhost_backend_logf(b, "accept: %s", strerror(errno));
        return;
    }
    if (start_connection(b, fd) < 0)
        vhost_backend_logf(b, "cannot watch the new connection");
}

/* Read what has arrived of the current message; handle it when complete. Returns true to
 * keep reading, false when there is nothing more now or the connection was closed. */
static bool read_step(struct gabi_vhost_backend *b)
{
    struct rx_state *rx = &b->rx;
    const size_t hdr_size = sizeof(rx->msg.hdr);
    uint8_t *dst;
    size_t want;
    ssize_t n;
    int r;

    if (rx->got < hdr_size) {
        dst = (uint8_t *)&rx->msg.hdr + rx->got;
        want = hdr_size - rx->got;
    } else {
        dst = rx->msg.p.raw + (rx->got - hdr_size);
        want = hdr_size + rx->msg.hdr.size - rx->got;
    }
    if (want > 0) {
        n = vhost_recv(b->conn_fd, dst, want, rx->msg.fds, &rx->msg.n_fds, GABI_VHOST_MAX_FDS);
        if (n == -EAGAIN)
            return false;
        if (n == -EMSGSIZE) {
            gabi_error_set(&b->error, -EMSGSIZE, NULL, "a message carried more than %u fds",
                           GABI_VHOST_MAX_FDS);
            close_connection(b, true, b->error.message);
            return false;
        }
        if (n < 0) {
            gabi_error_set(&b->error, (int)n, NULL, "receive failed: %s", strerror((int)-n));
            close_connection(b, true, b->error.message);
            return false;
        }
        if (n == 0) {
            close_connection(b, rx->got != 0,
                             rx->got ? "the front-end closed the connection inside a message"
                                     : "the front-end closed the connection");
            return false;
        }
        rx->got += (size_t)n;
        if (rx->got == hdr_size) {
            r = vhost_check_header(b, &rx->msg.hdr);
            if (r < 0) {
                close_connection(b, true, b->error.message);
                return false;
            }
        }
    }
    if (rx->got < hdr_size || rx->got < hdr_size + rx->msg.hdr.size)
        return true;

    r = vhost_handle_message(b, &rx->msg);
    vhost_close_fds(rx->msg.fds, &rx->msg.n_fds);
    rx->got = 0;
    if (r < 0) {
        close_connection(b, true, b->error.message);
        return false;
    }
    return b->conn_fd >= 0;
}

int gabi_vhost_backend_dispatch(struct gabi_vhost_backend *b)
{
    vhost_backend_guard_poll(b);
    if (b->conn_fd < 0) {
        if (b->listen_fd >= 0)
            accept_connection(b);
        return 0;
    }
    for (unsigned i = 0; i < DISPATCH_BUDGET * 2 && b->conn_fd >= 0; i++)
        if (!read_step(b))
            break;
    return 0;
}

struct gabi_vhost_backend *gabi_vhost_backend_free(struct gabi_vhost_backend *b)
{
    if (!b)
        return NULL;
    b->going_away = true;
    close_connection(b, false, "the back-end is going away");
    if (b->listen_fd >= 0) {
        if (b->listen_watched)
            vhost_backend_unwatch(b, b->listen_fd);
        close_and_clear(&b->listen_fd);
        if (b->path)
            unlink(b->path);
    }
    free(b->vrings);
    free(b->path);
    free(b->name);
    free(b->mode_name);
    free(b);
    return NULL;
}

/* ---- accessors -------------------------------------------------------------------------- */

int gabi_vhost_backend_socket_fd(const struct gabi_vhost_backend *b)
{
    return b->conn_fd >= 0 ? b->conn_fd : b->listen_fd;
}

bool gabi_vhost_backend_connected(const struct gabi_vhost_backend *b)
{
    return b->conn_fd >= 0;
}

const char *gabi_vhost_backend_name(const struct gabi_vhost_backend *b)
{
    return b->name;
}

const struct gabi_vhost_mode *gabi_vhost_backend_mode(const struct gabi_vhost_backend *b)
{
    return &b->mode;
}

uint64_t gabi_vhost_backend_features(const struct gabi_vhost_backend *b)
{
    return b->features;
}

uint64_t gabi_vhost_backend_protocol_features(const struct gabi_vhost_backend *b)
{
    return b->protocol_features;
}

uint8_t gabi_vhost_backend_status(const struct gabi_vhost_backend *b)
{
    return b->status;
}

uint64_t gabi_vhost_backend_mtu(const struct gabi_vhost_backend *b)
{
    return b->mtu;
}

const char *gabi_vhost_backend_error(const struct gabi_vhost_backend *b)
{
    return b->error.message;
}

unsigned gabi_vhost_backend_n_connections(const struct gabi_vhost_backend *b)
{
    return b->n_connections;
}

bool gabi_vhost_backend_logging(const struct gabi_vhost_backend *b)
{
    return b->logging;
}

bool gabi_vhost_backend_suspended(const struct gabi_vhost_backend *b)
{
    if (b->conn_fd < 0)
        return false;
    for (unsigned i = 0; i < b->n_vrings; i++)
        if (b->vrings[i].started)
            return false;
    return true;
}

unsigned gabi_vhost_backend_n_vrings(const struct gabi_vhost_backend *b)
{
    return b->n_vrings;
}

struct gabi_vhost_vring *gabi_vhost_backend_vring(struct gabi_vhost_backend *b, unsigned index)
{
    return index < b->n_vrings ? &b->vrings[index] : NULL;
}

void gabi_vhost_backend_log_write(struct gabi_vhost_backend *b, uint64_t gpa, uint64_t len)
{
    uint64_t last, page;

    if (!b->logging || len == 0)
        return;
    last = gpa + len - 1;
    if (last < gpa)
        last = UINT64_MAX;
    for (page = gpa / GABI_VHOST_LOG_PAGE; page <= last / GABI_VHOST_LOG_PAGE; page++) {
        uint64_t byte = page / 8;

        if (byte >= b->log_size)
            break; /* beyond the log the front-end sized: it does not track that memory */
        __atomic_fetch_or(&b->log[byte], (uint8_t)(1u << (page % 8)), __ATOMIC_RELAXED);
    }
}
