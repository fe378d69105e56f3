/* SPDX-License-Identifier: MIT */
/*
 * Device-state transfer through lib/vhost, both sides: SET_DEVICE_STATE_FD and
 * CHECK_DEVICE_STATE against back-ends (threads, or child processes that get killed), the
 * suspended state and resuming from it, our front-end's save / load / move helpers, the
 * back-end's own channel, and every failure: each leaves the source able to resume with its
 * state intact and the destination refusing cleanly with its state untouched.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_vhost_harness.h"
#include "vhost/internal.h"

#include "tap.h"

#define ALL     ~0ull
#define NO_DS   (~0ull & ~(1ull << GABI_PF_DEVICE_STATE))
#define STREAM  (GABI_VHOST_STATE_HEADER_SIZE + GABI_VHOST_STATE_TRAILER_SIZE)
#define TIMEOUT 20000

static const struct gabi_vhost_mode *mode = &harness_mode_all; /* offers DEVICE_STATE */

/* ---- helpers ------------------------------------------------------------------------------ */

static int memfd(void)
{
    return memfd_create("gabi-test-state", MFD_CLOEXEC);
}

static off_t fd_size(int fd)
{
    return lseek(fd, 0, SEEK_END);
}

/* A frame whose first payload byte is seq (loopback copies the whole chain, header included:
 * the header says one buffer). */
static int send_seq(struct tguest *g, uint8_t seq)
{
    struct gabi_virtio_net_hdr h = {.num_buffers = 1};
    uint8_t f[100];

    memset(f, 0, sizeof(f));
    f[14] = seq;
    return tguest_send(g, 0, &h, f, sizeof(f), false, false);
}

/* Receive one frame: its seq byte, or -errno. */
static int recv_seq(struct tguest *g, int timeout_ms)
{
    struct gabi_virtio_net_hdr h;
    uint8_t f[4096];
    int n = tguest_recv(g, 0, &h, f, sizeof(f), timeout_ms);

    return n < 0 ? n : n < 15 ? -EBADMSG : f[14];
}

static uint64_t looped(struct harness *h)
{
    uint64_t n;

    pthread_mutex_lock(&h->lock);
    n = h->n_looped;
    pthread_mutex_unlock(&h->lock);
    return n;
}

/* The loopback counter once it reached n (it is updated just after the frame was delivered),
 * or what it is after 10 s. */
static uint64_t looped_at_least(struct harness *h, uint64_t n)
{
    for (int i = 0; i < 10000 && looped(h) < n; i++)
        usleep(1000);
    return looped(h);
}

static unsigned count(struct harness *h, const unsigned *c)
{
    unsigned n;

    pthread_mutex_lock(&h->lock);
    n = *c;
    pthread_mutex_unlock(&h->lock);
    return n;
}

static uint32_t pattern_crc(size_t size, uint64_t seed)
{
    uint8_t *p = malloc(size);
    uint32_t crc;

    harness_pattern(p, size, seed);
    crc = gabi_vhost_state_crc32c(0, p, size);
    free(p);
    return crc;
}

/* A negotiated client with memory but no vring started (a destination before it resumes);
 * with pf other than ALL, a bare client that negotiated those protocol features. */
static int guest_idle(struct tguest *g, const char *path, uint64_t pf)
{
    int r;

    if (pf == ALL)
        return tguest_connect(g, path, ALL, 0, 0);
    memset(g, 0, sizeof(*g));
    r = gabi_vhost_client_connect(path, 10000, &g->c, NULL);
    if (r >= 0)
        r = gabi_vhost_client_negotiate(g->c, ALL, pf, &g->features, NULL);
    return r;
}

/* Traffic through a loopback guest: n frames from seq on, each received. */
static bool traffic(struct tguest *g, uint8_t seq, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (send_seq(g, (uint8_t)(seq + i)) < 0 || recv_seq(g, TIMEOUT) != (uint8_t)(seq + i))
            return false;
        if (tguest_post_rx(g, 0, 1, 2048) < 0)
            return false;
    }
    return true;
}

/* Read a whole stream from fd (a pipe) into a memfd; returns the memfd. */
static int drain_to_memfd(int fd)
{
    int out = memfd();
    uint8_t buf[65536];
    ssize_t n;

    while ((n = read(fd, buf, sizeof(buf))) > 0)
        if (write(out, buf, (size_t)n) != n)
            break;
    lseek(out, 0, SEEK_SET);
    return out;
}

/* ---- refusals ------------------------------------------------------------------------------ */

static int nop_save_begin(struct gabi_vhost_backend *b, uint64_t *ret_size,
                          struct gabi_error *reterr, void *userdata)
{
    *ret_size = 0;
    return 0;
}

TEST(device_state_needs_the_device_s_ops)
{
    /* the catalog's v3 offers DEVICE_STATE */
    struct gabi_vhost_backend_config cfg = {.name = "t",
                                            .cls = GABI_CLASS_NET,
                                            .mode = test_catalog_mode("upstream.guestabi-net.v3"),
                                            .device_features = ~0ull};
    struct gabi_vhost_state_ops ops = {
        .device_type = "t", .version = "1", .save_begin = nop_save_begin};
    struct gabi_vhost_backend *b = NULL;
    struct gabi_error err = {0};

    REQUIRE(cfg.mode->protocol_features & (1ull << GABI_PF_DEVICE_STATE));
    /* a mode offering DEVICE_STATE, a device without state ops: refused, naming the bit */
    CHECK_INT(gabi_vhost_backend_new(&cfg, NULL, NULL, &b, &err), -EOPNOTSUPP);
    CHECK_CONTAINS(err.message, "VHOST_USER_PROTOCOL_F_DEVICE_STATE (bit 19)");
    /* incomplete ops */
    cfg.state = &ops;
    CHECK_INT(gabi_vhost_backend_new(&cfg, NULL, NULL, &b, &err), -EINVAL);
    CHECK_CONTAINS(err.message, "save_begin and save_get");
    ops.device_type = "has space";
    CHECK_INT(gabi_vhost_backend_new(&cfg, NULL, NULL, &b, &err), -EINVAL);
    CHECK_CONTAINS(err.message, "device-state type");
    CHECK(b == NULL);
}

TEST(refused_without_device_state)
{
    struct harness h;
    struct tguest g;
    struct gabi_error err = {0};
    struct vhost_transfer_state t = {0};
    uint64_t v = 0;
    uint32_t size = 0;
    char why[512];
    int p[2], fd = -1;

    /* a mode without DEVICE_STATE: the helpers fail early, nothing is sent */
    REQUIRE(harness_start(&h, test_catalog_mode("upstream.guestabi-net.v2")) == 0);
    REQUIRE(guest_idle(&g, h.path, ALL) == 0);
    REQUIRE(pipe2(p, O_CLOEXEC) == 0);
    CHECK_INT(gabi_vhost_client_set_device_state_fd(g.c, GABI_VHOST_STATE_SAVE, 0, p[1], &fd),
              -EOPNOTSUPP);
    CHECK_INT(gabi_vhost_client_check_device_state(g.c, 0, NULL), -EOPNOTSUPP);
    CHECK_INT(gabi_vhost_client_save_state(g.c, p[1], 0, NULL, &err), -EOPNOTSUPP);
    CHECK_CONTAINS(err.message, "did not negotiate DEVICE_STATE");
    /* the connection is still fine */
    CHECK_INT(gabi_vhost_client_get_features(g.c, &v), 0);
    tguest_free(&g);
    harness_stop(&h);

    /* offered but not negotiated: the back-end refuses the message and closes */
    REQUIRE(harness_start(&h, mode) == 0);
    REQUIRE(guest_idle(&g, h.path, NO_DS) == 0);
    CHECK(!(gabi_vhost_client_protocol_features(g.c) & (1ull << GABI_PF_DEVICE_STATE)));
    CHECK(gabi_vhost_client_request(g.c, VHOST_USER_SET_DEVICE_STATE_FD, false, &t, sizeof(t),
                                    &p[1], 1, &v, sizeof(v), &size) < 0);
    REQUIRE(harness_wait_disconnects(&h, 1) == 0);
    harness_copy(&h, "disconnect", why, sizeof(why));
    CHECK_CONTAINS(why, "SET_DEVICE_STATE_FD: needs VHOST_USER_PROTOCOL_F_DEVICE_STATE");
    tguest_free(&g);
    REQUIRE(guest_idle(&g, h.path, NO_DS) == 0);
    CHECK(gabi_vhost_client_request(g.c, VHOST_USER_CHECK_DEVICE_STATE, false, NULL, 0, NULL, 0, &v,
                                    sizeof(v), &size) < 0);
    REQUIRE(harness_wait_disconnects(&h, 2) == 0);
    harness_copy(&h, "disconnect", why, sizeof(why));
    CHECK_CONTAINS(why, "CHECK_DEVICE_STATE: needs VHOST_USER_PROTOCOL_F_DEVICE_STATE");
    CHECK_INT(count(&h, &h.n_save_begin), 0);
    tguest_free(&g);
    close(p[0]);
    close(p[1]);
    harness_stop(&h);
}

TEST(refused_unless_suspended_and_well_formed)
{
    struct harness h;
    struct tguest g;
    struct vhost_transfer_state t = {.direction = 0, .phase = 0};
    uint64_t v = 0, code = 0;
    uint32_t size = 0;
    int p[2], fd = -1;
    unsigned fds_before;

    REQUIRE(harness_start(&h, mode) == 0);
    fds_before = harness_count_fds();
    REQUIRE(tguest_connect(&g, h.path, ALL, 1, 0) == 0);
    REQUIRE(tguest_post_rx(&g, 0, 8, 2048) == 0);
    REQUIRE(pipe2(p, O_CLOEXEC) == 0);

    /* a running vring: refused with EBUSY, no fd, the connection goes on */
    CHECK_INT(gabi_vhost_client_set_device_state_fd(g.c, GABI_VHOST_STATE_SAVE, 0, p[1], &fd),
              -EBUSY);
    CHECK_INT(fd, -1);
    CHECK_INT(gabi_vhost_client_check_device_state(g.c, 0, &code), -EIO);
    CHECK_INT(code, GABI_VHOST_STATE_NOT_SUSPENDED);
    CHECK(traffic(&g, 1, 3));
    CHECK_INT(count(&h, &h.n_save_begin), 0);

    /* suspended now: CHECK before any transfer says so */
    REQUIRE(tguest_stop(&g, NULL) == 0);
    CHECK_INT(gabi_vhost_client_check_device_state(g.c, 0, &code), -EIO);
    CHECK_INT(code, GABI_VHOST_STATE_NO_TRANSFER);
    /* a phase other than "stopped", an unknown direction: EINVAL */
    CHECK_INT(gabi_vhost_client_set_device_state_fd(g.c, GABI_VHOST_STATE_SAVE, 1, p[1], &fd),
              -EINVAL);
    CHECK_INT(gabi_vhost_client_set_device_state_fd(g.c, (enum gabi_vhost_state_direction)2, 0,
                                                    p[1], &fd),
              -EINVAL);
    /* no fd: the exact reply encoding, 0x100 | EBADF */
    CHECK_INT(gabi_vhost_client_request(g.c, VHOST_USER_SET_DEVICE_STATE_FD, false, &t, sizeof(t),
                                        NULL, 0, &v, sizeof(v), &size),
              0);
    CHECK_INT(size, 8);
    CHECK_INT(v, GABI_VHOST_STATE_REPLY_NOFD | EBADF);
    /* still connected, nothing started */
    CHECK_INT(gabi_vhost_client_get_features(g.c, &v), 0);
    CHECK_INT(count(&h, &h.n_save_begin), 0);
    CHECK_INT(h.n_disconnected, 0);
    tguest_free(&g);
    close(p[0]);
    close(p[1]);
    REQUIRE(harness_wait_disconnects(&h, 1) == 0);
    CHECK_INT(harness_count_fds(), fds_before);
    harness_stop(&h);
}

/* A canned reply to SET_DEVICE_STATE_FD from a fake back-end (the test's end of a socketpair),
 * with fd attached when >= 0: what the front-end makes of it. */
static int canned_reply(uint64_t v, bool with_fd)
{
    struct vhost_user_hdr hdr = {.request = VHOST_USER_SET_DEVICE_STATE_FD,
                                 .flags = VHOST_USER_VERSION | VHOST_USER_REPLY,
                                 .size = 8};
    struct gabi_vhost_client *c = NULL;
    int sv[2], p[2], fd = -1, extra = with_fd ? eventfd(0, EFD_CLOEXEC) : -1, r;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 || pipe2(p, O_CLOEXEC) < 0)
        return -999;
    gabi_vhost_client_new_fd(sv[0], 1000, &c);
    /* negotiated without REPLY_ACK: SET_PROTOCOL_FEATURES gets no reply */
    gabi_vhost_client_set_protocol_features(c, 1ull << GABI_PF_DEVICE_STATE);
    vhost_send(sv[1], &hdr, &v, extra >= 0 ? &extra : NULL, extra >= 0 ? 1 : 0, 1000);
    r = gabi_vhost_client_set_device_state_fd(c, GABI_VHOST_STATE_LOAD, 0, p[0], &fd);
    if (r == 0 && fd >= 0) {
        r = 1000; /* "use mine", and the fd came */
        close(fd);
    }
    gabi_vhost_client_free(c);
    close(sv[1]);
    close(p[0]);
    close(p[1]);
    if (extra >= 0)
        close(extra);
    return r;
}

TEST(front_end_checks_the_reply_encoding)
{
    unsigned fds = harness_count_fds();

    CHECK_INT(canned_reply(0x100, false), 0);              /* ok, keep yours */
    CHECK_INT(canned_reply(0, true), 1000);                /* ok, use mine */
    CHECK_INT(canned_reply(0x100 | EBUSY, false), -EBUSY); /* refused */
    CHECK_INT(canned_reply(EINVAL, false), -EINVAL);       /* refused, bit 8 forgotten */
    CHECK_INT(canned_reply(0, false), -EPROTO);            /* "use mine" without an fd */
    CHECK_INT(canned_reply(0x100, true), -EPROTO);         /* an fd with "no fd" */
    CHECK_INT(canned_reply(0x101, true), -EPROTO);         /* an fd with an error */
    CHECK_INT(canned_reply(0x300, false), -EPROTO);        /* bits beyond 8 */
    CHECK_INT(harness_count_fds(), fds);                   /* every fd that came was closed */
}

/* ---- round trips ----------------------------------------------------------------------------- */

TEST(save_then_load_through_the_front_end)
{
    struct harness a, b;
    struct harness_state_cfg ca = {.size = 3u << 20, .seed = 1}, cb = {.size = 4096, .seed = 2};
    struct tguest ga, gb;
    struct gabi_vhost_state_xfer x;
    struct gabi_error err = {0};
    uint32_t bases[2];
    uint64_t v = 0, code = 0;
    uint32_t size = 0;
    size_t sz = 0;
    int fd;

    REQUIRE(harness_start_ex(&a, mode, GABI_CLASS_NET, ~0ull, &ca) == 0);
    REQUIRE(harness_start_ex(&b, mode, GABI_CLASS_NET, ~0ull, &cb) == 0);
    REQUIRE(tguest_connect(&ga, a.path, ALL, 1, 0) == 0);
    REQUIRE(tguest_post_rx(&ga, 0, 16, 2048) == 0);
    CHECK(traffic(&ga, 10, 4));
    REQUIRE(tguest_stop(&ga, bases) == 0);

    /* save: every byte spliced out of the back-end's pipe into a memfd, then CHECK says 0 */
    fd = memfd();
    CHECK_INT(gabi_vhost_client_save_state(ga.c, fd, TIMEOUT, &x, &err), 0);
    CHECK_INT(fd_size(fd), STREAM + (3u << 20));
    CHECK_INT(x.bytes, STREAM + (3u << 20));
    CHECK(x.spliced == x.bytes);
    CHECK(!x.backend_fd[0]);
    CHECK_INT(x.check_code[0], 0);
    CHECK_INT(harness_wait_count(&a, &a.n_save_end, 1), 0);
    CHECK_INT(a.last_save_result, 0);
    /* a second CHECK gives the same answer */
    CHECK_INT(gabi_vhost_client_check_device_state(ga.c, 0, &code), 0);

    /* load into another back-end whose guest has not started yet */
    REQUIRE(guest_idle(&gb, b.path, ALL) == 0);
    lseek(fd, 0, SEEK_SET);
    CHECK_INT(gabi_vhost_client_load_state(gb.c, fd, TIMEOUT, &x, &err), 0);
    CHECK_INT(x.check_code[1], 0);
    CHECK_INT(count(&b, &b.n_commit), 1);
    CHECK_INT(harness_state_crc(&b, &sz), pattern_crc(3u << 20, 1));
    CHECK_INT(sz, 3u << 20);
    /* the destination starts on it */
    REQUIRE(tguest_start(&gb, 1, NULL) == 0);
    REQUIRE(tguest_post_rx(&gb, 0, 16, 2048) == 0);
    CHECK(traffic(&gb, 20, 3));

    /* the source was untouched by the save: it resumes where it stopped */
    CHECK_INT(harness_state_crc(&a, NULL), pattern_crc(3u << 20, 1));
    REQUIRE(tguest_start(&ga, 1, bases) == 0);
    CHECK(traffic(&ga, 30, 3));
    CHECK_INT(looped_at_least(&a, 7), 7);
    /* the raw reply of CHECK while running is "not suspended" */
    CHECK_INT(gabi_vhost_client_request(ga.c, VHOST_USER_CHECK_DEVICE_STATE, false, NULL, 0, NULL,
                                        0, &v, sizeof(v), &size),
              0);
    CHECK_INT(v, GABI_VHOST_STATE_NOT_SUSPENDED);
    close(fd);
    tguest_free(&ga);
    tguest_free(&gb);
    harness_stop(&a);
    harness_stop(&b);
}

/* A source that streams on and on: the front-end stops relaying at its limit, and the target
 * holds no more than that. Without the limit the save would fill the file. */
TEST(the_relay_stops_at_its_limit)
{
    struct harness a;
    struct harness_state_cfg ca = {.size = 8u << 20, .seed = 5};
    struct tguest ga;
    struct gabi_vhost_state_xfer x;
    struct gabi_error err = {0};
    int fd = memfd();

    REQUIRE(harness_start_ex(&a, mode, GABI_CLASS_NET, ~0ull, &ca) == 0);
    REQUIRE(guest_idle(&ga, a.path, ALL) == 0);
    gabi_vhost_client_set_state_limit(ga.c, 1u << 20);
    CHECK_INT(gabi_vhost_client_save_state(ga.c, fd, TIMEOUT, &x, &err), -EFBIG);
    CHECK_CONTAINS(err.message, "past the front-end's limit of 1048576 bytes");
    CHECK_INT(x.bytes, 1u << 20);
    CHECK_INT(fd_size(fd), 1u << 20);
    /* the source heard its save fail, and its state is untouched */
    CHECK_INT(harness_wait_count(&a, &a.n_save_end, 1), 0);
    CHECK(a.last_save_result < 0);
    CHECK_INT(harness_state_crc(&a, NULL), pattern_crc(8u << 20, 5));

    /* 0 is the default limit again: the whole stream passes */
    gabi_vhost_client_set_state_limit(ga.c, 0);
    REQUIRE(ftruncate(fd, 0) == 0);
    lseek(fd, 0, SEEK_SET);
    CHECK_INT(gabi_vhost_client_save_state(ga.c, fd, TIMEOUT, &x, &err), 0);
    CHECK_INT(fd_size(fd), STREAM + (8u << 20));
    close(fd);
    tguest_free(&ga);
    harness_stop(&a);
}

static void move_case(bool src_own, bool dst_own)
{
    struct harness a, b;
    struct harness_state_cfg ca = {.size = 5u << 20, .seed = 7, .own_channel = src_own};
    struct harness_state_cfg cb = {.size = 100, .seed = 8, .own_channel = dst_own};
    struct tguest ga, gb;
    struct gabi_vhost_state_xfer x;
    struct gabi_error err = {0};
    unsigned fds_before;

    REQUIRE(harness_start_ex(&a, mode, GABI_CLASS_NET, ~0ull, &ca) == 0);
    REQUIRE(harness_start_ex(&b, mode, GABI_CLASS_NET, ~0ull, &cb) == 0);
    fds_before = harness_count_fds();
    REQUIRE(guest_idle(&ga, a.path, ALL) == 0);
    REQUIRE(guest_idle(&gb, b.path, ALL) == 0);
    CHECK_INT(gabi_vhost_client_move_state(ga.c, gb.c, TIMEOUT, &x, &err), 0);
    if (err.message[0])
        printf("# %s\n", err.message);
    CHECK_INT(x.backend_fd[GABI_VHOST_STATE_SAVE], src_own);
    CHECK_INT(x.backend_fd[GABI_VHOST_STATE_LOAD], dst_own);
    /* only a source with its own channel makes the front-end relay (by splice) */
    CHECK_INT(x.relayed, src_own);
    CHECK_INT(x.bytes, src_own ? STREAM + (5u << 20) : 0);
    CHECK(x.spliced == x.bytes);
    CHECK_INT(x.check_code[0], 0);
    CHECK_INT(x.check_code[1], 0);
    CHECK_INT(harness_state_crc(&b, NULL), pattern_crc(5u << 20, 7));
    CHECK_INT(harness_state_crc(&a, NULL), pattern_crc(5u << 20, 7));
    tguest_free(&ga);
    tguest_free(&gb);
    REQUIRE(harness_wait_disconnects(&a, 1) == 0);
    REQUIRE(harness_wait_disconnects(&b, 1) == 0);
    CHECK_INT(harness_count_fds(), fds_before);
    harness_stop(&a);
    harness_stop(&b);
}

TEST(move_between_back_ends_directly)
{
    move_case(false, false);
}

TEST(move_with_channels_of_the_back_ends_own)
{
    move_case(true, true);
    move_case(true, false);
    move_case(false, true);
}

TEST(save_and_load_with_a_back_end_channel)
{
    struct harness a, b;
    struct harness_state_cfg ca = {.size = 70000, .seed = 3, .own_channel = true};
    struct harness_state_cfg cb = {.size = 1, .seed = 4, .own_channel = true};
    struct tguest ga, gb;
    struct gabi_vhost_state_xfer x;
    struct gabi_error err = {0};
    int fd = memfd();

    REQUIRE(harness_start_ex(&a, mode, GABI_CLASS_NET, ~0ull, &ca) == 0);
    REQUIRE(harness_start_ex(&b, mode, GABI_CLASS_NET, ~0ull, &cb) == 0);
    REQUIRE(guest_idle(&ga, a.path, ALL) == 0);
    REQUIRE(guest_idle(&gb, b.path, ALL) == 0);
    CHECK_INT(gabi_vhost_client_save_state(ga.c, fd, TIMEOUT, &x, &err), 0);
    CHECK(x.backend_fd[GABI_VHOST_STATE_SAVE]);
    CHECK_INT(x.bytes, STREAM + 70000);
    lseek(fd, 0, SEEK_SET);
    CHECK_INT(gabi_vhost_client_load_state(gb.c, fd, TIMEOUT, &x, &err), 0);
    CHECK(x.backend_fd[GABI_VHOST_STATE_LOAD]);
    CHECK_INT(harness_state_crc(&b, NULL), pattern_crc(70000, 3));
    close(fd);
    tguest_free(&ga);
    tguest_free(&gb);
    harness_stop(&a);
    harness_stop(&b);
}

/* ---- CHECK waits for the outcome; the loop does not ----------------------------------------- */

static void nothing(struct harness *h, void *arg)
{
    (*(unsigned *)arg)++;
}

static int send_check(struct gabi_vhost_client *c)
{
    struct vhost_user_hdr hdr = {.request = VHOST_USER_CHECK_DEVICE_STATE,
                                 .flags = VHOST_USER_VERSION};

    return vhost_send(gabi_vhost_client_fd(c), &hdr, NULL, NULL, 0, 1000);
}

/* The 20-byte reply to CHECK_DEVICE_STATE, read within timeout_ms: its value, or -errno. */
static int64_t read_check_reply(struct gabi_vhost_client *c, int timeout_ms)
{
    struct {
        struct vhost_user_hdr hdr;
        uint64_t v;
    } __attribute__((packed)) rep;
    struct pollfd pf = {.fd = gabi_vhost_client_fd(c), .events = POLLIN};
    size_t got = 0;

    while (got < sizeof(rep)) {
        ssize_t n;

        if (poll(&pf, 1, timeout_ms) != 1)
            return -ETIMEDOUT;
        n = read(pf.fd, (uint8_t *)&rep + got, sizeof(rep) - got);
        if (n <= 0)
            return -ECONNRESET;
        got += (size_t)n;
    }
    if (rep.hdr.request != VHOST_USER_CHECK_DEVICE_STATE || rep.hdr.size != 8)
        return -EPROTO;
    return (int64_t)rep.v;
}

TEST(check_reply_waits_for_the_transfer_not_the_loop)
{
    struct harness a;
    struct harness_state_cfg ca = {.size = 8u << 20, .seed = 5};
    struct tguest g;
    struct gabi_vhost_state_info info;
    uint8_t head[GABI_VHOST_STATE_HEADER_SIZE];
    unsigned calls = 0;
    int p[2], fd = -1, stream;

    REQUIRE(harness_start_ex(&a, mode, GABI_CLASS_NET, ~0ull, &ca) == 0);
    REQUIRE(guest_idle(&g, a.path, ALL) == 0);
    REQUIRE(pipe2(p, O_CLOEXEC) == 0);
    REQUIRE(gabi_vhost_client_set_device_state_fd(g.c, GABI_VHOST_STATE_SAVE, 0, p[1], &fd) == 0);
    CHECK_INT(fd, -1); /* 0x100: ours is used */
    close(p[1]);
    /* nobody reads the pipe yet: the save cannot end, so CHECK gets no answer ... */
    REQUIRE(send_check(g.c) == 0);
    CHECK_INT(read_check_reply(g.c, 300), -ETIMEDOUT);
    /* ... while the back-end's loop goes on serving */
    harness_call(&a, nothing, &calls);
    CHECK_INT(calls, 1);
    CHECK_INT(count(&a, &a.n_save_end), 0);
    /* read the stream: the answer comes, and it is success */
    stream = drain_to_memfd(p[0]);
    CHECK_INT(read_check_reply(g.c, TIMEOUT), 0);
    CHECK_INT(fd_size(stream), STREAM + (8u << 20));
    CHECK(pread(stream, head, sizeof(head), 0) == (ssize_t)sizeof(head));
    CHECK(gabi_vhost_state_header_parse(head, sizeof(head), &info, NULL, NULL) > 0);
    CHECK_STR(info.device_type, "test-dev");
    CHECK_STR(info.state_version, "1");
    CHECK_INT(info.payload_size, 8u << 20);
    close(stream);
    close(p[0]);
    tguest_free(&g);
    harness_stop(&a);
}

/* The back-end makes its end of the channel non-blocking on a description of its own: the
 * front-end's copy of the pipe end it handed over keeps its flags. */
TEST(the_channel_s_flags_stay_the_front_end_s)
{
    struct harness a;
    struct harness_state_cfg ca = {.size = 1u << 20, .seed = 6};
    struct tguest g;
    int p[2], fd = -1, kept, stream;

    REQUIRE(harness_start_ex(&a, mode, GABI_CLASS_NET, ~0ull, &ca) == 0);
    REQUIRE(guest_idle(&g, a.path, ALL) == 0);
    REQUIRE(pipe2(p, O_CLOEXEC) == 0);
    kept = dup(p[1]);
    REQUIRE(kept >= 0);
    REQUIRE(gabi_vhost_client_set_device_state_fd(g.c, GABI_VHOST_STATE_SAVE, 0, p[1], &fd) == 0);
    CHECK_INT(fd, -1);
    close(p[1]);
    /* the back-end took the fd and made its end non-blocking; our copy is still blocking */
    stream = fcntl(kept, F_GETFL);
    CHECK(stream >= 0 && !(stream & O_NONBLOCK));
    close(kept);
    stream = drain_to_memfd(p[0]);
    REQUIRE(send_check(g.c) == 0);
    CHECK_INT(read_check_reply(g.c, TIMEOUT), 0);
    CHECK_INT(fd_size(stream), STREAM + (1u << 20));
    close(stream);
    close(p[0]);
    tguest_free(&g);
    harness_stop(&a);
}

TEST(a_request_while_check_waits_closes_the_connection)
{
    struct harness a;
    struct harness_state_cfg ca = {.size = 4u << 20, .seed = 6};
    struct tguest g;
    struct vhost_user_hdr hdr = {.request = VHOST_USER_GET_FEATURES, .flags = VHOST_USER_VERSION};
    char why[512];
    int p[2], fd = -1;

    REQUIRE(harness_start_ex(&a, mode, GABI_CLASS_NET, ~0ull, &ca) == 0);
    REQUIRE(guest_idle(&g, a.path, ALL) == 0);
    REQUIRE(pipe2(p, O_CLOEXEC) == 0);
    REQUIRE(gabi_vhost_client_set_device_state_fd(g.c, GABI_VHOST_STATE_SAVE, 0, p[1], &fd) == 0);
    close(p[1]);
    REQUIRE(send_check(g.c) == 0);
    REQUIRE(vhost_send(gabi_vhost_client_fd(g.c), &hdr, NULL, NULL, 0, 1000) == 0);
    REQUIRE(harness_wait_disconnects(&a, 1) == 0);
    harness_copy(&a, "disconnect", why, sizeof(why));
    CHECK_CONTAINS(why, "GET_FEATURES: sent while CHECK_DEVICE_STATE waits for its reply");
    /* the save was cancelled with the connection: the reader sees the stream end early */
    CHECK_INT(harness_wait_count(&a, &a.n_save_end, 1), 0);
    CHECK_INT(a.last_save_result, -ECANCELED);
    CHECK_INT(harness_state_crc(&a, NULL), pattern_crc(4u << 20, 6));
    close(p[0]);
    tguest_free(&g);
    harness_stop(&a);
}

/* ---- suspended: nothing moves; resumed: exactly where it stopped ----------------------------- */

TEST(suspended_then_resumed_exactly)
{
    struct harness a;
    struct tguest g;
    uint32_t bases[2], used_rx, used_tx;

    REQUIRE(harness_start(&a, mode) == 0);
    REQUIRE(tguest_connect(&g, a.path, ALL, 1, 0) == 0);
    REQUIRE(tguest_post_rx(&g, 0, 32, 2048) == 0);
    CHECK(traffic(&g, 0, 3));
    REQUIRE(tguest_stop(&g, bases) == 0);
    CHECK_INT(bases[1], 3); /* three TX chains consumed */
    used_rx = gabi_vhost_guestq_used_idx(g.q[0]);
    used_tx = gabi_vhost_guestq_used_idx(g.q[1]);
    /* the guest goes on queueing while the device is suspended: nothing is consumed, nothing
     * written to guest memory, no interrupt */
    for (uint8_t i = 3; i < 8; i++)
        CHECK_INT(send_seq(&g, i), 0);
    CHECK_INT(recv_seq(&g, 300), -ETIMEDOUT);
    CHECK_INT(gabi_vhost_guestq_used_idx(g.q[0]), used_rx);
    CHECK_INT(gabi_vhost_guestq_used_idx(g.q[1]), used_tx);
    CHECK_INT(looped_at_least(&a, 3), 3);
    /* resumed: the five queued frames, in order, once each */
    REQUIRE(tguest_start(&g, 1, bases) == 0);
    REQUIRE(gabi_vhost_guestq_kick(g.q[1]) >= 0);
    for (uint8_t i = 3; i < 8; i++)
        CHECK_INT(recv_seq(&g, TIMEOUT), i);
    CHECK_INT(recv_seq(&g, 300), -ETIMEDOUT);
    CHECK_INT(looped_at_least(&a, 8), 8);
    CHECK(traffic(&g, 8, 2));
    tguest_free(&g);
    harness_stop(&a);
}

TEST(a_vring_that_starts_cancels_the_transfer)
{
    struct harness a;
    struct harness_state_cfg ca = {.size = 8u << 20, .seed = 9};
    struct tguest g;
    uint32_t bases[2];
    uint64_t code = 0;
    int p[2], fd = -1, stream;
    uint8_t chunk[4096];

    REQUIRE(harness_start_ex(&a, mode, GABI_CLASS_NET, ~0ull, &ca) == 0);
    REQUIRE(tguest_connect(&g, a.path, ALL, 1, 0) == 0);
    REQUIRE(tguest_post_rx(&g, 0, 8, 2048) == 0);
    CHECK(traffic(&g, 0, 2));
    REQUIRE(tguest_stop(&g, bases) == 0);
    /* a save begins, the pipe fills up ... */
    REQUIRE(pipe2(p, O_CLOEXEC) == 0);
    REQUIRE(gabi_vhost_client_set_device_state_fd(g.c, GABI_VHOST_STATE_SAVE, 0, p[1], &fd) == 0);
    close(p[1]);
    for (size_t got = 0; got < sizeof(chunk);) {
        ssize_t n = read(p[0], chunk, sizeof(chunk) - got);

        REQUIRE(n > 0);
        got += (size_t)n;
    }
    /* ... and the front-end resumes the device instead: the save is cancelled first */
    REQUIRE(tguest_start(&g, 1, bases) == 0);
    CHECK_INT(harness_wait_count(&a, &a.n_save_end, 1), 0);
    CHECK_INT(a.last_save_result, -ECANCELED);
    stream = drain_to_memfd(p[0]); /* EOF: the stream ended early */
    CHECK(fd_size(stream) < STREAM + (8u << 20));
    close(stream);
    close(p[0]);
    CHECK(traffic(&g, 2, 2));
    /* stopped again, CHECK tells what happened */
    REQUIRE(tguest_stop(&g, bases) == 0);
    CHECK_INT(gabi_vhost_client_check_device_state(g.c, 0, &code), -EIO);
    CHECK_INT(code, GABI_VHOST_STATE_CANCELLED);
    tguest_free(&g);
    harness_stop(&a);
}

/* ---- the destination refuses, untouched ------------------------------------------------------ */

/* Load bytes into b: the CHECK outcome (0 for success). */
static uint64_t load_bytes(struct tguest *g, const uint8_t *buf, size_t size)
{
    struct gabi_vhost_state_xfer x = {0};
    struct gabi_error err = {0};
    int fd = memfd();
    int r;

    if (write(fd, buf, size) != (ssize_t)size)
        return 999;
    lseek(fd, 0, SEEK_SET);
    r = gabi_vhost_client_load_state(g->c, fd, TIMEOUT, &x, &err);
    close(fd);
    if (r < 0 && r != -EIO)
        printf("# load: %s\n", err.message);
    return r == 0 ? 0 : x.check_code[1] ? x.check_code[1] : 998;
}

/* A whole stream from a back-end with this state configuration. */
static uint8_t *stream_of(const struct harness_state_cfg *c, size_t *ret_size)
{
    struct harness a;
    struct tguest g;
    struct gabi_error err = {0};
    uint8_t *buf = NULL;
    int fd = memfd();

    if (harness_start_ex(&a, mode, GABI_CLASS_NET, ~0ull, c) == 0 &&
        guest_idle(&g, a.path, ALL) == 0 &&
        gabi_vhost_client_save_state(g.c, fd, TIMEOUT, NULL, &err) == 0) {
        *ret_size = (size_t)fd_size(fd);
        buf = malloc(*ret_size);
        if (pread(fd, buf, *ret_size, 0) != (ssize_t)*ret_size) {
            free(buf);
            buf = NULL;
        }
    }
    tguest_free(&g);
    harness_stop(&a);
    close(fd);
    return buf;
}

TEST(destination_refuses_bad_streams_untouched)
{
    struct harness_state_cfg good = {.size = 300000, .seed = 11};
    struct harness_state_cfg v2 = {.size = 1000, .seed = 12, .version = "2"};
    struct harness_state_cfg other = {.size = 1000, .seed = 13, .type = "other-dev"};
    struct harness_state_cfg dst = {.size = 5000, .seed = 14, .loads = "1,1.5"};
    struct harness b;
    struct tguest g;
    size_t n_good, n_v2, n_other;
    uint8_t *s_good = stream_of(&good, &n_good), *s_v2 = stream_of(&v2, &n_v2);
    uint8_t *s_other = stream_of(&other, &n_other);
    uint32_t crc = pattern_crc(5000, 14);

    REQUIRE(s_good && s_v2 && s_other);
    REQUIRE(harness_start_ex(&b, mode, GABI_CLASS_NET, ~0ull, &dst) == 0);
    REQUIRE(guest_idle(&g, b.path, ALL) == 0);

    CHECK_INT(load_bytes(&g, s_v2, n_v2), GABI_VHOST_STATE_REFUSED);
    CHECK_INT(load_bytes(&g, s_other, n_other), GABI_VHOST_STATE_WRONG_TYPE);
    CHECK_INT(load_bytes(&g, s_good, n_good - 100), GABI_VHOST_STATE_TRUNCATED);
    CHECK_INT(load_bytes(&g, s_good, 60), GABI_VHOST_STATE_TRUNCATED);
    CHECK_INT(load_bytes(&g, s_good, 0), GABI_VHOST_STATE_TRUNCATED);
    s_good[GABI_VHOST_STATE_HEADER_SIZE + 123456] ^= 0x40;
    CHECK_INT(load_bytes(&g, s_good, n_good), GABI_VHOST_STATE_BAD_CHECKSUM);
    s_good[GABI_VHOST_STATE_HEADER_SIZE + 123456] ^= 0x40;
    s_good[70] ^= 1; /* the state version field: the header checksum catches it */
    CHECK_INT(load_bytes(&g, s_good, n_good), GABI_VHOST_STATE_BAD_HEADER_CHECKSUM);
    s_good[70] ^= 1;
    /* every refusal left the device as it was; those past begin were aborted */
    CHECK_INT(harness_state_crc(&b, NULL), crc);
    CHECK_INT(count(&b, &b.n_commit), 0);
    CHECK_INT(count(&b, &b.n_abort), 2);  /* the truncated payload, the bad checksum */
    CHECK_INT(count(&b, &b.n_accept), 3); /* those two and the v2 stream were asked about */
    /* and it still loads a good one */
    CHECK_INT(load_bytes(&g, s_good, n_good), 0);
    CHECK_INT(harness_state_crc(&b, NULL), pattern_crc(300000, 11));
    tguest_free(&g);
    harness_stop(&b);
    free(s_good);
    free(s_v2);
    free(s_other);
}

TEST(check_failure_leaves_the_source_to_resume)
{
    struct harness a, b;
    struct harness_state_cfg ca = {.size = 2u << 20, .seed = 21};
    struct harness_state_cfg cb = {.size = 10, .seed = 22, .fail_commit = true};
    struct tguest ga, gb;
    struct gabi_vhost_state_xfer x;
    struct gabi_error err = {0};
    uint32_t bases[2];

    REQUIRE(harness_start_ex(&a, mode, GABI_CLASS_NET, ~0ull, &ca) == 0);
    REQUIRE(harness_start_ex(&b, mode, GABI_CLASS_NET, ~0ull, &cb) == 0);
    REQUIRE(tguest_connect(&ga, a.path, ALL, 1, 0) == 0);
    REQUIRE(guest_idle(&gb, b.path, ALL) == 0);
    REQUIRE(tguest_post_rx(&ga, 0, 32, 2048) == 0);
    CHECK(traffic(&ga, 0, 5));
    REQUIRE(tguest_stop(&ga, bases) == 0);
    for (uint8_t i = 5; i < 8; i++) /* queued while suspended */
        CHECK_INT(send_seq(&ga, i), 0);

    CHECK_INT(gabi_vhost_client_move_state(ga.c, gb.c, TIMEOUT, &x, &err), -EIO);
    CHECK_INT(x.check_code[0], 0);
    CHECK_INT(x.check_code[1], GABI_VHOST_STATE_SINK);
    CHECK_CONTAINS(err.message, "the destination failed");
    CHECK_CONTAINS(err.message, "(sink)");
    CHECK_INT(harness_state_crc(&b, NULL), pattern_crc(10, 22));
    CHECK_INT(count(&b, &b.n_abort), 1);

    /* the migration failed: the source resumes with nothing lost, nothing twice */
    REQUIRE(tguest_start(&ga, 1, bases) == 0);
    REQUIRE(gabi_vhost_guestq_kick(ga.q[1]) >= 0);
    for (uint8_t i = 5; i < 8; i++)
        CHECK_INT(recv_seq(&ga, TIMEOUT), i);
    CHECK_INT(recv_seq(&ga, 300), -ETIMEDOUT);
    CHECK(traffic(&ga, 8, 2));
    CHECK_INT(looped_at_least(&a, 10), 10);
    CHECK_INT(harness_state_crc(&a, NULL), pattern_crc(2u << 20, 21));
    tguest_free(&ga);
    tguest_free(&gb);
    harness_stop(&a);
    harness_stop(&b);
}

/* ---- peers killed mid-transfer (child processes) --------------------------------------------- */

/* Forward n bytes (or to EOF with n == SIZE_MAX) from in to out; returns bytes moved. */
static size_t forward(int in, int out, size_t n)
{
    uint8_t buf[65536];
    size_t done = 0;

    while (done < n) {
        ssize_t k = read(in, buf, MIN(sizeof(buf), n - done));

        if (k <= 0)
            break;
        if (write(out, buf, (size_t)k) != k)
            break;
        done += (size_t)k;
    }
    return done;
}

TEST(source_killed_mid_save)
{
    struct harness_state_cfg ca = {.size = 16u << 20, .seed = 31};
    struct harness_state_cfg cb = {.size = 777, .seed = 32};
    struct harness b;
    struct gabi_vhost_client *ca_c = NULL;
    struct tguest gb;
    char apath[128];
    pid_t apid;
    uint64_t code = 0;
    int sp[2], dp[2], fd = -1;

    /* the source in a child process (forked before any thread of ours exists) */
    REQUIRE(harness_spawn(mode, &ca, apath, sizeof(apath), &apid) == 0);
    REQUIRE(harness_start_ex(&b, mode, GABI_CLASS_NET, ~0ull, &cb) == 0);
    REQUIRE(gabi_vhost_client_connect(apath, 10000, &ca_c, NULL) == 0);
    REQUIRE(gabi_vhost_client_negotiate(ca_c, ALL, ALL, NULL, NULL) == 0);
    REQUIRE(guest_idle(&gb, b.path, ALL) == 0);
    REQUIRE(pipe2(sp, O_CLOEXEC) == 0 && pipe2(dp, O_CLOEXEC) == 0);
    REQUIRE(gabi_vhost_client_set_device_state_fd(gb.c, GABI_VHOST_STATE_LOAD, 0, dp[0], &fd) == 0);
    close(dp[0]);
    REQUIRE(gabi_vhost_client_set_device_state_fd(ca_c, GABI_VHOST_STATE_SAVE, 0, sp[1], &fd) == 0);
    close(sp[1]);
    /* 2 MiB of 16 reach the destination, then the source dies */
    CHECK_INT(forward(sp[0], dp[1], 2u << 20), 2u << 20);
    harness_spawn_kill(apid, apath);
    forward(sp[0], dp[1], SIZE_MAX); /* what the pipe still held, then EOF */
    close(sp[0]);
    close(dp[1]);
    CHECK_INT(gabi_vhost_client_check_device_state(gb.c, TIMEOUT, &code), -EIO);
    CHECK_INT(code, GABI_VHOST_STATE_TRUNCATED);
    /* the destination refused cleanly: its own state untouched, the load aborted */
    CHECK_INT(harness_state_crc(&b, NULL), pattern_crc(777, 32));
    CHECK_INT(count(&b, &b.n_abort), 1);
    CHECK_INT(count(&b, &b.n_commit), 0);
    /* and it is still a working device */
    REQUIRE(tguest_start(&gb, 1, NULL) == 0);
    REQUIRE(tguest_post_rx(&gb, 0, 8, 2048) == 0);
    CHECK(traffic(&gb, 1, 2));
    gabi_vhost_client_free(ca_c);
    tguest_free(&gb);
    harness_stop(&b);
}

TEST(destination_killed_mid_load)
{
    struct harness_state_cfg ca = {.size = 16u << 20, .seed = 41};
    struct harness_state_cfg cb = {.size = 10, .seed = 42};
    struct harness a;
    struct gabi_vhost_client *cb_c = NULL;
    struct tguest ga;
    char bpath[128];
    pid_t bpid;
    uint32_t bases[2];
    uint64_t code = 0;
    int sp[2], dp[2], fd = -1;

    REQUIRE(harness_spawn(mode, &cb, bpath, sizeof(bpath), &bpid) == 0);
    REQUIRE(harness_start_ex(&a, mode, GABI_CLASS_NET, ~0ull, &ca) == 0);
    REQUIRE(gabi_vhost_client_connect(bpath, 10000, &cb_c, NULL) == 0);
    REQUIRE(gabi_vhost_client_negotiate(cb_c, ALL, ALL, NULL, NULL) == 0);
    REQUIRE(tguest_connect(&ga, a.path, ALL, 1, 0) == 0);
    REQUIRE(tguest_post_rx(&ga, 0, 32, 2048) == 0);
    CHECK(traffic(&ga, 0, 4));
    REQUIRE(tguest_stop(&ga, bases) == 0);
    REQUIRE(pipe2(sp, O_CLOEXEC) == 0 && pipe2(dp, O_CLOEXEC) == 0);
    REQUIRE(gabi_vhost_client_set_device_state_fd(cb_c, GABI_VHOST_STATE_LOAD, 0, dp[0], &fd) == 0);
    close(dp[0]);
    REQUIRE(gabi_vhost_client_set_device_state_fd(ga.c, GABI_VHOST_STATE_SAVE, 0, sp[1], &fd) == 0);
    close(sp[1]);
    CHECK_INT(forward(sp[0], dp[1], 2u << 20), 2u << 20);
    /* the destination dies mid-load: the relay (a front-end) gives up, the source's writer
     * gets EPIPE */
    harness_spawn_kill(bpid, bpath);
    CHECK(forward(sp[0], dp[1], SIZE_MAX) < (14u << 20));
    close(dp[1]);
    close(sp[0]);
    CHECK_INT(gabi_vhost_client_check_device_state(ga.c, TIMEOUT, &code), -EIO);
    CHECK_INT(code, GABI_VHOST_STATE_IO);
    CHECK_INT(harness_wait_count(&a, &a.n_save_end, 1), 0);
    CHECK_INT(a.last_save_result, -EPIPE);
    /* the source resumes, state intact, traffic where it stopped */
    CHECK_INT(harness_state_crc(&a, NULL), pattern_crc(16u << 20, 41));
    REQUIRE(tguest_start(&ga, 1, bases) == 0);
    CHECK(traffic(&ga, 4, 3));
    CHECK_INT(looped_at_least(&a, 7), 7);
    gabi_vhost_client_free(cb_c);
    tguest_free(&ga);
    harness_stop(&a);
}

TEST(disconnect_mid_load_aborts)
{
    struct harness_state_cfg cb = {.size = 4096, .seed = 51};
    struct harness b;
    struct tguest g;
    size_t n;
    struct harness_state_cfg src = {.size = 3u << 20, .seed = 52};
    uint8_t *s = stream_of(&src, &n);
    int p[2], fd = -1;

    REQUIRE(s);
    REQUIRE(harness_start_ex(&b, mode, GABI_CLASS_NET, ~0ull, &cb) == 0);
    REQUIRE(guest_idle(&g, b.path, ALL) == 0);
    REQUIRE(pipe2(p, O_CLOEXEC) == 0);
    REQUIRE(gabi_vhost_client_set_device_state_fd(g.c, GABI_VHOST_STATE_LOAD, 0, p[0], &fd) == 0);
    close(p[0]);
    CHECK(write(p[1], s, 65536) == 65536);
    REQUIRE(harness_wait_count(&b, &b.n_accept, 1) == 0); /* the header was taken */
    /* the front-end goes away before the stream is whole: the load is aborted */
    tguest_free(&g);
    REQUIRE(harness_wait_count(&b, &b.n_abort, 1) == 0);
    CHECK_INT(count(&b, &b.n_commit), 0);
    CHECK_INT(harness_state_crc(&b, NULL), pattern_crc(4096, 51));
    close(p[1]);
    harness_stop(&b);
    free(s);
}

TAP_MAIN()
