/* SPDX-License-Identifier: MIT */
/* VM pins: what one VM is held to. */

#include <stdio.h>
#include <stdlib.h>

#include "abi/internal.h"

struct gabi_pin *gabi_pin_free(struct gabi_pin *pin)
{
    if (!pin)
        return NULL;
    free(pin->devices);
    gabi_arena_release(&pin->arena);
    free(pin);
    return NULL;
}

static int parse_device(struct jctx *c, json_t *obj, struct gabi_pin *pin, struct pin_device *d)
{
    static const char *const keys[] = {"id",       "class", "mode", "type", "state_version",
                                       "failover", NULL};
    static const char *const failover_keys[] = {"primary", "device", NULL};
    const char *mode = NULL;
    json_t *failover;
    int r;

    if (!json_is_object(obj))
        return jerr(c, "a device is an object");
    if ((r = jcheck_keys(c, obj, keys)) < 0 ||
        (r = jget_name(c, obj, "id", true, &d->pub.id)) < 0 ||
        (r = jget_class(c, obj, "class", &d->pub.cls)) < 0 ||
        (r = jget_string(c, obj, "mode", false, &mode)) < 0 ||
        (r = jget_name(c, obj, "type", false, &d->pub.type)) < 0 ||
        (r = jget_version(c, obj, "state_version", false, &d->pub.state_version)) < 0 ||
        (r = jget_object(c, obj, "failover", false, &failover)) < 0)
        return r;
    if (gabi_class_is_virtio(d->pub.cls)) {
        struct gabi_error tmp;
        size_t old;

        if (!mode)
            return jerr(c, "device \"%s\" (%s) needs a \"mode\"", d->pub.id,
                        gabi_class_name(d->pub.cls));
        old = jctx_push_key(c, "mode");
        if (gabi_catalog_require_mode(pin->cat, mode, &d->pub.mode, &tmp) < 0)
            return jerr(c, "%s", tmp.message);
        d->mode_index = mode_index_of(d->pub.mode);
        if (d->pub.mode->cls != d->pub.cls)
            return jerr(c, "mode \"%s\" is a %s mode, but device \"%s\" is %s", mode,
                        gabi_class_name(d->pub.mode->cls), d->pub.id, gabi_class_name(d->pub.cls));
        jctx_pop(c, old);
    } else {
        if (mode)
            return jerr(c, "device \"%s\" (%s) has no compat mode", d->pub.id,
                        gabi_class_name(d->pub.cls));
        if (!d->pub.type || !d->pub.state_version)
            return jerr(c, "device \"%s\" (%s) needs a \"type\" and a \"state_version\"", d->pub.id,
                        gabi_class_name(d->pub.cls));
    }
    if (d->pub.state_version && !d->pub.type)
        return jerr(c, "device \"%s\" has a \"state_version\" but no \"type\" it belongs to",
                    d->pub.id);
    if (d->pub.type)
        d->type_hash = gabi_hash_str(d->pub.type);
    if (failover) {
        size_t old = jctx_push_key(c, "failover");

        if (d->pub.cls != GABI_CLASS_NET)
            return jerr(c, "only a virtio-net device can be a failover standby");
        if ((r = jcheck_keys(c, failover, failover_keys)) < 0 ||
            (r = jget_name(c, failover, "primary", true, &d->pub.failover_primary)) < 0 ||
            (r = jget_name(c, failover, "device", true, &d->pub.failover_device)) < 0)
            return r;
        d->failover_hash = gabi_hash_str(d->pub.failover_device);
        jctx_pop(c, old);
    }
    return 0;
}

int gabi_pin_parse(const struct gabi_catalog *cat, const char *origin, const char *buf, size_t size,
                   struct gabi_pin **ret, struct gabi_error *reterr)
{
    static const char *const keys[] = {"schema", "vm", "platform", "machine", "devices", NULL};
    struct gabi_pin *pin;
    const char *platform = NULL;
    struct jctx c;
    json_t *root, *arr, *v;
    size_t i;
    int r;

    if (!cat->finalized)
        return gabi_error_set(reterr, -EINVAL, origin, "catalog not finalized");
    r = jparse(origin, buf, size, GABI_SCHEMA_PIN, &root, reterr);
    if (r < 0)
        return r;
    pin = calloc(1, sizeof(*pin));
    if (!pin) {
        json_decref(root);
        return -ENOMEM;
    }
    gabi_arena_init(&pin->arena);
    pin->cat = cat;
    jctx_init(&c, origin, &pin->arena, reterr);
    if ((r = jcheck_keys(&c, root, keys)) < 0 ||
        (r = jget_name(&c, root, "vm", true, &pin->vm)) < 0 ||
        (r = jget_string(&c, root, "platform", false, &platform)) < 0 ||
        (r = jget_string(&c, root, "machine", false, &pin->machine)) < 0 ||
        (r = jget_array(&c, root, "devices", true, GABI_MAX_PIN_DEVICES, &arr)) < 0)
        goto fail;
    if (platform) {
        struct gabi_error tmp;
        size_t old = jctx_push_key(&c, "platform");

        if (gabi_catalog_require_platform(cat, platform, &pin->platform, &tmp) < 0) {
            r = jerr(&c, "%s", tmp.message);
            goto fail;
        }
        pin->platform_index = platform_index_of(pin->platform);
        jctx_pop(&c, old);
    }
    if (pin->machine && (strlen(pin->machine) >= GABI_MAX_NAME ||
                         strcspn(pin->machine, " \t\n") != strlen(pin->machine))) {
        jctx_push_key(&c, "machine");
        r = jerr(&c, "a machine type is 1 to %u characters without spaces", GABI_MAX_NAME - 1);
        goto fail;
    }
    pin->devices = calloc(json_array_size(arr) + 1, sizeof(*pin->devices));
    if (!pin->devices) {
        r = -ENOMEM;
        goto fail;
    }
    {
        size_t old = jctx_push_key(&c, "devices");

        json_array_foreach (arr, i, v) {
            size_t old2 = jctx_push_index(&c, i);
            struct pin_device *d = &pin->devices[i];

            r = parse_device(&c, v, pin, d);
            if (r < 0)
                goto fail;
            for (size_t j = 0; j < i; j++)
                if (strcmp(pin->devices[j].pub.id, d->pub.id) == 0) {
                    r = jerr(&c, "device id \"%s\" is used twice", d->pub.id);
                    goto fail;
                }
            pin->n_devices++;
            jctx_pop(&c, old2);
        }
        jctx_pop(&c, old);
    }
    json_decref(root);
    *ret = pin;
    return 0;
fail:
    json_decref(root);
    gabi_pin_free(pin);
    return r;
}

const char *gabi_pin_vm(const struct gabi_pin *pin)
{
    return pin->vm;
}

const struct gabi_platform *gabi_pin_platform(const struct gabi_pin *pin)
{
    return pin->platform;
}

bool gabi_pin_needs_platform(const struct gabi_pin *pin)
{
    for (size_t i = 0; i < pin->n_devices; i++)
        if (pin->devices[i].pub.cls == GABI_CLASS_NET)
            return true;
    return false;
}

int gabi_pin_resolve_platform(struct gabi_pin *pin, const struct gabi_hostcaps *source,
                              struct gabi_error *reterr)
{
    const struct gabi_platform *p;

    if (pin->platform)
        return 0;
    if (source->cat != pin->cat)
        return gabi_error_set(reterr, -EINVAL, source->host,
                              "the pin and the source host were "
                              "read with different catalogs");
    p = gabi_hostcaps_default_platform(source);
    if (!p)
        return gabi_error_set(reterr, -ENOENT, source->host,
                              "VM %s names no platform and source host %s runs none (its document "
                              "reports no kernel capabilities that a platform needs), so the "
                              "platform the VM runs is unknown: pin one, or probe the source's "
                              "kernel",
                              pin->vm, source->host);
    pin->platform_source = gabi_arena_strdup(&pin->arena, source->host);
    if (!pin->platform_source)
        return -ENOMEM;
    pin->platform = p;
    pin->platform_index = platform_index_of(p);
    return 0;
}

const char *gabi_pin_platform_source(const struct gabi_pin *pin)
{
    return pin->platform_source;
}

const char *gabi_pin_machine(const struct gabi_pin *pin)
{
    return pin->machine;
}

size_t gabi_pin_n_devices(const struct gabi_pin *pin)
{
    return pin->n_devices;
}

const struct gabi_pin_device *gabi_pin_device(const struct gabi_pin *pin, size_t i)
{
    return i < pin->n_devices ? &pin->devices[i].pub : NULL;
}

char *gabi_pin_to_json(const struct gabi_pin *pin)
{
    json_t *root = json_object(), *arr = json_array();
    char *text;

    json_object_set_new(root, "schema", json_string(GABI_SCHEMA_PIN));
    json_object_set_new(root, "vm", json_string(pin->vm));
    if (pin->platform)
        json_object_set_new(root, "platform", json_string(pin->platform->name));
    if (pin->machine)
        json_object_set_new(root, "machine", json_string(pin->machine));
    for (size_t i = 0; i < pin->n_devices; i++) {
        const struct gabi_pin_device *d = &pin->devices[i].pub;
        json_t *o = json_object();

        json_object_set_new(o, "id", json_string(d->id));
        json_object_set_new(o, "class", json_string(gabi_class_name(d->cls)));
        if (d->mode)
            json_object_set_new(o, "mode", json_string(d->mode->name));
        if (d->type)
            json_object_set_new(o, "type", json_string(d->type));
        if (d->state_version)
            json_object_set_new(o, "state_version", json_string(d->state_version));
        if (d->failover_primary)
            json_object_set_new(o, "failover",
                                json_pack("{s:s, s:s}", "primary", d->failover_primary, "device",
                                          d->failover_device));
        json_array_append_new(arr, o);
    }
    json_object_set_new(root, "devices", arr);
    text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    return text;
}
