/* SPDX-License-Identifier: MIT */
/* guestabi-blk under test: see blk_test.h. */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "blk_test.h"
#include "child.h"
#include <guestabi/util.h>

#define TRANSPORT_V1                                                                               \
    ((1ull << GABI_F_VERSION_1) | (1ull << GABI_F_LOG_ALL) | (1ull << GABI_F_PROTOCOL_FEATURES))

const struct gabi_vhost_mode tb_mode_mq = {
    .name = "test.guestabi-blk.mq",
    .features = (1ull << GABI_BLK_F_SEG_MAX) | (1ull << GABI_BLK_F_BLK_SIZE) |
                (1ull << GABI_BLK_F_FLUSH) | (1ull << GABI_BLK_F_MQ) |
                (1ull << GABI_BLK_F_DISCARD) | (1ull << GABI_BLK_F_WRITE_ZEROES) |
                (1ull << GABI_F_INDIRECT_DESC) | (1ull << GABI_F_EVENT_IDX) | TRANSPORT_V1,
    .protocol_features = (1ull << GABI_PF_MQ) | (1ull << GABI_PF_LOG_SHMFD) |
                         (1ull << GABI_PF_REPLY_ACK) | (1ull << GABI_PF_CONFIG) |
                         (1ull << GABI_PF_RESET_DEVICE) | (1ull << GABI_PF_CONFIGURE_MEM_SLOTS) |
                         (1ull << GABI_PF_STATUS),
    .max_queue_pairs = 4,
    .max_queue_size = 256,
};

const struct gabi_vhost_mode tb_mode_ro = {
    .name = "test.guestabi-blk.ro",
    .features = (1ull << GABI_BLK_F_SEG_MAX) | (1ull << GABI_BLK_F_BLK_SIZE) |
                (1ull << GABI_BLK_F_FLUSH) | (1ull << GABI_BLK_F_RO) | TRANSPORT_V1,
    .protocol_features =
        (1ull << GABI_PF_MQ) | (1ull << GABI_PF_REPLY_ACK) | (1ull << GABI_PF_CONFIG),
    .max_queue_pairs = 1,
    .max_queue_size = 128,
};

/* ---- the device in this process ----------------------------------------------------------- */

static void run_call(struct blk *k, void *userdata)
{
    struct tb_dev *d = userdata;

    pthread_mutex_lock(&d->lock);
    if (d->call_fn && !d->call_done) {
        d->call_fn(k, d->call_arg);
        d->call_done = true;
        pthread_cond_broadcast(&d->cond);
    }
    pthread_mutex_unlock(&d->lock);
}

/* The catalog rule's part for tests: the one version spec->loads names. */
static int accept_one(const char *version, char *why, size_t why_size, void *userdata)
{
    const char *loads = userdata;

    if (strcmp(version, loads) == 0)
        return 0;
    snprintf(why, why_size, "this test's device loads only %s", loads);
    return -EPROTONOSUPPORT;
}

static void *loop(void *arg)
{
    struct tb_dev *d = arg;

    while (!d->k.stop)
        if (blk_run_once(&d->k, -1) < 0)
            break;
    return NULL;
}

int tb_dev_start(struct tb_dev *d, const struct gabi_vhost_mode *mode,
                 const struct tb_disk_spec *spec)
{
    struct blk_options opts = {.mode = mode,
                               .serial = spec->serial,
                               .state_version = "1",
                               .state_accept = accept_one,
                               .state_userdata = (void *)(spec->loads ? spec->loads : "1")};
    struct gabi_error err = {0};
    struct blk_disk disk;
    char why[256];
    int r;

    memset(d, 0, sizeof(*d));
    d->k.epfd = d->k.wake_fd = -1;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
    snprintf(d->dir, sizeof(d->dir), "/tmp/gabi-blk-XXXXXX");
    if (!mkdtemp(d->dir))
        return -errno;
    snprintf(d->sock, sizeof(d->sock), "%s/sock", d->dir);
    if (spec->ram) {
        r = blk_disk_open_ram(&disk, spec->size, why, sizeof(why));
    } else {
        if (spec->use_file)
            snprintf(d->disk, sizeof(d->disk), "%s", spec->use_file);
        else
            snprintf(d->disk, sizeof(d->disk), "%s/disk.img", d->dir);
        r = blk_disk_open_file(&disk, d->disk, spec->size, false, why, sizeof(why));
        if (r == 0 && spec->readonly) {
            blk_disk_close(&disk);
            r = blk_disk_open_file(&disk, d->disk, 0, true, why, sizeof(why));
        }
    }
    if (r < 0) {
        fprintf(stderr, "# disk: %s\n", why);
        return r;
    }
    opts.socket = d->sock;
    r = blk_init(&d->k, &disk, &opts, &err);
    if (r < 0) {
        fprintf(stderr, "# blk_init: %s\n", err.message);
        blk_fini(&d->k);
        return r;
    }
    d->k.on_wake = run_call;
    d->k.wake_userdata = d;
    r = pthread_create(&d->thread, NULL, loop, d);
    if (r != 0)
        return -r;
    d->running = true;
    return 0;
}

static void set_stop(struct blk *k, void *arg)
{
    k->stop = true;
}

void tb_dev_stop(struct tb_dev *d)
{
    if (d->running) {
        tb_dev_call(d, set_stop, NULL);
        pthread_join(d->thread, NULL);
        d->running = false;
    }
    blk_fini(&d->k);
    if (d->disk[0] && strncmp(d->disk, d->dir, strlen(d->dir)) == 0)
        unlink(d->disk);
    unlink(d->sock);
    rmdir(d->dir);
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->lock);
}

void tb_dev_call(struct tb_dev *d, void (*fn)(struct blk *k, void *arg), void *arg)
{
    pthread_mutex_lock(&d->lock);
    d->call_fn = fn;
    d->call_arg = arg;
    d->call_done = false;
    pthread_mutex_unlock(&d->lock);
    blk_wake(&d->k);
    pthread_mutex_lock(&d->lock);
    while (!d->call_done)
        pthread_cond_wait(&d->cond, &d->lock);
    d->call_fn = NULL;
    pthread_mutex_unlock(&d->lock);
}

struct copy_arg {
    uint64_t off;
    void *buf;
    size_t len;
    bool to_disk;
};

static void ram_copy(struct blk *k, void *arg)
{
    struct copy_arg *a = arg;

    if (a->to_disk)
        memcpy(k->disk.mem + a->off, a->buf, a->len);
    else
        memcpy(a->buf, k->disk.mem + a->off, a->len);
}

static int file_copy(struct tb_dev *d, struct copy_arg *a)
{
    int fd = open(d->disk, (a->to_disk ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -errno;
    n = a->to_disk ? pwrite(fd, a->buf, a->len, (off_t)a->off)
                   : pread(fd, a->buf, a->len, (off_t)a->off);
    close(fd);
    return n == (ssize_t)a->len ? 0 : -EIO;
}

int tb_dev_peek(struct tb_dev *d, uint64_t off, void *buf, size_t len)
{
    struct copy_arg a = {off, buf, len, false};

    if (d->disk[0])
        return file_copy(d, &a);
    tb_dev_call(d, ram_copy, &a);
    return 0;
}

int tb_dev_poke(struct tb_dev *d, uint64_t off, const void *buf, size_t len)
{
    struct copy_arg a = {off, (void *)buf, len, true};

    if (d->disk[0])
        return file_copy(d, &a);
    tb_dev_call(d, ram_copy, &a);
    return 0;
}

static void get_stats(struct blk *k, void *arg)
{
    *(struct blk_stats *)arg = k->stats;
}

struct blk_stats tb_dev_stats(struct tb_dev *d)
{
    struct blk_stats s;

    tb_dev_call(d, get_stats, &s);
    return s;
}

uint64_t tb_dev_file_blocks(struct tb_dev *d)
{
    struct stat st;

    return stat(d->disk, &st) == 0 ? (uint64_t)st.st_blocks : 0;
}

/* ---- the program as a child process --------------------------------------------------------- */

const char *tb_blk_binary(void)
{
    return child_binary("devices/blk/guestabi-blk");
}

int tb_proc_init(struct tb_proc *p)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->dir, sizeof(p->dir), "/tmp/gabi-blkp-XXXXXX");
    if (!mkdtemp(p->dir))
        return -errno;
    snprintf(p->sock, sizeof(p->sock), "%s/sock", p->dir);
    snprintf(p->disk, sizeof(p->disk), "%s/disk.img", p->dir);
    return 0;
}

/* "@S" and "@D": p's socket and disk */
static const char *subst(const char *arg, void *userdata)
{
    struct tb_proc *p = userdata;

    if (p && strcmp(arg, "@S") == 0)
        return p->sock;
    if (p && strcmp(arg, "@D") == 0)
        return p->disk;
    return arg;
}

void tb_proc_log(struct tb_proc *p, char *out, size_t size)
{
    char path[160];
    int fd;
    ssize_t n;

    if (!out || size == 0)
        return;
    out[0] = '\0';
    snprintf(path, sizeof(path), "%s/log", p->dir);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    n = read(fd, out, size - 1);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
}

int tb_proc_start(struct tb_proc *p, const char *const *args, char *out, size_t size)
{
    char logpath[160];
    int r;

    snprintf(logpath, sizeof(logpath), "%s/log", p->dir);
    r = child_start(child_argv(tb_blk_binary(), args, subst, p, CHILD_READY_FD), logpath, &p->pid);
    tb_proc_log(p, out, size);
    return r < 0 ? -EIO : 0;
}

int tb_proc_stop(struct tb_proc *p)
{
    return child_stop(&p->pid, SIGTERM);
}

void tb_proc_cleanup(struct tb_proc *p)
{
    char path[160];

    snprintf(path, sizeof(path), "%s/log", p->dir);
    unlink(path);
    unlink(p->sock);
    unlink(p->disk);
    rmdir(p->dir);
}

int tb_proc_run(struct tb_proc *p, const char *const *args, char *out, size_t size)
{
    return child_run(child_argv(tb_blk_binary(), args, subst, p, -1), out, size);
}

/* ---- the guest driver --------------------------------------------------------------------- */

int tb_connect(struct tb_guest *g, const char *path, uint64_t features, unsigned n_queues,
               uint16_t qsize, unsigned qflags)
{
    struct gabi_error err = {0};
    int r;

    memset(g, 0, sizeof(*g));
    for (unsigned i = 0; i < TB_MAX_QUEUES; i++)
        g->err_fd[i] = -1;
    if (n_queues == 0 || n_queues > TB_MAX_QUEUES)
        return -EINVAL;
    r = gabi_vhost_client_connect(path, 10000, &g->c, &err);
    if (r < 0) {
        fprintf(stderr, "# connect %s: %s\n", path, err.message);
        return r;
    }
    /* a driver that does not keep used_event must not negotiate EVENT_IDX */
    if (!(qflags & GABI_VHOST_GUESTQ_EVENT_IDX))
        features &= ~(1ull << GABI_F_EVENT_IDX);
    r = gabi_vhost_client_negotiate(g->c, features, ~0ull, &g->features, NULL);
    if (r < 0)
        return r;
    g->n_queues = n_queues;
    g->qsize = qsize;
    r = gabi_vhost_guestmem_new(TB_MEM_SIZE, 2, &g->gm, &err);
    if (r < 0)
        return r;
    r = gabi_vhost_client_share_guestmem(g->c, g->gm);
    if (r < 0)
        return r;
    for (unsigned i = 0; i < n_queues; i++) {
        g->err_fd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if ((r = gabi_vhost_guestq_new(g->gm, qsize, qflags, &g->q[i])) < 0 ||
            (r = gabi_vhost_client_set_vring_err(g->c, i, g->err_fd[i])) < 0 ||
            (r = gabi_vhost_client_start_vring(g->c, i, g->q[i], 0, false)) < 0)
            return r;
    }
    if ((r = gabi_vhost_guestmem_alloc(g->gm, (uint64_t)TB_MAX_QUEUES * qsize * 32, 4096,
                                       &g->meta)) < 0 ||
        (r = gabi_vhost_guestmem_alloc(g->gm, TB_DATA_SIZE, 4096, &g->data)) < 0 ||
        (r = gabi_vhost_guestmem_alloc(g->gm, 1u << 20, 4096, &g->spare)) < 0)
        return r;
    if (gabi_vhost_client_protocol_features(g->c) & (1ull << GABI_PF_STATUS))
        r = gabi_vhost_client_set_status(g->c, 0xf);
    return r;
}

void tb_disconnect(struct tb_guest *g)
{
    g->c = gabi_vhost_client_free(g->c);
    for (unsigned i = 0; i < TB_MAX_QUEUES; i++) {
        g->q[i] = gabi_vhost_guestq_free(g->q[i]);
        close_and_clear(&g->err_fd[i]);
    }
    g->gm = gabi_vhost_guestmem_free(g->gm);
}

int tb_suspend(struct tb_guest *g)
{
    for (unsigned i = 0; i < g->n_queues; i++) {
        int r = gabi_vhost_client_stop_vring(g->c, i, &g->base[i]);

        if (r < 0)
            return r;
    }
    return 0;
}

int tb_resume(struct tb_guest *g)
{
    for (unsigned i = 0; i < g->n_queues; i++) {
        int r = gabi_vhost_client_start_vring(g->c, i, g->q[i], g->base[i], false);

        if (r < 0)
            return r;
    }
    return 0;
}

void *tb_ptr(struct tb_guest *g, uint64_t gpa, uint64_t len)
{
    return gabi_vhost_guestmem_ptr(g->gm, gpa, len);
}

static bool is_write(uint32_t type)
{
    return type == VIRTIO_BLK_T_OUT || type == VIRTIO_BLK_T_DISCARD ||
           type == VIRTIO_BLK_T_WRITE_ZEROES;
}

static uint64_t slot(struct tb_guest *g, unsigned q, unsigned head)
{
    return g->meta + ((uint64_t)q * g->qsize + head) * 32;
}

/* Wait for one used entry of queue q until deadline_ms (monotonic). */
static int reap(struct tb_guest *g, unsigned q, uint32_t *id, uint32_t *len, int timeout_ms)
{
    struct timespec t0, now;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int r = gabi_vhost_guestq_get_used(g->q[q], id, len);

        if (r != 0)
            return r;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 > timeout_ms)
            return -ETIMEDOUT;
        gabi_vhost_guestq_wait(g->q[q], 20);
    }
}

int tb_submit(struct tb_guest *g, unsigned q, struct tb_req *reqs, unsigned n)
{
    struct gabi_vhost_gbuf bufs[300];

    for (unsigned i = 0; i < n; i++) {
        struct tb_req *rq = &reqs[i];
        int head = gabi_vhost_guestq_next_head(g->q[q]);
        unsigned nb = 0, nseg = rq->len ? MAX(rq->nseg, 1u) : 0, n_out;
        struct blk_outhdr hdr = {rq->type, 0, rq->sector};
        uint64_t s;

        if (head < 0 || nseg + 2 > ARRAY_SIZE(bufs))
            return -ENOSPC;
        s = slot(g, q, (unsigned)head);
        memcpy(tb_ptr(g, s, 32), &hdr, sizeof(hdr));
        *(uint8_t *)tb_ptr(g, s + 16, 1) = 0xff;
        bufs[nb++] = (struct gabi_vhost_gbuf){s, sizeof(hdr)};
        for (unsigned k = 0; k < nseg; k++) {
            uint32_t piece = rq->len / nseg;
            uint32_t len = k == nseg - 1 ? rq->len - piece * (nseg - 1) : piece;

            bufs[nb++] =
                (struct gabi_vhost_gbuf){g->data + rq->data_off + (uint64_t)piece * k, len};
        }
        n_out = is_write(rq->type) ? nb : 1;
        bufs[nb++] = (struct gabi_vhost_gbuf){s + 16, 1};
        rq->head = gabi_vhost_guestq_add(g->q[q], bufs, n_out, nb - n_out, rq->indirect);
        if (rq->head != head)
            return -ENOSPC;
        rq->status = 0xff;
        rq->used_len = UINT32_MAX;
    }
    gabi_vhost_guestq_publish(g->q[q]);
    gabi_vhost_guestq_kick(g->q[q]);
    for (unsigned done = 0; done < n; done++) {
        uint32_t id, len;
        int r = reap(g, q, &id, &len, 10000);

        if (r < 0)
            return r;
        for (unsigned i = 0; i < n; i++) {
            if (reqs[i].head == (int)id) {
                reqs[i].used_len = len;
                reqs[i].status = *(uint8_t *)tb_ptr(g, slot(g, q, id) + 16, 1);
            }
        }
    }
    return 0;
}

int tb_rw(struct tb_guest *g, unsigned q, uint32_t type, uint64_t sector, void *buf, size_t len,
          unsigned nseg)
{
    struct tb_req rq = {.type = type, .sector = sector, .len = (uint32_t)len, .nseg = nseg};
    int r;

    if (len > TB_DATA_SIZE)
        return -EINVAL;
    if (is_write(type) && len)
        memcpy(tb_ptr(g, g->data, len), buf, len);
    else if (len)
        memset(tb_ptr(g, g->data, len), 0xee, len);
    r = tb_submit(g, q, &rq, 1);
    if (r < 0)
        return r;
    if (!is_write(type) && len)
        memcpy(buf, tb_ptr(g, g->data, len), len);
    return rq.status;
}

int tb_raw(struct tb_guest *g, unsigned q, const struct gabi_vhost_gbuf *bufs, unsigned n_out,
           unsigned n_in, bool indirect, uint32_t *used_len, int timeout_ms)
{
    uint32_t id, len;
    int head = gabi_vhost_guestq_add(g->q[q], bufs, n_out, n_in, indirect), r;

    if (head < 0)
        return head;
    gabi_vhost_guestq_publish(g->q[q]);
    gabi_vhost_guestq_kick(g->q[q]);
    r = reap(g, q, &id, &len, timeout_ms);
    if (r < 0)
        return r;
    if (used_len)
        *used_len = len;
    return id == (uint32_t)head ? 0 : -EBADMSG;
}

int tb_wait_err(struct tb_guest *g, unsigned q)
{
    struct pollfd p = {.fd = g->err_fd[q], .events = POLLIN};
    uint64_t v;

    if (poll(&p, 1, 10000) != 1)
        return 0;
    return read(g->err_fd[q], &v, sizeof(v)) == sizeof(v);
}

void tb_pattern(void *buf, size_t len, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    uint8_t *p = buf;

    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}
