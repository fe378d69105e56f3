/* SPDX-License-Identifier: MIT */
/*
 * guestabi-blk, the program, driven by our front-end: its options and modes (catalog ones and
 * --catalog test modes), the disk file it creates, locks and keeps across restarts, a clean
 * SIGTERM, and hostile rings, each of which breaks only its own vring while the process and
 * its other queues go on.
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blk_test.h"
#include <guestabi/util.h>
#include "vhost/ring.h"

#include "tap.h"

#define ALL ~0ull

static char out[16384];
static uint8_t buf_a[1u << 20], buf_b[1u << 20];

static const char *test_catalog(void)
{
    static char path[4096];
    const char *root = getenv("GUESTABI_SOURCE_ROOT");

    snprintf(path, sizeof(path), "%s/tests/data/blk/catalog", root ? root : ".");
    return path;
}

static bool alive(pid_t pid)
{
    int status;

    return pid > 0 && waitpid(pid, &status, WNOHANG) == 0;
}

/* ---- options and modes ------------------------------------------------------------------------
 */

TEST(help_and_bad_arguments)
{
    struct tb_proc p;

    REQUIRE(tb_proc_init(&p) == 0);
    CHECK_INT(tb_proc_run(&p, (const char *[]){"--help", NULL}, out, sizeof(out)), 0);
    CHECK_CONTAINS(out, "--socket PATH");
    CHECK_CONTAINS(out, "--ram SIZE");
    CHECK_CONTAINS(out, "--serial ID");
    /* what it needs */
    CHECK_INT(tb_proc_run(&p, (const char *[]){"--socket", "@S", NULL}, out, sizeof(out)), 2);
    CHECK_CONTAINS(out, "either --disk or --ram");
    CHECK_INT(tb_proc_run(&p, (const char *[]){"--ram", "1M", NULL}, out, sizeof(out)), 2);
    CHECK_INT(tb_proc_run(&p,
                          (const char *[]){"--socket", "@S", "--ram", "1M", "--disk", "@D", NULL},
                          out, sizeof(out)),
              2);
    CHECK_INT(tb_proc_run(&p, (const char *[]){"--socket", "@S", "--ram", "1000", NULL}, out,
                          sizeof(out)),
              2);
    CHECK_CONTAINS(out, "a multiple of 512");
    CHECK_INT(
        tb_proc_run(&p, (const char *[]){"--socket", "@S", "--ram", "1X", NULL}, out, sizeof(out)),
        2);
    CHECK_INT(tb_proc_run(&p,
                          (const char *[]){"--socket", "@S", "--ram", "1M", "--size", "1M", NULL},
                          out, sizeof(out)),
              2);
    CHECK_INT(tb_proc_run(&p,
                          (const char *[]){"--socket", "@S", "--ram", "1M", "--serial",
                                           "123456789012345678901", NULL},
                          out, sizeof(out)),
              2);
    CHECK_CONTAINS(out, "at most 20 characters");
    /* a disk file that is not there needs a size */
    CHECK_INT(
        tb_proc_run(&p, (const char *[]){"--socket", "@S", "--disk", "@D", NULL}, out, sizeof(out)),
        1);
    CHECK_CONTAINS(out, "give --size to create it");
    CHECK(access(p.disk, F_OK) < 0);
    /* one larger than --size is not cut */
    {
        int fd = open(p.disk, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

        REQUIRE(fd >= 0);
        CHECK_INT(ftruncate(fd, 2 << 20), 0);
        close(fd);
    }
    CHECK_INT(tb_proc_run(&p,
                          (const char *[]){"--socket", "@S", "--disk", "@D", "--size", "1M", NULL},
                          out, sizeof(out)),
              1);
    CHECK_CONTAINS(out, "shrinking would lose data");
    tb_proc_cleanup(&p);
}

TEST(modes)
{
    struct tb_proc p;

    REQUIRE(tb_proc_init(&p) == 0);
    CHECK_INT(tb_proc_run(&p, (const char *[]){"--list-modes", NULL}, out, sizeof(out)), 0);
    CHECK_CONTAINS(out, "upstream.guestabi-blk.v1\t1 queue of 128\t");
    CHECK(!strstr(out, "guestabi-net"));
    /* v2 (device state included) is the newest, listed first */
    CHECK_CONTAINS(out, "upstream.guestabi-blk.v2\t4 queues of 256\t");
    CHECK(strstr(out, "guestabi-blk.v2") < strstr(out, "guestabi-blk.v1"));
    CHECK_INT(tb_proc_run(&p,
                          (const char *[]){"--socket", "@S", "--ram", "1M", "--mode",
                                           "upstream.guestabi-blk.v7", NULL},
                          out, sizeof(out)),
              1);
    CHECK_CONTAINS(out, "did you mean");
    CHECK_INT(tb_proc_run(&p,
                          (const char *[]){"--socket", "@S", "--ram", "1M", "--mode",
                                           "upstream.guestabi-net.v1", NULL},
                          out, sizeof(out)),
              1);
    CHECK_CONTAINS(out, "is a virtio-net mode");
    /* test modes from --catalog: listed, the read-only one only for --readonly */
    CHECK_INT(tb_proc_run(&p, (const char *[]){"--list-modes", "--catalog", test_catalog(), NULL},
                          out, sizeof(out)),
              0);
    CHECK_CONTAINS(out, "test.guestabi-blk.mq\t4 queues of 256\t");
    CHECK(!strstr(out, "test.guestabi-blk.ro"));
    CHECK_INT(tb_proc_run(
                  &p,
                  (const char *[]){"--list-modes", "--readonly", "--catalog", test_catalog(), NULL},
                  out, sizeof(out)),
              0);
    CHECK_CONTAINS(out, "test.guestabi-blk.ro\t1 queue of 128\t");
    CHECK_INT(tb_proc_run(&p,
                          (const char *[]){"--socket", "@S", "--ram", "1M", "--catalog",
                                           test_catalog(), "--mode", "test.guestabi-blk.ro", NULL},
                          out, sizeof(out)),
              1);
    CHECK_CONTAINS(out, "give --readonly");
    tb_proc_cleanup(&p);
}

TEST(default_mode_is_the_newest_it_runs)
{
    struct tb_proc p;
    struct tb_guest g;
    uint64_t n = 0;

    REQUIRE(tb_proc_init(&p) == 0);
    REQUIRE(tb_proc_start(&p,
                          (const char *[]){"--socket", "@S", "--ram", "4M", "--catalog",
                                           test_catalog(), NULL},
                          out, sizeof(out)) == 0);
    CHECK_CONTAINS(out, "mode upstream.guestabi-blk.v2");
    REQUIRE(tb_connect(&g, p.sock, ALL, 1, 128, 0) == 0);
    CHECK_INT(gabi_vhost_client_get_queue_num(g.c, &n), 0);
    CHECK_INT(n, 4);
    tb_disconnect(&g);
    CHECK_INT(tb_proc_stop(&p), 0);
    tb_proc_cleanup(&p);
}

/* ---- the disk across restarts ------------------------------------------------------------------
 */

TEST(disk_file_created_locked_and_kept)
{
    struct tb_proc p, other;
    struct tb_guest g;
    struct blk_config c;
    struct stat st;
    char sock[128];

    REQUIRE(tb_proc_init(&p) == 0);
    REQUIRE(tb_proc_init(&other) == 0);
    REQUIRE(tb_proc_start(&p,
                          (const char *[]){"--socket", "@S", "--disk", "@D", "--size", "8M",
                                           "--serial", "kept-1", NULL},
                          out, sizeof(out)) == 0);
    CHECK_INT(stat(p.disk, &st), 0);
    CHECK_INT(st.st_size, 8 << 20);
    /* a second back-end on the same disk is refused */
    snprintf(sock, sizeof(sock), "%s", other.sock);
    CHECK(tb_proc_start(&other, (const char *[]){"--socket", sock, "--disk", p.disk, NULL}, out,
                        sizeof(out)) < 0);
    CHECK_CONTAINS(out, "in use by another process");

    REQUIRE(tb_connect(&g, p.sock, ALL, 1, 128, 0) == 0);
    CHECK_INT(gabi_vhost_client_get_config(g.c, 0, &c, sizeof(c)), 0);
    CHECK_INT(c.capacity, (8 << 20) / 512);
    tb_pattern(buf_a, 1u << 20, 90);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_OUT, 2048, buf_a, 1u << 20, 32), 0);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, 0), 0);
    tb_disconnect(&g);
    /* SIGTERM: a clean exit, the socket gone */
    CHECK_INT(tb_proc_stop(&p), 0);
    CHECK(access(p.sock, F_OK) < 0);
    {
        int fd = open(p.disk, O_RDONLY | O_CLOEXEC);

        REQUIRE(fd >= 0);
        CHECK_INT(pread(fd, buf_b, 1u << 20, 1 << 20), 1 << 20);
        CHECK(memcmp(buf_a, buf_b, 1u << 20) == 0);
        close(fd);
    }
    /* the next run (no --size: the file's) serves the same data, read-only this time */
    REQUIRE(tb_proc_start(&p,
                          (const char *[]){"--socket", "@S", "--disk", "@D", "--readonly", NULL},
                          out, sizeof(out)) == 0);
    CHECK_CONTAINS(out, "read-only");
    REQUIRE(tb_connect(&g, p.sock, ALL, 1, 128, 0) == 0);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_IN, 2048, buf_b, 1u << 20, 7), 0);
    CHECK(memcmp(buf_a, buf_b, 1u << 20) == 0);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_OUT, 2048, buf_b, 512, 1), VIRTIO_BLK_S_IOERR);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_GET_ID, 0, buf_b, 20, 1), 0);
    CHECK(memcmp(buf_b, "\0\0\0\0", 4) == 0); /* no --serial this time */
    tb_disconnect(&g);
    /* a reader shares the disk with another reader */
    CHECK_INT(tb_proc_start(
                  &other, (const char *[]){"--socket", sock, "--disk", p.disk, "--readonly", NULL},
                  out, sizeof(out)),
              0);
    CHECK_INT(tb_proc_stop(&other), 0);
    CHECK_INT(tb_proc_stop(&p), 0);
    tb_proc_cleanup(&other);
    tb_proc_cleanup(&p);
}

/* ---- hostile rings ------------------------------------------------------------------------------
 */

enum hostile {
    H_TOO_MANY_SEGS, /* 70 descriptors: more than a chain may have */
    H_OUTSIDE,       /* data outside guest memory */
    H_HUGE_LEN,      /* a 4 GiB descriptor */
    H_LOOP,          /* next points back */
    H_AVAIL_JUMP,    /* avail index far ahead */
    H_NO_STATUS,     /* nothing writable */
    H_BIG_INDIRECT,  /* an indirect table of 100 descriptors */
    H_COUNT,
};

/* Plant a hostile chain at descriptor 0 of queue q, by hand. */
static void plant(struct tb_guest *g, unsigned q, enum hostile kind)
{
    uint64_t desc_gpa, avail_gpa, used_gpa;
    struct vring_desc *desc, *table;
    struct vring_avail *avail;
    uint16_t idx = gabi_vhost_guestq_avail_idx(g->q[q]);
    uint16_t size = gabi_vhost_guestq_size(g->q[q]);
    struct blk_outhdr h = {VIRTIO_BLK_T_IN, 0, 0};
    unsigned n = 3;

    gabi_vhost_guestq_addrs(g->q[q], &desc_gpa, &avail_gpa, &used_gpa);
    desc = tb_ptr(g, desc_gpa, 16ull * size);
    avail = tb_ptr(g, avail_gpa, 6 + 2ull * size);
    table = desc;
    memcpy(tb_ptr(g, g->spare, 16), &h, 16);
    if (kind == H_BIG_INDIRECT) {
        table = tb_ptr(g, g->spare + 4096, 16 * 100);
        desc[0] = (struct vring_desc){g->spare + 4096, 16 * 100, VRING_DESC_F_INDIRECT, 0};
        n = 100;
    } else if (kind == H_TOO_MANY_SEGS) {
        n = 70;
    }
    for (unsigned i = 0; i < n; i++) {
        table[i] = (struct vring_desc){g->data + 512ull * i, 512,
                                       VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, (uint16_t)(i + 1)};
    }
    table[0] = (struct vring_desc){g->spare, 16, VRING_DESC_F_NEXT, 1};
    table[n - 1].len = 1;
    table[n - 1].flags = VRING_DESC_F_WRITE;
    switch (kind) {
    case H_OUTSIDE:
        table[1].addr = TB_MEM_SIZE + 4096;
        break;
    case H_HUGE_LEN:
        table[1].len = UINT32_MAX;
        break;
    case H_LOOP:
        table[2].flags |= VRING_DESC_F_NEXT;
        table[2].next = 1;
        break;
    case H_NO_STATUS:
        h.type = VIRTIO_BLK_T_OUT;
        memcpy(tb_ptr(g, g->spare, 16), &h, 16);
        table[1].flags = VRING_DESC_F_NEXT;
        table[2].flags = 0;
        break;
    default:
        break;
    }
    avail->ring[idx % size] = 0;
    __atomic_store_n(&avail->idx, (uint16_t)(kind == H_AVAIL_JUMP ? idx + 1000 : idx + 1),
                     __ATOMIC_RELEASE);
    gabi_vhost_guestq_kick(g->q[q]);
    {
        uint64_t one = 1;

        /* kick even if the device asked for none */
        CHECK_INT(write(gabi_vhost_guestq_kick_fd(g->q[q]), &one, 8), 8);
    }
}

TEST(hostile_rings_break_only_their_vring)
{
    struct tb_proc p;
    struct tb_guest g;

    REQUIRE(tb_proc_init(&p) == 0);
    REQUIRE(tb_proc_start(&p,
                          (const char *[]){"--socket", "@S", "--ram", "16M", "--catalog",
                                           test_catalog(), "--mode", "test.guestabi-blk.mq", NULL},
                          out, sizeof(out)) == 0);
    tb_pattern(buf_a, 65536, 91);
    for (unsigned kind = 0; kind < H_COUNT; kind++) {
        REQUIRE(tb_connect(&g, p.sock, ALL, 2, 256, GABI_VHOST_GUESTQ_INDIRECT) == 0);
        if (kind == 0)
            CHECK_INT(tb_rw(&g, 1, VIRTIO_BLK_T_OUT, 64, buf_a, 65536, 4), 0);
        plant(&g, 0, (enum hostile)kind);
        if (!tb_wait_err(&g, 0))
            TAP_FAIL("hostile chain %u did not break its vring", kind);
        CHECK(alive(p.pid));
        /* the other queue still serves */
        memset(buf_b, 0, 65536);
        CHECK_INT(tb_rw(&g, 1, VIRTIO_BLK_T_IN, 64, buf_b, 65536, 3), 0);
        CHECK(memcmp(buf_a, buf_b, 65536) == 0);
        tb_disconnect(&g);
    }
    tb_proc_log(&p, out, sizeof(out));
    CHECK_CONTAINS(out, "has more than 64 segments");
    CHECK_CONTAINS(out, "is outside guest memory");
    CHECK_CONTAINS(out, "avail index 1000 is more than 256 ahead");
    CHECK_CONTAINS(out, "virtio-blk request without a writable status byte");
    /* and a new front-end finds the whole device working, its data intact */
    REQUIRE(tb_connect(&g, p.sock, ALL, 1, 256, 0) == 0);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_IN, 64, buf_b, 65536, 2), 0);
    CHECK(memcmp(buf_a, buf_b, 65536) == 0);
    tb_disconnect(&g);
    CHECK_INT(tb_proc_stop(&p), 0);
    tb_proc_cleanup(&p);
}

TEST(garbage_on_the_socket_closes_only_that_connection)
{
    struct tb_proc p;
    struct tb_guest g;
    struct gabi_vhost_client *c;
    struct gabi_error err = {0};
    uint8_t junk[300];

    REQUIRE(tb_proc_init(&p) == 0);
    REQUIRE(tb_proc_start(&p, (const char *[]){"--socket", "@S", "--ram", "1M", NULL}, out,
                          sizeof(out)) == 0);
    REQUIRE(gabi_vhost_client_connect(p.sock, 5000, &c, &err) == 0);
    tb_pattern(junk, sizeof(junk), 92);
    CHECK_INT(write(gabi_vhost_client_fd(c), junk, sizeof(junk)), (long)sizeof(junk));
    {
        uint64_t f;

        CHECK(gabi_vhost_client_get_features(c, &f) < 0);
    }
    gabi_vhost_client_free(c);
    CHECK(alive(p.pid));
    REQUIRE(tb_connect(&g, p.sock, ALL, 1, 128, 0) == 0);
    CHECK_INT(tb_rw(&g, 0, VIRTIO_BLK_T_IN, 0, buf_b, 4096, 1), 0);
    tb_disconnect(&g);
    CHECK_INT(tb_proc_stop(&p), 0);
    tb_proc_cleanup(&p);
}

TAP_MAIN()
