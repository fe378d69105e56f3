/* SPDX-License-Identifier: MIT */
/* The catalog: compat modes, platforms and device-state rules, layered and validated. */

#include <stdio.h>
#include <stdlib.h>

#include "abi/internal.h"
#include "abi/versions.h"

static void entry_list_release(struct entry_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->items[i])
            json_decref(l->items[i]->def);
    free(l->items);
    memset(l, 0, sizeof(*l));
}

static int entry_list_append(struct entry_list *l, struct entry_head *e)
{
    if (l->n == l->alloc) {
        size_t na = l->alloc ? l->alloc * 2 : 16;
        struct entry_head **n = realloc(l->items, na * sizeof(*n));

        if (!n)
            return -ENOMEM;
        l->items = n;
        l->alloc = na;
    }
    l->items[l->n++] = e;
    return 0;
}

struct gabi_catalog *gabi_catalog_new(void)
{
    struct gabi_catalog *cat = calloc(1, sizeof(*cat));

    if (cat)
        gabi_arena_init(&cat->arena);
    return cat;
}

struct gabi_catalog *gabi_catalog_free(struct gabi_catalog *cat)
{
    if (!cat)
        return NULL;
    entry_list_release(&cat->modes);
    entry_list_release(&cat->platforms);
    entry_list_release(&cat->types);
    gabi_arena_release(&cat->arena);
    free(cat);
    return NULL;
}

/* ---- parsing one entry of each kind --------------------------------------------------------- */

static int check_name(struct jctx *c, const char *name)
{
    char why[GABI_ERROR_MESSAGE_MAX];

    return gabi_name_check(name, why, sizeof(why)) < 0 ? jerr(c, "%s", why) : 0;
}

static int parse_mode(struct jctx *c, json_t *obj, struct mode_entry *m)
{
    static const char *const keys[] = {"name",
                                       "class",
                                       "order",
                                       "features",
                                       "protocol_features",
                                       "max_queue_pairs",
                                       "max_queue_size",
                                       "description",
                                       "source",
                                       "extra",
                                       NULL};
    json_t *extra;
    int r;

    if (!json_is_object(obj))
        return jerr(c, "a mode is an object");
    if ((r = jcheck_keys(c, obj, keys)) < 0 ||
        (r = jget_string(c, obj, "name", true, &m->pub.name)) < 0 ||
        (r = check_name(c, m->pub.name)) < 0 || (r = jget_class(c, obj, "class", &m->pub.cls)) < 0)
        return r;
    if (!gabi_class_is_virtio(m->pub.cls))
        return jerr(c, "mode \"%s\": compat modes are for virtio classes (virtio-net, virtio-blk)",
                    m->pub.name);
    if ((r = jget_i64(c, obj, "order", true, &m->pub.order)) < 0 ||
        (r = jget_features(c, obj, "features", m->pub.cls, &m->pub.features)) < 0 ||
        (r = jget_protocol_features(c, obj, "protocol_features", &m->pub.protocol_features)) < 0 ||
        (r = jget_u32(c, obj, "max_queue_pairs", true, 1, 0x8000, &m->pub.max_queue_pairs)) < 0 ||
        (r = jget_u32(c, obj, "max_queue_size", true, 1, 32768, &m->pub.max_queue_size)) < 0 ||
        (r = jget_string(c, obj, "description", false, &m->pub.description)) < 0 ||
        (r = jget_object(c, obj, "extra", false, &extra)) < 0)
        return r;
    if (m->pub.max_queue_size & (m->pub.max_queue_size - 1)) {
        size_t old = jctx_push_key(c, "max_queue_size");
        r = jerr(c, "%u is not a power of two (split virtqueues need one)", m->pub.max_queue_size);
        jctx_pop(c, old);
        return r;
    }
    if (!(m->pub.features & (1ull << GABI_F_VERSION_1))) {
        size_t old = jctx_push_key(c, "features");
        r = jerr(c, "mode \"%s\" lacks VIRTIO_F_VERSION_1; guestabi modes are for modern devices",
                 m->pub.name);
        jctx_pop(c, old);
        return r;
    }
    if (m->pub.protocol_features && !(m->pub.features & (1ull << GABI_F_PROTOCOL_FEATURES))) {
        size_t old = jctx_push_key(c, "protocol_features");
        r = jerr(c, "protocol features need VHOST_USER_F_PROTOCOL_FEATURES in \"features\"");
        jctx_pop(c, old);
        return r;
    }
    if (extra) {
        const char *key;
        json_t *val;
        size_t i = 0;

        m->n_extra = json_object_size(extra);
        m->extra_keys = gabi_arena_alloc_array(c->arena, m->n_extra + 1, sizeof(char *));
        m->extra_json = gabi_arena_alloc_array(c->arena, m->n_extra + 1, sizeof(char *));
        if (!m->extra_keys || !m->extra_json)
            return -ENOMEM;
        json_object_foreach (extra, key, val) {
            char *text = json_dumps(val, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);

            if (!text)
                return -ENOMEM;
            m->extra_keys[i] = gabi_arena_strdup(c->arena, key);
            m->extra_json[i] = gabi_arena_strdup(c->arena, text);
            free(text);
            i++;
        }
    }
    return 0;
}

static int parse_platform(struct jctx *c, json_t *obj, struct platform_entry *p)
{
    static const char *const keys[] = {
        "name",          "base",          "order",       "requires", "features",
        "drop_requires", "drop_features", "description", "source",   NULL};
    int r;

    if (!json_is_object(obj))
        return jerr(c, "a platform is an object");
    if ((r = jcheck_keys(c, obj, keys)) < 0 ||
        (r = jget_string(c, obj, "name", true, &p->pub.name)) < 0 ||
        (r = check_name(c, p->pub.name)) < 0 ||
        (r = jget_string(c, obj, "base", false, &p->pub.base)) < 0 ||
        (r = jget_i64(c, obj, "order", true, &p->pub.order)) < 0 ||
        (r = jget_kcaps(c, obj, "requires", &p->own_requires)) < 0 ||
        (r = jget_features(c, obj, "features", GABI_CLASS_NET, &p->own_features)) < 0 ||
        (r = jget_kcaps(c, obj, "drop_requires", &p->drop_requires)) < 0 ||
        (r = jget_features(c, obj, "drop_features", GABI_CLASS_NET, &p->drop_features)) < 0 ||
        (r = jget_string(c, obj, "description", false, &p->pub.description)) < 0)
        return r;
    if (!p->pub.base && (p->drop_requires || p->drop_features))
        return jerr(c, "platform \"%s\" drops entries but has no \"base\" to drop them from",
                    p->pub.name);
    for (unsigned b = 0; b < 64; b++) {
        if ((p->own_features & (1ull << b)) && !gabi_kcap_needed_by_net_feature(b)) {
            size_t old = jctx_push_key(c, "features");
            r = jerr(c,
                     "%s does not depend on the host kernel; platforms only carry "
                     "kernel-dependent features",
                     gabi_feature_name(GABI_CLASS_NET, b));
            jctx_pop(c, old);
            return r;
        }
    }
    return 0;
}

static int parse_device_type(struct jctx *c, json_t *obj, struct device_type_entry *t)
{
    static const char *const keys[] = {"name",        "kind",   "writes", "loads",
                                       "description", "source", NULL};
    int r;

    if (!json_is_object(obj))
        return jerr(c, "a device type is an object");
    if ((r = jcheck_keys(c, obj, keys)) < 0 ||
        (r = jget_string(c, obj, "name", true, &t->pub.name)) < 0 ||
        (r = check_name(c, t->pub.name)) < 0 ||
        (r = jget_string(c, obj, "kind", true, &t->pub.kind)) < 0 ||
        (r = jget_versions(c, obj, "loads", true, &t->pub.loads)) < 0 ||
        (r = jget_versions(c, obj, "writes", false, &t->pub.writes)) < 0 ||
        (r = jget_string(c, obj, "description", false, &t->pub.description)) < 0)
        return r;
    if (strcmp(t->pub.kind, "mdev") != 0 && strcmp(t->pub.kind, "vhost-user") != 0) {
        size_t old = jctx_push_key(c, "kind");
        r = jerr(c, "unknown device type kind \"%s\"; expected \"mdev\" or \"vhost-user\"",
                 t->pub.kind);
        jctx_pop(c, old);
        return r;
    }
    /* A device writes what it loads unless told otherwise; the range form writes its newest. */
    if (!t->pub.writes.n && !t->pub.writes.version) {
        if (t->pub.loads.version) {
            t->pub.writes.n = 1;
            t->pub.writes.list = &t->pub.loads.version;
        } else {
            t->pub.writes = t->pub.loads;
        }
    }
    r = jcheck_loads_writes(c, t->pub.name, &t->pub.loads, &t->pub.writes);
    if (r < 0)
        return r;
    t->hash = gabi_hash_str(t->pub.name);
    return 0;
}

/* ---- layering ------------------------------------------------------------------------------- */

/*
 * Where a new entry goes in `l`: its index to replace a lower-layer entry, l->n to append,
 * -1 to drop it (an identical or higher-layer entry exists). A different definition in the
 * same layer is an error naming both documents (-EEXIST).
 */
static ssize_t place_entry(const char *what, const struct entry_list *l, const struct entry_head *e,
                           struct gabi_error *reterr)
{
    for (size_t i = 0; i < l->n; i++) {
        const struct entry_head *o = l->items[i];

        if (strcmp(o->name, e->name) != 0)
            continue;
        if (o->layer == e->layer) {
            if (json_equal(o->def, e->def))
                return -1;
            return gabi_error_set(reterr, -EEXIST, e->where,
                                  "%s \"%s\" is already defined differently in %s", what, e->name,
                                  o->where);
        }
        return o->layer < e->layer ? (ssize_t)i : -1;
    }
    return (ssize_t)l->n;
}

/* Check every staged entry of one kind against the catalog, before anything changes. */
static int check_staged(const char *what, const struct entry_list *have,
                        const struct entry_list *staged, size_t max, struct gabi_error *reterr)
{
    size_t added = 0;

    for (size_t i = 0; i < staged->n; i++) {
        ssize_t at = place_entry(what, have, staged->items[i], reterr);

        if (at == -EEXIST)
            return -EEXIST;
        if (at == (ssize_t)have->n)
            added++;
    }
    if (have->n + added > max)
        return gabi_error_set(reterr, -E2BIG, staged->items[0]->origin,
                              "the catalog would hold more than %zu %ss", max, what);
    return 0;
}

/* Merge staged entries into the catalog; they move over (or are released when dropped). */
static int apply_staged(struct entry_list *have, struct entry_list *staged)
{
    for (size_t i = 0; i < staged->n; i++) {
        struct entry_head *e = staged->items[i];
        ssize_t at = place_entry("", have, e, NULL);

        if (at < 0)
            continue;
        staged->items[i] = NULL;
        if ((size_t)at == have->n) {
            if (entry_list_append(have, e) < 0) {
                json_decref(e->def);
                return -ENOMEM;
            }
        } else {
            json_decref(have->items[at]->def);
            have->items[at] = e;
        }
    }
    return 0;
}

typedef int (*parse_entry_fn)(struct jctx *c, json_t *obj, struct entry_head *e);

static int parse_mode_entry(struct jctx *c, json_t *obj, struct entry_head *e)
{
    struct mode_entry *m = (struct mode_entry *)e;
    int r = parse_mode(c, obj, m);

    e->name = m->pub.name;
    return r;
}

static int parse_platform_entry(struct jctx *c, json_t *obj, struct entry_head *e)
{
    struct platform_entry *p = (struct platform_entry *)e;
    int r = parse_platform(c, obj, p);

    e->name = p->pub.name;
    return r;
}

static int parse_type_entry(struct jctx *c, json_t *obj, struct entry_head *e)
{
    struct device_type_entry *t = (struct device_type_entry *)e;
    int r = parse_device_type(c, obj, t);

    e->name = t->pub.name;
    return r;
}

static const struct entry_kind {
    const char *key;  /* member of the document */
    const char *what; /* in messages */
    size_t size;      /* entry struct size */
    size_t max;
    parse_entry_fn parse;
} kinds[] = {
    {"modes", "mode", sizeof(struct mode_entry), GABI_MAX_MODES, parse_mode_entry},
    {"platforms", "platform", sizeof(struct platform_entry), GABI_MAX_PLATFORMS,
     parse_platform_entry},
    {"device_types", "device type", sizeof(struct device_type_entry), GABI_MAX_DEVICE_TYPES,
     parse_type_entry},
};

static struct entry_list *catalog_list(struct gabi_catalog *cat, size_t kind)
{
    struct entry_list *lists[] = {&cat->modes, &cat->platforms, &cat->types};

    return lists[kind];
}

/* Parse the entries of one kind in a document into `staged`. */
static int stage_kind(struct gabi_catalog *cat, struct jctx *c, json_t *root,
                      const struct entry_kind *k, int layer, struct entry_list *staged)
{
    json_t *arr, *v;
    size_t i, old;
    int r;

    r = jget_array(c, root, k->key, false, k->max, &arr);
    if (r < 0 || !arr)
        return r;
    old = jctx_push_key(c, k->key);
    json_array_foreach (arr, i, v) {
        size_t old2 = jctx_push_index(c, i);
        struct entry_head *e = gabi_arena_alloc(&cat->arena, k->size);

        if (!e)
            return -ENOMEM;
        r = k->parse(c, v, e);
        if (r < 0)
            return r;
        for (size_t j = 0; j < staged->n; j++)
            if (strcmp(staged->items[j]->name, e->name) == 0)
                return jerr(c, "%s \"%s\" is defined twice in this document (also at %s)", k->what,
                            e->name, staged->items[j]->where);
        e->origin = c->origin;
        e->layer = layer;
        e->where = gabi_arena_printf(&cat->arena, "%s: %s", c->origin, c->path);
        e->def = json_incref(v);
        r = entry_list_append(staged, e);
        if (r < 0) {
            json_decref(e->def);
            return r;
        }
        jctx_pop(c, old2);
    }
    jctx_pop(c, old);
    return 0;
}

int gabi_catalog_add_document(struct gabi_catalog *cat, int layer, const char *origin,
                              const char *buf, size_t size, struct gabi_error *reterr)
{
    static const char *const keys[] = {"schema",    "description",  "modes",
                                       "platforms", "device_types", NULL};
    struct entry_list staged[ARRAY_SIZE(kinds)] = {0};
    struct jctx c;
    json_t *root = NULL;
    const char *origin_copy;
    int r;

    if (cat->finalized)
        return gabi_error_set(reterr, -EBUSY, origin, "catalog already finalized");
    origin_copy = gabi_arena_strdup(&cat->arena, origin ? origin : "<input>");
    if (!origin_copy)
        return -ENOMEM;
    r = jparse(origin_copy, buf, size, GABI_SCHEMA_CATALOG, &root, reterr);
    if (r < 0)
        return r;
    jctx_init(&c, origin_copy, &cat->arena, reterr);
    r = jcheck_keys(&c, root, keys);
    for (size_t k = 0; r >= 0 && k < ARRAY_SIZE(kinds); k++)
        r = stage_kind(cat, &c, root, &kinds[k], layer, &staged[k]);
    for (size_t k = 0; r >= 0 && k < ARRAY_SIZE(kinds); k++)
        r = check_staged(kinds[k].what, catalog_list(cat, k), &staged[k], kinds[k].max, reterr);
    for (size_t k = 0; r >= 0 && k < ARRAY_SIZE(kinds); k++)
        r = apply_staged(catalog_list(cat, k), &staged[k]);
    for (size_t k = 0; k < ARRAY_SIZE(kinds); k++)
        entry_list_release(&staged[k]);
    json_decref(root);
    return r;
}

/* ---- finalize ------------------------------------------------------------------------------- */

static struct platform_entry *find_platform_entry(struct gabi_catalog *cat, const char *name)
{
    for (size_t i = 0; i < cat->platforms.n; i++)
        if (strcmp(PLATFORM(cat, i)->pub.name, name) == 0)
            return PLATFORM(cat, i);
    return NULL;
}

static int resolve_platform(struct gabi_catalog *cat, struct platform_entry *p,
                            struct gabi_error *reterr)
{
    struct platform_entry *base;
    char where[GABI_ERROR_WHERE_MAX];
    int r;

    if (p->resolving == 2)
        return 0;
    snprintf(where, sizeof(where), "%s.base", p->head.where);
    if (p->resolving == 1)
        return gabi_error_set(reterr, -ELOOP, where,
                              "platform \"%s\" inherits from itself through its bases",
                              p->pub.name);
    p->resolving = 1;
    p->pub.requires = p->own_requires;
    p->pub.features = p->own_features;
    if (p->pub.base) {
        base = find_platform_entry(cat, p->pub.base);
        if (!base) {
            struct gabi_suggest s;
            char hint[256];

            gabi_suggest_init(&s, p->pub.base);
            for (size_t i = 0; i < cat->platforms.n; i++)
                gabi_suggest_add(&s, PLATFORM(cat, i)->pub.name);
            return gabi_error_set(
                reterr, -ENOENT, where, "platform \"%s\" is based on unknown platform \"%s\"%s",
                p->pub.name, p->pub.base, gabi_suggest_format(&s, hint, sizeof(hint)));
        }
        r = resolve_platform(cat, base, reterr);
        if (r < 0) {
            /* Name the whole chain once, at the platform where it started. */
            return r;
        }
        p->pub.requires = (base->pub.requires & ~p->drop_requires) | p->own_requires;
        p->pub.features = (base->pub.features & ~p->drop_features) | p->own_features;
    }
    for (unsigned b = 0; b < 64; b++) {
        uint32_t need = gabi_kcap_needed_by_net_feature(b);

        if ((p->pub.features & (1ull << b)) && (need & ~p->pub.requires)) {
            struct gabi_arena tmp;
            gabi_arena_init(&tmp);
            snprintf(where, sizeof(where), "%s", p->head.where);
            gabi_error_set(reterr, -EINVAL, where,
                           "platform \"%s\" turns on %s, which needs %s; add it to \"requires\"",
                           p->pub.name, gabi_feature_name(GABI_CLASS_NET, b),
                           kcaps_text(&tmp, need & ~p->pub.requires));
            gabi_arena_release(&tmp);
            return -EINVAL;
        }
    }
    p->resolving = 2;
    return 0;
}

static int cmp_mode(const void *a, const void *b)
{
    const struct mode_entry *x = *(struct mode_entry *const *)a,
                            *y = *(struct mode_entry *const *)b;

    if (x->pub.cls != y->pub.cls)
        return x->pub.cls < y->pub.cls ? -1 : 1;
    if (x->pub.order != y->pub.order)
        return x->pub.order > y->pub.order ? -1 : 1;
    return strcmp(x->pub.name, y->pub.name);
}

static int cmp_platform(const void *a, const void *b)
{
    const struct platform_entry *x = *(struct platform_entry *const *)a,
                                *y = *(struct platform_entry *const *)b;

    if (x->pub.order != y->pub.order)
        return x->pub.order > y->pub.order ? -1 : 1;
    return strcmp(x->pub.name, y->pub.name);
}

static int cmp_type(const void *a, const void *b)
{
    const struct device_type_entry *x = *(struct device_type_entry *const *)a,
                                   *y = *(struct device_type_entry *const *)b;

    return strcmp(x->pub.name, y->pub.name);
}

int gabi_catalog_finalize(struct gabi_catalog *cat, struct gabi_error *reterr)
{
    int r;

    if (cat->finalized)
        return 0;
    for (size_t i = 0; i < cat->modes.n; i++)
        MODE(cat, i)->pub.origin = MODE(cat, i)->head.origin;
    for (size_t i = 0; i < cat->platforms.n; i++)
        PLATFORM(cat, i)->pub.origin = PLATFORM(cat, i)->head.origin;
    for (size_t i = 0; i < cat->types.n; i++)
        DTYPE(cat, i)->pub.origin = DTYPE(cat, i)->head.origin;
    for (size_t i = 0; i < cat->platforms.n; i++) {
        r = resolve_platform(cat, PLATFORM(cat, i), reterr);
        if (r < 0)
            return r;
    }
    if (cat->modes.n)
        qsort(cat->modes.items, cat->modes.n, sizeof(*cat->modes.items), cmp_mode);
    if (cat->platforms.n)
        qsort(cat->platforms.items, cat->platforms.n, sizeof(*cat->platforms.items), cmp_platform);
    if (cat->types.n)
        qsort(cat->types.items, cat->types.n, sizeof(*cat->types.items), cmp_type);

    /* "Newest" must mean one thing: no two modes of a class, no two platforms, share an order. */
    for (size_t i = 1; i < cat->modes.n; i++) {
        const struct mode_entry *a = MODE(cat, i - 1), *b = MODE(cat, i);
        if (a->pub.cls == b->pub.cls && a->pub.order == b->pub.order)
            return gabi_error_set(reterr, -EINVAL, b->head.where,
                                  "modes \"%s\" (%s) and \"%s\" share order %lld in class %s; "
                                  "newest would be ambiguous",
                                  a->pub.name, a->head.where, b->pub.name, (long long)b->pub.order,
                                  gabi_class_name(b->pub.cls));
    }
    for (size_t i = 1; i < cat->platforms.n; i++) {
        const struct platform_entry *a = PLATFORM(cat, i - 1), *b = PLATFORM(cat, i);
        if (a->pub.order == b->pub.order)
            return gabi_error_set(reterr, -EINVAL, b->head.where,
                                  "platforms \"%s\" (%s) and \"%s\" share order %lld; newest "
                                  "would be ambiguous",
                                  a->pub.name, a->head.where, b->pub.name, (long long)b->pub.order);
    }
    for (size_t i = 0; i < cat->modes.n; i++)
        MODE(cat, i)->index = i;
    for (size_t i = 0; i < cat->platforms.n; i++)
        PLATFORM(cat, i)->index = i;
    cat->finalized = true;
    return 0;
}

/* ---- lookups -------------------------------------------------------------------------------- */

size_t gabi_catalog_n_modes(const struct gabi_catalog *cat)
{
    return cat->modes.n;
}

const struct gabi_mode *gabi_catalog_mode(const struct gabi_catalog *cat, size_t i)
{
    return i < cat->modes.n ? &MODE(cat, i)->pub : NULL;
}

const struct gabi_mode *gabi_catalog_find_mode(const struct gabi_catalog *cat, const char *name)
{
    for (size_t i = 0; i < cat->modes.n; i++)
        if (strcmp(MODE(cat, i)->pub.name, name) == 0)
            return &MODE(cat, i)->pub;
    return NULL;
}

const struct gabi_mode *gabi_catalog_newest_mode(const struct gabi_catalog *cat,
                                                 enum gabi_device_class cls)
{
    for (size_t i = 0; i < cat->modes.n; i++)
        if (MODE(cat, i)->pub.cls == cls)
            return &MODE(cat, i)->pub;
    return NULL;
}

static const struct mode_entry *mode_entry_of(const struct gabi_mode *m)
{
    return (const struct mode_entry *)((const char *)m - offsetof(struct mode_entry, pub));
}

size_t gabi_mode_n_extra(const struct gabi_catalog *cat, const struct gabi_mode *m)
{
    (void)cat;
    return mode_entry_of(m)->n_extra;
}

int gabi_mode_extra(const struct gabi_catalog *cat, const struct gabi_mode *m, size_t i,
                    const char **ret_key, const char **ret_json)
{
    const struct mode_entry *e = mode_entry_of(m);

    (void)cat;
    if (i >= e->n_extra)
        return -ENOENT;
    *ret_key = e->extra_keys[i];
    *ret_json = e->extra_json[i];
    return 0;
}

size_t gabi_catalog_n_platforms(const struct gabi_catalog *cat)
{
    return cat->platforms.n;
}

const struct gabi_platform *gabi_catalog_platform(const struct gabi_catalog *cat, size_t i)
{
    return i < cat->platforms.n ? &PLATFORM(cat, i)->pub : NULL;
}

const struct gabi_platform *gabi_catalog_find_platform(const struct gabi_catalog *cat,
                                                       const char *name)
{
    for (size_t i = 0; i < cat->platforms.n; i++)
        if (strcmp(PLATFORM(cat, i)->pub.name, name) == 0)
            return &PLATFORM(cat, i)->pub;
    return NULL;
}

size_t gabi_catalog_n_device_types(const struct gabi_catalog *cat)
{
    return cat->types.n;
}

const struct gabi_device_type *gabi_catalog_device_type(const struct gabi_catalog *cat, size_t i)
{
    return i < cat->types.n ? &DTYPE(cat, i)->pub : NULL;
}

const struct device_type_entry *catalog_find_type_entry(const struct gabi_catalog *cat,
                                                        const char *name)
{
    for (size_t i = 0; i < cat->types.n; i++)
        if (strcmp(DTYPE(cat, i)->pub.name, name) == 0)
            return DTYPE(cat, i);
    return NULL;
}

const struct gabi_device_type *gabi_catalog_find_device_type(const struct gabi_catalog *cat,
                                                             const char *name)
{
    const struct device_type_entry *t = catalog_find_type_entry(cat, name);

    return t ? &t->pub : NULL;
}

int gabi_catalog_require_mode(const struct gabi_catalog *cat, const char *name,
                              const struct gabi_mode **ret, struct gabi_error *reterr)
{
    const struct gabi_mode *m = gabi_catalog_find_mode(cat, name);
    struct gabi_suggest s;
    char hint[256];

    if (m) {
        *ret = m;
        return 0;
    }
    gabi_suggest_init(&s, name);
    for (size_t i = 0; i < cat->modes.n; i++)
        gabi_suggest_add(&s, MODE(cat, i)->pub.name);
    return gabi_error_set(reterr, -ENOENT, NULL, "unknown compat mode \"%s\"%s", name,
                          gabi_suggest_format(&s, hint, sizeof(hint)));
}

int gabi_catalog_require_platform(const struct gabi_catalog *cat, const char *name,
                                  const struct gabi_platform **ret, struct gabi_error *reterr)
{
    const struct gabi_platform *p = gabi_catalog_find_platform(cat, name);
    struct gabi_suggest s;
    char hint[256];

    if (p) {
        *ret = p;
        return 0;
    }
    gabi_suggest_init(&s, name);
    for (size_t i = 0; i < cat->platforms.n; i++)
        gabi_suggest_add(&s, PLATFORM(cat, i)->pub.name);
    return gabi_error_set(reterr, -ENOENT, NULL, "unknown platform \"%s\"%s", name,
                          gabi_suggest_format(&s, hint, sizeof(hint)));
}

size_t gabi_catalog_modes_for_offer(const struct gabi_catalog *cat, enum gabi_device_class cls,
                                    uint64_t features, uint64_t protocol_features,
                                    uint32_t max_queue_pairs, uint32_t max_queue_size,
                                    const struct gabi_mode **ret, size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < cat->modes.n; i++) {
        const struct gabi_mode *m = &MODE(cat, i)->pub;

        if (m->cls != cls || (m->features & ~features) ||
            (m->protocol_features & ~protocol_features) || m->max_queue_pairs > max_queue_pairs ||
            m->max_queue_size > max_queue_size)
            continue;
        if (n < max)
            ret[n] = m;
        n++;
    }
    return MIN(n, max);
}

/* ---- versions ------------------------------------------------------------------------------- */

int gabi_version_compare(const char *a, const char *b)
{
    return strverscmp(a, b);
}

bool gabi_versions_accepts(const struct gabi_versions *vs, const char *version)
{
    if (vs->version)
        return gabi_version_compare(vs->minimum, version) <= 0 &&
               gabi_version_compare(version, vs->version) <= 0;
    for (size_t i = 0; i < vs->n; i++)
        if (strcmp(vs->list[i], version) == 0)
            return true;
    return false;
}

bool gabi_versions_equal(const struct gabi_versions *a, const struct gabi_versions *b)
{
    if (!a->version != !b->version || a->n != b->n)
        return false;
    if (a->version)
        return strcmp(a->version, b->version) == 0 && strcmp(a->minimum, b->minimum) == 0;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->list[i], b->list[i]) != 0)
            return false;
    return true;
}

int gabi_versions_copy(struct gabi_arena *a, struct gabi_versions *dst,
                       const struct gabi_versions *src)
{
    memset(dst, 0, sizeof(*dst));
    if (src->version) {
        dst->version = gabi_arena_strdup(a, src->version);
        dst->minimum = gabi_arena_strdup(a, src->minimum);
        return dst->version && dst->minimum ? 0 : -ENOMEM;
    }
    if (src->n > GABI_MAX_VERSIONS)
        return -E2BIG;
    if (src->n) {
        const char **list = gabi_arena_alloc_array(a, src->n, sizeof(*list));

        if (!list)
            return -ENOMEM;
        for (size_t i = 0; i < src->n; i++)
            if (!(list[i] = gabi_arena_strdup(a, src->list[i])))
                return -ENOMEM;
        dst->list = list;
        dst->n = src->n;
    }
    return 0;
}
