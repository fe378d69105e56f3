/* SPDX-License-Identifier: MIT */
/* JSON listings of catalog entries, for `guestabi modes --json` and friends. */

#include <stdlib.h>

#include "abi/internal.h"

static char *dump(json_t *root)
{
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

    json_decref(root);
    return text;
}

static void set_opt_string(json_t *o, const char *key, const char *value)
{
    if (value)
        json_object_set_new(o, key, json_string(value));
}

char *gabi_modes_to_json(const struct gabi_catalog *cat, const struct gabi_mode *const *modes,
                         size_t n)
{
    json_t *root = json_object(), *arr = json_array();

    json_object_set_new(root, "schema", json_string("guestabi.modes/1"));
    for (size_t i = 0; i < n; i++) {
        const struct gabi_mode *m = modes[i];
        json_t *o = json_object(), *extra = json_object();

        json_object_set_new(o, "name", json_string(m->name));
        json_object_set_new(o, "class", json_string(gabi_class_name(m->cls)));
        json_object_set_new(o, "order", json_integer((json_int_t)m->order));
        json_object_set_new(o, "features", features_json(m->cls, m->features));
        json_object_set_new(o, "protocol_features", protocol_features_json(m->protocol_features));
        json_object_set_new(o, "max_queue_pairs", json_integer(m->max_queue_pairs));
        json_object_set_new(o, "max_queue_size", json_integer(m->max_queue_size));
        set_opt_string(o, "description", m->description);
        for (size_t k = 0; k < gabi_mode_n_extra(cat, m); k++) {
            const char *key, *val;
            if (gabi_mode_extra(cat, m, k, &key, &val) == 0)
                json_object_set_new(extra, key, json_loads(val, JSON_DECODE_ANY, NULL));
        }
        json_object_set_new(o, "extra", extra);
        json_object_set_new(o, "origin", json_string(m->origin));
        json_array_append_new(arr, o);
    }
    json_object_set_new(root, "modes", arr);
    return dump(root);
}

char *gabi_platforms_to_json(const struct gabi_catalog *cat,
                             const struct gabi_platform *const *platforms, size_t n)
{
    json_t *root = json_object(), *arr = json_array();

    (void)cat;
    json_object_set_new(root, "schema", json_string("guestabi.platforms/1"));
    for (size_t i = 0; i < n; i++) {
        const struct gabi_platform *p = platforms[i];
        json_t *o = json_object(), *req = json_array();

        json_object_set_new(o, "name", json_string(p->name));
        set_opt_string(o, "base", p->base);
        json_object_set_new(o, "order", json_integer((json_int_t)p->order));
        for (unsigned k = 0; k < GABI_KCAP_COUNT; k++)
            if (p->requires & (1u << k))
                json_array_append_new(req, json_string(gabi_kcap_name(k)));
        json_object_set_new(o, "requires", req);
        json_object_set_new(o, "features", features_json(GABI_CLASS_NET, p->features));
        set_opt_string(o, "description", p->description);
        json_object_set_new(o, "origin", json_string(p->origin));
        json_array_append_new(arr, o);
    }
    json_object_set_new(root, "platforms", arr);
    return dump(root);
}

char *gabi_device_types_to_json(const struct gabi_catalog *cat,
                                const struct gabi_device_type *const *types, size_t n)
{
    json_t *root = json_object(), *arr = json_array();

    (void)cat;
    json_object_set_new(root, "schema", json_string("guestabi.device-types/1"));
    for (size_t i = 0; i < n; i++) {
        const struct gabi_device_type *t = types[i];
        json_t *o = json_object();

        json_object_set_new(o, "name", json_string(t->name));
        json_object_set_new(o, "kind", json_string(t->kind));
        json_object_set_new(o, "writes", versions_json(&t->writes));
        json_object_set_new(o, "loads", versions_json(&t->loads));
        set_opt_string(o, "description", t->description);
        json_object_set_new(o, "origin", json_string(t->origin));
        json_array_append_new(arr, o);
    }
    json_object_set_new(root, "device_types", arr);
    return dump(root);
}
