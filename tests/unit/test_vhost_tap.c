/* SPDX-License-Identifier: MIT */
/*
 * guestabi-net forwarding to a real Linux tap device: frames the host stack sends on the tap
 * reach the guest's RX ring, frames the guest transmits reach the host stack. Needs root and
 * /dev/net/tun; without them the whole test reports SKIP (never a pass). It runs in a network
 * namespace of its own.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/if_packet.h>
#include <linux/sockios.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "test_vhost_harness.h"

#include "tap.h"

#define ETHERTYPE_TEST 0x88b5 /* IEEE local experimental */

static char tap_name[IFNAMSIZ];

/* An AF_PACKET socket on the tap: what the host stack sends and receives there. */
static int host_socket(void)
{
    struct sockaddr_ll sll = {
        .sll_family = AF_PACKET,
        .sll_protocol = htons(ETH_P_ALL),
        .sll_ifindex = (int)if_nametoindex(tap_name),
    };
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));

    if (fd < 0 || sll.sll_ifindex == 0 || bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static size_t test_frame(uint8_t *f, const char *marker)
{
    size_t len = 14 + 46;

    memset(f, 0, len);
    memset(f, 0xff, 6);
    memcpy(f + 6, "\x52\x54\x00\xaa\xbb\xcc", 6);
    f[12] = ETHERTYPE_TEST >> 8;
    f[13] = ETHERTYPE_TEST & 0xff;
    memcpy(f + 14, marker, strlen(marker));
    return len;
}

static bool is_ours(const uint8_t *f, size_t len, const char *marker)
{
    return len >= 14 + strlen(marker) && f[12] == ETHERTYPE_TEST >> 8 &&
           f[13] == (ETHERTYPE_TEST & 0xff) && memcmp(f + 14, marker, strlen(marker)) == 0;
}

/* Frames the tap has handed to its reader (guestabi-net): the tap's tx_packets, from
 * /proc/net/dev, which shows this process's network namespace (/sys/class/net shows the one
 * sysfs was mounted in). -1 when the tap is not there. */
static long long tap_taken(void)
{
    char line[512];
    long long v = -1;
    FILE *f = fopen("/proc/net/dev", "r");

    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        char *colon = strchr(line, ':'), *name = line;
        unsigned long long c[10];

        if (!colon)
            continue;
        *colon = '\0';
        while (*name == ' ')
            name++;
        if (strcmp(name, tap_name) != 0)
            continue;
        if (sscanf(colon + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &c[0], &c[1],
                   &c[2], &c[3], &c[4], &c[5], &c[6], &c[7], &c[8], &c[9]) == 10)
            v = (long long)c[9];
    }
    fclose(f);
    return v;
}

/* Wait (up to 10 s) until the tap has handed over at least n frames: true if it did. */
static bool tap_taken_reaches(long long n)
{
    for (int i = 0; i < 1000; i++) {
        if (tap_taken() >= n)
            return true;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    return false;
}

/* The tap's transmit checksum offload as ethtool -k shows it (tx-checksumming): 1 when the
 * tap's reader took TUN_F_CSUM, 0 when not, -errno. */
static int tap_tx_csum(void)
{
    struct ethtool_value ev = {.cmd = ETHTOOL_GTXCSUM};
    struct ifreq ifr = {0};
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r;

    if (s < 0)
        return -errno;
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", tap_name);
    ifr.ifr_data = (char *)&ev;
    r = ioctl(s, SIOCETHTOOL, &ifr) < 0 ? -errno : (int)ev.data;
    close(s);
    return r;
}

/* Receive frames on pair 0 until one carries marker: true if it came (up to 64 frames, 10 s
 * each); *other is set when one carrying not_marker came first. */
static bool recv_marker(struct tguest *g, const char *marker, const char *not_marker, bool *other)
{
    uint8_t got[4096];
    struct gabi_virtio_net_hdr h;

    for (int i = 0; i < 64; i++) {
        int n = tguest_recv(g, 0, &h, got, sizeof(got), 10000);

        if (n < 0)
            return false;
        CHECK_INT(tguest_post_rx(g, 0, 1, 2048), 0);
        if (not_marker && is_ours(got, (size_t)n, not_marker))
            *other = true;
        if (is_ours(got, (size_t)n, marker))
            return true;
    }
    return false;
}

/* Wait (up to 10 s) until guestabi-net's control socket says port 0 has no front-end. */
static bool port_disconnected(struct netproc *np)
{
    char buf[65536];

    for (int i = 0; i < 1000; i++) {
        if (netproc_control(np, "stats 0", buf, sizeof(buf)) > 0 &&
            strstr(buf, "\"connected\":false"))
            return true;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    return false;
}

TEST(host_to_guest_and_back)
{
    struct netproc np;
    struct tguest g;
    uint8_t f[128], got[4096];
    struct gabi_virtio_net_hdr h;
    size_t len;
    int hs;
    long long taken;
    bool seen = false, stale = false;

    REQUIRE(netproc_start(&np, (const char *[]){"--socket", "@0", "--tap", tap_name, "--mode",
                                                "upstream.guestabi-net.v2", "--control", "@c",
                                                NULL}) == 0);
    hs = host_socket();
    REQUIRE(hs >= 0);
    REQUIRE(tguest_connect(&g, np.sock[0], ~0ull, 1, GABI_VHOST_GUESTQ_EVENT_IDX) == 0);
    CHECK_INT(tguest_post_rx(&g, 0, 64, 2048), 0);

    /* host -> tap -> guestabi-net -> guest RX (the host may send its own frames too:
     * router solicitations and the like; look for ours) */
    len = test_frame(f, "from the host");
    CHECK_INT(send(hs, f, len, 0), (ssize_t)len);
    for (int i = 0; i < 64 && !seen; i++) {
        int n = tguest_recv(&g, 0, &h, got, sizeof(got), 10000);

        if (n < 0)
            break;
        CHECK_INT(h.num_buffers, 1);
        seen = is_ours(got, (size_t)n, "from the host");
        CHECK_INT(tguest_post_rx(&g, 0, 1, 2048), 0);
    }
    CHECK(seen);

    /* guest TX -> guestabi-net -> tap -> host stack */
    seen = false;
    len = test_frame(f, "from the guest");
    CHECK_INT(tguest_send(&g, 0, NULL, f, len, true, false), 0);
    for (int i = 0; i < 64 && !seen; i++) {
        struct pollfd p = {.fd = hs, .events = POLLIN};
        ssize_t n;

        if (poll(&p, 1, 10000) != 1)
            break;
        n = recv(hs, got, sizeof(got), 0);
        seen = n > 0 && is_ours(got, (size_t)n, "from the guest");
    }
    CHECK(seen);

    /* the guest disconnects: frames from the host are taken from the tap and dropped (the
     * tap hands them over, and the next guest never sees them), and a new guest works */
    tguest_free(&g);
    CHECK(port_disconnected(&np));
    taken = tap_taken();
    CHECK(taken >= 0);
    len = test_frame(f, "while away");
    CHECK_INT(send(hs, f, len, 0), (ssize_t)len);
    CHECK(tap_taken_reaches(taken + 1));
    REQUIRE(tguest_connect(&g, np.sock[0], ~0ull, 1, 0) == 0);
    CHECK_INT(tguest_post_rx(&g, 0, 64, 2048), 0);
    len = test_frame(f, "again");
    CHECK_INT(send(hs, f, len, 0), (ssize_t)len);
    seen = recv_marker(&g, "again", "while away", &stale);
    CHECK(seen);
    CHECK(!stale);
    tguest_free(&g);
    close(hs);
    CHECK_INT(netproc_stop(&np), 0);
    /* the tap went away with the program */
    CHECK_INT(if_nametoindex(tap_name), 0);
}

/* docs/guestabi-net.md: TUNSETOFFLOAD gives the tap TUN_F_CSUM only when the guest acked
 * GUEST_CSUM. The kernel shows it as the tap's tx-checksumming (NETIF_F_HW_CSUM). */
TEST(tap_checksum_offload_only_with_guest_csum)
{
    struct netproc np;
    struct tguest g;

    REQUIRE(netproc_start(&np, (const char *[]){"--socket", "@0", "--tap", tap_name, "--mode",
                                                "upstream.guestabi-net.v3", NULL}) == 0);
    CHECK_INT(tap_tx_csum(), 0); /* no guest yet */
    REQUIRE(tguest_connect(&g, np.sock[0], ~0ull, 1, 0) == 0);
    CHECK(g.features & (1ull << GABI_NET_F_GUEST_CSUM));
    CHECK_INT(tap_tx_csum(), 1);
    tguest_free(&g);
    /* the next guest does not take GUEST_CSUM: the tap loses TUN_F_CSUM again */
    REQUIRE(tguest_connect(&g, np.sock[0], ~(1ull << GABI_NET_F_GUEST_CSUM), 1, 0) == 0);
    CHECK(!(g.features & (1ull << GABI_NET_F_GUEST_CSUM)));
    CHECK(g.features & (1ull << GABI_NET_F_CSUM));
    CHECK_INT(tap_tx_csum(), 0);
    tguest_free(&g);
    CHECK_INT(netproc_stop(&np), 0);
    /* a mode without GUEST_CSUM never gives it */
    REQUIRE(netproc_start(&np, (const char *[]){"--socket", "@0", "--tap", tap_name, "--mode",
                                                "upstream.guestabi-net.v2", NULL}) == 0);
    REQUIRE(tguest_connect(&g, np.sock[0], ~0ull, 1, 0) == 0);
    CHECK(!(g.features & (1ull << GABI_NET_F_GUEST_CSUM)));
    CHECK_INT(tap_tx_csum(), 0);
    tguest_free(&g);
    CHECK_INT(netproc_stop(&np), 0);
}

/* docs/guestabi-net.md: while a port is suspended (every vring stopped with GET_VRING_BASE), a
 * tap port leaves the host's frames in the tap until the guest's receive vring runs again. */
TEST(suspended_tap_port_leaves_host_frames_in_the_tap)
{
    struct netproc np;
    struct tguest g;
    uint8_t f[128];
    uint32_t bases[2], used_rx;
    size_t len;
    long long taken;
    int hs;
    bool early = false;

    REQUIRE(netproc_start(&np, (const char *[]){"--socket", "@0", "--tap", tap_name, "--mode",
                                                "upstream.guestabi-net.v2", NULL}) == 0);
    hs = host_socket();
    REQUIRE(hs >= 0);
    REQUIRE(tguest_connect(&g, np.sock[0], ~0ull, 1, 0) == 0);
    CHECK_INT(tguest_post_rx(&g, 0, 64, 2048), 0);
    len = test_frame(f, "before");
    CHECK_INT(send(hs, f, len, 0), (ssize_t)len);
    CHECK(recv_marker(&g, "before", NULL, NULL));

    REQUIRE(tguest_stop(&g, bases) == 0);
    used_rx = gabi_vhost_guestq_used_idx(g.q[0]);
    taken = tap_taken();
    CHECK(taken >= 0);
    len = test_frame(f, "while suspended");
    CHECK_INT(send(hs, f, len, 0), (ssize_t)len);
    /* the guest posts more buffers meanwhile: still nothing is read from the tap, nothing
     * written to the guest */
    CHECK_INT(tguest_post_rx(&g, 0, 8, 2048), 0);
    nanosleep(&(struct timespec){0, 500 * 1000 * 1000}, NULL);
    CHECK_INT(tap_taken(), taken);
    CHECK_INT(gabi_vhost_guestq_used_idx(g.q[0]), used_rx);

    /* resumed where it stopped: the frame comes out of the tap into the guest */
    REQUIRE(tguest_start(&g, 1, bases) == 0);
    CHECK(gabi_vhost_guestq_kick(g.q[0]) >= 0);
    CHECK(recv_marker(&g, "while suspended", "before", &early));
    CHECK(!early);
    CHECK(tap_taken() >= taken + 1);
    tguest_free(&g);
    close(hs);
    CHECK_INT(netproc_stop(&np), 0);
}

int tap_cases_main(int argc, char **argv);
#define main tap_cases_main
TAP_MAIN()
#undef main

int main(int argc, char **argv)
{
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC), s;

    if (fd < 0) {
        printf("1..0 # SKIP /dev/net/tun: %s\n", strerror(errno));
        return 0;
    }
    close(fd);
    s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    if (s < 0) {
        printf("1..0 # SKIP AF_PACKET sockets: %s (not root?)\n", strerror(errno));
        return 0;
    }
    close(s);
    /* a network namespace of our own (guestabi-net inherits it): the machine's real network
     * never sees the tap; where that is not allowed, the tap is short-lived all the same */
    if (unshare(CLONE_NEWNET) < 0) {
        printf("# unshare(CLONE_NEWNET): %s: using this namespace\n", strerror(errno));
    } else {
        /* nothing of the host's own (IPv6 router solicitations and the like) goes out on the
         * tap: what the tap hands over is what this test sent */
        FILE *f = fopen("/proc/sys/net/ipv6/conf/default/disable_ipv6", "w");

        if (f) {
            fputs("1\n", f);
            fclose(f);
        }
    }
    snprintf(tap_name, sizeof(tap_name), "gabit%d", (int)getpid() % 1000000);
    return tap_cases_main(argc, argv);
}
