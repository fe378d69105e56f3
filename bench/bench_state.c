/* SPDX-License-Identifier: MIT */
/*
 * Device-state transfer throughput and latency. A measurement, not a test.
 *
 * Moves SIZE MiB (default 1024) of state through a 1 MiB pipe from a sender thread to a
 * receiver thread, for each source (a memfd "RAM disk" the device has mapped, a regular file
 * in the page cache) and destination (device memory, a file), three ways in the same run and
 * interleaved, so the machine's mood hits all three alike:
 *   raw read/write  plain write()/read() with a 1 MiB buffer (straight from and into the
 *                   device's memory where there is memory: the fewest copies without splice);
 *   raw splice      the best of vmsplice() and splice() into the pipe, splice() out of it into
 *                   a file (read() into memory: nothing splices into memory);
 *   guestabi        gabi_vhost_state_writer/_reader: header, CRC32C of every byte on both
 *                   sides, trailer, verification, non-blocking fds driven by poll().
 * and prints GB/s (best of N rounds, median in brackets) and the ratios guestabi / raw.
 * Then: the end-to-end time of a 1 MiB state (one thread: header, checksum, transfer, verify,
 * commit) against the same bytes copied raw; the checksum's own speed; and what computing the
 * checksum before sending would cost (the reason it travels in a trailer).
 *
 *   bench_state [SIZE_MIB [ROUNDS [DIR]]]     DIR holds the regular file ($TMPDIR or /tmp)
 *
 * BENCH_STATE_CASES=013 runs only those cases (in the order printed, from 0), and
 * BENCH_STATE_METHODS=3 only those methods (0 read/write, 1 vmsplice, 2 splice, 3 guestabi),
 * and either skips the 1 MiB and checksum measurements: for profiling one of them under perf.
 */

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <guestabi/vhost_state.h>

#include "vhost/state_internal.h"
#include "benchutil.h"

#define MiB       (1024ul * 1024ul)
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define CHUNK     MiB

enum method { RAW_RW, RAW_VMSPLICE, RAW_SPLICE, OURS, N_METHODS };
enum src_kind { SRC_RAMDISK, SRC_FILE };
enum dst_kind { DST_MEMORY, DST_FILE };

struct job {
    enum method method;
    enum src_kind src;
    enum dst_kind dst;
    const uint8_t *src_mem;
    int src_fd;
    uint8_t *dst_mem;
    int dst_fd;
    size_t size;
    int fd; /* this side's pipe end */
    int failed;
    double cpu; /* this side's thread CPU seconds */
    struct gabi_vhost_state_stats stats;
};

static double thread_cpu(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);

        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* ---- guestabi's side: a source and a sink as a device would write them ----------------- */

static int src_get(void *userdata, uint64_t offset, size_t max, void *scratch, size_t scratch_size,
                   struct gabi_vhost_state_seg *ret, struct gabi_error *reterr)
{
    struct job *j = userdata;

    (void)scratch, (void)scratch_size, (void)reterr;
    if (j->src == SRC_RAMDISK)
        *ret = (struct gabi_vhost_state_seg){
            .type = GABI_VHOST_STATE_SEG_MEMORY, .mem = (void *)(j->src_mem + offset), .size = max};
    else
        *ret = (struct gabi_vhost_state_seg){
            .type = GABI_VHOST_STATE_SEG_FILE, .fd = j->src_fd, .offset = offset, .size = max};
    return 0;
}

static const struct gabi_vhost_state_source_ops src_ops = {.get = src_get};

static int sink_accept(void *userdata, const struct gabi_vhost_state_info *info,
                       struct gabi_error *reterr)
{
    struct job *j = userdata;

    if (info->payload_size != j->size)
        return gabi_error_set(reterr, -EINVAL, NULL, "wrong size");
    return 0;
}

static int sink_dest(void *userdata, uint64_t offset, size_t max, struct gabi_vhost_state_seg *ret,
                     struct gabi_error *reterr)
{
    struct job *j = userdata;

    (void)reterr;
    if (j->dst == DST_MEMORY)
        *ret = (struct gabi_vhost_state_seg){
            .type = GABI_VHOST_STATE_SEG_MEMORY, .mem = j->dst_mem + offset, .size = max};
    else
        *ret = (struct gabi_vhost_state_seg){
            .type = GABI_VHOST_STATE_SEG_FILE, .fd = j->dst_fd, .offset = offset, .size = max};
    return 0;
}

static int sink_commit(void *userdata, struct gabi_error *reterr)
{
    (void)userdata, (void)reterr;
    return 0;
}

static void sink_abort(void *userdata)
{
    (void)userdata;
}

static const struct gabi_vhost_state_sink_ops sink_ops = {
    .accept = sink_accept, .dest = sink_dest, .commit = sink_commit, .abort = sink_abort};

static int loop_writer(struct gabi_vhost_state_writer *w)
{
    struct gabi_error err;
    int r;

    while ((r = gabi_vhost_state_writer_process(w, &err)) == GABI_VHOST_STATE_MORE) {
        struct pollfd p = {gabi_vhost_state_writer_get_fd(w),
                           (short)gabi_vhost_state_writer_get_events(w), 0};

        poll(&p, 1, -1);
    }
    if (r < 0)
        fprintf(stderr, "writer: %s\n", err.message);
    return r < 0 ? -1 : 0;
}

static int loop_reader(struct gabi_vhost_state_reader *r)
{
    struct gabi_error err;
    int k;

    while ((k = gabi_vhost_state_reader_process(r, &err)) == GABI_VHOST_STATE_MORE) {
        struct pollfd p = {gabi_vhost_state_reader_get_fd(r),
                           (short)gabi_vhost_state_reader_get_events(r), 0};

        poll(&p, 1, -1);
    }
    if (k < 0)
        fprintf(stderr, "reader: %s\n", err.message);
    return k < 0 ? -1 : 0;
}

/* ---- the two sides of each method ------------------------------------------------------- */

static void sender_run(struct job *j);

static void *sender(void *arg)
{
    struct job *j = arg;
    double c0 = thread_cpu();

    sender_run(j);
    j->cpu = thread_cpu() - c0;
    return NULL;
}

static void sender_run(struct job *j)
{
    static uint8_t buf[CHUNK];
    size_t off = 0;

    if (j->method == OURS) {
        struct gabi_vhost_state_writer *w = NULL;
        struct gabi_error err;

        if (gabi_vhost_state_writer_new(j->fd, "guestabi-blk", "1", j->size, &src_ops, j, &w,
                                        &err) < 0) {
            fprintf(stderr, "writer: %s\n", err.message);
            j->failed = 1;
            return;
        }
        j->failed = loop_writer(w);
        gabi_vhost_state_writer_get_stats(w, &j->stats);
        gabi_vhost_state_writer_free(w);
        return;
    }
    while (off < j->size) {
        size_t n = j->size - off < CHUNK ? j->size - off : CHUNK;
        ssize_t k;

        if (j->method == RAW_RW) {
            if (j->src == SRC_RAMDISK) {
                k = write(j->fd, j->src_mem + off, n);
            } else {
                k = pread(j->src_fd, buf, n, (off_t)off);
                if (k > 0 && write_all(j->fd, buf, (size_t)k) < 0)
                    k = -1;
            }
        } else if (j->method == RAW_VMSPLICE) {
            struct iovec iov = {(void *)(j->src_mem + off), n};

            k = vmsplice(j->fd, &iov, 1, 0);
        } else {
            loff_t o = (loff_t)off;

            k = splice(j->src_fd, &o, j->fd, NULL, n, SPLICE_F_MOVE);
        }
        if (k <= 0) {
            j->failed = 1;
            break;
        }
        off += (size_t)k;
    }
    close(j->fd);
}

static void receiver_run(struct job *j);

static void receiver(struct job *j)
{
    double c0 = thread_cpu();

    receiver_run(j);
    j->cpu = thread_cpu() - c0;
}

static void receiver_run(struct job *j)
{
    static uint8_t buf[CHUNK];
    size_t off = 0;

    if (j->method == OURS) {
        struct gabi_vhost_state_reader *r = NULL;
        struct gabi_error err;

        if (gabi_vhost_state_reader_new(j->fd, "guestabi-blk", 0, &sink_ops, j, &r, &err) < 0) {
            fprintf(stderr, "reader: %s\n", err.message);
            j->failed = 1;
            return;
        }
        j->failed = loop_reader(r);
        gabi_vhost_state_reader_get_stats(r, &j->stats);
        gabi_vhost_state_reader_free(r);
        return;
    }
    for (;;) {
        ssize_t k;

        if (j->dst == DST_MEMORY) {
            k = read(j->fd, j->dst_mem + off, j->size - off < CHUNK ? j->size - off : CHUNK);
        } else if (j->method == RAW_RW) {
            k = read(j->fd, buf, CHUNK);
            if (k > 0 && pwrite(j->dst_fd, buf, (size_t)k, (off_t)off) != k)
                k = -1;
        } else {
            loff_t o = (loff_t)off;

            k = splice(j->fd, NULL, j->dst_fd, &o, CHUNK, SPLICE_F_MOVE);
        }
        if (k < 0)
            j->failed = 1;
        if (k <= 0)
            break;
        off += (size_t)k;
    }
    if (off != j->size)
        j->failed = 1;
    close(j->fd);
}

/* One transfer: seconds, or -1. */
static double run_once(struct job *tmpl, struct gabi_vhost_state_stats *ret_ws,
                       struct gabi_vhost_state_stats *ret_rs, double *ret_cpu)
{
    struct job s = *tmpl, r = *tmpl;
    pthread_t t;
    int p[2];
    double start, end;

    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    fcntl(p[1], F_SETPIPE_SZ, (int)MiB); /* the size guestabi grows its pipes to */
    s.fd = p[1];
    r.fd = p[0];
    start = bench_now();
    if (pthread_create(&t, NULL, sender, &s) != 0)
        return -1;
    receiver(&r);
    pthread_join(t, NULL);
    end = bench_now();
    if (s.failed || r.failed)
        return -1;
    ret_cpu[0] = s.cpu;
    ret_cpu[1] = r.cpu;
    if (ret_ws)
        *ret_ws = s.stats;
    if (ret_rs)
        *ret_rs = r.stats;
    return end - start;
}

/* ---- 1 MiB end to end, one thread ------------------------------------------------------- */

static double small_ours(struct job *j)
{
    struct gabi_vhost_state_writer *w = NULL;
    struct gabi_vhost_state_reader *r = NULL;
    int p[2], wr = GABI_VHOST_STATE_MORE, rr = GABI_VHOST_STATE_MORE;
    double start = bench_now();

    if (pipe2(p, O_CLOEXEC) < 0 ||
        gabi_vhost_state_writer_new(p[1], "guestabi-blk", "1", j->size, &src_ops, j, &w, NULL) <
            0 ||
        gabi_vhost_state_reader_new(p[0], "guestabi-blk", 0, &sink_ops, j, &r, NULL) < 0)
        return -1;
    while (rr == GABI_VHOST_STATE_MORE) {
        if (wr == GABI_VHOST_STATE_MORE)
            wr = gabi_vhost_state_writer_process(w, NULL);
        rr = gabi_vhost_state_reader_process(r, NULL);
    }
    gabi_vhost_state_writer_free(w);
    gabi_vhost_state_reader_free(r);
    return wr == GABI_VHOST_STATE_DONE && rr == GABI_VHOST_STATE_DONE ? bench_now() - start : -1;
}

static double small_raw(struct job *j)
{
    size_t sent = 0, got = 0;
    int p[2];
    double start = bench_now();

    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
        return -1;
    fcntl(p[1], F_SETPIPE_SZ, (int)MiB);
    while (got < j->size) {
        ssize_t k;

        if (sent < j->size) {
            k = write(p[1], j->src_mem + sent, j->size - sent);
            if (k > 0)
                sent += (size_t)k;
            if (sent == j->size)
                close(p[1]);
        }
        k = read(p[0], j->dst_mem + got, j->size - got);
        if (k > 0)
            got += (size_t)k;
    }
    close(p[0]);
    return bench_now() - start;
}

/* ---- how parallel is this machine ------------------------------------------------------- */

struct crc_job {
    const uint8_t *buf;
    size_t size;
    int reps;
    double gbps;
};

static void *crc_loop(void *arg)
{
    struct crc_job *j = arg;
    uint32_t crc = 0;
    double t0 = bench_now();

    for (int i = 0; i < j->reps; i++)
        crc = gabi_vhost_state_crc32c(crc, j->buf, j->size);
    j->gbps = (double)j->reps * (double)j->size / (bench_now() - t0) / 1e9;
    return crc == 1 ? arg : NULL;
}

/* ---- setup ------------------------------------------------------------------------------ */

static void fill(uint8_t *p, size_t size)
{
    uint64_t x = 0x9E3779B97F4A7C15ull;

    for (size_t i = 0; i + 8 <= size; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(p + i, &x, 8);
    }
}

static uint8_t *map_memfd(int fd, size_t size, bool writable)
{
    void *m =
        mmap(NULL, size, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED | MAP_POPULATE, fd, 0);

    return m == MAP_FAILED ? NULL : m;
}

struct sample {
    double time, cpu_send, cpu_recv;
};

static int cmp_time(const void *a, const void *b)
{
    return cmp_double(&((const struct sample *)a)->time, &((const struct sample *)b)->time);
}

/* The median of one field over n samples. */
static double median_of(const struct sample *s, int n, size_t field)
{
    double v[100];

    for (int i = 0; i < n; i++)
        v[i] = *(const double *)((const char *)&s[i] + field);
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static const char *method_name[N_METHODS] = {"raw read/write", "raw vmsplice", "raw splice",
                                             "guestabi"};

int main(int argc, char **argv)
{
    size_t size_mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    const char *dir = argc > 3 ? argv[3] : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    size_t size = size_mib * MiB;
    int ram_fd, file_fd, dst_fd;
    uint8_t *ram, *dst_mem, *dst_map;
    char path[4096];
    static const struct {
        const char *name;
        enum src_kind src;
        enum dst_kind dst;
    } cases[] = {
        {"RAM disk (memfd) -> memory", SRC_RAMDISK, DST_MEMORY},
        {"RAM disk (memfd) -> file", SRC_RAMDISK, DST_FILE},
        {"regular file -> file", SRC_FILE, DST_FILE},
        {"regular file -> memory", SRC_FILE, DST_MEMORY},
    };
    enum { N_CASES = sizeof(cases) / sizeof(cases[0]) };
    struct sample *t[N_CASES][N_METHODS];
    const char *only = getenv("BENCH_STATE_CASES");
    const char *only_methods = getenv("BENCH_STATE_METHODS");
    struct gabi_vhost_state_stats ws[N_CASES], rs[N_CASES];

    if (size_mib == 0 || rounds < 1 || rounds > 100) {
        fprintf(stderr, "usage: %s [SIZE_MIB [ROUNDS [DIR]]]\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* the RAM disk, the regular file (same bytes, in the page cache), the destinations */
    ram_fd = memfd_create("ramdisk", MFD_CLOEXEC);
    dst_fd = memfd_create("dest", MFD_CLOEXEC);
    snprintf(path, sizeof(path), "%s/bench_state.XXXXXX", dir);
    file_fd = mkstemp(path);
    if (ram_fd < 0 || dst_fd < 0 || file_fd < 0 || ftruncate(ram_fd, (off_t)size) < 0 ||
        ftruncate(dst_fd, (off_t)size) < 0) {
        perror("setup");
        return 2;
    }
    unlink(path);
    ram = map_memfd(ram_fd, size, true);
    dst_map = map_memfd(dst_fd, size, true);
    dst_mem =
        mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (!ram || !dst_map || dst_mem == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    fill(ram, size);
    memset(dst_map, 1, size);
    memset(dst_mem, 1, size);
    if (write_all(file_fd, ram, size) < 0 || fsync(file_fd) < 0) {
        perror("writing the regular file");
        return 2;
    }
    for (int c = 0; c < N_CASES; c++)
        for (int m = 0; m < N_METHODS; m++)
            t[c][m] = calloc((size_t)rounds, sizeof(struct sample));

    printf("device-state transfer: %zu MiB through a 1 MiB pipe, sender thread -> receiver "
           "thread, %d rounds interleaved (regular file in %s, CRC32C with %s)\n",
           size_mib, rounds, dir,
           state_crc32c_fold() ? "VPCLMULQDQ folding"
           : state_crc32c_hw() ? "SSE4.2"
                               : "tables");
    for (int round = 0; round < rounds; round++)
        for (int c = 0; c < N_CASES; c++)
            for (int m = 0; m < N_METHODS; m++) {
                struct job j = {.method = (enum method)m,
                                .src = cases[c].src,
                                .dst = cases[c].dst,
                                .src_mem = ram,
                                .src_fd = cases[c].src == SRC_RAMDISK ? ram_fd : file_fd,
                                .dst_mem = dst_mem,
                                .dst_fd = dst_fd,
                                .size = size};
                struct sample *x = &t[c][m][round];
                double cpu[2];

                if ((m == RAW_VMSPLICE && cases[c].src != SRC_RAMDISK) ||
                    (only && !strchr(only, '0' + c)) ||
                    (only_methods && !strchr(only_methods, '0' + m)))
                    continue;
                if (cases[c].dst == DST_FILE)
                    memset(dst_map, 0, 4096); /* every run has to bring the bytes again */
                else
                    memset(dst_mem, 0, 4096);
                x->time = run_once(&j, m == OURS ? &ws[c] : NULL, m == OURS ? &rs[c] : NULL, cpu);
                if (x->time < 0) {
                    fprintf(stderr, "%s, %s: transfer failed\n", cases[c].name, method_name[m]);
                    return 1;
                }
                x->cpu_send = cpu[0];
                x->cpu_recv = cpu[1];
                if (round == 0 &&
                    memcmp(cases[c].dst == DST_FILE ? dst_map : dst_mem, ram, size) != 0) {
                    fprintf(stderr, "%s, %s: the destination differs\n", cases[c].name,
                            method_name[m]);
                    return 1;
                }
            }

    for (int c = 0; c < N_CASES; c++) {
        double best[N_METHODS] = {0}, med[N_METHODS] = {0}, bs, ms;
        double gib = (double)size / (double)(1ul << 30);

        if (only && !strchr(only, '0' + c))
            continue;
        printf("\n%-40s %9s %9s   %s\n", cases[c].name, "GB/s best", "median",
               "CPU ms/GiB sender, receiver (median)");
        for (int m = 0; m < N_METHODS; m++) {
            char label[64];

            if (t[c][m][0].time <= 0)
                continue;
            qsort(t[c][m], (size_t)rounds, sizeof(struct sample), cmp_time);
            best[m] = (double)size / t[c][m][0].time / 1e9;
            med[m] = (double)size / median_of(t[c][m], rounds, offsetof(struct sample, time)) / 1e9;
            if (m == OURS)
                snprintf(label, sizeof(label), "guestabi (%s%s%s -> %s%s)",
                         ws[c].vmspliced ? "vmsplice" : "", ws[c].spliced ? "splice" : "",
                         ws[c].copied ? "write" : "", rs[c].spliced ? "splice" : "",
                         rs[c].copied ? "read" : "");
            else
                snprintf(label, sizeof(label), "%s", method_name[m]);
            printf("  %-38s %9.2f %9.2f   %6.0f %6.0f\n", label, best[m], med[m],
                   1e3 * median_of(t[c][m], rounds, offsetof(struct sample, cpu_send)) / gib,
                   1e3 * median_of(t[c][m], rounds, offsetof(struct sample, cpu_recv)) / gib);
        }
        bs = MAX(best[RAW_SPLICE], best[RAW_VMSPLICE]);
        ms = MAX(med[RAW_SPLICE], med[RAW_VMSPLICE]);
        printf("  guestabi / raw read/write: %.2f best, %.2f median; guestabi / best raw splice: "
               "%.2f best, %.2f median\n",
               best[OURS] / best[RAW_RW], med[OURS] / med[RAW_RW], best[OURS] / bs, med[OURS] / ms);
    }
    printf("target: guestabi >= 0.9 of the raw copy\n");
    if (only || only_methods)
        return 0;

    /* 1 MiB end to end */
    {
        enum { N = 400 };
        struct job j = {
            .src = SRC_RAMDISK, .dst = DST_MEMORY, .src_mem = ram, .dst_mem = dst_mem, .size = MiB};
        double a[N], b[N];

        for (int i = 0; i < 20; i++)
            small_ours(&j), small_raw(&j);
        for (int i = 0; i < N; i++) {
            a[i] = small_ours(&j);
            b[i] = small_raw(&j);
            if (a[i] < 0 || b[i] < 0) {
                fprintf(stderr, "1 MiB transfer failed\n");
                return 1;
            }
        }
        if (memcmp(dst_mem, ram, MiB) != 0) {
            fprintf(stderr, "1 MiB: the destination differs\n");
            return 1;
        }
        qsort(a, N, sizeof(double), cmp_double);
        qsort(b, N, sizeof(double), cmp_double);
        printf("\n1 MiB state end to end (one thread, new pipe, header + checksum + transfer + "
               "verify + commit): median %.3f ms, p90 %.3f ms; raw copy of the same bytes %.3f "
               "ms; added %.3f ms; target < 2 ms\n",
               a[N / 2] * 1e3, a[N * 9 / 10] * 1e3, b[N / 2] * 1e3, (a[N / 2] - b[N / 2]) * 1e3);
    }

    /* the checksum alone */
    {
        size_t hot = 256 << 10;
        uint32_t crc = 0;
        double t0, cold, warm;
        int reps = (int)(4 * size / hot);

        t0 = bench_now();
        crc ^= gabi_vhost_state_crc32c(0, ram, size);
        cold = (double)size / (bench_now() - t0) / 1e9;
        t0 = bench_now();
        for (int i = 0; i < reps; i++)
            crc ^= gabi_vhost_state_crc32c(crc, dst_mem + (size_t)(i % 4) * hot, hot);
        warm = (double)reps * (double)hot / (bench_now() - t0) / 1e9;
        printf("\nCRC32C: %.1f GB/s over %zu MiB from memory, %.1f GB/s over 256 KiB in cache "
               "(%08x)\n",
               cold, size_mib, warm, crc);
        {
            struct crc_job one = {dst_mem, hot, reps}, two[2] = {one, one};
            pthread_t th[2];

            two[1].buf = dst_mem + 2 * hot;
            crc_loop(&one);
            for (int i = 0; i < 2; i++)
                pthread_create(&th[i], NULL, crc_loop, &two[i]);
            for (int i = 0; i < 2; i++)
                pthread_join(th[i], NULL);
            printf("this machine's parallelism: CRC32C on one thread %.1f GB/s, on two at once "
                   "%.1f + %.1f GB/s (%.2fx): the sender's and the receiver's checksums %s\n",
                   one.gbps, two[0].gbps, two[1].gbps, (two[0].gbps + two[1].gbps) / one.gbps,
                   (two[0].gbps + two[1].gbps) / one.gbps < 1.6
                       ? "largely share one core's time here"
                       : "run side by side");
        }
        printf("checksumming before sending (a payload checksum in the header) would add %.0f ms "
               "before the first payload byte per GiB; the trailer costs nothing of that\n",
               1e3 * (double)(1ul << 30) / (cold * 1e9));
    }
    return 0;
}
