/* SPDX-License-Identifier: MIT */
/*
 * The device-state stream and its transfer: CRC32C against published vectors, the header
 * byte by byte, round trips through real pipes and socketpairs (O_NONBLOCK, driven by a poll
 * loop here) from memory, files and callbacks into memory, files and callbacks, and every
 * failure a reader can meet, each with the sink never seeing commit.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <guestabi/vhost_state.h>

#include <guestabi/util.h>
#include "tap.h"
#include "vhost/state_internal.h"

#define MiB        (1024 * 1024)
#define POLL_LIMIT 20000 /* ms without any progress before a test calls it stuck */

/* ---- data ------------------------------------------------------------------------------- */

static void pattern(uint8_t *buf, size_t size, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;

    for (size_t i = 0; i < size; i++) {
        if (i % 8 == 0) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        buf[i] = (uint8_t)(x >> (8 * (i % 8)));
    }
}

static uint8_t *pattern_new(size_t size, uint64_t seed)
{
    uint8_t *p = malloc(size ? size : 1);

    if (p)
        pattern(p, size, seed);
    return p;
}

/* A memfd ("RAM disk") or a regular temporary file holding buf. */
static int file_with(const uint8_t *buf, size_t size, bool regular)
{
    int fd;

    if (regular) {
        const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

        fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0) {
            char path[4096];

            snprintf(path, sizeof(path), "%s/test_vhost_state.XXXXXX", dir);
            fd = mkstemp(path);
            if (fd >= 0)
                unlink(path);
        }
    } else {
        fd = memfd_create("state", MFD_CLOEXEC);
    }
    if (fd < 0)
        return -1;
    for (size_t done = 0; done < size;) {
        ssize_t n = write(fd, buf + done, size - done);

        if (n <= 0) {
            close(fd);
            return -1;
        }
        done += (size_t)n;
    }
    return fd;
}

static bool file_equals(int fd, uint64_t off, const uint8_t *buf, size_t size)
{
    uint8_t *got = malloc(size ? size : 1);
    bool same;

    same = got && pread(fd, got, size, (off_t)off) == (ssize_t)size && memcmp(got, buf, size) == 0;
    free(got);
    return same;
}

/* ---- a source --------------------------------------------------------------------------- */

enum src_kind { SRC_MEMORY, SRC_COPY, SRC_FILE };

struct source {
    enum src_kind kind;
    const uint8_t *mem;
    int fd;            /* SRC_FILE */
    uint64_t file_off; /* where the payload starts in fd */
    size_t seg_max;    /* 0: no limit */
    int64_t fail_at;   /* get fails once offset >= this; -1 never */
    size_t lie_size;   /* SRC_FILE: claim this many more bytes than asked (past EOF) */
    unsigned n_get;
};

static int source_get(void *userdata, uint64_t offset, size_t max, void *scratch,
                      size_t scratch_size, struct gabi_vhost_state_seg *ret,
                      struct gabi_error *reterr)
{
    struct source *s = userdata;
    size_t n = max;

    s->n_get++;
    if (s->fail_at >= 0 && offset >= (uint64_t)s->fail_at)
        return gabi_error_set(reterr, -EIO, NULL, "disk image unreadable at %llu",
                              (unsigned long long)offset);
    if (s->seg_max && n > s->seg_max)
        n = s->seg_max;
    switch (s->kind) {
    case SRC_MEMORY:
        *ret = (struct gabi_vhost_state_seg){
            .type = GABI_VHOST_STATE_SEG_MEMORY, .mem = (void *)(s->mem + offset), .size = n};
        break;
    case SRC_COPY:
        n = MIN(n, scratch_size);
        memcpy(scratch, s->mem + offset, n);
        *ret = (struct gabi_vhost_state_seg){
            .type = GABI_VHOST_STATE_SEG_COPY, .mem = scratch, .size = n};
        break;
    case SRC_FILE:
        *ret = (struct gabi_vhost_state_seg){.type = GABI_VHOST_STATE_SEG_FILE,
                                             .fd = s->fd,
                                             .offset = s->file_off + offset + s->lie_size,
                                             .size = n};
        break;
    }
    return 0;
}

static const struct gabi_vhost_state_source_ops source_ops = {.get = source_get};

/* ---- a sink ----------------------------------------------------------------------------- */

enum sink_kind { SINK_MEMORY, SINK_COPY, SINK_FILE, SINK_MIXED };

struct sink {
    enum sink_kind kind;
    const char *versions; /* accepted state versions, ","-separated */
    int fd;               /* SINK_FILE, SINK_MIXED */
    uint64_t file_off;
    size_t mixed_mem; /* SINK_MIXED: the first bytes go to memory */
    int64_t fail_write_at;
    bool fail_begin, fail_commit;
    unsigned n_accept, n_begin, n_commit, n_abort, n_write; /* n_commit: successful ones */
    uint8_t *scratch; /* begin allocates, abort frees, commit makes it live */
    size_t scratch_size;
    uint8_t *live;
    size_t live_size;
};

static void sink_init(struct sink *k, enum sink_kind kind)
{
    memset(k, 0, sizeof(*k));
    k->kind = kind;
    k->versions = "1,2,5.3";
    k->fd = -1;
    k->fail_write_at = -1;
}

static void sink_done(struct sink *k)
{
    free(k->scratch);
    free(k->live);
}

static int sink_accept(void *userdata, const struct gabi_vhost_state_info *info,
                       struct gabi_error *reterr)
{
    struct sink *k = userdata;
    char list[64];

    k->n_accept++;
    snprintf(list, sizeof(list), ",%s,", k->versions);
    for (const char *p = strstr(list, info->state_version); p;
         p = strstr(p + 1, info->state_version))
        if (p[-1] == ',' && p[strlen(info->state_version)] == ',')
            return 0;
    return gabi_error_set(reterr, -ENOTSUP, NULL, "it loads versions %s", k->versions);
}

static int sink_begin(void *userdata, const struct gabi_vhost_state_info *info,
                      struct gabi_error *reterr)
{
    struct sink *k = userdata;

    k->n_begin++;
    if (k->fail_begin)
        return gabi_error_set(reterr, -ENOSPC, NULL, "no room for the scratch area");
    k->scratch = calloc(1, info->payload_size ? info->payload_size : 1);
    k->scratch_size = info->payload_size;
    return k->scratch ? 0 : -ENOMEM;
}

static int sink_dest(void *userdata, uint64_t offset, size_t max, struct gabi_vhost_state_seg *ret,
                     struct gabi_error *reterr)
{
    struct sink *k = userdata;

    switch (k->kind) {
    case SINK_MEMORY:
        *ret = (struct gabi_vhost_state_seg){
            .type = GABI_VHOST_STATE_SEG_MEMORY, .mem = k->scratch + offset, .size = max};
        return 0;
    case SINK_FILE:
        *ret = (struct gabi_vhost_state_seg){.type = GABI_VHOST_STATE_SEG_FILE,
                                             .fd = k->fd,
                                             .offset = k->file_off + offset,
                                             .size = max};
        return 0;
    case SINK_MIXED:
        if (offset < k->mixed_mem)
            *ret = (struct gabi_vhost_state_seg){.type = GABI_VHOST_STATE_SEG_MEMORY,
                                                 .mem = k->scratch + offset,
                                                 .size = MIN(max, k->mixed_mem - offset)};
        else
            *ret = (struct gabi_vhost_state_seg){.type = GABI_VHOST_STATE_SEG_FILE,
                                                 .fd = k->fd,
                                                 .offset = k->file_off + offset,
                                                 .size = max};
        return 0;
    case SINK_COPY:
    default:
        return gabi_error_set(reterr, -EINVAL, NULL, "no dest for copy sinks");
    }
}

static int sink_write(void *userdata, uint64_t offset, const void *buf, size_t size,
                      struct gabi_error *reterr)
{
    struct sink *k = userdata;

    k->n_write++;
    if (k->fail_write_at >= 0 && offset + size > (uint64_t)k->fail_write_at)
        return gabi_error_set(reterr, -EIO, NULL, "scratch area write error at %llu",
                              (unsigned long long)offset);
    if (offset + size > k->scratch_size)
        return gabi_error_set(reterr, -EINVAL, NULL, "write beyond the payload");
    memcpy(k->scratch + offset, buf, size);
    return 0;
}

static int sink_commit(void *userdata, struct gabi_error *reterr)
{
    struct sink *k = userdata;

    if (k->fail_commit)
        return gabi_error_set(reterr, -EIO, NULL, "the device rejected the state");
    k->n_commit++;
    free(k->live);
    k->live = k->scratch;
    k->live_size = k->scratch_size;
    k->scratch = NULL;
    return 0;
}

static void sink_abort(void *userdata)
{
    struct sink *k = userdata;

    k->n_abort++;
    free(k->scratch);
    k->scratch = NULL;
}

static const struct gabi_vhost_state_sink_ops sink_ops = {
    .accept = sink_accept,
    .begin = sink_begin,
    .dest = sink_dest,
    .write = sink_write,
    .commit = sink_commit,
    .abort = sink_abort,
};

static const struct gabi_vhost_state_sink_ops copy_sink_ops = {
    .accept = sink_accept,
    .begin = sink_begin,
    .write = sink_write,
    .commit = sink_commit,
    .abort = sink_abort,
};

/* ---- the event loop --------------------------------------------------------------------- */

/* Raw bytes written into a channel, then closed (for crafted streams). */
struct feeder {
    int fd;
    const uint8_t *buf;
    size_t size, done;
};

struct run {
    int writer_rc, reader_rc;
    struct gabi_error writer_err, reader_err;
    bool stuck;
};

/* Drive writer or feeder and reader from one poll loop until all of them finished. */
static void drive(struct gabi_vhost_state_writer *w, struct feeder *f,
                  struct gabi_vhost_state_reader *r, struct run *run)
{
    memset(run, 0, sizeof(*run));
    run->writer_rc = run->reader_rc = 1;
    for (;;) {
        struct pollfd p[3];
        int n = 0, iw = -1, ifd = -1, ir = -1;

        if (w && gabi_vhost_state_writer_get_events(w)) {
            iw = n;
            p[n++] = (struct pollfd){gabi_vhost_state_writer_get_fd(w),
                                     (short)gabi_vhost_state_writer_get_events(w), 0};
        }
        if (f && f->fd >= 0) {
            ifd = n;
            p[n++] = (struct pollfd){f->fd, POLLOUT, 0};
        }
        if (r && gabi_vhost_state_reader_get_events(r)) {
            ir = n;
            p[n++] = (struct pollfd){gabi_vhost_state_reader_get_fd(r),
                                     (short)gabi_vhost_state_reader_get_events(r), 0};
        }
        if (n == 0)
            break;
        if (poll(p, (nfds_t)n, POLL_LIMIT) <= 0) {
            run->stuck = true;
            return;
        }
        if (iw >= 0 && p[iw].revents)
            run->writer_rc = gabi_vhost_state_writer_process(w, &run->writer_err);
        if (ifd >= 0 && p[ifd].revents) {
            ssize_t k = write(f->fd, f->buf + f->done, f->size - f->done);

            if (k > 0)
                f->done += (size_t)k;
            if ((k < 0 && errno != EAGAIN) || f->done == f->size)
                close_and_clear(&f->fd);
        }
        if (ir >= 0 && p[ir].revents)
            run->reader_rc = gabi_vhost_state_reader_process(r, &run->reader_err);
    }
    if (w)
        run->writer_rc = gabi_vhost_state_writer_result(w, &run->writer_err);
    if (r)
        run->reader_rc = gabi_vhost_state_reader_result(r, &run->reader_err);
}

static int channel(int ret[2], bool socket)
{
    if (socket)
        return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ret);
    return pipe2(ret, O_CLOEXEC);
}

/* ---- CRC32C ----------------------------------------------------------------------------- */

TEST(crc32c_published_vectors)
{
    uint8_t buf[32];

    CHECK_INT(gabi_vhost_state_crc32c(0, "123456789", 9), 0xE3069283u);
    CHECK_INT(gabi_vhost_state_crc32c(0, "", 0), 0);
    /* RFC 3720 B.4 */
    memset(buf, 0, sizeof(buf));
    CHECK_INT(gabi_vhost_state_crc32c(0, buf, sizeof(buf)), 0x8A9136AAu);
    memset(buf, 0xff, sizeof(buf));
    CHECK_INT(gabi_vhost_state_crc32c(0, buf, sizeof(buf)), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    CHECK_INT(gabi_vhost_state_crc32c(0, buf, sizeof(buf)), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)(31 - i);
    CHECK_INT(gabi_vhost_state_crc32c(0, buf, sizeof(buf)), 0x113FDB5Cu);
    CHECK_INT(state_crc32c_sw(0, "123456789", 9), 0xE3069283u);
    printf("# CRC32C uses %s\n", state_crc32c_fold()
                                     ? "AVX-512 VPCLMULQDQ folding and the SSE4.2 instruction"
                                 : state_crc32c_hw() ? "the SSE4.2 instruction"
                                                     : "tables");
}

TEST(crc32c_fast_path_matches_tables_and_chains)
{
    size_t size = 3 * 8192 * 2 + 3 * 256 * 3 + 77;
    uint8_t *buf = pattern_new(size + 8, 7);
    size_t lens[] = {0,
                     1,
                     7,
                     8,
                     9,
                     255,
                     767,
                     768,
                     769,
                     3 * 8192 - 1,
                     3 * 8192,
                     3 * 8192 + 1,
                     3 * 8192 + 3 * 256 + 5,
                     1023, /* folding: from 1024 bytes, 256 a round */
                     1024,
                     1025,
                     1024 + 255,
                     1024 + 256,
                     1024 + 256 + 16 + 3,
                     size};

    REQUIRE(buf);
    for (size_t a = 0; a < 8; a++)
        for (size_t i = 0; i < ARRAY_SIZE(lens); i++) {
            uint32_t fast = gabi_vhost_state_crc32c(0, buf + a, lens[i]);
            uint32_t slow = state_crc32c_sw(0, buf + a, lens[i]);
            size_t cut = lens[i] / 3;

            if (fast != slow)
                TAP_FAIL("align %zu len %zu: 0x%08x != 0x%08x", a, lens[i], fast, slow);
            if (state_crc32c_sse42(0, buf + a, lens[i]) != slow)
                TAP_FAIL("align %zu len %zu: the crc32 instruction alone differs", a, lens[i]);
            if (gabi_vhost_state_crc32c(gabi_vhost_state_crc32c(0, buf + a, cut), buf + a + cut,
                                        lens[i] - cut) != fast)
                TAP_FAIL("align %zu len %zu: chaining at %zu differs", a, lens[i], cut);
        }
    free(buf);
}

/* ---- header ----------------------------------------------------------------------------- */

static struct gabi_vhost_state_info info_of(const char *type, const char *version, uint64_t size)
{
    struct gabi_vhost_state_info info = {0};

    gabi_strlcpy(info.device_type, type, sizeof(info.device_type));
    gabi_strlcpy(info.state_version, version, sizeof(info.state_version));
    info.payload_size = size;
    return info;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void reseal(uint8_t *h)
{
    put32(h + 124, gabi_vhost_state_crc32c(0, h, 124));
}

TEST(header_layout_byte_by_byte)
{
    struct gabi_vhost_state_info info = info_of("guestabi-blk", "5.3", 0x0102030405060708ull);
    struct gabi_vhost_state_info back;
    uint8_t h[128], zero[44] = {0};
    uint32_t crc;

    REQUIRE(gabi_vhost_state_header_encode(&info, h, NULL) == 0);
    CHECK(memcmp(h, "GABISTAT", 8) == 0);
    CHECK(h[8] == 1 && h[9] == 0);     /* format version 1 */
    CHECK(h[10] == 128 && h[11] == 0); /* header size */
    for (int i = 12; i < 24; i++)      /* flags, reserved */
        CHECK_INT(h[i], 0);
    for (int i = 0; i < 8; i++) /* payload size, little-endian */
        CHECK_INT(h[24 + i], 8 - i);
    CHECK(memcmp(h + 32, "guestabi-blk\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 32) == 0);
    CHECK(memcmp(h + 64, "5.3\0\0\0\0\0\0\0\0\0\0\0\0\0", 16) == 0);
    CHECK(memcmp(h + 80, zero, 44) == 0);
    crc =
        (uint32_t)h[124] | (uint32_t)h[125] << 8 | (uint32_t)h[126] << 16 | (uint32_t)h[127] << 24;
    CHECK_INT(crc, state_crc32c_sw(0, h, 124));
    CHECK_INT(gabi_vhost_state_header_parse(h, sizeof(h), &back, NULL, NULL), 128);
    CHECK_STR(back.device_type, "guestabi-blk");
    CHECK_STR(back.state_version, "5.3");
    CHECK(back.payload_size == 0x0102030405060708ull);
}

static enum gabi_vhost_state_outcome parse_outcome(const uint8_t *h, size_t size, char *msg,
                                                   size_t msg_size)
{
    enum gabi_vhost_state_outcome o = GABI_VHOST_STATE_PENDING;
    struct gabi_vhost_state_info info;
    struct gabi_error err = {0};

    if (gabi_vhost_state_header_parse(h, size, &info, &o, &err) >= 0)
        return GABI_VHOST_STATE_SUCCEEDED;
    gabi_strlcpy(msg, err.message, msg_size);
    if (err.code >= 0 || !err.message[0])
        TAP_FAIL("a refusal without code or message");
    return o;
}

TEST(header_refusals_name_the_check)
{
    struct gabi_vhost_state_info info = info_of("guestabi-net", "2", 4096);
    uint8_t good[128], h[128 + 8];
    char msg[1024];

    REQUIRE(gabi_vhost_state_header_encode(&info, good, NULL) == 0);

    memcpy(h, good, 128);
    memcpy(h, "QEMU\0\0\0\3", 8);
    CHECK_INT(parse_outcome(h, 128, msg, sizeof(msg)), GABI_VHOST_STATE_BAD_MAGIC);
    CHECK_CONTAINS(msg, "not a guestabi device-state stream");
    CHECK_CONTAINS(msg, "QEMU\\x00");
    /* three bytes are enough to tell */
    CHECK_INT(parse_outcome((const uint8_t *)"GAX", 3, msg, sizeof(msg)),
              GABI_VHOST_STATE_BAD_MAGIC);

    memcpy(h, good, 128);
    h[40] ^= 0x20; /* a flipped bit in the device type */
    CHECK_INT(parse_outcome(h, 128, msg, sizeof(msg)), GABI_VHOST_STATE_BAD_HEADER_CHECKSUM);
    CHECK_CONTAINS(msg, "header checksum mismatch");

    memcpy(h, good, 128);
    h[8] = 2;
    reseal(h);
    CHECK_INT(parse_outcome(h, 128, msg, sizeof(msg)), GABI_VHOST_STATE_UNSUPPORTED_FORMAT);
    CHECK_CONTAINS(msg, "format version 2");

    memcpy(h, good, 128);
    h[12] = 0x04; /* an incompatible flag nobody defined */
    reseal(h);
    CHECK_INT(parse_outcome(h, 128, msg, sizeof(msg)), GABI_VHOST_STATE_UNSUPPORTED_FORMAT);
    CHECK_CONTAINS(msg, "incompatible flags 0x4");

    memcpy(h, good, 128);
    h[16] = 0x04; /* a compatible flag nobody defined: fine */
    reseal(h);
    CHECK_INT(parse_outcome(h, 128, msg, sizeof(msg)), GABI_VHOST_STATE_SUCCEEDED);

    memcpy(h, good, 128);
    h[10] = 100;
    CHECK_INT(parse_outcome(h, 128, msg, sizeof(msg)), GABI_VHOST_STATE_BAD_HEADER);
    CHECK_CONTAINS(msg, "header size 100");

    memcpy(h, good, 128);
    h[32 + 20] = 'x'; /* garbage after the name's NUL */
    reseal(h);
    CHECK_INT(parse_outcome(h, 128, msg, sizeof(msg)), GABI_VHOST_STATE_BAD_HEADER);
    CHECK_CONTAINS(msg, "device type");

    memcpy(h, good, 128);
    memcpy(h + 64, "1 2", 3); /* a space */
    reseal(h);
    CHECK_INT(parse_outcome(h, 128, msg, sizeof(msg)), GABI_VHOST_STATE_BAD_HEADER);
    CHECK_CONTAINS(msg, "state version \"1 2\"");

    memcpy(h, good, 128);
    memset(h + 32, 0, 32); /* empty type */
    reseal(h);
    CHECK_INT(parse_outcome(h, 128, msg, sizeof(msg)), GABI_VHOST_STATE_BAD_HEADER);

    CHECK_INT(parse_outcome(good, 100, msg, sizeof(msg)), GABI_VHOST_STATE_TRUNCATED);
    CHECK_CONTAINS(msg, "100 of 128 header bytes");

    /* a longer header (a later compatible extension) parses, its checksum at its end */
    memcpy(h, good, 128);
    memset(h + 124, 0, 12);
    h[10] = 136;
    put32(h + 132, gabi_vhost_state_crc32c(0, h, 132));
    CHECK_INT(gabi_vhost_state_header_parse(h, 136, &info, NULL, NULL), 136);
}

TEST(header_encode_refuses_bad_names)
{
    struct gabi_vhost_state_info info = info_of("guestabi-blk", "1", 0);
    struct gabi_error err = {0};
    uint8_t h[128];

    CHECK_INT(gabi_vhost_state_header_encode(&info, h, &err), 0);
    info.device_type[0] = '\0';
    CHECK_INT(gabi_vhost_state_header_encode(&info, h, &err), -EINVAL);
    CHECK_CONTAINS(err.message, "device type");
    info = info_of("guestabi-blk", "1.0 beta", 0);
    CHECK_INT(gabi_vhost_state_header_encode(&info, h, &err), -EINVAL);
    CHECK_CONTAINS(err.message, "state version");
    CHECK_STR(gabi_vhost_state_outcome_name(GABI_VHOST_STATE_BAD_CHECKSUM), "bad-checksum");
    CHECK(gabi_vhost_state_outcome_name(GABI_VHOST_STATE_OUTCOME_COUNT) == NULL);
    for (int o = 0; o < GABI_VHOST_STATE_OUTCOME_COUNT; o++)
        CHECK(gabi_vhost_state_outcome_name((enum gabi_vhost_state_outcome)o) != NULL);
}

/* ---- round trips ------------------------------------------------------------------------ */

struct trip {
    enum src_kind src;
    bool src_regular; /* SRC_FILE: a regular file, not a memfd */
    enum sink_kind sink;
    bool sink_write_only; /* SINK_FILE opened O_WRONLY: no mapping, so no splicing */
    bool socket;
    size_t size;
    size_t seg_max;
};

struct trip_result {
    struct gabi_vhost_state_stats ws, rs;
    bool intact;
};

static void round_trip(const struct trip *t, struct trip_result *res)
{
    uint8_t *data = pattern_new(t->size, t->size + t->src);
    struct source src = {
        .kind = t->src, .mem = data, .fd = -1, .fail_at = -1, .seg_max = t->seg_max};
    struct gabi_vhost_state_writer *w = NULL;
    struct gabi_vhost_state_reader *r = NULL;
    struct gabi_error err = {0};
    struct sink k;
    struct run run;
    int ch[2], verify_fd = -1;

    memset(res, 0, sizeof(*res));
    sink_init(&k, t->sink);
    REQUIRE(data);
    if (t->src == SRC_FILE) {
        src.fd = file_with(data, t->size, t->src_regular);
        REQUIRE(src.fd >= 0);
    }
    if (t->sink == SINK_FILE || t->sink == SINK_MIXED) {
        k.fd = file_with(NULL, 0, true);
        REQUIRE(k.fd >= 0);
        k.file_off = 4096; /* the payload lands at an offset of the device's file */
        if (t->sink_write_only) {
            char path[64];
            int wo;

            snprintf(path, sizeof(path), "/proc/self/fd/%d", k.fd);
            wo = open(path, O_WRONLY | O_CLOEXEC);
            REQUIRE(wo >= 0);
            verify_fd = k.fd;
            k.fd = wo;
        }
        k.mixed_mem = 3000;
    }
    REQUIRE(channel(ch, t->socket) == 0);
    REQUIRE(gabi_vhost_state_writer_new(ch[1], "guestabi-blk", "2", t->size, &source_ops, &src, &w,
                                        &err) == 0);
    REQUIRE(gabi_vhost_state_reader_new(ch[0], "guestabi-blk", 0,
                                        t->sink == SINK_COPY ? &copy_sink_ops : &sink_ops, &k, &r,
                                        &err) == 0);
    drive(w, NULL, r, &run);
    CHECK(!run.stuck);
    CHECK_INT(run.writer_rc, 0);
    CHECK_INT(run.reader_rc, 0);
    if (run.reader_rc)
        TAP_FAIL("reader: %s", run.reader_err.message);
    if (run.writer_rc)
        TAP_FAIL("writer: %s", run.writer_err.message);
    CHECK_INT(gabi_vhost_state_reader_outcome(r), GABI_VHOST_STATE_SUCCEEDED);
    CHECK_INT(gabi_vhost_state_writer_outcome(w), GABI_VHOST_STATE_SUCCEEDED);
    CHECK_INT(gabi_vhost_state_writer_get_fd(w), -1);
    CHECK_INT(gabi_vhost_state_reader_get_fd(r), -1);
    CHECK(gabi_vhost_state_reader_get_info(r) &&
          gabi_vhost_state_reader_get_info(r)->payload_size == t->size);
    CHECK_INT(k.n_accept, 1);
    CHECK_INT(k.n_begin, 1);
    CHECK_INT(k.n_commit, 1);
    CHECK_INT(k.n_abort, 0);
    gabi_vhost_state_writer_get_stats(w, &res->ws);
    gabi_vhost_state_reader_get_stats(r, &res->rs);
    CHECK(res->ws.bytes == t->size + 128 + 16);
    CHECK(res->rs.bytes == t->size + 128 + 16);
    CHECK(res->ws.spliced + res->ws.vmspliced + res->ws.copied == t->size);
    CHECK(res->rs.spliced + res->rs.vmspliced + res->rs.copied == t->size);
    switch (t->sink) {
    case SINK_MEMORY:
    case SINK_COPY:
        res->intact = k.live && k.live_size == t->size && memcmp(k.live, data, t->size) == 0;
        break;
    case SINK_FILE:
        res->intact = file_equals(verify_fd >= 0 ? verify_fd : k.fd, k.file_off, data, t->size);
        break;
    case SINK_MIXED:
        res->intact =
            k.live && memcmp(k.live, data, MIN(t->size, k.mixed_mem)) == 0 &&
            (t->size <= k.mixed_mem || file_equals(k.fd, k.file_off + k.mixed_mem,
                                                   data + k.mixed_mem, t->size - k.mixed_mem));
        break;
    }
    CHECK(res->intact);
    gabi_vhost_state_writer_free(w);
    gabi_vhost_state_reader_free(r);
    close_and_clear(&src.fd);
    close_and_clear(&k.fd);
    close_and_clear(&verify_fd);
    sink_done(&k);
    free(data);
}

TEST(round_trip_small_and_empty)
{
    struct trip_result res;
    size_t sizes[] = {0, 1, 1000, 70000};

    for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
        round_trip(&(struct trip){.src = SRC_MEMORY, .sink = SINK_MEMORY, .size = sizes[i]}, &res);
        round_trip(&(struct trip){.src = SRC_COPY, .sink = SINK_COPY, .size = sizes[i]}, &res);
        round_trip(
            &(struct trip){.src = SRC_COPY, .sink = SINK_MEMORY, .size = sizes[i], .socket = true},
            &res);
    }
}

TEST(round_trip_memory_is_vmspliced)
{
    struct trip_result res;

    round_trip(&(struct trip){.src = SRC_MEMORY, .sink = SINK_MEMORY, .size = 6 * MiB + 123}, &res);
    CHECK(res.ws.vmspliced == 6 * MiB + 123);
    CHECK(res.rs.copied == 6 * MiB + 123); /* read straight into the device's memory */
    CHECK(res.ws.pipe_size >= 65536);
    printf("# pipe grown to %d bytes\n", res.ws.pipe_size);
    /* many small segments */
    round_trip(&(struct trip){.src = SRC_MEMORY, .sink = SINK_MEMORY, .size = MiB, .seg_max = 4093},
               &res);
    CHECK(res.ws.vmspliced == MiB);
}

TEST(round_trip_files_are_spliced)
{
    struct trip_result res;

    /* a memfd "RAM disk" into a regular file */
    round_trip(&(struct trip){.src = SRC_FILE, .sink = SINK_FILE, .size = 5 * MiB + 5}, &res);
    CHECK(res.ws.spliced == 5 * MiB + 5);
    CHECK(res.rs.spliced == 5 * MiB + 5);
    /* a regular file, in segments that do not fall on page boundaries */
    round_trip(&(struct trip){.src = SRC_FILE,
                              .src_regular = true,
                              .sink = SINK_FILE,
                              .size = 3 * MiB,
                              .seg_max = 100003},
               &res);
    CHECK(res.ws.spliced == 3 * MiB);
    CHECK(res.rs.spliced == 3 * MiB);
    /* a file into the device's memory and into a callback */
    round_trip(&(struct trip){.src = SRC_FILE, .sink = SINK_MEMORY, .size = 2 * MiB}, &res);
    CHECK(res.ws.spliced == 2 * MiB);
    round_trip(&(struct trip){.src = SRC_FILE, .sink = SINK_COPY, .size = 2 * MiB}, &res);
    CHECK(res.rs.copied == 2 * MiB);
    /* part memory, part file */
    round_trip(&(struct trip){.src = SRC_MEMORY, .sink = SINK_MIXED, .size = 2 * MiB}, &res);
    CHECK(res.rs.spliced == 2 * MiB - 3000);
}

TEST(round_trip_fallbacks_copy)
{
    struct trip_result res;

    /* a write-only sink file cannot be read back to checksum what was spliced: copied */
    round_trip(
        &(struct trip){
            .src = SRC_FILE, .sink = SINK_FILE, .sink_write_only = true, .size = 2 * MiB + 1},
        &res);
    CHECK(res.rs.spliced == 0);
    CHECK(res.rs.copied == 2 * MiB + 1);
    /* sockets take no splice: write() from the mapping, read() into the file */
    round_trip(&(struct trip){.src = SRC_FILE, .sink = SINK_FILE, .socket = true, .size = 3 * MiB},
               &res);
    CHECK(res.ws.copied == 3 * MiB);
    CHECK(res.rs.copied == 3 * MiB);
    CHECK_INT(res.ws.pipe_size, 0);
    round_trip(
        &(struct trip){.src = SRC_MEMORY, .sink = SINK_MEMORY, .socket = true, .size = 3 * MiB},
        &res);
    CHECK(res.ws.vmspliced == 0);
    CHECK(res.ws.copied == 3 * MiB);
}

/* ---- failures --------------------------------------------------------------------------- */

/* A stream built by hand: header, payload, trailer (as docs/state-stream.md says). */
static uint8_t *stream_build(const char *type, const char *version, uint64_t declared,
                             const uint8_t *payload, size_t size, size_t *ret_len)
{
    struct gabi_vhost_state_info info = info_of(type, version, declared);
    uint8_t *s = malloc(128 + size + 16);
    uint8_t *t;

    if (!s || gabi_vhost_state_header_encode(&info, s, NULL) < 0)
        abort();
    memcpy(s + 128, payload, size);
    t = s + 128 + size;
    memcpy(t, "GABI-END", 8);
    put32(t + 8, state_crc32c_sw(0, payload, size));
    put32(t + 12, state_crc32c_sw(0, t, 12));
    *ret_len = 128 + size + 16;
    return s;
}

struct fed {
    enum gabi_vhost_state_outcome outcome;
    int rc;
    struct gabi_error err;
    struct sink k;
};

/* Feed bytes into a pipe (closing it after them), read them with a sink of `kind`. */
static void feed(const uint8_t *bytes, size_t len, const char *type, uint64_t max, struct sink *k,
                 struct fed *res)
{
    struct gabi_vhost_state_reader *r = NULL;
    struct feeder f = {.buf = bytes, .size = len};
    struct run run;
    int ch[2];

    memset(res, 0, sizeof(*res));
    REQUIRE(pipe2(ch, O_CLOEXEC | O_NONBLOCK) == 0);
    f.fd = ch[1];
    REQUIRE(gabi_vhost_state_reader_new(ch[0], type, max,
                                        k->kind == SINK_COPY ? &copy_sink_ops : &sink_ops, k, &r,
                                        NULL) == 0);
    drive(NULL, &f, r, &run);
    CHECK(!run.stuck);
    close_and_clear(&f.fd);
    res->rc = run.reader_rc;
    res->err = run.reader_err;
    res->outcome = gabi_vhost_state_reader_outcome(r);
    gabi_vhost_state_reader_free(r);
    res->k = *k;
    if (res->rc >= 0 || !res->err.message[0])
        TAP_FAIL("a failed reader must report a code and a message (%d)", res->rc);
    /* the destination stays clean: never committed, aborted iff it began */
    CHECK_INT(k->n_commit, 0);
    CHECK_INT(k->n_abort, k->fail_begin ? 0 : k->n_begin);
    CHECK(k->live == NULL);
    CHECK(k->scratch == NULL);
}

#define CHECK_FAILS(bytes, len, type, max, sink_kind, want_outcome, want_text)                     \
    do {                                                                                           \
        struct sink _k;                                                                            \
        struct fed _f;                                                                             \
        sink_init(&_k, sink_kind);                                                                 \
        feed(bytes, len, type, max, &_k, &_f);                                                     \
        if (_f.outcome != (want_outcome))                                                          \
            TAP_FAIL("outcome %s, expected %s (%s)", gabi_vhost_state_outcome_name(_f.outcome),    \
                     gabi_vhost_state_outcome_name(want_outcome), _f.err.message);                 \
        CHECK_CONTAINS(_f.err.message, want_text);                                                 \
        sink_done(&_k);                                                                            \
    } while (0)

TEST(reader_failures_before_the_payload)
{
    uint8_t *payload = pattern_new(5000, 1);
    size_t len;
    uint8_t *s = stream_build("guestabi-blk", "2", 5000, payload, 5000, &len);
    uint8_t *bad = malloc(len);
    struct sink k;
    struct fed f;

    REQUIRE(s && bad && payload);
    memcpy(bad, s, len);
    memcpy(bad,
           "\x7f"
           "ELF\2\1\1\0",
           8);
    CHECK_FAILS(bad, len, "guestabi-blk", 0, SINK_MEMORY, GABI_VHOST_STATE_BAD_MAGIC, "GABISTAT");

    memcpy(bad, s, len);
    bad[70] ^= 1;
    CHECK_FAILS(bad, len, "guestabi-blk", 0, SINK_MEMORY, GABI_VHOST_STATE_BAD_HEADER_CHECKSUM,
                "header checksum");

    memcpy(bad, s, len);
    bad[8] = 9;
    reseal(bad);
    CHECK_FAILS(bad, len, "guestabi-blk", 0, SINK_MEMORY, GABI_VHOST_STATE_UNSUPPORTED_FORMAT,
                "format version 9");

    CHECK_FAILS(s, len, "guestabi-net", 0, SINK_MEMORY, GABI_VHOST_STATE_WRONG_TYPE,
                "device type \"guestabi-blk\", this device is \"guestabi-net\"");

    /* the device's accept callback refuses the version, with its reason */
    sink_init(&k, SINK_MEMORY);
    k.versions = "1,5.3";
    feed(s, len, "guestabi-blk", 0, &k, &f);
    CHECK_INT(f.outcome, GABI_VHOST_STATE_REFUSED);
    CHECK_INT(f.rc, -ENOTSUP);
    CHECK_CONTAINS(f.err.message, "does not load guestabi-blk state version \"2\"");
    CHECK_CONTAINS(f.err.message, "it loads versions 1,5.3");
    CHECK_INT(k.n_accept, 1);
    CHECK_INT(k.n_begin, 0);
    sink_done(&k);

    CHECK_FAILS(s, len, NULL, 4999, SINK_MEMORY, GABI_VHOST_STATE_TOO_LARGE,
                "declares 5000 payload bytes, this device takes at most 4999");

    sink_init(&k, SINK_MEMORY);
    k.fail_begin = true;
    feed(s, len, "guestabi-blk", 0, &k, &f);
    CHECK_INT(f.outcome, GABI_VHOST_STATE_SINK);
    CHECK_CONTAINS(f.err.message, "no room for the scratch area");
    CHECK_INT(k.n_abort, 0); /* begin failed: nothing to abort */
    sink_done(&k);

    free(payload);
    free(s);
    free(bad);
}

TEST(reader_truncated_streams)
{
    uint8_t *payload = pattern_new(300000, 2);
    size_t len;
    uint8_t *s = stream_build("guestabi-blk", "1", 300000, payload, 300000, &len);

    REQUIRE(s && payload);
    CHECK_FAILS(s, 0, NULL, 0, SINK_MEMORY, GABI_VHOST_STATE_TRUNCATED, "empty");
    CHECK_FAILS(s, 5, NULL, 0, SINK_MEMORY, GABI_VHOST_STATE_TRUNCATED,
                "ended after 5 bytes, inside its 128-byte header");
    CHECK_FAILS(s, 100, NULL, 0, SINK_MEMORY, GABI_VHOST_STATE_TRUNCATED, "ended after 100 bytes");
    CHECK_FAILS(s, 128 + 1000, NULL, 0, SINK_MEMORY, GABI_VHOST_STATE_TRUNCATED,
                "after 1000 of 300000 payload bytes");
    CHECK_FAILS(s, 128 + 299999, NULL, 0, SINK_COPY, GABI_VHOST_STATE_TRUNCATED,
                "after 299999 of 300000 payload bytes");
    CHECK_FAILS(s, len - 11, NULL, 0, SINK_MEMORY, GABI_VHOST_STATE_TRUNCATED,
                "5 of the 16 trailer bytes");
    CHECK_FAILS(s, len - 1, NULL, 0, SINK_COPY, GABI_VHOST_STATE_TRUNCATED,
                "15 of the 16 trailer bytes");
    free(payload);
    free(s);
}

TEST(reader_oversize_and_damaged_streams)
{
    uint8_t *payload = pattern_new(200000, 3);
    size_t len, len2;
    uint8_t *s = stream_build("guestabi-blk", "1", 200000, payload, 200000, &len);
    /* declares 150000 bytes but carries 200000 */
    uint8_t *longer = stream_build("guestabi-blk", "1", 150000, payload, 200000, &len2);
    uint8_t *bad = malloc(len + 1);

    REQUIRE(s && longer && bad && payload);
    memcpy(bad, s, len);
    bad[len] = 0;
    CHECK_FAILS(bad, len + 1, NULL, 0, SINK_MEMORY, GABI_VHOST_STATE_OVERSIZE,
                "goes on after its declared end");
    CHECK_FAILS(longer, len2, NULL, 0, SINK_MEMORY, GABI_VHOST_STATE_OVERSIZE, "150000 payload");

    memcpy(bad, s, len);
    bad[128 + 123456] ^= 0x80; /* one bit of the payload */
    CHECK_FAILS(bad, len, NULL, 0, SINK_MEMORY, GABI_VHOST_STATE_BAD_CHECKSUM,
                "payload checksum mismatch");
    CHECK_FAILS(bad, len, NULL, 0, SINK_COPY, GABI_VHOST_STATE_BAD_CHECKSUM,
                "payload checksum mismatch");
    {
        /* spliced into a file, checksummed as read back */
        struct sink k;
        struct fed f;

        sink_init(&k, SINK_FILE);
        k.fd = file_with(NULL, 0, true);
        REQUIRE(k.fd >= 0);
        feed(bad, len, NULL, 0, &k, &f);
        CHECK_INT(f.outcome, GABI_VHOST_STATE_BAD_CHECKSUM);
        CHECK_CONTAINS(f.err.message, "payload checksum mismatch");
        close(k.fd);
        sink_done(&k);
    }

    memcpy(bad, s, len);
    bad[len - 16] = 'X'; /* the trailer's magic */
    CHECK_FAILS(bad, len, NULL, 0, SINK_MEMORY, GABI_VHOST_STATE_BAD_TRAILER, "trailer");
    memcpy(bad, s, len);
    bad[len - 1] ^= 1; /* the trailer's own checksum */
    CHECK_FAILS(bad, len, NULL, 0, SINK_MEMORY, GABI_VHOST_STATE_BAD_TRAILER, "trailer");

    free(payload);
    free(s);
    free(longer);
    free(bad);
}

TEST(reader_sink_failures)
{
    uint8_t *payload = pattern_new(400000, 4);
    size_t len;
    uint8_t *s = stream_build("guestabi-blk", "1", 400000, payload, 400000, &len);
    struct sink k;
    struct fed f;

    REQUIRE(s && payload);
    sink_init(&k, SINK_COPY);
    k.fail_write_at = 300000;
    feed(s, len, NULL, 0, &k, &f);
    CHECK_INT(f.outcome, GABI_VHOST_STATE_SINK);
    CHECK_INT(f.rc, -EIO);
    CHECK_CONTAINS(f.err.message, "could not store state bytes at offset");
    CHECK_CONTAINS(f.err.message, "scratch area write error");
    CHECK_INT(k.n_abort, 1);
    sink_done(&k);

    sink_init(&k, SINK_MEMORY);
    k.fail_commit = true;
    feed(s, len, NULL, 0, &k, &f);
    CHECK_INT(f.outcome, GABI_VHOST_STATE_SINK);
    CHECK_CONTAINS(f.err.message, "the device rejected the state");
    CHECK_INT(k.n_abort, 1);
    sink_done(&k);
    free(payload);
    free(s);
}

/* ---- the writer's side ------------------------------------------------------------------ */

/* The writer dies mid-stream: the reader reports the truncation, the sink aborts. */
TEST(writer_killed_mid_stream)
{
    size_t size = 4 * MiB;
    uint8_t *data = pattern_new(size, 5);
    struct source src = {.kind = SRC_MEMORY, .mem = data, .fd = -1, .fail_at = -1};
    struct gabi_vhost_state_writer *w = NULL;
    struct gabi_vhost_state_reader *r = NULL;
    struct gabi_error err = {0};
    struct gabi_vhost_state_stats st;
    struct sink k;
    struct run run;
    int ch[2];

    REQUIRE(data && pipe2(ch, O_CLOEXEC) == 0);
    sink_init(&k, SINK_MEMORY);
    REQUIRE(gabi_vhost_state_writer_new(ch[1], "guestabi-blk", "1", size, &source_ops, &src, &w,
                                        NULL) == 0);
    REQUIRE(gabi_vhost_state_reader_new(ch[0], NULL, 0, &sink_ops, &k, &r, NULL) == 0);
    /* until the reader holds some payload */
    for (int i = 0; i < 1000; i++) {
        struct pollfd p = {gabi_vhost_state_reader_get_fd(r), POLLIN, 0};

        CHECK(gabi_vhost_state_writer_process(w, &err) == GABI_VHOST_STATE_MORE);
        REQUIRE(poll(&p, 1, POLL_LIMIT) == 1);
        CHECK(gabi_vhost_state_reader_process(r, &err) == GABI_VHOST_STATE_MORE);
        gabi_vhost_state_reader_get_stats(r, &st);
        if (st.bytes > 128 + MiB)
            break;
    }
    CHECK_INT(k.n_begin, 1);
    w = gabi_vhost_state_writer_free(w); /* closes its end */
    drive(NULL, NULL, r, &run);
    CHECK_INT(gabi_vhost_state_reader_outcome(r), GABI_VHOST_STATE_TRUNCATED);
    CHECK_INT(run.reader_rc, -EPIPE);
    CHECK_CONTAINS(run.reader_err.message, "of 4194304 payload bytes (the writer closed it early)");
    CHECK_INT(k.n_commit, 0);
    CHECK_INT(k.n_abort, 1);
    CHECK(k.live == NULL);
    /* the failure stays what result() and process() say */
    CHECK_INT(gabi_vhost_state_reader_process(r, &err), -EPIPE);
    CHECK_INT(gabi_vhost_state_reader_result(r, &err), -EPIPE);
    CHECK_INT(gabi_vhost_state_reader_get_events(r), 0);
    gabi_vhost_state_reader_free(r);
    CHECK_INT(k.n_abort, 1);
    sink_done(&k);
    free(data);
}

/* Nobody reads: the writer fills the pipe and says "more" without blocking, until the pipe
 * has room again. */
static void writer_never_blocks(enum src_kind kind)
{
    size_t size = 8 * MiB;
    uint8_t *data = pattern_new(size, 6), *sink_buf = malloc(size + 256);
    struct source src = {.kind = kind, .mem = data, .fd = -1, .fail_at = -1};
    struct gabi_vhost_state_writer *w = NULL;
    struct gabi_vhost_state_stats st1, st2;
    struct gabi_error err = {0};
    struct pollfd p;
    size_t got = 0;
    int ch[2];
    ssize_t n;

    REQUIRE(data && sink_buf && pipe2(ch, O_CLOEXEC) == 0);
    if (kind == SRC_FILE) {
        src.fd = file_with(data, size, false);
        REQUIRE(src.fd >= 0);
    }
    REQUIRE(gabi_vhost_state_writer_new(ch[1], "guestabi-blk", "1", size, &source_ops, &src, &w,
                                        NULL) == 0);
    for (int i = 0; i < 5; i++)
        CHECK_INT(gabi_vhost_state_writer_process(w, &err), GABI_VHOST_STATE_MORE);
    gabi_vhost_state_writer_get_stats(w, &st1);
    CHECK(st1.bytes > 0);
    CHECK(st1.bytes <= (uint64_t)st1.pipe_size);
    p = (struct pollfd){gabi_vhost_state_writer_get_fd(w), POLLOUT, 0};
    CHECK_INT(poll(&p, 1, 0), 0); /* full: not writable */
    CHECK_INT(gabi_vhost_state_writer_process(w, &err), GABI_VHOST_STATE_MORE);
    gabi_vhost_state_writer_get_stats(w, &st2);
    CHECK(st2.bytes == st1.bytes);

    /* drain by hand; the writer moves on whenever it may, and finishes */
    fcntl(ch[0], F_SETFL, O_NONBLOCK);
    for (int rounds = 0; rounds < 100000; rounds++) {
        struct pollfd q[2] = {{ch[0], POLLIN, 0}, {gabi_vhost_state_writer_get_fd(w), POLLOUT, 0}};

        if (poll(q, gabi_vhost_state_writer_get_fd(w) >= 0 ? 2 : 1, POLL_LIMIT) <= 0)
            break;
        if (q[1].revents)
            CHECK(gabi_vhost_state_writer_process(w, &err) >= 0);
        n = read(ch[0], sink_buf + got, MIN((size_t)65536, size + 256 - got));
        if (n == 0)
            break;
        if (n > 0)
            got += (size_t)n;
    }
    CHECK_INT(gabi_vhost_state_writer_outcome(w), GABI_VHOST_STATE_SUCCEEDED);
    CHECK(got == size + 128 + 16);
    CHECK(memcmp(sink_buf + 128, data, size) == 0);
    close(ch[0]);
    close_and_clear(&src.fd);
    gabi_vhost_state_writer_free(w);
    free(data);
    free(sink_buf);
}

TEST(writer_never_blocks_on_a_full_pipe)
{
    writer_never_blocks(SRC_COPY);
    writer_never_blocks(SRC_MEMORY); /* vmsplice, checksummed while the pipe is full */
    writer_never_blocks(SRC_FILE);   /* splice, likewise */
}

TEST(reader_never_blocks_on_an_empty_pipe)
{
    struct gabi_vhost_state_reader *r = NULL;
    struct gabi_error err = {0};
    struct sink k;
    int ch[2];

    sink_init(&k, SINK_MEMORY);
    REQUIRE(pipe2(ch, O_CLOEXEC) == 0);
    REQUIRE(gabi_vhost_state_reader_new(ch[0], NULL, 0, &sink_ops, &k, &r, NULL) == 0);
    CHECK_INT(gabi_vhost_state_reader_process(r, &err), GABI_VHOST_STATE_MORE);
    CHECK_INT(gabi_vhost_state_reader_result(r, &err), -EINPROGRESS);
    CHECK(write(ch[1], "GABISTAT\1\0", 10) == 10);
    CHECK_INT(gabi_vhost_state_reader_process(r, &err), GABI_VHOST_STATE_MORE);
    CHECK(gabi_vhost_state_reader_get_info(r) == NULL);
    CHECK_INT(gabi_vhost_state_reader_get_events(r), POLLIN);
    gabi_vhost_state_reader_free(r);
    CHECK_INT(k.n_abort, 0);
    close(ch[1]);
    sink_done(&k);
}

/* The reader goes away mid-stream: the writer fails with EPIPE, the sink aborts. */
TEST(reader_gone_mid_stream)
{
    size_t size = 4 * MiB;
    uint8_t *data = pattern_new(size, 8);
    struct source src = {.kind = SRC_MEMORY, .mem = data, .fd = -1, .fail_at = -1};
    struct gabi_vhost_state_writer *w = NULL;
    struct gabi_vhost_state_reader *r = NULL;
    struct gabi_error err = {0};
    struct sink k;
    struct run run;
    int ch[2];

    signal(SIGPIPE, SIG_IGN);
    REQUIRE(data && pipe2(ch, O_CLOEXEC) == 0);
    sink_init(&k, SINK_MEMORY);
    REQUIRE(gabi_vhost_state_writer_new(ch[1], "guestabi-blk", "1", size, &source_ops, &src, &w,
                                        NULL) == 0);
    REQUIRE(gabi_vhost_state_reader_new(ch[0], NULL, 0, &sink_ops, &k, &r, NULL) == 0);
    CHECK_INT(gabi_vhost_state_writer_process(w, &err), GABI_VHOST_STATE_MORE);
    CHECK_INT(gabi_vhost_state_reader_process(r, &err), GABI_VHOST_STATE_MORE);
    CHECK_INT(k.n_begin, 1);
    r = gabi_vhost_state_reader_free(r);
    CHECK_INT(k.n_abort, 1);
    CHECK_INT(k.n_commit, 0);
    drive(w, NULL, NULL, &run);
    CHECK_INT(gabi_vhost_state_writer_outcome(w), GABI_VHOST_STATE_IO);
    CHECK_INT(run.writer_rc, -EPIPE);
    CHECK_CONTAINS(run.writer_err.message, "the reader closed the channel");
    gabi_vhost_state_writer_free(w);
    sink_done(&k);
    free(data);
}

/* The device cannot produce its state: the writer stops, the reader sees a truncated stream. */
TEST(writer_source_failures)
{
    size_t size = 2 * MiB;
    uint8_t *data = pattern_new(size, 9);
    struct gabi_vhost_state_writer *w = NULL;
    struct gabi_vhost_state_reader *r = NULL;
    struct sink k;
    struct run run;
    int ch[2];
    struct source src = {.kind = SRC_COPY, .mem = data, .fd = -1, .fail_at = MiB};

    REQUIRE(data && pipe2(ch, O_CLOEXEC) == 0);
    sink_init(&k, SINK_MEMORY);
    REQUIRE(gabi_vhost_state_writer_new(ch[1], "guestabi-blk", "1", size, &source_ops, &src, &w,
                                        NULL) == 0);
    REQUIRE(gabi_vhost_state_reader_new(ch[0], NULL, 0, &sink_ops, &k, &r, NULL) == 0);
    drive(w, NULL, r, &run);
    CHECK_INT(gabi_vhost_state_writer_outcome(w), GABI_VHOST_STATE_SOURCE);
    CHECK_INT(run.writer_rc, -EIO);
    CHECK_CONTAINS(run.writer_err.message, "disk image unreadable at 1048576");
    CHECK_INT(gabi_vhost_state_reader_outcome(r), GABI_VHOST_STATE_TRUNCATED);
    CHECK_INT(k.n_abort, 1);
    CHECK_INT(k.n_commit, 0);
    gabi_vhost_state_writer_free(w);
    gabi_vhost_state_reader_free(r);
    sink_done(&k);

    /* a file segment past the file's end is refused before anything maps it */
    src = (struct source){
        .kind = SRC_FILE, .fd = file_with(data, size, false), .fail_at = -1, .lie_size = 10};
    REQUIRE(src.fd >= 0 && pipe2(ch, O_CLOEXEC) == 0);
    REQUIRE(gabi_vhost_state_writer_new(ch[1], "guestabi-blk", "1", size, &source_ops, &src, &w,
                                        NULL) == 0);
    drive(w, NULL, NULL, &run);
    CHECK_INT(gabi_vhost_state_writer_outcome(w), GABI_VHOST_STATE_SOURCE);
    CHECK_CONTAINS(run.writer_err.message, "bytes long, it was to supply");
    close(ch[0]);
    gabi_vhost_state_writer_free(w);
    close(src.fd);
    free(data);
}

TEST(constructors_check_their_arguments)
{
    struct gabi_vhost_state_writer *w = NULL;
    struct gabi_vhost_state_reader *r = NULL;
    struct gabi_error err = {0};
    int ch[2];

    REQUIRE(pipe2(ch, O_CLOEXEC) == 0);
    /* the fd is taken even on failure: the second close must fail */
    CHECK_INT(
        gabi_vhost_state_writer_new(ch[1], "guestabi blk", "1", 0, &source_ops, NULL, &w, &err),
        -EINVAL);
    CHECK(w == NULL);
    CHECK_INT(close(ch[1]), -1);
    CHECK_INT(
        gabi_vhost_state_writer_new(ch[0], "guestabi-blk", "1", 0, &source_ops, NULL, &w, &err),
        -EBADF);
    CHECK_CONTAINS(err.message, "not open for writing");
    CHECK_INT(close(ch[0]), -1);
    REQUIRE(pipe2(ch, O_CLOEXEC) == 0);
    CHECK_INT(gabi_vhost_state_reader_new(ch[1], NULL, 0, &sink_ops, NULL, &r, &err), -EBADF);
    CHECK_INT(gabi_vhost_state_reader_new(ch[0], "", 0, &sink_ops, NULL, &r, &err), -EINVAL);
    CHECK(r == NULL);
    REQUIRE(pipe2(ch, O_CLOEXEC) == 0);
    close(ch[1]);
    CHECK_INT(gabi_vhost_state_reader_new(ch[0], NULL, 0,
                                          &(struct gabi_vhost_state_sink_ops){
                                              .accept = sink_accept,
                                              .commit = sink_commit,
                                              .abort = sink_abort,
                                          },
                                          NULL, &r, &err),
              -EINVAL);
    CHECK_CONTAINS(err.message, "dest or write");
    CHECK(gabi_vhost_state_writer_free(NULL) == NULL);
    CHECK(gabi_vhost_state_reader_free(NULL) == NULL);
}

/* The seed corpus is written from docs/state-stream.md by an independent encoder
 * (tests/fuzz/gen_state_stream_corpus.py): the reader takes its valid streams and refuses the
 * others for the reason their names give. */
TEST(documented_streams_from_an_independent_encoder)
{
    static const struct {
        const char *name;
        enum gabi_vhost_state_outcome outcome;
    } expect[] = {
        {"ok-", GABI_VHOST_STATE_SUCCEEDED},
        {"bad-magic", GABI_VHOST_STATE_BAD_MAGIC},
        {"bad-header-crc", GABI_VHOST_STATE_BAD_HEADER_CHECKSUM},
        {"format-2", GABI_VHOST_STATE_UNSUPPORTED_FORMAT},
        {"incompat-flag", GABI_VHOST_STATE_UNSUPPORTED_FORMAT},
        {"wrong-type", GABI_VHOST_STATE_WRONG_TYPE},
        {"refused-version", GABI_VHOST_STATE_REFUSED},
        {"too-large", GABI_VHOST_STATE_TOO_LARGE},
        {"truncated-", GABI_VHOST_STATE_TRUNCATED},
        {"oversize", GABI_VHOST_STATE_OVERSIZE},
        {"bad-payload-crc", GABI_VHOST_STATE_BAD_CHECKSUM},
        {"bad-trailer", GABI_VHOST_STATE_BAD_TRAILER},
        {"header-size-odd", GABI_VHOST_STATE_BAD_HEADER},
        {"empty-stream", GABI_VHOST_STATE_TRUNCATED},
    };
    const char *root = getenv("GUESTABI_SOURCE_ROOT");
    char dir[4096];
    struct dirent *de;
    unsigned n_ok = 0, n_bad = 0;
    DIR *d;

    REQUIRE(root);
    snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/state_stream", root);
    d = opendir(dir);
    REQUIRE(d);
    while ((de = readdir(d))) {
        char path[8192];
        uint8_t *buf = NULL;
        size_t size = 0, i;
        struct sink k;
        struct fed f;

        if (de->d_name[0] == '.')
            continue;
        for (i = 0; i < ARRAY_SIZE(expect); i++)
            if (strncmp(de->d_name, expect[i].name, strlen(expect[i].name)) == 0)
                break;
        if (i == ARRAY_SIZE(expect))
            continue; /* found by the fuzzer: no expectation */
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        REQUIRE(gabi_read_file(path, 1 << 20, (char **)&buf, &size) == 0 && size >= 1);
        sink_init(&k, SINK_COPY);
        k.versions = "1,2.0";
        if (expect[i].outcome == GABI_VHOST_STATE_SUCCEEDED) {
            struct gabi_vhost_state_reader *r = NULL;
            struct feeder fd_ = {.buf = buf + 1, .size = size - 1};
            struct run run;
            int ch[2];

            REQUIRE(pipe2(ch, O_CLOEXEC | O_NONBLOCK) == 0);
            fd_.fd = ch[1];
            REQUIRE(gabi_vhost_state_reader_new(ch[0], NULL, 0, &copy_sink_ops, &k, &r, NULL) == 0);
            drive(NULL, &fd_, r, &run);
            if (run.reader_rc != 0)
                TAP_FAIL("%s: %s", de->d_name, run.reader_err.message);
            CHECK_INT(k.n_commit, 1);
            CHECK(k.live_size + 128 + 16 <= size - 1);
            CHECK(k.live && memcmp(k.live, buf + size - 16 - k.live_size, k.live_size) == 0);
            gabi_vhost_state_reader_free(r);
            n_ok++;
        } else {
            feed(buf + 1, size - 1, buf[0] & 4 ? "guestabi-blk" : NULL, 1 << 20, &k, &f);
            if (f.outcome != expect[i].outcome)
                TAP_FAIL("%s: %s (%s)", de->d_name, gabi_vhost_state_outcome_name(f.outcome),
                         f.err.message);
            n_bad++;
        }
        sink_done(&k);
        free(buf);
    }
    closedir(d);
    CHECK(n_ok >= 5);
    CHECK(n_bad >= 12);
}

TAP_MAIN()
