/* SPDX-License-Identifier: MIT */
/*
 * guestabi-net's benchmark ports, driven by our front-end: --sink takes, checks and drops
 * what its guest sends; --generate SIZE fills its guest's RX buffers with one UDP frame, kick
 * by kick or busy-polling, with and without mergeable buffers.
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "test_vhost_harness.h"

#include "tap.h"

#define ALL ~0ull

static void make_frame(uint8_t *f, size_t len, uint8_t seed)
{
    static const uint8_t head[14] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52,
                                     0x54, 0x00, 0x00, 0x00, 0x01, 0x88, 0xb5};

    memcpy(f, head, 14);
    for (size_t i = 14; i < len; i++)
        f[i] = (uint8_t)(seed + i * 7);
}

/* Wait until the device has used n TX chains of pair in all (the call fd is signalled:
 * interrupts are on); completions are reaped on the way. */
static uint16_t wait_tx_used(struct tguest *g, unsigned pair, uint16_t n)
{
    struct gabi_vhost_guestq *q = g->q[2 * pair + 1];

    tguest_reap_tx(g, pair);
    while (gabi_vhost_guestq_used_idx(q) != n && gabi_vhost_guestq_wait(q, 10000) == 1)
        tguest_reap_tx(g, pair);
    return gabi_vhost_guestq_used_idx(q);
}

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* What --generate puts in every buffer: Ethernet/IPv4/UDP, port 9 to 9, of len bytes. */
static bool generated_frame_ok(const uint8_t *f, size_t len)
{
    uint32_t sum = 0;

    for (unsigned i = 0; i < 20; i += 2)
        sum += be16(f + 14 + i);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return f[0] == 0x02 && f[6] == 0x02 && be16(f + 12) == 0x0800 && f[14] == 0x45 &&
           be16(f + 16) == len - 14 && f[23] == 17 && sum == 0xffff && be16(f + 34) == 9 &&
           be16(f + 36) == 9 && be16(f + 38) == len - 34;
}

TEST(options)
{
    char out[8192];

    CHECK_INT(netproc_run((const char *[]){"--help", NULL}, out, sizeof(out)), 0);
    CHECK_CONTAINS(out, "--sink");
    CHECK_CONTAINS(out, "--generate SIZE");
    CHECK_INT(netproc_run((const char *[]){"--socket", "/tmp/x", "--generate", "59", NULL}, out,
                          sizeof(out)),
              2);
    CHECK_CONTAINS(out, "--generate wants a frame size, 60..65535 bytes");
    CHECK_INT(netproc_run((const char *[]){"--socket", "/tmp/x", "--generate", "65536", NULL}, out,
                          sizeof(out)),
              2);
    CHECK_INT(netproc_run((const char *[]){"--socket", "/tmp/x", "--generate", "x", NULL}, out,
                          sizeof(out)),
              2);
    CHECK_INT(netproc_run((const char *[]){"--sink", "--socket", "/tmp/x", NULL}, out, sizeof(out)),
              2);
    CHECK_CONTAINS(out, "--sink follows the --socket it applies to");
    CHECK_INT(netproc_run((const char *[]){"--socket", "/tmp/x", "--sink", "--loopback", NULL}, out,
                          sizeof(out)),
              2);
    CHECK_CONTAINS(out, "--loopback follows the --socket it applies to");
}

/* ---- --sink -------------------------------------------------------------------------------- */

static void sink_round(const char *const *args, unsigned qflags)
{
    struct netproc np;
    struct tguest g;
    uint8_t f[1514];
    unsigned sent = 0;

    REQUIRE(netproc_start(&np, args) == 0);
    REQUIRE(tguest_connect(&g, np.sock[0], ALL, 1, qflags) == 0);
    CHECK_INT(tguest_post_rx(&g, 0, 8, 2048), 0);
    for (unsigned i = 0; i < 40; i++) {
        size_t len = 60 + 37 * i;

        make_frame(f, len, (uint8_t)i);
        CHECK_INT(tguest_send(&g, 0, NULL, f, len, i % 2,
                              (qflags & GABI_VHOST_GUESTQ_INDIRECT) && i % 3 == 0),
                  0);
        sent++;
        if (i % 10 == 9)
            CHECK_INT(wait_tx_used(&g, 0, (uint16_t)sent), sent);
    }
    /* every frame was taken (above); none went to the guest's own RX buffers */
    CHECK_INT(gabi_vhost_guestq_used_idx(g.q[0]), 0);
    tguest_free(&g);
    /* a second guest on the same sink starts clean */
    REQUIRE(tguest_connect(&g, np.sock[0], ALL, 1, qflags) == 0);
    make_frame(f, 100, 1);
    CHECK_INT(tguest_send(&g, 0, NULL, f, 100, false, false), 0);
    CHECK_INT(wait_tx_used(&g, 0, 1), 1);
    tguest_free(&g);
    CHECK_INT(netproc_stop(&np), 0);
}

TEST(sink_takes_and_drops)
{
    sink_round(
        (const char *[]){"--socket", "@0", "--sink", "--mode", "upstream.guestabi-net.v2", NULL},
        GABI_VHOST_GUESTQ_EVENT_IDX | GABI_VHOST_GUESTQ_INDIRECT);
    sink_round((const char *[]){"--busy-poll", "--socket", "@0", "--sink", "--mode",
                                "upstream.guestabi-net.v1", NULL},
               0);
}

/* ---- --generate ----------------------------------------------------------------------------- */

static void expect_frames(struct tguest *g, unsigned n, size_t len, unsigned n_bufs)
{
    uint8_t got[4096];
    struct tnet_hdr h;

    for (unsigned i = 0; i < n; i++) {
        memset(got, 0, sizeof(got));
        CHECK_INT(tguest_recv(g, 0, &h, got, sizeof(got), 10000), (int)len);
        CHECK(generated_frame_ok(got, len));
        CHECK_INT(h.num_buffers, n_bufs);
        CHECK_INT(h.flags, 0);
        CHECK_INT(h.gso_type, 0);
    }
}

TEST(generator_fills_rx_buffers_on_kicks)
{
    struct netproc np;
    struct tguest g;
    uint8_t f[200];

    REQUIRE(netproc_start(&np, (const char *[]){"--socket", "@0", "--generate", "1000", "--mode",
                                                "upstream.guestabi-net.v2", NULL}) == 0);
    REQUIRE(tguest_connect(&g, np.sock[0], ALL, 1, GABI_VHOST_GUESTQ_EVENT_IDX) == 0);
    REQUIRE(g.features & (1ull << GABI_NET_F_MRG_RXBUF));
    /* one buffer per frame; then the generator waits for buffers, and fills new ones */
    CHECK_INT(tguest_post_rx(&g, 0, 8, 2048), 0);
    expect_frames(&g, 8, 1000, 1);
    CHECK_INT(gabi_vhost_guestq_used_idx(g.q[0]), 8);
    CHECK_INT(tguest_post_rx(&g, 0, 3, 2048), 0);
    expect_frames(&g, 3, 1000, 1);
    /* mergeable: 12 + 1000 bytes take four buffers of 256 */
    CHECK_INT(tguest_post_rx(&g, 0, 8, 256), 0);
    expect_frames(&g, 2, 1000, 4);
    CHECK_INT(gabi_vhost_guestq_used_idx(g.q[0]), 8 + 3 + 8);
    /* what the guest sends is taken and dropped */
    make_frame(f, sizeof(f), 3);
    CHECK_INT(tguest_send(&g, 0, NULL, f, sizeof(f), false, false), 0);
    CHECK_INT(wait_tx_used(&g, 0, 1), 1);
    tguest_free(&g);
    CHECK_INT(netproc_stop(&np), 0);
}

TEST(generator_busy_polling)
{
    struct netproc np;
    struct tguest g;

    REQUIRE(netproc_start(&np, (const char *[]){"--busy-poll", "--socket", "@0", "--generate", "60",
                                                "--mode", "upstream.guestabi-net.v1", NULL}) == 0);
    /* without mergeable buffers: a frame per chain */
    REQUIRE(tguest_connect(&g, np.sock[0], ALL & ~(1ull << GABI_NET_F_MRG_RXBUF), 1, 0) == 0);
    CHECK_INT(g.hdr_len, 12);
    for (unsigned round = 0; round < 4; round++) {
        CHECK_INT(tguest_post_rx(&g, 0, 100, 128), 0);
        expect_frames(&g, 100, 60, 1); /* num_buffers is 1 without MRG_RXBUF (VERSION_1) */
    }
    CHECK_INT(gabi_vhost_guestq_used_idx(g.q[0]), 400);
    tguest_free(&g);
    CHECK_INT(netproc_stop(&np), 0);
}

TAP_MAIN()
