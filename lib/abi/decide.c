/* SPDX-License-Identifier: MIT */
/* Decisions: check a pin against a host, pick what a set of hosts share, match versions. */

#include <stdio.h>
#include <stdlib.h>

#include "abi/internal.h"

/* ---- check: the fast answer ------------------------------------------------------------------ */

static size_t host_free_vfs(const struct gabi_hostcaps *h, const char *device, uint64_t hash)
{
    size_t n = 0;

    for (size_t i = 0; i < h->n_failover; i++)
        if (h->failover_hash[i] == hash && !h->failover[i].in_use &&
            strcmp(h->failover[i].device, device) == 0)
            n++;
    return n;
}

/* Whether two pin devices draw on the same shared capacity of a host: an instance of one
 * device type (vf false), or a free VF of one vendor:device (vf true). */
static bool same_demand(const struct pin_device *a, const struct pin_device *b, bool vf)
{
    if (vf)
        return a->pub.failover_device && b->pub.failover_device &&
               a->failover_hash == b->failover_hash &&
               strcmp(a->pub.failover_device, b->pub.failover_device) == 0;
    return a->pub.state_version && b->pub.state_version && a->type_hash == b->type_hash &&
           strcmp(a->pub.type, b->pub.type) == 0;
}

/* Shared capacity is the host's, not the device's: every pin device of a type takes an
 * instance of it, every failover standby a VF of its own. For the first device of a kind (the
 * one the count is reported on) this returns how many the pin needs; 0 for the others. */
static size_t pin_demand(const struct gabi_pin *pin, size_t i, bool vf)
{
    size_t n = 0;

    for (size_t j = 0; j < pin->n_devices; j++) {
        if (!same_demand(&pin->devices[j], &pin->devices[i], vf))
            continue;
        if (j < i)
            return 0;
        n++;
    }
    return n;
}

static bool type_takes(const struct host_type *t, const char *version, size_t demand)
{
    return t && gabi_versions_accepts(&t->pub.loads, version) &&
           (t->pub.available_instances == UINT32_MAX || demand <= t->pub.available_instances);
}

bool gabi_check_ok(const struct gabi_pin *pin, const struct gabi_hostcaps *host)
{
    if (pin->platform ? !bitset_test(&host->platforms, pin->platform_index)
                      : gabi_pin_needs_platform(pin))
        return false;
    if (pin->machine && host->hv.has_machines && !gabi_hostcaps_has_machine(host, pin->machine))
        return false;
    for (size_t i = 0; i < pin->n_devices; i++) {
        const struct pin_device *d = &pin->devices[i];

        if (d->pub.mode && !bitset_test(&host->modes, d->mode_index))
            return false;
        if (d->pub.state_version &&
            !type_takes(hostcaps_find_type(host, d->pub.type, d->type_hash), d->pub.state_version,
                        MAX(pin_demand(pin, i, false), (size_t)1)))
            return false;
        if (d->pub.failover_device &&
            host_free_vfs(host, d->pub.failover_device, d->failover_hash) <
                MAX(pin_demand(pin, i, true), (size_t)1))
            return false;
    }
    return true;
}

/* ---- check: every reason --------------------------------------------------------------------- */

static char *host_platforms_text(struct gabi_arena *a, const struct gabi_hostcaps *h)
{
    char buf[2048];
    struct gabi_strbuf sb;

    gabi_strbuf_init(&sb, buf, sizeof(buf));
    for (size_t i = 0; i < h->cat->platforms.n; i++)
        if (bitset_test(&h->platforms, i))
            gabi_strbuf_item(&sb, ", ", PLATFORM(h->cat, i)->pub.name);
    return gabi_arena_strdup(a, sb.len ? buf : "none");
}

static int platform_reasons(struct gabi_verdict *v, const struct gabi_platform *p,
                            const struct gabi_hostcaps *h)
{
    struct gabi_arena *a = &v->arena;
    uint32_t missing = p->requires & ~h->kcaps;
    const char *runs = host_platforms_text(a, h);
    int r;

    if ((r = hv_platform_reasons(v, p, h)) < 0)
        return r;
    if (!missing && gabi_hostcaps_platform_missing_features(h, p))
        return 0;
    if (!missing)
        return verdict_add_reason(v, h->host, "", "platform", p->name, runs,
                                  "host %s does not list platform %s among those it runs (%s)",
                                  h->host, p->name, runs);
    for (unsigned k = 0; k < GABI_KCAP_COUNT; k++) {
        uint64_t feats = 0;
        const char *state;

        if (!(missing & (1u << k)))
            continue;
        for (unsigned b = 0; b < 64; b++)
            if ((p->features & (1ull << b)) && (gabi_kcap_needed_by_net_feature(b) & (1u << k)))
                feats |= 1ull << b;
        state = gabi_cap_state_name(h->caps[k]);
        r = verdict_add_reason(
            v, h->host, "", "platform", gabi_arena_printf(a, "%s: %s", p->name, gabi_kcap_name(k)),
            gabi_arena_printf(a, "%s: %s", gabi_kcap_name(k), state),
            "platform %s needs kernel capability %s, which host %s%s%s reports %s; %s%s "
            "(the host runs: %s)",
            p->name, gabi_kcap_name(k), h->host, h->kernel ? " on kernel " : "",
            h->kernel ? h->kernel : "", state,
            feats ? "without it the VM's virtio-net devices lose " : "",
            feats ? features_text(a, GABI_CLASS_NET, feats) : "the platform cannot run there",
            runs);
        if (r < 0)
            return r;
    }
    return 0;
}

/* What a back-end can offer at most: its probed offer, else the newest mode it runs. */
static bool backend_offer(const struct gabi_hostcaps_backend *b, struct gabi_mode *ret)
{
    const struct gabi_mode *newest = NULL;

    memset(ret, 0, sizeof(*ret));
    if (b->has_offer) {
        ret->features = b->features;
        ret->protocol_features = b->protocol_features;
        ret->max_queue_pairs = b->max_queue_pairs;
        ret->max_queue_size = b->max_queue_size;
        return true;
    }
    for (size_t i = 0; i < b->n_modes; i++)
        if (!newest || b->modes[i]->order > newest->order)
            newest = b->modes[i];
    if (!newest)
        return false;
    *ret = *newest;
    return true;
}

/* Where one back-end falls short of a mode: one reason per key. */
static int offer_reasons(struct gabi_verdict *v, const struct gabi_pin_device *d,
                         const struct gabi_hostcaps *h, const struct gabi_hostcaps_backend *b,
                         const struct gabi_mode *offer)
{
    struct gabi_arena *a = &v->arena;
    const struct gabi_mode *m = d->mode;
    int r = 0;

    if (m->features & ~offer->features) {
        char *t = features_text(a, m->cls, m->features & ~offer->features);
        r = verdict_add_reason(v, h->host, d->id, "features", t,
                               gabi_arena_printf(a, "not offered by %s", b->name),
                               "back-end %s on host %s does not offer %s, which mode %s needs",
                               b->name, h->host, t, m->name);
    }
    if (r >= 0 && (m->protocol_features & ~offer->protocol_features)) {
        char *t = protocol_features_text(a, m->protocol_features & ~offer->protocol_features);
        r = verdict_add_reason(v, h->host, d->id, "protocol_features", t,
                               gabi_arena_printf(a, "not offered by %s", b->name),
                               "back-end %s on host %s does not offer %s, which mode %s needs",
                               b->name, h->host, t, m->name);
    }
    if (r >= 0 && m->max_queue_pairs > offer->max_queue_pairs)
        r = verdict_add_reason(v, h->host, d->id, "max_queue_pairs",
                               gabi_arena_printf(a, "%u", m->max_queue_pairs),
                               gabi_arena_printf(a, "%u", offer->max_queue_pairs),
                               "mode %s has %u queue pair%s; back-end %s on host %s offers %u",
                               m->name, m->max_queue_pairs, m->max_queue_pairs == 1 ? "" : "s",
                               b->name, h->host, offer->max_queue_pairs);
    if (r >= 0 && m->max_queue_size > offer->max_queue_size)
        r = verdict_add_reason(v, h->host, d->id, "max_queue_size",
                               gabi_arena_printf(a, "%u", m->max_queue_size),
                               gabi_arena_printf(a, "%u", offer->max_queue_size),
                               "mode %s has queues of %u entries; back-end %s on host %s offers "
                               "%u",
                               m->name, m->max_queue_size, b->name, h->host, offer->max_queue_size);
    return r;
}

static int mode_reasons(struct gabi_verdict *v, const struct gabi_pin_device *d,
                        const struct gabi_hostcaps *h)
{
    struct gabi_arena *a = &v->arena;
    const struct gabi_mode *m = d->mode;
    struct gabi_mode offer;
    char buf[2048];
    struct gabi_strbuf sb;
    const char *runs = NULL;
    size_t n_class = 0;
    int r;

    gabi_strbuf_init(&sb, buf, sizeof(buf));
    for (size_t i = 0; i < h->n_backends; i++) {
        const struct gabi_hostcaps_backend *b = &h->backends[i].pub;

        if (b->cls != m->cls)
            continue;
        n_class++;
        for (size_t j = 0; j < b->n_modes; j++)
            gabi_strbuf_item(&sb, ", ", b->modes[j]->name);
    }
    if (sb.len)
        runs = buf;
    (void)a;
    if (!n_class)
        return verdict_add_reason(v, h->host, d->id, "mode", m->name, "no back-end",
                                  "device %s needs a %s back-end in mode %s; host %s has no %s "
                                  "back-end",
                                  d->id, gabi_class_name(m->cls), m->name, h->host,
                                  gabi_class_name(m->cls));
    r = verdict_add_reason(v, h->host, d->id, "mode", m->name, runs ? runs : "none",
                           "device %s is pinned to mode %s, which no %s back-end on host %s runs "
                           "(they run: %s)",
                           d->id, m->name, gabi_class_name(m->cls), h->host, runs ? runs : "none");
    /* Then, for every back-end of the class, exactly where it falls short. */
    for (size_t i = 0; r >= 0 && i < h->n_backends; i++) {
        const struct gabi_hostcaps_backend *b = &h->backends[i].pub;

        if (b->cls == m->cls && backend_offer(b, &offer))
            r = offer_reasons(v, d, h, b, &offer);
    }
    return r;
}

/* The ids of the pin's devices that match the device at index i (same type, or the same
 * failover VF), as "a, b, c". */
static char *demand_ids(struct gabi_arena *a, const struct gabi_pin *pin, size_t i, bool vf)
{
    char buf[2048];
    struct gabi_strbuf sb;

    gabi_strbuf_init(&sb, buf, sizeof(buf));
    for (size_t j = i; j < pin->n_devices; j++)
        if (same_demand(&pin->devices[j], &pin->devices[i], vf))
            gabi_strbuf_item(&sb, ", ", pin->devices[j].pub.id);
    return gabi_arena_strdup(a, buf);
}

static int state_reasons(struct gabi_verdict *v, const struct gabi_pin *pin, size_t idx,
                         const struct gabi_hostcaps *h)
{
    const struct pin_device *d = &pin->devices[idx];
    size_t demand = pin_demand(pin, idx, false);
    struct gabi_arena *a = &v->arena;
    const struct host_type *t = hostcaps_find_type(h, d->pub.type, d->type_hash);
    const char *types = NULL;
    char buf[2048];
    struct gabi_strbuf sb;

    if (!t) {
        gabi_strbuf_init(&sb, buf, sizeof(buf));
        for (size_t i = 0; i < h->n_types; i++)
            gabi_strbuf_item(&sb, ", ", h->types[i].pub.name);
        if (sb.len)
            types = buf;
        return verdict_add_reason(v, h->host, d->pub.id, "device_type", d->pub.type,
                                  types ? types : "none",
                                  "device %s is of type %s, which host %s does not have (it has: "
                                  "%s)",
                                  d->pub.id, d->pub.type, h->host, types ? types : "none");
    }
    if (!gabi_versions_accepts(&t->pub.loads, d->pub.state_version)) {
        char *loads = versions_text(a, &t->pub.loads);
        int r = verdict_add_reason(
            v, h->host, d->pub.id, "state_version", d->pub.state_version, loads,
            "device %s writes state version %s; %s on host %s loads %s. The source's version is "
            "fixed when the VM starts and is not renegotiated at migration",
            d->pub.id, d->pub.state_version, d->pub.type, h->host, loads);
        if (r < 0)
            return r;
    }
    if (demand && t->pub.available_instances != UINT32_MAX && demand > t->pub.available_instances)
        return verdict_add_reason(
            v, h->host, d->pub.id, "available_instances", gabi_arena_printf(a, "%zu", demand),
            gabi_arena_printf(a, "%u", t->pub.available_instances),
            "%zu device%s of type %s (%s) need%s %zu instance%s; host %s has %u free", demand,
            demand == 1 ? "" : "s", d->pub.type, demand_ids(a, pin, idx, false),
            demand == 1 ? "s" : "", demand, demand == 1 ? "" : "s", h->host,
            t->pub.available_instances);
    return 0;
}

static int failover_reasons(struct gabi_verdict *v, const struct gabi_pin *pin, size_t i,
                            const struct gabi_hostcaps *h)
{
    const struct pin_device *d = &pin->devices[i];
    size_t demand = pin_demand(pin, i, true);
    size_t n_free = host_free_vfs(h, d->pub.failover_device, d->failover_hash);
    struct gabi_arena *a = &v->arena;
    const char *vfs = NULL;
    char buf[2048];
    struct gabi_strbuf sb;

    if (demand <= n_free)
        return 0;
    gabi_strbuf_init(&sb, buf, sizeof(buf));
    for (size_t k = 0; k < h->n_failover; k++) {
        const struct gabi_hostcaps_failover *f = &h->failover[k];

        gabi_strbuf_item(&sb, ", ", f->address);
        gabi_strbuf_item(&sb, " ", f->device);
        if (f->in_use)
            gabi_strbuf_add(&sb, " (in use)");
    }
    if (sb.len)
        vfs = buf;
    if (demand == 1)
        return verdict_add_reason(
            v, h->host, d->pub.id, "failover", d->pub.failover_device, vfs ? vfs : "none",
            "failover standby %s needs a free %s virtual function for its primary %s; host %s "
            "has %s",
            d->pub.id, d->pub.failover_device, d->pub.failover_primary, h->host,
            vfs ? vfs : "none");
    return verdict_add_reason(v, h->host, d->pub.id, "failover",
                              gabi_arena_printf(a, "%zu x %s", demand, d->pub.failover_device),
                              gabi_arena_printf(a, "%zu free", n_free),
                              "failover standbys %s need %zu free %s virtual functions, one each; "
                              "host %s has %zu free (%s)",
                              demand_ids(a, pin, i, true), demand, d->pub.failover_device, h->host,
                              n_free, vfs ? vfs : "none");
}

int gabi_check(const struct gabi_catalog *cat, const struct gabi_pin *pin,
               const struct gabi_hostcaps *host, struct gabi_verdict **ret)
{
    struct gabi_verdict *v;
    int r = 0;

    (void)cat;
    v = verdict_new("check", host->host);
    if (!v)
        return -ENOMEM;
    if (pin->platform) {
        v->platform = gabi_arena_strdup(&v->arena, pin->platform->name);
        v->platform_from = pin->platform_source ? "source" : "pin";
        if (!bitset_test(&host->platforms, pin->platform_index))
            r = platform_reasons(v, pin->platform, host);
        else
            r = verdict_add_choice(v, "platform", "platform", pin->platform->name);
    } else if (gabi_pin_needs_platform(pin)) {
        const struct gabi_platform *def = gabi_hostcaps_default_platform(host);

        v->platform_from = "unpinned";
        r = verdict_add_reason(
            v, host->host, "", "platform", "unpinned", def ? def->name : "none",
            "VM %s names no platform: it runs its source host's newest runnable platform (on a "
            "kernel with tap USO, linux-6.2 with the USO features on), which this check cannot "
            "see. Give the source's hostcaps (check --source FILE), or pin the platform the VM "
            "runs (\"platform\": \"NAME\"; guestabi query-platforms on the source names its "
            "default)",
            pin->vm);
    } else {
        v->platform_from = "not-needed";
    }
    if (r >= 0)
        r = hv_check(v, pin, host);
    for (size_t i = 0; r >= 0 && i < pin->n_devices; i++) {
        const struct pin_device *d = &pin->devices[i];

        if (d->pub.mode) {
            if (!bitset_test(&host->modes, d->mode_index))
                r = mode_reasons(v, &d->pub, host);
            else
                r = verdict_add_choice(v, d->pub.id, "mode", d->pub.mode->name);
        }
        if (r >= 0 && d->pub.state_version) {
            size_t before = v->n_reasons;
            r = state_reasons(v, pin, i, host);
            if (r >= 0 && v->n_reasons == before)
                r = verdict_add_choice(v, d->pub.id, "state_version", d->pub.state_version);
        }
        if (r >= 0 && d->pub.failover_device)
            r = failover_reasons(v, pin, i, host);
    }
    if (r < 0) {
        gabi_verdict_free(v);
        return r;
    }
    *ret = v;
    return 0;
}

/* ---- pick ------------------------------------------------------------------------------------ */

static int pick_platform(struct gabi_verdict *v, const struct gabi_catalog *cat,
                         const struct gabi_hostcaps *const *hosts, size_t n)
{
    for (size_t i = 0; i < cat->platforms.n; i++) {
        bool all = true;

        for (size_t h = 0; h < n && all; h++)
            all = bitset_test(&hosts[h]->platforms, i);
        if (all)
            return verdict_add_choice(v, "platform", "platform", PLATFORM(cat, i)->pub.name);
    }
    verdict_add_choice(v, "platform", "platform", NULL);
    for (size_t h = 0; h < n; h++) {
        const char *runs = host_platforms_text(&v->arena, hosts[h]);
        int r = verdict_add_reason(v, hosts[h]->host, "", "platform", "a platform every host runs",
                                   runs, "no platform is common to all hosts: host %s runs %s",
                                   hosts[h]->host, runs);
        if (r < 0)
            return r;
    }
    return 0;
}

static char *host_modes_text(struct gabi_arena *a, const struct gabi_hostcaps *h,
                             enum gabi_device_class cls)
{
    char buf[2048];
    struct gabi_strbuf sb;

    gabi_strbuf_init(&sb, buf, sizeof(buf));
    for (size_t i = 0; i < h->cat->modes.n; i++) {
        const struct mode_entry *m = MODE(h->cat, i);
        if (m->pub.cls == cls && bitset_test(&h->modes, i))
            gabi_strbuf_item(&sb, ", ", m->pub.name);
    }
    return gabi_arena_strdup(a, sb.len ? buf : "none");
}

static int pick_mode(struct gabi_verdict *v, const struct gabi_catalog *cat,
                     enum gabi_device_class cls, const struct gabi_hostcaps *const *hosts, size_t n)
{
    for (size_t i = 0; i < cat->modes.n; i++) {
        bool all = MODE(cat, i)->pub.cls == cls;

        for (size_t h = 0; h < n && all; h++)
            all = bitset_test(&hosts[h]->modes, i);
        if (all)
            return verdict_add_choice(v, gabi_class_name(cls), "mode", MODE(cat, i)->pub.name);
    }
    verdict_add_choice(v, gabi_class_name(cls), "mode", NULL);
    for (size_t h = 0; h < n; h++) {
        const char *runs = host_modes_text(&v->arena, hosts[h], cls);
        int r = verdict_add_reason(v, hosts[h]->host, gabi_class_name(cls), "mode",
                                   "a mode every host runs", runs,
                                   "no %s mode is common to all hosts: host %s runs %s",
                                   gabi_class_name(cls), hosts[h]->host, runs);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Every version a host mentions for a type is a candidate. */
static void add_candidates(const struct gabi_versions *vs, const char **cand, size_t *n, size_t max)
{
    const char *one[1];
    const char *const *list = vs->list;
    size_t count = vs->n;

    if (vs->version) {
        one[0] = vs->version;
        list = one;
        count = 1;
    }
    for (size_t i = 0; i < count; i++) {
        bool seen = false;
        for (size_t j = 0; j < *n && !seen; j++)
            seen = strcmp(cand[j], list[i]) == 0;
        if (!seen && *n < max)
            cand[(*n)++] = list[i];
    }
}

static int pick_state_version(struct gabi_verdict *v, const char *type,
                              const struct gabi_hostcaps *const *hosts, size_t n)
{
    const char *cand[GABI_MAX_VERSIONS * 4];
    const char *best = NULL;
    size_t n_cand = 0;
    uint64_t hash = gabi_hash_str(type);
    bool missing = false;
    int r;

    for (size_t h = 0; h < n; h++) {
        const struct host_type *t = hostcaps_find_type(hosts[h], type, hash);
        if (!t) {
            missing = true;
            r = verdict_add_reason(v, hosts[h]->host, type, "device_type", type, "none",
                                   "host %s has no device of type %s", hosts[h]->host, type);
            if (r < 0)
                return r;
            continue;
        }
        add_candidates(&t->pub.loads, cand, &n_cand, ARRAY_SIZE(cand));
        add_candidates(&t->pub.writes, cand, &n_cand, ARRAY_SIZE(cand));
    }
    if (missing)
        return verdict_add_choice(v, type, "state_version", NULL);
    for (size_t i = 0; i < n_cand; i++) {
        bool all = true;

        /* Every host must load it, and write it: the VM may start on any of them. */
        for (size_t h = 0; h < n && all; h++) {
            const struct host_type *t = hostcaps_find_type(hosts[h], type, hash);
            all = gabi_versions_accepts(&t->pub.loads, cand[i]) &&
                  gabi_versions_accepts(&t->pub.writes, cand[i]);
        }
        if (all && (!best || gabi_version_compare(cand[i], best) > 0))
            best = cand[i];
    }
    r = verdict_add_choice(v, type, "state_version", best);
    if (r < 0 || best)
        return r;
    for (size_t h = 0; h < n; h++) {
        const struct host_type *t = hostcaps_find_type(hosts[h], type, hash);
        const char *loads = versions_text(&v->arena, &t->pub.loads);
        const char *writes = versions_text(&v->arena, &t->pub.writes);

        r = verdict_add_reason(v, hosts[h]->host, type, "state_version",
                               "a version every host writes and loads", loads,
                               "no state version of %s is common to all hosts: host %s loads %s "
                               "and writes %s",
                               type, hosts[h]->host, loads, writes);
        if (r < 0)
            return r;
    }
    return 0;
}

int gabi_pick(const struct gabi_catalog *cat, const struct gabi_hostcaps *const *hosts,
              size_t n_hosts, struct gabi_verdict **ret)
{
    struct gabi_verdict *v;
    bool picked_platform = false;
    int r;

    if (n_hosts == 0)
        return -EINVAL;
    v = verdict_new("pick", NULL);
    if (!v)
        return -ENOMEM;
    /* Only what some host reports is picked: no kernel reported, no platform to pick. */
    r = 0;
    for (size_t h = 0; h < n_hosts; h++)
        if (hosts[h]->kcaps || hosts[h]->has_declared_platforms) {
            r = pick_platform(v, cat, hosts, n_hosts);
            picked_platform = true;
            break;
        }
    if (r >= 0)
        r = hv_pick(v, hosts, n_hosts, picked_platform);
    for (int cls = GABI_CLASS_NET; r >= 0 && cls < GABI_CLASS_COUNT; cls++) {
        bool present = false;

        if (!gabi_class_is_virtio(cls))
            continue;
        for (size_t h = 0; h < n_hosts && !present; h++)
            for (size_t b = 0; b < hosts[h]->n_backends && !present; b++)
                present = hosts[h]->backends[b].pub.cls == (enum gabi_device_class)cls;
        if (present)
            r = pick_mode(v, cat, cls, hosts, n_hosts);
    }
    /* Device types, in the order hosts first mention them. */
    for (size_t h = 0; r >= 0 && h < n_hosts; h++)
        for (size_t t = 0; r >= 0 && t < hosts[h]->n_types; t++) {
            const char *name = hosts[h]->types[t].pub.name;
            bool seen = false;

            for (size_t e = 0; e < h && !seen; e++)
                seen = hostcaps_find_type(hosts[e], name, hosts[h]->types[t].hash) != NULL;
            if (!seen)
                r = pick_state_version(v, name, hosts, n_hosts);
        }
    if (r < 0) {
        gabi_verdict_free(v);
        return r;
    }
    *ret = v;
    return 0;
}

/* ---- match ----------------------------------------------------------------------------------- */

int gabi_match(const char *device, const char *version, const struct gabi_versions *dest,
               const char *dest_host, struct gabi_verdict **ret)
{
    struct gabi_verdict *v = verdict_new("match", dest_host);
    int r;

    if (!v)
        return -ENOMEM;
    if (gabi_versions_accepts(dest, version)) {
        r = verdict_add_choice(v, device ? device : "", "state_version", version);
    } else {
        const char *loads = versions_text(&v->arena, dest);
        r = verdict_add_reason(v, dest_host, device, "state_version", version, loads,
                               "%s%sstate version %s is not among those the destination%s%s "
                               "loads (%s); the source's version is fixed and is not renegotiated "
                               "at migration",
                               device ? device : "", device ? ": " : "", version,
                               dest_host ? " " : "", dest_host ? dest_host : "", loads);
    }
    if (r < 0) {
        gabi_verdict_free(v);
        return r;
    }
    *ret = v;
    return 0;
}
