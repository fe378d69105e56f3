/* SPDX-License-Identifier: MIT */
/*
 * guestabi-net's state across a migration, between two guestabi-net processes driven by our
 * front-end: counters, link and MTU carry over and traffic goes on from them; every failure
 * (a bad stream, a refused version, a dead peer, a mismatched MTU) leaves the source to resume
 * with its state intact and the destination refusing with its own untouched. What each port
 * holds is read through the --control socket.
 */

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "test_vhost_harness.h"

#include "tap.h"

#define ALL     ~0ull
#define TIMEOUT 20000

/* ---- helpers ------------------------------------------------------------------------------ */

/* Port `port`'s object of "stats", or NULL. */
static json_t *stats(struct netproc *np, unsigned port)
{
    char buf[65536], req[32];
    json_t *all, *p;

    snprintf(req, sizeof(req), "stats %u", port);
    if (netproc_control(np, req, buf, sizeof(buf)) < 0)
        return NULL;
    all = json_loads(buf, 0, NULL);
    p = json_incref(json_array_get(json_object_get(all, "ports"), 0));
    json_decref(all);
    return p;
}

static long long total(json_t *port, const char *key)
{
    return json_integer_value(json_object_get(json_object_get(port, "totals"), key));
}

static long long queue(json_t *port, unsigned q, const char *key)
{
    return json_integer_value(
        json_object_get(json_array_get(json_object_get(port, "queues"), q), key));
}

static const char *str(json_t *port, const char *key)
{
    const char *v = json_string_value(json_object_get(port, key));

    return v ? v : "";
}

static const char *transfer(json_t *port, const char *key)
{
    const char *v =
        json_string_value(json_object_get(json_object_get(port, "state_transfer"), key));

    return v ? v : "";
}

/* Queue pair q's counter once it reached value (up to 10 s), or what it is then. */
static long long wait_counter(struct netproc *np, unsigned q, const char *key, long long value)
{
    long long v = -1;

    for (int i = 0; i < 1000; i++) {
        json_t *p = stats(np, 0);

        v = queue(p, q, key);
        json_decref(p);
        if (v >= value)
            break;
        usleep(10000);
    }
    return v;
}

static int link_set(struct netproc *np, const char *how)
{
    char buf[256], req[64];

    snprintf(req, sizeof(req), "link 0 %s", how);
    return netproc_control(np, req, buf, sizeof(buf)) > 0 && strstr(buf, "\"ok\"") ? 0 : -EIO;
}

/* n frames of len bytes on pair through a loopback port, each received intact. */
static bool traffic(struct tguest *g, unsigned pair, unsigned n, size_t len)
{
    uint8_t f[2048], got[4096];
    struct gabi_virtio_net_hdr h;

    for (unsigned i = 0; i < n; i++) {
        harness_frame(f, len, (uint8_t)i);
        if (tguest_send(g, pair, NULL, f, len, false, false) < 0 ||
            tguest_recv(g, pair, &h, got, sizeof(got), TIMEOUT) != (int)len ||
            memcmp(got, f, len) != 0 || tguest_post_rx(g, pair, 1, 2048) < 0)
            return false;
    }
    return true;
}

static const char *const loopback_args[] = {"--socket",  "@0", "--loopback",
                                            "--control", "@c", NULL};

/* A source with traffic on two queue pairs, a malformed frame, MTU 1500; then suspended. */
static int busy_source(struct netproc *np, struct tguest *g, uint32_t *bases)
{
    uint8_t tiny[10] = {0};
    int r = netproc_start(np, loopback_args);

    if (r < 0 || (r = tguest_connect(g, np->sock[0], ALL, 2, 0)) < 0 ||
        (r = gabi_vhost_client_net_set_mtu(g->c, 1500)) < 0)
        return r;
    if (tguest_post_rx(g, 0, 16, 2048) < 0 || tguest_post_rx(g, 1, 16, 2048) < 0 ||
        !traffic(g, 0, 3, 100) || !traffic(g, 1, 2, 600))
        return -EIO;
    /* too short for Ethernet: taken and dropped */
    if (tguest_send(g, 0, NULL, tiny, sizeof(tiny), false, false) < 0)
        return -EIO;
    if (!traffic(g, 0, 1, 60)) /* after it, so the drop was counted when this arrives */
        return -EIO;
    return tguest_stop(g, bases);
}

static int memfd(void)
{
    return memfd_create("gabi-net-state", MFD_CLOEXEC);
}

/* ---- state carried over -------------------------------------------------------------------- */

TEST(counters_link_and_mtu_carry_over)
{
    struct netproc src, dst;
    struct tguest a, b;
    struct gabi_vhost_state_xfer x;
    struct gabi_error err = {0};
    uint8_t f[200], got[4096];
    struct gabi_virtio_net_hdr h;
    uint32_t bases[4];
    json_t *s0, *s1, *d0, *d1;

    REQUIRE(busy_source(&src, &a, bases) == 0);
    s0 = stats(&src, 0);
    REQUIRE(s0);
    CHECK_INT(queue(s0, 0, "tx_packets"), 5);
    CHECK_INT(queue(s0, 0, "tx_dropped"), 1);
    CHECK_INT(queue(s0, 0, "rx_packets"), 4);
    CHECK_INT(queue(s0, 0, "rx_bytes"), 3 * 100 + 60);
    CHECK_INT(queue(s0, 1, "tx_packets"), 2);
    CHECK_INT(queue(s0, 1, "rx_bytes"), 2 * 600);
    CHECK_INT(json_array_size(json_object_get(s0, "queues")), 8);
    CHECK_STR(str(s0, "link"), "up");
    CHECK(json_is_true(json_object_get(s0, "suspended")));

    /* the link goes down while suspended: part of the state too */
    CHECK_INT(link_set(&src, "down"), 0);
    s1 = stats(&src, 0);
    CHECK_STR(str(s1, "link"), "down");

    /* the destination: a fresh process, its front-end set up as QEMU's would be (same MTU),
     * no vring started yet */
    REQUIRE(netproc_start(&dst, loopback_args) == 0);
    REQUIRE(tguest_connect(&b, dst.sock[0], ALL, 0, 0) == 0);
    REQUIRE(gabi_vhost_client_net_set_mtu(b.c, 1500) == 0);
    CHECK_INT(gabi_vhost_client_move_state(a.c, b.c, TIMEOUT, &x, &err), 0);
    if (err.message[0])
        printf("# %s\n", err.message);
    CHECK_INT(x.bytes, 0); /* source to destination, not through us */
    d0 = stats(&dst, 0);
    REQUIRE(d0);
    CHECK(json_equal(json_object_get(d0, "queues"), json_object_get(s1, "queues")));
    CHECK(json_equal(json_object_get(d0, "totals"), json_object_get(s1, "totals")));
    CHECK_STR(str(d0, "link"), "down");
    CHECK_INT(json_integer_value(json_object_get(d0, "mtu")), 1500);
    CHECK_STR(transfer(d0, "direction"), "load");
    CHECK_STR(transfer(d0, "outcome"), "succeeded");
    json_decref(s1);
    s1 = stats(&src, 0);
    CHECK_STR(transfer(s1, "direction"), "save");
    CHECK_STR(transfer(s1, "outcome"), "succeeded");

    /* the destination runs on it: link down drops, link up forwards, counters go on */
    REQUIRE(tguest_start(&b, 2, NULL) == 0);
    REQUIRE(tguest_post_rx(&b, 0, 16, 2048) == 0);
    harness_frame(f, 100, 1);
    CHECK_INT(tguest_send(&b, 0, NULL, f, 100, false, false), 0);
    CHECK_INT(wait_counter(&dst, 0, "tx_dropped", 2), 2); /* taken and dropped */
    CHECK_INT(tguest_recv(&b, 0, &h, got, sizeof(got), 300), -ETIMEDOUT);
    CHECK_INT(link_set(&dst, "up"), 0);
    CHECK(traffic(&b, 0, 2, 100));
    d1 = stats(&dst, 0);
    CHECK_INT(queue(d1, 0, "tx_packets"), 5 + 1 + 2);
    CHECK_INT(queue(d1, 0, "tx_dropped"), 1 + 1);
    CHECK_INT(queue(d1, 0, "rx_packets"), 4 + 2);
    CHECK_INT(total(d1, "rx_bytes"), 3 * 100 + 60 + 2 * 600 + 2 * 100);

    json_decref(s0);
    json_decref(s1);
    json_decref(d0);
    json_decref(d1);
    tguest_free(&a);
    tguest_free(&b);
    CHECK_INT(netproc_stop(&src), 0);
    CHECK_INT(netproc_stop(&dst), 0);
}

/* ---- a v3 VM on a build whose newest mode is v4 ---------------------------------------------- */

static const char *const loopback_v3_args[] = {
    "--socket", "@0", "--loopback", "--control", "@c", "--mode", "upstream.guestabi-net.v3", NULL};

TEST(v3_vm_moves_to_a_v4_build_pinned_to_v3)
{
    const uint64_t new_bits = (1ull << GABI_F_RING_PACKED) | (1ull << GABI_F_IN_ORDER);
    struct netproc src, dst, dflt;
    struct tguest a, b, c;
    struct gabi_vhost_state_xfer x;
    struct gabi_error err = {0};
    uint32_t bases[4];
    json_t *s0, *d0;

    /* the source runs the VM's mode, v3 */
    REQUIRE(netproc_start(&src, loopback_v3_args) == 0);
    REQUIRE(tguest_connect(&a, src.sock[0], ALL, 2, 0) == 0);
    REQUIRE(gabi_vhost_client_net_set_mtu(a.c, 1500) == 0);
    REQUIRE(tguest_post_rx(&a, 0, 16, 2048) == 0);
    CHECK(traffic(&a, 0, 3, 100));
    REQUIRE(tguest_stop(&a, bases) == 0);
    CHECK(!(a.features & new_bits));
    /* this build, unpinned, runs v4: it offers packed rings and IN_ORDER */
    REQUIRE(netproc_start(&dflt, loopback_args) == 0);
    REQUIRE(tguest_connect(&c, dflt.sock[0], ALL, 0,
                           GABI_VHOST_GUESTQ_PACKED | GABI_VHOST_GUESTQ_IN_ORDER) == 0);
    CHECK((c.features & new_bits) == new_bits);
    tguest_free(&c);
    CHECK_INT(netproc_stop(&dflt), 0);
    /* pinned to v3 it offers exactly what the VM negotiated, and takes its state */
    REQUIRE(netproc_start(&dst, loopback_v3_args) == 0);
    REQUIRE(tguest_connect(&b, dst.sock[0], ALL, 0,
                           GABI_VHOST_GUESTQ_PACKED | GABI_VHOST_GUESTQ_IN_ORDER) == 0);
    CHECK(b.features == a.features);
    REQUIRE(gabi_vhost_client_net_set_mtu(b.c, 1500) == 0);
    CHECK_INT(gabi_vhost_client_move_state(a.c, b.c, TIMEOUT, &x, &err), 0);
    s0 = stats(&src, 0);
    d0 = stats(&dst, 0);
    REQUIRE(s0 && d0);
    CHECK(json_equal(json_object_get(d0, "queues"), json_object_get(s0, "queues")));
    CHECK_STR(transfer(d0, "outcome"), "succeeded");
    json_decref(s0);
    json_decref(d0);
    tguest_free(&a);
    tguest_free(&b);
    CHECK_INT(netproc_stop(&src), 0);
    CHECK_INT(netproc_stop(&dst), 0);
}

/* ---- packed rings: the state and the ring indices move together -------------------------- */

TEST(packed_rings_and_state_move_to_another_guestabi_net)
{
    const unsigned qflags =
        GABI_VHOST_GUESTQ_PACKED | GABI_VHOST_GUESTQ_EVENT_IDX | GABI_VHOST_GUESTQ_IN_ORDER;
    struct netproc src, dst;
    struct tguest a, b;
    struct gabi_vhost_state_xfer x;
    struct gabi_error err = {0};
    struct gabi_virtio_net_hdr h;
    uint8_t f[200], got[4096];
    uint32_t bases[2];
    json_t *d0;

    REQUIRE(netproc_start(&src, loopback_args) == 0);
    REQUIRE(tguest_connect(&a, src.sock[0], ALL, 1, qflags) == 0);
    REQUIRE(a.features & (1ull << GABI_F_RING_PACKED));
    REQUIRE(gabi_vhost_client_net_set_mtu(a.c, 1500) == 0);
    REQUIRE(tguest_post_rx(&a, 0, 16, 2048) == 0);
    /* 300 frames: both rings pass their end (wrap counters 0) */
    CHECK(traffic(&a, 0, 300, 100));
    REQUIRE(tguest_stop(&a, bases) == 0);
    CHECK_INT(bases[0], 44u | 44u << 16);
    CHECK_INT(bases[1], 44u | 44u << 16);
    /* three frames queued while the device is away */
    for (unsigned i = 0; i < 3; i++) {
        harness_frame(f, 100, (uint8_t)(200 + i));
        CHECK_INT(tguest_send(&a, 0, NULL, f, 100, false, false), 0);
    }
    /* the destination takes the port's state ... */
    REQUIRE(netproc_start(&dst, loopback_args) == 0);
    REQUIRE(tguest_connect(&b, dst.sock[0], ALL, 0, qflags) == 0);
    CHECK(b.features == a.features);
    REQUIRE(gabi_vhost_client_net_set_mtu(b.c, 1500) == 0);
    CHECK_INT(gabi_vhost_client_move_state(a.c, b.c, TIMEOUT, &x, &err), 0);
    /* ... and the guest's rings (same memory) at the bases the source handed back */
    REQUIRE(gabi_vhost_client_set_mem_table(b.c, a.gm) == 0);
    {
        struct gabi_vhost_client *old = a.c;

        a.c = b.c;
        b.c = old;
    }
    REQUIRE(tguest_start(&a, 1, bases) == 0);
    REQUIRE(gabi_vhost_guestq_kick(a.q[1]) >= 0);
    REQUIRE(write(gabi_vhost_guestq_kick_fd(a.q[1]), &(uint64_t){1}, 8) == 8);
    for (unsigned i = 0; i < 3; i++) {
        harness_frame(f, 100, (uint8_t)(200 + i));
        CHECK_INT(tguest_recv(&a, 0, &h, got, sizeof(got), TIMEOUT), 100);
        CHECK(memcmp(got, f, 100) == 0);
        CHECK_INT(tguest_post_rx(&a, 0, 1, 2048), 0);
    }
    CHECK_INT(tguest_recv(&a, 0, &h, got, sizeof(got), 300), -ETIMEDOUT);
    CHECK(traffic(&a, 0, 20, 100));
    d0 = stats(&dst, 0);
    REQUIRE(d0);
    CHECK_INT(queue(d0, 0, "tx_packets"), 300 + 3 + 20);
    CHECK_INT(queue(d0, 0, "rx_packets"), 300 + 3 + 20);
    json_decref(d0);
    tguest_free(&a);
    tguest_free(&b);
    CHECK_INT(netproc_stop(&src), 0);
    CHECK_INT(netproc_stop(&dst), 0);
}

/* ---- failures ------------------------------------------------------------------------------- */

/* Rewrite a saved stream's header (type, version) with a valid checksum. */
static void reheader(uint8_t *buf, const char *type, const char *version)
{
    struct gabi_vhost_state_info info;

    if (gabi_vhost_state_header_parse(buf, GABI_VHOST_STATE_HEADER_SIZE, &info, NULL, NULL) < 0)
        return;
    if (type)
        snprintf(info.device_type, sizeof(info.device_type), "%s", type);
    if (version)
        snprintf(info.state_version, sizeof(info.state_version), "%s", version);
    gabi_vhost_state_header_encode(&info, buf, NULL);
}

/* Load bytes into g's back-end: the CHECK answer (0 success). */
static uint64_t load_bytes(struct tguest *g, const uint8_t *buf, size_t size)
{
    struct gabi_vhost_state_xfer x = {0};
    struct gabi_error err = {0};
    int fd = memfd(), r;

    if (write(fd, buf, size) != (ssize_t)size)
        return 999;
    lseek(fd, 0, SEEK_SET);
    r = gabi_vhost_client_load_state(g->c, fd, TIMEOUT, &x, &err);
    close(fd);
    return r == 0 ? 0 : x.check_code[1] ? x.check_code[1] : 998;
}

static bool untouched(struct netproc *np)
{
    json_t *p = stats(np, 0);
    bool ok = p && total(p, "tx_packets") == 0 && total(p, "rx_packets") == 0 &&
              total(p, "rx_dropped") == 0 && strcmp(str(p, "link"), "up") == 0;

    json_decref(p);
    return ok;
}

TEST(destination_refuses_bad_states_untouched)
{
    static const char catalog[] =
        "{\"schema\": \"guestabi.catalog/1\", \"device_types\": [{\"name\": \"guestabi-net\", "
        "\"kind\": \"vhost-user\", \"description\": \"loads a future version\", "
        "\"writes\": [\"1\"], \"loads\": [\"2\", \"1\"]}]}";
    char dir[] = "/tmp/gabi-cat-XXXXXX", file[64];
    struct netproc src, dst, dst2;
    struct tguest a, b, b2;
    uint32_t bases[4];
    uint8_t *s;
    size_t n;
    int fd;
    json_t *p;
    FILE *fp;

    REQUIRE(busy_source(&src, &a, bases) == 0);
    fd = memfd();
    REQUIRE(gabi_vhost_client_save_state(a.c, fd, TIMEOUT, NULL, NULL) == 0);
    n = (size_t)lseek(fd, 0, SEEK_END);
    CHECK_INT(n, GABI_VHOST_STATE_HEADER_SIZE + 16 + 48 * 8 + GABI_VHOST_STATE_TRAILER_SIZE);
    s = malloc(n);
    REQUIRE(pread(fd, s, n, 0) == (ssize_t)n);
    close(fd);

    REQUIRE(netproc_start(&dst, loopback_args) == 0);
    REQUIRE(tguest_connect(&b, dst.sock[0], ALL, 0, 0) == 0);
    reheader(s, NULL, "2");
    CHECK_INT(load_bytes(&b, s, n), GABI_VHOST_STATE_REFUSED);
    p = stats(&dst, 0);
    CHECK_CONTAINS(transfer(p, "message"), "guestabi-net loads versions 1 (its catalog rule)");
    json_decref(p);
    reheader(s, "guestabi-blk", "1");
    CHECK_INT(load_bytes(&b, s, n), GABI_VHOST_STATE_WRONG_TYPE);
    reheader(s, "guestabi-net", NULL);
    CHECK_INT(load_bytes(&b, s, n - 1), GABI_VHOST_STATE_TRUNCATED);
    s[GABI_VHOST_STATE_HEADER_SIZE + 20] ^= 1;
    CHECK_INT(load_bytes(&b, s, n), GABI_VHOST_STATE_BAD_CHECKSUM);
    s[GABI_VHOST_STATE_HEADER_SIZE + 20] ^= 1;
    CHECK(untouched(&dst));

    /* another MTU on the destination's front-end: its VM is not configured alike */
    CHECK_INT(gabi_vhost_client_net_set_mtu(b.c, 9000), 0);
    CHECK_INT(load_bytes(&b, s, n), GABI_VHOST_STATE_SINK);
    p = stats(&dst, 0);
    CHECK_CONTAINS(transfer(p, "message"), "MTU 1500, this one's front-end set 9000");
    CHECK_INT(json_integer_value(json_object_get(p, "mtu")), 9000);
    json_decref(p);
    CHECK(untouched(&dst));
    tguest_free(&b);

    /* a catalog that says version 2 loads, on a build that cannot decode it */
    REQUIRE(mkdtemp(dir));
    snprintf(file, sizeof(file), "%s/50-test.json", dir);
    fp = fopen(file, "w");
    REQUIRE(fp);
    fputs(catalog, fp);
    fclose(fp);
    REQUIRE(netproc_start(&dst2, (const char *[]){"--socket", "@0", "--loopback", "--control", "@c",
                                                  "--catalog", dir, NULL}) == 0);
    REQUIRE(tguest_connect(&b2, dst2.sock[0], ALL, 0, 0) == 0);
    reheader(s, NULL, "2");
    CHECK_INT(load_bytes(&b2, s, n), GABI_VHOST_STATE_REFUSED);
    p = stats(&dst2, 0);
    CHECK_CONTAINS(transfer(p, "message"), "only decodes version 1");
    json_decref(p);
    reheader(s, NULL, "1");
    CHECK_INT(load_bytes(&b2, s, n), 0);
    p = stats(&dst2, 0);
    CHECK_INT(total(p, "tx_packets"), 7);
    json_decref(p);

    /* the source never changed: it resumes */
    REQUIRE(tguest_start(&a, 2, bases) == 0);
    CHECK(traffic(&a, 1, 2, 300));
    p = stats(&src, 0);
    CHECK_INT(queue(p, 1, "tx_packets"), 4);
    CHECK_INT(total(p, "tx_dropped"), 1);
    json_decref(p);

    free(s);
    tguest_free(&a);
    tguest_free(&b2);
    CHECK_INT(netproc_stop(&src), 0);
    CHECK_INT(netproc_stop(&dst), 0);
    CHECK_INT(netproc_stop(&dst2), 0);
    unlink(file);
    rmdir(dir);
}

/* Forward up to n bytes from in to out; bytes moved. */
static size_t forward(int in, int out, size_t n)
{
    uint8_t buf[4096];
    size_t done = 0;

    while (done < n) {
        ssize_t k = read(in, buf, n - done < sizeof(buf) ? n - done : sizeof(buf));

        if (k <= 0 || write(out, buf, (size_t)k) != k)
            break;
        done += (size_t)k;
    }
    return done;
}

TEST(destination_killed_mid_load_source_resumes)
{
    struct netproc src, dst;
    struct tguest a, b;
    uint32_t bases[4];
    uint64_t code = 0;
    int sp[2], fd = -1;
    json_t *before, *after;

    signal(SIGPIPE, SIG_IGN);
    REQUIRE(busy_source(&src, &a, bases) == 0);
    before = stats(&src, 0);
    REQUIRE(netproc_start(&dst, loopback_args) == 0);
    REQUIRE(tguest_connect(&b, dst.sock[0], ALL, 0, 0) == 0);
    /* one channel from the source straight to the destination, as move_state makes it; the
     * destination accepts the load and dies before the source writes (a state of a few
     * hundred bytes fits in a pipe at once: a later death would only be seen by whoever
     * reads the pipe) */
    REQUIRE(pipe2(sp, O_CLOEXEC) == 0);
    REQUIRE(gabi_vhost_client_set_device_state_fd(b.c, GABI_VHOST_STATE_LOAD, 0, sp[0], &fd) == 0);
    close(sp[0]);
    netproc_kill(&dst);
    REQUIRE(gabi_vhost_client_set_device_state_fd(a.c, GABI_VHOST_STATE_SAVE, 0, sp[1], &fd) == 0);
    close(sp[1]);
    CHECK_INT(gabi_vhost_client_check_device_state(a.c, TIMEOUT, &code), -EIO);
    CHECK_INT(code, GABI_VHOST_STATE_IO);
    after = stats(&src, 0);
    CHECK_STR(transfer(after, "outcome"), "io");
    CHECK(json_equal(json_object_get(after, "queues"), json_object_get(before, "queues")));
    json_decref(after);
    /* resumed: traffic where it stopped, counters going on from the same values */
    REQUIRE(tguest_start(&a, 2, bases) == 0);
    CHECK(traffic(&a, 0, 2, 100));
    after = stats(&src, 0);
    CHECK_INT(queue(after, 0, "tx_packets"), queue(before, 0, "tx_packets") + 2);
    CHECK_INT(queue(after, 0, "rx_packets"), queue(before, 0, "rx_packets") + 2);
    json_decref(before);
    json_decref(after);
    tguest_free(&a);
    tguest_free(&b);
    CHECK_INT(netproc_stop(&src), 0);
}

TEST(source_killed_mid_save_destination_untouched)
{
    struct netproc src, dst;
    struct tguest a, b;
    uint32_t bases[4];
    uint64_t code = 0;
    int sp[2], dp[2], fd = -1;

    signal(SIGPIPE, SIG_IGN);
    REQUIRE(busy_source(&src, &a, bases) == 0);
    REQUIRE(netproc_start(&dst, loopback_args) == 0);
    REQUIRE(tguest_connect(&b, dst.sock[0], ALL, 0, 0) == 0);
    REQUIRE(pipe2(sp, O_CLOEXEC) == 0 && pipe2(dp, O_CLOEXEC) == 0);
    REQUIRE(gabi_vhost_client_set_device_state_fd(b.c, GABI_VHOST_STATE_LOAD, 0, dp[0], &fd) == 0);
    close(dp[0]);
    REQUIRE(gabi_vhost_client_set_device_state_fd(a.c, GABI_VHOST_STATE_SAVE, 0, sp[1], &fd) == 0);
    close(sp[1]);
    /* the first 200 bytes reach the destination, then the source is gone */
    CHECK_INT(forward(sp[0], dp[1], 200), 200);
    netproc_kill(&src);
    close(sp[0]);
    close(dp[1]);
    CHECK_INT(gabi_vhost_client_check_device_state(b.c, TIMEOUT, &code), -EIO);
    CHECK_INT(code, GABI_VHOST_STATE_TRUNCATED);
    CHECK(untouched(&dst));
    /* the destination is still a working port */
    REQUIRE(tguest_start(&b, 1, NULL) == 0);
    REQUIRE(tguest_post_rx(&b, 0, 8, 2048) == 0);
    CHECK(traffic(&b, 0, 2, 100));
    tguest_free(&a);
    tguest_free(&b);
    CHECK_INT(netproc_stop(&dst), 0);
}

TEST(control_socket_refuses_nonsense)
{
    struct netproc np;
    char buf[4096], big[400];

    REQUIRE(netproc_start(&np, loopback_args) == 0);
    CHECK(netproc_control(&np, "stats 7", buf, sizeof(buf)) > 0);
    CHECK_CONTAINS(buf, "no such port");
    CHECK(netproc_control(&np, "link 0 sideways", buf, sizeof(buf)) > 0);
    CHECK_CONTAINS(buf, "requests: stats [PORT], link PORT up|down");
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    CHECK(netproc_control(&np, big, buf, sizeof(buf)) > 0);
    CHECK_CONTAINS(buf, "longer than 255 bytes");
    CHECK(netproc_control(&np, np.sock[0], buf, sizeof(buf)) > 0); /* a path, no command */
    CHECK_CONTAINS(buf, "error");
    CHECK(netproc_control(&np, "stats", buf, sizeof(buf)) > 0);
    CHECK_CONTAINS(buf, "\"schema\":\"guestabi-net.stats/1\"");
    CHECK_CONTAINS(buf, "\"busy_poll\":{\"on\":false,\"passes\":0,\"idle_passes\":0}");
    CHECK_INT(netproc_stop(&np), 0);
}

TAP_MAIN()
