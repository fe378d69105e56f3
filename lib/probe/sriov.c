/* SPDX-License-Identifier: MIT */
/* The failover part: SR-IOV VFs of each PF netdev, <sysfs>/class/net/IF/device/virtfnN. */

#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "probe/internal.h"

/* "0000:5e:02.0": domain (4 to 8 hex digits), bus, device, function. */
static bool is_pci_address(const char *s)
{
    size_t n = strlen(s), dom = 0;

    while (dom < n && isxdigit((unsigned char)s[dom]))
        dom++;
    if (dom < 4 || dom > 8 || n != dom + 8)
        return false;
    s += dom;
    return s[0] == ':' && isxdigit((unsigned char)s[1]) && isxdigit((unsigned char)s[2]) &&
           s[3] == ':' && isxdigit((unsigned char)s[4]) && isxdigit((unsigned char)s[5]) &&
           s[6] == '.' && s[7] >= '0' && s[7] <= '7';
}

/* A PCI ID attribute, "0x8086", into "8086". */
static int read_pci_id(struct gabi_probe *p, const struct sdir *d, const char *name, char out[5])
{
    char buf[64];
    int r = sattr_read_line(p, d, name, buf, sizeof(buf));

    if (r < 0) {
        if (r == -ENOENT)
            probe_problem(p, sdir_child_path(p, d, name), r, "missing");
        return r;
    }
    if (r != 6 || buf[0] != '0' || buf[1] != 'x' || !isxdigit((unsigned char)buf[2]) ||
        !isxdigit((unsigned char)buf[3]) || !isxdigit((unsigned char)buf[4]) ||
        !isxdigit((unsigned char)buf[5])) {
        probe_problem(p, sdir_child_path(p, d, name), -EINVAL,
                      "malformed: expected a PCI ID such as 0x8086, found \"%s\"", buf);
        return -EINVAL;
    }
    for (int i = 0; i < 4; i++)
        out[i] = (char)tolower((unsigned char)buf[2 + i]);
    out[4] = '\0';
    return 0;
}

/* "52:54:00:24:00:01", lower-cased in place; false when malformed. */
static bool normalize_mac(char *s)
{
    if (strlen(s) != 17)
        return false;
    for (int i = 0; i < 17; i++) {
        if (i % 3 == 2) {
            if (s[i] != ':')
                return false;
        } else if (!isxdigit((unsigned char)s[i])) {
            return false;
        } else {
            s[i] = (char)tolower((unsigned char)s[i]);
        }
    }
    return true;
}

/* The MAC of the VF's netdev, when a network driver holds it (vfio-pci leaves none). */
static const char *vf_mac(struct gabi_probe *p, const struct sdir *vf)
{
    const char **ifs = NULL;
    struct sdir net, dev;
    char buf[64];
    int n, r;

    if (sdir_open(p, vf, "net", &net) < 0)
        return NULL;
    n = sdir_list(p, &net, &ifs);
    if (n <= 0) {
        sdir_close(&net);
        return NULL;
    }
    r = sdir_open(p, &net, ifs[0], &dev);
    sdir_close(&net);
    if (r < 0) {
        probe_problem(p, sdir_child_path(p, &net, ifs[0]), r, "cannot open: %s", strerror(-r));
        return NULL;
    }
    r = sattr_read_line(p, &dev, "address", buf, sizeof(buf));
    if (r >= 0 && !normalize_mac(buf)) {
        probe_problem(p, sdir_child_path(p, &dev, "address"), -EINVAL,
                      "malformed: expected a MAC address such as 52:54:00:12:34:56, found \"%s\"",
                      buf);
        r = -EINVAL;
    }
    sdir_close(&dev);
    return r >= 0 ? gabi_arena_strdup(&p->arena, buf) : NULL;
}

static int probe_vf(struct gabi_probe *p, const struct sdir *pf, const char *pf_name, unsigned i,
                    bool *full)
{
    char link[32], addr[GABI_MAX_NAME], driver[GABI_MAX_NAME], vendor[5], device[5], id[10];
    struct gabi_hostcaps_failover f = {0};
    struct sdir vf;
    int r;

    snprintf(link, sizeof(link), "virtfn%u", i);
    r = slink_basename(p, pf, link, addr, sizeof(addr));
    if (r == -ENOENT)
        probe_problem(p, sdir_child_path(p, pf, link), r, "missing, though sriov_numvfs counts it");
    if (r < 0)
        return 0;
    if (!is_pci_address(addr)) {
        probe_problem(p, sdir_child_path(p, pf, link), -EINVAL,
                      "links to \"%s\", which is not a PCI address", addr);
        return 0;
    }
    r = sdir_open(p, pf, link, &vf);
    if (r < 0) {
        probe_problem(p, sdir_child_path(p, pf, link), r, "cannot open: %s", strerror(-r));
        return r == -ENOMEM ? r : 0;
    }
    if (read_pci_id(p, &vf, "vendor", vendor) < 0 || read_pci_id(p, &vf, "device", device) < 0) {
        sdir_close(&vf);
        return 0;
    }
    snprintf(id, sizeof(id), "%s:%s", vendor, device);
    f.address = addr;
    f.pf = pf_name;
    f.device = id;
    if (slink_basename(p, &vf, "driver", driver, sizeof(driver)) >= 0)
        f.driver = driver;
    f.mac = vf_mac(p, &vf);
    /* Whether a VM holds the VF is not in sysfs: the agent's reservations will say. */
    f.in_use = false;
    sdir_close(&vf);
    if (*full)
        return 0;
    r = gabi_hostcaps_add_failover(p->hostcaps, &f);
    if (r == -E2BIG) {
        probe_problem(p, sdir_child_path(p, pf, link), r,
                      "more than %u failover devices: the rest are left out",
                      GABI_MAX_HOST_DEVICES);
        *full = true;
        return 0;
    }
    return r;
}

int probe_failover(struct gabi_probe *p, int sysfs_fd)
{
    const struct sdir root = {.fd = sysfs_fd, .path = p->sysfs_root};
    const char **ifs = NULL;
    struct stat *seen;
    size_t n_seen = 0;
    bool full = false;
    struct sdir net;
    int n, r;

    r = sdir_open(p, &root, "class/net", &net);
    if (r == -ENOENT)
        return 0;
    if (r < 0) {
        if (r != -ENOMEM)
            probe_problem(p, sdir_child_path(p, &root, "class/net"), r, "cannot open: %s",
                          strerror(-r));
        return r == -ENOMEM ? r : 0;
    }
    n = sdir_list(p, &net, &ifs);
    seen = n > 0 ? gabi_arena_alloc_array(&p->arena, (size_t)n, sizeof(*seen)) : NULL;
    if (n > 0 && !seen)
        n = -ENOMEM;
    r = 0;
    for (int i = 0; i < n && r >= 0; i++) {
        char rel[GABI_MAX_NAME + 16];
        struct sdir dev;
        struct stat st;
        uint32_t numvfs, total;
        bool dup = false;

        snprintf(rel, sizeof(rel), "%s/device", ifs[i]);
        r = sdir_open(p, &net, rel, &dev);
        if (r == -ENOENT) { /* a virtual netdev */
            r = 0;
            continue;
        }
        if (r < 0) {
            if (r != -ENOMEM)
                probe_problem(p, sdir_child_path(p, &net, rel), r, "cannot open: %s", strerror(-r));
            r = r == -ENOMEM ? r : 0;
            continue;
        }
        if (faccessat(dev.fd, "sriov_numvfs", F_OK, 0) < 0 && errno == ENOENT) {
            sdir_close(&dev); /* not a PF */
            continue;
        }
        /* Several netdevs (ports, representors) may share one PF: list its VFs once. */
        if (fstat(dev.fd, &st) == 0) {
            for (size_t k = 0; k < n_seen && !dup; k++)
                dup = seen[k].st_dev == st.st_dev && seen[k].st_ino == st.st_ino;
            if (!dup)
                seen[n_seen++] = st;
        }
        if (dup || sattr_read_u32(p, &dev, "sriov_numvfs", GABI_PROBE_MAX_VFS, &numvfs) < 0) {
            sdir_close(&dev);
            continue;
        }
        if (sattr_read_u32(p, &dev, "sriov_totalvfs", UINT16_MAX, &total) == 0 && numvfs > total) {
            probe_problem(p, sdir_child_path(p, &dev, "sriov_numvfs"), -EINVAL,
                          "%u VFs, more than sriov_totalvfs (%u): refused", numvfs, total);
            sdir_close(&dev);
            continue;
        }
        for (uint32_t v = 0; v < numvfs && r >= 0; v++)
            r = probe_vf(p, &dev, ifs[i], v, &full);
        sdir_close(&dev);
    }
    sdir_close(&net);
    return n == -ENOMEM ? -ENOMEM : r;
}
