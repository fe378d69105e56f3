/* SPDX-License-Identifier: MIT */
/*
 * guestabi-net, the program, driven by our front-end: its options and modes, loopback, the
 * two-port switch, mergeable receive buffers, checksum completion, hostile guests, reconnects
 * and a clean SIGTERM. (The tap forwarding is in test_vhost_tap.c: it needs /dev/net/tun.)
 */

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_vhost_harness.h"
#include "vhost/ring.h"

#include "tap.h"

#define ALL ~0ull

/* ---- the program ------------------------------------------------------------------------- */

TEST(help_modes_and_bad_arguments)
{
    char out[8192];

    CHECK_INT(netproc_run((const char *[]){"--help", NULL}, out, sizeof(out)), 0);
    CHECK_CONTAINS(out, "--socket PATH");
    CHECK_CONTAINS(out, "--busy-poll");
    CHECK_INT(netproc_run((const char *[]){"--list-modes", NULL}, out, sizeof(out)), 0);
    CHECK_CONTAINS(out, "upstream.guestabi-net.v1\t1 queue pair of 256");
    CHECK_CONTAINS(out, "upstream.guestabi-net.v2\t4 queue pairs of 1024");
    CHECK_CONTAINS(out, "upstream.guestabi-net.v3\t8 queue pairs of 1024");
    CHECK(!strstr(out, "dpdk.")); /* those need TSO, control queues, packed rings */
    /* newest first: v3 (device state), v2, v1 */
    CHECK(strstr(out, "guestabi-net.v3") < strstr(out, "guestabi-net.v2"));
    CHECK(strstr(out, "guestabi-net.v2") < strstr(out, "guestabi-net.v1"));
    CHECK_INT(netproc_run((const char *[]){"--socket", "/tmp/x", "--mode",
                                           "upstream.guestabi-net.v7", NULL},
                          out, sizeof(out)),
              1);
    CHECK_CONTAINS(out, "did you mean");
    CHECK_INT(
        netproc_run((const char *[]){"--socket", "/tmp/x", "--mode", "dpdk.vhost-net.20.11", NULL},
                    out, sizeof(out)),
        1);
    CHECK_CONTAINS(out, "dpdk.vhost-net.20.11 needs VIRTIO_NET_F_GSO");
    CHECK_INT(netproc_run((const char *[]){"--socket", "/tmp/a", "--socket", "/tmp/b", "--socket",
                                           "/tmp/c", NULL},
                          out, sizeof(out)),
              1);
    CHECK_CONTAINS(out, "port /tmp/c has no peer");
    CHECK_INT(netproc_run((const char *[]){"--loopback", NULL}, out, sizeof(out)), 2);
}

TEST(default_mode_is_the_newest_it_runs)
{
    struct netproc np;
    struct tguest g;
    uint64_t n = 0, f = 0;

    REQUIRE(netproc_start(&np, (const char *[]){"--socket", "@0", "--loopback", NULL}) == 0);
    REQUIRE(tguest_connect(&g, np.sock[0], ALL, 1, 0) == 0);
    CHECK_INT(gabi_vhost_client_get_queue_num(g.c, &n), 0);
    CHECK_INT(n, 8);
    CHECK_INT(gabi_vhost_client_get_features(g.c, &f), 0);
    CHECK(f & (1ull << GABI_F_EVENT_IDX));
    CHECK(f & (1ull << GABI_NET_F_CSUM));                                     /* v3 */
    CHECK(f & (1ull << GABI_F_RING_PACKED) && f & (1ull << GABI_F_IN_ORDER)); /* v4 */
    CHECK(gabi_vhost_client_protocol_features(g.c) & (1ull << GABI_PF_DEVICE_STATE));
    tguest_free(&g);
    CHECK_INT(netproc_stop(&np), 0);
}

/* ---- loopback and mergeable buffers --------------------------------------------------------- */

TEST(loopback_v1)
{
    struct netproc np;
    struct tguest g;
    uint8_t f[1514], got[4096];
    struct gabi_virtio_net_hdr h;
    struct stat st;

    REQUIRE(netproc_start(&np, (const char *[]){"--socket", "@0", "--loopback", "--mode",
                                                "upstream.guestabi-net.v1", NULL}) == 0);
    REQUIRE(tguest_connect(&g, np.sock[0], ALL, 1, 0) == 0);
    CHECK(!(g.features & (1ull << GABI_F_EVENT_IDX)));
    CHECK_INT(tguest_post_rx(&g, 0, 32, 2048), 0);
    for (size_t len = 60; len <= sizeof(f); len += 227) {
        harness_frame(f, len, (uint8_t)len);
        CHECK_INT(tguest_send(&g, 0, NULL, f, len, len % 2, false), 0);
        CHECK_INT(tguest_recv(&g, 0, &h, got, sizeof(got), 10000), (int)len);
        CHECK(memcmp(got, f, len) == 0);
        CHECK_INT(h.num_buffers, 1);
        CHECK_INT(h.flags, 0);
    }
    tguest_free(&g);
    CHECK_INT(netproc_stop(&np), 0);
    /* a clean shutdown removes its socket */
    CHECK(stat(np.sock[0], &st) < 0);
}

/* A 1514-byte frame into 256-byte RX buffers: mergeable, num_buffers of them. */
static void one_frame_many_buffers(struct tguest *g)
{
    uint8_t f[1514], got[4096];
    struct gabi_virtio_net_hdr h;

    CHECK_INT(tguest_post_rx(g, 0, 64, 256), 0);
    harness_frame(f, sizeof(f), 7);
    CHECK_INT(tguest_send(g, 0, NULL, f, sizeof(f), true, false), 0);
    CHECK_INT(tguest_recv(g, 0, &h, got, sizeof(got), 10000), (int)sizeof(f));
    CHECK_INT(h.num_buffers, (12 + 1514 + 255) / 256);
    CHECK(memcmp(got, f, sizeof(f)) == 0);
}

TEST(mergeable_rx_buffers)
{
    struct netproc np;
    struct tguest g;
    uint8_t f[1514], got[4096];
    struct gabi_virtio_net_hdr h;

    REQUIRE(netproc_start(&np, (const char *[]){"--socket", "@0", "--loopback", "--mode",
                                                "upstream.guestabi-net.v1", NULL}) == 0);
    REQUIRE(tguest_connect(&g, np.sock[0], ALL, 1, 0) == 0);
    REQUIRE(g.features & (1ull << GABI_NET_F_MRG_RXBUF));
    one_frame_many_buffers(&g);
    tguest_free(&g);

    /* without MRG_RXBUF, a frame takes exactly one chain: too small a chain drops it */
    REQUIRE(tguest_connect(&g, np.sock[0], ALL & ~(1ull << GABI_NET_F_MRG_RXBUF), 1, 0) == 0);
    CHECK_INT(g.hdr_len, 12); /* VERSION_1 */
    CHECK_INT(tguest_post_rx(&g, 0, 4, 256), 0);
    CHECK_INT(tguest_send(&g, 0, NULL, f, sizeof(f), false, false), 0);
    CHECK_INT(tguest_send(&g, 0, NULL, f, 200, false, false), 0);
    /* the big one was dropped without consuming a buffer; the small one fits */
    CHECK_INT(tguest_recv(&g, 0, &h, got, sizeof(got), 10000), 200);
    CHECK_INT(h.num_buffers, 1);
    tguest_free(&g);
    CHECK_INT(netproc_stop(&np), 0);
}

TEST(loopback_on_packed_rings)
{
    const unsigned qflags = GABI_VHOST_GUESTQ_PACKED | GABI_VHOST_GUESTQ_EVENT_IDX |
                            GABI_VHOST_GUESTQ_IN_ORDER | GABI_VHOST_GUESTQ_INDIRECT;
    struct netproc np;
    struct tguest g;
    uint8_t f[1514], got[4096];
    struct gabi_virtio_net_hdr h;

    REQUIRE(netproc_start(&np, (const char *[]){"--socket", "@0", "--loopback", NULL}) == 0);
    REQUIRE(tguest_connect(&g, np.sock[0], ALL, 1, qflags) == 0);
    REQUIRE(g.features & (1ull << GABI_F_RING_PACKED));
    REQUIRE(g.features & (1ull << GABI_F_IN_ORDER));
    /* 600 frames of every size, header split or not, direct or indirect: both rings lap */
    CHECK_INT(tguest_post_rx(&g, 0, 64, 2048), 0);
    for (unsigned i = 0; i < 600; i++) {
        size_t len = 60 + (i * 227) % 1455;

        harness_frame(f, len, (uint8_t)i);
        CHECK_INT(tguest_send(&g, 0, NULL, f, len, i % 2, i % 3 == 0), 0);
        CHECK_INT(tguest_recv(&g, 0, &h, got, sizeof(got), 10000), (int)len);
        CHECK(memcmp(got, f, len) == 0);
        CHECK_INT(h.num_buffers, 1);
        CHECK_INT(tguest_post_rx(&g, 0, 1, 2048), 0);
        tguest_reap_tx(&g, 0);
    }
    tguest_free(&g);

    /* mergeable buffers: one frame across several 256-byte chains */
    REQUIRE(tguest_connect(&g, np.sock[0], ALL, 1, qflags) == 0);
    one_frame_many_buffers(&g);
    tguest_free(&g);
    CHECK_INT(netproc_stop(&np), 0);
}

/* A receive header is stored only where the buffer does not hold it already: whatever the
 * buffer held (bytes unlike any header, a header one field off, the right one), the guest reads
 * exactly the header of its frame. */
TEST(rx_header_whatever_the_buffer_held)
{
    static const uint8_t fill[] = {0xff, 0x00, 0x02}; /* num_buffers 0 / 0x0202, flags off */
    const struct gabi_virtio_net_hdr want = {.num_buffers = 1};
    struct netproc np;
    struct tguest g;
    uint8_t f[300], got[4096];
    struct gabi_virtio_net_hdr h;

    REQUIRE(netproc_start(&np, (const char *[]){"--socket", "@0", "--loopback", NULL}) == 0);
    REQUIRE(tguest_connect(&g, np.sock[0], ALL, 1, 0) == 0);
    REQUIRE(g.hdr_len == 12);
    for (unsigned i = 0; i < 2 * sizeof(fill); i++) {
        /* odd rounds: the buffers keep what the previous round stored (the header right) */
        if (i % 2 == 0)
            tguest_fill_rx(&g, 0, fill[i / 2]);
        CHECK_INT(tguest_post_rx(&g, 0, 4, 2048), 0);
        for (unsigned k = 0; k < 4; k++) {
            harness_frame(f, sizeof(f), (uint8_t)(i + k));
            CHECK_INT(tguest_send(&g, 0, NULL, f, sizeof(f), false, false), 0);
            CHECK_INT(tguest_recv(&g, 0, &h, got, sizeof(got), 10000), (int)sizeof(f));
            CHECK(memcmp(&h, &want, sizeof(h)) == 0);
            CHECK(memcmp(got, f, sizeof(f)) == 0);
        }
    }
    tguest_free(&g);
    CHECK_INT(netproc_stop(&np), 0);
}

/* ---- the two-port switch ------------------------------------------------------------------ */

TEST(two_port_switch_v2_multiqueue)
{
    struct netproc np;
    struct tguest a, b;
    uint8_t f[1000], got[4096];
    struct gabi_virtio_net_hdr h;
    unsigned qf = GABI_VHOST_GUESTQ_EVENT_IDX | GABI_VHOST_GUESTQ_INDIRECT;

    REQUIRE(netproc_start(&np, (const char *[]){"--socket", "@0", "--socket", "@1", "--mode",
                                                "upstream.guestabi-net.v2", NULL}) == 0);
    REQUIRE(tguest_connect(&a, np.sock[0], ALL, 2, qf) == 0);
    REQUIRE(tguest_connect(&b, np.sock[1], ALL, 2, qf) == 0);
    for (unsigned pair = 0; pair < 2; pair++) {
        CHECK_INT(tguest_post_rx(&a, pair, 16, 2048), 0);
        CHECK_INT(tguest_post_rx(&b, pair, 16, 2048), 0);
    }
    for (unsigned i = 0; i < 20; i++) {
        unsigned pair = i % 2;
        struct tguest *from = i % 4 < 2 ? &a : &b, *to = from == &a ? &b : &a;

        harness_frame(f, 100 + 40 * i, (uint8_t)i);
        CHECK_INT(tguest_send(from, pair, NULL, f, 100 + 40 * i, i % 3 == 0, i % 3 == 1), 0);
        CHECK_INT(tguest_recv(to, pair, &h, got, sizeof(got), 10000), (int)(100 + 40 * i));
        CHECK(memcmp(got, f, 100 + 40 * i) == 0);
        CHECK_INT(tguest_post_rx(to, pair, 1, 2048), 0);
    }
    /* a guest that goes away: the other one's frames are dropped, nothing else happens */
    tguest_free(&b);
    CHECK_INT(tguest_send(&a, 0, NULL, f, 100, false, false), 0);
    REQUIRE(tguest_connect(&b, np.sock[1], ALL, 1, qf) == 0);
    CHECK_INT(tguest_post_rx(&b, 0, 4, 2048), 0);
    CHECK_INT(tguest_send(&a, 0, NULL, f, 300, false, false), 0);
    CHECK_INT(tguest_recv(&b, 0, &h, got, sizeof(got), 10000), 300);
    tguest_free(&a);
    tguest_free(&b);
    CHECK_INT(netproc_stop(&np), 0);
}

/* ---- checksum completion ------------------------------------------------------------------ */

static uint32_t sum16(uint32_t s, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        s += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n % 2)
        s += (uint32_t)p[n - 1] << 8;
    return s;
}

static uint16_t fold(uint32_t s)
{
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)s;
}

/* Ethernet + IPv4 + UDP with a partial checksum (pseudo-header sum in the field). */
static size_t udp_frame(uint8_t *f, size_t payload)
{
    uint8_t *ip = f + 14, *udp = ip + 20;
    uint16_t ulen = (uint16_t)(8 + payload), ps;
    uint32_t s;

    harness_frame(f, 14 + 20 + 8 + payload, 3);
    f[12] = 0x08;
    f[13] = 0x00;
    memset(ip, 0, 20);
    ip[0] = 0x45;
    ip[2] = (uint8_t)((20 + ulen) >> 8);
    ip[3] = (uint8_t)(20 + ulen);
    ip[8] = 64;
    ip[9] = 17;
    memcpy(ip + 12, "\x0a\x00\x00\x01\x0a\x00\x00\x02", 8);
    udp[0] = 0x30;
    udp[1] = 0x39;
    udp[2] = 0x00;
    udp[3] = 0x35;
    udp[4] = (uint8_t)(ulen >> 8);
    udp[5] = (uint8_t)ulen;
    s = sum16(0, ip + 12, 8) + 17 + ulen;
    ps = fold(s);
    udp[6] = (uint8_t)(ps >> 8);
    udp[7] = (uint8_t)ps;
    return 14 + 20 + ulen;
}

static bool udp_checksum_ok(const uint8_t *f)
{
    const uint8_t *ip = f + 14, *udp = ip + 20;
    uint16_t ulen = (uint16_t)(udp[4] << 8 | udp[5]);

    return fold(sum16(sum16(0, ip + 12, 8) + 17 + ulen, udp, ulen)) == 0xffff;
}

static const char csum_catalog[] =
    "{\"schema\": \"guestabi.catalog/1\", \"modes\": [{\"name\": \"test.net-csum\", "
    "\"class\": \"virtio-net\", \"order\": 1, \"description\": \"v2 with checksum offload\", "
    "\"features\": [\"VIRTIO_NET_F_CSUM\", \"VIRTIO_NET_F_GUEST_CSUM\", \"VIRTIO_NET_F_MTU\", "
    "\"VIRTIO_NET_F_MRG_RXBUF\", \"VIRTIO_RING_F_INDIRECT_DESC\", \"VIRTIO_RING_F_EVENT_IDX\", "
    "\"VIRTIO_F_VERSION_1\", \"VHOST_F_LOG_ALL\", \"VHOST_USER_F_PROTOCOL_FEATURES\"], "
    "\"protocol_features\": [\"VHOST_USER_PROTOCOL_F_MQ\", \"VHOST_USER_PROTOCOL_F_LOG_SHMFD\", "
    "\"VHOST_USER_PROTOCOL_F_REPLY_ACK\", \"VHOST_USER_PROTOCOL_F_NET_MTU\", "
    "\"VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS\", \"VHOST_USER_PROTOCOL_F_STATUS\"], "
    "\"max_queue_pairs\": 2, \"max_queue_size\": 256}]}";

TEST(checksum_completed_for_guests_without_guest_csum)
{
    char dir[] = "/tmp/gabi-cat-XXXXXX", file[64];
    struct netproc np;
    struct tguest a, b;
    uint8_t f[256], got[4096];
    struct gabi_virtio_net_hdr h = {.flags = 1, .csum_start = 34, .csum_offset = 6}, rh;
    size_t len;
    FILE *fp;

    REQUIRE(mkdtemp(dir));
    snprintf(file, sizeof(file), "%s/50-test.json", dir);
    fp = fopen(file, "w");
    REQUIRE(fp);
    fputs(csum_catalog, fp);
    fclose(fp);
    REQUIRE(netproc_start(&np, (const char *[]){"--socket", "@0", "--socket", "@1", "--catalog",
                                                dir, "--mode", "test.net-csum", NULL}) == 0);
    len = udp_frame(f, 77);
    CHECK(!udp_checksum_ok(f));
    /* a takes every feature; b does not take GUEST_CSUM */
    REQUIRE(tguest_connect(&a, np.sock[0], ALL, 1, 0) == 0);
    REQUIRE(tguest_connect(&b, np.sock[1], ALL & ~(1ull << GABI_NET_F_GUEST_CSUM), 1, 0) == 0);
    CHECK(a.features & (1ull << GABI_NET_F_CSUM));
    CHECK_INT(tguest_post_rx(&b, 0, 8, 2048), 0);
    CHECK_INT(tguest_post_rx(&a, 0, 8, 2048), 0);
    CHECK_INT(tguest_send(&a, 0, &h, f, len, true, false), 0);
    CHECK_INT(tguest_recv(&b, 0, &rh, got, sizeof(got), 10000), (int)len);
    CHECK_INT(rh.flags, 0);
    CHECK(udp_checksum_ok(got)); /* completed in software */
    CHECK(memcmp(got, f, 40) == 0 && memcmp(got + 42, f + 42, len - 42) == 0);
    /* the other way: a takes GUEST_CSUM, so the header is passed as it is */
    CHECK(!(b.features & (1ull << GABI_NET_F_GUEST_CSUM)));
    CHECK_INT(tguest_send(&b, 0, &h, f, len, false, false), 0);
    CHECK_INT(tguest_recv(&a, 0, &rh, got, sizeof(got), 10000), (int)len);
    CHECK_INT(rh.flags, 1);
    CHECK_INT(rh.csum_start, 34);
    CHECK_INT(rh.csum_offset, 6);
    CHECK(memcmp(got, f, len) == 0);
    /* a bad partial checksum (offset past the frame) is dropped, not written anywhere */
    h.csum_start = 1000;
    CHECK_INT(tguest_send(&a, 0, &h, f, len, false, false), 0);
    h.csum_start = 34;
    CHECK_INT(tguest_send(&a, 0, &h, f, len, false, false), 0);
    CHECK_INT(tguest_recv(&b, 0, &rh, got, sizeof(got), 10000), (int)len);
    CHECK(udp_checksum_ok(got));
    tguest_free(&a);
    tguest_free(&b);
    CHECK_INT(netproc_stop(&np), 0);
    unlink(file);
    rmdir(dir);
}

static void drain(int fd)
{
    uint64_t n;

    if (poll(&(struct pollfd){.fd = fd, .events = POLLIN}, 1, 0) == 1)
        CHECK_INT(read(fd, &n, 8), 8);
}

/* A migration's destination: the guest posted a chain and kicked the source, which stopped before
 * taking it; the destination's kick eventfd is a fresh one with nothing pending, and with
 * EVENT_IDX the guest does not kick again for later chains. Starting the vring takes it. QEMU
 * 7.2 enables the vrings first and sends each one's SET_VRING_CALL after its SET_VRING_KICK
 * (reference/peers.md): the completion, used before that, is signalled on the new call fd. */
TEST(tx_chain_posted_before_the_start_goes_without_a_kick)
{
    struct netproc np;
    struct tguest g;
    uint8_t f[300], got[4096];
    struct gabi_virtio_net_hdr h;
    uint32_t bases[2];
    int old_call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

    REQUIRE(old_call >= 0);
    REQUIRE(netproc_start(&np, (const char *[]){"--socket", "@0", "--loopback", "--mode",
                                                "upstream.guestabi-net.v2", NULL}) == 0);
    REQUIRE(tguest_connect(&g, np.sock[0], ALL, 1, GABI_VHOST_GUESTQ_EVENT_IDX) == 0);
    CHECK(g.features & (1ull << GABI_F_EVENT_IDX));
    CHECK_INT(tguest_post_rx(&g, 0, 8, 2048), 0);
    harness_frame(f, sizeof(f), 1);
    CHECK_INT(tguest_send(&g, 0, NULL, f, sizeof(f), false, false), 0);
    CHECK_INT(tguest_recv(&g, 0, &h, got, sizeof(got), 10000), (int)sizeof(f));
    CHECK_INT(tguest_reap_tx(&g, 0), 1);
    REQUIRE(tguest_stop(&g, bases) == 0);
    harness_frame(f, sizeof(f), 2);
    CHECK_INT(tguest_send(&g, 0, NULL, f, sizeof(f), false, false), 0);
    /* the kick went to the stopped source: nothing is left pending for the destination */
    drain(gabi_vhost_guestq_kick_fd(g.q[1]));
    for (unsigned i = 0; i < 2; i++) {
        drain(gabi_vhost_guestq_call_fd(g.q[i]));
        CHECK_INT(gabi_vhost_client_set_vring_call(g.c, i, old_call), 0);
        CHECK_INT(gabi_vhost_client_set_vring_enable(g.c, i, true), 0);
    }
    for (unsigned i = 0; i < 2; i++) {
        uint64_t desc, avail, used;

        gabi_vhost_guestq_addrs(g.q[i], &desc, &avail, &used);
        REQUIRE(gabi_vhost_client_set_vring_num(g.c, i, 256) == 0);
        REQUIRE(gabi_vhost_client_set_vring_base(g.c, i, bases[i]) == 0);
        REQUIRE(gabi_vhost_client_set_vring_addr(g.c, i, 0, gabi_vhost_guestmem_uaddr(g.gm, desc),
                                                 gabi_vhost_guestmem_uaddr(g.gm, used),
                                                 gabi_vhost_guestmem_uaddr(g.gm, avail),
                                                 used) == 0);
        REQUIRE(gabi_vhost_client_set_vring_kick(g.c, i, gabi_vhost_guestq_kick_fd(g.q[i])) == 0);
        REQUIRE(gabi_vhost_client_set_vring_call(g.c, i, gabi_vhost_guestq_call_fd(g.q[i])) == 0);
    }
    /* the chain was taken (looped back into RX) and its completion interrupts the guest */
    CHECK_INT(
        poll(&(struct pollfd){.fd = gabi_vhost_guestq_call_fd(g.q[1]), .events = POLLIN}, 1, 3000),
        1);
    CHECK_INT(tguest_reap_tx(&g, 0), 1);
    CHECK_INT(tguest_recv(&g, 0, &h, got, sizeof(got), 3000), (int)sizeof(f));
    CHECK(memcmp(got, f, sizeof(f)) == 0);
    tguest_free(&g);
    close(old_call);
    CHECK_INT(netproc_stop(&np), 0);
}

/* ---- hostile guests and reconnects ------------------------------------------------------- */

TEST(hostile_guest_breaks_its_vring_not_the_switch)
{
    struct netproc np;
    struct tguest a, b;
    uint8_t f[200], got[4096];
    struct gabi_virtio_net_hdr h;
    uint64_t desc, avail, used;
    struct vring_desc *d;
    struct vring_avail *av;
    uint8_t status = 0;
    int err = eventfd(0, EFD_CLOEXEC);

    REQUIRE(netproc_start(&np, (const char *[]){"--socket", "@0", "--socket", "@1", "--mode",
                                                "upstream.guestabi-net.v2", NULL}) == 0);
    REQUIRE(tguest_connect(&a, np.sock[0], ALL, 2, 0) == 0);
    REQUIRE(tguest_connect(&b, np.sock[1], ALL, 2, 0) == 0);
    CHECK_INT(tguest_post_rx(&b, 1, 8, 2048), 0);
    REQUIRE(err >= 0 && gabi_vhost_client_set_vring_err(a.c, 1, err) == 0);
    /* a's TX ring of pair 0 gets a chain that points outside its memory */
    gabi_vhost_guestq_addrs(a.q[1], &desc, &avail, &used);
    d = gabi_vhost_guestmem_ptr(a.gm, desc, 16);
    av = gabi_vhost_guestmem_ptr(a.gm, avail, 8);
    *d = (struct vring_desc){1ull << 40, 100, 0, 0};
    av->ring[0] = 0;
    __atomic_store_n(&av->idx, 1, __ATOMIC_RELEASE);
    REQUIRE(write(gabi_vhost_guestq_kick_fd(a.q[1]), &(uint64_t){1}, 8) == 8);
    /* the vring's err fd and the status byte say so; pair 1 of the same guest still forwards */
    CHECK_INT(poll(&(struct pollfd){.fd = err, .events = POLLIN}, 1, 10000), 1);
    CHECK_INT(gabi_vhost_client_get_status(a.c, &status), 0);
    CHECK(status & GABI_VIRTIO_STATUS_NEEDS_RESET);
    harness_frame(f, sizeof(f), 9);
    CHECK_INT(tguest_send(&a, 1, NULL, f, sizeof(f), false, false), 0);
    CHECK_INT(tguest_recv(&b, 1, &h, got, sizeof(got), 10000), (int)sizeof(f));
    tguest_free(&a);
    tguest_free(&b);
    close(err);
    CHECK_INT(netproc_stop(&np), 0);
}

TEST(reconnect_and_refusal_through_the_program)
{
    struct netproc np;
    struct tguest g;
    uint8_t f[300], got[4096];
    struct gabi_virtio_net_hdr h;

    REQUIRE(netproc_start(&np, (const char *[]){"--socket", "@0", "--loopback", "--mode",
                                                "upstream.guestabi-net.v1", NULL}) == 0);
    for (unsigned round = 0; round < 3; round++) {
        REQUIRE(tguest_connect(&g, np.sock[0], ALL, 1, 0) == 0);
        CHECK_INT(tguest_post_rx(&g, 0, 4, 2048), 0);
        harness_frame(f, sizeof(f), (uint8_t)round);
        CHECK_INT(tguest_send(&g, 0, NULL, f, sizeof(f), false, false), 0);
        CHECK_INT(tguest_recv(&g, 0, &h, got, sizeof(got), 10000), (int)sizeof(f));
        /* round 1 ends with a refusal: a second queue pair is beyond v1 */
        if (round == 1)
            CHECK_INT(gabi_vhost_client_set_vring_num(g.c, 2, 256), -EIO);
        tguest_free(&g);
    }
    CHECK_INT(netproc_stop(&np), 0);
}

TAP_MAIN()
