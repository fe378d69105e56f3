/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The host probe: what this host really supports, as a hostcaps document for the engine.
 *
 *   kernel      the release (uname) and, per capability, what the kernel answered: tap offloads
 *               through TUNSETOFFLOAD on a temporary tap, vnet header sizes through
 *               TUNSETVNETHDRSZ, /dev/vhost-net through VHOST_GET_FEATURES.
 *   mdev        mediated device types, <sysfs>/class/mdev_bus/PARENT/mdev_supported_types/TYPE,
 *               and the device-state versions each loads: from the driver's migration_versions
 *               attribute (guestabi's proposal, docs/probe.md), else from the catalog's rule
 *               for the type, else none (the type cannot migrate and is left out of hostcaps).
 *   failover    SR-IOV VFs of every PF netdev under <sysfs>/class/net, read only.
 *   vhost-user  back-end sockets, through a front-end the caller supplies (a hook: the probe
 *               itself speaks no vhost-user; guestabi passes lib/vhost's front-end).
 *   hypervisor  the QEMU binary VMs run with: `-version`, `-machine help` and
 *               `-device virtio-net-pci,help`, each a child process killed after a timeout;
 *               no VM is started. A missing binary is ABSENT, a run that times out, exits
 *               non-zero or prints what cannot be parsed is FAILED: neither is "no properties".
 *
 * Every answer for a capability is one of: supported, unsupported (the kernel refused it with
 * EINVAL), absent (the device or interface does not exist), not-permitted (EPERM, EACCES).
 * Malformed sysfs content is bounded and never fatal: it becomes a problem naming the file,
 * and what it concerned is left out. The probe owns no thread and keeps no fd open after
 * gabi_probe_run() returns; the temporary tap is never persistent and is gone by then.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <guestabi/cleanup.h>
#include <guestabi/abi.h>
#include <guestabi/error.h>
#include <guestabi/features.h>

/* Parts of the probe; options.parts 0 means all of them. */
enum {
    GABI_PROBE_KERNEL = 1u << 0,
    GABI_PROBE_MDEV = 1u << 1,
    GABI_PROBE_FAILOVER = 1u << 2,
    GABI_PROBE_VHOST_USER = 1u << 3,
    GABI_PROBE_HYPERVISOR = 1u << 4,
    GABI_PROBE_ALL = (1u << 5) - 1,
};

/* Bounds on what the probe reads. */
#define GABI_PROBE_MAX_ATTR       4096u /* bytes in one sysfs attribute (a page, as sysfs) */
#define GABI_PROBE_MAX_ENTRIES    4096u /* entries read from one directory */
#define GABI_PROBE_MAX_VFS        256u  /* sriov_numvfs of one PF */
#define GABI_PROBE_MAX_PROBLEMS   64u   /* problems kept; the rest are only counted */
#define GABI_PROBE_MAX_VHOST_USER 64u   /* back-end sockets (GABI_MAX_BACKENDS) */
#define GABI_PROBE_QEMU_DEFAULT   "qemu-system-x86_64" /* looked up on PATH */
#define GABI_PROBE_QEMU_TIMEOUT   5000u        /* ms one QEMU run may take before it is killed */
#define GABI_PROBE_MAX_QEMU_OUT   (256u << 10) /* bytes of one QEMU run's output */

/* ---- the vhost-user hook ----------------------------------------------------------------- */

/* A vhost-user back-end to probe. */
struct gabi_probe_vhost_user {
    const char *name; /* back-end name in hostcaps: "ovs0" */
    enum gabi_device_class cls;
    const char *socket; /* unix socket path */
};

/* What a back-end offered a front-end: GET_FEATURES, GET_PROTOCOL_FEATURES, GET_QUEUE_NUM and
 * the largest queue size it accepts. */
struct gabi_probe_offer {
    uint64_t features;
    uint64_t protocol_features;
    uint32_t max_queue_pairs;
    uint32_t max_queue_size;
};

/* Connect to b->socket as a vhost-user front-end, read the offer and disconnect; 0 and
 * *ret_offer, or -errno with reterr filled. Supplied by the program (lib/vhost's front-end);
 * the probe never guesses an offer without one. */
typedef int (*gabi_probe_vhost_user_fn)(const struct gabi_probe_vhost_user *b,
                                        struct gabi_probe_offer *ret_offer,
                                        struct gabi_error *reterr, void *userdata);

/* ---- options ----------------------------------------------------------------------------- */

struct gabi_probe_options {
    const char *host;       /* host name in hostcaps; NULL: uname's nodename */
    const char *sysfs_root; /* NULL: "/sys" */
    const char *dev_root;   /* NULL: "/dev"; tun is <dev_root>/net/tun */
    unsigned parts;         /* GABI_PROBE_* bits; 0: all */
    const struct gabi_probe_vhost_user *vhost_user; /* back-ends to probe */
    size_t n_vhost_user;
    gabi_probe_vhost_user_fn vhost_user_probe; /* NULL: back-ends are reported not probed */
    void *vhost_user_userdata;
    const char *qemu;         /* the QEMU binary: a path, or a name looked up on PATH; NULL:
                                 GABI_PROBE_QEMU_DEFAULT */
    unsigned qemu_timeout_ms; /* per QEMU run; 0: GABI_PROBE_QEMU_TIMEOUT */
};

/* ---- results ----------------------------------------------------------------------------- */

/* What the probe found for one kernel capability. */
struct gabi_probe_kcap {
    enum gabi_cap_state state;
    int error; /* errno of the call that decided it (EINVAL, ENOENT, ...); 0 if supported */
    unsigned tun_flags; /* tap offloads: the TUN_F_* set TUNSETOFFLOAD was tried with */
    const char *detail; /* what was tried and why, one sentence */
};

/* One TUNSETVNETHDRSZ answer. */
struct gabi_probe_vnet_hdr {
    unsigned size; /* 10 (virtio_net_hdr), 12 (with num_buffers), 20 (with hash report) */
    enum gabi_cap_state state;
    int error;
};

#define GABI_PROBE_N_VNET_HDR 3u

/* Where a device type's state versions came from. */
enum gabi_probe_versions_source {
    GABI_PROBE_VERSIONS_NONE = 0,  /* nowhere: the type cannot migrate (left out of hostcaps) */
    GABI_PROBE_VERSIONS_ATTRIBUTE, /* the driver's migration_versions attribute */
    GABI_PROBE_VERSIONS_CATALOG,   /* the catalog's device-type rule */
};
const char *gabi_probe_versions_source_name(enum gabi_probe_versions_source s);

/* One mdev type under one parent device. */
struct gabi_probe_mdev_type {
    const char *parent; /* the class/mdev_bus entry: "0000:00:02.0", "mtty" */
    const char *id;     /* the type directory: "mtty-1", "i915-GVTg_V5_4" */
    const char *path;   /* the type directory, for messages */
    const char *name;   /* attributes; NULL when the driver has none */
    const char *device_api;
    const char *description;      /* newlines folded to "; " */
    uint32_t available_instances; /* UINT32_MAX when unknown */
    enum gabi_probe_versions_source source;
    struct gabi_versions loads;  /* empty when source is NONE */
    struct gabi_versions writes; /* what a new instance writes: the newest version */
    const char *why;             /* source NONE: why the type cannot migrate */
};

/* What happened to one configured vhost-user back-end. */
enum gabi_probe_backend_state {
    GABI_PROBE_BACKEND_PROBED = 0, /* the offer was read; the back-end is in hostcaps */
    GABI_PROBE_BACKEND_NOT_PROBED, /* no front-end hook: left out of hostcaps */
    GABI_PROBE_BACKEND_FAILED,     /* the hook failed: left out of hostcaps */
};

struct gabi_probe_backend {
    const char *name;
    enum gabi_device_class cls;
    const char *socket;
    enum gabi_probe_backend_state state;
    struct gabi_probe_offer offer; /* PROBED only */
    size_t n_modes;                /* catalog modes the offer covers (PROBED only) */
    const char *message;           /* NOT_PROBED / FAILED: why */
};

/* Something the probe could not read or did not accept; never fatal. */
struct gabi_probe_problem {
    const char *path; /* the file or directory it concerns */
    int code;         /* -errno */
    const char *message;
};

struct gabi_probe;

/*
 * Probe this host (or the fixture trees the options name). cat must be finalized and outlive
 * the result. Fails only when the probe cannot start: a sysfs or dev root that is not a
 * directory, out of memory (reterr names the root). Anything wrong below the roots is a problem
 * in the result.
 */
int gabi_probe_run(const struct gabi_catalog *cat, const struct gabi_probe_options *opts,
                   struct gabi_probe **ret, struct gabi_error *reterr);
struct gabi_probe *gabi_probe_free(struct gabi_probe *p);
GABI_DEFINE_FREEP(struct gabi_probe, gabi_probe_free)

/* The hostcaps document the probe built (owned by the result). */
const struct gabi_hostcaps *gabi_probe_hostcaps(const struct gabi_probe *p);
/* Take the hostcaps out of the result (gabi_probe_hostcaps() is NULL afterwards); the caller
 * frees it with gabi_hostcaps_free(). It needs only the catalog to outlive it. */
struct gabi_hostcaps *gabi_probe_hostcaps_steal(struct gabi_probe *p);

unsigned gabi_probe_parts(const struct gabi_probe *p);
const char *gabi_probe_sysfs_root(const struct gabi_probe *p);
const char *gabi_probe_dev_root(const struct gabi_probe *p);

/* Kernel. The tap name is the kernel-chosen name of the temporary tap ("" if none was made). */
const char *gabi_probe_kernel_release(const struct gabi_probe *p);
const char *gabi_probe_tap_name(const struct gabi_probe *p);
const struct gabi_probe_kcap *gabi_probe_kcap(const struct gabi_probe *p, enum gabi_kcap cap);
const struct gabi_probe_vnet_hdr *gabi_probe_vnet_hdr(const struct gabi_probe *p, size_t i);
/* VHOST_GET_FEATURES of /dev/vhost-net: 0 and *ret, or -ENOENT when it was not read. */
int gabi_probe_vhost_net_features(const struct gabi_probe *p, uint64_t *ret);

size_t gabi_probe_n_mdev_types(const struct gabi_probe *p);
const struct gabi_probe_mdev_type *gabi_probe_mdev_type(const struct gabi_probe *p, size_t i);

size_t gabi_probe_n_backends(const struct gabi_probe *p);
const struct gabi_probe_backend *gabi_probe_backend(const struct gabi_probe *p, size_t i);

/* The hypervisor (the hostcaps member, state UNKNOWN when the part was not probed), and how
 * many virtio-net-pci properties QEMU listed in all (the hostcaps keep the feature ones). */
const struct gabi_hostcaps_hypervisor *gabi_probe_hypervisor(const struct gabi_probe *p);
size_t gabi_probe_hypervisor_n_properties(const struct gabi_probe *p);

/* Problems kept (at most GABI_PROBE_MAX_PROBLEMS) and how many there were in all. */
size_t gabi_probe_n_problems(const struct gabi_probe *p);
size_t gabi_probe_n_problems_total(const struct gabi_probe *p);
const struct gabi_probe_problem *gabi_probe_problem(const struct gabi_probe *p, size_t i);

/* ---- the migration_versions attribute (docs/probe.md) ------------------------------------ */

/*
 * Parse a migration_versions attribute (at most GABI_PROBE_MAX_ATTR bytes). Two forms:
 *   list:   one version per line, newest (preferred) first; the driver loads each;
 *   range:  the lines "version V" and "minimum M"; the driver loads M up to V.
 * Either form may add one line "writes V1 V2 ..." naming the versions a new instance can be
 * made to write (each must be loaded); without it a new instance writes the newest only.
 * Blank lines and lines starting with '#' are ignored. A version is 1 to 64 characters of
 * [A-Za-z0-9._+~-] starting with a letter or digit. origin names the file in errors.
 * The result is one allocation: free() it.
 */
struct gabi_probe_versions {
    struct gabi_versions loads;
    struct gabi_versions writes;
};
int gabi_probe_versions_parse(const char *origin, const char *buf, size_t size,
                              struct gabi_probe_versions **ret, struct gabi_error *reterr);
