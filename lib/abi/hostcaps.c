/* SPDX-License-Identifier: MIT */
/* hostcaps: what one host supports, parsed from a document or built by the probe. */

#include <stdio.h>
#include <stdlib.h>

#include "abi/internal.h"
#include "abi/versions.h"

static const char *const cap_state_names[GABI_CAP_STATE_COUNT] = {
    [GABI_CAP_UNKNOWN] = "unknown",
    [GABI_CAP_SUPPORTED] = "supported",
    [GABI_CAP_UNSUPPORTED] = "unsupported",
    [GABI_CAP_ABSENT] = "absent",
    [GABI_CAP_NOT_PERMITTED] = "not-permitted",
};

const char *gabi_cap_state_name(enum gabi_cap_state s)
{
    return (unsigned)s < GABI_CAP_STATE_COUNT ? cap_state_names[s] : "?";
}

int gabi_cap_state_from_name(const char *name)
{
    for (unsigned i = 0; i < GABI_CAP_STATE_COUNT; i++)
        if (strcmp(cap_state_names[i], name) == 0)
            return (int)i;
    return -ENOENT;
}

static struct gabi_hostcaps *hostcaps_alloc(const struct gabi_catalog *cat)
{
    struct gabi_hostcaps *h = calloc(1, sizeof(*h));

    if (!h)
        return NULL;
    gabi_arena_init(&h->arena);
    h->cat = cat;
    return h;
}

struct gabi_hostcaps *gabi_hostcaps_free(struct gabi_hostcaps *h)
{
    if (!h)
        return NULL;
    free(h->backends);
    free(h->types);
    free(h->failover);
    free(h->failover_hash);
    gabi_arena_release(&h->arena);
    free(h);
    return NULL;
}

void hostcaps_update_platforms(struct gabi_hostcaps *h)
{
    const struct gabi_catalog *cat = h->cat;

    memset(&h->platforms, 0, sizeof(h->platforms));
    for (size_t i = 0; i < cat->platforms.n; i++) {
        const struct platform_entry *p = PLATFORM(cat, i);

        if ((p->pub.requires & ~h->kcaps) != 0)
            continue;
        if (h->has_declared_platforms && !bitset_test(&h->declared_platforms, p->index))
            continue;
        if (gabi_hostcaps_platform_missing_features(h, &p->pub))
            continue; /* the hypervisor cannot switch some of its features on */
        bitset_set(&h->platforms, p->index);
    }
}

const struct host_type *hostcaps_find_type(const struct gabi_hostcaps *h, const char *name,
                                           uint64_t hash)
{
    for (size_t i = 0; i < h->n_types; i++)
        if (h->types[i].hash == hash && strcmp(h->types[i].pub.name, name) == 0)
            return &h->types[i];
    return NULL;
}

/* ---- building ---------------------------------------------------------------------------------
 */

struct gabi_hostcaps *gabi_hostcaps_new(const struct gabi_catalog *cat, const char *host,
                                        const char *kernel)
{
    struct gabi_hostcaps *h = hostcaps_alloc(cat);

    if (!h)
        return NULL;
    h->host = gabi_arena_strdup(&h->arena, host ? host : "");
    h->kernel = kernel ? gabi_arena_strdup(&h->arena, kernel) : NULL;
    if (!h->host || (kernel && !h->kernel))
        return gabi_hostcaps_free(h);
    hostcaps_update_platforms(h);
    return h;
}

void gabi_hostcaps_set_cap(struct gabi_hostcaps *h, enum gabi_kcap cap, enum gabi_cap_state s)
{
    if ((unsigned)cap >= GABI_KCAP_COUNT)
        return;
    h->caps[cap] = (uint8_t)s;
    if (s == GABI_CAP_SUPPORTED)
        h->kcaps |= 1u << cap;
    else
        h->kcaps &= ~(1u << cap);
    hostcaps_update_platforms(h);
}

static const char *dup_or_null(struct gabi_arena *a, const char *s)
{
    return s ? gabi_arena_strdup(a, s) : NULL;
}

int gabi_hostcaps_add_backend(struct gabi_hostcaps *h, const struct gabi_hostcaps_backend *b)
{
    struct host_backend *nb, *e;
    const struct gabi_mode **modes;

    if (h->n_backends >= GABI_MAX_BACKENDS)
        return -E2BIG;
    nb = realloc(h->backends, (h->n_backends + 1) * sizeof(*nb));
    if (!nb)
        return -ENOMEM;
    h->backends = nb;
    e = &nb[h->n_backends];
    memset(e, 0, sizeof(*e));
    e->pub = *b;
    e->pub.name = gabi_arena_strdup(&h->arena, b->name ? b->name : "");
    e->pub.socket = dup_or_null(&h->arena, b->socket);
    modes = gabi_arena_alloc_array(&h->arena, b->n_modes + 1, sizeof(*modes));
    if (!e->pub.name || !modes)
        return -ENOMEM;
    for (size_t i = 0; i < b->n_modes; i++) {
        modes[i] = b->modes[i];
        bitset_set(&e->modes, mode_index_of(b->modes[i]));
        bitset_set(&h->modes, mode_index_of(b->modes[i]));
    }
    e->pub.modes = modes;
    h->n_backends++;
    return 0;
}

int gabi_hostcaps_add_device_type(struct gabi_hostcaps *h,
                                  const struct gabi_hostcaps_device_type *t)
{
    struct host_type *nt, *e;
    int r;

    if (h->n_types >= GABI_MAX_HOST_DEVICES)
        return -E2BIG;
    nt = realloc(h->types, (h->n_types + 1) * sizeof(*nt));
    if (!nt)
        return -ENOMEM;
    h->types = nt;
    e = &nt[h->n_types];
    memset(e, 0, sizeof(*e));
    e->pub.name = gabi_arena_strdup(&h->arena, t->name);
    e->pub.kind = dup_or_null(&h->arena, t->kind);
    e->pub.available_instances = t->available_instances;
    if (!e->pub.name)
        return -ENOMEM;
    if ((r = gabi_versions_copy(&h->arena, &e->pub.loads, &t->loads)) < 0 ||
        (r = gabi_versions_copy(&h->arena, &e->pub.writes, &t->writes)) < 0)
        return r;
    e->hash = gabi_hash_str(e->pub.name);
    h->n_types++;
    return 0;
}

int gabi_hostcaps_add_failover(struct gabi_hostcaps *h, const struct gabi_hostcaps_failover *f)
{
    struct gabi_hostcaps_failover *nf, *e;
    uint64_t *nh;

    if (h->n_failover >= GABI_MAX_HOST_DEVICES)
        return -E2BIG;
    nf = realloc(h->failover, (h->n_failover + 1) * sizeof(*nf));
    if (!nf)
        return -ENOMEM;
    h->failover = nf;
    nh = realloc(h->failover_hash, (h->n_failover + 1) * sizeof(*nh));
    if (!nh)
        return -ENOMEM;
    h->failover_hash = nh;
    e = &nf[h->n_failover];
    e->address = gabi_arena_strdup(&h->arena, f->address ? f->address : "");
    e->pf = dup_or_null(&h->arena, f->pf);
    e->device = gabi_arena_strdup(&h->arena, f->device ? f->device : "");
    e->driver = dup_or_null(&h->arena, f->driver);
    e->mac = dup_or_null(&h->arena, f->mac);
    e->in_use = f->in_use;
    if (!e->address || !e->device)
        return -ENOMEM;
    nh[h->n_failover] = gabi_hash_str(e->device);
    h->n_failover++;
    return 0;
}

/* ---- parsing ----------------------------------------------------------------------------------
 */

static int parse_kernel(struct jctx *c, json_t *root, struct gabi_hostcaps *h)
{
    static const char *const keys[] = {"release", "capabilities", NULL};
    json_t *kernel, *caps, *v;
    const char *key;
    size_t old;
    int r;

    r = jget_object(c, root, "kernel", false, &kernel);
    if (r < 0 || !kernel)
        return r;
    old = jctx_push_key(c, "kernel");
    if ((r = jcheck_keys(c, kernel, keys)) < 0 ||
        (r = jget_string(c, kernel, "release", false, &h->kernel)) < 0 ||
        (r = jget_object(c, kernel, "capabilities", false, &caps)) < 0)
        return r;
    if (caps) {
        size_t old2 = jctx_push_key(c, "capabilities");

        json_object_foreach (caps, key, v) {
            size_t old3 = jctx_push_key(c, key);
            int k = gabi_kcap_from_name(key), s;

            if (k < 0) {
                struct gabi_suggest sg;
                char hint[256];

                gabi_suggest_init(&sg, key);
                for (unsigned i = 0; i < GABI_KCAP_COUNT; i++)
                    gabi_suggest_add(&sg, gabi_kcap_name(i));
                return jerr(c, "unknown kernel capability \"%s\"%s", key,
                            gabi_suggest_format(&sg, hint, sizeof(hint)));
            }
            if (!json_is_string(v))
                return jerr(c, "expected one of \"supported\", \"unsupported\", \"absent\", "
                               "\"not-permitted\", \"unknown\"");
            s = gabi_cap_state_from_name(json_string_value(v));
            if (s < 0)
                return jerr(c,
                            "unknown capability state \"%s\"; expected \"supported\", "
                            "\"unsupported\", \"absent\", \"not-permitted\" or \"unknown\"",
                            json_string_value(v));
            h->caps[k] = (uint8_t)s;
            if (s == GABI_CAP_SUPPORTED)
                h->kcaps |= 1u << k;
            jctx_pop(c, old3);
        }
        jctx_pop(c, old2);
    }
    jctx_pop(c, old);
    return 0;
}

static int parse_backend(struct jctx *c, json_t *obj, struct gabi_hostcaps *h)
{
    static const char *const keys[] = {"name", "class", "socket", "modes", "offer", NULL};
    static const char *const offer_keys[] = {"features", "protocol_features", "max_queue_pairs",
                                             "max_queue_size", NULL};
    const struct gabi_mode *modes[GABI_MAX_MODES];
    struct gabi_hostcaps_backend b = {0};
    json_t *arr, *offer, *v;
    size_t i;
    int r;

    if (!json_is_object(obj))
        return jerr(c, "a back-end is an object");
    if ((r = jcheck_keys(c, obj, keys)) < 0 || (r = jget_name(c, obj, "name", true, &b.name)) < 0 ||
        (r = jget_class(c, obj, "class", &b.cls)) < 0 ||
        (r = jget_string(c, obj, "socket", false, &b.socket)) < 0 ||
        (r = jget_array(c, obj, "modes", true, GABI_MAX_MODES, &arr)) < 0 ||
        (r = jget_object(c, obj, "offer", false, &offer)) < 0)
        return r;
    if (!gabi_class_is_virtio(b.cls))
        return jerr(c, "back-end \"%s\": back-ends serve virtio classes", b.name);
    if (offer) {
        size_t old = jctx_push_key(c, "offer");

        b.has_offer = true;
        if ((r = jcheck_keys(c, offer, offer_keys)) < 0 ||
            (r = jget_features(c, offer, "features", b.cls, &b.features)) < 0 ||
            (r = jget_protocol_features(c, offer, "protocol_features", &b.protocol_features)) < 0 ||
            (r = jget_u32(c, offer, "max_queue_pairs", true, 1, 0x8000, &b.max_queue_pairs)) < 0 ||
            (r = jget_u32(c, offer, "max_queue_size", true, 1, 32768, &b.max_queue_size)) < 0)
            return r;
        jctx_pop(c, old);
    }
    {
        size_t old = jctx_push_key(c, "modes");

        json_array_foreach (arr, i, v) {
            size_t old2 = jctx_push_index(c, i);
            const struct gabi_mode *m;

            if (!json_is_string(v))
                return jerr(c, "expected a mode name");
            m = gabi_catalog_find_mode(h->cat, json_string_value(v));
            if (!m) {
                struct gabi_suggest s;
                char hint[256];

                gabi_suggest_init(&s, json_string_value(v));
                for (size_t j = 0; j < h->cat->modes.n; j++)
                    gabi_suggest_add(&s, MODE(h->cat, j)->pub.name);
                return jerr(c, "unknown compat mode \"%s\"%s", json_string_value(v),
                            gabi_suggest_format(&s, hint, sizeof(hint)));
            }
            if (m->cls != b.cls)
                return jerr(c, "mode \"%s\" is a %s mode, but back-end \"%s\" is %s", m->name,
                            gabi_class_name(m->cls), b.name, gabi_class_name(b.cls));
            modes[i] = m;
            jctx_pop(c, old2);
        }
        jctx_pop(c, old);
    }
    b.modes = modes;
    b.n_modes = json_array_size(arr);
    for (size_t j = 0; j < h->n_backends; j++)
        if (strcmp(h->backends[j].pub.name, b.name) == 0)
            return jerr(c, "back-end \"%s\" is listed twice", b.name);
    r = gabi_hostcaps_add_backend(h, &b);
    return r == -E2BIG ? jerr(c, "more than %u back-ends", GABI_MAX_BACKENDS) : r;
}

static int parse_host_type(struct jctx *c, json_t *obj, struct gabi_hostcaps *h)
{
    static const char *const keys[] = {"name", "kind", "loads", "writes", "available_instances",
                                       NULL};
    struct gabi_hostcaps_device_type t = {0};
    const struct device_type_entry *rule;
    int r;

    t.available_instances = UINT32_MAX;
    if (!json_is_object(obj))
        return jerr(c, "a device type is an object");
    if ((r = jcheck_keys(c, obj, keys)) < 0 || (r = jget_name(c, obj, "name", true, &t.name)) < 0 ||
        (r = jget_name(c, obj, "kind", false, &t.kind)) < 0 ||
        (r = jget_versions(c, obj, "loads", false, &t.loads)) < 0 ||
        (r = jget_versions(c, obj, "writes", false, &t.writes)) < 0 ||
        (r = jget_u32(c, obj, "available_instances", false, 0, UINT32_MAX - 1,
                      &t.available_instances)) < 0)
        return r;
    rule = catalog_find_type_entry(h->cat, t.name);
    if (!t.loads.n && !t.loads.version) {
        /* The driver does not say: the catalog's rule for this type does. */
        if (!rule)
            return jerr(c,
                        "device type \"%s\" lists no \"loads\" and the catalog has no rule "
                        "for it",
                        t.name);
        t.loads = rule->pub.loads;
        if (!t.writes.n && !t.writes.version)
            t.writes = rule->pub.writes;
    }
    if (!t.writes.n && !t.writes.version) {
        if (t.loads.version) {
            t.writes.n = 1;
            t.writes.list = &t.loads.version;
        } else {
            t.writes = t.loads;
        }
    }
    r = jcheck_loads_writes(c, t.name, &t.loads, &t.writes);
    if (r < 0)
        return r;
    if (!t.kind)
        t.kind = rule ? rule->pub.kind : "mdev";
    if (hostcaps_find_type(h, t.name, gabi_hash_str(t.name)))
        return jerr(c, "device type \"%s\" is listed twice", t.name);
    r = gabi_hostcaps_add_device_type(h, &t);
    return r == -E2BIG ? jerr(c, "more than %u device types", GABI_MAX_HOST_DEVICES) : r;
}

static int parse_failover(struct jctx *c, json_t *obj, struct gabi_hostcaps *h)
{
    static const char *const keys[] = {"address", "pf", "device", "driver", "mac", "in_use", NULL};
    struct gabi_hostcaps_failover f = {0};
    int r;

    if (!json_is_object(obj))
        return jerr(c, "a failover device is an object");
    if ((r = jcheck_keys(c, obj, keys)) < 0 ||
        (r = jget_name(c, obj, "address", true, &f.address)) < 0 ||
        (r = jget_name(c, obj, "pf", false, &f.pf)) < 0 ||
        (r = jget_name(c, obj, "device", true, &f.device)) < 0 ||
        (r = jget_name(c, obj, "driver", false, &f.driver)) < 0 ||
        (r = jget_name(c, obj, "mac", false, &f.mac)) < 0 ||
        (r = jget_bool(c, obj, "in_use", &f.in_use)) < 0)
        return r;
    r = gabi_hostcaps_add_failover(h, &f);
    return r == -E2BIG ? jerr(c, "more than %u failover devices", GABI_MAX_HOST_DEVICES) : r;
}

typedef int (*parse_item_fn)(struct jctx *c, json_t *obj, struct gabi_hostcaps *h);

static int parse_list(struct jctx *c, json_t *root, const char *key, size_t max, parse_item_fn fn,
                      struct gabi_hostcaps *h)
{
    json_t *arr, *v;
    size_t i, old;
    int r = jget_array(c, root, key, false, max, &arr);

    if (r < 0 || !arr)
        return r;
    old = jctx_push_key(c, key);
    json_array_foreach (arr, i, v) {
        size_t old2 = jctx_push_index(c, i);
        r = fn(c, v, h);
        if (r < 0)
            return r;
        jctx_pop(c, old2);
    }
    jctx_pop(c, old);
    return 0;
}

static int parse_declared_platforms(struct jctx *c, json_t *root, struct gabi_hostcaps *h)
{
    json_t *arr, *v;
    size_t i, old;
    int r = jget_array(c, root, "platforms", false, GABI_MAX_PLATFORMS, &arr);

    if (r < 0 || !arr)
        return r;
    old = jctx_push_key(c, "platforms");
    h->has_declared_platforms = true;
    json_array_foreach (arr, i, v) {
        size_t old2 = jctx_push_index(c, i);
        const struct gabi_platform *p;
        struct gabi_error tmp;

        if (!json_is_string(v))
            return jerr(c, "expected a platform name");
        if (gabi_catalog_require_platform(h->cat, json_string_value(v), &p, &tmp) < 0)
            return jerr(c, "%s", tmp.message);
        bitset_set(&h->declared_platforms, platform_index_of(p));
        jctx_pop(c, old2);
    }
    jctx_pop(c, old);
    return 0;
}

int gabi_hostcaps_parse(const struct gabi_catalog *cat, const char *origin, const char *buf,
                        size_t size, struct gabi_hostcaps **ret, struct gabi_error *reterr)
{
    static const char *const keys[] = {"schema",    "host",         "kernel",
                                       "backends",  "device_types", "failover",
                                       "platforms", "hypervisor",   NULL};
    struct gabi_hostcaps *h;
    struct jctx c;
    json_t *root;
    int r;

    if (!cat->finalized)
        return gabi_error_set(reterr, -EINVAL, origin, "catalog not finalized");
    r = jparse(origin, buf, size, GABI_SCHEMA_HOSTCAPS, &root, reterr);
    if (r < 0)
        return r;
    h = hostcaps_alloc(cat);
    if (!h) {
        json_decref(root);
        return -ENOMEM;
    }
    jctx_init(&c, origin, &h->arena, reterr);
    if ((r = jcheck_keys(&c, root, keys)) < 0 ||
        (r = jget_name(&c, root, "host", true, &h->host)) < 0 ||
        (r = parse_kernel(&c, root, h)) < 0 ||
        (r = parse_list(&c, root, "backends", GABI_MAX_BACKENDS, parse_backend, h)) < 0 ||
        (r = parse_list(&c, root, "device_types", GABI_MAX_HOST_DEVICES, parse_host_type, h)) < 0 ||
        (r = parse_list(&c, root, "failover", GABI_MAX_HOST_DEVICES, parse_failover, h)) < 0 ||
        (r = parse_declared_platforms(&c, root, h)) < 0 ||
        (r = hostcaps_parse_hypervisor(&c, root, h)) < 0) {
        json_decref(root);
        gabi_hostcaps_free(h);
        return r;
    }
    json_decref(root);
    hostcaps_update_platforms(h);
    *ret = h;
    return 0;
}

/* ---- accessors --------------------------------------------------------------------------------
 */

const char *gabi_hostcaps_host(const struct gabi_hostcaps *h)
{
    return h->host;
}

const char *gabi_hostcaps_kernel(const struct gabi_hostcaps *h)
{
    return h->kernel;
}

enum gabi_cap_state gabi_hostcaps_cap(const struct gabi_hostcaps *h, enum gabi_kcap cap)
{
    return (unsigned)cap < GABI_KCAP_COUNT ? (enum gabi_cap_state)h->caps[cap] : GABI_CAP_UNKNOWN;
}

size_t gabi_hostcaps_n_backends(const struct gabi_hostcaps *h)
{
    return h->n_backends;
}

const struct gabi_hostcaps_backend *gabi_hostcaps_backend(const struct gabi_hostcaps *h, size_t i)
{
    return i < h->n_backends ? &h->backends[i].pub : NULL;
}

size_t gabi_hostcaps_n_device_types(const struct gabi_hostcaps *h)
{
    return h->n_types;
}

const struct gabi_hostcaps_device_type *gabi_hostcaps_device_type(const struct gabi_hostcaps *h,
                                                                  size_t i)
{
    return i < h->n_types ? &h->types[i].pub : NULL;
}

size_t gabi_hostcaps_n_failover(const struct gabi_hostcaps *h)
{
    return h->n_failover;
}

const struct gabi_hostcaps_failover *gabi_hostcaps_failover(const struct gabi_hostcaps *h, size_t i)
{
    return i < h->n_failover ? &h->failover[i] : NULL;
}

bool gabi_hostcaps_runs_platform(const struct gabi_hostcaps *h, const struct gabi_platform *p)
{
    return bitset_test(&h->platforms, platform_index_of(p));
}

bool gabi_hostcaps_runs_mode(const struct gabi_hostcaps *h, const struct gabi_mode *m)
{
    return bitset_test(&h->modes, mode_index_of(m));
}

const struct gabi_platform *gabi_hostcaps_default_platform(const struct gabi_hostcaps *h)
{
    /* the catalog lists platforms newest first */
    for (size_t i = 0; i < h->cat->platforms.n; i++)
        if (bitset_test(&h->platforms, i))
            return &PLATFORM(h->cat, i)->pub;
    return NULL;
}

size_t gabi_hostcaps_platforms(const struct gabi_hostcaps *h, const struct gabi_platform **ret,
                               size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < h->cat->platforms.n; i++) {
        if (!bitset_test(&h->platforms, i))
            continue;
        if (n < max)
            ret[n] = &PLATFORM(h->cat, i)->pub;
        n++;
    }
    return n;
}

/* ---- serializing --------------------------------------------------------------------------------
 */

char *gabi_hostcaps_to_json(const struct gabi_hostcaps *h)
{
    json_t *root, *kernel, *caps, *arr;
    char *text;

    root = json_object();
    json_object_set_new(root, "schema", json_string(GABI_SCHEMA_HOSTCAPS));
    json_object_set_new(root, "host", json_string(h->host));
    kernel = json_object();
    if (h->kernel)
        json_object_set_new(kernel, "release", json_string(h->kernel));
    caps = json_object();
    for (unsigned k = 0; k < GABI_KCAP_COUNT; k++)
        if (h->caps[k] != GABI_CAP_UNKNOWN)
            json_object_set_new(caps, gabi_kcap_name(k),
                                json_string(gabi_cap_state_name(h->caps[k])));
    json_object_set_new(kernel, "capabilities", caps);
    json_object_set_new(root, "kernel", kernel);
    if (h->hv.state != GABI_HV_UNKNOWN)
        json_object_set_new(root, "hypervisor", hostcaps_hypervisor_json(h));

    arr = json_array();
    for (size_t i = 0; i < h->cat->platforms.n; i++)
        if (bitset_test(&h->platforms, i))
            json_array_append_new(arr, json_string(PLATFORM(h->cat, i)->pub.name));
    json_object_set_new(root, "platforms", arr);

    arr = json_array();
    for (size_t i = 0; i < h->n_backends; i++) {
        const struct gabi_hostcaps_backend *b = &h->backends[i].pub;
        json_t *o = json_object(), *modes = json_array();

        json_object_set_new(o, "name", json_string(b->name));
        json_object_set_new(o, "class", json_string(gabi_class_name(b->cls)));
        if (b->socket)
            json_object_set_new(o, "socket", json_string(b->socket));
        for (size_t j = 0; j < b->n_modes; j++)
            json_array_append_new(modes, json_string(b->modes[j]->name));
        json_object_set_new(o, "modes", modes);
        if (b->has_offer)
            json_object_set_new(o, "offer",
                                json_pack("{s:o, s:o, s:I, s:I}", "features",
                                          features_json(b->cls, b->features), "protocol_features",
                                          protocol_features_json(b->protocol_features),
                                          "max_queue_pairs", (json_int_t)b->max_queue_pairs,
                                          "max_queue_size", (json_int_t)b->max_queue_size));
        json_array_append_new(arr, o);
    }
    json_object_set_new(root, "backends", arr);

    arr = json_array();
    for (size_t i = 0; i < h->n_types; i++) {
        const struct gabi_hostcaps_device_type *t = &h->types[i].pub;
        json_t *o = json_object();

        json_object_set_new(o, "name", json_string(t->name));
        if (t->kind)
            json_object_set_new(o, "kind", json_string(t->kind));
        json_object_set_new(o, "loads", versions_json(&t->loads));
        json_object_set_new(o, "writes", versions_json(&t->writes));
        if (t->available_instances != UINT32_MAX)
            json_object_set_new(o, "available_instances",
                                json_integer((json_int_t)t->available_instances));
        json_array_append_new(arr, o);
    }
    json_object_set_new(root, "device_types", arr);

    arr = json_array();
    for (size_t i = 0; i < h->n_failover; i++) {
        const struct gabi_hostcaps_failover *f = &h->failover[i];
        json_t *o = json_object();

        json_object_set_new(o, "address", json_string(f->address));
        json_object_set_new(o, "device", json_string(f->device));
        if (f->pf)
            json_object_set_new(o, "pf", json_string(f->pf));
        if (f->driver)
            json_object_set_new(o, "driver", json_string(f->driver));
        if (f->mac)
            json_object_set_new(o, "mac", json_string(f->mac));
        json_object_set_new(o, "in_use", json_boolean(f->in_use));
        json_array_append_new(arr, o);
    }
    json_object_set_new(root, "failover", arr);

    text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    return text;
}
