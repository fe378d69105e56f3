/* SPDX-License-Identifier: MIT */
#pragma once

/* lib/probe internals: the result object, problems, and bounded sysfs reading. Internal. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <guestabi/probe.h>

#include "common/arena.h"
#include <guestabi/util.h>

#define PROBE_IFNAMSIZ 16 /* IFNAMSIZ, without <net/if.h> here */

struct gabi_probe {
    struct gabi_arena arena;
    const struct gabi_catalog *cat;
    struct gabi_hostcaps *hostcaps;
    unsigned parts;
    const char *sysfs_root;
    const char *dev_root;
    const char *release;
    char tap_name[PROBE_IFNAMSIZ];
    struct gabi_probe_kcap kcaps[GABI_KCAP_COUNT];
    struct gabi_probe_vnet_hdr vnet[GABI_PROBE_N_VNET_HDR];
    bool has_vhost_net_features;
    uint64_t vhost_net_features;
    struct gabi_probe_mdev_type *mdev;
    size_t n_mdev;
    struct gabi_probe_backend *backends;
    size_t n_backends;
    size_t n_hv_properties;
    struct gabi_probe_problem problems[GABI_PROBE_MAX_PROBLEMS];
    size_t n_problems;
    size_t n_problems_total;
};

/* Record a problem about `path` (copied). Never fails: on allocation failure the problem is
 * only counted. */
void probe_problem(struct gabi_probe *p, const char *path, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The cap state an errno from opening a device or a refused ioctl means: EINVAL unsupported,
 * ENOENT/ENODEV/ENXIO/ENOTDIR absent, EPERM/EACCES not permitted; anything else UNKNOWN. */
enum gabi_cap_state probe_state_for_errno(int error);

/* The TUNSETVNETHDRSZ sizes tried: 10, 12, 20. */
extern const unsigned probe_vnet_hdr_sizes[GABI_PROBE_N_VNET_HDR];

/* The parts, each filling the result and the hostcaps. */
void probe_kernel(struct gabi_probe *p);
int probe_mdev(struct gabi_probe *p, int sysfs_fd);
int probe_failover(struct gabi_probe *p, int sysfs_fd);
/* The hypervisor part (hypervisor.c): sets the hostcaps member; -ENOMEM only. */
int probe_hypervisor(struct gabi_probe *p, const struct gabi_probe_options *o);

/* ---- bounded sysfs reading ------------------------------------------------------------- */

/* An open directory and its path (for messages; arena-owned). */
struct sdir {
    int fd;
    const char *path;
};

/* Open `name` (a relative path) under `parent` as a directory. -errno; records no problem. */
int sdir_open(struct gabi_probe *p, const struct sdir *parent, const char *name, struct sdir *ret);
void sdir_close(struct sdir *d);

/* The sorted entry names of directory d ("." and ".." left out), arena-allocated. Names longer
 * than GABI_MAX_NAME - 1 bytes or with bytes outside printable ASCII are problems and left
 * out; more than GABI_PROBE_MAX_ENTRIES entries is a problem and the rest are left out.
 * Returns the count, or -errno (with a problem recorded). */
int sdir_list(struct gabi_probe *p, const struct sdir *d, const char ***ret_names);

/* Read attribute `name` of d: a regular file of at most size - 1 bytes, NUL-terminated into
 * buf. One trailing newline is removed. Returns the length, -ENOENT silently when the file
 * does not exist, or another -errno with a problem recorded (too large: -EFBIG; not a regular
 * file: -EINVAL). */
int sattr_read(struct gabi_probe *p, const struct sdir *d, const char *name, char *buf,
               size_t size);
/* The same, for a one-line attribute of printable ASCII (no control bytes): else -EINVAL with
 * a problem. */
int sattr_read_line(struct gabi_probe *p, const struct sdir *d, const char *name, char *buf,
                    size_t size);
/* A decimal attribute in [0, max]: 0 and *ret, -ENOENT silently, or -errno with a problem. */
int sattr_read_u32(struct gabi_probe *p, const struct sdir *d, const char *name, uint32_t max,
                   uint32_t *ret);
/* The last path component of symlink `name` of d into buf: length, -ENOENT silently, or
 * -errno with a problem (-EINVAL when it is not a symlink or its target is malformed). */
int slink_basename(struct gabi_probe *p, const struct sdir *d, const char *name, char *buf,
                   size_t size);

/* "dir/name" in the arena (NULL on allocation failure). */
const char *sdir_child_path(struct gabi_probe *p, const struct sdir *d, const char *name);

/* Whether s is 1..max bytes of printable ASCII without spaces. */
bool probe_is_token(const char *s, size_t max);
