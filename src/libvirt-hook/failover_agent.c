/* SPDX-License-Identifier: MIT */
/*
 * The libvirt hook's failover steps through guestabid (failover.h): failover.reserve at
 * migrate begin, failover.bind at prepare, failover.release at release.
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include <guestabi/libvirt.h>

#include <guestabi/rpc_client.h>
#include "failover.h"

#define CODE_NOT_FOUND (-32000)

struct begin {
    struct gabi_rpc_client *c;
    const struct gabi_domain *dom;
    const char *vm;
};

/* The failover device the pin gives the standby named `alias`, or NULL. */
static const char *device_for(const struct gabi_domain *dom, const char *alias)
{
    const struct gabi_pin *pin = gabi_domain_pin(dom);

    for (size_t i = 0; pin && i < gabi_pin_n_devices(pin); i++) {
        const struct gabi_domain_device *t = gabi_domain_pin_target(dom, i);
        const struct gabi_pin_device *pd = gabi_pin_device(pin, i);

        if (t && t->alias && strcmp(t->alias, alias) == 0 && pd->failover_device)
            return pd->failover_device;
    }
    return NULL;
}

static int reserve(const struct hook_failover_iface *fi, char *ret, size_t size,
                   struct gabi_error *reterr, void *userdata)
{
    const struct begin *b = userdata;
    const char *dev = device_for(b->dom, fi->persistent);
    json_t *res = NULL, *a;
    int r;

    if (!dev)
        return gabi_error_set(reterr, -EINVAL, NULL,
                              "its standby \"%s\" has no <guestabi:failover device=.../> in the "
                              "pin: no equivalent VF can be chosen",
                              fi->persistent);
    r = gabi_rpc_client_call(b->c, "failover.reserve",
                             json_pack("{s:s, s:s, s:i}", "vm", b->vm, "device", dev, "count", 1),
                             &res, NULL, NULL, reterr);
    if (r < 0)
        return r;
    a = json_array_get(json_object_get(res, "addresses"), 0);
    if (!json_is_string(a)) {
        json_decref(res);
        return gabi_error_set(reterr, -EBADMSG, NULL, "failover.reserve gave no address");
    }
    snprintf(ret, size, "%s", json_string_value(a));
    json_decref(res);
    return 0;
}

int hook_failover_begin(struct gabi_rpc_client *c, const struct gabi_domain *dom, const char *vm,
                        const char *xml, size_t size, char **ret_xml, struct gabi_error *reterr)
{
    struct begin b = {c, dom, vm};
    int r = hook_failover_rewrite(xml, size, reserve, &b, ret_xml, reterr);

    if (r < 0) {
        struct gabi_error e = {0};

        (void)hook_failover_release(c, vm, &e); /* the interfaces before the one refused */
    }
    return r;
}

int hook_failover_bind(struct gabi_rpc_client *c, const char *vm, struct gabi_error *reterr)
{
    json_t *res = NULL;
    int code = 0, r;

    r = gabi_rpc_client_call(c, "failover.bind", json_pack("{s:s}", "vm", vm), &res, &code, NULL,
                             reterr);
    json_decref(res);
    if (r < 0 && code == CODE_NOT_FOUND)
        return 0; /* nothing reserved: a start that is no failover migration */
    return r;
}

int hook_failover_release(struct gabi_rpc_client *c, const char *vm, struct gabi_error *reterr)
{
    json_t *res = NULL;
    int r;

    r = gabi_rpc_client_call(c, "failover.release", json_pack("{s:s}", "vm", vm), &res, NULL, NULL,
                             reterr);
    if (r < 0)
        return r;
    r = (int)json_array_size(json_object_get(res, "released"));
    json_decref(res);
    return r;
}
