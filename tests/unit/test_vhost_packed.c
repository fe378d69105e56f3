/* SPDX-License-Identifier: MIT */
/*
 * lib/vhost's packed virtqueues (VIRTIO_F_RING_PACKED) against a guest driver with a packed
 * layout: chains of every shape, wrap counters through many laps, event suppression in both
 * modes, IN_ORDER batches, the indices handed over by GET/SET_VRING_BASE, dirty logging of
 * the used writes, and hostile rings, each of which must break only its own vring.
 */

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <guestabi/util.h>
#include "vhost_ring_guest.h"
#include "vhost/protocol.h"
#include "vhost/ring.h"

#include "tap.h"

#define FRESH 0x80008000u /* slot 0, both wrap counters 1 */

/* guest_setup() on packed rings (RING_PACKED negotiated, or -1). */
static int setup_log(struct guest *g, uint64_t features, unsigned qflags, bool start_all, bool log)
{
    if (guest_setup(g, &harness_mode_packed, features, qflags | GABI_VHOST_GUESTQ_PACKED, start_all,
                    log) < 0)
        return -1;
    return gabi_vhost_client_features(g->c) & (1ull << GABI_F_RING_PACKED) ? 0 : -1;
}

static int setup(struct guest *g, uint64_t features, unsigned qflags, bool start_all)
{
    return setup_log(g, features, qflags, start_all, false);
}

static struct vring_packed_desc *ring_of(struct guest *g, unsigned i)
{
    uint64_t desc, drv, dev;

    gabi_vhost_guestq_addrs(g->q[i], &desc, &drv, &dev);
    return (struct vring_packed_desc *)ptr(g, desc, 16 * 256);
}

/* ---- chains of every shape -------------------------------------------------------------- */

TEST(packed_chains_direct_indirect_and_across_regions)
{
    struct guest g;
    uint8_t data[4096];
    uint64_t edge = MEM_SIZE / 2;

    for (unsigned i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7 + 1);
    REQUIRE(setup(&g, ALL & ~(1ull << GABI_F_IN_ORDER),
                  GABI_VHOST_GUESTQ_INDIRECT | GABI_VHOST_GUESTQ_EVENT_IDX, true) == 0);
    {
        struct gabi_vhost_gbuf tx[] = {{g.bufs, 12}, {g.bufs + 4096, 1000}, {g.bufs + 9000, 500}};
        struct gabi_vhost_gbuf rx[] = {{g.bufs + 16384, 100}, {g.bufs + 20480, 4000}};

        loop_one(&g, 0, tx, 3, false, rx, 2, false, data, 1512);
        loop_one(&g, 0, tx, 3, true, rx, 2, true, data, 1512);
        loop_one(&g, 1, tx, 3, true, rx, 2, false, data, 1512);
        loop_one(&g, 1, tx, 3, false, rx, 2, true, data, 1512);
    }
    {
        struct gabi_vhost_gbuf tx[] = {{edge - 100, 300}};
        struct gabi_vhost_gbuf rx[] = {{edge - 1000, 2000}};

        loop_one(&g, 0, tx, 1, false, rx, 1, true, data, 300);
    }
    /* pair 0's TX ring: 3 + 1 + 1 slots used, the used descriptors where each chain began */
    {
        struct vring_packed_desc *d = ring_of(&g, 1);

        CHECK(vring_packed_is_used(d[0].flags, true));
        CHECK(vring_packed_is_used(d[3].flags, true));
        CHECK(vring_packed_is_used(d[4].flags, true));
        CHECK(!vring_packed_is_used(d[1].flags, true)); /* inside the first chain */
        CHECK_INT(gabi_vhost_guestq_used_idx(g.q[1]), 0x8000 | 5);
    }
    CHECK_INT(g.h.n_broken, 0);
    teardown(&g);
}

/* ---- wrap counters ---------------------------------------------------------------------- */

static void many_laps(bool in_order)
{
    struct guest g;
    uint32_t total = 0, slots_rx = 0;

    REQUIRE(setup(&g, in_order ? ALL : ALL & ~(1ull << GABI_F_IN_ORDER),
                  GABI_VHOST_GUESTQ_EVENT_IDX | (in_order ? GABI_VHOST_GUESTQ_IN_ORDER : 0),
                  false) == 0);
    /* 20,000 packets in batches of 100; RX chains of 1 or 2 descriptors, so that chains
     * straddle the end of the ring: the 256-slot ring laps about 120 times */
    while (total < 20000) {
        unsigned batch = 100, got_rx = 0, got_tx = 0;
        uint32_t id, len;

        for (unsigned k = 0; k < batch; k++) {
            struct gabi_vhost_gbuf rx[2] = {{g.bufs + k * 1024ull, 40},
                                            {g.bufs + k * 1024ull + 512, 512}};
            struct gabi_vhost_gbuf tx = {g.bufs + (128 << 10) + k * 256ull, 64};
            unsigned n_rx = (total + k) % 3 == 0 ? 2 : 1;

            if (n_rx == 1)
                rx[0].len = 1024;
            *ptr(&g, tx.gpa, 1) = (uint8_t)k;
            REQUIRE(gabi_vhost_guestq_add(g.q[0], rx, 0, n_rx, false) >= 0);
            REQUIRE(gabi_vhost_guestq_add(g.q[1], &tx, 1, 0, false) >= 0);
            slots_rx += n_rx;
        }
        gabi_vhost_guestq_kick(g.q[0]);
        gabi_vhost_guestq_kick(g.q[1]);
        while (got_rx < batch) {
            REQUIRE(reap(g.q[0], &id, &len) == 1);
            CHECK_INT(len, 64);
            got_rx++;
        }
        while (got_tx < batch) {
            REQUIRE(reap(g.q[1], &id, &len) == 1);
            got_tx++;
        }
        total += batch;
    }
    harness_call(&g.h, noop, NULL);
    /* the driver's next used slot and wrap counter follow from the slots it posted */
    CHECK_INT(gabi_vhost_guestq_used_idx(g.q[0]),
              (slots_rx % 256) | ((slots_rx / 256) % 2 ? 0 : 0x8000));
    CHECK_INT(g.h.n_looped, 20000);
    CHECK_INT(g.h.n_broken, 0);
    teardown(&g);
}

TEST(packed_wrap_counters_through_many_laps)
{
    many_laps(false);
    many_laps(true);
}

/* ---- event suppression -------------------------------------------------------------------- */

TEST(packed_event_suppression)
{
    for (unsigned event_idx = 0; event_idx < 2; event_idx++) {
        struct guest g;
        struct gabi_vhost_gbuf rx = {0, 2048}, tx = {0, 60};
        uint64_t desc, drv, dev;
        struct vring_packed_event *de;
        uint32_t id, len;

        REQUIRE(setup(&g, event_idx ? ALL : ALL & ~(1ull << GABI_F_EVENT_IDX),
                      event_idx ? GABI_VHOST_GUESTQ_EVENT_IDX : 0, false) == 0);
        gabi_vhost_guestq_addrs(g.q[1], &desc, &drv, &dev);
        de = (struct vring_packed_event *)ptr(&g, dev, 4);
        /* the device asks for kicks: at a descriptor with EVENT_IDX, else always */
        CHECK_INT(de->flags, event_idx ? VRING_PACKED_EVENT_F_DESC : VRING_PACKED_EVENT_F_ENABLE);
        if (event_idx)
            CHECK_INT(de->off_wrap, 0x8000);
        rx.gpa = g.bufs;
        tx.gpa = g.bufs + 4096;
        gabi_vhost_guestq_set_interrupts(g.q[0], false);
        REQUIRE(gabi_vhost_guestq_add(g.q[0], &rx, 0, 1, false) >= 0);
        REQUIRE(gabi_vhost_guestq_add(g.q[1], &tx, 1, 0, false) >= 0);
        CHECK_INT(gabi_vhost_guestq_kick(g.q[0]), 1);
        CHECK_INT(gabi_vhost_guestq_kick(g.q[1]), 1);
        CHECK_INT(reap(g.q[1], &id, &len), 1);
        harness_call(&g.h, noop, NULL);
        /* RX completed without an interrupt: the driver disabled them */
        CHECK(!readable(gabi_vhost_guestq_call_fd(g.q[0])));
        CHECK_INT(gabi_vhost_guestq_get_used(g.q[0], &id, &len), 1);
        if (event_idx) {
            /* drained: the device wants a kick at the next slot */
            CHECK_INT(de->flags, VRING_PACKED_EVENT_F_DESC);
            CHECK_INT(de->off_wrap, 0x8000 | 1);
        }
        gabi_vhost_guestq_set_interrupts(g.q[0], true);
        REQUIRE(gabi_vhost_guestq_add(g.q[0], &rx, 0, 1, false) >= 0);
        REQUIRE(gabi_vhost_guestq_add(g.q[1], &tx, 1, 0, false) >= 0);
        gabi_vhost_guestq_kick(g.q[0]);
        gabi_vhost_guestq_kick(g.q[1]);
        CHECK_INT(gabi_vhost_guestq_wait(g.q[0], 10000), 1);
        CHECK_INT(gabi_vhost_guestq_get_used(g.q[0], &id, &len), 1);
        CHECK_INT(len, 60);
        CHECK_INT(g.h.n_broken, 0);
        teardown(&g);
    }
}

TEST(packed_device_disables_kicks_while_polling)
{
    struct guest g;
    struct gabi_vhost_vring *vr;
    uint64_t desc, drv, dev;
    struct vring_packed_event *de;

    REQUIRE(setup(&g, ALL, GABI_VHOST_GUESTQ_EVENT_IDX, false) == 0);
    gabi_vhost_guestq_addrs(g.q[1], &desc, &drv, &dev);
    de = (struct vring_packed_event *)ptr(&g, dev, 4);
    vr = gabi_vhost_backend_vring(g.h.b, 1);
    harness_call(&g.h, noop, NULL);
    /* the vring is started: notify(false) writes DISABLE, and the driver does not kick */
    CHECK(!gabi_vhost_vring_notify(vr, false));
    CHECK_INT(de->flags, VRING_PACKED_EVENT_F_DISABLE);
    {
        struct gabi_vhost_gbuf tx = {g.bufs, 60};

        CHECK(!gabi_vhost_vring_has_avail(vr));
        REQUIRE(gabi_vhost_guestq_add(g.q[1], &tx, 1, 0, false) >= 0);
        CHECK_INT(gabi_vhost_guestq_kick(g.q[1]), 0);
        CHECK(gabi_vhost_vring_has_avail(vr));
        CHECK_INT(gabi_vhost_vring_avail_count(vr), 1);
    }
    /* enabling again reports the chain that came meanwhile */
    CHECK(gabi_vhost_vring_notify(vr, true));
    CHECK_INT(de->flags, VRING_PACKED_EVENT_F_DESC);
    CHECK_INT(de->off_wrap, 0x8000);
    teardown(&g);
}

/* ---- IN_ORDER ------------------------------------------------------------------------------ */

TEST(packed_in_order_one_used_descriptor_per_batch)
{
    for (unsigned in_order = 0; in_order < 2; in_order++) {
        struct guest g;
        struct vring_packed_desc *d;
        int ids[8];

        REQUIRE(setup(&g, in_order ? ALL : ALL & ~(1ull << GABI_F_IN_ORDER),
                      in_order ? GABI_VHOST_GUESTQ_IN_ORDER : 0, false) == 0);
        CHECK_INT(!!(gabi_vhost_client_features(g.c) & (1ull << GABI_F_IN_ORDER)), in_order);
        d = ring_of(&g, 1);
        /* 8 TX chains (the last one of 2 descriptors), no RX buffers: all dropped, all
         * completed with nothing written in one flush */
        for (unsigned k = 0; k < 8; k++) {
            struct gabi_vhost_gbuf tx[2] = {{g.bufs + k * 256ull, 14}, {g.bufs + 0x8000, 50}};

            ids[k] = gabi_vhost_guestq_add(g.q[1], tx, k == 7 ? 2 : 1, 0, false);
            REQUIRE(ids[k] >= 0);
        }
        CHECK_INT(gabi_vhost_guestq_kick(g.q[1]), 1);
        for (unsigned k = 0; k < 8; k++) {
            uint32_t id, len;

            CHECK_INT(reap(g.q[1], &id, &len), 1);
            CHECK_INT(id, ids[k]);
            CHECK_INT(len, 0);
        }
        CHECK(vring_packed_is_used(d[0].flags, true));
        if (in_order) {
            /* one used descriptor: the last chain's id at the batch's first slot */
            CHECK_INT(d[0].id, ids[7]);
            CHECK(!vring_packed_is_used(d[1].flags, true));
        } else {
            CHECK_INT(d[0].id, ids[0]);
            CHECK(vring_packed_is_used(d[1].flags, true));
            CHECK_INT(d[7].id, ids[7]);
        }
        CHECK_INT(gabi_vhost_guestq_used_idx(g.q[1]), 0x8000 | 9);
        harness_call(&g.h, noop, NULL); /* the loop counts its drops after the flush */
        CHECK_INT(g.h.n_dropped, 8);
        CHECK_INT(g.h.n_broken, 0);
        teardown(&g);
    }
}

/* ---- the indices handed over -------------------------------------------------------------- */

TEST(packed_vring_base_carries_the_wrap_counters)
{
    struct guest g;
    uint8_t data[64] = "after the restart";
    uint32_t base = 0, id, len;

    REQUIRE(setup(&g, ALL, GABI_VHOST_GUESTQ_EVENT_IDX, false) == 0);
    /* 300 packets: both vrings of pair 0 pass the end of their 256 slots once */
    for (unsigned k = 0; k < 300; k++) {
        struct gabi_vhost_gbuf rx = {g.bufs, 2048}, tx = {g.bufs + 4096, 60};

        REQUIRE(gabi_vhost_guestq_add(g.q[0], &rx, 0, 1, false) >= 0);
        REQUIRE(gabi_vhost_guestq_add(g.q[1], &tx, 1, 0, false) >= 0);
        gabi_vhost_guestq_kick(g.q[0]);
        gabi_vhost_guestq_kick(g.q[1]);
        REQUIRE(reap(g.q[0], &id, &len) == 1);
        REQUIRE(reap(g.q[1], &id, &len) == 1);
    }
    /* one TX chain posted, not kicked: the device has not consumed it */
    {
        struct gabi_vhost_gbuf tx = {g.bufs + 4096, 60};

        REQUIRE(gabi_vhost_guestq_add(g.q[1], &tx, 1, 0, false) >= 0);
        gabi_vhost_guestq_publish(g.q[1]);
    }
    harness_call(&g.h, noop, NULL);
    REQUIRE(gabi_vhost_client_set_vring_enable(g.c, 1, false) == 0);
    CHECK_INT(gabi_vhost_client_get_vring_base(g.c, 1, &base), 0);
    /* slot 300 - 256 = 44, wrap counters flipped once (to 0), avail and used alike */
    CHECK_INT(base, 44u | 44u << 16);
    /* a base naming a slot beyond the ring breaks the vring when it starts */
    CHECK_INT(gabi_vhost_client_start_vring(g.c, 1, g.q[1], 300, false), 0);
    CHECK_INT(harness_wait_broken(&g.h, 1), 0);
    {
        char buf[512];

        harness_copy(&g.h, "broken", buf, sizeof(buf));
        CHECK_CONTAINS(buf, "names a slot beyond the ring of 256");
    }
    REQUIRE(gabi_vhost_client_set_vring_enable(g.c, 1, false) == 0);
    CHECK_INT(gabi_vhost_client_get_vring_base(g.c, 1, &base), 0);
    CHECK_INT(base, 300); /* never started: handed back as it was set */
    /* restarted at the base it returned, the chain posted before the stop is consumed */
    CHECK_INT(gabi_vhost_client_start_vring(g.c, 1, g.q[1], 44u | 44u << 16, false), 0);
    REQUIRE(write(gabi_vhost_guestq_kick_fd(g.q[1]), &(uint64_t){1}, 8) == 8);
    CHECK_INT(reap(g.q[1], &id, &len), 1);
    {
        struct gabi_vhost_gbuf tx[] = {{g.bufs + 0x20000, 64}};
        struct gabi_vhost_gbuf rx[] = {{g.bufs + 0x21000, 2048}};

        loop_one(&g, 0, tx, 1, false, rx, 1, false, data, sizeof(data));
    }
    CHECK_INT(gabi_vhost_guestq_used_idx(g.q[1]), 46);
    CHECK_INT(g.h.n_broken, 1);
    teardown(&g);
}

/* ---- the ring state handed over to another back-end ------------------------------------ */

static int send_seq(struct tguest *g, unsigned seq)
{
    struct gabi_virtio_net_hdr h = {.num_buffers = 1};
    uint8_t f[100];

    memset(f, 0, sizeof(f));
    f[14] = (uint8_t)seq;
    f[15] = (uint8_t)(seq >> 8);
    return tguest_send(g, 0, &h, f, sizeof(f), false, false);
}

/* One frame's sequence number, or -errno; its RX buffer is posted again. */
static int recv_seq(struct tguest *g, int timeout_ms)
{
    struct gabi_virtio_net_hdr h;
    uint8_t f[4096];
    int n = tguest_recv(g, 0, &h, f, sizeof(f), timeout_ms);

    if (n < 0)
        return n;
    if (n < 16 || tguest_post_rx(g, 0, 1, 2048) < 0)
        return -EBADMSG;
    return f[14] | f[15] << 8;
}

/* The loopback's counter once it reached n (it is counted after the flush), or what it is
 * after 10 s. */
static uint64_t looped_at_least(struct harness *h, uint64_t n)
{
    uint64_t v = 0;

    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&h->lock);
        v = h->n_looped;
        pthread_mutex_unlock(&h->lock);
        if (v >= n)
            break;
        usleep(10000);
    }
    return v;
}

TEST(packed_rings_handed_over_to_another_backend)
{
    const unsigned qflags =
        GABI_VHOST_GUESTQ_PACKED | GABI_VHOST_GUESTQ_EVENT_IDX | GABI_VHOST_GUESTQ_IN_ORDER;
    struct harness a, b;
    struct tguest g;
    struct gabi_vhost_client *old, *c2 = NULL;
    uint32_t bases[2];
    uint64_t f2 = 0;

    REQUIRE(harness_start(&a, &harness_mode_packed) == 0);
    REQUIRE(harness_start(&b, &harness_mode_packed) == 0);
    REQUIRE(tguest_connect(&g, a.path, ALL, 1, qflags) == 0);
    REQUIRE(g.features & (1ull << GABI_F_RING_PACKED));
    REQUIRE(g.features & (1ull << GABI_F_IN_ORDER));
    REQUIRE(tguest_post_rx(&g, 0, 64, 2048) == 0);
    /* 300 frames: both rings pass their end once (wrap counters 0) */
    for (unsigned i = 0; i < 300; i++) {
        REQUIRE(send_seq(&g, i) == 0);
        REQUIRE(recv_seq(&g, 10000) == (int)i);
        tguest_reap_tx(&g, 0);
    }
    REQUIRE(tguest_stop(&g, bases) == 0);
    /* TX: 300 chains of one descriptor; RX: 300 of the 364 buffers posted */
    CHECK_INT(bases[1], 44u | 44u << 16);
    CHECK_INT(bases[0], 44u | 44u << 16);
    /* the guest queues five more while the device is away */
    for (unsigned i = 300; i < 305; i++)
        CHECK_INT(send_seq(&g, i), 0);
    /* the destination: same guest memory (the memfd), the bases handed over */
    REQUIRE(gabi_vhost_client_connect(b.path, 10000, &c2, NULL) == 0);
    REQUIRE(gabi_vhost_client_negotiate(c2, g.features, ~0ull, &f2, NULL) == 0);
    CHECK(f2 == g.features);
    REQUIRE(gabi_vhost_client_share_guestmem(c2, g.gm) == 0);
    old = g.c;
    g.c = c2;
    REQUIRE(tguest_start(&g, 1, bases) == 0);
    REQUIRE(gabi_vhost_guestq_kick(g.q[1]) >= 0);
    REQUIRE(write(gabi_vhost_guestq_kick_fd(g.q[1]), &(uint64_t){1}, 8) == 8);
    /* exactly the five queued frames, in order, once each; then traffic goes on */
    for (unsigned i = 300; i < 305; i++)
        CHECK_INT(recv_seq(&g, 10000), (int)i);
    CHECK_INT(recv_seq(&g, 300), -ETIMEDOUT);
    for (unsigned i = 305; i < 600; i++) {
        REQUIRE(send_seq(&g, i) == 0);
        REQUIRE(recv_seq(&g, 10000) == (int)i);
        tguest_reap_tx(&g, 0);
    }
    /* (not harness_call: its pending call is one for the whole process, two loops race) */
    CHECK_INT(looped_at_least(&a, 300), 300);
    CHECK_INT(looped_at_least(&b, 300), 300);
    CHECK_INT(a.n_broken + b.n_broken, 0);
    gabi_vhost_client_free(old);
    tguest_free(&g);
    harness_stop(&a);
    harness_stop(&b);
}

/* ---- dirty log ------------------------------------------------------------------------- */

TEST(packed_dirty_log_marks_the_used_writes)
{
    struct guest g;
    uint64_t desc[2], drv, dev[2];
    uint8_t data[1500];

    memset(data, 0x5a, sizeof(data));
    REQUIRE(setup_log(&g, ALL, GABI_VHOST_GUESTQ_EVENT_IDX, false, true) == 0);
    for (unsigned i = 0; i < 2; i++)
        gabi_vhost_guestq_addrs(g.q[i], &desc[i], &drv, &dev[i]);
    gabi_vhost_client_log_clear(g.c);
    {
        struct gabi_vhost_gbuf tx[] = {{g.bufs + 0x8000, 1500}};
        struct gabi_vhost_gbuf rx[] = {{g.bufs + 0x2f00, 2048}};

        loop_one(&g, 0, tx, 1, false, rx, 1, false, data, 1500);
    }
    harness_call(&g.h, noop, NULL);
    CHECK(gabi_vhost_client_log_dirty(g.c, g.bufs + 0x2f00));  /* RX data, first page */
    CHECK(gabi_vhost_client_log_dirty(g.c, g.bufs + 0x3000));  /* and second page */
    CHECK(!gabi_vhost_client_log_dirty(g.c, g.bufs + 0x8000)); /* TX data: only read */
    CHECK(gabi_vhost_client_log_dirty(g.c, desc[0]));          /* used descriptors */
    CHECK(gabi_vhost_client_log_dirty(g.c, desc[1]));
    /* the device event structure: TX drained, a kick asked for at the next slot */
    CHECK(gabi_vhost_client_log_dirty(g.c, dev[1]));
    teardown(&g);
}

/* ---- hostile rings ----------------------------------------------------------------------- */

enum hostile {
    H_LOOP,
    H_ADDR_RANGE,
    H_ADDR_STRADDLE,
    H_TOO_MANY_SEGS,
    H_NESTED_INDIRECT,
    H_INDIRECT_OUTSIDE,
    H_INDIRECT_LEN,
    H_INDIRECT_NEXT,
    H_INDIRECT_IN_CHAIN,
    H_READ_AFTER_WRITE,
    H_ADDR_WRAP,
    H_COUNT,
};

static const char *const hostile_reason[H_COUNT] = {
    [H_LOOP] = "is longer than the ring of 256",
    [H_ADDR_RANGE] = "is outside guest memory",
    [H_ADDR_STRADDLE] = "is outside guest memory",
    [H_TOO_MANY_SEGS] = "has more than 64 segments",
    [H_NESTED_INDIRECT] = "nests another",
    [H_INDIRECT_OUTSIDE] = "is not inside one memory region",
    [H_INDIRECT_LEN] = "bad indirect descriptor at slot 0: 40 bytes",
    [H_INDIRECT_NEXT] = "bad indirect descriptor",
    [H_INDIRECT_IN_CHAIN] = "has an indirect descriptor after 1",
    [H_READ_AFTER_WRITE] = "readable descriptor after a writable one",
    [H_ADDR_WRAP] = "wraps around",
};

/* Write a hostile chain into TX vring 1 of pair 0 by hand, its first descriptor last. */
static void plant(struct guest *g, enum hostile kind)
{
    uint64_t table_gpa = g->bufs + 0x10000;
    struct vring_packed_desc *d = ring_of(g, 1);
    struct vring_packed_desc *t = (struct vring_packed_desc *)ptr(g, table_gpa, 4096);
    uint16_t av = vring_packed_flags(true, true), first;
    const uint16_t N = VRING_DESC_F_NEXT, W = VRING_DESC_F_WRITE, I = VRING_DESC_F_INDIRECT;

    d[0] = (struct vring_packed_desc){g->bufs, 64, 0, 0};
    first = av;
    switch (kind) {
    case H_LOOP:
        /* every slot available and chained on: only the slot count can end this */
        for (unsigned i = 1; i < 256; i++)
            d[i] = (struct vring_packed_desc){g->bufs, 0, 0, (uint16_t)(N | av)};
        first |= N;
        d[0].len = 0;
        break;
    case H_ADDR_RANGE:
        d[0].addr = 64ull << 20;
        break;
    case H_ADDR_STRADDLE:
        d[0].addr = MEM_SIZE - 16;
        break;
    case H_TOO_MANY_SEGS:
        for (unsigned i = 1; i < 65; i++)
            d[i] = (struct vring_packed_desc){g->bufs + 8 * i, 8, 0,
                                              (uint16_t)((i < 64 ? N : 0) | av)};
        d[0].len = 8;
        first |= N;
        break;
    case H_NESTED_INDIRECT:
        d[0] = (struct vring_packed_desc){table_gpa, 32, 0, 0};
        t[0] = (struct vring_packed_desc){table_gpa, 32, 0, I};
        first |= I;
        break;
    case H_INDIRECT_OUTSIDE:
        d[0] = (struct vring_packed_desc){MEM_SIZE - 32, 64, 0, 0};
        first |= I;
        break;
    case H_INDIRECT_LEN:
        d[0] = (struct vring_packed_desc){table_gpa, 40, 0, 0};
        first |= I;
        break;
    case H_INDIRECT_NEXT:
        d[0] = (struct vring_packed_desc){table_gpa, 32, 0, 0};
        d[1] = (struct vring_packed_desc){g->bufs, 64, 0, av};
        first |= I | N;
        break;
    case H_INDIRECT_IN_CHAIN:
        d[1] = (struct vring_packed_desc){table_gpa, 32, 0, (uint16_t)(I | av)};
        t[0] = (struct vring_packed_desc){g->bufs, 32, 0, 0};
        first |= N;
        break;
    case H_READ_AFTER_WRITE:
        d[1] = (struct vring_packed_desc){g->bufs + 64, 64, 0, av};
        first |= W | N;
        break;
    case H_ADDR_WRAP:
        d[0].addr = ~0ull - 8;
        break;
    case H_COUNT:
        break;
    }
    __atomic_store_n(&d[0].flags, first, __ATOMIC_RELEASE);
}

/* The other queue pair still works, and the broken vring stops where it was. */
static void check_survivors(struct guest *g)
{
    uint8_t data[64] = "still alive";
    struct gabi_vhost_gbuf tx[] = {{g->bufs + 0x20000, 64}};
    struct gabi_vhost_gbuf rx[] = {{g->bufs + 0x21000, 2048}};
    uint32_t base = 0;

    REQUIRE(gabi_vhost_client_start_vring(g->c, 2, g->q[2], FRESH, false) == 0);
    REQUIRE(gabi_vhost_client_start_vring(g->c, 3, g->q[3], FRESH, false) == 0);
    loop_one(g, 1, tx, 1, false, rx, 1, false, data, sizeof(data));
    REQUIRE(gabi_vhost_client_set_vring_enable(g->c, 1, false) == 0);
    CHECK_INT(gabi_vhost_client_get_vring_base(g->c, 1, &base), 0);
    CHECK_INT(base, FRESH); /* the hostile chain was never consumed */
    CHECK(gabi_vhost_backend_connected(g->h.b));
}

TEST(packed_hostile_rings_break_only_their_vring)
{
    for (int kind = 0; kind < H_COUNT; kind++) {
        struct guest g;

        printf("# case %d: %s\n", kind, hostile_reason[kind]);
        REQUIRE(setup(&g, ALL, 0, false) == 0);
        plant(&g, (enum hostile)kind);
        REQUIRE(write(gabi_vhost_guestq_kick_fd(g.q[1]), &(uint64_t){1}, 8) == 8);
        check_broken(&g, hostile_reason[kind]);
        check_survivors(&g);
        teardown(&g);
    }
}

TEST(packed_indirect_without_the_feature_breaks_the_vring)
{
    struct guest g;

    REQUIRE(setup(&g, ALL & ~(1ull << GABI_F_INDIRECT_DESC), 0, false) == 0);
    plant(&g, H_INDIRECT_LEN);
    REQUIRE(write(gabi_vhost_guestq_kick_fd(g.q[1]), &(uint64_t){1}, 8) == 8);
    check_broken(&g, "(INDIRECT_DESC not negotiated)");
    check_survivors(&g);
    teardown(&g);
}

TEST(packed_ring_outside_memory_breaks_the_vring)
{
    struct guest g;
    uint64_t desc, drv, dev;

    REQUIRE(setup(&g, ALL, 0, false) == 0);
    gabi_vhost_guestq_addrs(g.q[1], &desc, &drv, &dev);
    REQUIRE(gabi_vhost_client_set_vring_enable(g.c, 1, false) == 0);
    REQUIRE(gabi_vhost_client_get_vring_base(g.c, 1, &(uint32_t){0}) == 0);
    /* a descriptor ring running off the end of guest memory */
    CHECK_INT(gabi_vhost_client_set_vring_addr(
                  g.c, 1, 0, gabi_vhost_guestmem_uaddr(g.gm, MEM_SIZE - 64),
                  gabi_vhost_guestmem_uaddr(g.gm, dev), gabi_vhost_guestmem_uaddr(g.gm, drv), 0),
              0);
    CHECK_INT(gabi_vhost_client_set_vring_kick(g.c, 1, gabi_vhost_guestq_kick_fd(g.q[1])), 0);
    CHECK_INT(gabi_vhost_client_set_vring_enable(g.c, 1, true), 0);
    check_broken(&g, "is not inside the memory table");
    check_survivors(&g);
    teardown(&g);
}

TEST(split_base_beyond_16_bits_still_refused)
{
    struct guest g;

    /* split rings (RING_PACKED not negotiated): bits 16-31 of a base close the connection */
    memset(&g, 0, sizeof(g));
    REQUIRE(harness_start(&g.h, &harness_mode_packed) == 0);
    g.c = harness_client(&g.h, ALL & ~(1ull << GABI_F_RING_PACKED), ALL);
    REQUIRE(g.c);
    CHECK_INT(gabi_vhost_client_set_vring_num(g.c, 0, 256), 0);
    CHECK(gabi_vhost_client_set_vring_base(g.c, 0, 0x80008000u) < 0);
    CHECK_INT(harness_wait_disconnects(&g.h, 1), 0);
    {
        char buf[512];

        harness_copy(&g.h, "disconnect", buf, sizeof(buf));
        CHECK_CONTAINS(buf, "split rings: bits 16-31 are 0");
    }
    gabi_vhost_client_free(g.c);
    g.c = NULL;
    harness_stop(&g.h);
}

TAP_MAIN()
