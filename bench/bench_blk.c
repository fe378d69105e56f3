/* SPDX-License-Identifier: MIT */
/*
 * Requests per second through guestabi-blk, as fio would measure a virtio-blk disk: the
 * back-end runs as a child on one core, this process is the guest's driver on the other,
 * keeping a fixed number of requests in flight on one queue and polling the used ring (no
 * interrupts; kicks only where the device asks for them). Not a test: it prints figures.
 *
 *   bench_blk [-t SECONDS] [-r ROUNDS] [--size MIB] [--dir DIR] [--qsd]
 *
 * Targets: a guestabi-blk RAM disk (--ram), guestabi-blk on a file in DIR (default /dev/shm,
 * so both read the page cache), and with --qsd, QEMU's qemu-storage-daemon exporting the
 * same file as vhost-user-blk (libvhost-user; aio=threads), driven by the same front-end in
 * the same minutes. Workloads: 4 KiB random reads and writes at queue depth 32, 128 KiB
 * sequential reads and writes at depth 8. Every disk is written whole first; then each
 * figure is measured ROUNDS times, the targets taking turns, and the best is printed with
 * the median in brackets (the machines this runs on are shared and noisy).
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"
#include "vhost_guest.h"

#ifndef GUESTABI_BLK_PATH
#define GUESTABI_BLK_PATH "guestabi-blk"
#endif

#define MiB    (1024ull * 1024ull)
#define MAX_QD 32u
#define MAX_BS (128u * 1024u)
#define RING   128u
#define T_IN   0u
#define T_OUT  1u

struct outhdr {
    uint32_t type;
    uint32_t ioprio;
    uint64_t sector;
};

struct guest {
    struct gabi_vhost_client *c;
    struct gabi_vhost_guestmem *gm;
    struct gabi_vhost_guestq *q;
    uint64_t meta; /* header + status per head */
    uint64_t data; /* MAX_BS per head */
};

/* Run argv as a child on cpu 1; wait until path exists (a socket). */
static pid_t spawn(char *const argv[], const char *path)
{
    pid_t pid = fork();

    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

        bench_pin(1);
        if (null >= 0)
            dup2(null, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    for (int i = 0; pid > 0 && i < 1000; i++) {
        int status;

        if (access(path, F_OK) == 0)
            return pid;
        if (waitpid(pid, &status, WNOHANG) == pid)
            return -1;
        usleep(10000);
    }
    if (pid > 0)
        kill(pid, SIGKILL);
    return -1;
}

static void stop(pid_t pid)
{
    int status;

    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
}

static int guest_connect(struct guest *g, const char *path)
{
    struct gabi_error err = {0};
    uint64_t want = (1ull << GABI_F_VERSION_1) | (1ull << GABI_F_PROTOCOL_FEATURES) |
                    (1ull << GABI_BLK_F_SEG_MAX) | (1ull << GABI_BLK_F_BLK_SIZE) |
                    (1ull << GABI_BLK_F_FLUSH);
    uint64_t want_pf = (1ull << GABI_PF_MQ) | (1ull << GABI_PF_REPLY_ACK) |
                       (1ull << GABI_PF_CONFIG) | (1ull << GABI_PF_CONFIGURE_MEM_SLOTS);
    int r;

    memset(g, 0, sizeof(*g));
    if ((r = gabi_vhost_client_connect(path, 10000, &g->c, &err)) < 0 ||
        (r = gabi_vhost_client_negotiate(g->c, want, want_pf, NULL, NULL)) < 0 ||
        (r = gabi_vhost_guestmem_new(64 * MiB, 1, &g->gm, &err)) < 0)
        return r;
    if (gabi_vhost_client_protocol_features(g->c) & (1ull << GABI_PF_CONFIGURE_MEM_SLOTS))
        r = gabi_vhost_client_add_mem_reg(g->c, g->gm, 0);
    else
        r = gabi_vhost_client_set_mem_table(g->c, g->gm);
    if (r < 0 || (r = gabi_vhost_guestq_new(g->gm, RING, 0, &g->q)) < 0 ||
        (r = gabi_vhost_client_start_vring(g->c, 0, g->q, 0, false)) < 0 ||
        (r = gabi_vhost_guestmem_alloc(g->gm, RING * 32ull, 4096, &g->meta)) < 0 ||
        (r = gabi_vhost_guestmem_alloc(g->gm, (uint64_t)RING * MAX_BS, 4096, &g->data)) < 0)
        return r;
    gabi_vhost_guestq_set_interrupts(g->q, false);
    return 0;
}

static void guest_free(struct guest *g)
{
    gabi_vhost_client_free(g->c);
    gabi_vhost_guestq_free(g->q);
    gabi_vhost_guestmem_free(g->gm);
}

static uint64_t rng = 88172645463325252ull;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Post one request of bs bytes; returns its head or <0. */
static int post(struct guest *g, uint32_t type, uint64_t sector, uint32_t bs)
{
    int head = gabi_vhost_guestq_next_head(g->q);
    struct outhdr h = {type, 0, sector};
    struct gabi_vhost_gbuf b[3];
    uint64_t m;

    if (head < 0)
        return head;
    m = g->meta + 32ull * (unsigned)head;
    memcpy(gabi_vhost_guestmem_ptr(g->gm, m, 16), &h, 16);
    b[0] = (struct gabi_vhost_gbuf){m, 16};
    b[1] = (struct gabi_vhost_gbuf){g->data + (uint64_t)MAX_BS * (unsigned)head, bs};
    b[2] = (struct gabi_vhost_gbuf){m + 16, 1};
    return gabi_vhost_guestq_add(g->q, b, type == T_OUT ? 2 : 1, type == T_OUT ? 1 : 2, false);
}

/* Keep qd requests in flight for `seconds` or until max_done completed: requests per
 * second, or <0. */
static double workload(struct guest *g, uint32_t type, uint32_t bs, unsigned qd, bool random,
                       uint64_t disk_size, double seconds, uint64_t max_done, unsigned *errors)
{
    uint64_t n_blocks = disk_size / bs, seq = 0, done = 0;
    double t0, t1;

    *errors = 0;
    for (unsigned i = 0; i < qd; i++) {
        uint64_t blk = random ? next_rand() % n_blocks : seq++ % n_blocks;

        if (post(g, type, blk * (bs / 512), bs) < 0)
            return -1;
    }
    gabi_vhost_guestq_kick(g->q);
    t0 = bench_now();
    t1 = t0;
    while (t1 - t0 < seconds && done < max_done) {
        uint32_t id, len;
        unsigned got = 0;

        while (gabi_vhost_guestq_get_used(g->q, &id, &len) == 1) {
            uint64_t blk = random ? next_rand() % n_blocks : seq++ % n_blocks;
            uint8_t st = *(uint8_t *)gabi_vhost_guestmem_ptr(g->gm, g->meta + 32ull * id + 16, 1);

            if (st != 0)
                (*errors)++;
            if (post(g, type, blk * (bs / 512), bs) < 0)
                return -1;
            got++;
        }
        if (got) {
            done += got;
            gabi_vhost_guestq_kick(g->q);
        }
        if ((done & 255) == 0)
            t1 = bench_now();
    }
    t1 = bench_now();
    /* drain */
    for (unsigned left = qd; left > 0;) {
        uint32_t id, len;

        if (gabi_vhost_guestq_get_used(g->q, &id, &len) == 1)
            left--;
        else if (bench_now() - t1 > 10)
            return -1;
    }
    return (double)done / (t1 - t0);
}

static const struct {
    const char *name;
    uint32_t type, bs;
    unsigned qd;
    bool random;
} loads[] = {
    {"4k randread  qd32", T_IN, 4096, 32, true},
    {"4k randwrite qd32", T_OUT, 4096, 32, true},
    {"128k read    qd8 ", T_IN, MAX_BS, 8, false},
    {"128k write   qd8 ", T_OUT, MAX_BS, 8, false},
};
#define N_LOADS   (sizeof(loads) / sizeof(loads[0]))
#define MAX_ROUND 16

struct target {
    const char *label;
    char sock[300], file[300];
    pid_t pid;
    struct guest g;
    bool up;
    double rate[N_LOADS][MAX_ROUND];
    unsigned errors;
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"size", required_argument, NULL, 's'},
        {"dir", required_argument, NULL, 'd'},
        {"qsd", no_argument, NULL, 'q'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = "/dev/shm";
    unsigned size_mib = 256, rounds = 3, n_targets;
    double seconds = 1;
    bool qsd = false;
    char tmp[256], sizearg[32];
    static struct target t[3] = {{.label = "guestabi-blk --ram"},
                                 {.label = "guestabi-blk --disk"},
                                 {.label = "qemu-storage-daemon"}};
    uint64_t disk_size;
    int c;

    while ((c = getopt_long(argc, argv, "t:r:", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            seconds = atof(optarg);
            break;
        case 'r':
            rounds = (unsigned)atoi(optarg);
            break;
        case 's':
            size_mib = (unsigned)atoi(optarg);
            break;
        case 'd':
            dir = optarg;
            break;
        case 'q':
            qsd = true;
            break;
        default:
            fprintf(stderr, "usage: bench_blk [-t SECONDS] [-r ROUNDS] [--size MIB] [--dir DIR] "
                            "[--qsd]\n");
            return 2;
        }
    }
    if (size_mib < 16 || seconds <= 0 || rounds == 0 || rounds > MAX_ROUND)
        return 2;
    disk_size = (uint64_t)size_mib * MiB;
    n_targets = qsd ? 3 : 2;
    signal(SIGPIPE, SIG_IGN);
    bench_pin(0);
    snprintf(tmp, sizeof(tmp), "%s/bench-blk-XXXXXX", dir);
    if (!mkdtemp(tmp)) {
        perror(tmp);
        return 1;
    }
    snprintf(sizearg, sizeof(sizearg), "%uM", size_mib);
    for (unsigned i = 0; i < 3; i++) {
        snprintf(t[i].sock, sizeof(t[i].sock), "%s/sock%u", tmp, i);
        snprintf(t[i].file, sizeof(t[i].file), "%s/disk%u.img", tmp, i);
    }
    {
        char *a0[] = {GUESTABI_BLK_PATH, "--socket", t[0].sock, "--ram", sizearg, NULL};
        char *a1[] = {GUESTABI_BLK_PATH, "--socket", t[1].sock, "--disk",
                      t[1].file,         "--size",   sizearg,   NULL};
        char blockdev[400], export[400];
        char *a2[] = {"qemu-storage-daemon", "--blockdev", blockdev, "--export", export, NULL};
        int fd = qsd ? open(t[2].file, O_RDWR | O_CREAT | O_CLOEXEC, 0600) : -1;

        if (qsd && (fd < 0 || ftruncate(fd, (off_t)disk_size) < 0)) {
            perror(t[2].file);
            return 1;
        }
        if (fd >= 0)
            close(fd);
        snprintf(blockdev, sizeof(blockdev),
                 "driver=file,filename=%s,node-name=n0,cache.direct=off,aio=threads", t[2].file);
        snprintf(export, sizeof(export),
                 "type=vhost-user-blk,id=e0,node-name=n0,addr.type=unix,addr.path=%s,"
                 "writable=on,num-queues=1",
                 t[2].sock);
        t[0].pid = spawn(a0, t[0].sock);
        t[1].pid = spawn(a1, t[1].sock);
        if (qsd)
            t[2].pid = spawn(a2, t[2].sock);
    }
    for (unsigned i = 0; i < n_targets; i++) {
        unsigned errors;

        if (t[i].pid <= 0 || guest_connect(&t[i].g, t[i].sock) < 0) {
            printf("%s: did not start or refused the connection\n", t[i].label);
            continue;
        }
        /* write the whole disk once first: no figure includes allocating its pages */
        if (workload(&t[i].g, T_OUT, MAX_BS, 8, false, disk_size, 1e9, disk_size / MAX_BS,
                     &errors) < 0)
            continue;
        t[i].up = true;
    }
    printf("one queue of %u, %u MiB disks in %s; back-ends on cpu 1, driver on cpu 0; best of %u "
           "rounds of %.1f s (median), targets interleaved\n",
           RING, size_mib, dir, rounds, seconds);
    for (unsigned r = 0; r < rounds; r++)
        for (unsigned l = 0; l < N_LOADS; l++)
            for (unsigned i = 0; i < n_targets; i++) {
                unsigned errors = 0;

                if (!t[i].up)
                    continue;
                t[i].rate[l][r] =
                    workload(&t[i].g, loads[l].type, loads[l].bs, loads[l].qd, loads[l].random,
                             disk_size, seconds, UINT64_MAX, &errors);
                t[i].errors += errors;
            }
    for (unsigned l = 0; l < N_LOADS; l++)
        for (unsigned i = 0; i < n_targets; i++) {
            double v[MAX_ROUND];

            if (!t[i].up)
                continue;
            memcpy(v, t[i].rate[l], sizeof(v));
            qsort(v, rounds, sizeof(double), cmp_double);
            printf("%-20s %s: %8.0f req/s (%8.0f) %7.1f MiB/s\n", t[i].label, loads[l].name,
                   v[rounds - 1], v[rounds / 2], v[rounds - 1] * loads[l].bs / (double)MiB);
        }
    for (unsigned i = 0; i < n_targets; i++) {
        if (t[i].errors)
            printf("%s: %u requests failed!\n", t[i].label, t[i].errors);
        if (t[i].up)
            guest_free(&t[i].g);
        if (t[i].pid > 0)
            stop(t[i].pid);
        unlink(t[i].sock);
        unlink(t[i].file);
    }
    rmdir(tmp);
    return 0;
}
