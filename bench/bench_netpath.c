/* SPDX-License-Identifier: MIT */
/*
 * guestabi-net's data path in lock-step, for counting its instructions per packet with
 * callgrind: repeatable to a few instructions, where wall-clock figures on a shared machine
 * are not. This process is the guest: it posts a whole ring (TX frames for a --sink port, or
 * RX buffers for a --generate port), publishes it with one avail-index update and one kick,
 * and waits until the back-end has used all of it before posting the next ring. guestabi-net
 * runs kick-driven (no --busy-poll), so it does no empty passes: every instruction it runs
 * after the connection is set up belongs to a ring's worth of packets.
 *
 *   bench_netpath [--tx | --rx] [--size BYTES] [--rounds N] [--ring N] [--mode NAME]
 *                 [--packed] [--catalog DIR] [--backend PATH]
 *                 [--wrap 'valgrind --tool=callgrind ...']
 *
 * --packed: packed virtqueues (VIRTIO_F_RING_PACKED, with IN_ORDER as DPDK's virtio_user asks
 * for it); the mode then defaults to upstream.guestabi-net.v4.
 *
 * bench/race-dpdk.sh -c gabi runs it under callgrind (collecting only inside guestabi-net's
 * main loop) and divides by the packets printed here.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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

#ifndef GUESTABI_NET_PATH
#define GUESTABI_NET_PATH "guestabi-net"
#endif

#define SLOT    2048u
#define MAX_ARG 32

/* guestabi-net (behind the words of wrap, if any) on dir/s: 0 and *ret_pid, or -1. */
static int start_backend(const char *backend, char *wrap, const char *mode, const char *catalog,
                         bool tx, unsigned size, const char *sock, pid_t *ret_pid)
{
    char size_s[16];
    const char *argv[MAX_ARG + 16];
    unsigned n = 0;
    pid_t pid;

    for (char *w = strtok(wrap, " "); w && n < MAX_ARG; w = strtok(NULL, " "))
        argv[n++] = w;
    snprintf(size_s, sizeof(size_s), "%u", size);
    argv[n++] = backend;
    argv[n++] = "--mode";
    argv[n++] = mode;
    if (catalog) {
        argv[n++] = "--catalog";
        argv[n++] = catalog;
    }
    argv[n++] = "--ready-fd";
    argv[n++] = BENCH_READY_FD_STR;
    argv[n++] = "--socket";
    argv[n++] = sock;
    argv[n++] = tx ? "--sink" : "--generate";
    if (!tx)
        argv[n++] = size_s;
    argv[n] = NULL;
    pid = bench_spawn_ready(argv, -1, false, 60000, "bench_netpath");
    if (pid < 0)
        return -1;
    *ret_pid = pid;
    return 0;
}

/* Wait until the device has used n more chains of q than *used (polling, so that the
 * back-end makes no system call for us), and reap them. */
static int wait_used(struct gabi_vhost_guestq *q, uint16_t n)
{
    struct timespec pause = {0, 20000};
    double deadline = bench_now() + 60;
    uint32_t id, len;
    unsigned got = 0;

    while (got < n) {
        if (gabi_vhost_guestq_get_used(q, &id, &len) == 1) {
            got++;
            continue;
        }
        if (bench_now() > deadline)
            return -ETIMEDOUT;
        nanosleep(&pause, NULL);
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"tx", no_argument, NULL, 't'},
        {"rx", no_argument, NULL, 'r'},
        {"size", required_argument, NULL, 's'},
        {"rounds", required_argument, NULL, 'n'},
        {"ring", required_argument, NULL, 'q'},
        {"mode", required_argument, NULL, 'm'},
        {"backend", required_argument, NULL, 'b'},
        {"wrap", required_argument, NULL, 'w'},
        {"catalog", required_argument, NULL, 'c'},
        {"packed", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *mode = NULL, *backend = GUESTABI_NET_PATH, *catalog = NULL;
    char wrap[1024] = "", dir[] = "/tmp/gabi-netpath-XXXXXX", sock[128];
    /* what DPDK's virtio_user acks of guestabi-net's offer (IN_ORDER where the mode has it:
     * the driver then takes descriptors in ring order and reaps batched used entries) */
    uint64_t want = (1ull << GABI_F_VERSION_1) | (1ull << GABI_NET_F_MRG_RXBUF) |
                    (1ull << GABI_F_INDIRECT_DESC) | (1ull << GABI_F_PROTOCOL_FEATURES) |
                    (1ull << GABI_F_IN_ORDER);
    uint64_t want_pf =
        (1ull << GABI_PF_MQ) | (1ull << GABI_PF_REPLY_ACK) | (1ull << GABI_PF_STATUS);
    unsigned size = 64, rounds = 2000, ring = 256, qflags = 0;
    bool tx = true;
    struct gabi_error err = {0};
    struct gabi_vhost_client *c = NULL;
    struct gabi_vhost_guestmem *gm = NULL;
    struct gabi_vhost_guestq *rxq = NULL, *txq = NULL, *q;
    uint64_t slots = 0, packets = 0, got = 0;
    double t0;
    pid_t pid;
    int ch, r, status;

    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 't':
        case 'r':
            tx = ch == 't';
            break;
        case 's':
            size = (unsigned)atoi(optarg);
            break;
        case 'n':
            rounds = (unsigned)atoi(optarg);
            break;
        case 'q':
            ring = (unsigned)atoi(optarg);
            break;
        case 'm':
            mode = optarg;
            break;
        case 'b':
            backend = optarg;
            break;
        case 'c':
            catalog = optarg;
            break;
        case 'p':
            want |= 1ull << GABI_F_RING_PACKED;
            qflags = GABI_VHOST_GUESTQ_PACKED;
            break;
        case 'w':
            snprintf(wrap, sizeof(wrap), "%s", optarg);
            break;
        default:
            printf("usage: bench_netpath [--tx | --rx] [--size BYTES] [--rounds N] [--ring N] "
                   "[--mode NAME] [--packed] [--catalog DIR] [--backend PATH] "
                   "[--wrap COMMAND]\n");
            return ch == 'h' ? 0 : 2;
        }
    }
    if (size < 60 || size > SLOT - 12 || ring < 2 || ring > 1024 || (ring & (ring - 1))) {
        fprintf(stderr, "bench_netpath: --size 60..%u, --ring a power of 2 up to 1024\n",
                SLOT - 12);
        return 2;
    }
    if (!mode)
        mode = qflags ? "upstream.guestabi-net.v4" : "upstream.guestabi-net.v2";
    signal(SIGPIPE, SIG_IGN);
    setenv("GUESTABI_SYSTEM_CATALOG", "", 0);
    if (!mkdtemp(dir))
        return 1;
    snprintf(sock, sizeof(sock), "%s/s", dir);
    if (start_backend(backend, wrap, mode, catalog, tx, size, sock, &pid) < 0)
        return 1;
    if ((r = gabi_vhost_client_connect(sock, 60000, &c, &err)) >= 0 &&
        (r = gabi_vhost_client_negotiate(c, want, want_pf, &got, NULL)) >= 0 &&
        (got & (1ull << GABI_F_IN_ORDER)))
        qflags |= GABI_VHOST_GUESTQ_IN_ORDER;
    if (r < 0 || (r = gabi_vhost_guestmem_new(64u << 20, 1, &gm, &err)) < 0 ||
        (r = gabi_vhost_client_set_mem_table(c, gm)) < 0 ||
        (r = gabi_vhost_guestq_new(gm, (uint16_t)ring, qflags, &rxq)) < 0 ||
        (r = gabi_vhost_guestq_new(gm, (uint16_t)ring, qflags, &txq)) < 0 ||
        (r = gabi_vhost_guestmem_alloc(gm, (uint64_t)ring * SLOT, 4096, &slots)) < 0 ||
        (r = gabi_vhost_client_start_vring(c, 0, rxq, gabi_vhost_guestq_base(rxq), false)) < 0 ||
        (r = gabi_vhost_client_start_vring(c, 1, txq, gabi_vhost_guestq_base(txq), false)) < 0 ||
        (r = gabi_vhost_client_set_status(c, 0xf)) < 0) {
        fprintf(stderr, "bench_netpath: set-up failed: %s\n",
                err.message[0] ? err.message : strerror(-r));
        kill(pid, SIGKILL);
        return 1;
    }
    gabi_vhost_guestq_set_interrupts(rxq, false);
    gabi_vhost_guestq_set_interrupts(txq, false);
    /* the frames: a zero header (12 bytes), then an Ethernet frame */
    for (unsigned i = 0; i < ring; i++) {
        uint8_t *p = gabi_vhost_guestmem_ptr(gm, slots + (uint64_t)i * SLOT, SLOT);

        memset(p, 0, SLOT);
        memset(p + 12, 0xff, 6);
        memcpy(p + 18, "\x52\x54\x00\x00\x00\x01\x08\x00", 8);
    }
    q = tx ? txq : rxq;
    t0 = bench_now();
    for (unsigned round = 0; round < rounds; round++) {
        for (unsigned i = 0; i < ring; i++) {
            int head = gabi_vhost_guestq_next_head(q);
            struct gabi_vhost_gbuf b = {slots + (uint64_t)head * SLOT, tx ? 12 + size : SLOT};

            if (head < 0 || gabi_vhost_guestq_add(q, &b, tx ? 1 : 0, tx ? 0 : 1, false) < 0) {
                fprintf(stderr, "bench_netpath: ring full\n");
                goto out;
            }
        }
        gabi_vhost_guestq_publish(q);
        gabi_vhost_guestq_kick(q);
        if (wait_used(q, (uint16_t)ring) < 0) {
            fprintf(stderr, "bench_netpath: the back-end stopped using the ring\n");
            goto out;
        }
        packets += ring;
    }
out:
    printf("%s %u B: %llu packets in %.2f s (lock-step rings of %u)\n", tx ? "tx" : "rx", size,
           (unsigned long long)packets, bench_now() - t0, ring);
    gabi_vhost_client_free(c);
    gabi_vhost_guestq_free(rxq);
    gabi_vhost_guestq_free(txq);
    gabi_vhost_guestmem_free(gm);
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    rmdir(dir);
    return packets == (uint64_t)rounds * ring ? 0 : 1;
}
