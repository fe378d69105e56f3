/* SPDX-License-Identifier: MIT */
/*
 * lib/vhost over real unix sockets: our front-end against our back-end for every message,
 * QEMU's message order, the compat-mode refusals, framing abuse, disconnect and reconnect.
 */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <guestabi/util.h>
#include "test_vhost_harness.h"
#include "vhost/protocol.h"

#include "tap.h"

#define ALL          ~0ull
#define PF_REPLY_ACK (1ull << GABI_PF_REPLY_ACK)

struct guest {
    struct gabi_vhost_guestmem *gm;
    struct gabi_vhost_guestq *rx, *tx;
    uint64_t bufs; /* 64 buffers of 2 KiB */
};

static int guest_new(struct guest *g, unsigned n_regions, unsigned qflags)
{
    struct gabi_error err;

    memset(g, 0, sizeof(*g));
    if (gabi_vhost_guestmem_new(4 << 20, n_regions, &g->gm, &err) < 0)
        return -1;
    if (gabi_vhost_guestq_new(g->gm, 256, qflags, &g->rx) < 0 ||
        gabi_vhost_guestq_new(g->gm, 256, qflags, &g->tx) < 0 ||
        gabi_vhost_guestmem_alloc(g->gm, 64 * 2048, 4096, &g->bufs) < 0)
        return -1;
    return 0;
}

static void guest_free(struct guest *g)
{
    gabi_vhost_guestq_free(g->rx);
    gabi_vhost_guestq_free(g->tx);
    gabi_vhost_guestmem_free(g->gm);
}

static uint8_t *buf_ptr(struct guest *g, unsigned i)
{
    return gabi_vhost_guestmem_ptr(g->gm, g->bufs + i * 2048ull, 2048);
}

/* Send one packet on TX (buffer 0) and receive it on RX (buffer 1): the loopback device. */
static int roundtrip(struct guest *g, const char *text)
{
    struct gabi_vhost_gbuf rxb = {g->bufs + 2048, 2048};
    struct gabi_vhost_gbuf txb = {g->bufs, (uint32_t)strlen(text)};
    uint32_t id, len;
    int rx_head, tx_head;

    memcpy(buf_ptr(g, 0), text, strlen(text));
    memset(buf_ptr(g, 1), 0, 2048);
    rx_head = gabi_vhost_guestq_add(g->rx, &rxb, 0, 1, false);
    gabi_vhost_guestq_kick(g->rx);
    tx_head = gabi_vhost_guestq_add(g->tx, &txb, 1, 0, false);
    gabi_vhost_guestq_kick(g->tx);
    if (rx_head < 0 || tx_head < 0)
        return -1;
    for (int tries = 0; tries < 2; tries++) {
        if (gabi_vhost_guestq_get_used(g->rx, &id, &len) == 1)
            goto got;
        if (gabi_vhost_guestq_wait(g->rx, 10000) != 1)
            return -ETIMEDOUT;
    }
    if (gabi_vhost_guestq_get_used(g->rx, &id, &len) != 1)
        return -EIO;
got:
    if (id != (uint32_t)rx_head || len != strlen(text) || memcmp(buf_ptr(g, 1), text, len) != 0)
        return -EBADMSG;
    /* the TX chain comes back too */
    if (gabi_vhost_guestq_wait(g->tx, 10000) < 0 ||
        gabi_vhost_guestq_get_used(g->tx, &id, &len) != 1 || id != (uint32_t)tx_head)
        return -EIO;
    return 0;
}

static int start_rings(struct gabi_vhost_client *c, struct guest *g, unsigned pair)
{
    int r = gabi_vhost_client_start_vring(c, 2 * pair, g->rx, 0, false);

    return r < 0 ? r : gabi_vhost_client_start_vring(c, 2 * pair + 1, g->tx, 0, false);
}

/* ---- negotiation and every message ------------------------------------------------------ */

TEST(offers_exactly_the_mode)
{
    struct harness h;
    struct gabi_vhost_client *c = NULL;
    uint64_t v;

    REQUIRE(harness_start(&h, test_catalog_mode("upstream.guestabi-net.v2")) == 0);
    REQUIRE(gabi_vhost_client_connect(h.path, 0, &c, NULL) == 0);
    CHECK_INT(gabi_vhost_client_get_features(c, &v), 0);
    CHECK(v == test_catalog_mode("upstream.guestabi-net.v2")->features);
    CHECK_INT(gabi_vhost_client_get_protocol_features(c, &v), 0);
    CHECK(v == test_catalog_mode("upstream.guestabi-net.v2")->protocol_features);
    CHECK_INT(gabi_vhost_client_set_protocol_features(
                  c, test_catalog_mode("upstream.guestabi-net.v2")->protocol_features),
              0);
    CHECK_INT(gabi_vhost_client_get_queue_num(c, &v), 0);
    CHECK_INT(v, 4);
    CHECK_INT(gabi_vhost_client_get_max_mem_slots(c, &v), 0);
    CHECK_INT(v, GABI_VHOST_MAX_MEM_SLOTS);
    CHECK_INT(gabi_vhost_client_set_owner(c), 0);
    CHECK_INT(
        gabi_vhost_client_set_features(c, test_catalog_mode("upstream.guestabi-net.v2")->features),
        0);
    gabi_vhost_client_free(c);
    CHECK_INT(harness_wait_disconnects(&h, 1), 0);
    CHECK(h.features_seen == test_catalog_mode("upstream.guestabi-net.v2")->features);
    harness_stop(&h);
}

TEST(every_message)
{
    struct harness h;
    struct gabi_vhost_client *c;
    struct guest g;
    uint8_t cfg[6], status = 0xff, mac[6] = {0x52, 0x54, 0, 0xab, 0xcd, 0xef};
    int sp[2], ev = eventfd(0, EFD_CLOEXEC);
    uint32_t base = 0;

    REQUIRE(harness_start(&h, &harness_mode_all) == 0);
    c = harness_client(&h, ALL, ALL);
    REQUIRE(c);
    REQUIRE(guest_new(&g, 2, GABI_VHOST_GUESTQ_INDIRECT | GABI_VHOST_GUESTQ_EVENT_IDX) == 0);
    CHECK(gabi_vhost_client_protocol_features(c) == GABI_VHOST_PROTOCOL_FEATURES);
    /* config space: read, write a writable field, refused write of the read-only MAC */
    CHECK_INT(gabi_vhost_client_get_config(c, 0, cfg, 6), 0);
    CHECK(memcmp(cfg, "\x52\x54\x00\x12\x34\x56", 6) == 0);
    CHECK_INT(gabi_vhost_client_set_config(c, 8, "\x01\x02", 2, 0), 0);
    CHECK_INT(gabi_vhost_client_get_config(c, 8, cfg, 2), 0);
    CHECK(cfg[0] == 1 && cfg[1] == 2);
    CHECK_INT(gabi_vhost_client_set_config(c, 0, "\xff", 1, 0), -EIO);
    CHECK_INT(gabi_vhost_client_set_config(c, 0, "\x02", 1, 1), 0);
    CHECK_INT(gabi_vhost_client_get_config(c, 250, cfg, 6), -EIO);
    /* status, MTU, RARP, back-end channel */
    CHECK_INT(gabi_vhost_client_set_status(c, 0xb), 0);
    CHECK_INT(gabi_vhost_client_get_status(c, &status), 0);
    CHECK_INT(status, 0xb);
    CHECK_INT(gabi_vhost_client_net_set_mtu(c, 9000), 0);
    CHECK_INT(gabi_vhost_client_net_set_mtu(c, 10), -EIO);
    CHECK_INT(gabi_vhost_client_send_rarp(c, mac), 0);
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
    CHECK_INT(gabi_vhost_client_set_backend_req_fd(c, sp[0]), 0);
    CHECK_INT(
        gabi_vhost_client_request(c, VHOST_USER_SET_LOG_FD, true, NULL, 0, &ev, 1, NULL, 0, NULL),
        0);
    /* memory both ways, then rings, data, stop, restart */
    CHECK_INT(gabi_vhost_client_set_mem_table(c, g.gm), 0);
    CHECK_INT(gabi_vhost_client_rem_mem_reg(c, g.gm, 1), 0);
    CHECK_INT(gabi_vhost_client_add_mem_reg(c, g.gm, 1), 0);
    CHECK_INT(gabi_vhost_client_set_vring_err(c, 1, ev), 0);
    CHECK_INT(gabi_vhost_client_set_log(c, gabi_vhost_guestmem_size(g.gm)), 0);
    CHECK_INT(start_rings(c, &g, 1), 0);
    CHECK_INT(roundtrip(&g, "every message"), 0);
    CHECK_INT(gabi_vhost_client_stop_vring(c, 3, &base), 0);
    CHECK_INT(base, 1);
    CHECK_INT(gabi_vhost_client_start_vring(c, 3, g.tx, base, false), 0);
    CHECK_INT(roundtrip(&g, "after a restart"), 0);
    CHECK_INT(gabi_vhost_client_reset_owner(c), 0);
    CHECK_INT(gabi_vhost_client_reset_device(c), 0);
    CHECK_INT(gabi_vhost_client_get_status(c, &status), 0);
    CHECK_INT(status, 0);
    gabi_vhost_client_free(c);
    CHECK_INT(harness_wait_disconnects(&h, 1), 0);
    CHECK_INT(h.n_rarp, 1);
    CHECK(memcmp(h.rarp_mac, mac, 6) == 0);
    CHECK_INT(h.config[0], 2);
    CHECK_INT(h.n_resets, 2);
    CHECK(h.n_started >= 3);
    CHECK_INT(h.n_started, h.n_stopped);
    CHECK_INT(h.n_broken, 0);
    guest_free(&g);
    close(sp[0]);
    close(sp[1]);
    close(ev);
    harness_stop(&h);
}

TEST(qemu_72_order_with_mem_slots)
{
    struct harness h;
    struct gabi_vhost_client *c = NULL;
    struct guest g;
    uint64_t f, pf;

    REQUIRE(harness_start(&h, test_catalog_mode("upstream.guestabi-net.v2")) == 0);
    REQUIRE(guest_new(&g, 2, 0) == 0);
    REQUIRE(gabi_vhost_client_connect(h.path, 0, &c, NULL) == 0);
    /* what QEMU 7.2 sends at its start, before any guest driver */
    CHECK_INT(gabi_vhost_client_get_features(c, &f), 0);
    CHECK_INT(gabi_vhost_client_get_protocol_features(c, &pf), 0);
    CHECK_INT(gabi_vhost_client_set_protocol_features(c, pf), 0);
    CHECK_INT(gabi_vhost_client_get_queue_num(c, &pf), 0);
    CHECK_INT(gabi_vhost_client_set_owner(c), 0);
    CHECK_INT(gabi_vhost_client_get_features(c, &f), 0);
    for (unsigned i = 0; i < 2; i++) {
        CHECK_INT(
            gabi_vhost_client_set_vring_call(c, i, gabi_vhost_guestq_call_fd(i ? g.tx : g.rx)), 0);
        CHECK_INT(gabi_vhost_client_set_vring_err(c, i, -1), 0);
    }
    CHECK_INT(gabi_vhost_client_set_vring_enable(c, 0, true), 0);
    CHECK_INT(gabi_vhost_client_set_vring_enable(c, 1, true), 0);
    /* at DRIVER_OK: features, status, memory by ADD_MEM_REG, rings */
    CHECK_INT(gabi_vhost_client_set_features(c, f), 0);
    CHECK_INT(gabi_vhost_client_set_status(c, GABI_VIRTIO_STATUS_FEATURES_OK), 0);
    CHECK_INT(gabi_vhost_client_add_mem_reg(c, g.gm, 0), 0);
    CHECK_INT(gabi_vhost_client_add_mem_reg(c, g.gm, 1), 0);
    CHECK_INT(start_rings(c, &g, 0), 0);
    CHECK_INT(gabi_vhost_client_set_status(c, 0xf), 0);
    CHECK_INT(roundtrip(&g, "QEMU order"), 0);
    gabi_vhost_client_free(c);
    CHECK_INT(harness_wait_disconnects(&h, 1), 0);
    guest_free(&g);
    harness_stop(&h);
}

/* ---- compat-mode refusals --------------------------------------------------------------- */

/* After a refusal the connection is gone: the next request fails. */
static void check_closed(struct harness *h, struct gabi_vhost_client *c, const char *reason)
{
    char buf[sizeof(h->log)];
    uint64_t v;

    CHECK_INT(harness_wait_disconnects(h, 1), 0);
    CHECK(gabi_vhost_client_get_features(c, &v) < 0);
    harness_copy(h, "disconnect", buf, sizeof(buf));
    CHECK_CONTAINS(buf, reason);
    harness_copy(h, "log", buf, sizeof(buf));
    CHECK_CONTAINS(buf, reason);
}

TEST(virtio_blk_queues_and_config)
{
    const struct gabi_vhost_mode *blk_v1 = test_catalog_mode("upstream.guestabi-blk.v1");
    struct harness h;
    struct gabi_vhost_client *c;
    uint8_t cfg[6];
    uint64_t n = 0;

    REQUIRE(harness_start_class(&h, blk_v1, GABI_CLASS_BLK, blk_v1->features) == 0);
    CHECK_INT(gabi_vhost_backend_n_vrings(h.b), 1);
    c = harness_client(&h, ALL, ALL);
    REQUIRE(c);
    /* QEMU's vhost-user-blk reads the config space at realize */
    CHECK_INT(gabi_vhost_client_get_config(c, 0, cfg, 6), 0);
    CHECK_INT(gabi_vhost_client_get_queue_num(c, &n), 0);
    CHECK_INT(n, 1);
    CHECK_INT(gabi_vhost_client_set_vring_num(c, 0, 128), 0);
    /* one vring per queue: vring 1 is a second queue */
    CHECK_INT(gabi_vhost_client_set_vring_num(c, 1, 128), -EIO);
    check_closed(&h, c, "vring 1 is beyond the 1 vring of mode upstream.guestabi-blk.v1 (1 queue)");
    gabi_vhost_client_free(c);
    harness_stop(&h);
}

TEST(refuses_unoffered_feature)
{
    struct harness h;
    struct gabi_vhost_client *c = NULL;

    REQUIRE(harness_start(&h, test_catalog_mode("upstream.guestabi-net.v1")) == 0);
    REQUIRE(gabi_vhost_client_connect(h.path, 0, &c, NULL) == 0);
    CHECK_INT(gabi_vhost_client_set_protocol_features(c, PF_REPLY_ACK), 0);
    /* v1 has no EVENT_IDX: refused with a failure ack, then closed */
    CHECK_INT(
        gabi_vhost_client_set_features(c, test_catalog_mode("upstream.guestabi-net.v1")->features |
                                              (1ull << GABI_F_EVENT_IDX)),
        -EIO);
    check_closed(
        &h, c,
        "VIRTIO_RING_F_EVENT_IDX (bit 29), which mode upstream.guestabi-net.v1 does not offer");
    CHECK(gabi_vhost_backend_features(h.b) == 0);
    gabi_vhost_client_free(c);
    harness_stop(&h);
}

TEST(refuses_unoffered_feature_without_reply_ack)
{
    struct harness h;
    struct gabi_vhost_client *c = NULL;

    REQUIRE(harness_start(&h, test_catalog_mode("upstream.guestabi-net.v1")) == 0);
    REQUIRE(gabi_vhost_client_connect(h.path, 0, &c, NULL) == 0);
    /* no REPLY_ACK: the request "succeeds" on the wire, the connection is closed */
    CHECK_INT(gabi_vhost_client_set_features(c, 1ull << GABI_NET_F_CSUM), 0);
    check_closed(&h, c, "VIRTIO_NET_F_CSUM (bit 0)");
    gabi_vhost_client_free(c);
    harness_stop(&h);
}

TEST(refuses_unoffered_protocol_feature)
{
    struct harness h;
    struct gabi_vhost_client *c = NULL;

    REQUIRE(harness_start(&h, test_catalog_mode("upstream.guestabi-net.v1")) == 0);
    REQUIRE(gabi_vhost_client_connect(h.path, 0, &c, NULL) == 0);
    CHECK_INT(gabi_vhost_client_set_protocol_features(c, PF_REPLY_ACK | (1ull << GABI_PF_STATUS)),
              0);
    check_closed(&h, c,
                 "VHOST_USER_PROTOCOL_F_STATUS (bit 16), which mode upstream.guestabi-net.v1");
    CHECK(gabi_vhost_backend_protocol_features(h.b) == 0);
    gabi_vhost_client_free(c);
    harness_stop(&h);
}

TEST(refuses_message_of_unnegotiated_protocol_feature)
{
    struct harness h;
    struct gabi_vhost_client *c;
    uint8_t status;

    REQUIRE(harness_start(&h, test_catalog_mode("upstream.guestabi-net.v2")) == 0);
    c = harness_client(&h, ALL, PF_REPLY_ACK);
    REQUIRE(c);
    CHECK(gabi_vhost_client_get_status(c, &status) < 0);
    check_closed(&h, c, "GET_STATUS: needs VHOST_USER_PROTOCOL_F_STATUS, which was not negotiated");
    gabi_vhost_client_free(c);
    harness_stop(&h);
}

TEST(refuses_more_queues)
{
    struct harness h;
    struct gabi_vhost_client *c;
    uint64_t n = 0;

    REQUIRE(harness_start(&h, test_catalog_mode("upstream.guestabi-net.v1")) == 0);
    c = harness_client(&h, ALL, ALL);
    REQUIRE(c);
    CHECK_INT(gabi_vhost_client_get_queue_num(c, &n), 0);
    CHECK_INT(n, 1);
    CHECK_INT(gabi_vhost_client_set_vring_num(c, 1, 256), 0);
    CHECK_INT(gabi_vhost_client_set_vring_num(c, 2, 256), -EIO);
    check_closed(&h, c,
                 "vring 2 is beyond the 2 vrings of mode upstream.guestabi-net.v1 (1 queue pair)");
    gabi_vhost_client_free(c);
    harness_stop(&h);
}

TEST(refuses_larger_ring)
{
    struct harness h;
    struct gabi_vhost_client *c;

    REQUIRE(harness_start(&h, test_catalog_mode("upstream.guestabi-net.v1")) == 0);
    c = harness_client(&h, ALL, ALL);
    REQUIRE(c);
    CHECK_INT(gabi_vhost_client_set_vring_num(c, 0, 512), -EIO);
    check_closed(&h, c, "size 512 exceeds 256, the most mode upstream.guestabi-net.v1 allows");
    gabi_vhost_client_free(c);
    harness_stop(&h);
}

TEST(mode_beyond_the_library_is_refused)
{
    struct gabi_vhost_mode m = *test_catalog_mode("upstream.guestabi-net.v2");
    struct gabi_vhost_backend_config cfg = {
        .cls = GABI_CLASS_NET,
        .mode = &m,
        .device_features = (1ull << GABI_NET_F_MTU) | (1ull << GABI_NET_F_MRG_RXBUF),
    };
    struct gabi_vhost_backend *b = NULL;
    struct gabi_error err = {0};

    m.features |= 1ull << GABI_F_ACCESS_PLATFORM; /* no IOTLB in lib/vhost */
    CHECK_INT(gabi_vhost_backend_new(&cfg, NULL, NULL, &b, &err), -EOPNOTSUPP);
    CHECK_CONTAINS(err.message, "VIRTIO_F_ACCESS_PLATFORM");
    m = *test_catalog_mode("upstream.guestabi-net.v2");
    m.protocol_features |= 1ull << GABI_PF_DEVICE_STATE;
    CHECK_INT(gabi_vhost_backend_new(&cfg, NULL, NULL, &b, &err), -EOPNOTSUPP);
    CHECK_CONTAINS(err.message, "VHOST_USER_PROTOCOL_F_DEVICE_STATE");
    m = *test_catalog_mode("upstream.guestabi-net.v2");
    m.max_queue_pairs = 32768;
    CHECK_INT(gabi_vhost_backend_new(&cfg, NULL, NULL, &b, &err), -EOPNOTSUPP);
    m = *test_catalog_mode("upstream.guestabi-net.v2");
    m.max_queue_size = 1000;
    CHECK_INT(gabi_vhost_backend_new(&cfg, NULL, NULL, &b, &err), -EOPNOTSUPP);
    /* MTU is a device feature: a device that does not implement it cannot run v2 */
    m = *test_catalog_mode("upstream.guestabi-net.v2");
    cfg.device_features = 1ull << GABI_NET_F_MRG_RXBUF;
    CHECK_INT(gabi_vhost_backend_new(&cfg, NULL, NULL, &b, &err), -EOPNOTSUPP);
    CHECK_CONTAINS(err.message, "VIRTIO_NET_F_MTU");
    CHECK(b == NULL);
}

TEST(probe_reads_the_offer)
{
    const struct gabi_vhost_mode *modes[] = {test_catalog_mode("upstream.guestabi-net.v1"),
                                             test_catalog_mode("upstream.guestabi-net.v2")};

    for (unsigned i = 0; i < 2; i++) {
        struct harness h;
        struct gabi_vhost_offer o = {0};
        struct gabi_error err = {0};

        REQUIRE(harness_start(&h, modes[i]) == 0);
        CHECK_INT(gabi_vhost_client_probe_offer(h.path, 0, &o, &err), 0);
        CHECK(o.features == modes[i]->features);
        CHECK(o.protocol_features == modes[i]->protocol_features);
        CHECK_INT(o.max_queue_pairs, modes[i]->max_queue_pairs);
        CHECK_INT(o.max_queue_size, modes[i]->max_queue_size);
        /* five connections, none of which started anything */
        CHECK_INT(harness_wait_disconnects(&h, 5), 0);
        CHECK_INT(h.n_started, 0);
        harness_stop(&h);
    }
}

/* ---- framing ---------------------------------------------------------------------------- */

static int raw_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    strcpy(sa.sun_path, path);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

TEST(partial_messages_are_reassembled)
{
    struct harness h;
    struct gabi_vhost_client *c;
    struct vhost_user_hdr hdr = {.request = VHOST_USER_GET_FEATURES, .flags = 1};
    int fd;
    uint64_t v = 0;

    REQUIRE(harness_start(&h, test_catalog_mode("upstream.guestabi-net.v2")) == 0);
    fd = raw_connect(h.path);
    REQUIRE(fd >= 0);
    /* one byte at a time: the back-end must wait for the rest, not block or misparse */
    for (size_t i = 0; i < sizeof(hdr); i++)
        REQUIRE(write(fd, (uint8_t *)&hdr + i, 1) == 1);
    REQUIRE(gabi_vhost_client_new_fd(fd, 0, &c) == 0);
    /* the reply to our hand-made request arrives; read it through a real one's reply path */
    {
        struct vhost_user_hdr rh;
        uint64_t payload;

        REQUIRE(read(fd, &rh, sizeof(rh)) == sizeof(rh));
        CHECK_INT(rh.flags, 5);
        CHECK_INT(rh.size, 8);
        REQUIRE(read(fd, &payload, 8) == 8);
        CHECK(payload == test_catalog_mode("upstream.guestabi-net.v2")->features);
    }
    CHECK_INT(gabi_vhost_client_get_protocol_features(c, &v), 0);
    CHECK(v == test_catalog_mode("upstream.guestabi-net.v2")->protocol_features);
    gabi_vhost_client_free(c);
    harness_stop(&h);
}

struct bad_case {
    struct vhost_user_hdr hdr;
    unsigned n_fds;
    const char *reason;
};

TEST(bad_framing_closes_the_connection)
{
    static const struct bad_case cases[] = {
        {{VHOST_USER_GET_FEATURES, 2, 0}, 0, "version must be 1"},
        {{VHOST_USER_GET_FEATURES, 5, 0}, 0, "no reply flag"},
        {{99, 1, 0}, 0, "request code 99 is not a vhost-user request"},
        {{0, 1, 0}, 0, "request code 0"},
        {{VHOST_USER_IOTLB_MSG, 1, 0}, 0, "IOTLB_MSG: not supported"},
        {{VHOST_USER_SET_FEATURES, 1, 4096}, 0, "payload of 4096 bytes (expected 8 to 8)"},
        {{VHOST_USER_SET_MEM_TABLE, 1, 0xffffffff}, 0, "payload of 4294967295 bytes"},
        {{VHOST_USER_SET_FEATURES, 1, 8}, 2, "SET_FEATURES: 2 fds attached, at most 0"},
        {{VHOST_USER_SET_VRING_KICK, 1, 8},
         0,
         "SET_VRING_KICK: vring 0: 0 fds with the no-fd flag clear"},
        {{VHOST_USER_SET_MEM_TABLE, 1, 8 + 32}, 0, "1 regions but 0 fds"},
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct harness h;
        unsigned before;
        char msg[512] = {0};
        uint8_t payload[64] = {0};
        int fd, fds[2];

        REQUIRE(harness_start(&h, &harness_mode_all) == 0);
        before = harness_count_fds();
        fd = raw_connect(h.path);
        REQUIRE(fd >= 0);
        fds[0] = eventfd(0, EFD_CLOEXEC);
        fds[1] = eventfd(0, EFD_CLOEXEC);
        if (cases[i].hdr.request == VHOST_USER_SET_MEM_TABLE && cases[i].hdr.size == 40)
            payload[0] = 1;
        {
            struct vhost_user_hdr hdr = cases[i].hdr;
            struct iovec iov[2] = {{&hdr, sizeof(hdr)}, {payload, MIN(hdr.size, sizeof(payload))}};
            union {
                char buf[CMSG_SPACE(sizeof(int) * 2)];
                struct cmsghdr align;
            } ctl;
            struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};

            if (cases[i].n_fds) {
                struct cmsghdr *cm;

                mh.msg_control = ctl.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * cases[i].n_fds);
                cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int) * cases[i].n_fds);
                memcpy(CMSG_DATA(cm), fds, sizeof(int) * cases[i].n_fds);
            }
            CHECK(sendmsg(fd, &mh, MSG_NOSIGNAL) > 0);
        }
        CHECK_INT(harness_wait_disconnects(&h, 1), 0);
        harness_copy(&h, "disconnect", msg, sizeof(msg));
        CHECK_CONTAINS(msg, cases[i].reason);
        close(fd);
        close(fds[0]);
        close(fds[1]);
        /* every fd that came with the message was closed by the back-end */
        CHECK_INT(harness_count_fds(), before);
        harness_stop(&h);
    }
}

TEST(bad_memory_tables)
{
    struct {
        struct vhost_mem_region reg;
        const char *reason;
    } cases[] = {
        {{0, 0, 0x10000, 0}, "is empty or wraps around"},
        {{~0ull - 0xfff, 0x2000, 0x10000, 0}, "is empty or wraps around"},
        {{0, 1 << 20, 0x10000, 4 << 20},
         "needs 0x500000 bytes of a regular file, its fd has 0x400000"},
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct harness h;
        struct gabi_vhost_client *c;
        struct gabi_vhost_guestmem *gm = NULL;
        struct vhost_mem_single s = {.region = cases[i].reg};
        char msg[512];
        int fd;

        REQUIRE(harness_start(&h, &harness_mode_all) == 0);
        c = harness_client(&h, ALL, ALL);
        REQUIRE(c);
        REQUIRE(gabi_vhost_guestmem_new(4 << 20, 1, &gm, NULL) == 0);
        fd = gabi_vhost_guestmem_fd(gm);
        CHECK_INT(gabi_vhost_client_request(c, VHOST_USER_ADD_MEM_REG, true, &s, sizeof(s), &fd, 1,
                                            NULL, 0, NULL),
                  -EIO);
        CHECK_INT(harness_wait_disconnects(&h, 1), 0);
        harness_copy(&h, "disconnect", msg, sizeof(msg));
        CHECK_CONTAINS(msg, cases[i].reason);
        gabi_vhost_client_free(c);
        gabi_vhost_guestmem_free(gm);
        harness_stop(&h);
    }
}

TEST(overlapping_regions_are_refused)
{
    struct harness h;
    struct gabi_vhost_client *c;
    struct gabi_vhost_guestmem *gm = NULL;
    char msg[512];

    REQUIRE(harness_start(&h, &harness_mode_all) == 0);
    c = harness_client(&h, ALL, ALL);
    REQUIRE(c);
    REQUIRE(gabi_vhost_guestmem_new(4 << 20, 2, &gm, NULL) == 0);
    CHECK_INT(gabi_vhost_client_add_mem_reg(c, gm, 0), 0);
    CHECK_INT(gabi_vhost_client_add_mem_reg(c, gm, 0), -EIO);
    CHECK_INT(harness_wait_disconnects(&h, 1), 0);
    harness_copy(&h, "disconnect", msg, sizeof(msg));
    CHECK_CONTAINS(msg, "overlaps region");
    gabi_vhost_client_free(c);
    gabi_vhost_guestmem_free(gm);
    harness_stop(&h);
}

/* A front-end that hands over, as call fds, something it never reads (here: blocking pipes,
 * already full) must not be able to block the back-end's loop in a write: traffic still goes
 * through and the back-end still answers. */
TEST(full_call_fds_never_block)
{
    struct harness h;
    struct gabi_vhost_client *c;
    struct guest g;
    int call[2][2];
    uint8_t status = 0xff;
    char text[] = "through a full call pipe";
    struct gabi_vhost_gbuf rxb, txb;
    uint32_t id, len;
    int got = 0;

    REQUIRE(harness_start(&h, test_catalog_mode("upstream.guestabi-net.v2")) == 0);
    c = harness_client(&h, ALL, ALL);
    REQUIRE(c);
    REQUIRE(guest_new(&g, 1, 0) == 0);
    CHECK_INT(gabi_vhost_client_set_mem_table(c, g.gm), 0);
    CHECK_INT(start_rings(c, &g, 0), 0);
    for (int q = 0; q < 2; q++) {
        char fill[4096] = {0};

        REQUIRE(pipe2(call[q], O_CLOEXEC) == 0);
        /* fill it through our side of the shared file description, then make it blocking */
        fcntl(call[q][1], F_SETFL, O_NONBLOCK);
        while (write(call[q][1], fill, sizeof(fill)) > 0) {
        }
        fcntl(call[q][1], F_SETFL, 0);
        CHECK_INT(gabi_vhost_client_set_vring_call(c, (unsigned)q, call[q][1]), 0);
    }
    rxb = (struct gabi_vhost_gbuf){g.bufs + 2048, 2048};
    txb = (struct gabi_vhost_gbuf){g.bufs, (uint32_t)strlen(text)};
    memcpy(buf_ptr(&g, 0), text, strlen(text));
    CHECK(gabi_vhost_guestq_add(g.rx, &rxb, 0, 1, false) >= 0);
    gabi_vhost_guestq_kick(g.rx);
    CHECK(gabi_vhost_guestq_add(g.tx, &txb, 1, 0, false) >= 0);
    gabi_vhost_guestq_kick(g.tx);
    /* no interrupt can come (the call fds are the pipes): look at the used rings */
    for (int tries = 0; tries < 500 && got < 2; tries++) {
        got += gabi_vhost_guestq_get_used(g.rx, &id, &len) == 1;
        got += gabi_vhost_guestq_get_used(g.tx, &id, &len) == 1;
        if (got < 2)
            usleep(10000);
    }
    CHECK_INT(got, 2);
    /* and the loop still answers */
    CHECK_INT(gabi_vhost_client_get_status(c, &status), 0);
    gabi_vhost_client_free(c);
    CHECK_INT(harness_wait_disconnects(&h, 1), 0);
    for (int q = 0; q < 2; q++) {
        close(call[q][0]);
        close(call[q][1]);
    }
    guest_free(&g);
    harness_stop(&h);
}

/* ---- disconnect and reconnect ----------------------------------------------------------- */

TEST(reconnect_starts_clean)
{
    struct harness h;
    struct guest g;
    unsigned before;
    uint8_t status = 0xff;

    REQUIRE(harness_start(&h, test_catalog_mode("upstream.guestabi-net.v2")) == 0);
    before = harness_count_fds();
    for (unsigned round = 0; round < 3; round++) {
        struct gabi_vhost_client *c = harness_client(&h, ALL, ALL);
        uint32_t base = 0;

        REQUIRE(c);
        REQUIRE(guest_new(&g, 2, GABI_VHOST_GUESTQ_EVENT_IDX) == 0);
        /* a fresh connection knows nothing of the last one */
        CHECK_INT(gabi_vhost_client_get_status(c, &status), 0);
        CHECK_INT(status, 0);
        CHECK_INT(gabi_vhost_client_set_mem_table(c, g.gm), 0);
        CHECK_INT(start_rings(c, &g, round), 0);
        CHECK_INT(gabi_vhost_client_set_status(c, 0xf), 0);
        CHECK_INT(roundtrip(&g, "across reconnects"), 0);
        if (round == 1)
            CHECK_INT(gabi_vhost_client_stop_vring(c, 2 * round, &base), 0);
        /* the front-end goes away with rings running (round 0, 2) or stopped (1) */
        gabi_vhost_client_free(c);
        CHECK_INT(harness_wait_disconnects(&h, round + 1), 0);
        guest_free(&g);
    }
    CHECK_INT(gabi_vhost_backend_n_connections(h.b), 3);
    CHECK_INT(h.n_started, h.n_stopped);
    /* the kick, call, err and memory fds of every connection are gone */
    CHECK_INT(harness_count_fds(), before);
    harness_stop(&h);
}

TAP_MAIN()
