/* SPDX-License-Identifier: MIT */
/*
 * The device around the data path: lib/vhost's callbacks, the config space, and one epoll
 * loop over the vhost-user socket and the vrings' kick fds.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "blk.h"
#include "devmain.h"
#include <guestabi/util.h>
#include "devctl.h"

/* ---- epoll -------------------------------------------------------------------------------- */

int blk_watch(struct blk *k, int fd, struct blk_source *src, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = src};

    return epoll_ctl(k->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

void blk_unwatch(struct blk *k, int fd)
{
    epoll_ctl(k->epfd, EPOLL_CTL_DEL, fd, NULL);
}

/* ---- lib/vhost callbacks ------------------------------------------------------------------ */

static int on_watch(struct gabi_vhost_backend *b, int fd, enum gabi_vhost_watch kind,
                    unsigned index, void *userdata)
{
    struct blk *k = userdata;

    switch (kind) {
    case GABI_VHOST_WATCH_SOCKET:
        return blk_watch(k, fd, &k->sock_src, EPOLLIN);
    case GABI_VHOST_WATCH_KICK:
        if (index >= gabi_vhost_backend_n_vrings(b))
            return -EINVAL;
        return blk_watch(k, fd, &k->vring_src[index], EPOLLIN);
    case GABI_VHOST_WATCH_STATE_READ:
        return blk_watch(k, fd, &k->state_src, EPOLLIN);
    case GABI_VHOST_WATCH_STATE_WRITE:
        return blk_watch(k, fd, &k->state_src, EPOLLOUT);
    }
    return -EINVAL;
}

static void on_unwatch(struct gabi_vhost_backend *b, int fd, void *userdata)
{
    blk_unwatch(userdata, fd);
}

static void on_log(struct gabi_vhost_backend *b, enum gabi_log_level level, const char *msg,
                   void *userdata)
{
    gabi_log(level, "vhost", "%s", msg);
}

static void schedule(struct blk *k, unsigned index)
{
    k->pending[index] = true;
    k->any_pending = true;
}

static int on_features(struct gabi_vhost_backend *b, uint64_t f, void *userdata)
{
    struct blk *k = userdata;

    k->features = f;
    k->writeback = f & (1ull << GABI_BLK_F_FLUSH);
    return 0;
}

static void on_started(struct gabi_vhost_backend *b, unsigned index, void *userdata)
{
    schedule(userdata, index); /* chains may be waiting (a restart at a saved base) */
}

static void on_stopped(struct gabi_vhost_backend *b, unsigned index, void *userdata)
{
    struct blk *k = userdata;

    k->pending[index] = false;
}

static void on_enabled(struct gabi_vhost_backend *b, unsigned index, bool enabled, void *userdata)
{
    if (enabled)
        schedule(userdata, index); /* kicks that came while it was disabled */
}

static int on_get_config(struct gabi_vhost_backend *b, uint32_t offset, void *buf, uint32_t size,
                         void *userdata)
{
    struct blk *k = userdata;

    if (offset > sizeof(k->config) || size > sizeof(k->config) - offset)
        return -EINVAL;
    memcpy(buf, k->config + offset, size);
    return 0;
}

static void on_disconnected(struct gabi_vhost_backend *b, const char *reason, void *userdata)
{
    struct blk *k = userdata;
    const struct blk_stats *s = &k->stats;

    k->features = 0;
    k->writeback = false;
    gabi_log(GABI_LOG_INFO, k->socket,
             "disconnected: %s (reads %" PRIu64 " writes %" PRIu64 " flushes %" PRIu64
             " discards %" PRIu64 " write-zeroes %" PRIu64 " errors %" PRIu64 "/%" PRIu64 ")",
             reason, s->reads, s->writes, s->flushes, s->discards, s->write_zeroes, s->ioerr,
             s->unsupp);
    /* what the guest wrote stays on the disk for its next connection */
    blk_disk_flush(&k->disk);
}

/* The library logs at debug level only: what an operator must see, the device says. */
static void on_broken(struct gabi_vhost_backend *b, unsigned index, const char *reason,
                      void *userdata)
{
    struct blk *k = userdata;

    gabi_log(GABI_LOG_ERR, k->socket, "vring %u broken: %s", index, reason);
}

static void on_state_finished(struct gabi_vhost_backend *b, enum gabi_vhost_state_direction dir,
                              enum gabi_vhost_state_outcome outcome, const struct gabi_error *err,
                              void *userdata)
{
    const struct blk *k = userdata;

    devmain_log_state_finished(k->socket, dir, outcome, err);
}

static const struct gabi_vhost_ops blk_ops = {
    .watch = on_watch,
    .unwatch = on_unwatch,
    .disconnected = on_disconnected,
    .features_changed = on_features,
    .vring_started = on_started,
    .vring_stopped = on_stopped,
    .vring_enabled = on_enabled,
    .vring_broken = on_broken,
    .state_finished = on_state_finished,
    .get_config = on_get_config,
    .log = on_log,
};

/* ---- config space ------------------------------------------------------------------------- */

void blk_config_fill(struct blk *k)
{
    struct blk_config c = {0};
    uint64_t f = k->mode.features;

    c.capacity = k->disk.size >> BLK_SECTOR_SHIFT;
    if (f & (1ull << GABI_BLK_F_SEG_MAX))
        c.seg_max = BLK_SEG_MAX;
    if (f & (1ull << GABI_BLK_F_BLK_SIZE))
        c.blk_size = BLK_BLOCK_SIZE;
    if (f & (1ull << GABI_BLK_F_MQ))
        c.num_queues = (uint16_t)k->mode.max_queue_pairs;
    if (f & (1ull << GABI_BLK_F_DISCARD)) {
        c.max_discard_sectors = BLK_MAX_DISCARD_SECT;
        c.max_discard_seg = BLK_MAX_DISCARD_SEG;
        c.discard_sector_alignment = BLK_DISCARD_ALIGNMENT;
    }
    if (f & (1ull << GABI_BLK_F_WRITE_ZEROES)) {
        c.max_write_zeroes_sectors = BLK_MAX_DISCARD_SECT;
        c.max_write_zeroes_seg = BLK_MAX_DISCARD_SEG;
        c.write_zeroes_may_unmap = 1;
    }
    memset(k->config, 0, sizeof(k->config));
    memcpy(k->config, &c, sizeof(c));
}

/* ---- set-up and the loop ------------------------------------------------------------------ */

int blk_init(struct blk *k, struct blk_disk *disk, const struct blk_options *opts,
             struct gabi_error *reterr)
{
    struct gabi_vhost_backend_config cfg = {
        .name = opts->socket,
        .cls = GABI_CLASS_BLK,
        .mode = opts->mode,
        .device_features = BLK_DEVICE_FEATURES | (disk->readonly ? 1ull << GABI_BLK_F_RO : 0),
    };
    unsigned nv;
    int r;

    memset(k, 0, sizeof(*k));
    k->epfd = k->wake_fd = -1;
    k->scratch.fd = -1;
    k->disk = *disk;
    disk->fd = -1;
    disk->mem = NULL;
    disk->path = NULL;
    k->mode = *opts->mode;
    k->sock_src = (struct blk_source){BLK_SRC_SOCKET, 0};
    if (opts->serial)
        memcpy(k->serial, opts->serial, MIN(strlen(opts->serial), sizeof(k->serial)));
    k->wake_src = (struct blk_source){BLK_SRC_WAKE, 0};
    k->state_src = (struct blk_source){BLK_SRC_STATE, 0};
    if (opts->state_version) {
        gabi_strlcpy(k->state_version, opts->state_version, sizeof(k->state_version));
        k->state_accept = opts->state_accept;
        k->state_userdata = opts->state_userdata;
        blk_state_ops_init(k, k->state_version);
        cfg.state = &k->state_ops;
    }
    k->epfd = epoll_create1(EPOLL_CLOEXEC);
    k->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    k->socket = strdup(opts->socket);
    k->elems = calloc(BLK_BURST, sizeof(*k->elems));
    if (k->epfd < 0 || k->wake_fd < 0 || !k->socket || !k->elems ||
        blk_watch(k, k->wake_fd, &k->wake_src, EPOLLIN) < 0) {
        gabi_error_set(reterr, -ENOMEM, "", "set-up: %s", strerror(errno));
        return -ENOMEM;
    }
    blk_config_fill(k);
    r = gabi_vhost_backend_new(&cfg, &blk_ops, k, &k->b, reterr);
    if (r < 0)
        return r;
    nv = gabi_vhost_backend_n_vrings(k->b);
    k->vring_src = calloc(nv, sizeof(*k->vring_src));
    k->pending = calloc(nv, sizeof(*k->pending));
    if (!k->vring_src || !k->pending) {
        gabi_error_set(reterr, -ENOMEM, "", "out of memory");
        return -ENOMEM;
    }
    for (unsigned i = 0; i < nv; i++)
        k->vring_src[i] = (struct blk_source){BLK_SRC_KICK, i};
    return gabi_vhost_backend_listen(k->b, opts->socket, reterr);
}

void blk_fini(struct blk *k)
{
    k->control = devctl_close(k->control);
    k->b = gabi_vhost_backend_free(k->b);
    blk_state_fini(k);
    blk_disk_flush(&k->disk);
    blk_disk_close(&k->disk);
    free(k->vring_src);
    free(k->pending);
    free(k->elems);
    free(k->socket);
    k->vring_src = NULL;
    k->pending = NULL;
    k->elems = NULL;
    k->socket = NULL;
    close_and_clear(&k->wake_fd);
    close_and_clear(&k->epfd);
}

void blk_wake(struct blk *k)
{
    uint64_t one = 1;

    if (write(k->wake_fd, &one, sizeof(one)) < 0) {
        /* the counter is full: the loop is woken anyway */
    }
}

static void on_event(struct blk *k, struct blk_source *src)
{
    switch (src->kind) {
    case BLK_SRC_SOCKET:
        gabi_vhost_backend_dispatch(k->b);
        break;
    case BLK_SRC_KICK: {
        struct gabi_vhost_vring *vr = gabi_vhost_backend_vring(k->b, src->index);

        if (vr) {
            gabi_vhost_vring_kick_drain(vr);
            blk_queue_process(k, src->index);
        }
        break;
    }
    case BLK_SRC_STATE:
        gabi_vhost_backend_process_state(k->b);
        break;
    case BLK_SRC_SIGNAL:
        k->stop = true;
        break;
    case BLK_SRC_CONTROL:
        devctl_process(k->control);
        break;
    case BLK_SRC_WAKE: {
        uint64_t v;

        if (read(k->wake_fd, &v, sizeof(v)) < 0) {
            /* consumed already */
        }
        if (k->on_wake)
            k->on_wake(k, k->wake_userdata);
        break;
    }
    }
}

int blk_run_once(struct blk *k, int timeout_ms)
{
    struct epoll_event ev[32];
    int n = epoll_wait(k->epfd, ev, 32, k->any_pending ? 0 : timeout_ms);

    if (n < 0) {
        if (errno == EINTR)
            return 0;
        return -errno;
    }
    for (int i = 0; i < n; i++)
        on_event(k, ev[i].data.ptr);
    if (k->any_pending) {
        k->any_pending = false;
        for (unsigned i = 0; i < gabi_vhost_backend_n_vrings(k->b); i++)
            if (k->pending[i])
                blk_queue_process(k, i);
    }
    return n;
}
