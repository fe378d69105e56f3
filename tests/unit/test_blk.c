/* SPDX-License-Identifier: MIT */
/*
 * guestabi-blk's device, run in this process, driven by our front-end as a virtio-blk guest:
 * every request type on a RAM disk and a file disk, the config space, the boundaries of the
 * disk and of a request, read-only disks, discard and write-zeroes read back, several queues,
 * indirect descriptors and EVENT_IDX, batches, dirty logging, and a reconnect that keeps the
 * data.
 */

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk_test.h"
#include <guestabi/util.h>

#include "tap.h"

#define ALL       ~0ull
#define DISK_SIZE (16u << 20)
#define CAPACITY  (DISK_SIZE / TB_SECTOR)

static const struct tb_disk_spec ram_disk = {.ram = true, .size = DISK_SIZE};
static const struct tb_disk_spec file_disk = {.size = DISK_SIZE};

static uint8_t buf_a[1u << 20], buf_b[1u << 20];

/* ---- config space and features -------------------------------------------------------------- */

TEST(config_space_and_features_follow_the_mode)
{
    struct tb_dev d;
    struct tb_guest g;
    struct blk_config c;
    uint64_t f = 0, pf = 0, n = 0;

    REQUIRE(tb_dev_start(&d, &tb_mode_v1, &ram_disk) == 0);
    REQUIRE(tb_connect(&g, d.sock, ALL, 1, 128, 0) == 0);
    CHECK_INT(gabi_vhost_client_get_features(g.c, &f), 0);
    CHECK(f == tb_mode_v1.features);
    CHECK_INT(gabi_vhost_client_get_protocol_features(g.c, &pf), 0);
    CHECK(pf == tb_mode_v1.protocol_features);
    CHECK_INT(gabi_vhost_client_get_queue_num(g.c, &n), 0);
    CHECK_INT(n, 1);
    memset(&c, 0xaa, sizeof(c));
    CHECK_INT(gabi_vhost_client_get_config(g.c, 0, &c, sizeof(c)), 0);
    CHECK_INT(c.capacity, CAPACITY);
    CHECK_INT(c.seg_max, 62);
    CHECK_INT(c.blk_size, 512);
    CHECK_INT(c.size_max, 0);
    CHECK_INT(c.num_queues, 0); /* no VIRTIO_BLK_F_MQ in v1 */
    CHECK_INT(c.max_discard_sectors, 0);
    CHECK_INT(c.max_write_zeroes_sectors, 0);
    CHECK_INT(c.wce, 0);
    /* QEMU 7.2 reads 57 bytes at 0; any range inside the 256 bytes is served */
    {
        uint8_t tail[8];
        uint32_t seg = 0;

        CHECK_INT(gabi_vhost_client_get_config(g.c, 12, &seg, 4), 0);
        CHECK_INT(seg, 62);
        memset(tail, 0xaa, sizeof(tail));
        CHECK_INT(gabi_vhost_client_get_config(g.c, 248, tail, 8), 0);
        CHECK(memcmp(tail, "\0\0\0\0\0\0\0\0", 8) == 0);
        /* a write to the read-only config space is refused */
        CHECK_INT(gabi_vhost_client_set_config(g.c, 0, tail, 8, 0), -EIO);
    }
    tb_disconnect(&g);
    tb_dev_stop(&d);

    REQUIRE(tb_dev_start(&d, &tb_mode_mq, &ram_disk) == 0);
    REQUIRE(tb_connect(&g, d.sock, ALL, 4, 256, GABI_VHOST_GUESTQ_EVENT_IDX) == 0);
    CHECK_INT(gabi_vhost_client_get_queue_num(g.c, &n), 0);
    CHECK_INT(n, 4);
    CHECK_INT(gabi_vhost_client_get_config(g.c, 0, &c, sizeof(c)), 0);
    CHECK_INT(c.num_queues, 4);
    CHECK_INT(c.max_discard_sectors, 4194303);
    CHECK_INT(c.max_discard_seg, 32);
    CHECK_INT(c.discard_sector_alignment, 8);
    CHECK_INT(c.max_write_zeroes_sectors, 4194303);
    CHECK_INT(c.max_write_zeroes_seg, 32);
    CHECK_INT(c.write_zeroes_may_unmap, 1);
    CHECK_INT(c.max_secure_erase_sectors, 0);
    tb_disconnect(&g);
    tb_dev_stop(&d);
}

/* ---- reads and writes ------------------------------------------------------------------------ */

static void rw_roundtrip(const struct tb_disk_spec *spec)
{
    struct tb_dev d;
    struct tb_guest g;
    static const struct {
        uint64_t sector;
        size_t len;
        unsigned nseg;
    } cases[] = {
        {0, 512, 1},
        {1, 4096, 1},
        {9, 4096, 8},
        {100, 65536, 3},
        {777, 1u << 20, 62},
        {2048, 1536, 3},
        {CAPACITY - 8, 4096, 2}, /* up to the end */
        {CAPACITY - 1, 512, 1},
    };

    REQUIRE(tb_dev_start(&d, &tb_mode_v1, spec) == 0);
    REQUIRE(tb_connect(&g, d.sock, ALL, 1, 128, 0) == 0);
    for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
        size_t len = cases[i].len;

        tb_pattern(buf_a, len, i + 1);
        CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_OUT, cases[i].sector, buf_a, len, cases[i].nseg), 0);
        /* the host sees exactly what the guest wrote, where it wrote it */
        CHECK_INT(tb_dev_peek(&d, cases[i].sector * TB_SECTOR, buf_b, len), 0);
        CHECK(memcmp(buf_a, buf_b, len) == 0);
        memset(buf_b, 0, len);
        /* read back in other pieces */
        CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_IN, cases[i].sector, buf_b, len,
                        cases[i].nseg == 62 ? 31 : cases[i].nseg + 1),
                  0);
        CHECK(memcmp(buf_a, buf_b, len) == 0);
    }
    /* what the host put on the disk, the guest reads */
    tb_pattern(buf_a, 8192, 99);
    CHECK_INT(tb_dev_poke(&d, 3u << 20, buf_a, 8192), 0);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_IN, (3u << 20) / TB_SECTOR, buf_b, 8192, 2), 0);
    CHECK(memcmp(buf_a, buf_b, 8192) == 0);
    {
        struct blk_stats s = tb_dev_stats(&d);

        CHECK_INT(s.writes, ARRAY_SIZE(cases));
        CHECK_INT(s.reads, ARRAY_SIZE(cases) + 1);
        CHECK_INT(s.ioerr, 0);
    }
    tb_disconnect(&g);
    tb_dev_stop(&d);
}

TEST(read_write_ram_disk)
{
    rw_roundtrip(&ram_disk);
}

TEST(read_write_file_disk)
{
    rw_roundtrip(&file_disk);
}

TEST(flush_and_write_through)
{
    struct tb_dev d;
    struct tb_guest g;

    REQUIRE(tb_dev_start(&d, &tb_mode_v1, &file_disk) == 0);
    REQUIRE(tb_connect(&g, d.sock, ALL, 1, 128, 0) == 0);
    tb_pattern(buf_a, 4096, 5);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_OUT, 64, buf_a, 4096, 1), 0);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, 0), 0);
    CHECK_INT(tb_dev_stats(&d).flushes, 1);
    /* a flush carries no data */
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_FLUSH, 0, buf_b, 512, 1), VIRTIO_BLK_S_IOERR);
    tb_disconnect(&g);

    /* a guest without FLUSH has a write-through disk: no flush request for it */
    REQUIRE(tb_connect(&g, d.sock, ALL & ~(1ull << GABI_BLK_F_FLUSH), 1, 128, 0) == 0);
    CHECK(!(g.features & (1ull << GABI_BLK_F_FLUSH)));
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, 0), VIRTIO_BLK_S_UNSUPP);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_OUT, 64, buf_a, 4096, 1), 0);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_IN, 64, buf_b, 4096, 1), 0);
    CHECK(memcmp(buf_a, buf_b, 4096) == 0);
    tb_disconnect(&g);
    tb_dev_stop(&d);
}

TEST(get_id)
{
    struct tb_dev d;
    struct tb_guest g;
    struct tb_disk_spec spec = ram_disk;
    uint8_t id[32];

    spec.serial = "GABI-0123456789-XYZW"; /* exactly 20: no NUL */
    REQUIRE(tb_dev_start(&d, &tb_mode_v1, &spec) == 0);
    REQUIRE(tb_connect(&g, d.sock, ALL, 1, 128, 0) == 0);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_GET_ID, 0, id, 20, 1), 0);
    CHECK(memcmp(id, "GABI-0123456789-XYZW", 20) == 0);
    /* a smaller buffer gets what fits; a larger one keeps its tail */
    memset(id, 0, sizeof(id));
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_GET_ID, 0, id, 8, 1), 0);
    CHECK(memcmp(id, "GABI-012", 8) == 0);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_GET_ID, 0, id, 32, 3), 0);
    CHECK(memcmp(id, "GABI-0123456789-XYZW", 20) == 0);
    CHECK(id[20] == 0xee); /* tb_rw's fill: untouched */
    tb_disconnect(&g);
    tb_dev_stop(&d);

    spec.serial = "short";
    REQUIRE(tb_dev_start(&d, &tb_mode_v1, &spec) == 0);
    REQUIRE(tb_connect(&g, d.sock, ALL, 1, 128, 0) == 0);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_GET_ID, 0, id, 20, 1), 0);
    CHECK(memcmp(id, "short\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 20) == 0);
    tb_disconnect(&g);
    tb_dev_stop(&d);
}

/* ---- boundaries --------------------------------------------------------------------------- */

TEST(boundaries_of_the_disk)
{
    struct tb_dev d;
    struct tb_guest g;

    REQUIRE(tb_dev_start(&d, &tb_mode_v1, &ram_disk) == 0);
    REQUIRE(tb_connect(&g, d.sock, ALL, 1, 128, 0) == 0);
    tb_pattern(buf_a, 4096, 7);
    /* the last sector is the disk's */
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_OUT, CAPACITY - 1, buf_a, 512, 1), 0);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_IN, CAPACITY - 1, buf_b, 512, 1), 0);
    CHECK(memcmp(buf_a, buf_b, 512) == 0);
    /* one sector past it is not, nor anything overlapping the end */
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_IN, CAPACITY, buf_b, 512, 1), VIRTIO_BLK_S_IOERR);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_OUT, CAPACITY, buf_a, 512, 1), VIRTIO_BLK_S_IOERR);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_OUT, CAPACITY - 1, buf_a, 1024, 1), VIRTIO_BLK_S_IOERR);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_IN, CAPACITY - 7, buf_b, 4096, 1), VIRTIO_BLK_S_IOERR);
    /* sectors whose byte offset overflows */
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_IN, 1ull << 55, buf_b, 512, 1), VIRTIO_BLK_S_IOERR);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_OUT, UINT64_MAX, buf_a, 512, 1), VIRTIO_BLK_S_IOERR);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_IN, UINT64_MAX - 1, buf_b, 1024, 1), VIRTIO_BLK_S_IOERR);
    /* zero-length: fine up to the end, not beyond */
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_IN, CAPACITY, NULL, 0, 0), 0);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_OUT, 0, NULL, 0, 0), 0);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_IN, CAPACITY + 1, NULL, 0, 0), VIRTIO_BLK_S_IOERR);
    /* data that is not whole sectors */
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_OUT, 0, buf_a, 511, 1), VIRTIO_BLK_S_IOERR);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_IN, 0, buf_b, 513, 2), VIRTIO_BLK_S_IOERR);
    /* the failed write past the end changed nothing at the end */
    CHECK_INT(tb_dev_peek(&d, (CAPACITY - 1) * (uint64_t)TB_SECTOR, buf_b, 512), 0);
    CHECK(memcmp(buf_a, buf_b, 512) == 0);
    CHECK_INT(tb_dev_stats(&d).ioerr, 10);
    tb_disconnect(&g);
    tb_dev_stop(&d);
}

TEST(segment_counts)
{
    struct tb_dev d;
    struct tb_guest g;
    /* 62 data segments (SEG_MAX) each way; chains beyond lib/vhost's 64 segments break
     * their vring (test_blk_prog.c) */
    struct tb_req rq[2] = {
        {.type = VIRTIO_BLK_T_OUT, .sector = 0, .len = 62 * 512, .nseg = 62},
        {.type = VIRTIO_BLK_T_IN, .sector = 0, .len = 62 * 512, .nseg = 62},
    };

    REQUIRE(tb_dev_start(&d, &tb_mode_v1, &ram_disk) == 0);
    REQUIRE(tb_connect(&g, d.sock, ALL, 1, 128, 0) == 0);
    tb_pattern(tb_ptr(&g, g.data, 62 * 512), 62 * 512, 3);
    CHECK_INT(tb_submit(&g, 0, rq, 1), 0);
    CHECK_INT(rq[0].status, 0);
    rq[1].data_off = 1u << 20;
    CHECK_INT(tb_submit(&g, 0, &rq[1], 1), 0);
    CHECK_INT(rq[1].status, 0);
    CHECK(memcmp(tb_ptr(&g, g.data, 62 * 512), tb_ptr(&g, g.data + (1u << 20), 62 * 512),
                 62 * 512) == 0);
    /* the header and the data in one descriptor: 63 data segments then, one too many */
    {
        struct gabi_vhost_gbuf b[64];
        struct blk_outhdr h = {VIRTIO_BLK_T_IN, 0, 0};
        uint8_t *st = tb_ptr(&g, g.spare + 4096, 1);
        uint32_t used = 0;

        memcpy(tb_ptr(&g, g.spare, 16), &h, 16);
        b[0] = (struct gabi_vhost_gbuf){g.spare, 16};
        for (unsigned i = 0; i < 62; i++)
            b[1 + i] = (struct gabi_vhost_gbuf){g.data + 512ull * i, 512};
        b[63] = (struct gabi_vhost_gbuf){g.spare + 4096, 1};
        *st = 0xff;
        CHECK_INT(tb_raw(&g, 0, b, 1, 63, false, &used, 10000), 0);
        CHECK_INT(*st, 0); /* 62 data segments + status: fine */
        /* readable: header glued to 63 sectors of data */
        b[0] = (struct gabi_vhost_gbuf){g.spare + 8192, 16 + 512};
        memcpy(tb_ptr(&g, g.spare + 8192, 16), &(struct blk_outhdr){VIRTIO_BLK_T_OUT, 0, 0}, 16);
        *st = 0xff;
        CHECK_INT(tb_raw(&g, 0, b, 63, 1, false, &used, 10000), 0);
        CHECK_INT(*st, VIRTIO_BLK_S_IOERR);
        CHECK_INT(used, 1);
    }
    tb_disconnect(&g);
    tb_dev_stop(&d);
}

/* ---- malformed requests -------------------------------------------------------------------- */

TEST(malformed_requests_fail_alone)
{
    struct tb_dev d;
    struct tb_guest g;
    uint8_t *hdr, *st;
    uint32_t used = 0;

    REQUIRE(tb_dev_start(&d, &tb_mode_v1, &ram_disk) == 0);
    REQUIRE(tb_connect(&g, d.sock, ALL, 1, 128, 0) == 0);
    hdr = tb_ptr(&g, g.spare, 64);
    st = tb_ptr(&g, g.spare + 64, 1);

    /* a header of 8 bytes */
    {
        struct gabi_vhost_gbuf b[] = {{g.spare, 8}, {g.spare + 64, 1}};

        memset(hdr, 0, 16);
        *st = 0xff;
        CHECK_INT(tb_raw(&g, 0, b, 1, 1, false, &used, 10000), 0);
        CHECK_INT(*st, VIRTIO_BLK_S_IOERR);
        CHECK_INT(used, 1);
    }
    /* a header split over two descriptors is a header */
    {
        struct gabi_vhost_gbuf b[] = {
            {g.spare, 4}, {g.spare + 4, 12}, {g.data, 512}, {g.spare + 64, 1}};
        struct blk_outhdr h = {VIRTIO_BLK_T_IN, 0, 5};

        memcpy(hdr, &h, 16);
        *st = 0xff;
        CHECK_INT(tb_raw(&g, 0, b, 2, 2, false, &used, 10000), 0);
        CHECK_INT(*st, 0);
        CHECK_INT(used, 513);
    }
    /* unknown request types, and GET_LIFETIME / SECURE_ERASE, which no mode offers */
    {
        static const uint32_t types[] = {2, 3, 7, 10, 14, 99, UINT32_MAX};
        struct gabi_vhost_gbuf b[] = {{g.spare, 16}, {g.spare + 64, 1}};

        for (unsigned i = 0; i < ARRAY_SIZE(types); i++) {
            struct blk_outhdr h = {types[i], 0, 0};

            memcpy(hdr, &h, 16);
            *st = 0xff;
            CHECK_INT(tb_raw(&g, 0, b, 1, 1, false, &used, 10000), 0);
            CHECK_INT(*st, VIRTIO_BLK_S_UNSUPP);
        }
    }
    /* an unknown type is unsupported whatever its layout */
    {
        struct gabi_vhost_gbuf b[] = {{g.spare, 16}, {g.data, 512}, {g.spare + 64, 1}};
        struct blk_outhdr h = {99, 0, 0};

        memcpy(hdr, &h, 16);
        *st = 0xff;
        CHECK_INT(tb_raw(&g, 0, b, 2, 1, false, &used, 10000), 0);
        CHECK_INT(*st, VIRTIO_BLK_S_UNSUPP);
    }
    /* data on the wrong side: a write with writable data, a read with readable data */
    {
        struct gabi_vhost_gbuf b[] = {{g.spare, 16}, {g.data, 512}, {g.spare + 64, 1}};
        struct blk_outhdr h = {VIRTIO_BLK_T_OUT, 0, 0};

        memcpy(hdr, &h, 16);
        *st = 0xff;
        CHECK_INT(tb_raw(&g, 0, b, 1, 2, false, &used, 10000), 0);
        CHECK_INT(*st, VIRTIO_BLK_S_IOERR);
        h.type = VIRTIO_BLK_T_IN;
        memcpy(hdr, &h, 16);
        *st = 0xff;
        CHECK_INT(tb_raw(&g, 0, b, 2, 1, false, &used, 10000), 0);
        CHECK_INT(*st, VIRTIO_BLK_S_IOERR);
    }
    /* a chain with no writable byte cannot be answered: its vring breaks, unanswered */
    {
        struct gabi_vhost_gbuf b[] = {{g.spare, 16}, {g.data, 512}};
        struct blk_outhdr h = {VIRTIO_BLK_T_OUT, 0, 0};
        uint32_t id;

        memcpy(hdr, &h, 16);
        CHECK(gabi_vhost_guestq_add(g.q[0], b, 2, 0, false) >= 0);
        gabi_vhost_guestq_kick(g.q[0]);
        CHECK_INT(tb_wait_err(&g, 0), 1);
        CHECK_INT(gabi_vhost_guestq_get_used(g.q[0], &id, &used), 0);
    }
    tb_disconnect(&g);

    /* the next front-end finds a working device */
    REQUIRE(tb_connect(&g, d.sock, ALL, 1, 128, 0) == 0);
    tb_pattern(buf_a, 4096, 11);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_OUT, 8, buf_a, 4096, 1), 0);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_IN, 8, buf_b, 4096, 1), 0);
    CHECK(memcmp(buf_a, buf_b, 4096) == 0);
    tb_disconnect(&g);
    tb_dev_stop(&d);
}

/* ---- read-only disks ------------------------------------------------------------------------ */

TEST(readonly_disk)
{
    struct tb_dev d;
    struct tb_guest g;
    struct tb_disk_spec spec = file_disk;
    uint64_t f = 0;

    spec.readonly = true;
    /* in a mode without VIRTIO_BLK_F_RO, writes fail */
    REQUIRE(tb_dev_start(&d, &tb_mode_mq, &spec) == 0);
    tb_pattern(buf_a, 4096, 13);
    CHECK_INT(tb_dev_poke(&d, 4096, buf_a, 4096), 0);
    REQUIRE(tb_connect(&g, d.sock, ALL, 1, 256, 0) == 0);
    CHECK_INT(gabi_vhost_client_get_features(g.c, &f), 0);
    CHECK(!(f & (1ull << GABI_BLK_F_RO))); /* the mode decides what is offered */
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_IN, 8, buf_b, 4096, 1), 0);
    CHECK(memcmp(buf_a, buf_b, 4096) == 0);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_OUT, 8, buf_b, 4096, 1), VIRTIO_BLK_S_IOERR);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, 0), 0);
    {
        struct blk_range r = {8, 8, 0};

        CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_DISCARD, 0, &r, sizeof(r), 1), VIRTIO_BLK_S_IOERR);
        CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_WRITE_ZEROES, 0, &r, sizeof(r), 1), VIRTIO_BLK_S_IOERR);
    }
    CHECK_INT(tb_dev_peek(&d, 4096, buf_b, 4096), 0);
    CHECK(memcmp(buf_a, buf_b, 4096) == 0);
    tb_disconnect(&g);
    tb_dev_stop(&d);

    /* a read-only mode offers RO */
    REQUIRE(tb_dev_start(&d, &tb_mode_ro, &spec) == 0);
    REQUIRE(tb_connect(&g, d.sock, ALL, 1, 128, 0) == 0);
    CHECK(g.features & (1ull << GABI_BLK_F_RO));
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_OUT, 8, buf_b, 4096, 1), VIRTIO_BLK_S_IOERR);
    tb_disconnect(&g);
    tb_dev_stop(&d);

    /* which a writable disk cannot run */
    {
        struct blk_disk disk;
        struct blk k;
        struct blk_options o = {.socket = "/tmp/gabi-blk-never", .mode = &tb_mode_ro};
        struct gabi_error err = {0};
        char why[128];

        REQUIRE(blk_disk_open_ram(&disk, 1u << 20, why, sizeof(why)) == 0);
        CHECK_INT(blk_init(&k, &disk, &o, &err), -EOPNOTSUPP);
        CHECK_CONTAINS(err.message, "VIRTIO_BLK_F_RO");
        blk_fini(&k);
    }
}

/* ---- discard and write-zeroes ---------------------------------------------------------------- */

static bool all_zero(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i])
            return false;
    return true;
}

static int ranges(struct tb_guest *g, uint32_t type, const struct blk_range *r, unsigned n)
{
    return tb_rw(g, 0, type, 0, (void *)r, n * sizeof(*r), 1);
}

static void discard_and_zeroes(const struct tb_disk_spec *spec)
{
    struct tb_dev d;
    struct tb_guest g;
    const size_t span = 1u << 20; /* 1 MiB of pattern at sector 0 */

    REQUIRE(tb_dev_start(&d, &tb_mode_mq, spec) == 0);
    REQUIRE(tb_connect(&g, d.sock, ALL, 1, 256, 0) == 0);
    REQUIRE(g.features & (1ull << GABI_BLK_F_DISCARD));
    tb_pattern(buf_a, span, 21);
    REQUIRE(tb_rw(&g, 0, VIRTIO_BLK_T_OUT, 0, buf_a, span, 4) == 0);

    /* discard: a page-aligned 256 KiB and an unaligned 3 sectors */
    {
        struct blk_range r[] = {{256, 512, 0}, {1001, 3, 0}};

        CHECK_INT(ranges(&g, VIRTIO_BLK_T_DISCARD, r, 2), 0);
        CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_IN, 0, buf_b, span, 2), 0);
        CHECK(memcmp(buf_b, buf_a, 256 * 512) == 0);
        CHECK(all_zero(buf_b + 256 * 512, 512 * 512));
        CHECK(memcmp(buf_b + 768 * 512, buf_a + 768 * 512, (1001 - 768) * 512) == 0);
        CHECK(all_zero(buf_b + 1001 * 512, 3 * 512));
        CHECK(memcmp(buf_b + 1004 * 512, buf_a + 1004 * 512, span - 1004 * 512) == 0);
    }
    /* write-zeroes, with and without unmap, several ranges in one request */
    tb_pattern(buf_a, span, 22);
    REQUIRE(tb_rw(&g, 0, VIRTIO_BLK_T_OUT, 0, buf_a, span, 4) == 0);
    {
        struct blk_range r[] = {{0, 1, 0}, {300, 200, VIRTIO_BLK_WZ_F_UNMAP}, {2047, 1, 0}};

        CHECK_INT(ranges(&g, VIRTIO_BLK_T_WRITE_ZEROES, r, 3), 0);
        CHECK_INT(tb_dev_peek(&d, 0, buf_b, span), 0); /* the host's view */
        CHECK(all_zero(buf_b, 512));
        CHECK(memcmp(buf_b + 512, buf_a + 512, 299 * 512) == 0);
        CHECK(all_zero(buf_b + 300 * 512, 200 * 512));
        CHECK(memcmp(buf_b + 500 * 512, buf_a + 500 * 512, 1547 * 512) == 0);
        CHECK(all_zero(buf_b + 2047 * 512, 512));
        CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_IN, 2047, buf_b, 512, 1), 0);
        CHECK(all_zero(buf_b, 512));
    }
    /* a large discard at the end of the disk */
    {
        struct blk_range r = {CAPACITY - 8192, 8192, 0};

        tb_pattern(buf_a, 4096, 23);
        CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_OUT, CAPACITY - 8, buf_a, 4096, 1), 0);
        CHECK_INT(ranges(&g, VIRTIO_BLK_T_DISCARD, &r, 1), 0);
        CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_IN, CAPACITY - 8, buf_b, 4096, 1), 0);
        CHECK(all_zero(buf_b, 4096));
    }
    /* refused: past the end, too long, unmap on a discard, reserved flags, too many ranges,
     * a length that is not whole ranges, no range at all */
    {
        struct blk_range past = {CAPACITY - 1, 2, 0}, over = {UINT64_MAX, 1, 0};
        struct blk_range big = {0, 4194304, 0}, unmap = {0, 1, VIRTIO_BLK_WZ_F_UNMAP};
        struct blk_range resv = {0, 1, 2};
        struct blk_range many[33];

        for (unsigned i = 0; i < 33; i++)
            many[i] = (struct blk_range){i, 1, 0};
        tb_pattern(buf_a, 512, 24);
        CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_OUT, 5, buf_a, 512, 1), 0);
        CHECK_INT(ranges(&g, VIRTIO_BLK_T_DISCARD, &past, 1), VIRTIO_BLK_S_IOERR);
        CHECK_INT(ranges(&g, VIRTIO_BLK_T_WRITE_ZEROES, &over, 1), VIRTIO_BLK_S_IOERR);
        CHECK_INT(ranges(&g, VIRTIO_BLK_T_WRITE_ZEROES, &big, 1), VIRTIO_BLK_S_IOERR);
        CHECK_INT(ranges(&g, VIRTIO_BLK_T_DISCARD, &unmap, 1), VIRTIO_BLK_S_UNSUPP);
        CHECK_INT(ranges(&g, VIRTIO_BLK_T_WRITE_ZEROES, &resv, 1), VIRTIO_BLK_S_UNSUPP);
        CHECK_INT(ranges(&g, VIRTIO_BLK_T_DISCARD, many, 33), VIRTIO_BLK_S_UNSUPP);
        CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_DISCARD, 0, many, 24, 1), VIRTIO_BLK_S_IOERR);
        CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_DISCARD, 0, NULL, 0, 0), VIRTIO_BLK_S_IOERR);
        /* a refused list changes nothing, not even its valid ranges */
        {
            struct blk_range mixed[] = {{5, 1, 0}, {CAPACITY, 1, 0}};

            CHECK_INT(ranges(&g, VIRTIO_BLK_T_WRITE_ZEROES, mixed, 2), VIRTIO_BLK_S_IOERR);
        }
        CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_IN, 5, buf_b, 512, 1), 0);
        CHECK(memcmp(buf_a, buf_b, 512) == 0);
        /* 32 ranges are fine */
        CHECK_INT(ranges(&g, VIRTIO_BLK_T_DISCARD, many, 32), 0);
        CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_IN, 5, buf_b, 512, 1), 0);
        CHECK(all_zero(buf_b, 512));
    }
    tb_disconnect(&g);
    tb_dev_stop(&d);
}

TEST(discard_and_write_zeroes_ram)
{
    discard_and_zeroes(&ram_disk);
}

TEST(discard_and_write_zeroes_file)
{
    discard_and_zeroes(&file_disk);
}

static bool punches_holes(const char *dir)
{
    char path[160];
    bool ok;
    int fd;

    snprintf(path, sizeof(path), "%s/probe", dir);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ok = fd >= 0 && ftruncate(fd, 1 << 20) == 0 &&
         fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096) == 0;
    if (fd >= 0)
        close(fd);
    unlink(path);
    return ok;
}

TEST(discard_releases_file_blocks)
{
    struct tb_dev d;
    struct tb_guest g;
    uint64_t before, after;
    struct blk_range r = {0, 8192, 0}; /* 4 MiB */
    bool holes;

    REQUIRE(tb_dev_start(&d, &tb_mode_mq, &file_disk) == 0);
    REQUIRE(tb_connect(&g, d.sock, ALL, 1, 256, 0) == 0);
    for (unsigned i = 0; i < 4; i++) {
        tb_pattern(buf_a, 1u << 20, 30 + i);
        REQUIRE(tb_rw(&g, 0, VIRTIO_BLK_T_OUT, i * 2048ull, buf_a, 1u << 20, 8) == 0);
    }
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, 0), 0);
    before = tb_dev_file_blocks(&d);
    CHECK(before >= 8192);
    CHECK_INT(ranges(&g, VIRTIO_BLK_T_DISCARD, &r, 1), 0);
    after = tb_dev_file_blocks(&d);
    holes = punches_holes(d.dir);
    tb_disconnect(&g);
    tb_dev_stop(&d);
    /* punched, where the file system punches holes (elsewhere zeroes are written, which
     * discard_and_write_zeroes_file reads back, and there is nothing to release) */
    if (!holes)
        SKIP_CASE("the file system of /tmp punches no holes");
    CHECK(after + 8192 - 64 <= before);
}

TEST(unoffered_requests_are_unsupported)
{
    struct tb_dev d;
    struct tb_guest g;
    struct blk_range r = {0, 8, 0};

    /* v1 has neither discard nor write-zeroes */
    REQUIRE(tb_dev_start(&d, &tb_mode_v1, &ram_disk) == 0);
    REQUIRE(tb_connect(&g, d.sock, ALL, 1, 128, 0) == 0);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_DISCARD, 0, &r, sizeof(r), 1), VIRTIO_BLK_S_UNSUPP);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_WRITE_ZEROES, 0, &r, sizeof(r), 1), VIRTIO_BLK_S_UNSUPP);
    CHECK_INT(tb_dev_stats(&d).unsupp, 2);
    tb_disconnect(&g);
    tb_dev_stop(&d);

    /* offered but not negotiated */
    REQUIRE(tb_dev_start(&d, &tb_mode_mq, &ram_disk) == 0);
    REQUIRE(tb_connect(&g, d.sock, ALL & ~(1ull << GABI_BLK_F_DISCARD), 1, 256, 0) == 0);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_DISCARD, 0, &r, sizeof(r), 1), VIRTIO_BLK_S_UNSUPP);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_WRITE_ZEROES, 0, &r, sizeof(r), 1), 0);
    tb_disconnect(&g);
    tb_dev_stop(&d);
}

/* ---- queues, ring features, batches ---------------------------------------------------------- */

TEST(four_queues)
{
    struct tb_dev d;
    struct tb_guest g;

    REQUIRE(tb_dev_start(&d, &tb_mode_mq, &ram_disk) == 0);
    REQUIRE(tb_connect(&g, d.sock, ALL, 4, 256, GABI_VHOST_GUESTQ_EVENT_IDX) == 0);
    /* each queue writes its own area; all of them read every area back */
    for (unsigned q = 0; q < 4; q++) {
        tb_pattern(buf_a, 65536, 40 + q);
        CHECK_INT(tb_rw(&g, q, VIRTIO_BLK_T_OUT, q * 128ull, buf_a, 65536, 4), 0);
    }
    for (unsigned q = 0; q < 4; q++) {
        for (unsigned area = 0; area < 4; area++) {
            tb_pattern(buf_a, 65536, 40 + area);
            CHECK_INT(tb_rw(&g, q, VIRTIO_BLK_T_IN, area * 128ull, buf_b, 65536, 2), 0);
            CHECK(memcmp(buf_a, buf_b, 65536) == 0);
        }
    }
    tb_disconnect(&g);
    tb_dev_stop(&d);
}

TEST(indirect_descriptors_and_event_idx)
{
    struct tb_dev d;
    struct tb_guest g;
    struct tb_req rq[40];

    REQUIRE(tb_dev_start(&d, &tb_mode_mq, &file_disk) == 0);
    REQUIRE(tb_connect(&g, d.sock, ALL, 2, 256,
                       GABI_VHOST_GUESTQ_EVENT_IDX | GABI_VHOST_GUESTQ_INDIRECT) == 0);
    CHECK(g.features & (1ull << GABI_F_INDIRECT_DESC));
    CHECK(g.features & (1ull << GABI_F_EVENT_IDX));
    tb_pattern(tb_ptr(&g, g.data, 40 * 8192), 40 * 8192, 50);
    for (unsigned i = 0; i < 40; i++)
        rq[i] = (struct tb_req){.type = VIRTIO_BLK_T_OUT,
                                .sector = 16ull * i,
                                .data_off = 8192ull * i,
                                .len = 8192,
                                .nseg = 1 + i % 12,
                                .indirect = i % 2};
    CHECK_INT(tb_submit(&g, 1, rq, 40), 0);
    for (unsigned i = 0; i < 40; i++) {
        CHECK_INT(rq[i].status, 0);
        CHECK_INT(rq[i].used_len, 1);
    }
    for (unsigned i = 0; i < 40; i++) {
        rq[i].type = VIRTIO_BLK_T_IN;
        rq[i].data_off = (4u << 20) + 8192ull * i;
        rq[i].indirect = !(i % 2);
    }
    CHECK_INT(tb_submit(&g, 0, rq, 40), 0);
    for (unsigned i = 0; i < 40; i++) {
        CHECK_INT(rq[i].status, 0);
        CHECK_INT(rq[i].used_len, 8193); /* the data and the status */
    }
    CHECK(memcmp(tb_ptr(&g, g.data, 40 * 8192), tb_ptr(&g, g.data + (4u << 20), 40 * 8192),
                 40 * 8192) == 0);
    tb_disconnect(&g);
    tb_dev_stop(&d);
}

TEST(full_ring_in_one_batch)
{
    struct tb_dev d;
    struct tb_guest g;
    static struct tb_req rq[128];

    REQUIRE(tb_dev_start(&d, &tb_mode_v1, &ram_disk) == 0);
    REQUIRE(tb_connect(&g, d.sock, ALL, 1, 128, 0) == 0);
    /* 42 writes of 3 descriptors: the 128 descriptors in one go ... */
    tb_pattern(tb_ptr(&g, g.data, 42 * 4096), 42 * 4096, 60);
    for (unsigned i = 0; i < 42; i++)
        rq[i] = (struct tb_req){
            .type = VIRTIO_BLK_T_OUT, .sector = 8ull * i, .data_off = 4096ull * i, .len = 4096};
    CHECK_INT(tb_submit(&g, 0, rq, 42), 0);
    for (unsigned i = 0; i < 42; i++)
        CHECK_INT(rq[i].status, 0);
    /* ... and 64 flushes of 2: all of the ring's avail entries are published at once */
    for (unsigned i = 0; i < 64; i++)
        rq[i] = (struct tb_req){.type = VIRTIO_BLK_T_FLUSH};
    CHECK_INT(tb_submit(&g, 0, rq, 64), 0);
    for (unsigned i = 0; i < 64; i++)
        CHECK_INT(rq[i].status, 0);
    CHECK_INT(tb_dev_stats(&d).flushes, 64);
    CHECK_INT(tb_dev_peek(&d, 0, buf_b, 42 * 4096), 0);
    CHECK(memcmp(buf_b, tb_ptr(&g, g.data, 42 * 4096), 42 * 4096) == 0);
    tb_disconnect(&g);
    tb_dev_stop(&d);
}

TEST(dirty_log_marks_what_reads_wrote)
{
    struct tb_dev d;
    struct tb_guest g;

    REQUIRE(tb_dev_start(&d, &tb_mode_v1, &ram_disk) == 0);
    REQUIRE(tb_connect(&g, d.sock, ALL, 1, 128, 0) == 0);
    REQUIRE(g.features & (1ull << GABI_F_LOG_ALL));
    REQUIRE(gabi_vhost_client_set_log(g.c, TB_MEM_SIZE) == 0);
    tb_pattern(buf_a, 8192, 70);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_OUT, 0, buf_a, 8192, 1), 0);
    gabi_vhost_client_log_clear(g.c);
    {
        struct tb_req rq = {.type = VIRTIO_BLK_T_IN, .data_off = 0x10000, .len = 8192};

        CHECK_INT(tb_submit(&g, 0, &rq, 1), 0);
        CHECK_INT(rq.status, 0);
    }
    CHECK(gabi_vhost_client_log_dirty(g.c, g.data + 0x10000));
    CHECK(gabi_vhost_client_log_dirty(g.c, g.data + 0x11000));
    CHECK(!gabi_vhost_client_log_dirty(g.c, g.data + 0x12000));
    CHECK(!gabi_vhost_client_log_dirty(g.c, g.data)); /* what the write read */
    CHECK(gabi_vhost_client_log_dirty(g.c, g.meta));  /* the status byte */
    tb_disconnect(&g);
    tb_dev_stop(&d);
}

/* ---- mode refusals and reconnects ------------------------------------------------------------ */

TEST(mode_refusals)
{
    struct tb_dev d;
    struct tb_guest g;
    struct gabi_vhost_client *c;
    struct gabi_error err = {0};

    REQUIRE(tb_dev_start(&d, &tb_mode_v1, &ram_disk) == 0);
    /* a second queue */
    CHECK(tb_connect(&g, d.sock, ALL, 2, 128, 0) < 0);
    tb_disconnect(&g);
    /* a ring of 256 */
    CHECK(tb_connect(&g, d.sock, ALL, 1, 256, 0) < 0);
    tb_disconnect(&g);
    /* features v1 does not offer */
    REQUIRE(gabi_vhost_client_connect(d.sock, 10000, &c, &err) == 0);
    CHECK_INT(gabi_vhost_client_set_protocol_features(c, 1ull << GABI_PF_REPLY_ACK), 0);
    CHECK_INT(gabi_vhost_client_set_features(c, tb_mode_v1.features | (1ull << GABI_BLK_F_DISCARD)),
              -EIO);
    gabi_vhost_client_free(c);
    REQUIRE(gabi_vhost_client_connect(d.sock, 10000, &c, &err) == 0);
    CHECK_INT(gabi_vhost_client_set_protocol_features(c, 1ull << GABI_PF_REPLY_ACK), 0);
    CHECK_INT(
        gabi_vhost_client_set_features(c, tb_mode_v1.features | (1ull << GABI_F_INDIRECT_DESC)),
        -EIO);
    gabi_vhost_client_free(c);
    /* and the device still serves the mode */
    REQUIRE(tb_connect(&g, d.sock, ALL, 1, 128, 0) == 0);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_IN, 0, buf_b, 512, 1), 0);
    tb_disconnect(&g);
    tb_dev_stop(&d);

    REQUIRE(tb_dev_start(&d, &tb_mode_mq, &ram_disk) == 0);
    CHECK(tb_connect(&g, d.sock, ALL, 5, 256, 0) < 0); /* 4 queues */
    tb_disconnect(&g);
    CHECK(tb_connect(&g, d.sock, ALL, 4, 512, 0) < 0); /* of 256 */
    tb_disconnect(&g);
    REQUIRE(tb_connect(&g, d.sock, ALL, 4, 256, 0) == 0);
    tb_disconnect(&g);
    tb_dev_stop(&d);
}

TEST(reconnect_keeps_the_data)
{
    struct tb_dev d;
    struct tb_guest g;

    for (int file = 0; file < 2; file++) {
        REQUIRE(tb_dev_start(&d, &tb_mode_mq, file ? &file_disk : &ram_disk) == 0);
        REQUIRE(tb_connect(&g, d.sock, ALL, 2, 256, GABI_VHOST_GUESTQ_EVENT_IDX) == 0);
        tb_pattern(buf_a, 1u << 20, 80 + (unsigned)file);
        CHECK_INT(tb_rw(&g, 1, VIRTIO_BLK_T_OUT, 4096, buf_a, 1u << 20, 16), 0);
        tb_disconnect(&g);
        /* another front-end, other features, one queue */
        REQUIRE(tb_connect(&g, d.sock, tb_mode_v1.features, 1, 128, 0) == 0);
        CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_IN, 4096, buf_b, 1u << 20, 5), 0);
        CHECK(memcmp(buf_a, buf_b, 1u << 20) == 0);
        tb_disconnect(&g);
        tb_dev_stop(&d);
    }
}

/* ---- the disk layer moves exactly the bytes asked for ------------------------------------- */

TEST(disk_moves_exactly_len_bytes)
{
    static uint8_t a[8192], b[8192];
    char dir[] = "/tmp/gabi-blk-disk-XXXXXX", path[64], why[256];

    REQUIRE(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/disk.img", dir);
    for (int ram = 0; ram < 2; ram++) {
        const uint64_t size = 1u << 20;
        struct iovec two[] = {{a, 4096}, {b, 4096}}, short_one[] = {{a, 512}};
        struct blk_disk disk;
        struct stat st;
        uint8_t back[8192];
        struct iovec rd[] = {{back, sizeof(back)}};

        printf("# %s disk\n", ram ? "RAM" : "file");
        REQUIRE((ram ? blk_disk_open_ram(&disk, size, why, sizeof(why))
                     : blk_disk_open_file(&disk, path, size, false, why, sizeof(why))) == 0);
        memset(a, 0xa5, sizeof(a));
        memset(b, 0x5b, sizeof(b));
        /* iovecs holding 8 KiB, a request of 4 KiB at the disk's last 4 KiB: 4 KiB written,
         * the rest neither written past the end nor anywhere else */
        CHECK_INT(blk_disk_write(&disk, size - 4096, two, 2, 4096), 0);
        if (!ram) {
            CHECK_INT(stat(path, &st), 0);
            CHECK_INT(st.st_size, size);
        }
        memset(back, 0, sizeof(back));
        CHECK_INT(blk_disk_read(&disk, size - 8192, rd, 1, 8192), 0);
        CHECK(all_zero(back, 4096));
        CHECK(memcmp(back + 4096, a, 4096) == 0);
        /* reading: iovecs beyond len are left alone */
        memset(b, 0x77, sizeof(b));
        CHECK_INT(blk_disk_read(&disk, size - 4096, two, 2, 4096), 0);
        CHECK(memcmp(a, back + 4096, 4096) == 0);
        for (size_t i = 0; i < sizeof(b); i++)
            if (b[i] != 0x77) {
                CHECK(!"read beyond len into the second iovec");
                break;
            }
        /* iovecs holding fewer bytes than the request: refused, nothing moved */
        CHECK_INT(blk_disk_write(&disk, 0, short_one, 1, 4096), -EINVAL);
        CHECK_INT(blk_disk_read(&disk, 0, short_one, 1, 4096), -EINVAL);
        CHECK_INT(blk_disk_read(&disk, 0, rd, 1, 4096), 0);
        CHECK(all_zero(back, 4096));
        blk_disk_close(&disk);
    }
    unlink(path);
    rmdir(dir);
}

TAP_MAIN()
