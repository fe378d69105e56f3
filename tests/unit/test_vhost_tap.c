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
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
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

TEST(host_to_guest_and_back)
{
    struct netproc np;
    struct tguest g;
    uint8_t f[128], got[4096];
    struct gabi_virtio_net_hdr h;
    size_t len;
    int hs;
    bool seen = false;

    REQUIRE(netproc_start(&np, (const char *[]){"--socket", "@0", "--tap", tap_name, "--mode",
                                                "upstream.guestabi-net.v2", NULL}) == 0);
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

    /* the guest disconnects: frames from the host are dropped, and a new guest works */
    tguest_free(&g);
    CHECK_INT(send(hs, f, len, 0), (ssize_t)len);
    REQUIRE(tguest_connect(&g, np.sock[0], ~0ull, 1, 0) == 0);
    CHECK_INT(tguest_post_rx(&g, 0, 64, 2048), 0);
    len = test_frame(f, "again");
    CHECK_INT(send(hs, f, len, 0), (ssize_t)len);
    seen = false;
    for (int i = 0; i < 64 && !seen; i++) {
        int n = tguest_recv(&g, 0, &h, got, sizeof(got), 10000);

        if (n < 0)
            break;
        seen = is_ours(got, (size_t)n, "again");
        CHECK_INT(tguest_post_rx(&g, 0, 1, 2048), 0);
    }
    CHECK(seen);
    tguest_free(&g);
    close(hs);
    CHECK_INT(netproc_stop(&np), 0);
    /* the tap went away with the program */
    CHECK_INT(if_nametoindex(tap_name), 0);
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
    if (unshare(CLONE_NEWNET) < 0)
        printf("# unshare(CLONE_NEWNET): %s: using this namespace\n", strerror(errno));
    snprintf(tap_name, sizeof(tap_name), "gabit%d", (int)getpid() % 1000000);
    return tap_cases_main(argc, argv);
}
