/* SPDX-License-Identifier: MIT */
/*
 * Packets per second through guestabi-net, as testpmd's io forwarding is measured: the
 * back-end runs as a child, busy-polling on one core, with two ports forwarding to each
 * other; this process is both guests on the other core: it transmits on port A and receives
 * on port B (or, with --loopback, transmits and receives on one port). Interrupts and kicks
 * are suppressed both ways, so the rings are the only channel. Not a test: it prints Mpps.
 *
 *   bench_net [-t SECONDS] [--mode NAME] [--ring N] [--loopback] [--sizes 64,1500]
 *             [--event-idx] [--backend PATH | --connect DIR]
 *
 * --connect DIR drives a back-end that already listens on DIR/a and DIR/b (to compare with,
 * e.g., DPDK testpmd's vhost PMD in io forwarding on the same machine).
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"
#include "vhost_guest.h"

#ifndef GUESTABI_NET_PATH
#define GUESTABI_NET_PATH "guestabi-net"
#endif

#define SLOT 2048u

struct guest {
    struct gabi_vhost_client *c;
    struct gabi_vhost_guestmem *gm;
    struct gabi_vhost_guestq *rx, *tx;
    uint64_t rx_slots, tx_slots;
    unsigned hdr_len;
};

static const char *backend_path = GUESTABI_NET_PATH;

static pid_t start_backend(const char *dir, const char *mode, bool loopback, int cpu)
{
    char a[128], b[128];

    snprintf(a, sizeof(a), "%s/a", dir);
    snprintf(b, sizeof(b), "%s/b", dir);
    const char *argv[] = {backend_path,
                          "--busy-poll",
                          "--mode",
                          mode,
                          "--ready-fd",
                          BENCH_READY_FD_STR,
                          "--socket",
                          a,
                          loopback ? "--loopback" : "--socket",
                          loopback ? NULL : b,
                          NULL};

    return bench_spawn_ready(argv, cpu, false, 10000, "bench_net");
}

static int guest_connect(struct guest *g, const char *path, uint16_t ring, unsigned qflags)
{
    struct gabi_error err = {0};
    /* what this driver implements (split rings only) */
    uint64_t want = (1ull << GABI_F_VERSION_1) | (1ull << GABI_NET_F_MRG_RXBUF) |
                    (1ull << GABI_F_INDIRECT_DESC) | (1ull << GABI_F_EVENT_IDX) |
                    (1ull << GABI_F_PROTOCOL_FEATURES);
    uint64_t want_pf = (1ull << GABI_PF_MQ) | (1ull << GABI_PF_LOG_SHMFD) |
                       (1ull << GABI_PF_REPLY_ACK) | (1ull << GABI_PF_NET_MTU) |
                       (1ull << GABI_PF_CONFIGURE_MEM_SLOTS) | (1ull << GABI_PF_STATUS);
    uint64_t f;
    int r;

    memset(g, 0, sizeof(*g));
    if (!(qflags & GABI_VHOST_GUESTQ_EVENT_IDX))
        want &= ~(1ull << GABI_F_EVENT_IDX);
    r = gabi_vhost_client_connect(path, 10000, &g->c, &err);
    if (r < 0) {
        fprintf(stderr, "bench_net: %s: %s\n", path, err.message);
        return r;
    }
    if ((r = gabi_vhost_client_negotiate(g->c, want, want_pf, &f, NULL)) < 0 ||
        (r = gabi_vhost_guestmem_new(64u << 20, 2, &g->gm, &err)) < 0 ||
        (r = gabi_vhost_client_set_mem_table(g->c, g->gm)) < 0 ||
        (r = gabi_vhost_guestq_new(g->gm, ring, qflags, &g->rx)) < 0 ||
        (r = gabi_vhost_guestq_new(g->gm, ring, qflags, &g->tx)) < 0 ||
        (r = gabi_vhost_guestmem_alloc(g->gm, (uint64_t)ring * SLOT, 4096, &g->rx_slots)) < 0 ||
        (r = gabi_vhost_guestmem_alloc(g->gm, (uint64_t)ring * SLOT, 4096, &g->tx_slots)) < 0)
        return r;
    g->hdr_len = 12;
    gabi_vhost_guestq_set_interrupts(g->rx, false);
    gabi_vhost_guestq_set_interrupts(g->tx, false);
    if ((r = gabi_vhost_client_start_vring(g->c, 0, g->rx, 0, false)) < 0 ||
        (r = gabi_vhost_client_start_vring(g->c, 1, g->tx, 0, false)) < 0)
        return r;
    if (gabi_vhost_client_protocol_features(g->c) & (1ull << GABI_PF_STATUS))
        return gabi_vhost_client_set_status(g->c, 0xf);
    return 0;
}

static void guest_free(struct guest *g)
{
    gabi_vhost_client_free(g->c);
    gabi_vhost_guestq_free(g->rx);
    gabi_vhost_guestq_free(g->tx);
    gabi_vhost_guestmem_free(g->gm);
}

/* Fill every TX slot with a frame of len bytes behind a zero header. */
static void prepare_frames(struct guest *g, uint16_t ring, size_t len)
{
    for (unsigned i = 0; i < ring; i++) {
        uint8_t *p = gabi_vhost_guestmem_ptr(g->gm, g->tx_slots + (uint64_t)i * SLOT, SLOT);

        memset(p, 0, g->hdr_len);
        memset(p + g->hdr_len, 0xff, 6);
        memcpy(p + g->hdr_len + 6, "\x52\x54\x00\x00\x00\x01\x88\xb5", 8);
        for (size_t k = 14; k < len; k++)
            p[g->hdr_len + k] = (uint8_t)k;
    }
}

struct result {
    uint64_t tx, rx;
    double secs;
};

static struct result run(struct guest *src, struct guest *dst, size_t len, double secs)
{
    struct result res = {0};
    double start = bench_now(), end = start + secs, t;
    unsigned iter = 0;

    for (;;) {
        uint32_t id, l;
        int head;

        /* refill: RX buffers on dst, frames on src */
        while ((head = gabi_vhost_guestq_next_head(dst->rx)) >= 0) {
            struct gabi_vhost_gbuf b = {dst->rx_slots + (uint64_t)head * SLOT, SLOT};

            gabi_vhost_guestq_add(dst->rx, &b, 0, 1, false);
        }
        gabi_vhost_guestq_kick(dst->rx);
        while ((head = gabi_vhost_guestq_next_head(src->tx)) >= 0) {
            struct gabi_vhost_gbuf b = {src->tx_slots + (uint64_t)head * SLOT,
                                        (uint32_t)(src->hdr_len + len)};

            gabi_vhost_guestq_add(src->tx, &b, 1, 0, false);
        }
        gabi_vhost_guestq_kick(src->tx);
        /* reap */
        while (gabi_vhost_guestq_get_used(dst->rx, &id, &l) == 1)
            res.rx++;
        while (gabi_vhost_guestq_get_used(src->tx, &id, &l) == 1)
            res.tx++;
        if (++iter % 256 == 0 && (t = bench_now()) >= end) {
            res.secs = t - start;
            return res;
        }
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"mode", required_argument, NULL, 'm'},
        {"ring", required_argument, NULL, 'r'},
        {"loopback", no_argument, NULL, 'l'},
        {"sizes", required_argument, NULL, 's'},
        {"event-idx", no_argument, NULL, 'e'},
        {"backend", required_argument, NULL, 'b'},
        {"connect", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *mode = "upstream.guestabi-net.v2", *sizes = "64,1500", *connect_dir = NULL;
    char dir[256] = "/tmp/gabi-bench-XXXXXX", a[300], b[300];
    double secs = 5;
    unsigned ring = 256, qflags = 0;
    bool loopback = false;
    struct guest ga, gb;
    int c, cpus = (int)sysconf(_SC_NPROCESSORS_ONLN), status;
    pid_t pid;

    while ((c = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            secs = atof(optarg);
            break;
        case 'm':
            mode = optarg;
            break;
        case 'r':
            ring = (unsigned)atoi(optarg);
            break;
        case 'l':
            loopback = true;
            break;
        case 's':
            sizes = optarg;
            break;
        case 'e':
            qflags |= GABI_VHOST_GUESTQ_EVENT_IDX;
            break;
        case 'b':
            backend_path = optarg;
            break;
        case 'c':
            connect_dir = optarg;
            break;
        default:
            printf("usage: bench_net [-t SECONDS] [--mode NAME] [--ring N] [--loopback] "
                   "[--sizes 64,1500] [--event-idx] [--backend PATH | --connect DIR]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    setenv("GUESTABI_SYSTEM_CATALOG", "", 0);
    if (connect_dir) {
        /* another back-end, already listening on DIR/a and DIR/b (for comparisons) */
        pid = 0;
        snprintf(dir, sizeof(dir), "%s", connect_dir);
        mode = "(external)";
    } else {
        if (!mkdtemp(dir))
            return 1;
        pid = start_backend(dir, mode, loopback, cpus > 1 ? 1 : -1);
        if (pid < 0)
            return 1;
    }
    if (cpus > 1)
        bench_pin(0);
    snprintf(a, sizeof(a), "%s/a", dir);
    snprintf(b, sizeof(b), "%s/b", dir);
    if (guest_connect(&ga, a, (uint16_t)ring, qflags) < 0 ||
        (!loopback && guest_connect(&gb, b, (uint16_t)ring, qflags) < 0)) {
        fprintf(stderr, "bench_net: cannot set the guests up\n");
        if (pid > 0)
            kill(pid, SIGKILL);
        return 1;
    }
    printf("guestabi-net %s, mode %s, ring %u, back-end busy-polling on CPU %d, driver on CPU %d\n",
           loopback ? "loopback" : "two-port io forwarding (A tx -> B rx)", mode, ring,
           cpus > 1 ? 1 : 0, 0);
    for (const char *s = sizes; *s;) {
        size_t len = strtoul(s, (char **)&s, 10);
        struct result r;

        if (*s == ',')
            s++;
        if (len < 60 || len > SLOT - 12) {
            fprintf(stderr, "bench_net: frame size %zu out of range (60..%u)\n", len, SLOT - 12);
            continue;
        }
        prepare_frames(&ga, (uint16_t)ring, len);
        run(&ga, loopback ? &ga : &gb, len, 0.5); /* warm up */
        r = run(&ga, loopback ? &ga : &gb, len, secs);
        printf("%5zu B: %6.2f Mpps received, %6.2f Mpps sent (%.2f Gbit/s received)\n", len,
               r.rx / r.secs / 1e6, r.tx / r.secs / 1e6, r.rx * len * 8 / r.secs / 1e9);
    }
    guest_free(&ga);
    if (!loopback)
        guest_free(&gb);
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, &status, 0);
        rmdir(dir);
    }
    return 0;
}
