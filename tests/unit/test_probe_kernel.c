/* SPDX-License-Identifier: MIT */
/* The probe on this machine's real kernel, checked against ioctls the test does itself.
 * Without /dev/net/tun the whole test is a TAP SKIP. */

#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>

#include <linux/if_tun.h>
#include <linux/vhost.h>

#include "tap.h"
#include "test_probe.h"

/* The minimal TUN_F_* set each offload needs, written down here independently of lib/probe:
 * CSUM 0x01, TSO4 0x02, TSO6 0x04, TSO_ECN 0x08, UFO 0x10, USO4 0x20, USO6 0x40. */
static const struct {
    enum gabi_kcap cap;
    unsigned long flags;
} minimal[] = {
    {GABI_KCAP_TAP_CSUM, 0x01},    {GABI_KCAP_TAP_TSO4, 0x03}, {GABI_KCAP_TAP_TSO6, 0x05},
    {GABI_KCAP_TAP_TSO_ECN, 0x0b}, {GABI_KCAP_TAP_UFO, 0x11},  {GABI_KCAP_TAP_USO4, 0x61},
    {GABI_KCAP_TAP_USO6, 0x61},
};

/* A tap of our own: the fd, or -errno of open / TUNSETIFF. */
static int direct_tap(void)
{
    struct ifreq ifr;
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

    if (fd < 0)
        return -errno;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

static enum gabi_cap_state state_of(int error)
{
    switch (error) {
    case 0:
        return GABI_CAP_SUPPORTED;
    case EINVAL:
        return GABI_CAP_UNSUPPORTED;
    case EPERM:
    case EACCES:
        return GABI_CAP_NOT_PERMITTED;
    default:
        return GABI_CAP_ABSENT;
    }
}

static int direct_offload(int fd, unsigned long flags)
{
    return ioctl(fd, TUNSETOFFLOAD, flags) < 0 ? errno : 0;
}

static struct gabi_probe *probe_kernel(const struct gabi_catalog *cat, const char *dev_root)
{
    return probe_roots(cat, NULL, dev_root, GABI_PROBE_KERNEL);
}

TEST(offloads_agree_with_direct_ioctls)
{
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_probe *p;
    int fd;

    REQUIRE(cat);
    p = probe_kernel(cat, NULL);
    REQUIRE(p);
    fd = direct_tap();
    if (fd < 0) {
        /* no tap for us either (no CAP_NET_ADMIN): the probe must say so for every one */
        printf("# TUNSETIFF: %s\n", strerror(-fd));
        for (unsigned k = GABI_KCAP_TAP_VNET_HDR; k <= GABI_KCAP_TAP_USO6; k++)
            CHECK_INT(gabi_probe_kcap(p, k)->state, state_of(-fd));
    } else {
        CHECK_INT(gabi_probe_kcap(p, GABI_KCAP_TAP_VNET_HDR)->state, GABI_CAP_SUPPORTED);
        CHECK(gabi_probe_tap_name(p)[0] != '\0');
        for (size_t i = 0; i < sizeof(minimal) / sizeof(minimal[0]); i++) {
            const struct gabi_probe_kcap *c = gabi_probe_kcap(p, minimal[i].cap);
            int e = direct_offload(fd, minimal[i].flags);

            printf("# %-12s TUNSETOFFLOAD 0x%02lx: %s; probe: %s (%s)\n",
                   gabi_kcap_name(minimal[i].cap), minimal[i].flags, e ? strerror(e) : "ok",
                   gabi_cap_state_name(c->state), c->detail);
            CHECK_INT(c->state, state_of(e));
            CHECK_INT(c->error, e);
            CHECK_INT(c->tun_flags, minimal[i].flags);
            CHECK_INT(gabi_hostcaps_cap(gabi_probe_hostcaps(p), minimal[i].cap), state_of(e));
        }
        close(fd);
    }
    gabi_probe_free(p);
    gabi_catalog_free(cat);
}

/* USO4 and USO6 are accepted only together and only with CSUM: probing either alone would
 * call a USO-capable kernel incapable. Where the kernel has USO, the test sees the coupling
 * itself (either alone is EINVAL) and the probe still calls both supported. */
TEST(uso_is_probed_as_the_kernel_couples_it)
{
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_probe *p;
    int fd, together, alone4, alone6;

    REQUIRE(cat);
    fd = direct_tap();
    if (fd < 0) {
        gabi_catalog_free(cat);
        SKIP_CASE("no tap to try USO on (TUNSETIFF: %s)", strerror(-fd));
    }
    together = direct_offload(fd, 0x61);
    alone4 = direct_offload(fd, 0x21);
    alone6 = direct_offload(fd, 0x41);
    close(fd);
    printf("# CSUM|USO4|USO6: %s, CSUM|USO4: %s, CSUM|USO6: %s\n",
           together ? strerror(together) : "ok", alone4 ? strerror(alone4) : "ok",
           alone6 ? strerror(alone6) : "ok");
    p = probe_kernel(cat, NULL);
    REQUIRE(p);
    CHECK_INT(gabi_probe_kcap(p, GABI_KCAP_TAP_USO4)->state, state_of(together));
    CHECK_INT(gabi_probe_kcap(p, GABI_KCAP_TAP_USO6)->state, state_of(together));
    CHECK_INT(gabi_probe_kcap(p, GABI_KCAP_TAP_USO4)->tun_flags, 0x61);
    CHECK_INT(gabi_probe_kcap(p, GABI_KCAP_TAP_USO6)->tun_flags, 0x61);
    if (together == 0) {
        /* the kernel couples them: either alone is refused, both together are supported */
        CHECK_INT(alone4, EINVAL);
        CHECK_INT(alone6, EINVAL);
        CHECK_INT(gabi_probe_kcap(p, GABI_KCAP_TAP_USO4)->state, GABI_CAP_SUPPORTED);
        CHECK_INT(gabi_probe_kcap(p, GABI_KCAP_TAP_USO6)->state, GABI_CAP_SUPPORTED);
    }
    gabi_probe_free(p);
    gabi_catalog_free(cat);
}

TEST(vnet_header_sizes_agree)
{
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_probe *p;
    int fd;

    REQUIRE(cat);
    fd = direct_tap();
    p = probe_kernel(cat, NULL);
    REQUIRE(p);
    for (size_t i = 0; i < GABI_PROBE_N_VNET_HDR; i++) {
        const struct gabi_probe_vnet_hdr *v = gabi_probe_vnet_hdr(p, i);
        int sz = (int)v->size, e;

        if (fd < 0) {
            CHECK_INT(v->state, state_of(-fd));
            continue;
        }
        e = ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0 ? errno : 0;
        printf("# TUNSETVNETHDRSZ %u: %s; probe: %s\n", v->size, e ? strerror(e) : "ok",
               gabi_cap_state_name(v->state));
        CHECK_INT(v->state, state_of(e));
    }
    CHECK_INT(gabi_probe_vnet_hdr(p, 0)->size, 10);
    CHECK_INT(gabi_probe_vnet_hdr(p, 1)->size, 12);
    if (fd >= 0)
        close(fd);
    gabi_probe_free(p);
    gabi_catalog_free(cat);
}

TEST(vhost_net_agrees)
{
    struct gabi_catalog *cat = builtin_catalog();
    const struct gabi_probe_kcap *c;
    struct gabi_probe *p;
    uint64_t probed = 0, direct = 0;
    int fd;

    REQUIRE(cat);
    p = probe_kernel(cat, NULL);
    REQUIRE(p);
    c = gabi_probe_kcap(p, GABI_KCAP_VHOST_NET);
    fd = open("/dev/vhost-net", O_RDWR | O_CLOEXEC);
    printf("# /dev/vhost-net: %s; probe: %s (%s)\n", fd < 0 ? strerror(errno) : "opened",
           gabi_cap_state_name(c->state), c->detail);
    if (fd < 0) {
        CHECK_INT(c->state, state_of(errno));
        CHECK_INT(gabi_probe_vhost_net_features(p, &probed), -ENOENT);
    } else {
        REQUIRE(ioctl(fd, VHOST_GET_FEATURES, &direct) == 0);
        close(fd);
        CHECK_INT(c->state, GABI_CAP_SUPPORTED);
        CHECK_INT(gabi_probe_vhost_net_features(p, &probed), 0);
        CHECK(probed == direct);
    }
    gabi_probe_free(p);
    gabi_catalog_free(cat);
}

/* --dev-root is what the probe opens: a root whose net/tun is a link to the real one gives the
 * real answers, and its missing vhost-net is absent whatever the real /dev has. */
TEST(dev_root_is_used)
{
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_probe *real, *p;
    char *dir = tmpdir_new();

    REQUIRE(cat && dir);
    REQUIRE(put_link(dir, "net/tun", "/dev/net/tun") == 0);
    real = probe_kernel(cat, NULL);
    p = probe_kernel(cat, dir);
    REQUIRE(real && p);
    for (unsigned k = GABI_KCAP_TAP_VNET_HDR; k <= GABI_KCAP_TAP_USO6; k++)
        CHECK_INT(gabi_probe_kcap(p, k)->state, gabi_probe_kcap(real, k)->state);
    CHECK_INT(gabi_probe_kcap(p, GABI_KCAP_VHOST_NET)->state, GABI_CAP_ABSENT);
    CHECK_STR(gabi_probe_dev_root(p), dir);
    gabi_probe_free(real);
    gabi_probe_free(p);
    tmpdir_remove(dir);
    gabi_catalog_free(cat);
}

/* A platform runs exactly when the kernel took every capability it lists; a linux-6.2 pin is
 * accepted here exactly when this kernel took USO (and the older offloads). */
TEST(platforms_and_check_follow_the_kernel)
{
    struct gabi_catalog *cat = builtin_catalog();
    const struct gabi_platform *p62;
    struct gabi_verdict *v = NULL;
    struct gabi_probe *p;
    struct gabi_pin *pin;
    bool expect = true;
    int fd;

    REQUIRE(cat);
    p62 = gabi_catalog_find_platform(cat, "linux-6.2");
    REQUIRE(p62);
    fd = direct_tap();
    if (fd < 0) {
        expect = false;
    } else {
        for (size_t i = 0; i < sizeof(minimal) / sizeof(minimal[0]); i++)
            if ((p62->requires & (1u << minimal[i].cap)) && direct_offload(fd, minimal[i].flags))
                expect = false;
        close(fd);
    }
    p = probe_kernel(cat, NULL);
    pin = pin_from(cat, "{\"schema\": \"guestabi.pin/1\", \"vm\": \"vm1\", \"platform\": "
                        "\"linux-6.2\", \"devices\": []}");
    REQUIRE(p && pin);
    CHECK_INT(gabi_hostcaps_runs_platform(gabi_probe_hostcaps(p), p62), expect);
    REQUIRE(gabi_check(cat, pin, gabi_probe_hostcaps(p), &v) == 0);
    CHECK_INT(gabi_verdict_ok(v), expect);
    CHECK_INT(gabi_check_ok(pin, gabi_probe_hostcaps(p)), expect);
    printf("# linux-6.2 on this kernel: %s\n", expect ? "runs" : "does not run");
    gabi_verdict_free(v);
    gabi_pin_free(pin);
    gabi_probe_free(p);
    gabi_catalog_free(cat);
}

/* The temporary tap is never persistent: in a network namespace of our own, nothing but lo is
 * left once the probe returns (no other process can create interfaces there). */
TEST(temporary_tap_is_gone)
{
    struct gabi_catalog *cat = builtin_catalog();
    struct if_nameindex *ifs;
    struct gabi_probe *p;
    size_t n = 0;

    REQUIRE(cat);
    if (unshare(CLONE_NEWNET) < 0) {
        int e = errno;

        gabi_catalog_free(cat);
        SKIP_CASE("no network namespace of our own (unshare(CLONE_NEWNET): %s)", strerror(e));
    }
    p = probe_kernel(cat, NULL);
    REQUIRE(p);
    if (gabi_probe_kcap(p, GABI_KCAP_TAP_VNET_HDR)->state == GABI_CAP_SUPPORTED)
        CHECK(gabi_probe_tap_name(p)[0] != '\0');
    ifs = if_nameindex();
    REQUIRE(ifs);
    for (struct if_nameindex *i = ifs; i->if_index; i++) {
        printf("# interface left: %s\n", i->if_name);
        CHECK_STR(i->if_name, "lo");
        n++;
    }
    CHECK_INT(n, 1);
    if (gabi_probe_tap_name(p)[0])
        CHECK_INT(if_nametoindex(gabi_probe_tap_name(p)), 0);
    if_freenameindex(ifs);
    gabi_probe_free(p);
    gabi_catalog_free(cat);
}

int tap_run_cases(int argc, char **argv);
#define main tap_run_cases
TAP_MAIN()
#undef main

int main(int argc, char **argv)
{
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

    if (fd < 0 && (errno == ENOENT || errno == ENODEV || errno == ENXIO)) {
        printf("1..0 # SKIP /dev/net/tun: %s\n", strerror(errno));
        return 0;
    }
    if (fd >= 0)
        close(fd);
    return tap_run_cases(argc, argv);
}
