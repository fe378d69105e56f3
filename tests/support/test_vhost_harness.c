/* SPDX-License-Identifier: MIT */
/* The test back-end: see test_vhost_harness.h. */

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "tap.h"
#include "test_vhost_harness.h"

#define NET_ALL_FEATURES                                                                           \
    ((1ull << GABI_NET_F_CSUM) | (1ull << GABI_NET_F_GUEST_CSUM) | (1ull << GABI_NET_F_MTU) |      \
     (1ull << GABI_NET_F_MAC) | (1ull << GABI_NET_F_MRG_RXBUF) | (1ull << GABI_NET_F_MQ))

const struct gabi_vhost_mode harness_mode_all = {
    .name = "test.all",
    .features = (GABI_VHOST_TRANSPORT_FEATURES & ~(1ull << GABI_F_RING_PACKED)) | NET_ALL_FEATURES,
    .protocol_features = GABI_VHOST_PROTOCOL_FEATURES,
    .max_queue_pairs = 2,
    .max_queue_size = 256,
};

/* The loopback hands chains back in the order it took them: IN_ORDER is its to offer. */
const struct gabi_vhost_mode harness_mode_packed = {
    .name = "test.packed",
    .features = GABI_VHOST_TRANSPORT_FEATURES | NET_ALL_FEATURES | (1ull << GABI_F_IN_ORDER),
    .protocol_features = GABI_VHOST_PROTOCOL_FEATURES,
    .max_queue_pairs = 2,
    .max_queue_size = 256,
};

#define TAG_STOP  UINT64_MAX
#define TAG_CALL  (UINT64_MAX - 1)
#define TAG_STATE (UINT64_MAX - 2)

/* ---- the loopback device ------------------------------------------------------------------ */

static void loop_tx(struct harness *h, unsigned index)
{
    struct gabi_vhost_vring *tx = gabi_vhost_backend_vring(h->b, index);
    struct gabi_vhost_vring *rx = gabi_vhost_backend_vring(h->b, index - 1);
    static struct gabi_vhost_elem in, out;
    static uint8_t buf[65536];
    uint64_t looped = 0, dropped = 0;

    gabi_vhost_vring_kick_drain(tx);
    if (!gabi_vhost_vring_enabled(tx))
        return; /* chains wait in the ring until it is enabled (as DPDK does) */
    for (;;) {
        int r = gabi_vhost_vring_pop(tx, &out);
        size_t n;

        if (r <= 0)
            break;
        n = gabi_vhost_elem_read(&out, 0, buf, sizeof(buf));
        if (gabi_vhost_vring_ready(rx) && gabi_vhost_vring_enabled(rx) &&
            gabi_vhost_vring_pop(rx, &in) == 1) {
            size_t w = gabi_vhost_elem_write(&in, 0, buf, n);

            gabi_vhost_vring_push(rx, &in, (uint32_t)w);
            looped++;
        } else {
            dropped++;
        }
        gabi_vhost_vring_push(tx, &out, 0);
    }
    gabi_vhost_vring_flush(tx);
    if (gabi_vhost_vring_ready(rx))
        gabi_vhost_vring_flush(rx);
    pthread_mutex_lock(&h->lock);
    h->n_looped += looped;
    h->n_dropped += dropped;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

static int on_watch(struct gabi_vhost_backend *b, int fd, enum gabi_vhost_watch kind,
                    unsigned index, void *userdata)
{
    struct harness *h = userdata;
    struct epoll_event ev = {.events = EPOLLIN};

    if (kind == GABI_VHOST_WATCH_STATE_READ || kind == GABI_VHOST_WATCH_STATE_WRITE) {
        ev.events = kind == GABI_VHOST_WATCH_STATE_READ ? EPOLLIN : EPOLLOUT;
        ev.data.u64 = TAG_STATE;
    } else {
        ev.data.u64 = kind == GABI_VHOST_WATCH_SOCKET ? 0 : 1 + (uint64_t)index;
    }
    return epoll_ctl(h->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static void on_unwatch(struct gabi_vhost_backend *b, int fd, void *userdata)
{
    struct harness *h = userdata;

    epoll_ctl(h->epfd, EPOLL_CTL_DEL, fd, NULL);
}

static void record(struct harness *h, const char *s)
{
    size_t len = strlen(h->log);

    if (len < sizeof(h->log) - 1)
        snprintf(h->log + len, sizeof(h->log) - len, "%s\n", s);
}

static void on_log(struct gabi_vhost_backend *b, enum gabi_log_level level, const char *msg,
                   void *userdata)
{
    struct harness *h = userdata;

    if (getenv("HARNESS_DEBUG"))
        fprintf(stderr, "# backend: %s\n", msg);
    pthread_mutex_lock(&h->lock);
    if (level != GABI_LOG_DEBUG)
        h->n_loud++; /* a library logs at debug level at most */
    record(h, msg);
    pthread_mutex_unlock(&h->lock);
}

static void on_connected(struct gabi_vhost_backend *b, void *userdata)
{
    struct harness *h = userdata;

    pthread_mutex_lock(&h->lock);
    h->n_connected++;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

static void on_disconnected(struct gabi_vhost_backend *b, const char *reason, void *userdata)
{
    struct harness *h = userdata;

    pthread_mutex_lock(&h->lock);
    h->n_disconnected++;
    snprintf(h->last_disconnect, sizeof(h->last_disconnect), "%s", reason);
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

static void on_broken(struct gabi_vhost_backend *b, unsigned index, const char *reason,
                      void *userdata)
{
    struct harness *h = userdata;

    pthread_mutex_lock(&h->lock);
    h->n_broken++;
    snprintf(h->broken, sizeof(h->broken), "vring %u: %s", index, reason);
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

static int on_features(struct gabi_vhost_backend *b, uint64_t features, void *userdata)
{
    struct harness *h = userdata;

    pthread_mutex_lock(&h->lock);
    h->features_seen = features;
    pthread_mutex_unlock(&h->lock);
    return 0;
}

static void on_started(struct gabi_vhost_backend *b, unsigned index, void *userdata)
{
    struct harness *h = userdata;

    pthread_mutex_lock(&h->lock);
    h->n_started++;
    pthread_mutex_unlock(&h->lock);
}

static void on_enabled(struct gabi_vhost_backend *b, unsigned index, bool enabled, void *userdata)
{
    struct harness *h = userdata;

    /* chains posted while the TX vring was disabled (or stopped) go now */
    if (enabled && index % 2 == 1 && gabi_vhost_vring_ready(gabi_vhost_backend_vring(b, index)))
        loop_tx(h, index);
}

static void on_stopped(struct gabi_vhost_backend *b, unsigned index, void *userdata)
{
    struct harness *h = userdata;

    pthread_mutex_lock(&h->lock);
    h->n_stopped++;
    pthread_mutex_unlock(&h->lock);
}

static int on_get_config(struct gabi_vhost_backend *b, uint32_t offset, void *buf, uint32_t size,
                         void *userdata)
{
    struct harness *h = userdata;

    if (offset > sizeof(h->config) || size > sizeof(h->config) - offset)
        return -EINVAL;
    pthread_mutex_lock(&h->lock);
    memcpy(buf, h->config + offset, size);
    pthread_mutex_unlock(&h->lock);
    return 0;
}

static int on_set_config(struct gabi_vhost_backend *b, uint32_t offset, const void *buf,
                         uint32_t size, uint32_t flags, void *userdata)
{
    struct harness *h = userdata;

    /* bytes 0-5 (a MAC) are read-only unless restored by a migration (flags 1) */
    if (offset > sizeof(h->config) || size > sizeof(h->config) - offset ||
        (offset < 6 && flags != 1))
        return -EPERM;
    pthread_mutex_lock(&h->lock);
    memcpy(h->config + offset, buf, size);
    pthread_mutex_unlock(&h->lock);
    return 0;
}

static void on_rarp(struct gabi_vhost_backend *b, const uint8_t mac[6], void *userdata)
{
    struct harness *h = userdata;

    pthread_mutex_lock(&h->lock);
    memcpy(h->rarp_mac, mac, 6);
    h->n_rarp++;
    pthread_mutex_unlock(&h->lock);
}

static void on_reset(struct gabi_vhost_backend *b, void *userdata)
{
    struct harness *h = userdata;

    pthread_mutex_lock(&h->lock);
    h->n_resets++;
    pthread_mutex_unlock(&h->lock);
}

void harness_frame(uint8_t *f, size_t len, uint8_t seed)
{
    /* broadcast, from 52:54:00:00:00:01, ethertype 0x88b5 (local experimental) */
    static const uint8_t head[14] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52,
                                     0x54, 0x00, 0x00, 0x00, 0x01, 0x88, 0xb5};

    memcpy(f, head, 14);
    for (size_t i = 14; i < len; i++)
        f[i] = (uint8_t)(seed + i * 13);
}

/* ---- the device's state --------------------------------------------------------------------- */

void harness_pattern(uint8_t *buf, size_t size, uint64_t seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

    for (size_t i = 0; i < size; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
}

uint32_t harness_state_crc(struct harness *h, size_t *ret_size)
{
    uint32_t crc;

    pthread_mutex_lock(&h->lock);
    crc = gabi_vhost_state_crc32c(0, h->state, h->state_size);
    if (ret_size)
        *ret_size = h->state_size;
    pthread_mutex_unlock(&h->lock);
    return crc;
}

static void bump(struct harness *h, unsigned *counter)
{
    pthread_mutex_lock(&h->lock);
    (*counter)++;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

static int st_save_begin(struct gabi_vhost_backend *b, uint64_t *ret_size,
                         struct gabi_error *reterr, void *userdata)
{
    struct harness *h = userdata;

    /* suspended: the state stays as it is until save_end, so it is handed out as memory */
    *ret_size = h->state_size;
    bump(h, &h->n_save_begin);
    return 0;
}

static int st_save_get(struct gabi_vhost_backend *b, uint64_t offset, size_t max, void *scratch,
                       size_t scratch_size, struct gabi_vhost_state_seg *ret,
                       struct gabi_error *reterr, void *userdata)
{
    struct harness *h = userdata;
    size_t n = max < (1u << 20) ? max : (1u << 20);

    if (h->scfg.fail_get_at && offset + n > h->scfg.fail_get_at) {
        if (offset >= h->scfg.fail_get_at)
            return gabi_error_set(reterr, -EIO, NULL, "test device: state unreadable");
        n = h->scfg.fail_get_at - offset;
    }
    *ret = (struct gabi_vhost_state_seg){
        .type = GABI_VHOST_STATE_SEG_MEMORY, .mem = h->state + offset, .fd = -1, .size = n};
    return 0;
}

static void st_save_end(struct gabi_vhost_backend *b, int result, void *userdata)
{
    struct harness *h = userdata;

    pthread_mutex_lock(&h->lock);
    h->last_save_result = result;
    h->n_save_end++;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

static int st_accept(struct gabi_vhost_backend *b, const struct gabi_vhost_state_info *info,
                     struct gabi_error *reterr, void *userdata)
{
    struct harness *h = userdata;
    const char *loads = h->scfg.loads ? h->scfg.loads : "1";
    size_t n = strlen(info->state_version);

    bump(h, &h->n_accept);
    for (const char *p = loads; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);

        if (len == n && memcmp(p, info->state_version, n) == 0)
            return 0;
        p += len + (end ? 1 : 0);
    }
    return gabi_error_set(reterr, -EPROTONOSUPPORT, NULL, "it loads versions %s", loads);
}

static int st_load_begin(struct gabi_vhost_backend *b, const struct gabi_vhost_state_info *info,
                         struct gabi_error *reterr, void *userdata)
{
    struct harness *h = userdata;

    h->scratch = malloc(info->payload_size ? info->payload_size : 1);
    if (!h->scratch)
        return gabi_error_set(reterr, -ENOMEM, NULL, "no memory for the scratch state");
    h->scratch_size = info->payload_size;
    return 0;
}

static int st_load_dest(struct gabi_vhost_backend *b, uint64_t offset, size_t max,
                        struct gabi_vhost_state_seg *ret, struct gabi_error *reterr, void *userdata)
{
    struct harness *h = userdata;

    *ret = (struct gabi_vhost_state_seg){
        .type = GABI_VHOST_STATE_SEG_MEMORY, .mem = h->scratch + offset, .fd = -1, .size = max};
    return 0;
}

static int st_load_commit(struct gabi_vhost_backend *b, struct gabi_error *reterr, void *userdata)
{
    struct harness *h = userdata;

    if (h->scfg.fail_commit)
        return gabi_error_set(reterr, -EIO, NULL, "test device: commit refused");
    pthread_mutex_lock(&h->lock);
    free(h->state);
    h->state = h->scratch;
    h->state_size = h->scratch_size;
    h->scratch = NULL;
    h->n_commit++;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
    return 0;
}

static void st_load_abort(struct gabi_vhost_backend *b, void *userdata)
{
    struct harness *h = userdata;

    free(h->scratch);
    h->scratch = NULL;
    bump(h, &h->n_abort);
}

static const struct gabi_vhost_state_ops harness_state_template = {
    .save_begin = st_save_begin,
    .save_get = st_save_get,
    .save_end = st_save_end,
    .load_accept = st_accept,
    .load_begin = st_load_begin,
    .load_dest = st_load_dest,
    .load_commit = st_load_commit,
    .load_abort = st_load_abort,
};

static const struct gabi_vhost_ops harness_ops = {
    .watch = on_watch,
    .unwatch = on_unwatch,
    .connected = on_connected,
    .disconnected = on_disconnected,
    .features_changed = on_features,
    .vring_started = on_started,
    .vring_stopped = on_stopped,
    .vring_enabled = on_enabled,
    .vring_broken = on_broken,
    .get_config = on_get_config,
    .set_config = on_set_config,
    .send_rarp = on_rarp,
    .reset = on_reset,
    .log = on_log,
};

/* ---- the loop ------------------------------------------------------------------------------ */

struct harness_call {
    void (*fn)(struct harness *h, void *arg);
    void *arg;
    bool done;
};

static void *loop(void *arg)
{
    struct harness *h = arg;

    for (;;) {
        struct epoll_event ev[16];
        int n = epoll_wait(h->epfd, ev, 16, -1);

        for (int i = 0; i < n; i++) {
            uint64_t tag = ev[i].data.u64, v;

            if (tag == TAG_STOP)
                return NULL;
            if (tag == TAG_CALL) {
                if (read(h->stop_fd, &v, sizeof(v)) < 0) {
                    /* consumed elsewhere */
                }
                continue;
            }
            if (tag == TAG_STATE) {
                gabi_vhost_backend_process_state(h->b);
                /* the channel may be closed now: later events of this batch may be stale */
                break;
            }
            if (tag == 0) {
                gabi_vhost_backend_dispatch(h->b);
                /* fds may have been closed: later events of this batch may be stale */
                break;
            }
            if ((tag - 1) % 2 == 1)
                loop_tx(h, (unsigned)(tag - 1));
            else
                gabi_vhost_vring_kick_drain(gabi_vhost_backend_vring(h->b, (unsigned)(tag - 1)));
        }
        pthread_mutex_lock(&h->lock);
        if (h->pending_call && !h->pending_call->done) {
            h->pending_call->fn(h, h->pending_call->arg);
            h->pending_call->done = true;
            pthread_cond_broadcast(&h->cond);
        }
        pthread_mutex_unlock(&h->lock);
    }
}

int harness_start(struct harness *h, const struct gabi_vhost_mode *mode)
{
    return harness_start_class(h, mode, GABI_CLASS_NET,
                               NET_ALL_FEATURES | (mode->features & (1ull << GABI_F_IN_ORDER)));
}

int harness_start_class(struct harness *h, const struct gabi_vhost_mode *mode,
                        enum gabi_device_class cls, uint64_t device_features)
{
    return harness_start_ex(h, mode, cls, device_features, NULL);
}

int harness_start_ex(struct harness *h, const struct gabi_vhost_mode *mode,
                     enum gabi_device_class cls, uint64_t device_features,
                     const struct harness_state_cfg *scfg)
{
    struct gabi_vhost_backend_config cfg = {
        .name = "test",
        .cls = cls,
        .mode = mode,
        .device_features = device_features,
    };
    struct gabi_error err = {0};
    struct epoll_event ev = {.events = EPOLLIN};
    int r;

    memset(h, 0, sizeof(*h));
    signal(SIGPIPE, SIG_IGN); /* a state writer whose reader went away gets EPIPE */
    if (scfg)
        h->scfg = *scfg;
    h->state_size = h->scfg.size ? h->scfg.size : 64;
    h->state = malloc(h->state_size);
    if (!h->state)
        return -ENOMEM;
    harness_pattern(h->state, h->state_size, h->scfg.seed);
    h->state_ops = harness_state_template;
    h->state_ops.device_type = h->scfg.type ? h->scfg.type : "test-dev";
    h->state_ops.version = h->scfg.version ? h->scfg.version : "1";
    h->state_ops.max_load_size = h->scfg.max_load ? h->scfg.max_load : 256u << 20;
    if (h->scfg.own_channel)
        h->state_ops.channel = gabi_vhost_state_own_pipe;
    if (mode->protocol_features & (1ull << GABI_PF_DEVICE_STATE))
        cfg.state = &h->state_ops;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->cond, NULL);
    memcpy(h->config, "\x52\x54\x00\x12\x34\x56", 6);
    snprintf(h->dir, sizeof(h->dir), "/tmp/gabi-vhost-XXXXXX");
    if (!mkdtemp(h->dir))
        return -errno;
    snprintf(h->path, sizeof(h->path), "%s/sock", h->dir);
    h->epfd = epoll_create1(EPOLL_CLOEXEC);
    h->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    ev.data.u64 = TAG_CALL;
    epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->stop_fd, &ev);
    r = gabi_vhost_backend_new(&cfg, &harness_ops, h, &h->b, &err);
    if (r < 0) {
        fprintf(stderr, "# backend_new: %s\n", err.message);
        return r;
    }
    r = gabi_vhost_backend_listen(h->b, h->path, &err);
    if (r < 0) {
        fprintf(stderr, "# listen: %s\n", err.message);
        return r;
    }
    r = pthread_create(&h->thread, NULL, loop, h);
    if (r != 0)
        return -r;
    h->running = true;
    return 0;
}

void harness_stop(struct harness *h)
{
    if (h->running) {
        struct epoll_event ev = {.events = EPOLLIN};
        int fd = eventfd(1, EFD_CLOEXEC);

        ev.data.u64 = TAG_STOP;
        epoll_ctl(h->epfd, EPOLL_CTL_ADD, fd, &ev);
        pthread_join(h->thread, NULL);
        close(fd);
        h->running = false;
    }
    h->b = gabi_vhost_backend_free(h->b);
    /* shared/STYLE.md: a library logs at debug level at most */
    CHECK_INT(h->n_loud, 0);
    free(h->state);
    free(h->scratch);
    h->state = h->scratch = NULL;
    if (h->epfd > 0)
        close(h->epfd);
    if (h->stop_fd > 0)
        close(h->stop_fd);
    h->epfd = h->stop_fd = -1;
    rmdir(h->dir);
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->lock);
}

static int wait_for(struct harness *h, const unsigned *counter, unsigned n)
{
    struct timespec deadline;
    int r = 0;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 60; /* generous: these machines are shared and CI runs sanitizers */
    pthread_mutex_lock(&h->lock);
    while (*counter < n && r == 0)
        r = pthread_cond_timedwait(&h->cond, &h->lock, &deadline);
    r = *counter >= n ? 0 : -ETIMEDOUT;
    pthread_mutex_unlock(&h->lock);
    return r;
}

int harness_wait_count(struct harness *h, const unsigned *counter, unsigned n)
{
    return wait_for(h, counter, n);
}

int harness_wait_disconnects(struct harness *h, unsigned n)
{
    return wait_for(h, &h->n_disconnected, n);
}

int harness_wait_broken(struct harness *h, unsigned n)
{
    return wait_for(h, &h->n_broken, n);
}

void harness_copy(struct harness *h, const char *what, char *buf, size_t size)
{
    pthread_mutex_lock(&h->lock);
    if (strcmp(what, "log") == 0)
        snprintf(buf, size, "%s", h->log);
    else if (strcmp(what, "disconnect") == 0)
        snprintf(buf, size, "%s", h->last_disconnect);
    else
        snprintf(buf, size, "%s", h->broken);
    pthread_mutex_unlock(&h->lock);
}

void harness_call(struct harness *h, void (*fn)(struct harness *h, void *arg), void *arg)
{
    struct harness_call c = {.fn = fn, .arg = arg};
    uint64_t one = 1;

    pthread_mutex_lock(&h->lock);
    h->pending_call = &c;
    pthread_mutex_unlock(&h->lock);
    if (write(h->stop_fd, &one, sizeof(one)) < 0)
        return;
    pthread_mutex_lock(&h->lock);
    while (!c.done)
        pthread_cond_wait(&h->cond, &h->lock);
    h->pending_call = NULL;
    pthread_mutex_unlock(&h->lock);
}

unsigned harness_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    unsigned n = 0;

    if (!d)
        return 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

struct gabi_vhost_client *harness_client(struct harness *h, uint64_t features, uint64_t pf)
{
    struct gabi_vhost_client *c = NULL;
    struct gabi_error err = {0};

    if (gabi_vhost_client_connect(h->path, 10000, &c, &err) < 0) {
        fprintf(stderr, "# connect: %s\n", err.message);
        return NULL;
    }
    if (gabi_vhost_client_negotiate(c, features, pf, NULL, NULL) < 0)
        return gabi_vhost_client_free(c);
    return c;
}

/* ---- a harness back-end in a child process --------------------------------------------------- */

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

int harness_spawn(const struct gabi_vhost_mode *mode, const struct harness_state_cfg *scfg,
                  char *ret_path, size_t path_size, pid_t *ret_pid)
{
    struct pollfd pf;
    char buf[sizeof(((struct harness *)0)->path)] = {0};
    int p[2], status;
    pid_t pid;

    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        static struct harness h;

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(p[0]);
        if (harness_start_ex(&h, mode, GABI_CLASS_NET, NET_ALL_FEATURES, scfg) < 0)
            _exit(1);
        if (write(p[1], h.path, strlen(h.path)) < 0)
            _exit(1);
        close(p[1]);
        for (;;)
            pause();
    }
    close(p[1]);
    pf = (struct pollfd){.fd = p[0], .events = POLLIN};
    if (pid < 0 || poll(&pf, 1, 20000) != 1 || read(p[0], buf, sizeof(buf) - 1) <= 0) {
        close(p[0]);
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
        }
        return -EIO;
    }
    close(p[0]);
    snprintf(ret_path, path_size, "%s", buf);
    *ret_pid = pid;
    return 0;
}

void harness_spawn_kill(pid_t pid, const char *path)
{
    char dir[128];
    char *slash;
    int status;

    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    unlink(path);
    snprintf(dir, sizeof(dir), "%s", path);
    slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        rmdir(dir);
    }
}

/* ---- guestabi-net as a child process ------------------------------------------------------ */

const char *harness_net_binary(void)
{
    return child_binary("devices/net/guestabi-net");
}

/* "@0".."@3": np's sockets; "@c": its control socket */
static const char *subst(const char *arg, void *userdata)
{
    struct netproc *np = userdata;

    if (!np || arg[0] != '@')
        return arg;
    if (arg[1] == 'c')
        return np->ctl;
    if (arg[1] >= '0' && arg[1] <= '3' && arg[2] == '\0')
        return np->sock[arg[1] - '0'];
    return arg;
}

static void netproc_clean(struct netproc *np)
{
    for (unsigned i = 0; i < 4; i++)
        unlink(np->sock[i]);
    unlink(np->ctl);
    rmdir(np->dir);
}

int netproc_start(struct netproc *np, const char *const *args)
{
    memset(np, 0, sizeof(*np));
    snprintf(np->dir, sizeof(np->dir), "/tmp/gabi-net-XXXXXX");
    if (!mkdtemp(np->dir))
        return -errno;
    for (unsigned i = 0; i < 4; i++)
        snprintf(np->sock[i], sizeof(np->sock[i]), "%s/%u", np->dir, i);
    snprintf(np->ctl, sizeof(np->ctl), "%s/ctl", np->dir);
    return child_start(child_argv(harness_net_binary(), args, subst, np, CHILD_READY_FD), NULL,
                       &np->pid);
}

int netproc_stop(struct netproc *np)
{
    int r = child_stop(&np->pid, SIGTERM);

    if (r != -ECHILD)
        netproc_clean(np);
    return r;
}

void netproc_kill(struct netproc *np)
{
    if (child_stop(&np->pid, SIGKILL) != -ECHILD)
        netproc_clean(np);
}

int netproc_control(struct netproc *np, const char *request, char *buf, size_t size)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t got = 0;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), r = -EIO;

    if (strlen(np->ctl) >= sizeof(sa.sun_path))
        goto out;
    memcpy(sa.sun_path, np->ctl, strlen(np->ctl));
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        goto out;
    {
        /* One send. A refused request may be answered (and the connection closed) before all
         * of it is written: a failed send is not the end, the reply may be waiting. */
        size_t len = strlen(request);
        char *line = malloc(len + 1);

        if (!line)
            goto out;
        memcpy(line, request, len);
        line[len] = '\n';
        (void)!send(fd, line, len + 1, MSG_NOSIGNAL);
        free(line);
    }
    while (got < size - 1) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        ssize_t n;

        if (poll(&pf, 1, 20000) != 1)
            break;
        n = read(fd, buf + got, size - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        if (buf[got - 1] == '\n') {
            buf[got - 1] = '\0';
            r = (int)got - 1;
            break;
        }
    }
out:
    if (fd >= 0)
        close(fd);
    return r;
}

int netproc_run(const char *const *args, char *out, size_t size)
{
    return child_run(child_argv(harness_net_binary(), args, NULL, NULL, -1), out, size);
}

/* ---- a guest for guestabi-net ------------------------------------------------------------- */

int tguest_connect(struct tguest *g, const char *path, uint64_t features, unsigned n_pairs,
                   unsigned qflags)
{
    struct gabi_error err = {0};
    uint64_t f;
    int r;

    memset(g, 0, sizeof(*g));
    r = gabi_vhost_client_connect(path, 10000, &g->c, &err);
    if (r < 0) {
        fprintf(stderr, "# connect %s: %s\n", path, err.message);
        return r;
    }
    /* a driver that does not keep used_event must not negotiate EVENT_IDX; one with split
     * rings not RING_PACKED; one that frees chains one used entry each not IN_ORDER (a used
     * entry there may complete a whole batch) */
    if (!(qflags & GABI_VHOST_GUESTQ_EVENT_IDX))
        features &= ~(1ull << GABI_F_EVENT_IDX);
    if (!(qflags & GABI_VHOST_GUESTQ_PACKED))
        features &= ~(1ull << GABI_F_RING_PACKED);
    if (!(qflags & GABI_VHOST_GUESTQ_IN_ORDER))
        features &= ~(1ull << GABI_F_IN_ORDER);
    r = gabi_vhost_client_negotiate(g->c, features, ~0ull, &f, NULL);
    if (r < 0)
        return r;
    g->features = f;
    g->hdr_len = (f & ((1ull << GABI_F_VERSION_1) | (1ull << GABI_NET_F_MRG_RXBUF))) ? 12 : 10;
    g->n_pairs = n_pairs;
    r = gabi_vhost_guestmem_new(16u << 20, 2, &g->gm, &err);
    if (r < 0)
        return r;
    r = gabi_vhost_client_share_guestmem(g->c, g->gm);
    if (r < 0)
        return r;
    g->qflags = qflags;
    if (n_pairs == 0)
        return 0;
    r = tguest_start(g, n_pairs, NULL);
    if (r >= 0 && (gabi_vhost_client_protocol_features(g->c) & (1ull << GABI_PF_STATUS)))
        r = gabi_vhost_client_set_status(g->c, 0xf);
    return r;
}

int tguest_start(struct tguest *g, unsigned n_pairs, const uint32_t *bases)
{
    int r;

    if (n_pairs > 4)
        return -EINVAL;
    g->n_pairs = n_pairs;
    for (unsigned i = 0; i < 2 * n_pairs; i++) {
        if (!g->q[i] &&
            ((r = gabi_vhost_guestq_new(g->gm, 256, g->qflags, &g->q[i])) < 0 ||
             (r = gabi_vhost_guestmem_alloc(g->gm, 256 * TGUEST_SLOT, 4096, &g->slot_gpa[i])) < 0))
            return r;
        r = gabi_vhost_client_start_vring(
            g->c, i, g->q[i], bases ? bases[i] : gabi_vhost_guestq_base(g->q[i]), false);
        if (r < 0)
            return r;
    }
    return 0;
}

int tguest_stop(struct tguest *g, uint32_t *ret_bases)
{
    for (unsigned i = 0; i < 2 * g->n_pairs; i++) {
        uint32_t base;
        int r = gabi_vhost_client_stop_vring(g->c, i, &base);

        if (r < 0)
            return r;
        if (ret_bases)
            ret_bases[i] = base;
    }
    return 0;
}

void tguest_free(struct tguest *g)
{
    g->c = gabi_vhost_client_free(g->c);
    for (unsigned i = 0; i < 8; i++)
        g->q[i] = gabi_vhost_guestq_free(g->q[i]);
    g->gm = gabi_vhost_guestmem_free(g->gm);
}

static uint64_t slot(struct tguest *g, unsigned v, unsigned head)
{
    return g->slot_gpa[v] + (uint64_t)head * TGUEST_SLOT;
}

int tguest_post_rx(struct tguest *g, unsigned pair, unsigned n, uint32_t size)
{
    unsigned v = 2 * pair;

    for (unsigned i = 0; i < n; i++) {
        int head = gabi_vhost_guestq_next_head(g->q[v]);
        struct gabi_vhost_gbuf b = {slot(g, v, (unsigned)head), size};

        if (head < 0 || size > TGUEST_SLOT ||
            gabi_vhost_guestq_add(g->q[v], &b, 0, 1, false) != head)
            return -ENOSPC;
        g->slot_len[v][head] = size;
    }
    gabi_vhost_guestq_kick(g->q[v]);
    return 0;
}

void tguest_fill_rx(struct tguest *g, unsigned pair, uint8_t c)
{
    memset(gabi_vhost_guestmem_ptr(g->gm, g->slot_gpa[2 * pair], 256 * TGUEST_SLOT), c,
           256 * TGUEST_SLOT);
}

int tguest_send(struct tguest *g, unsigned pair, const struct gabi_virtio_net_hdr *hdr,
                const void *frame, size_t len, bool split, bool indirect)
{
    unsigned v = 2 * pair + 1;
    struct gabi_virtio_net_hdr zero = {0};
    struct gabi_vhost_gbuf b[2];
    int head;
    uint8_t *p;

    if (g->hdr_len + len > TGUEST_SLOT)
        return -EMSGSIZE;
    tguest_reap_tx(g, pair);
    head = gabi_vhost_guestq_next_head(g->q[v]);
    if (head < 0)
        return -ENOSPC;
    p = gabi_vhost_guestmem_ptr(g->gm, slot(g, v, (unsigned)head), TGUEST_SLOT);
    memcpy(p, hdr ? hdr : &zero, g->hdr_len);
    memcpy(p + g->hdr_len, frame, len);
    b[0] = (struct gabi_vhost_gbuf){slot(g, v, (unsigned)head), g->hdr_len};
    b[1] = (struct gabi_vhost_gbuf){slot(g, v, (unsigned)head) + g->hdr_len, (uint32_t)len};
    if (!split)
        b[0].len = (uint32_t)(g->hdr_len + len);
    if (gabi_vhost_guestq_add(g->q[v], b, split ? 2 : 1, 0, indirect) != head)
        return -ENOSPC;
    gabi_vhost_guestq_kick(g->q[v]);
    return 0;
}

unsigned tguest_reap_tx(struct tguest *g, unsigned pair)
{
    uint32_t id, len;
    unsigned n = 0;

    while (gabi_vhost_guestq_get_used(g->q[2 * pair + 1], &id, &len) == 1)
        n++;
    return n;
}

static int reap_one(struct tguest *g, unsigned v, uint32_t *id, uint32_t *len, int timeout_ms)
{
    for (;;) {
        int r = gabi_vhost_guestq_get_used(g->q[v], id, len);

        if (r != 0)
            return r;
        r = gabi_vhost_guestq_wait(g->q[v], timeout_ms);
        if (r <= 0)
            return r < 0 ? r : -ETIMEDOUT;
    }
}

int tguest_recv(struct tguest *g, unsigned pair, struct gabi_virtio_net_hdr *hdr, void *frame,
                size_t max, int timeout_ms)
{
    unsigned v = 2 * pair, n_bufs = 1;
    size_t got = 0;
    uint32_t id, len;
    int r;

    memset(hdr, 0, sizeof(*hdr));
    for (unsigned k = 0; k < n_bufs; k++) {
        const uint8_t *p;
        size_t skip = 0;

        r = reap_one(g, v, &id, &len, timeout_ms);
        if (r < 0)
            return r;
        if (id >= 256 || len > g->slot_len[v][id])
            return -EBADMSG;
        p = gabi_vhost_guestmem_ptr(g->gm, g->slot_gpa[v] + (uint64_t)id * TGUEST_SLOT, len);
        if (k == 0) {
            if (len < g->hdr_len)
                return -EBADMSG;
            memcpy(hdr, p, g->hdr_len);
            skip = g->hdr_len;
            if (g->hdr_len == 12)
                n_bufs = hdr->num_buffers;
            if (n_bufs == 0 || n_bufs > 64)
                return -EBADMSG;
        }
        if (got + len - skip > max)
            return -EMSGSIZE;
        memcpy((uint8_t *)frame + got, p + skip, len - skip);
        got += len - skip;
    }
    return (int)got;
}
