/* SPDX-License-Identifier: MIT */
/*
 * A guestabi-blk disk moved as device state, end to end. A measurement, not a test.
 *
 * Two guestabi-blk processes with disks of SIZE MiB (default 1024) of the same kind (RAM
 * disks, or files in DIR); the first one's disk is written whole through our front-end, both
 * are suspended, and the state goes back and forth between them with
 * gabi_vhost_client_move_state(): SET_DEVICE_STATE_FD on both, the stream from back-end to
 * back-end (header, the image as MEMORY segments vmspliced or FILE segments spliced, CRC32C on
 * both sides, trailer), the destination's scratch disk committed (a file: fdatasync and
 * rename), CHECK_DEVICE_STATE on both. Prints GB/s (best of ROUNDS, median in brackets) and
 * the CPU time both processes spent per GiB; bench_state measures the raw stream alone.
 *
 *   bench_blk_state [SIZE_MIB [ROUNDS [DIR]]]   without DIR: RAM disks, then files in /dev/shm
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"
#include "vhost_guest.h"

#ifndef GUESTABI_BLK_PATH
#define GUESTABI_BLK_PATH "guestabi-blk"
#endif

#define MiB       (1024ull * 1024ull)
#define MAX_ROUND 16
#define RING      256u
#define CHUNK     (128u * 1024u)

/* CPU seconds (user + system) pid has used. */
static double cpu_of(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long ut = 0, st = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "re");
    if (!f)
        return 0;
    if (!fgets(buf, sizeof(buf), f))
        buf[0] = '\0';
    fclose(f);
    p = strrchr(buf, ')');
    /* after ") S": fields 4.. ; utime and stime are fields 14 and 15 */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static pid_t spawn(const char *sock, const char *disk, const char *size)
{
    const char *file[] = {GUESTABI_BLK_PATH, "--socket", sock,         "--disk",           disk,
                          "--size",          size,       "--ready-fd", BENCH_READY_FD_STR, NULL};
    const char *ram[] = {GUESTABI_BLK_PATH, "--socket",         sock, "--ram", size,
                         "--ready-fd",      BENCH_READY_FD_STR, NULL};

    return bench_spawn_ready(disk ? file : ram, -1, true, 20000, "bench_blk_state");
}

static void stop(pid_t pid)
{
    int status;

    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, &status, 0);
    }
}

/* Connect, write the whole disk (a pattern per 128 KiB), stop the vring: suspended. */
static struct gabi_vhost_client *fill(const char *sock, uint64_t size)
{
    struct gabi_vhost_client *c = NULL;
    struct gabi_vhost_guestmem *gm = NULL;
    struct gabi_vhost_guestq *q = NULL;
    uint64_t meta, data, want = ~0ull & ~(1ull << GABI_F_EVENT_IDX);
    uint64_t off = 0, done = 0, total = size / CHUNK;
    uint32_t base;

    if (gabi_vhost_client_connect(sock, 20000, &c, NULL) < 0 ||
        gabi_vhost_client_negotiate(c, want, ~0ull, NULL, NULL) < 0 ||
        gabi_vhost_guestmem_new(64 * MiB, 1, &gm, NULL) < 0 ||
        gabi_vhost_client_add_mem_reg(c, gm, 0) < 0 || gabi_vhost_guestq_new(gm, RING, 0, &q) < 0 ||
        gabi_vhost_client_start_vring(c, 0, q, 0, false) < 0 ||
        gabi_vhost_guestmem_alloc(gm, RING * 32ull, 4096, &meta) < 0 ||
        gabi_vhost_guestmem_alloc(gm, 16ull * CHUNK, 4096, &data) < 0)
        goto fail;
    for (unsigned i = 0; i < 16; i++) {
        uint64_t *p = gabi_vhost_guestmem_ptr(gm, data + (uint64_t)i * CHUNK, CHUNK);

        for (unsigned k = 0; k < CHUNK / 8; k++)
            p[k] = 0x9e3779b97f4a7c15ull * (i * CHUNK / 8 + k + 1);
    }
    while (done < total) {
        uint32_t id, len;

        while (off < total && gabi_vhost_guestq_n_free(q) >= 3) {
            int head = gabi_vhost_guestq_next_head(q);
            uint64_t m = meta + 32ull * (unsigned)head;
            uint32_t hdr[4] = {1, 0, (uint32_t)(off * (CHUNK / 512)),
                               (uint32_t)((off * (CHUNK / 512)) >> 32)};
            struct gabi_vhost_gbuf b[3] = {
                {m, 16}, {data + (off % 16) * CHUNK, CHUNK}, {m + 16, 1}};

            memcpy(gabi_vhost_guestmem_ptr(gm, m, 16), hdr, 16);
            if (gabi_vhost_guestq_add(q, b, 2, 1, false) != head)
                goto fail;
            off++;
        }
        gabi_vhost_guestq_kick(q);
        while (gabi_vhost_guestq_get_used(q, &id, &len) == 1)
            done++;
        if (done < off)
            gabi_vhost_guestq_wait(q, 100);
    }
    if (gabi_vhost_client_stop_vring(c, 0, &base) < 0)
        goto fail;
    gabi_vhost_guestq_free(q);
    gabi_vhost_guestmem_free(gm);
    return c;
fail:
    gabi_vhost_guestq_free(q);
    gabi_vhost_guestmem_free(gm);
    return gabi_vhost_client_free(c);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static void run(const char *label, const char *dir, unsigned size_mib, unsigned rounds)
{
    char sock[2][300], disk[2][300], size[32];
    struct gabi_vhost_client *c[2] = {NULL, NULL};
    double gbps[MAX_ROUND], cpu = 0;
    pid_t pid[2] = {-1, -1};
    uint64_t bytes = (uint64_t)size_mib * MiB;
    unsigned ok = 0;

    snprintf(size, sizeof(size), "%uM", size_mib);
    for (int i = 0; i < 2; i++) {
        snprintf(sock[i], sizeof(sock[i]), "%s/state-sock%d", dir ? dir : "/tmp", i);
        snprintf(disk[i], sizeof(disk[i]), "%s/state-disk%d.img", dir ? dir : "/tmp", i);
        unlink(disk[i]);
        pid[i] = spawn(sock[i], dir ? disk[i] : NULL, size);
        if (pid[i] < 0)
            goto out;
    }
    c[0] = fill(sock[0], bytes);
    if (gabi_vhost_client_connect(sock[1], 20000, &c[1], NULL) < 0 ||
        gabi_vhost_client_negotiate(c[1], ~0ull, ~0ull, NULL, NULL) < 0 || !c[0]) {
        printf("%-24s cannot set up\n", label);
        goto out;
    }
    for (unsigned r = 0; r < rounds; r++) {
        struct gabi_vhost_state_xfer x = {0};
        struct gabi_error err = {0};
        int from = r % 2;
        double c0 = cpu_of(pid[0]) + cpu_of(pid[1]), t0 = bench_now(), t;

        if (gabi_vhost_client_move_state(c[from], c[!from], 60000, &x, &err) < 0) {
            printf("%-24s move failed: %s\n", label, err.message);
            goto out;
        }
        t = bench_now() - t0;
        cpu += cpu_of(pid[0]) + cpu_of(pid[1]) - c0;
        gbps[ok++] = (double)bytes / t / 1e9;
    }
    qsort(gbps, ok, sizeof(double), cmp_double);
    printf("%-24s %6.2f GB/s (%5.2f)  %4.0f ms per GiB  CPU %.2f s per GiB (both sides)\n", label,
           gbps[ok - 1], gbps[ok / 2], 1e3 * (double)(1ull << 30) / (gbps[ok - 1] * 1e9),
           cpu / ok / ((double)bytes / (double)(1ull << 30)));
out:
    for (int i = 0; i < 2; i++) {
        gabi_vhost_client_free(c[i]);
        stop(pid[i]);
        unlink(disk[i]);
    }
}

int main(int argc, char **argv)
{
    unsigned size_mib = argc > 1 ? (unsigned)atoi(argv[1]) : 1024;
    unsigned rounds = argc > 2 ? (unsigned)atoi(argv[2]) : 3;
    const char *dir = argc > 3 ? argv[3] : NULL;

    if (size_mib < 1 || rounds < 1 || rounds > MAX_ROUND) {
        fprintf(stderr, "usage: bench_blk_state [SIZE_MIB [ROUNDS [DIR]]]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    printf("a %u MiB disk moved between two guestabi-blk processes (move_state, both "
           "suspended); best of %u (median)\n",
           size_mib, rounds);
    if (dir) {
        run("file disks", dir, size_mib, rounds);
    } else {
        run("RAM disks (memfd)", NULL, size_mib, rounds);
        run("file disks in /dev/shm", "/dev/shm", size_mib, rounds);
    }
    return 0;
}
