/* SPDX-License-Identifier: MIT */
#pragma once

/* lib/abi internals: the in-memory forms behind the public handles, and the JSON walker. */

#include <assert.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <guestabi/abi.h>

#include "common/arena.h"
#include <guestabi/util.h>

/* ---- bitsets over catalog indices (modes, platforms) ------------------------------------ */

#define BITSET_WORDS (GABI_MAX_MODES / 64u)
static_assert(GABI_MAX_PLATFORMS <= GABI_MAX_MODES, "one bitset size serves both");

struct bitset {
    uint64_t w[BITSET_WORDS];
};

static inline void bitset_set(struct bitset *b, size_t i)
{
    b->w[i / 64] |= 1ull << (i % 64);
}

static inline bool bitset_test(const struct bitset *b, size_t i)
{
    return (b->w[i / 64] >> (i % 64)) & 1u;
}

/* ---- catalog -------------------------------------------------------------------------------- */

/* What every catalog entry has, first in each entry struct, so one merge serves all kinds. */
struct entry_head {
    const char *name;
    const char *origin; /* document that defined it */
    const char *where;  /* "origin: $.modes[3]" */
    int layer;
    json_t *def; /* the definition as written, for conflict detection */
};

struct entry_list {
    struct entry_head **items;
    size_t n, alloc;
};

struct mode_entry {
    struct entry_head head;
    struct gabi_mode pub;
    size_t index; /* position in the sorted catalog: bit in hostcaps bitsets */
    const char **extra_keys;
    const char **extra_json;
    size_t n_extra;
};

struct platform_entry {
    struct entry_head head;
    struct gabi_platform pub;
    size_t index;
    uint32_t own_requires, drop_requires;
    uint64_t own_features, drop_features;
    int resolving; /* cycle detection: 0 new, 1 in progress, 2 done */
};

struct device_type_entry {
    struct entry_head head;
    struct gabi_device_type pub;
    uint64_t hash;
};

struct gabi_catalog {
    struct gabi_arena arena;
    bool finalized;
    struct entry_list modes, platforms, types;
};

static inline size_t mode_index_of(const struct gabi_mode *m)
{
    return ((const struct mode_entry *)((const char *)m - offsetof(struct mode_entry, pub)))->index;
}

static inline size_t platform_index_of(const struct gabi_platform *p)
{
    return ((const struct platform_entry *)((const char *)p - offsetof(struct platform_entry, pub)))
        ->index;
}

#define MODE(cat, i)     ((struct mode_entry *)(cat)->modes.items[i])
#define PLATFORM(cat, i) ((struct platform_entry *)(cat)->platforms.items[i])
#define DTYPE(cat, i)    ((struct device_type_entry *)(cat)->types.items[i])

const struct device_type_entry *catalog_find_type_entry(const struct gabi_catalog *cat,
                                                        const char *name);

/* ---- hostcaps ------------------------------------------------------------------------------- */

struct host_backend {
    struct gabi_hostcaps_backend pub;
    struct bitset modes;
};

struct host_type {
    struct gabi_hostcaps_device_type pub;
    uint64_t hash;
};

struct gabi_hostcaps {
    struct gabi_arena arena;
    const struct gabi_catalog *cat;
    const char *host, *kernel;
    uint8_t caps[GABI_KCAP_COUNT]; /* enum gabi_cap_state */
    uint32_t kcaps;                /* bit per capability in state SUPPORTED */
    bool has_declared_platforms;
    struct bitset declared_platforms;
    struct bitset platforms; /* runnable: derived from kcaps (and the declared list) */
    struct bitset modes;     /* union over back-ends */
    struct host_backend *backends;
    size_t n_backends;
    struct host_type *types;
    size_t n_types;
    struct gabi_hostcaps_failover *failover;
    size_t n_failover;
    uint64_t *failover_hash;            /* hash of each failover device's "vendor:device" */
    struct gabi_hostcaps_hypervisor hv; /* state UNKNOWN when the document has none */
};

/* The virtio-net features some hypervisor property switches (gabi_hv_properties()). */
uint64_t hv_switchable_features(void);
struct jctx;
/* The "hypervisor" member (lib/abi/hypervisor.c): parse it into h->hv, or build it. */
int hostcaps_parse_hypervisor(struct jctx *c, json_t *root, struct gabi_hostcaps *h);
json_t *hostcaps_hypervisor_json(const struct gabi_hostcaps *h);

void hostcaps_update_platforms(struct gabi_hostcaps *h);
/* "pc-q35-8.2" -> 6, the length of its family "pc-q35"; 0 for an unversioned name ("q35"). */
size_t hv_machine_family_len(const char *machine);
const struct host_type *hostcaps_find_type(const struct gabi_hostcaps *h, const char *name,
                                           uint64_t hash);

/* ---- pin ------------------------------------------------------------------------------------ */

struct pin_device {
    struct gabi_pin_device pub;
    size_t mode_index;
    uint64_t type_hash;
    uint64_t failover_hash;
};

struct gabi_pin {
    struct gabi_arena arena;
    const struct gabi_catalog *cat;
    const char *vm;
    const struct gabi_platform *platform;
    size_t platform_index;
    const char *platform_source; /* host whose default gave the platform, or NULL */
    const char *machine;         /* machine type, or NULL */
    struct pin_device *devices;
    size_t n_devices;
};

/* ---- verdict -------------------------------------------------------------------------------- */

struct gabi_verdict {
    struct gabi_arena arena;
    const char *operation;
    const char *host;
    bool ok;
    const char *platform, *platform_from; /* check: the platform judged, and its origin */
    struct gabi_reason *reasons;
    size_t n_reasons, alloc_reasons;
    struct gabi_choice *choices;
    size_t n_choices, alloc_choices;
};

struct gabi_verdict *verdict_new(const char *operation, const char *host);
/* Adds a reason (marks the verdict not ok); strings are copied. message is printf-style. */
int verdict_add_reason(struct gabi_verdict *v, const char *host, const char *device,
                       const char *key, const char *wanted, const char *offered, const char *fmt,
                       ...) __attribute__((format(printf, 7, 8)));
int verdict_add_choice(struct gabi_verdict *v, const char *subject, const char *key,
                       const char *value);

/* The hypervisor half of decisions (lib/abi/hypervisor.c): a reason per property of platform
 * p the host's hypervisor lacks; the machine type and what was not judged, for a check; the
 * newest machine type per family every host has, for a pick. */
int hv_platform_reasons(struct gabi_verdict *v, const struct gabi_platform *p,
                        const struct gabi_hostcaps *h);
int hv_check(struct gabi_verdict *v, const struct gabi_pin *pin, const struct gabi_hostcaps *h);
int hv_pick(struct gabi_verdict *v, const struct gabi_hostcaps *const *hosts, size_t n,
            bool platform_picked);

/* ---- text helpers for reasons and documents ------------------------------------------------ */

/* "A, B, C" of the names of the set bits (unnamed bits as 0x...), into the arena. */
char *features_text(struct gabi_arena *a, enum gabi_device_class cls, uint64_t mask);
char *protocol_features_text(struct gabi_arena *a, uint64_t mask);
char *kcaps_text(struct gabi_arena *a, uint32_t kcaps);
char *versions_text(struct gabi_arena *a, const struct gabi_versions *vs);

/* JSON arrays of names (and "0x..." for unnamed bits). */
json_t *features_json(enum gabi_device_class cls, uint64_t mask);
json_t *protocol_features_json(uint64_t mask);
json_t *versions_json(const struct gabi_versions *vs);

/* ---- the JSON walker --------------------------------------------------------------------- */

/* Tracks where in which document we are, so every error names file and JSON path. */
struct jctx {
    const char *origin;
    struct gabi_error *err;
    struct gabi_arena *arena;
    char path[384];
    size_t len;
};

void jctx_init(struct jctx *c, const char *origin, struct gabi_arena *arena,
               struct gabi_error *err);
size_t jctx_push_key(struct jctx *c, const char *key);
size_t jctx_push_index(struct jctx *c, size_t i);
void jctx_pop(struct jctx *c, size_t len);
/* Fill the error at the current path; returns -EINVAL (or code). */
int jerr(struct jctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parse a document: bounded size, duplicate keys rejected, root must be an object whose
 * "schema" equals `schema`. Syntax errors carry origin:line:column. */
int jparse(const char *origin, const char *buf, size_t size, const char *schema, json_t **ret,
           struct gabi_error *err);

/* Every key of obj must be in allowed (NULL-terminated); an unknown one is an error naming
 * the nearest allowed keys. */
int jcheck_keys(struct jctx *c, json_t *obj, const char *const *allowed);
/* Typed members. `required`: absence is an error; otherwise *ret is left untouched. */
int jget_string(struct jctx *c, json_t *obj, const char *key, bool required, const char **ret);
/* A string that must also pass gabi_name_check / gabi_version_check (every document kind). */
int jget_name(struct jctx *c, json_t *obj, const char *key, bool required, const char **ret);
int jget_version(struct jctx *c, json_t *obj, const char *key, bool required, const char **ret);
int jget_u32(struct jctx *c, json_t *obj, const char *key, bool required, uint32_t min,
             uint32_t max, uint32_t *ret);
int jget_i64(struct jctx *c, json_t *obj, const char *key, bool required, int64_t *ret);
int jget_bool(struct jctx *c, json_t *obj, const char *key, bool *ret);
/* An array (required) or absent; at most max entries. */
int jget_array(struct jctx *c, json_t *obj, const char *key, bool required, size_t max,
               json_t **ret);
int jget_object(struct jctx *c, json_t *obj, const char *key, bool required, json_t **ret);
/* Feature lists: arrays of spec names or "0x..." masks. */
int jget_features(struct jctx *c, json_t *obj, const char *key, enum gabi_device_class cls,
                  uint64_t *ret);
int jget_protocol_features(struct jctx *c, json_t *obj, const char *key, uint64_t *ret);
int jget_kcaps(struct jctx *c, json_t *obj, const char *key, uint32_t *ret);
/* A version set: ["6.3", "6.2"] or {"version": "6.3", "minimum": "6.0"}. */
int jget_versions(struct jctx *c, json_t *obj, const char *key, bool required,
                  struct gabi_versions *ret);
/* "A device must load what it writes", for every document kind: an error at $...writes. */
int jcheck_loads_writes(struct jctx *c, const char *type, const struct gabi_versions *loads,
                        const struct gabi_versions *writes);
int jget_class(struct jctx *c, json_t *obj, const char *key, enum gabi_device_class *ret);
