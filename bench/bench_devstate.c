/* SPDX-License-Identifier: MIT */
/*
 * Added downtime of a device-state transfer through SET_DEVICE_STATE_FD, end to end between
 * two back-ends. A measurement, not a test.
 *
 * Two lib/vhost back-ends, each in its own thread with its own epoll loop (as two device
 * processes would run them), hold SIZE KiB of state (default 1024) in memory; our front-end
 * is connected to both, every vring stopped (the VM is paused). One round is what a
 * migration adds to the pause for this device: from the first SET_DEVICE_STATE_FD until both
 * CHECK_DEVICE_STATE replies said success (the destination has verified and committed). Three
 * ways, interleaved round by round:
 *
 *   direct   gabi_vhost_client_move_state(): one pipe, source back-end to destination
 *            back-end (vmsplice -> read), nothing through the front-end
 *   relay    the same with each back-end answering with a pipe of its own: the front-end
 *            splices between them
 *   qemu     what QEMU >= 8.2 does on one host pair: save into the front-end (here a memfd),
 *            then load from it (the bytes pass through the front-end twice)
 *
 * Usage: bench_devstate [SIZE_KIB [ROUNDS]]   (defaults 1024, 200)
 */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <guestabi/vhost_backend.h>
#include <guestabi/vhost_client.h>

#define TAG_STOP  1
#define TAG_SOCK  2
#define TAG_STATE 3

struct dev {
    struct gabi_vhost_backend *b;
    struct gabi_vhost_state_ops ops;
    int epfd, stop_fd;
    pthread_t thread;
    char dir[64], path[128];
    uint8_t *state, *scratch;
    size_t size;
};

static const struct gabi_vhost_mode mode = {
    .name = "bench.devstate",
    .features = GABI_VHOST_TRANSPORT_FEATURES,
    .protocol_features =
        (1ull << GABI_PF_MQ) | (1ull << GABI_PF_REPLY_ACK) | (1ull << GABI_PF_DEVICE_STATE),
    .max_queue_pairs = 1,
    .max_queue_size = 256,
};

static int watch(struct gabi_vhost_backend *b, int fd, enum gabi_vhost_watch kind, unsigned index,
                 void *userdata)
{
    struct dev *d = userdata;
    struct epoll_event ev = {.events = EPOLLIN};

    if (kind == GABI_VHOST_WATCH_KICK)
        return 0;
    ev.data.u64 = kind == GABI_VHOST_WATCH_SOCKET ? TAG_SOCK : TAG_STATE;
    if (kind == GABI_VHOST_WATCH_STATE_WRITE)
        ev.events = EPOLLOUT;
    return epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static void unwatch(struct gabi_vhost_backend *b, int fd, void *userdata)
{
    struct dev *d = userdata;

    epoll_ctl(d->epfd, EPOLL_CTL_DEL, fd, NULL);
}

static const struct gabi_vhost_ops ops = {.watch = watch, .unwatch = unwatch};

static int save_begin(struct gabi_vhost_backend *b, uint64_t *ret_size, struct gabi_error *reterr,
                      void *userdata)
{
    *ret_size = ((struct dev *)userdata)->size;
    return 0;
}

static int save_get(struct gabi_vhost_backend *b, uint64_t offset, size_t max, void *scratch,
                    size_t scratch_size, struct gabi_vhost_state_seg *ret,
                    struct gabi_error *reterr, void *userdata)
{
    struct dev *d = userdata;

    *ret = (struct gabi_vhost_state_seg){
        .type = GABI_VHOST_STATE_SEG_MEMORY, .mem = d->state + offset, .fd = -1, .size = max};
    return 0;
}

static int accept_v1(struct gabi_vhost_backend *b, const struct gabi_vhost_state_info *info,
                     struct gabi_error *reterr, void *userdata)
{
    struct dev *d = userdata;

    return strcmp(info->state_version, "1") == 0 && info->payload_size == d->size ? 0 : -EINVAL;
}

static int load_dest(struct gabi_vhost_backend *b, uint64_t offset, size_t max,
                     struct gabi_vhost_state_seg *ret, struct gabi_error *reterr, void *userdata)
{
    struct dev *d = userdata;

    *ret = (struct gabi_vhost_state_seg){
        .type = GABI_VHOST_STATE_SEG_MEMORY, .mem = d->scratch + offset, .fd = -1, .size = max};
    return 0;
}

static int load_commit(struct gabi_vhost_backend *b, struct gabi_error *reterr, void *userdata)
{
    struct dev *d = userdata;
    uint8_t *t = d->state;

    d->state = d->scratch; /* the loaded state goes live; the old one is the next scratch */
    d->scratch = t;
    return 0;
}

static void load_abort(struct gabi_vhost_backend *b, void *userdata)
{
}

static void *loop(void *arg)
{
    struct dev *d = arg;

    for (;;) {
        struct epoll_event ev[8];
        int n = epoll_wait(d->epfd, ev, 8, -1);

        for (int i = 0; i < n; i++) {
            if (ev[i].data.u64 == TAG_STOP)
                return NULL;
            if (ev[i].data.u64 == TAG_SOCK)
                gabi_vhost_backend_dispatch(d->b);
            else
                gabi_vhost_backend_process_state(d->b);
        }
    }
}

static int dev_start(struct dev *d, size_t size, bool own_channel, uint8_t seed)
{
    struct gabi_vhost_backend_config cfg = {
        .name = "bench", .cls = GABI_CLASS_NET, .mode = &mode, .state = &d->ops};
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_STOP};
    struct gabi_error err = {0};

    d->ops = (struct gabi_vhost_state_ops){
        .device_type = "bench-dev",
        .version = "1",
        .save_begin = save_begin,
        .save_get = save_get,
        .load_accept = accept_v1,
        .load_dest = load_dest,
        .load_commit = load_commit,
        .load_abort = load_abort,
        .channel = own_channel ? gabi_vhost_state_own_pipe : NULL,
    };
    d->size = size;
    d->state = malloc(size);
    d->scratch = malloc(size);
    if (!d->state || !d->scratch)
        return -ENOMEM;
    for (size_t i = 0; i < size; i++)
        d->state[i] = (uint8_t)(seed + i * 7 + i / 4096);
    memset(d->scratch, 0, size);
    d->epfd = epoll_create1(EPOLL_CLOEXEC);
    d->stop_fd = eventfd(0, EFD_CLOEXEC);
    epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->stop_fd, &ev);
    snprintf(d->dir, sizeof(d->dir), "/tmp/gabi-bench-XXXXXX");
    if (!mkdtemp(d->dir))
        return -errno;
    snprintf(d->path, sizeof(d->path), "%s/sock", d->dir);
    if (gabi_vhost_backend_new(&cfg, &ops, d, &d->b, &err) < 0 ||
        gabi_vhost_backend_listen(d->b, d->path, &err) < 0) {
        fprintf(stderr, "back-end: %s\n", err.message);
        return -EIO;
    }
    return -pthread_create(&d->thread, NULL, loop, d);
}

static void dev_stop(struct dev *d)
{
    uint64_t one = 1;

    if (write(d->stop_fd, &one, sizeof(one)) == sizeof(one))
        pthread_join(d->thread, NULL);
    gabi_vhost_backend_free(d->b);
    close(d->epfd);
    close(d->stop_fd);
    rmdir(d->dir);
    free(d->state);
    free(d->scratch);
}

static struct gabi_vhost_client *client(const char *path)
{
    struct gabi_vhost_client *c = NULL;

    if (gabi_vhost_client_connect(path, 10000, &c, NULL) < 0 ||
        gabi_vhost_client_negotiate(c, ~0ull, ~0ull, NULL, NULL) < 0) {
        fprintf(stderr, "cannot connect to %s\n", path);
        exit(1);
    }
    return c;
}

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

enum way { DIRECT, RELAY, QEMU, N_WAYS };
static const char *const way_names[N_WAYS] = {"direct", "relay", "qemu"};

struct pair {
    struct dev src, dst;
    struct gabi_vhost_client *cs, *cd;
};

static int round_once(struct pair *p, enum way w, int fd)
{
    struct gabi_error err = {0};
    int r;

    if (w != QEMU) {
        r = gabi_vhost_client_move_state(p->cs, p->cd, 10000, NULL, &err);
    } else {
        if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0)
            return -errno;
        r = gabi_vhost_client_save_state(p->cs, fd, 10000, NULL, &err);
        if (r >= 0 && lseek(fd, 0, SEEK_SET) == 0)
            r = gabi_vhost_client_load_state(p->cd, fd, 10000, NULL, &err);
    }
    if (r < 0)
        fprintf(stderr, "%s: %s\n", way_names[w], err.message);
    return r;
}

int main(int argc, char **argv)
{
    size_t kib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
    unsigned rounds = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 200;
    struct pair pairs[N_WAYS];
    double *t[N_WAYS];
    int fd = memfd_create("bench-devstate", MFD_CLOEXEC);

    if (kib == 0 || rounds == 0) {
        fprintf(stderr, "usage: bench_devstate [SIZE_KIB [ROUNDS]]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    for (int w = 0; w < N_WAYS; w++) {
        if (dev_start(&pairs[w].src, kib << 10, w == RELAY, 1) < 0 ||
            dev_start(&pairs[w].dst, kib << 10, w == RELAY, 2) < 0)
            return 1;
        pairs[w].cs = client(pairs[w].src.path);
        pairs[w].cd = client(pairs[w].dst.path);
        t[w] = calloc(rounds, sizeof(double));
        if (round_once(&pairs[w], (enum way)w, fd) < 0) /* warm-up, and a correctness check */
            return 1;
        if (memcmp(pairs[w].src.state, pairs[w].dst.state, kib << 10) != 0) {
            fprintf(stderr, "%s: the destination's state differs\n", way_names[w]);
            return 1;
        }
    }
    for (unsigned i = 0; i < rounds; i++) {
        for (int w = 0; w < N_WAYS; w++) {
            double t0 = now_us();

            if (round_once(&pairs[w], (enum way)w, fd) < 0)
                return 1;
            t[w][i] = now_us() - t0;
        }
    }
    printf("device state of %zu KiB through SET_DEVICE_STATE_FD between two back-ends (threads\n"
           "with their own loops), %u rounds each: added downtime = first SET_DEVICE_STATE_FD\n"
           "to both CHECK_DEVICE_STATE replies\n\n",
           kib, rounds);
    printf("%-8s %10s %10s %10s %10s\n", "way", "min ms", "median", "p90", "max");
    for (int w = 0; w < N_WAYS; w++) {
        qsort(t[w], rounds, sizeof(double), cmp_double);
        printf("%-8s %10.3f %10.3f %10.3f %10.3f\n", way_names[w], t[w][0] / 1e3,
               t[w][rounds / 2] / 1e3, t[w][rounds * 9 / 10] / 1e3, t[w][rounds - 1] / 1e3);
    }
    printf("\ndirect: one pipe from back-end to back-end; relay: each back-end's own pipe, the\n"
           "front-end splices; qemu: save into the front-end, then load from it (QEMU 8.2)\n");
    for (int w = 0; w < N_WAYS; w++) {
        gabi_vhost_client_free(pairs[w].cs);
        gabi_vhost_client_free(pairs[w].cd);
        dev_stop(&pairs[w].src);
        dev_stop(&pairs[w].dst);
        free(t[w]);
    }
    close(fd);
    return 0;
}
