/* SPDX-License-Identifier: MIT */
/*
 * The disk as device state: written by a guest on one guestabi-blk, saved while suspended,
 * loaded into a second one (RAM and file disks, each way), and read back through the second;
 * the source resumes untouched. Loads that must fail (another size, a version the catalog
 * rule does not load, a truncated or corrupted stream, a read-only disk, a running source)
 * leave the destination's disk exactly as it was, scratch files included. Then the same with
 * two guestabi-blk processes, and with `guestabi state move|save|load` (the program) between
 * three of them: no QEMU needed.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk_test.h"
#include "child.h"
#include <guestabi/util.h>

#include "tap.h"

#define ALL      ~0ull
#define DISK     (8u << 20)
#define MIB      (1u << 20)
#define STREAM   (GABI_VHOST_STATE_HEADER_SIZE + GABI_VHOST_STATE_TRAILER_SIZE)
#define TIMEOUT  20000
#define EVENTIDX GABI_VHOST_GUESTQ_EVENT_IDX

static uint8_t buf_a[DISK], buf_b[DISK];

/* Where fill() writes: three 1 MiB areas, the last one at the disk's end. */
static const uint64_t areas[] = {0, 3 * MIB, DISK - MIB};

/* Write a recognizable image through g (areas on alternate queues, a discarded range). */
static int fill(struct tb_guest *g, uint32_t seed)
{
    for (unsigned i = 0; i < ARRAY_SIZE(areas); i++) {
        tb_pattern(buf_a, MIB, seed + i);
        if (tb_rw(g, i % g->n_queues, VIRTIO_BLK_T_OUT, areas[i] / TB_SECTOR, buf_a, MIB, 8) != 0)
            return -EIO;
    }
    if (g->features & (1ull << GABI_BLK_F_DISCARD)) {
        struct blk_range r = {3 * MIB / TB_SECTOR + 64, 64, 0};

        if (tb_rw(g, 0, VIRTIO_BLK_T_DISCARD, 0, &r, sizeof(r), 1) != 0)
            return -EIO;
    }
    return 0;
}

/* Whether g reads back what fill(seed) wrote. */
static bool holds(struct tb_guest *g, uint32_t seed)
{
    bool ok = true;

    for (unsigned i = 0; i < ARRAY_SIZE(areas); i++) {
        tb_pattern(buf_a, MIB, seed + i);
        if (i == 1 && (g->features & (1ull << GABI_BLK_F_DISCARD)))
            memset(buf_a + 64 * TB_SECTOR, 0, 64 * TB_SECTOR);
        memset(buf_b, 0x55, MIB);
        ok &= tb_rw(g, (i + 1) % g->n_queues, VIRTIO_BLK_T_IN, areas[i] / TB_SECTOR, buf_b, MIB,
                    3) == 0;
        ok &= memcmp(buf_a, buf_b, MIB) == 0;
    }
    return ok;
}

/* A front-end that only negotiates: the device stays suspended. */
static struct gabi_vhost_client *bare(const char *sock)
{
    struct gabi_vhost_client *c = NULL;

    if (gabi_vhost_client_connect(sock, TIMEOUT, &c, NULL) < 0)
        return NULL;
    if (gabi_vhost_client_negotiate(c, ALL, ALL, NULL, NULL) < 0)
        return gabi_vhost_client_free(c);
    return c;
}

/* Whether dir holds a load's scratch file. */
static bool scratch_left(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    bool found = false;

    while (d && (e = readdir(d)))
        found |= strstr(e->d_name, ".gabi-load-") != NULL;
    if (d)
        closedir(d);
    return found;
}

static void move_disk(bool src_ram, bool dst_ram)
{
    const struct tb_disk_spec src = {.ram = src_ram, .size = DISK};
    const struct tb_disk_spec dst = {.ram = dst_ram, .size = DISK};
    struct gabi_vhost_state_xfer x;
    struct gabi_error err = {0};
    struct gabi_vhost_client *c;
    struct tb_dev a, b;
    struct tb_guest ga, gb;

    printf("# %s -> %s\n", src_ram ? "RAM" : "file", dst_ram ? "RAM" : "file");
    REQUIRE(tb_dev_start(&a, test_catalog_mode("upstream.guestabi-blk.v2"), &src) == 0);
    REQUIRE(tb_dev_start(&b, test_catalog_mode("upstream.guestabi-blk.v2"), &dst) == 0);
    REQUIRE(tb_connect(&ga, a.sock, ALL, 2, 256, EVENTIDX) == 0);
    REQUIRE(fill(&ga, 100) == 0);
    REQUIRE(tb_suspend(&ga) == 0);
    c = bare(b.sock);
    REQUIRE(c);
    memset(&x, 0, sizeof(x));
    CHECK_INT(gabi_vhost_client_move_state(ga.c, c, TIMEOUT, &x, &err), 0);
    if (err.message[0])
        printf("# %s\n", err.message);
    CHECK_INT(x.check_code[0], 0);
    CHECK_INT(x.check_code[1], 0);
    gabi_vhost_client_free(c);
    /* the destination's disk is the source's, byte for byte */
    CHECK_INT(tb_dev_peek(&a, 0, buf_a, DISK), 0);
    CHECK_INT(tb_dev_peek(&b, 0, buf_b, DISK), 0);
    CHECK(memcmp(buf_a, buf_b, DISK) == 0);
    REQUIRE(tb_connect(&gb, b.sock, ALL, 2, 256, EVENTIDX) == 0);
    CHECK(holds(&gb, 100));
    tb_disconnect(&gb);
    if (!dst_ram)
        CHECK(!scratch_left(b.dir));
    /* the source resumes where it stopped, its disk as it was */
    CHECK_INT(tb_resume(&ga), 0);
    CHECK(holds(&ga, 100));
    tb_disconnect(&ga);
    tb_dev_stop(&b);
    tb_dev_stop(&a);
}

TEST(state_moves_the_disk)
{
    move_disk(true, true);
    move_disk(false, false);
    move_disk(true, false);
    move_disk(false, true);
}

TEST(a_loaded_file_keeps_its_name_and_mode)
{
    const struct tb_disk_spec src = {.ram = true, .size = DISK};
    struct tb_disk_spec dst = {.size = DISK};
    struct gabi_error err = {0};
    struct gabi_vhost_client *c;
    struct tb_dev a, b;
    struct tb_guest g;
    char real[160], link_path[160];
    struct stat st;
    int fd;

    REQUIRE(tb_dev_start(&a, test_catalog_mode("upstream.guestabi-blk.v2"), &src) == 0);
    REQUIRE(tb_connect(&g, a.sock, ALL, 1, 256, 0) == 0);
    REQUIRE(fill(&g, 600) == 0);
    REQUIRE(tb_suspend(&g) == 0);
    /* the destination's disk is a symlink to a file of mode 0640 */
    snprintf(real, sizeof(real), "%s/real.img", a.dir);
    snprintf(link_path, sizeof(link_path), "%s/link.img", a.dir);
    fd = open(real, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    REQUIRE(fd >= 0);
    CHECK_INT(ftruncate(fd, DISK), 0);
    CHECK_INT(fchmod(fd, 0640), 0);
    close(fd);
    CHECK_INT(symlink("real.img", link_path), 0);
    dst.use_file = link_path;
    REQUIRE(tb_dev_start(&b, test_catalog_mode("upstream.guestabi-blk.v2"), &dst) == 0);
    c = bare(b.sock);
    REQUIRE(c);
    CHECK_INT(gabi_vhost_client_move_state(g.c, c, TIMEOUT, NULL, &err), 0);
    gabi_vhost_client_free(c);
    CHECK_INT(lstat(link_path, &st), 0);
    CHECK(S_ISLNK(st.st_mode));
    CHECK_INT(stat(real, &st), 0);
    CHECK_INT(st.st_mode & 07777, 0640);
    CHECK_INT(st.st_size, DISK);
    CHECK(!scratch_left(a.dir));
    tb_disconnect(&g);
    REQUIRE(tb_connect(&g, b.sock, ALL, 1, 256, 0) == 0);
    CHECK(holds(&g, 600));
    tb_disconnect(&g);
    tb_dev_stop(&b);
    unlink(link_path);
    unlink(real);
    tb_dev_stop(&a);
}

TEST(save_and_load_through_a_file)
{
    const struct tb_disk_spec ram = {.ram = true, .size = DISK};
    struct gabi_vhost_state_xfer x = {0};
    struct gabi_error err = {0};
    struct gabi_vhost_client *c;
    struct tb_dev a, b;
    struct tb_guest g;
    int fd = memfd_create("state", MFD_CLOEXEC);

    REQUIRE(fd >= 0);
    REQUIRE(tb_dev_start(&a, test_catalog_mode("upstream.guestabi-blk.v2"), &ram) == 0);
    REQUIRE(tb_dev_start(&b, test_catalog_mode("upstream.guestabi-blk.v2"), &ram) == 0);
    REQUIRE(tb_connect(&g, a.sock, ALL, 1, 256, 0) == 0);
    REQUIRE(fill(&g, 200) == 0);
    REQUIRE(tb_suspend(&g) == 0);
    CHECK_INT(gabi_vhost_client_save_state(g.c, fd, TIMEOUT, &x, &err), 0);
    CHECK_INT(x.bytes, DISK + STREAM);
    CHECK_INT(lseek(fd, 0, SEEK_END), DISK + STREAM);
    /* the stream's header names the device type and version, before the raw image */
    {
        struct gabi_vhost_state_info info;
        uint8_t hdr[GABI_VHOST_STATE_HEADER_SIZE];

        CHECK_INT(pread(fd, hdr, sizeof(hdr), 0), (long)sizeof(hdr));
        CHECK_INT(gabi_vhost_state_header_parse(hdr, sizeof(hdr), &info, NULL, NULL),
                  GABI_VHOST_STATE_HEADER_SIZE);
        CHECK_STR(info.device_type, "guestabi-blk");
        CHECK_STR(info.state_version, "1");
        CHECK_INT(info.payload_size, DISK);
        CHECK_INT(pread(fd, buf_b, MIB, GABI_VHOST_STATE_HEADER_SIZE), MIB);
        tb_pattern(buf_a, MIB, 200);
        CHECK(memcmp(buf_a, buf_b, MIB) == 0);
    }
    tb_disconnect(&g);
    lseek(fd, 0, SEEK_SET);
    c = bare(b.sock);
    REQUIRE(c);
    CHECK_INT(gabi_vhost_client_load_state(c, fd, TIMEOUT, NULL, &err), 0);
    gabi_vhost_client_free(c);
    REQUIRE(tb_connect(&g, b.sock, ALL, 1, 256, 0) == 0);
    CHECK(holds(&g, 200));
    tb_disconnect(&g);
    close(fd);
    tb_dev_stop(&b);
    tb_dev_stop(&a);
}

struct result {
    char why[1024];
};

static void get_result(struct blk *k, void *arg)
{
    struct result *res = arg;
    struct gabi_error err = {0};

    if (gabi_vhost_backend_state_result(k->b, NULL, NULL, &err) < 0)
        snprintf(res->why, sizeof(res->why), "%s", err.message);
}

/* Load the stream in fd (from its start) into device d: 0 or -errno; the CHECK answer and
 * the device's reason for a failure. */
static int load_from(struct tb_dev *d, int fd, uint64_t *ret_code, char *why, size_t why_size)
{
    struct gabi_vhost_state_xfer x = {0};
    struct gabi_error err = {0};
    struct gabi_vhost_client *c = bare(d->sock);
    struct result res = {""};
    int r;

    if (!c)
        return -ENOTCONN;
    lseek(fd, 0, SEEK_SET);
    r = gabi_vhost_client_load_state(c, fd, TIMEOUT, &x, &err);
    *ret_code = x.check_code[1];
    tb_dev_call(d, get_result, &res);
    snprintf(why, why_size, "%s", res.why);
    gabi_vhost_client_free(c);
    return r;
}

TEST(failed_loads_leave_the_disk_alone)
{
    const struct tb_disk_spec src = {.ram = true, .size = DISK};
    struct tb_disk_spec dst = {.size = DISK};
    struct gabi_error err = {0};
    struct tb_dev a, b;
    struct tb_guest g;
    uint64_t code = 0;
    char why[1024];
    int fd = memfd_create("state", MFD_CLOEXEC), bad = memfd_create("bad", MFD_CLOEXEC);
    uint8_t byte;

    REQUIRE(fd >= 0 && bad >= 0);
    REQUIRE(tb_dev_start(&a, test_catalog_mode("upstream.guestabi-blk.v2"), &src) == 0);
    REQUIRE(tb_connect(&g, a.sock, ALL, 1, 256, 0) == 0);
    REQUIRE(fill(&g, 300) == 0);
    /* a running source refuses to save */
    CHECK(gabi_vhost_client_save_state(g.c, fd, TIMEOUT, NULL, &err) < 0);
    CHECK_INT(lseek(fd, 0, SEEK_END), 0);
    REQUIRE(tb_suspend(&g) == 0);
    REQUIRE(gabi_vhost_client_save_state(g.c, fd, TIMEOUT, NULL, &err) == 0);
    tb_disconnect(&g);

    /* the destination: a file disk holding data of its own */
    REQUIRE(tb_dev_start(&b, test_catalog_mode("upstream.guestabi-blk.v2"), &dst) == 0);
    REQUIRE(tb_connect(&g, b.sock, ALL, 1, 256, 0) == 0);
    REQUIRE(fill(&g, 400) == 0);
    tb_disconnect(&g);

    /* truncated: the last 1000 bytes missing */
    REQUIRE(ftruncate(bad, 0) == 0);
    CHECK_INT(copy_file_range(fd, &(loff_t){0}, bad, &(loff_t){0}, DISK + STREAM - 1000, 0),
              DISK + STREAM - 1000);
    CHECK(load_from(&b, bad, &code, why, sizeof(why)) < 0);
    CHECK_INT(code, GABI_VHOST_STATE_TRUNCATED);
    /* one payload byte changed */
    REQUIRE(ftruncate(bad, 0) == 0);
    CHECK_INT(copy_file_range(fd, &(loff_t){0}, bad, &(loff_t){0}, DISK + STREAM, 0),
              DISK + STREAM);
    CHECK_INT(pread(bad, &byte, 1, 4 * MIB), 1);
    byte ^= 0x40;
    CHECK_INT(pwrite(bad, &byte, 1, 4 * MIB), 1);
    CHECK(load_from(&b, bad, &code, why, sizeof(why)) < 0);
    CHECK_INT(code, GABI_VHOST_STATE_BAD_CHECKSUM);
    /* none of it reached the disk, nor is a scratch file left over */
    CHECK(!scratch_left(b.dir));
    REQUIRE(tb_connect(&g, b.sock, ALL, 1, 256, 0) == 0);
    CHECK(holds(&g, 400));
    tb_disconnect(&g);
    tb_dev_stop(&b);

    /* a disk of another size */
    dst.size = 2 * DISK;
    REQUIRE(tb_dev_start(&b, test_catalog_mode("upstream.guestabi-blk.v2"), &dst) == 0);
    CHECK(load_from(&b, fd, &code, why, sizeof(why)) < 0);
    CHECK_INT(code, GABI_VHOST_STATE_SINK);
    CHECK_CONTAINS(why, "does not fit");
    tb_dev_stop(&b);
    /* a version the rule does not load */
    dst.size = DISK;
    dst.loads = "2";
    REQUIRE(tb_dev_start(&b, test_catalog_mode("upstream.guestabi-blk.v2"), &dst) == 0);
    CHECK(load_from(&b, fd, &code, why, sizeof(why)) < 0);
    CHECK_INT(code, GABI_VHOST_STATE_REFUSED);
    CHECK_CONTAINS(why, "loads only 2");
    tb_dev_stop(&b);
    /* a read-only disk */
    dst.loads = NULL;
    dst.readonly = true;
    REQUIRE(tb_dev_start(&b, test_catalog_mode("upstream.guestabi-blk.v2"), &dst) == 0);
    CHECK(load_from(&b, fd, &code, why, sizeof(why)) < 0);
    CHECK_CONTAINS(why, "read-only");
    CHECK_INT(tb_dev_peek(&b, 0, buf_b, MIB), 0);
    CHECK(memcmp(buf_b, "\0\0\0\0\0\0\0\0", 8) == 0);
    tb_dev_stop(&b);
    /* and the intact stream loads */
    dst.readonly = false;
    REQUIRE(tb_dev_start(&b, test_catalog_mode("upstream.guestabi-blk.v2"), &dst) == 0);
    CHECK_INT(load_from(&b, fd, &code, why, sizeof(why)), 0);
    REQUIRE(tb_connect(&g, b.sock, ALL, 1, 256, 0) == 0);
    CHECK(holds(&g, 300));
    tb_disconnect(&g);
    tb_dev_stop(&b);
    tb_dev_stop(&a);
    close(fd);
    close(bad);
}

TEST(two_processes)
{
    struct tb_proc pa, pb;
    struct tb_guest g;
    struct gabi_vhost_client *c;
    struct gabi_vhost_state_xfer x = {0};
    struct gabi_error err = {0};
    char out[4096];

    REQUIRE(tb_proc_init(&pa) == 0);
    REQUIRE(tb_proc_init(&pb) == 0);
    /* the default mode (v2) on both; the source's disk a file, the destination's too */
    REQUIRE(tb_proc_start(&pa,
                          (const char *[]){"--socket", "@S", "--disk", "@D", "--size", "8M", NULL},
                          out, sizeof(out)) == 0);
    REQUIRE(tb_proc_start(&pb,
                          (const char *[]){"--socket", "@S", "--disk", "@D", "--size", "8M", NULL},
                          out, sizeof(out)) == 0);
    REQUIRE(tb_connect(&g, pa.sock, ALL, 4, 256, EVENTIDX) == 0);
    REQUIRE(fill(&g, 500) == 0);
    REQUIRE(tb_suspend(&g) == 0);
    c = bare(pb.sock);
    REQUIRE(c);
    CHECK_INT(gabi_vhost_client_move_state(g.c, c, TIMEOUT, &x, &err), 0);
    if (err.message[0])
        printf("# %s\n", err.message);
    gabi_vhost_client_free(c);
    tb_disconnect(&g);
    REQUIRE(tb_connect(&g, pb.sock, ALL, 4, 256, EVENTIDX) == 0);
    CHECK(holds(&g, 500));
    tb_disconnect(&g);
    CHECK_INT(tb_proc_stop(&pa), 0);
    CHECK_INT(tb_proc_stop(&pb), 0);
    tb_proc_log(&pb, out, sizeof(out));
    CHECK_CONTAINS(out, "disk image loaded");
    /* the files on the host are equal */
    {
        int fa = open(pa.disk, O_RDONLY | O_CLOEXEC), fb = open(pb.disk, O_RDONLY | O_CLOEXEC);

        CHECK_INT(pread(fa, buf_a, DISK, 0), DISK);
        CHECK_INT(pread(fb, buf_b, DISK, 0), DISK);
        CHECK(memcmp(buf_a, buf_b, DISK) == 0);
        close(fa);
        close(fb);
    }
    CHECK(!scratch_left(pb.dir));
    tb_proc_cleanup(&pa);
    tb_proc_cleanup(&pb);
}

/* guestabi state CMD --from FROM --to TO: its exit status, its output in out. */
static int state_cmd(const char *cmd, const char *from, const char *to, char *out, size_t size)
{
    const char *args[] = {"state", cmd, "--from", from, "--to", to, NULL};
    int st =
        child_run(child_argv(child_binary("src/cli/guestabi"), args, NULL, NULL, -1), out, size);

    printf("# guestabi state %s: exit %d\n", cmd, st);
    for (const char *l = out; *l;) {
        size_t n = strcspn(l, "\n");

        printf("#   %.*s\n", (int)n, l);
        l += n + (l[n] == '\n');
    }
    return st;
}

/* Write fill(seed) into the back-end at sock, then disconnect (as a stopped VM does). */
static int fill_through(const char *sock, uint32_t seed)
{
    struct tb_guest g;
    int r;

    if (tb_connect(&g, sock, ALL, 1, 256, 0) < 0)
        return -EIO;
    r = fill(&g, seed);
    tb_disconnect(&g);
    return r;
}

/* Whether the back-end at sock holds fill(seed). */
static bool holds_through(const char *sock, uint32_t seed)
{
    struct tb_guest g;
    bool ok;

    if (tb_connect(&g, sock, ALL, 1, 256, 0) < 0)
        return false;
    ok = holds(&g, seed);
    tb_disconnect(&g);
    return ok;
}

/* `guestabi state move|save|load` between guestabi-blk processes, our front-end as the guest
 * that writes and reads their disks: the commands as a host agent runs them, without QEMU. */
TEST(guestabi_state_commands_between_processes)
{
    struct tb_proc pa, pb, pc;
    char out[4096], saved[128], bad[128];
    struct stat st;
    int fd;

    REQUIRE(tb_proc_init(&pa) == 0 && tb_proc_init(&pb) == 0 && tb_proc_init(&pc) == 0);
    REQUIRE(tb_proc_start(&pa,
                          (const char *[]){"--socket", "@S", "--disk", "@D", "--size", "8M", NULL},
                          out, sizeof(out)) == 0);
    REQUIRE(tb_proc_start(&pb, (const char *[]){"--socket", "@S", "--ram", "8M", NULL}, out,
                          sizeof(out)) == 0);
    REQUIRE(tb_proc_start(&pc,
                          (const char *[]){"--socket", "@S", "--disk", "@D", "--size", "8M", NULL},
                          out, sizeof(out)) == 0);
    REQUIRE(fill_through(pa.sock, 600) == 0);
    REQUIRE(fill_through(pb.sock, 650) == 0); /* B's own data, replaced by the move */

    /* move: A's disk into B */
    CHECK_INT(state_cmd("move", pa.sock, pb.sock, out, sizeof(out)), 0);
    CHECK_CONTAINS(out, "CHECK_DEVICE_STATE: success");
    CHECK(holds_through(pb.sock, 600));
    CHECK(holds_through(pa.sock, 600)); /* the source keeps its disk */

    /* save: B's disk into a file of the header, the disk and the trailer */
    snprintf(saved, sizeof(saved), "%s/saved.stream", pc.dir);
    snprintf(bad, sizeof(bad), "%s/bad.stream", pc.dir);
    CHECK_INT(state_cmd("save", pb.sock, saved, out, sizeof(out)), 0);
    CHECK_CONTAINS(out, "CHECK_DEVICE_STATE: success");
    REQUIRE(stat(saved, &st) == 0);
    CHECK_INT(st.st_size, DISK + STREAM);

    /* load: into C, which held data of its own */
    REQUIRE(fill_through(pc.sock, 700) == 0);
    CHECK_INT(state_cmd("load", saved, pc.sock, out, sizeof(out)), 0);
    CHECK_CONTAINS(out, "CHECK_DEVICE_STATE: success");
    CHECK(holds_through(pc.sock, 600));

    /* a stream with one payload byte changed (its CRC no longer matches) is refused by C,
     * whose disk (other data again) stays as it was */
    REQUIRE(fill_through(pc.sock, 800) == 0);
    {
        int in = open(saved, O_RDONLY | O_CLOEXEC);
        const off_t at = GABI_VHOST_STATE_HEADER_SIZE + 3 * MIB + 5; /* in fill()'s data */
        uint8_t byte;
        ssize_t n;

        fd = open(bad, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        REQUIRE(in >= 0 && fd >= 0);
        while ((n = read(in, buf_a, sizeof(buf_a))) > 0)
            REQUIRE(write(fd, buf_a, (size_t)n) == n);
        close(in);
        REQUIRE(pread(fd, &byte, 1, at) == 1);
        byte ^= 0x5a;
        REQUIRE(pwrite(fd, &byte, 1, at) == 1);
        close(fd);
    }
    CHECK_INT(state_cmd("load", bad, pc.sock, out, sizeof(out)), 1);
    CHECK_CONTAINS(out, "CHECK_DEVICE_STATE: the load failed: 12 (bad-checksum)");
    CHECK_CONTAINS(out, "REFUSED");
    CHECK(holds_through(pc.sock, 800));
    CHECK(!holds_through(pc.sock, 600));

    unlink(saved);
    unlink(bad);
    CHECK_INT(tb_proc_stop(&pa), 0);
    CHECK_INT(tb_proc_stop(&pb), 0);
    CHECK_INT(tb_proc_stop(&pc), 0);
    tb_proc_log(&pc, out, sizeof(out));
    CHECK_CONTAINS(out, "disk image loaded");
    tb_proc_cleanup(&pa);
    tb_proc_cleanup(&pb);
    tb_proc_cleanup(&pc);
}

TAP_MAIN()
