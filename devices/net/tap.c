/* SPDX-License-Identifier: MIT */
/* A Linux tap device with virtio-net headers: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR. */

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <guestabi/util.h>
#include "net.h"

static int ifreq_ioctl(const char *name, unsigned long req, struct ifreq *ifr)
{
    _cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    if (s < 0)
        return -errno;
    gabi_strlcpy(ifr->ifr_name, name, IFNAMSIZ);
    return ioctl(s, req, ifr) < 0 ? -errno : 0;
}

int net_tap_open(struct net_tap *tap, const char *name, char *why, size_t why_size)
{
    struct ifreq ifr = {0};
    _cleanup_close_ int fd = -1;
    int r;

    if (strlen(name) >= IFNAMSIZ) {
        snprintf(why, why_size, "tap name %s is longer than %d bytes", name, IFNAMSIZ - 1);
        return -ENAMETOOLONG;
    }
    fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        r = -errno;
        snprintf(why, why_size, "/dev/net/tun: %s", strerror(-r));
        return r;
    }
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    gabi_strlcpy(ifr.ifr_name, name, IFNAMSIZ);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        r = -errno;
        snprintf(why, why_size, "tap %s: TUNSETIFF: %s", name, strerror(-r));
        return r;
    }
    gabi_strlcpy(tap->name, ifr.ifr_name, sizeof(tap->name));
    tap->fd = fd;
    r = net_tap_configure(tap, 12, false);
    if (r < 0) {
        tap->fd = -1;
        snprintf(why, why_size, "tap %s: cannot set the virtio-net header: %s", name, strerror(-r));
        return r;
    }
    /* up, so that the host stack sends to it */
    memset(&ifr, 0, sizeof(ifr));
    r = ifreq_ioctl(tap->name, SIOCGIFFLAGS, &ifr);
    if (r >= 0) {
        ifr.ifr_flags |= IFF_UP;
        r = ifreq_ioctl(tap->name, SIOCSIFFLAGS, &ifr);
    }
    if (r < 0) {
        tap->fd = -1;
        snprintf(why, why_size, "tap %s: cannot bring it up: %s", name, strerror(-r));
        return r;
    }
    tap->fd = TAKE_FD(fd);
    return 0;
}

void net_tap_close(struct net_tap *tap)
{
    close_and_clear(&tap->fd);
}

int net_tap_configure(struct net_tap *tap, unsigned hdr_len, bool guest_csum)
{
    int size = (int)hdr_len;
    unsigned offloads = guest_csum ? TUN_F_CSUM : 0;

    if (ioctl(tap->fd, TUNSETVNETHDRSZ, &size) < 0)
        return -errno;
    /* with TUN_F_CSUM the host may hand us partial checksums, which only a guest that
     * negotiated GUEST_CSUM accepts; without it, the kernel completes them */
    if (ioctl(tap->fd, TUNSETOFFLOAD, offloads) < 0)
        return -errno;
    return 0;
}

int net_tap_set_mtu(struct net_tap *tap, unsigned mtu)
{
    struct ifreq ifr = {0};

    ifr.ifr_mtu = (int)mtu;
    return ifreq_ioctl(tap->name, SIOCSIFMTU, &ifr);
}
