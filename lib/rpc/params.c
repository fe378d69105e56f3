/* SPDX-License-Identifier: MIT */
/* Parameters by name for JSON-RPC handlers (include/guestabi/rpc.h): typed, bounded, and a
 * failure names the member's path. */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <guestabi/rpc.h>
#include "common/json_type.h"

#define WHERE_MAX 96

const char *gabi_rpc_json_type(const json_t *v)
{
    return gabi_json_type_name(v);
}

/* The member and its path; NULL when absent. */
static json_t *member(json_t *params, const char *key, char where[WHERE_MAX])
{
    snprintf(where, WHERE_MAX, "params.%.64s", key);
    return json_object_get(params, key);
}

int gabi_rpc_param_only(json_t *params, const char *const *known, struct gabi_error *reterr)
{
    const char *key;
    json_t *v;

    json_object_foreach (params, key, v) {
        char where[WHERE_MAX], list[256] = "";
        bool ok = false;

        for (const char *const *k = known; *k && !ok; k++)
            ok = strcmp(*k, key) == 0;
        if (ok)
            continue;
        for (const char *const *k = known; *k; k++)
            snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
                     k == known ? "" : ", ", *k);
        member(params, key, where);
        return gabi_error_set(reterr, -EINVAL, where, "unknown parameter (known: %s)",
                              list[0] ? list : "none");
    }
    return 0;
}

int gabi_rpc_param_string(json_t *params, const char *key, bool required, size_t max,
                          const char **ret, struct gabi_error *reterr)
{
    char where[WHERE_MAX];
    json_t *v = member(params, key, where);

    if (!v) {
        if (required)
            return gabi_error_set(reterr, -EINVAL, where, "missing");
        *ret = NULL;
        return 0;
    }
    if (!json_is_string(v))
        return gabi_error_set(reterr, -EINVAL, where, "must be a string, not %s",
                              gabi_rpc_json_type(v));
    if (json_string_length(v) == 0 || json_string_length(v) > max ||
        strlen(json_string_value(v)) != json_string_length(v))
        return gabi_error_set(reterr, -EINVAL, where, "must be 1 to %zu bytes, without NUL", max);
    *ret = json_string_value(v);
    return 0;
}

int gabi_rpc_param_bool(json_t *params, const char *key, bool dflt, bool *ret,
                        struct gabi_error *reterr)
{
    char where[WHERE_MAX];
    json_t *v = member(params, key, where);

    if (!v) {
        *ret = dflt;
        return 0;
    }
    if (!json_is_boolean(v))
        return gabi_error_set(reterr, -EINVAL, where, "must be a boolean, not %s",
                              gabi_rpc_json_type(v));
    *ret = json_is_true(v);
    return 0;
}

int gabi_rpc_param_object(json_t *params, const char *key, json_t **ret, struct gabi_error *reterr)
{
    char where[WHERE_MAX];
    json_t *v = member(params, key, where);

    if (!v)
        return gabi_error_set(reterr, -EINVAL, where, "missing");
    if (!json_is_object(v))
        return gabi_error_set(reterr, -EINVAL, where, "must be an object, not %s",
                              gabi_rpc_json_type(v));
    *ret = v;
    return 0;
}
