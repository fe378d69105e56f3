/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The ABI engine: documents in, decisions out, every decision with all of its reasons.
 *
 *   catalog   names every stable ABI: compat modes (vhost-user device ABIs), platforms
 *             (host-kernel ABIs) and device-state version rules per device type.
 *   hostcaps  what one host supports: kernel capabilities, back-ends and the modes they run,
 *             device types and the state versions they load, failover devices.
 *   pin       what one VM is held to: a platform and, per device, a mode, a state version,
 *             a failover pair.
 *   verdict   the answer to check / pick / match: ok or not, the values chosen, and every
 *             reason, each naming the device, the key, what was wanted and what was offered.
 *
 * Documents are JSON (see docs/formats.md). Parsing functions take a buffer and an origin
 * (usually a file name) used in error messages; only gabi_*_load_file() touch the file system.
 * A catalog must be finalized before hostcaps or pins are parsed against it; hostcaps and pins
 * hold pointers into their catalog, which must outlive them.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <guestabi/cleanup.h>
#include <guestabi/error.h>
#include <guestabi/features.h>

#define GABI_SCHEMA_CATALOG  "guestabi.catalog/1"
#define GABI_SCHEMA_HOSTCAPS "guestabi.hostcaps/1"
#define GABI_SCHEMA_PIN      "guestabi.pin/1"
#define GABI_SCHEMA_VERDICT  "guestabi.verdict/1"

/* Bounds on what a document may hold. */
#define GABI_MAX_DOCUMENT_SIZE (16u << 20)
#define GABI_MAX_MODES         256u /* in one catalog */
#define GABI_MAX_PLATFORMS     256u
#define GABI_MAX_DEVICE_TYPES  1024u
#define GABI_MAX_VERSIONS      64u  /* in one version list */
#define GABI_MAX_BACKENDS      64u  /* on one host */
#define GABI_MAX_HOST_DEVICES  256u /* device types or failover devices on one host */
#define GABI_MAX_PIN_DEVICES   64u
#define GABI_MAX_NAME          128u /* bytes in a name */
#define GABI_MAX_VERSION       64u  /* bytes in a state version */
#define GABI_MAX_MACHINES      512u /* machine types of one hypervisor */

struct gabi_catalog;
struct gabi_hostcaps;
struct gabi_pin;
struct gabi_verdict;

/* ---- catalog ----------------------------------------------------------------------------- */

/* A compat mode: a named, versioned vhost-user device ABI. */
struct gabi_mode {
    const char *name; /* "upstream.guestabi-net.v2" */
    enum gabi_device_class cls;
    int64_t order;              /* release order within its class: higher is newer */
    uint64_t features;          /* virtio feature bits the back-end offers in this mode */
    uint64_t protocol_features; /* vhost-user protocol feature bits */
    uint32_t max_queue_pairs;   /* virtio-net: queue pairs; virtio-blk: queues */
    uint32_t max_queue_size;
    const char *description;
    const char *origin; /* file that defined it ("builtin:<file>" for the default) */
};

/* A platform: a named host-kernel ABI. Inheritance is resolved at finalize time. */
struct gabi_platform {
    const char *name; /* "linux-6.2", "linux-rhel-9.5" */
    const char *base; /* platform it derives from, or NULL */
    int64_t order;
    uint32_t requires; /* bit per enum gabi_kcap */
    uint64_t features; /* kernel-dependent virtio-net features it turns on */
    const char *description;
    const char *origin;
};

/* A set of state versions: an ordered list (newest first) or a version plus a minimum. */
struct gabi_versions {
    size_t n;
    const char *const *list; /* n entries, preference order */
    const char *version;     /* range form: newest accepted (NULL for the list form) */
    const char *minimum;     /* range form: oldest accepted */
};

/* Device-state rules for one device type (an mdev type or a vhost-user device). */
struct gabi_device_type {
    const char *name; /* "i915-GVTg_V5_4", "guestabi-blk" */
    const char *kind; /* "mdev" or "vhost-user" */
    struct gabi_versions writes;
    struct gabi_versions loads;
    const char *description;
    const char *origin;
};

struct gabi_catalog *gabi_catalog_new(void);
struct gabi_catalog *gabi_catalog_free(struct gabi_catalog *cat);
GABI_DEFINE_FREEP(struct gabi_catalog, gabi_catalog_free)

/* Add one catalog document. Documents of a higher layer override entries of lower layers;
 * two documents of one layer defining the same name differently is an error naming both.
 * Layers: 0 built-in, 1 system (/etc/guestabi/catalog.d), 2 --catalog directories. */
int gabi_catalog_add_document(struct gabi_catalog *cat, int layer, const char *origin,
                              const char *buf, size_t size, struct gabi_error *reterr);
/* The compiled-in default catalog, as layer 0. */
int gabi_catalog_add_builtin(struct gabi_catalog *cat, struct gabi_error *reterr);
/* Every *.json in dir, in name order, at `layer`. */
int gabi_catalog_add_dir(struct gabi_catalog *cat, int layer, const char *dir,
                         struct gabi_error *reterr);
/* Resolve platform inheritance (cycles are errors), check references, index. Once only. */
int gabi_catalog_finalize(struct gabi_catalog *cat, struct gabi_error *reterr);

/* The default catalog plus the system directory plus `dirs` (n_dirs may be 0), finalized.
 * The system directory is /etc/guestabi/catalog.d unless $GUESTABI_SYSTEM_CATALOG names
 * another one ("" for none); a missing system directory is fine. */
int gabi_catalog_load_default(const char *const *dirs, size_t n_dirs, struct gabi_catalog **ret,
                              struct gabi_error *reterr);

/* Entries sorted by class, then newest first (modes, platforms) or by name (device types). */
size_t gabi_catalog_n_modes(const struct gabi_catalog *cat);
const struct gabi_mode *gabi_catalog_mode(const struct gabi_catalog *cat, size_t i);
const struct gabi_mode *gabi_catalog_find_mode(const struct gabi_catalog *cat, const char *name);
/* The newest mode of a class, or NULL. */
const struct gabi_mode *gabi_catalog_newest_mode(const struct gabi_catalog *cat,
                                                 enum gabi_device_class cls);
/* Extra keys of a mode: n, and key/value (value as compact JSON text). */
size_t gabi_mode_n_extra(const struct gabi_catalog *cat, const struct gabi_mode *m);
int gabi_mode_extra(const struct gabi_catalog *cat, const struct gabi_mode *m, size_t i,
                    const char **ret_key, const char **ret_json);

size_t gabi_catalog_n_platforms(const struct gabi_catalog *cat);
const struct gabi_platform *gabi_catalog_platform(const struct gabi_catalog *cat, size_t i);
const struct gabi_platform *gabi_catalog_find_platform(const struct gabi_catalog *cat,
                                                       const char *name);

size_t gabi_catalog_n_device_types(const struct gabi_catalog *cat);
const struct gabi_device_type *gabi_catalog_device_type(const struct gabi_catalog *cat, size_t i);
const struct gabi_device_type *gabi_catalog_find_device_type(const struct gabi_catalog *cat,
                                                             const char *name);

/* Mode lookup that fills reterr with the nearest known names when `name` is unknown. */
int gabi_catalog_require_mode(const struct gabi_catalog *cat, const char *name,
                              const struct gabi_mode **ret, struct gabi_error *reterr);
int gabi_catalog_require_platform(const struct gabi_catalog *cat, const char *name,
                                  const struct gabi_platform **ret, struct gabi_error *reterr);

/* ---- versions ---------------------------------------------------------------------------- */

/* Whether the set accepts `version` (list membership, or minimum <= version <= version for
 * the range form, compared as version strings: "5.10" > "5.9"). */
bool gabi_versions_accepts(const struct gabi_versions *vs, const char *version);
/* Whether two sets are the same (same form, same versions in the same order). */
bool gabi_versions_equal(const struct gabi_versions *a, const struct gabi_versions *b);
/* Version-string order: <0, 0, >0. */
int gabi_version_compare(const char *a, const char *b);

/* The rules every document kind and the command line apply (docs/formats.md). A name: 1 to
 * GABI_MAX_NAME bytes of letters, digits and . - _ : +. A version: 1 to GABI_MAX_VERSION
 * bytes of letters, digits and . _ + ~ -, starting with a letter or digit, no number with a
 * leading zero ("5.010" is refused: numbers compare by value, "5.10" > "5.9"). 0, or -EINVAL
 * with why (a sentence) filled. */
int gabi_name_check(const char *name, char *why, size_t size);
int gabi_version_check(const char *version, char *why, size_t size);

/* ---- hostcaps ---------------------------------------------------------------------------- */

/* What the probe found for a kernel capability. */
enum gabi_cap_state {
    GABI_CAP_UNKNOWN = 0, /* not probed */
    GABI_CAP_SUPPORTED,
    GABI_CAP_UNSUPPORTED,   /* the kernel refused it (EINVAL) */
    GABI_CAP_ABSENT,        /* the device or interface does not exist (ENOENT, ENODEV) */
    GABI_CAP_NOT_PERMITTED, /* the probe lacked privilege (EPERM, EACCES) */
    GABI_CAP_STATE_COUNT,
};
const char *gabi_cap_state_name(enum gabi_cap_state s);
int gabi_cap_state_from_name(const char *name);

struct gabi_hostcaps_backend {
    const char *name;
    enum gabi_device_class cls;
    const char *socket; /* or NULL */
    size_t n_modes;
    const struct gabi_mode *const *modes; /* newest first */
    bool has_offer;                       /* the raw offer below was probed */
    uint64_t features;
    uint64_t protocol_features;
    uint32_t max_queue_pairs;
    uint32_t max_queue_size;
};

struct gabi_hostcaps_device_type {
    const char *name;
    const char *kind;
    struct gabi_versions loads;
    struct gabi_versions writes;
    uint32_t available_instances; /* UINT32_MAX when unknown */
};

struct gabi_hostcaps_failover {
    const char *address; /* PCI address of the VF */
    const char *pf;      /* the PF's netdev */
    const char *device;  /* "8086:154c" */
    const char *driver;  /* bound driver or NULL */
    const char *mac;
    bool in_use;
};

/* What is known of the hypervisor a host runs its VMs with (docs/formats.md "hypervisor"). */
enum gabi_hv_state {
    GABI_HV_UNKNOWN = 0, /* the hostcaps name none: platforms are judged on the kernel alone */
    GABI_HV_PROBED,      /* probed or stated: its properties and machine types count */
    GABI_HV_ABSENT,      /* the binary was not found: judged as unknown, and said so */
    GABI_HV_FAILED,      /* it did not answer (non-zero exit, timeout, output not understood) */
    GABI_HV_STATE_COUNT,
};
const char *gabi_hv_state_name(enum gabi_hv_state s);
int gabi_hv_state_from_name(const char *name);

struct gabi_hostcaps_hypervisor {
    enum gabi_hv_state state;
    const char *name;      /* "qemu" */
    const char *binary;    /* the binary probed, or NULL */
    const char *version;   /* "7.2.22"; NULL unless PROBED */
    uint64_t net_features; /* virtio-net features whose property (gabi_hv_properties()) it has */
    bool has_machines;     /* the machine types below are known */
    size_t n_machines;
    const char *const *machines; /* as the hypervisor lists them */
    const char *message;         /* ABSENT / FAILED: why */
};

int gabi_hostcaps_parse(const struct gabi_catalog *cat, const char *origin, const char *buf,
                        size_t size, struct gabi_hostcaps **ret, struct gabi_error *reterr);
int gabi_hostcaps_load_file(const struct gabi_catalog *cat, const char *path,
                            struct gabi_hostcaps **ret, struct gabi_error *reterr);
struct gabi_hostcaps *gabi_hostcaps_free(struct gabi_hostcaps *h);
GABI_DEFINE_FREEP(struct gabi_hostcaps, gabi_hostcaps_free)

const char *gabi_hostcaps_host(const struct gabi_hostcaps *h);
const char *gabi_hostcaps_kernel(const struct gabi_hostcaps *h);
enum gabi_cap_state gabi_hostcaps_cap(const struct gabi_hostcaps *h, enum gabi_kcap cap);
size_t gabi_hostcaps_n_backends(const struct gabi_hostcaps *h);
const struct gabi_hostcaps_backend *gabi_hostcaps_backend(const struct gabi_hostcaps *h, size_t i);
size_t gabi_hostcaps_n_device_types(const struct gabi_hostcaps *h);
const struct gabi_hostcaps_device_type *gabi_hostcaps_device_type(const struct gabi_hostcaps *h,
                                                                  size_t i);
size_t gabi_hostcaps_n_failover(const struct gabi_hostcaps *h);
const struct gabi_hostcaps_failover *gabi_hostcaps_failover(const struct gabi_hostcaps *h,
                                                            size_t i);

/* The hypervisor member; state GABI_HV_UNKNOWN when the document has none. */
const struct gabi_hostcaps_hypervisor *gabi_hostcaps_hypervisor(const struct gabi_hostcaps *h);
/* The kernel-dependent features of platform p that the host's hypervisor cannot switch on
 * (0 unless the hypervisor is PROBED). */
uint64_t gabi_hostcaps_platform_missing_features(const struct gabi_hostcaps *h,
                                                 const struct gabi_platform *p);
/* Whether the hypervisor has machine type `machine` (false when machine types are unknown). */
bool gabi_hostcaps_has_machine(const struct gabi_hostcaps *h, const char *machine);

/* Whether the host can run a platform / a mode (some back-end of its class runs it). */
bool gabi_hostcaps_runs_platform(const struct gabi_hostcaps *h, const struct gabi_platform *p);
bool gabi_hostcaps_runs_mode(const struct gabi_hostcaps *h, const struct gabi_mode *m);
/* Runnable platforms, newest first: fills up to max, returns the total count. */
/* The platform a VM started on this host without one runs: the newest runnable one (NULL when
 * the host runs none, e.g. its document reports no kernel capabilities). */
const struct gabi_platform *gabi_hostcaps_default_platform(const struct gabi_hostcaps *h);
size_t gabi_hostcaps_platforms(const struct gabi_hostcaps *h, const struct gabi_platform **ret,
                               size_t max);

/*
 * Building hostcaps from a probe rather than a document: start empty, add what was found,
 * then serialize. Strings are copied.
 */
struct gabi_hostcaps *gabi_hostcaps_new(const struct gabi_catalog *cat, const char *host,
                                        const char *kernel);
void gabi_hostcaps_set_cap(struct gabi_hostcaps *h, enum gabi_kcap cap, enum gabi_cap_state s);
int gabi_hostcaps_add_backend(struct gabi_hostcaps *h, const struct gabi_hostcaps_backend *b);
int gabi_hostcaps_add_device_type(struct gabi_hostcaps *h,
                                  const struct gabi_hostcaps_device_type *t);
int gabi_hostcaps_add_failover(struct gabi_hostcaps *h, const struct gabi_hostcaps_failover *f);
/* Set the hypervisor member (strings and machine list copied): 0, -EINVAL (more than
 * GABI_MAX_MACHINES machine types) or -ENOMEM. Runnable platforms follow. */
int gabi_hostcaps_set_hypervisor(struct gabi_hostcaps *h,
                                 const struct gabi_hostcaps_hypervisor *hv);
/* The modes of `cls` a back-end offering exactly this can run (the offer must cover the mode;
 * see docs/formats.md), newest first; returns the count written (up to max). */
size_t gabi_catalog_modes_for_offer(const struct gabi_catalog *cat, enum gabi_device_class cls,
                                    uint64_t features, uint64_t protocol_features,
                                    uint32_t max_queue_pairs, uint32_t max_queue_size,
                                    const struct gabi_mode **ret, size_t max);
/* The document, as a malloc'd JSON text (indented). */
char *gabi_hostcaps_to_json(const struct gabi_hostcaps *h);

/* ---- pin --------------------------------------------------------------------------------- */

struct gabi_pin_device {
    const char *id;
    enum gabi_device_class cls;
    const struct gabi_mode *mode; /* virtio classes; NULL otherwise */
    const char *type;             /* device type for state transfer, or NULL */
    const char *state_version;    /* fixed source state version, or NULL */
    const char *failover_primary; /* failover pair: id of the primary, or NULL */
    const char *failover_device;  /* "vendor:device" of an equivalent primary */
};

int gabi_pin_parse(const struct gabi_catalog *cat, const char *origin, const char *buf, size_t size,
                   struct gabi_pin **ret, struct gabi_error *reterr);
int gabi_pin_load_file(const struct gabi_catalog *cat, const char *path, struct gabi_pin **ret,
                       struct gabi_error *reterr);
struct gabi_pin *gabi_pin_free(struct gabi_pin *pin);
GABI_DEFINE_FREEP(struct gabi_pin, gabi_pin_free)

const char *gabi_pin_vm(const struct gabi_pin *pin);
const struct gabi_platform *gabi_pin_platform(const struct gabi_pin *pin); /* may be NULL */
/* Whether the pin's devices depend on a platform (it turns on virtio-net features: a pin with
 * a virtio-net device does). A check refuses such a pin when it names no platform. */
bool gabi_pin_needs_platform(const struct gabi_pin *pin);
/* A pin that names no platform runs its source host's default (the newest platform the source
 * runs, seed 001): set it, and remember that the source gave it (verdicts say so). A pin
 * naming one is left as it is. -ENOENT with *reterr when the source runs no platform. */
int gabi_pin_resolve_platform(struct gabi_pin *pin, const struct gabi_hostcaps *source,
                              struct gabi_error *reterr);
/* The source host whose default gave the pin its platform, or NULL (the pin named it). */
const char *gabi_pin_platform_source(const struct gabi_pin *pin);
const char *gabi_pin_machine(const struct gabi_pin *pin); /* "pc-q35-8.2", or NULL */
size_t gabi_pin_n_devices(const struct gabi_pin *pin);
const struct gabi_pin_device *gabi_pin_device(const struct gabi_pin *pin, size_t i);
char *gabi_pin_to_json(const struct gabi_pin *pin);

/* ---- decisions --------------------------------------------------------------------------- */

/* One reason a decision went against you. */
struct gabi_reason {
    const char *device; /* device id, device type or class; "" for the VM or host as a whole */
    const char *key;    /* "platform", "mode", "features", "max_queue_size", ... */
    const char *wanted;
    const char *offered;
    const char *host;    /* the host it concerns, or "" */
    const char *message; /* the whole sentence */
};

/* One value a decision chose (pick) or confirmed. */
struct gabi_choice {
    const char *subject; /* "platform", a device class, a device type */
    const char *key;     /* "platform", "mode", "state_version" */
    const char *value;   /* NULL when nothing could be chosen */
};

struct gabi_verdict *gabi_verdict_free(struct gabi_verdict *v);
GABI_DEFINE_FREEP(struct gabi_verdict, gabi_verdict_free)
bool gabi_verdict_ok(const struct gabi_verdict *v);
size_t gabi_verdict_n_reasons(const struct gabi_verdict *v);
const struct gabi_reason *gabi_verdict_reason(const struct gabi_verdict *v, size_t i);
size_t gabi_verdict_n_choices(const struct gabi_verdict *v);
const struct gabi_choice *gabi_verdict_choice(const struct gabi_verdict *v, size_t i);
const char *gabi_verdict_operation(const struct gabi_verdict *v);
/* check: the platform judged (NULL: none) and where it came from: "pin", "source" (the
 * source host's default), "unpinned" (refused: the pin needs one and names none) or
 * "not-needed" (no device depends on one). NULL for other operations. */
const char *gabi_verdict_platform(const struct gabi_verdict *v, const char **ret_from);
char *gabi_verdict_to_json(const struct gabi_verdict *v);

/* Can `host` honour `pin`? Collects every reason, never only the first. */
int gabi_check(const struct gabi_catalog *cat, const struct gabi_pin *pin,
               const struct gabi_hostcaps *host, struct gabi_verdict **ret);
/* The same answer without reasons, for filtering fleets: no allocation. */
bool gabi_check_ok(const struct gabi_pin *pin, const struct gabi_hostcaps *host);

/* The newest platform, newest mode per device class, and newest state version per device
 * type that every host supports. Not ok when something has no common value. */
int gabi_pick(const struct gabi_catalog *cat, const struct gabi_hostcaps *const *hosts,
              size_t n_hosts, struct gabi_verdict **ret);

/* Does a destination that loads `dest` accept the fixed source version `version`? The source
 * version is never renegotiated at migration time: it is accepted or refused as it is. */
int gabi_match(const char *device, const char *version, const struct gabi_versions *dest,
               const char *dest_host, struct gabi_verdict **ret);

/* ---- listings ---------------------------------------------------------------------------- */

/* JSON documents listing catalog entries ({"schema": "guestabi.modes/1", "modes": [...]}
 * and {"schema": "guestabi.platforms/1", "platforms": [...]}), malloc'd. */
char *gabi_modes_to_json(const struct gabi_catalog *cat, const struct gabi_mode *const *modes,
                         size_t n);
char *gabi_platforms_to_json(const struct gabi_catalog *cat,
                             const struct gabi_platform *const *platforms, size_t n);
char *gabi_device_types_to_json(const struct gabi_catalog *cat,
                                const struct gabi_device_type *const *types, size_t n);

/* ---- fleets ------------------------------------------------------------------------------ */

/*
 * The fleet question, "which of these hosts can take this pin", asked of many hosts at once:
 * a fleet keeps what a check reads first (the platforms and modes each host runs) in one
 * contiguous table, so that filtering streams through memory instead of visiting every
 * host's document. The hosts must outlive the fleet.
 */
struct gabi_fleet;

int gabi_fleet_new(const struct gabi_catalog *cat, const struct gabi_hostcaps *const *hosts,
                   size_t n_hosts, struct gabi_fleet **ret);
struct gabi_fleet *gabi_fleet_free(struct gabi_fleet *f);
GABI_DEFINE_FREEP(struct gabi_fleet, gabi_fleet_free)
size_t gabi_fleet_n_hosts(const struct gabi_fleet *f);
/* The indices (into the hosts given to gabi_fleet_new) of the hosts that can take the pin,
 * in order, into ret (room for n_hosts); returns how many. Same answer as gabi_check_ok()
 * host by host. */
size_t gabi_fleet_filter(const struct gabi_fleet *f, const struct gabi_pin *pin, size_t *ret);
