/* SPDX-License-Identifier: MIT */
#pragma once

/* What a JSON value is, in the words an error message uses ("expected a string, got an
 * array"): one wording for documents (lib/abi) and RPC parameters (lib/rpc). */

#include <jansson.h>

static inline const char *gabi_json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        break;
    }
    return "null";
}
