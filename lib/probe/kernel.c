/* SPDX-License-Identifier: MIT */
/* The kernel part: tap offloads on a temporary tap, vnet header sizes, /dev/vhost-net. */

#include <assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <net/if.h>

#include <linux/if_tun.h>
#include <linux/vhost.h>

#include "probe/internal.h"

/* Debian 12's linux-libc-dev (6.1) predates these (Linux 6.2). */
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif

static_assert(TUN_F_CSUM == 0x01 && TUN_F_TSO4 == 0x02 && TUN_F_TSO6 == 0x04 &&
                  TUN_F_TSO_ECN == 0x08 && TUN_F_UFO == 0x10,
              "TUN_F_* values are kernel ABI");
static_assert(PROBE_IFNAMSIZ == IFNAMSIZ, "PROBE_IFNAMSIZ");

enum gabi_cap_state probe_state_for_errno(int error)
{
    switch (error) {
    case 0:
        return GABI_CAP_SUPPORTED;
    case EINVAL:
        return GABI_CAP_UNSUPPORTED;
    case ENOENT:
    case ENODEV:
    case ENXIO:
    case ENOTDIR:
        return GABI_CAP_ABSENT;
    case EPERM:
    case EACCES:
        return GABI_CAP_NOT_PERMITTED;
    default:
        return GABI_CAP_UNKNOWN;
    }
}

/* "CSUM|TSO4" */
static const char *tun_flags_text(struct gabi_probe *p, unsigned flags)
{
    static const struct {
        unsigned flag;
        const char *name;
    } names[] = {
        {TUN_F_CSUM, "CSUM"},       {TUN_F_TSO4, "TSO4"}, {TUN_F_TSO6, "TSO6"},
        {TUN_F_TSO_ECN, "TSO_ECN"}, {TUN_F_UFO, "UFO"},   {TUN_F_USO4, "USO4"},
        {TUN_F_USO6, "USO6"},
    };
    char buf[128] = "";
    size_t len = 0;

    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (flags & names[i].flag)
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? "|" : "",
                                    names[i].name);
    return gabi_arena_strdup(&p->arena, buf);
}

/* Why a capability needs more than its own flag: the kernel's coupling rules (tun.c,
 * set_offload()): everything sits under CSUM; ECN only with TSO; USO4 and USO6 only together. */
static const char *coupling_note(enum gabi_kcap cap)
{
    switch (cap) {
    case GABI_KCAP_TAP_TSO4:
    case GABI_KCAP_TAP_TSO6:
        return " (TSO needs CSUM)";
    case GABI_KCAP_TAP_TSO_ECN:
        return " (TSO_ECN needs CSUM and TSO)";
    case GABI_KCAP_TAP_UFO:
        return " (UFO needs CSUM)";
    case GABI_KCAP_TAP_USO4:
    case GABI_KCAP_TAP_USO6:
        return " (the kernel takes USO4 and USO6 only together, and only with CSUM)";
    default:
        return "";
    }
}

/* The smallest TUN_F_* set the kernel can accept for `cap`, given what was found so far. */
static unsigned minimal_flags(const struct gabi_probe *p, enum gabi_kcap cap)
{
    unsigned flag = gabi_kcap_tun_flag(cap);

    switch (cap) {
    case GABI_KCAP_TAP_CSUM:
        return TUN_F_CSUM;
    case GABI_KCAP_TAP_TSO4:
    case GABI_KCAP_TAP_TSO6:
    case GABI_KCAP_TAP_UFO:
        return TUN_F_CSUM | flag;
    case GABI_KCAP_TAP_TSO_ECN:
        /* with whichever TSO the kernel took; TSO4 when it took neither */
        if (p->kcaps[GABI_KCAP_TAP_TSO4].state != GABI_CAP_SUPPORTED &&
            p->kcaps[GABI_KCAP_TAP_TSO6].state == GABI_CAP_SUPPORTED)
            return TUN_F_CSUM | TUN_F_TSO6 | TUN_F_TSO_ECN;
        return TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO_ECN;
    case GABI_KCAP_TAP_USO4:
    case GABI_KCAP_TAP_USO6:
        return TUN_F_CSUM | TUN_F_USO4 | TUN_F_USO6;
    default:
        return flag;
    }
}

static void set_kcap(struct gabi_probe *p, enum gabi_kcap cap, enum gabi_cap_state s, int error,
                     unsigned tun_flags, const char *detail)
{
    p->kcaps[cap] = (struct gabi_probe_kcap){
        .state = s, .error = error, .tun_flags = tun_flags, .detail = detail};
}

/* Every tap capability and vnet header size gets the same answer (no tap could be made). */
static void set_all_tap(struct gabi_probe *p, enum gabi_cap_state s, int error, const char *detail)
{
    for (unsigned k = GABI_KCAP_TAP_VNET_HDR; k <= GABI_KCAP_TAP_USO6; k++)
        set_kcap(p, k, s, error, k == GABI_KCAP_TAP_VNET_HDR ? 0 : minimal_flags(p, k), detail);
    for (size_t i = 0; i < GABI_PROBE_N_VNET_HDR; i++) {
        p->vnet[i].state = s;
        p->vnet[i].error = error;
    }
}

static const char *errno_text(struct gabi_probe *p, const char *what, int error)
{
    return gabi_arena_printf(&p->arena, "%s: %s", what, strerror(error));
}

/* Open a device node under the dev root; on failure fills *ret_state and returns -errno. */
static int open_device(struct gabi_probe *p, const char *path, enum gabi_cap_state *ret_state,
                       const char **ret_detail)
{
    struct stat st;
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

    if (fd < 0) {
        int e = errno;

        *ret_state = probe_state_for_errno(e);
        *ret_detail = errno_text(p, path, e);
        if (*ret_state == GABI_CAP_UNKNOWN)
            probe_problem(p, path, -e, "cannot open: %s", strerror(e));
        return -e;
    }
    if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode)) {
        close(fd);
        *ret_state = GABI_CAP_ABSENT;
        *ret_detail = gabi_arena_printf(&p->arena, "%s: not a character device", path);
        probe_problem(p, path, -ENODEV, "not a character device: taken as absent");
        return -ENODEV;
    }
    return fd;
}

static void probe_offloads(struct gabi_probe *p, int fd)
{
    for (unsigned k = GABI_KCAP_TAP_CSUM; k <= GABI_KCAP_TAP_USO6; k++) {
        unsigned flags = minimal_flags(p, k);
        const char *names = tun_flags_text(p, flags);
        enum gabi_cap_state s;
        int e = 0;

        if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags) < 0)
            e = errno;
        s = probe_state_for_errno(e);
        if (s == GABI_CAP_UNKNOWN)
            probe_problem(p, p->tap_name, -e, "TUNSETOFFLOAD %s: %s", names, strerror(e));
        set_kcap(p, k, s, e, flags,
                 gabi_arena_printf(&p->arena, "TUNSETOFFLOAD %s: %s%s", names,
                                   e ? strerror(e) : "accepted", coupling_note(k)));
    }
    (void)ioctl(fd, TUNSETOFFLOAD, 0ul);
}

const unsigned probe_vnet_hdr_sizes[GABI_PROBE_N_VNET_HDR] = {10, 12, 20};

static void try_vnet_hdr_sizes(struct gabi_probe *p, int fd)
{
    for (size_t i = 0; i < GABI_PROBE_N_VNET_HDR; i++) {
        int sz = (int)probe_vnet_hdr_sizes[i];
        int e = ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0 ? errno : 0;

        p->vnet[i].state = probe_state_for_errno(e);
        p->vnet[i].error = e;
    }
}

static void probe_tap(struct gabi_probe *p)
{
    _cleanup_close_ int fd = -1;
    const char *path = gabi_arena_printf(&p->arena, "%s/net/tun", p->dev_root);
    const char *detail = NULL;
    enum gabi_cap_state s = GABI_CAP_UNKNOWN;
    unsigned features = 0;
    struct ifreq ifr;
    bool vnet;
    int r;

    if (!path)
        return;
    r = open_device(p, path, &s, &detail);
    if (r < 0) {
        set_all_tap(p, s, -r, detail);
        return;
    }
    fd = r;
    if (ioctl(fd, TUNGETFEATURES, &features) < 0) {
        int e = errno;

        probe_problem(p, path, -e, "TUNGETFEATURES: %s: not the tun driver, taken as absent",
                      strerror(e));
        set_all_tap(p, GABI_CAP_ABSENT, e, errno_text(p, "TUNGETFEATURES", e));
        return;
    }
    if (!(features & IFF_TAP)) {
        set_all_tap(p, GABI_CAP_ABSENT, ENODEV, "TUNGETFEATURES: the tun driver has no tap mode");
        return;
    }
    vnet = features & IFF_VNET_HDR;
    for (;;) {
        /* An empty name: the kernel picks tapN. Never TUNSETPERSIST: closing fd removes it. */
        memset(&ifr, 0, sizeof(ifr));
        ifr.ifr_flags = (short)(IFF_TAP | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0));
        if (ioctl(fd, TUNSETIFF, &ifr) == 0)
            break;
        if (errno == EINVAL && vnet) {
            vnet = false;
            continue;
        }
        r = errno;
        s = probe_state_for_errno(r);
        if (s == GABI_CAP_UNKNOWN)
            probe_problem(p, path, -r, "TUNSETIFF: %s", strerror(r));
        set_all_tap(p, s, r, errno_text(p, "TUNSETIFF (creating a temporary tap)", r));
        return;
    }
    gabi_strlcpy(p->tap_name, ifr.ifr_name, sizeof(p->tap_name));
    if (vnet)
        set_kcap(p, GABI_KCAP_TAP_VNET_HDR, GABI_CAP_SUPPORTED, 0, 0,
                 "TUNSETIFF IFF_TAP|IFF_NO_PI|IFF_VNET_HDR: accepted");
    else
        set_kcap(p, GABI_KCAP_TAP_VNET_HDR, GABI_CAP_UNSUPPORTED, EINVAL, 0,
                 features & IFF_VNET_HDR ? "TUNSETIFF refused IFF_VNET_HDR"
                                         : "TUNGETFEATURES lacks IFF_VNET_HDR");
    probe_offloads(p, fd);
    if (vnet) {
        try_vnet_hdr_sizes(p, fd);
    } else {
        for (size_t i = 0; i < GABI_PROBE_N_VNET_HDR; i++) {
            p->vnet[i].state = GABI_CAP_UNSUPPORTED;
            p->vnet[i].error = EINVAL;
        }
    }
}

static void probe_vhost_net(struct gabi_probe *p)
{
    _cleanup_close_ int fd = -1;
    const char *path = gabi_arena_printf(&p->arena, "%s/vhost-net", p->dev_root);
    const char *detail = NULL;
    enum gabi_cap_state s = GABI_CAP_UNKNOWN;
    uint64_t features = 0;
    int r;

    if (!path)
        return;
    r = open_device(p, path, &s, &detail);
    if (r < 0) {
        set_kcap(p, GABI_KCAP_VHOST_NET, s, -r, 0, detail);
        return;
    }
    fd = r;
    if (ioctl(fd, VHOST_GET_FEATURES, &features) < 0) {
        int e = errno;

        probe_problem(p, path, -e, "VHOST_GET_FEATURES: %s: not vhost-net, taken as absent",
                      strerror(e));
        set_kcap(p, GABI_KCAP_VHOST_NET, GABI_CAP_ABSENT, e, 0,
                 errno_text(p, "VHOST_GET_FEATURES", e));
        return;
    }
    p->has_vhost_net_features = true;
    p->vhost_net_features = features;
    set_kcap(p, GABI_KCAP_VHOST_NET, GABI_CAP_SUPPORTED, 0, 0,
             gabi_arena_printf(&p->arena, "%s: VHOST_GET_FEATURES 0x%llx", path,
                               (unsigned long long)features));
}

void probe_kernel(struct gabi_probe *p)
{
    probe_tap(p);
    probe_vhost_net(p);
    for (unsigned k = 0; k < GABI_KCAP_COUNT; k++)
        if (p->kcaps[k].state != GABI_CAP_UNKNOWN)
            gabi_hostcaps_set_cap(p->hostcaps, k, p->kcaps[k].state);
}
