/* SPDX-License-Identifier: MIT */
/*
 * lib/vhost's vrings against a guest: chains of every shape (direct, indirect, across memory
 * regions), index wrap-around, interrupt suppression, dirty logging of what the back-end
 * writes, and hostile rings, each of which must break only its own vring.
 */

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <guestabi/util.h>
#include "vhost_ring_guest.h"
#include "vhost/protocol.h"
#include "vhost/ring.h"

#include "tap.h"

static int setup(struct guest *g, uint64_t features, unsigned qflags, bool start_all)
{
    return guest_setup(g, &harness_mode_all, features, qflags, start_all, false);
}

/* ---- chains of every shape -------------------------------------------------------------- */

TEST(chains_direct_indirect_and_across_regions)
{
    struct guest g;
    uint8_t data[4096];
    uint64_t edge = MEM_SIZE / 2; /* where region 0 ends and region 1 begins */

    for (unsigned i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7 + 1);
    REQUIRE(setup(&g, ALL, GABI_VHOST_GUESTQ_INDIRECT | GABI_VHOST_GUESTQ_EVENT_IDX, true) == 0);
    {
        struct gabi_vhost_gbuf tx[] = {{g.bufs, 12}, {g.bufs + 4096, 1000}, {g.bufs + 9000, 500}};
        struct gabi_vhost_gbuf rx[] = {{g.bufs + 16384, 100}, {g.bufs + 20480, 4000}};

        loop_one(&g, 0, tx, 3, false, rx, 2, false, data, 1512);
        loop_one(&g, 0, tx, 3, true, rx, 2, true, data, 1512);
        loop_one(&g, 1, tx, 3, true, rx, 2, false, data, 1512);
    }
    {
        /* a buffer spanning the two regions is one descriptor, two segments for the back-end */
        struct gabi_vhost_gbuf tx[] = {{edge - 100, 300}};
        struct gabi_vhost_gbuf rx[] = {{edge - 1000, 2000}};

        loop_one(&g, 0, tx, 1, false, rx, 1, true, data, 300);
    }
    CHECK_INT(g.h.n_broken, 0);
    teardown(&g);
}

TEST(indices_wrap_around)
{
    struct guest g;
    uint32_t total = 0;

    REQUIRE(setup(&g, ALL, GABI_VHOST_GUESTQ_EVENT_IDX, false) == 0);
    /* 70,000 packets in batches: avail and used indices pass 65535 */
    while (total < 70000) {
        unsigned batch = 200, got_rx = 0, got_tx = 0;
        uint32_t id, len;

        for (unsigned k = 0; k < batch; k++) {
            struct gabi_vhost_gbuf rx = {g.bufs + k * 1024ull, 1024};
            struct gabi_vhost_gbuf tx = {g.bufs + (128 << 10) + k * 256ull, 64};

            *ptr(&g, tx.gpa, 1) = (uint8_t)k;
            REQUIRE(gabi_vhost_guestq_add(g.q[0], &rx, 0, 1, false) >= 0);
            REQUIRE(gabi_vhost_guestq_add(g.q[1], &tx, 1, 0, false) >= 0);
        }
        gabi_vhost_guestq_kick(g.q[0]);
        gabi_vhost_guestq_kick(g.q[1]);
        while (got_rx < batch) {
            int r = reap(g.q[0], &id, &len);

            REQUIRE(r == 1);
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
    CHECK_INT(gabi_vhost_guestq_used_idx(g.q[0]), (uint16_t)70000);
    CHECK_INT(g.h.n_looped, 70000);
    CHECK_INT(g.h.n_broken, 0);
    teardown(&g);
}

TEST(interrupt_suppression)
{
    for (unsigned event_idx = 0; event_idx < 2; event_idx++) {
        struct guest g;
        struct gabi_vhost_gbuf rx = {0, 2048}, tx = {0, 60};
        uint32_t id, len;

        REQUIRE(setup(&g, event_idx ? ALL : ALL & ~(1ull << GABI_F_EVENT_IDX),
                      event_idx ? GABI_VHOST_GUESTQ_EVENT_IDX : 0, false) == 0);
        rx.gpa = g.bufs;
        tx.gpa = g.bufs + 4096;
        gabi_vhost_guestq_set_interrupts(g.q[0], false);
        REQUIRE(gabi_vhost_guestq_add(g.q[0], &rx, 0, 1, false) >= 0);
        REQUIRE(gabi_vhost_guestq_add(g.q[1], &tx, 1, 0, false) >= 0);
        gabi_vhost_guestq_kick(g.q[0]);
        gabi_vhost_guestq_kick(g.q[1]);
        /* the TX side asked for interrupts: wait for it, then let the loop finish */
        CHECK_INT(reap(g.q[1], &id, &len), 1);
        harness_call(&g.h, noop, NULL);
        CHECK_INT(gabi_vhost_guestq_used_idx(g.q[0]), 1);
        CHECK(!readable(gabi_vhost_guestq_call_fd(g.q[0])));
        CHECK_INT(gabi_vhost_guestq_get_used(g.q[0], &id, &len), 1);
        /* asking again: the next packet interrupts */
        gabi_vhost_guestq_set_interrupts(g.q[0], true);
        REQUIRE(gabi_vhost_guestq_add(g.q[0], &rx, 0, 1, false) >= 0);
        REQUIRE(gabi_vhost_guestq_add(g.q[1], &tx, 1, 0, false) >= 0);
        gabi_vhost_guestq_kick(g.q[0]);
        gabi_vhost_guestq_kick(g.q[1]);
        CHECK_INT(gabi_vhost_guestq_wait(g.q[0], 10000), 1);
        CHECK_INT(gabi_vhost_guestq_get_used(g.q[0], &id, &len), 1);
        teardown(&g);
    }
}

/* ---- dirty log ------------------------------------------------------------------------- */

/* ---- IN_ORDER on split rings ---------------------------------------------------------------- */

static struct vring_used *used_of(struct guest *g, unsigned i)
{
    uint64_t desc, avail, used;

    gabi_vhost_guestq_addrs(g->q[i], &desc, &avail, &used);
    return (struct vring_used *)ptr(g, used, vring_used_size(256));
}

TEST(split_in_order_one_used_entry_per_batch)
{
    const uint64_t split = ALL & ~(1ull << GABI_F_RING_PACKED);

    for (unsigned in_order = 0; in_order < 2; in_order++) {
        struct guest g;
        struct vring_used *u;
        uint8_t data[64] = "in order";
        int ids[8], rx_ids[4];
        uint32_t id, len;

        /* the packed test mode offers IN_ORDER; split rings here */
        REQUIRE(guest_setup(&g, &harness_mode_packed,
                            in_order ? split : split & ~(1ull << GABI_F_IN_ORDER),
                            in_order ? GABI_VHOST_GUESTQ_IN_ORDER : 0, false, false) == 0);
        CHECK_INT(!!(gabi_vhost_client_features(g.c) & (1ull << GABI_F_IN_ORDER)), in_order);
        CHECK_INT(!!(gabi_vhost_client_features(g.c) & (1ull << GABI_F_RING_PACKED)), 0);
        u = used_of(&g, 1);
        for (unsigned k = 0; k < 256; k++)
            u->ring[k] = (struct vring_used_elem){.id = 0x5a5a, .len = 0x5a5a};
        /* 8 TX chains (the last one of 2 descriptors), no RX buffers: all dropped, all
         * completed with nothing written in one flush */
        for (unsigned k = 0; k < 8; k++) {
            struct gabi_vhost_gbuf tx[2] = {{g.bufs + k * 256ull, 14}, {g.bufs + 0x8000, 50}};

            ids[k] = gabi_vhost_guestq_add(g.q[1], tx, k == 7 ? 2 : 1, 0, false);
            REQUIRE(ids[k] >= 0);
            if (in_order)
                CHECK_INT(ids[k], k); /* descriptors in ring order */
        }
        CHECK_INT(gabi_vhost_guestq_kick(g.q[1]), 1);
        for (unsigned k = 0; k < 8; k++) {
            CHECK_INT(reap(g.q[1], &id, &len), 1);
            CHECK_INT(id, ids[k]);
            CHECK_INT(len, 0);
        }
        CHECK_INT(u->idx, 8); /* every chain counted */
        if (in_order) {
            /* one entry: the last chain's id where the batch's first entry goes */
            CHECK_INT(u->ring[0].id, ids[7]);
            CHECK_INT(u->ring[1].id, 0x5a5a);
            CHECK_INT(u->ring[7].id, 0x5a5a);
        } else {
            CHECK_INT(u->ring[0].id, ids[0]);
            CHECK_INT(u->ring[7].id, ids[7]);
        }
        harness_call(&g.h, noop, NULL); /* the loop counts its drops after the flush */
        CHECK_INT(g.h.n_dropped, 8);
        /* received frames have lengths: an entry each, batched or not; the next descriptors
         * follow in ring order after the first batch's */
        for (unsigned k = 0; k < 4; k++) {
            struct gabi_vhost_gbuf rx = {g.bufs + 0x10000 + k * 2048ull, 2048};

            rx_ids[k] = gabi_vhost_guestq_add(g.q[0], &rx, 0, 1, false);
            REQUIRE(rx_ids[k] >= 0);
        }
        gabi_vhost_guestq_kick(g.q[0]);
        for (unsigned k = 0; k < 4; k++) {
            struct gabi_vhost_gbuf tx = {g.bufs + k * 256ull, 12 + 20 + k};

            memcpy(ptr(&g, tx.gpa + 12, sizeof(data)), data, sizeof(data));
            REQUIRE(gabi_vhost_guestq_add(g.q[1], &tx, 1, 0, false) >= 0);
        }
        gabi_vhost_guestq_kick(g.q[1]);
        for (unsigned k = 0; k < 4; k++) {
            CHECK_INT(reap(g.q[0], &id, &len), 1);
            CHECK_INT(id, rx_ids[k]);
            CHECK_INT(len, 12 + 20 + k);
            CHECK_INT(used_of(&g, 0)->ring[k].id, rx_ids[k]);
        }
        for (unsigned k = 0; k < 4; k++) {
            CHECK_INT(reap(g.q[1], &id, &len), 1);
            if (in_order)
                CHECK_INT(id, 9 + k);
        }
        CHECK_INT(u->idx, 12);
        CHECK_INT(g.h.n_broken, 0);
        teardown(&g);
    }
}

TEST(dirty_log_marks_what_the_backend_writes)
{
    struct guest g;
    uint64_t desc, avail, used[2];
    uint8_t data[1500];

    memset(data, 0x5a, sizeof(data));
    memset(&g, 0, sizeof(g));
    REQUIRE(harness_start(&g.h, &harness_mode_all) == 0);
    g.c = harness_client(&g.h, ALL, ALL);
    REQUIRE(g.c);
    REQUIRE(gabi_vhost_client_features(g.c) & (1ull << GABI_F_LOG_ALL));
    REQUIRE(gabi_vhost_guestmem_new(MEM_SIZE, 2, &g.gm, NULL) == 0);
    REQUIRE(gabi_vhost_client_set_mem_table(g.c, g.gm) == 0);
    REQUIRE(gabi_vhost_client_set_log(g.c, MEM_SIZE) == 0);
    for (unsigned i = 0; i < 2; i++) {
        REQUIRE(gabi_vhost_guestq_new(g.gm, 256, GABI_VHOST_GUESTQ_EVENT_IDX, &g.q[i]) == 0);
        REQUIRE(gabi_vhost_client_start_vring(g.c, i, g.q[i], 0, true) == 0);
        gabi_vhost_guestq_addrs(g.q[i], &desc, &avail, &used[i]);
    }
    REQUIRE(gabi_vhost_guestmem_alloc(g.gm, 64 << 10, 4096, &g.bufs) == 0);
    gabi_vhost_client_log_clear(g.c);
    {
        /* RX buffer across two pages, TX buffer in its own page */
        struct gabi_vhost_gbuf tx[] = {{g.bufs + 0x8000, 1500}};
        struct gabi_vhost_gbuf rx[] = {{g.bufs + 0x2f00, 2048}};

        loop_one(&g, 0, tx, 1, false, rx, 1, false, data, 1500);
    }
    harness_call(&g.h, noop, NULL);
    CHECK(gabi_vhost_client_log_dirty(g.c, g.bufs + 0x2f00));  /* RX data, first page */
    CHECK(gabi_vhost_client_log_dirty(g.c, g.bufs + 0x3000));  /* and second page */
    CHECK(!gabi_vhost_client_log_dirty(g.c, g.bufs + 0x8000)); /* TX data: only read */
    CHECK(gabi_vhost_client_log_dirty(g.c, used[0]));          /* used rings */
    CHECK(gabi_vhost_client_log_dirty(g.c, used[1]));
    CHECK(!gabi_vhost_client_log_dirty(g.c, desc)); /* descriptors: only read */
    CHECK_INT(gabi_vhost_client_log_count(g.c), 4);

    /* logging off (only LOG_ALL may change while running): nothing more is marked */
    gabi_vhost_client_log_clear(g.c);
    CHECK_INT(gabi_vhost_client_set_features(g.c, gabi_vhost_client_features(g.c) &
                                                      ~(1ull << GABI_F_LOG_ALL)),
              0);
    {
        struct gabi_vhost_gbuf tx[] = {{g.bufs + 0x8000, 100}};
        struct gabi_vhost_gbuf rx[] = {{g.bufs + 0x5000, 2048}};

        loop_one(&g, 0, tx, 1, false, rx, 1, false, data, 100);
    }
    harness_call(&g.h, noop, NULL);
    CHECK_INT(gabi_vhost_client_log_count(g.c), 0);
    /* changing anything else while running is refused */
    CHECK_INT(gabi_vhost_client_set_features(g.c, 1ull << GABI_F_VERSION_1), -EIO);
    CHECK_INT(harness_wait_disconnects(&g.h, 1), 0);
    {
        char buf[512];

        harness_copy(&g.h, "disconnect", buf, sizeof(buf));
        CHECK_CONTAINS(buf, "only VHOST_F_LOG_ALL may change");
    }
    teardown(&g);
}

/* ---- hostile rings ----------------------------------------------------------------------- */

enum hostile {
    H_HEAD_RANGE,
    H_NEXT_RANGE,
    H_LOOP,
    H_ADDR_RANGE,
    H_ADDR_STRADDLE,
    H_TOO_MANY_SEGS,
    H_NESTED_INDIRECT,
    H_INDIRECT_OUTSIDE,
    H_INDIRECT_LEN,
    H_INDIRECT_NEXT,
    H_AVAIL_JUMP,
    H_READ_AFTER_WRITE,
    H_ADDR_WRAP,
    H_COUNT,
};

static const char *const hostile_reason[H_COUNT] = {
    [H_HEAD_RANGE] = "names descriptor 300, the ring has 256",
    [H_NEXT_RANGE] = "links to 999, beyond its table of 256",
    [H_LOOP] = "loops or is longer than 256",
    [H_ADDR_RANGE] = "is outside guest memory",
    [H_ADDR_STRADDLE] = "is outside guest memory",
    [H_TOO_MANY_SEGS] = "has more than 64 segments",
    [H_NESTED_INDIRECT] = "bad indirect descriptor",
    [H_INDIRECT_OUTSIDE] = "is not inside one memory region",
    [H_INDIRECT_LEN] = "bad indirect descriptor at head 0: 40 bytes",
    [H_INDIRECT_NEXT] = "bad indirect descriptor",
    [H_AVAIL_JUMP] = "avail index 300 is more than 256 ahead of 0",
    [H_READ_AFTER_WRITE] = "readable descriptor after a writable one",
    [H_ADDR_WRAP] = "wraps around",
};

/* Write a hostile chain into TX vring 1 of pair 0, by hand. */
static void plant(struct guest *g, enum hostile kind)
{
    uint64_t desc_gpa, avail_gpa, used_gpa, table_gpa = g->bufs + 0x10000;
    struct vring_desc *d, *t = (struct vring_desc *)ptr(g, table_gpa, 4096);
    struct vring_avail *a;
    uint16_t head = 0, idx = 1;

    gabi_vhost_guestq_addrs(g->q[1], &desc_gpa, &avail_gpa, &used_gpa);
    d = (struct vring_desc *)ptr(g, desc_gpa, 16 * 256);
    a = (struct vring_avail *)ptr(g, avail_gpa, 6 + 2 * 256);
    d[0] = (struct vring_desc){g->bufs, 64, 0, 0};
    switch (kind) {
    case H_HEAD_RANGE:
        head = 300;
        break;
    case H_NEXT_RANGE:
        d[0] = (struct vring_desc){g->bufs, 64, VRING_DESC_F_NEXT, 999};
        break;
    case H_LOOP:
        /* empty descriptors: only the visit count can end this */
        d[0] = (struct vring_desc){g->bufs, 0, VRING_DESC_F_NEXT, 1};
        d[1] = (struct vring_desc){g->bufs, 0, VRING_DESC_F_NEXT, 0};
        break;
    case H_ADDR_RANGE:
        d[0].addr = 64ull << 20;
        break;
    case H_ADDR_STRADDLE:
        d[0] = (struct vring_desc){MEM_SIZE - 16, 64, 0, 0};
        break;
    case H_TOO_MANY_SEGS:
        for (unsigned i = 0; i < 65; i++)
            d[i] = (struct vring_desc){g->bufs + 8 * i, 8, VRING_DESC_F_NEXT, (uint16_t)(i + 1)};
        d[64].flags = 0;
        break;
    case H_NESTED_INDIRECT:
        d[0] = (struct vring_desc){table_gpa, 32, VRING_DESC_F_INDIRECT, 0};
        t[0] = (struct vring_desc){table_gpa, 32, VRING_DESC_F_INDIRECT, 0};
        break;
    case H_INDIRECT_OUTSIDE:
        d[0] = (struct vring_desc){MEM_SIZE - 32, 64, VRING_DESC_F_INDIRECT, 0};
        break;
    case H_INDIRECT_LEN:
        d[0] = (struct vring_desc){table_gpa, 40, VRING_DESC_F_INDIRECT, 0};
        break;
    case H_INDIRECT_NEXT:
        d[0] = (struct vring_desc){table_gpa, 32, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1};
        break;
    case H_AVAIL_JUMP:
        idx = 300;
        break;
    case H_READ_AFTER_WRITE:
        d[0] = (struct vring_desc){g->bufs, 64, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1};
        d[1] = (struct vring_desc){g->bufs + 64, 64, 0, 0};
        break;
    case H_ADDR_WRAP:
        d[0] = (struct vring_desc){~0ull - 8, 64, 0, 0};
        break;
    case H_COUNT:
        break;
    }
    a->ring[0] = head;
    __atomic_store_n(&a->idx, idx, __ATOMIC_RELEASE);
}

/* The other queue pair still works, and the broken vring can be stopped and restarted. */
static void check_survivors(struct guest *g)
{
    uint8_t data[64] = "still alive";
    struct gabi_vhost_gbuf tx[] = {{g->bufs + 0x20000, 64}};
    struct gabi_vhost_gbuf rx[] = {{g->bufs + 0x21000, 2048}};
    uint32_t base = 0xffff;

    REQUIRE(gabi_vhost_client_start_vring(g->c, 2, g->q[2], 0, false) == 0);
    REQUIRE(gabi_vhost_client_start_vring(g->c, 3, g->q[3], 0, false) == 0);
    loop_one(g, 1, tx, 1, false, rx, 1, false, data, sizeof(data));
    CHECK_INT(gabi_vhost_client_stop_vring(g->c, 1, &base), 0);
    CHECK_INT(base, 0); /* the hostile chain was never consumed */
    CHECK(gabi_vhost_backend_connected(g->h.b));
}

TEST(hostile_rings_break_only_their_vring)
{
    for (int kind = 0; kind < H_COUNT; kind++) {
        struct guest g;

        printf("# case %d: %s\n", kind, hostile_reason[kind]);
        REQUIRE(setup(&g, ALL, 0, false) == 0);
        plant(&g, (enum hostile)kind);
        gabi_vhost_guestq_kick(g.q[1]);
        REQUIRE(write(gabi_vhost_guestq_kick_fd(g.q[1]), &(uint64_t){1}, 8) == 8);
        check_broken(&g, hostile_reason[kind]);
        check_survivors(&g);
        teardown(&g);
    }
}

TEST(indirect_without_the_feature_breaks_the_vring)
{
    struct guest g;

    REQUIRE(setup(&g, ALL & ~(1ull << GABI_F_INDIRECT_DESC), 0, false) == 0);
    plant(&g, H_NESTED_INDIRECT);
    REQUIRE(write(gabi_vhost_guestq_kick_fd(g.q[1]), &(uint64_t){1}, 8) == 8);
    check_broken(&g, "(INDIRECT_DESC not negotiated)");
    check_survivors(&g);
    teardown(&g);
}

TEST(rings_outside_memory_break_the_vring)
{
    for (unsigned kind = 0; kind < 3; kind++) {
        static const char *const reasons[] = {"is not inside the memory table", "are misaligned",
                                              "is not inside the memory table"};
        struct guest g;
        uint64_t desc, avail, used;

        REQUIRE(setup(&g, ALL, 0, false) == 0);
        gabi_vhost_guestq_addrs(g.q[1], &desc, &avail, &used);
        /* stop vring 1 and restart it with bad addresses */
        REQUIRE(gabi_vhost_client_stop_vring(g.c, 1, NULL) == 0);
        if (kind < 2) {
            uint64_t bad = kind == 0 ? gabi_vhost_guestmem_uaddr(g.gm, MEM_SIZE - 64)
                                     : gabi_vhost_guestmem_uaddr(g.gm, desc) + 8;

            CHECK_INT(gabi_vhost_client_set_vring_addr(g.c, 1, 0, bad,
                                                       gabi_vhost_guestmem_uaddr(g.gm, used),
                                                       gabi_vhost_guestmem_uaddr(g.gm, avail), 0),
                      0);
            CHECK_INT(gabi_vhost_client_set_vring_kick(g.c, 1, gabi_vhost_guestq_kick_fd(g.q[1])),
                      0);
        } else {
            /* the front-end takes away the region under a running ring */
            CHECK_INT(gabi_vhost_client_start_vring(g.c, 1, g.q[1], 0, false), 0);
            CHECK_INT(gabi_vhost_client_rem_mem_reg(g.c, g.gm, 0), 0);
        }
        check_broken(&g, reasons[kind]);
        if (kind == 2) /* put the memory back for the survivors */
            CHECK_INT(gabi_vhost_client_add_mem_reg(g.c, g.gm, 0), 0);
        check_survivors(&g);
        teardown(&g);
    }
}

/* ---- a front-end that shrinks guest memory under the back-end -------------------------- */

TEST(a_shrunk_memory_file_breaks_the_vrings_not_the_process)
{
    const uint64_t gpa = 0x40000000, size = 64 << 10;
    const char *reason = "shrank the file behind guest memory gpa 0x40000000+0x10000";
    uint8_t data[64] = "in a page the front-end takes back";
    struct gabi_vhost_gbuf tx[] = {{gpa + 0x2000, sizeof(data)}};
    struct gabi_vhost_gbuf ok_tx[] = {{0, 64}}, ok_rx[] = {{0, 2048}};
    struct pollfd p = {.events = POLLIN};
    struct vhost_mem_single s = {0};
    uint8_t status = 0, *map;
    uint32_t base = 0;
    char buf[sizeof(((struct harness *)0)->log)];
    struct guest g;
    int fd;

    REQUIRE(gabi_vhost_guard_sigbus(NULL) == 0);
    REQUIRE(setup(&g, ALL, 0, false) == 0);
    /* one more region, from a file that is not sealed against shrinking */
    fd = memfd_create("unsealed", MFD_CLOEXEC);
    REQUIRE(fd >= 0 && ftruncate(fd, (off_t)size) == 0);
    map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    REQUIRE(map != MAP_FAILED);
    memcpy(map + 0x2000, data, sizeof(data));
    s.region = (struct vhost_mem_region){
        .gpa = gpa, .size = size, .uaddr = (uint64_t)(uintptr_t)map, .mmap_offset = 0};
    CHECK_INT(gabi_vhost_client_request(g.c, VHOST_USER_ADD_MEM_REG, false, &s, sizeof(s), &fd, 1,
                                        NULL, 0, NULL),
              0);
    /* the front-end takes the pages back after the back-end mapped them, then sends a packet
     * from them: the back-end's read of it faults */
    munmap(map, size);
    REQUIRE(ftruncate(fd, 0) == 0);
    REQUIRE(gabi_vhost_guestq_add(g.q[1], tx, 1, 0, false) >= 0);
    gabi_vhost_guestq_kick(g.q[1]);

    /* both started vrings break, naming the region; the back-end lives on */
    CHECK_INT(harness_wait_broken(&g.h, 2), 0);
    harness_copy(&g.h, "broken", buf, sizeof(buf));
    CHECK_CONTAINS(buf, "vring 1: ");
    CHECK_CONTAINS(buf, reason);
    harness_copy(&g.h, "log", buf, sizeof(buf));
    CHECK_CONTAINS(buf, reason);
    p.fd = g.err_fd[1];
    CHECK_INT(poll(&p, 1, 10000), 1);
    CHECK_INT(gabi_vhost_client_get_status(g.c, &status), 0);
    CHECK(status & GABI_VIRTIO_STATUS_NEEDS_RESET);
    CHECK(gabi_vhost_backend_connected(g.h.b));

    /* while the region is in the table no vring starts on it; once it is removed, they do */
    CHECK_INT(gabi_vhost_client_stop_vring(g.c, 1, &base), 0);
    CHECK_INT(gabi_vhost_client_start_vring(g.c, 3, g.q[3], 0, false), 0);
    CHECK_INT(harness_wait_broken(&g.h, 3), 0);
    harness_copy(&g.h, "broken", buf, sizeof(buf));
    CHECK_CONTAINS(buf, "vring 3: ");
    CHECK_CONTAINS(buf, reason);
    CHECK_INT(gabi_vhost_client_stop_vring(g.c, 3, NULL), 0);
    CHECK_INT(gabi_vhost_client_request(g.c, VHOST_USER_REM_MEM_REG, false, &s, sizeof(s), NULL, 0,
                                        NULL, 0, NULL),
              0);
    close(fd);
    ok_tx[0].gpa = g.bufs + 0x20000;
    ok_rx[0].gpa = g.bufs + 0x21000;
    CHECK_INT(gabi_vhost_client_start_vring(g.c, 2, g.q[2], 0, false), 0);
    CHECK_INT(gabi_vhost_client_start_vring(g.c, 3, g.q[3], 0, false), 0);
    loop_one(&g, 1, ok_tx, 1, false, ok_rx, 1, false, data, sizeof(data));
    teardown(&g);
}

TAP_MAIN()
