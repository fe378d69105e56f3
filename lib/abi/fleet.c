/* SPDX-License-Identifier: MIT */
/* Fleets: the platforms and modes of many hosts in one table, for filtering. */

#include <stdlib.h>

#include "abi/internal.h"

#define FLEET_PAIRS 6 /* (device type, loadable version) pairs summarized per host */
#define FLEET_VFS   2 /* free VF device ids summarized per host */

/* One host, as the filter reads it first: bitsets, then hashes of what the rest of a check
 * needs. A host whose document does not fit the summary (a version range, more pairs or VF
 * ids than there is room for) is checked on its document. */
struct fleet_row {
    struct bitset platforms;
    struct bitset modes;
    uint64_t pairs[FLEET_PAIRS]; /* hash of "type\0version" the host loads */
    uint64_t vfs[FLEET_VFS];     /* hash of the "vendor:device" of a free VF */
    uint8_t n_pairs, n_vfs;
    bool exact; /* the summary covers the host: no document needed */
};

static uint64_t pair_hash(const char *type, const char *version)
{
    uint64_t h = gabi_hash_str(type);

    /* FNV-1a continued over a separator and the version */
    h = (h ^ 0xffu) * 0x100000001b3ull;
    for (const char *p = version; *p; p++)
        h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    return h;
}

static void summarize(struct fleet_row *row, const struct gabi_hostcaps *h)
{
    memset(row, 0, sizeof(*row));
    row->platforms = h->platforms;
    row->modes = h->modes;
    row->exact = true;
    for (size_t t = 0; t < h->n_types; t++) {
        const struct gabi_hostcaps_device_type *dt = &h->types[t].pub;

        if (dt->available_instances == 0)
            continue; /* takes no device: no pair */
        if (dt->loads.version || row->n_pairs + dt->loads.n > FLEET_PAIRS) {
            row->exact = false;
            continue;
        }
        for (size_t v = 0; v < dt->loads.n; v++)
            row->pairs[row->n_pairs++] = pair_hash(dt->name, dt->loads.list[v]);
    }
    for (size_t i = 0; i < h->n_failover; i++) {
        bool seen = false;

        if (h->failover[i].in_use)
            continue;
        for (size_t j = 0; j < row->n_vfs && !seen; j++)
            seen = row->vfs[j] == h->failover_hash[i];
        if (seen)
            continue;
        if (row->n_vfs == FLEET_VFS) {
            row->exact = false;
            break;
        }
        row->vfs[row->n_vfs++] = h->failover_hash[i];
    }
}

static bool row_has(const uint64_t *set, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++)
        if (set[i] == h)
            return true;
    return false;
}

struct gabi_fleet {
    const struct gabi_catalog *cat;
    size_t n;
    struct fleet_row *rows;
    const struct gabi_hostcaps **hosts;
};

int gabi_fleet_new(const struct gabi_catalog *cat, const struct gabi_hostcaps *const *hosts,
                   size_t n_hosts, struct gabi_fleet **ret)
{
    struct gabi_fleet *f = calloc(1, sizeof(*f));

    if (!f)
        return -ENOMEM;
    f->cat = cat;
    f->n = n_hosts;
    /* rows start on a cache line; aligned_alloc wants a multiple of the alignment */
    f->rows = aligned_alloc(64, ((n_hosts ? n_hosts : 1) * sizeof(*f->rows) + 63) & ~(size_t)63);
    f->hosts = calloc(n_hosts ? n_hosts : 1, sizeof(*f->hosts));
    if (!f->rows || !f->hosts) {
        gabi_fleet_free(f);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n_hosts; i++) {
        if (hosts[i]->cat != cat) {
            gabi_fleet_free(f);
            return -EINVAL;
        }
        summarize(&f->rows[i], hosts[i]);
        f->hosts[i] = hosts[i];
    }
    *ret = f;
    return 0;
}

struct gabi_fleet *gabi_fleet_free(struct gabi_fleet *f)
{
    if (f) {
        free(f->rows);
        free(f->hosts);
        free(f);
    }
    return NULL;
}

size_t gabi_fleet_n_hosts(const struct gabi_fleet *f)
{
    return f->n;
}

size_t gabi_fleet_filter(const struct gabi_fleet *f, const struct gabi_pin *pin, size_t *ret)
{
    struct bitset need = {{0}};
    uint64_t pairs[GABI_MAX_PIN_DEVICES], vfs[GABI_MAX_PIN_DEVICES];
    size_t n_pairs = 0, n_vfs = 0, n_ok = 0;

    /* A pin that needs a platform and names none fits no host (gabi_check says why). */
    if (!pin->platform && gabi_pin_needs_platform(pin))
        return 0;

    /* What every candidate must run, as one bitset, and the hashes the rest must match. */
    for (size_t d = 0; d < pin->n_devices; d++) {
        const struct pin_device *dev = &pin->devices[d];

        if (dev->pub.mode)
            bitset_set(&need, dev->mode_index);
        if (dev->pub.state_version)
            pairs[n_pairs++] = pair_hash(dev->pub.type, dev->pub.state_version);
        if (dev->pub.failover_device)
            vfs[n_vfs++] = dev->failover_hash;
    }
    for (size_t i = 0; i < f->n; i++) {
        const struct fleet_row *row = &f->rows[i];
        uint64_t miss = 0;
        bool maybe = true;

        if (pin->platform && !bitset_test(&row->platforms, pin->platform_index))
            continue;
        for (size_t w = 0; w < BITSET_WORDS; w++)
            miss |= need.w[w] & ~row->modes.w[w];
        if (miss)
            continue;
        if (row->exact) {
            for (size_t k = 0; k < n_pairs && maybe; k++)
                maybe = row_has(row->pairs, row->n_pairs, pairs[k]);
            for (size_t k = 0; k < n_vfs && maybe; k++)
                maybe = row_has(row->vfs, row->n_vfs, vfs[k]);
            if (!maybe)
                continue;
        }
        /* The summary only rules hosts out; the host's own check has the last word (hash
         * equality is not string equality). */
        if ((n_pairs || n_vfs || pin->machine) && !gabi_check_ok(pin, f->hosts[i]))
            continue;
        ret[n_ok++] = i;
    }
    return n_ok;
}
