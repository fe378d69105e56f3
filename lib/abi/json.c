/* SPDX-License-Identifier: MIT */
/* The JSON walker: typed, bounded access to documents, with file and JSON path in errors. */

#include <stdarg.h>
#include <stdio.h>

#include "abi/internal.h"
#include "common/json_type.h"

void jctx_init(struct jctx *c, const char *origin, struct gabi_arena *arena, struct gabi_error *err)
{
    c->origin = origin ? origin : "<input>";
    c->err = err;
    c->arena = arena;
    c->path[0] = '$';
    c->path[1] = '\0';
    c->len = 1;
}

size_t jctx_push_key(struct jctx *c, const char *key)
{
    size_t old = c->len;
    int n = snprintf(c->path + c->len, sizeof(c->path) - c->len, ".%s", key);

    if (n > 0)
        c->len = MIN(c->len + (size_t)n, sizeof(c->path) - 1);
    return old;
}

size_t jctx_push_index(struct jctx *c, size_t i)
{
    size_t old = c->len;
    int n = snprintf(c->path + c->len, sizeof(c->path) - c->len, "[%zu]", i);

    if (n > 0)
        c->len = MIN(c->len + (size_t)n, sizeof(c->path) - 1);
    return old;
}

void jctx_pop(struct jctx *c, size_t len)
{
    c->len = len;
    c->path[len] = '\0';
}

int jerr(struct jctx *c, const char *fmt, ...)
{
    char where[GABI_ERROR_WHERE_MAX];
    va_list ap;

    if (!c->err)
        return -EINVAL;
    snprintf(where, sizeof(where), "%s: %s", c->origin, c->path);
    c->err->code = -EINVAL;
    gabi_strlcpy(c->err->where, where, sizeof(c->err->where));
    va_start(ap, fmt);
    vsnprintf(c->err->message, sizeof(c->err->message), fmt, ap);
    va_end(ap);
    return -EINVAL;
}

int jparse(const char *origin, const char *buf, size_t size, const char *schema, json_t **ret,
           struct gabi_error *err)
{
    json_error_t jerror;
    json_t *root, *s;
    char where[GABI_ERROR_WHERE_MAX];

    origin = origin ? origin : "<input>";
    if (size > GABI_MAX_DOCUMENT_SIZE)
        return gabi_error_set(err, -EFBIG, origin, "document is %zu bytes, more than %u", size,
                              GABI_MAX_DOCUMENT_SIZE);
    root = json_loadb(buf, size, JSON_REJECT_DUPLICATES, &jerror);
    if (!root) {
        snprintf(where, sizeof(where), "%s:%d:%d", origin, jerror.line, jerror.column);
        /* jansson names its own flag here; say what is wrong with the document instead */
        if (json_error_code(&jerror) == json_error_null_character)
            return gabi_error_set(err, -EINVAL, where,
                                  "a string holds \\u0000 (a NUL character), which no name, "
                                  "version or path in a document may contain");
        return gabi_error_set(err, -EINVAL, where, "invalid JSON: %s", jerror.text);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        snprintf(where, sizeof(where), "%s: $", origin);
        return gabi_error_set(err, -EINVAL, where, "expected a JSON object with \"schema\": \"%s\"",
                              schema);
    }
    s = json_object_get(root, "schema");
    if (!s || !json_is_string(s) || strcmp(json_string_value(s), schema) != 0) {
        snprintf(where, sizeof(where), "%s: $.schema", origin);
        if (!s)
            gabi_error_set(err, -EINVAL, where, "missing \"schema\" (expected \"%s\")", schema);
        else if (!json_is_string(s))
            gabi_error_set(err, -EINVAL, where, "expected a string, got %s",
                           gabi_json_type_name(s));
        else
            gabi_error_set(err, -EINVAL, where, "schema is \"%s\", expected \"%s\"",
                           json_string_value(s), schema);
        json_decref(root);
        return -EINVAL;
    }
    *ret = root;
    return 0;
}

int jcheck_keys(struct jctx *c, json_t *obj, const char *const *allowed)
{
    const char *key;
    json_t *val;

    json_object_foreach (obj, key, val) {
        bool found = false;

        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, key) == 0) {
                found = true;
                break;
            }
        if (!found) {
            struct gabi_suggest s;
            char hint[256];
            size_t old;
            int r;

            gabi_suggest_init(&s, key);
            for (const char *const *a = allowed; *a; a++)
                gabi_suggest_add(&s, *a);
            old = jctx_push_key(c, key);
            r = jerr(c, "unknown key \"%s\"%s", key, gabi_suggest_format(&s, hint, sizeof(hint)));
            jctx_pop(c, old);
            return r;
        }
    }
    return 0;
}

/* Fetch obj[key]; 0 with *ret NULL when absent and not required. */
static int jmember(struct jctx *c, json_t *obj, const char *key, bool required, json_t **ret)
{
    json_t *v = json_object_get(obj, key);

    *ret = NULL;
    if (!v) {
        if (required)
            return jerr(c, "missing required key \"%s\"", key);
        return 0;
    }
    if (json_is_null(v)) {
        /* null is no value: leave an optional key out rather than mean "none" two ways */
        size_t old = jctx_push_key(c, key);
        int r = jerr(c, "null is not a value here; %s",
                     required ? "this key is required" : "leave the key out instead");
        jctx_pop(c, old);
        return r;
    }
    *ret = v;
    return 0;
}

static int jstring_value(struct jctx *c, json_t *v, const char **ret)
{
    size_t len;

    if (!json_is_string(v))
        return jerr(c, "expected a string, got %s", gabi_json_type_name(v));
    len = json_string_length(v);
    if (len == 0)
        return jerr(c, "empty string");
    if (len > GABI_MAX_NAME * 8)
        return jerr(c, "string of %zu bytes is too long (max %u)", len, GABI_MAX_NAME * 8);
    if (strlen(json_string_value(v)) != len)
        return jerr(c, "string holds a NUL character (\\u0000)");
    *ret = gabi_arena_strdup(c->arena, json_string_value(v));
    return *ret ? 0 : -ENOMEM;
}

int jget_string(struct jctx *c, json_t *obj, const char *key, bool required, const char **ret)
{
    json_t *v;
    size_t old;
    int r;

    r = jmember(c, obj, key, required, &v);
    if (r < 0 || !v)
        return r;
    old = jctx_push_key(c, key);
    r = jstring_value(c, v, ret);
    jctx_pop(c, old);
    return r;
}

/* A string member checked by rule (gabi_name_check or gabi_version_check) at its path. */
static int jget_checked(struct jctx *c, json_t *obj, const char *key, bool required,
                        int (*rule)(const char *, char *, size_t), const char **ret)
{
    const char *s = NULL;
    char why[GABI_ERROR_MESSAGE_MAX];
    size_t old;
    int r = jget_string(c, obj, key, required, &s);

    if (r < 0 || !s)
        return r;
    if (rule(s, why, sizeof(why)) < 0) {
        old = jctx_push_key(c, key);
        r = jerr(c, "%s", why);
        jctx_pop(c, old);
        return r;
    }
    *ret = s;
    return 0;
}

int jget_name(struct jctx *c, json_t *obj, const char *key, bool required, const char **ret)
{
    return jget_checked(c, obj, key, required, gabi_name_check, ret);
}

int jget_version(struct jctx *c, json_t *obj, const char *key, bool required, const char **ret)
{
    return jget_checked(c, obj, key, required, gabi_version_check, ret);
}

/* obj[key] of one JSON type (JSON_TRUE standing for either boolean): 0 with *ret, NULL when
 * absent and not required; a wrong type is an error at the key's path. */
static int jtyped(struct jctx *c, json_t *obj, const char *key, bool required, json_type type,
                  const char *expected, json_t **ret)
{
    json_t *v;
    int r = jmember(c, obj, key, required, &v);

    *ret = NULL;
    if (r < 0 || !v)
        return r;
    if (type == JSON_TRUE ? !json_is_boolean(v) : json_typeof(v) != type) {
        size_t old = jctx_push_key(c, key);
        r = jerr(c, "expected %s, got %s", expected, gabi_json_type_name(v));
        jctx_pop(c, old);
        return r;
    }
    *ret = v;
    return 0;
}

int jget_u32(struct jctx *c, json_t *obj, const char *key, bool required, uint32_t min,
             uint32_t max, uint32_t *ret)
{
    json_t *v;
    json_int_t n;
    int r = jtyped(c, obj, key, required, JSON_INTEGER, "an integer", &v);

    if (r < 0 || !v)
        return r;
    n = json_integer_value(v);
    if (n < (json_int_t)min || n > (json_int_t)max) {
        size_t old = jctx_push_key(c, key);
        r = jerr(c, "%lld is out of range [%u, %u]", (long long)n, min, max);
        jctx_pop(c, old);
        return r;
    }
    *ret = (uint32_t)n;
    return 0;
}

int jget_i64(struct jctx *c, json_t *obj, const char *key, bool required, int64_t *ret)
{
    json_t *v;
    int r = jtyped(c, obj, key, required, JSON_INTEGER, "an integer", &v);

    if (r < 0 || !v)
        return r;
    *ret = (int64_t)json_integer_value(v);
    return 0;
}

int jget_bool(struct jctx *c, json_t *obj, const char *key, bool *ret)
{
    json_t *v;
    int r = jtyped(c, obj, key, false, JSON_TRUE, "a boolean", &v);

    if (r < 0 || !v)
        return r;
    *ret = json_is_true(v);
    return 0;
}

int jget_array(struct jctx *c, json_t *obj, const char *key, bool required, size_t max,
               json_t **ret)
{
    json_t *v;
    int r = jtyped(c, obj, key, required, JSON_ARRAY, "an array", &v);

    *ret = NULL;
    if (r < 0 || !v)
        return r;
    if (json_array_size(v) > max) {
        size_t old = jctx_push_key(c, key);
        r = jerr(c, "%zu entries, more than the %zu allowed", json_array_size(v), max);
        jctx_pop(c, old);
        return r;
    }
    *ret = v;
    return 0;
}

int jget_object(struct jctx *c, json_t *obj, const char *key, bool required, json_t **ret)
{
    return jtyped(c, obj, key, required, JSON_OBJECT, "an object", ret);
}

/* Walk an array of names; lookup() maps a name to a bit or reports. */
typedef int (*name_lookup_fn)(struct jctx *c, const char *name, void *userdata, unsigned *ret);

static int jget_bits(struct jctx *c, json_t *obj, const char *key, unsigned nbits,
                     name_lookup_fn lookup, void *userdata, uint64_t *ret)
{
    json_t *arr, *v;
    uint64_t mask = 0;
    size_t i, old;
    int r;

    r = jget_array(c, obj, key, false, 256, &arr);
    if (r < 0 || !arr)
        return r;
    old = jctx_push_key(c, key);
    json_array_foreach (arr, i, v) {
        size_t old2 = jctx_push_index(c, i);
        const char *name;
        unsigned bit;

        if (!json_is_string(v)) {
            r = jerr(c, "expected a feature name or a \"0x...\" mask string, got %s%s",
                     gabi_json_type_name(v),
                     json_is_integer(v) ? " (64-bit masks are never JSON numbers)" : "");
            goto out;
        }
        name = json_string_value(v);
        if (strncmp(name, "0x", 2) == 0 || strncmp(name, "0X", 2) == 0) {
            uint64_t m;
            if (gabi_parse_u64(name, &m) < 0) {
                r = jerr(c, "\"%s\" is not a valid hexadecimal mask", name);
                goto out;
            }
            if (nbits < 64 && (m >> nbits)) {
                r = jerr(c, "mask %s has bits above bit %u", name, nbits - 1);
                goto out;
            }
            mask |= m;
        } else {
            r = lookup(c, name, userdata, &bit);
            if (r < 0)
                goto out;
            mask |= 1ull << bit;
        }
        jctx_pop(c, old2);
    }
    jctx_pop(c, old);
    *ret = mask;
    return 0;
out:
    jctx_pop(c, old);
    return r;
}

static void suggest_feature(const char *name, unsigned bit, void *userdata)
{
    (void)bit;
    gabi_suggest_add(userdata, name);
}

static int lookup_feature(struct jctx *c, const char *name, void *userdata, unsigned *ret)
{
    enum gabi_device_class cls = *(enum gabi_device_class *)userdata;
    struct gabi_suggest s;
    char hint[256];
    int r;

    r = gabi_feature_from_name(cls, name, ret);
    if (r == 0)
        return 0;
    if (r == -EXDEV)
        return jerr(c, "feature \"%s\" does not belong to class %s", name, gabi_class_name(cls));
    gabi_suggest_init(&s, name);
    gabi_feature_foreach(cls, suggest_feature, &s);
    return jerr(c, "unknown %s feature \"%s\"%s", gabi_class_name(cls), name,
                gabi_suggest_format(&s, hint, sizeof(hint)));
}

int jget_features(struct jctx *c, json_t *obj, const char *key, enum gabi_device_class cls,
                  uint64_t *ret)
{
    return jget_bits(c, obj, key, 64, lookup_feature, &cls, ret);
}

static int lookup_protocol_feature(struct jctx *c, const char *name, void *userdata, unsigned *ret)
{
    struct gabi_suggest s;
    char hint[256];

    (void)userdata;
    if (gabi_protocol_feature_from_name(name, ret) == 0)
        return 0;
    gabi_suggest_init(&s, name);
    for (unsigned i = 0; i < GABI_PF_COUNT; i++)
        gabi_suggest_add(&s, gabi_protocol_feature_name(i));
    return jerr(c, "unknown vhost-user protocol feature \"%s\"%s", name,
                gabi_suggest_format(&s, hint, sizeof(hint)));
}

int jget_protocol_features(struct jctx *c, json_t *obj, const char *key, uint64_t *ret)
{
    return jget_bits(c, obj, key, 64, lookup_protocol_feature, NULL, ret);
}

static int lookup_kcap(struct jctx *c, const char *name, void *userdata, unsigned *ret)
{
    struct gabi_suggest s;
    char hint[256];
    int k = gabi_kcap_from_name(name);

    (void)userdata;
    if (k >= 0) {
        *ret = (unsigned)k;
        return 0;
    }
    gabi_suggest_init(&s, name);
    for (unsigned i = 0; i < GABI_KCAP_COUNT; i++)
        gabi_suggest_add(&s, gabi_kcap_name(i));
    return jerr(c, "unknown kernel capability \"%s\"%s", name,
                gabi_suggest_format(&s, hint, sizeof(hint)));
}

int jget_kcaps(struct jctx *c, json_t *obj, const char *key, uint32_t *ret)
{
    uint64_t m = 0;
    int r = jget_bits(c, obj, key, GABI_KCAP_COUNT, lookup_kcap, NULL, &m);

    if (r == 0)
        *ret = (uint32_t)m;
    return r;
}

int jget_versions(struct jctx *c, json_t *obj, const char *key, bool required,
                  struct gabi_versions *ret)
{
    json_t *v, *e;
    size_t old, i;
    int r = jmember(c, obj, key, required, &v);

    if (r < 0 || !v)
        return r;
    old = jctx_push_key(c, key);
    if (json_is_array(v)) {
        const char **list;
        size_t n = json_array_size(v);

        if (n == 0 || n > GABI_MAX_VERSIONS) {
            r = jerr(c, "a version list holds 1 to %u versions, not %zu", GABI_MAX_VERSIONS, n);
            goto out;
        }
        list = gabi_arena_alloc_array(c->arena, n, sizeof(*list));
        if (!list) {
            r = -ENOMEM;
            goto out;
        }
        json_array_foreach (v, i, e) {
            size_t old2 = jctx_push_index(c, i);
            char why[GABI_ERROR_MESSAGE_MAX];

            r = jstring_value(c, e, &list[i]);
            if (r < 0)
                goto out;
            if (gabi_version_check(list[i], why, sizeof(why)) < 0) {
                r = jerr(c, "%s", why);
                goto out;
            }
            for (size_t j = 0; j < i; j++)
                if (strcmp(list[j], list[i]) == 0) {
                    r = jerr(c, "version \"%s\" is listed twice", list[i]);
                    goto out;
                }
            jctx_pop(c, old2);
        }
        memset(ret, 0, sizeof(*ret));
        ret->n = n;
        ret->list = list;
    } else if (json_is_object(v)) {
        static const char *const keys[] = {"version", "minimum", NULL};
        const char *version = NULL, *minimum = NULL;

        r = jcheck_keys(c, v, keys);
        if (r < 0)
            goto out;
        r = jget_version(c, v, "version", true, &version);
        if (r < 0)
            goto out;
        r = jget_version(c, v, "minimum", true, &minimum);
        if (r < 0)
            goto out;
        if (gabi_version_compare(minimum, version) > 0) {
            r = jerr(c, "minimum \"%s\" is newer than version \"%s\"", minimum, version);
            goto out;
        }
        memset(ret, 0, sizeof(*ret));
        ret->version = version;
        ret->minimum = minimum;
    } else {
        r = jerr(c, "expected a list of versions or {\"version\", \"minimum\"}, got %s",
                 gabi_json_type_name(v));
    }
out:
    jctx_pop(c, old);
    return r;
}

int jcheck_loads_writes(struct jctx *c, const char *type, const struct gabi_versions *loads,
                        const struct gabi_versions *writes)
{
    const char *bad = NULL;
    size_t old;
    int r;

    for (size_t i = 0; i < writes->n && !bad; i++)
        if (!gabi_versions_accepts(loads, writes->list[i]))
            bad = writes->list[i];
    if (writes->version && !bad) {
        if (!gabi_versions_accepts(loads, writes->version))
            bad = writes->version;
        else if (!gabi_versions_accepts(loads, writes->minimum))
            bad = writes->minimum;
    }
    if (!bad)
        return 0;
    old = jctx_push_key(c, "writes");
    r = jerr(c,
             "device type \"%s\" writes version \"%s\" that it does not load (%s): a device "
             "must load what it writes",
             type, bad, versions_text(c->arena, loads));
    jctx_pop(c, old);
    return r;
}

int jget_class(struct jctx *c, json_t *obj, const char *key, enum gabi_device_class *ret)
{
    const char *name = NULL;
    int r = jget_string(c, obj, key, true, &name);

    if (r < 0)
        return r;
    r = gabi_class_from_name(name);
    if (r < 0) {
        struct gabi_suggest s;
        char hint[256];
        size_t old = jctx_push_key(c, key);

        gabi_suggest_init(&s, name);
        for (unsigned i = 1; i < GABI_CLASS_COUNT; i++)
            gabi_suggest_add(&s, gabi_class_name(i));
        r = jerr(c, "unknown device class \"%s\"%s", name,
                 gabi_suggest_format(&s, hint, sizeof(hint)));
        jctx_pop(c, old);
        return r;
    }
    *ret = (enum gabi_device_class)r;
    return 0;
}

/* ---- text and JSON forms of sets ----------------------------------------------------------- */

#define TEXT_MAX 2048

char *features_text(struct gabi_arena *a, enum gabi_device_class cls, uint64_t mask)
{
    char buf[TEXT_MAX];
    struct gabi_strbuf sb;
    uint64_t unnamed = 0;

    gabi_strbuf_init(&sb, buf, sizeof(buf));
    for (unsigned b = 0; b < 64; b++) {
        const char *name;

        if (!(mask & (1ull << b)))
            continue;
        name = gabi_feature_name(cls, b);
        if (name)
            gabi_strbuf_item(&sb, ", ", name);
        else
            unnamed |= 1ull << b;
    }
    if (unnamed) {
        char hex[24];
        snprintf(hex, sizeof(hex), "0x%llx", (unsigned long long)unnamed);
        gabi_strbuf_item(&sb, ", ", hex);
    }
    return gabi_arena_strdup(a, sb.len ? buf : "none");
}

char *protocol_features_text(struct gabi_arena *a, uint64_t mask)
{
    char buf[TEXT_MAX];
    struct gabi_strbuf sb;

    gabi_strbuf_init(&sb, buf, sizeof(buf));
    for (unsigned b = 0; b < 64; b++) {
        if (!(mask & (1ull << b)))
            continue;
        if (gabi_protocol_feature_name(b)) {
            gabi_strbuf_item(&sb, ", ", gabi_protocol_feature_name(b));
        } else {
            char hex[24];
            snprintf(hex, sizeof(hex), "0x%llx", 1ull << b);
            gabi_strbuf_item(&sb, ", ", hex);
        }
    }
    return gabi_arena_strdup(a, sb.len ? buf : "none");
}

char *kcaps_text(struct gabi_arena *a, uint32_t kcaps)
{
    char buf[TEXT_MAX];
    struct gabi_strbuf sb;

    gabi_strbuf_init(&sb, buf, sizeof(buf));
    for (unsigned k = 0; k < GABI_KCAP_COUNT; k++)
        if (kcaps & (1u << k))
            gabi_strbuf_item(&sb, ", ", gabi_kcap_name(k));
    return gabi_arena_strdup(a, sb.len ? buf : "none");
}

char *versions_text(struct gabi_arena *a, const struct gabi_versions *vs)
{
    char buf[TEXT_MAX];
    struct gabi_strbuf sb;

    gabi_strbuf_init(&sb, buf, sizeof(buf));
    if (vs->version) {
        gabi_strbuf_add(&sb, vs->version);
        gabi_strbuf_add(&sb, " down to ");
        gabi_strbuf_add(&sb, vs->minimum);
        return gabi_arena_strdup(a, buf);
    }
    gabi_strbuf_add(&sb, "[");
    for (size_t i = 0; i < vs->n; i++) {
        if (i)
            gabi_strbuf_add(&sb, ", ");
        gabi_strbuf_add(&sb, vs->list[i]);
    }
    gabi_strbuf_add(&sb, "]");
    return gabi_arena_strdup(a, buf);
}

json_t *features_json(enum gabi_device_class cls, uint64_t mask)
{
    json_t *arr = json_array();
    uint64_t unnamed = 0;

    for (unsigned b = 0; b < 64; b++) {
        const char *name;

        if (!(mask & (1ull << b)))
            continue;
        name = gabi_feature_name(cls, b);
        if (name)
            json_array_append_new(arr, json_string(name));
        else
            unnamed |= 1ull << b;
    }
    if (unnamed) {
        char hex[24];
        snprintf(hex, sizeof(hex), "0x%llx", (unsigned long long)unnamed);
        json_array_append_new(arr, json_string(hex));
    }
    return arr;
}

json_t *protocol_features_json(uint64_t mask)
{
    json_t *arr = json_array();

    for (unsigned b = 0; b < 64; b++) {
        if (!(mask & (1ull << b)))
            continue;
        if (gabi_protocol_feature_name(b)) {
            json_array_append_new(arr, json_string(gabi_protocol_feature_name(b)));
        } else {
            char hex[24];
            snprintf(hex, sizeof(hex), "0x%llx", 1ull << b);
            json_array_append_new(arr, json_string(hex));
        }
    }
    return arr;
}

json_t *versions_json(const struct gabi_versions *vs)
{
    json_t *arr;

    if (vs->version)
        return json_pack("{s:s, s:s}", "version", vs->version, "minimum", vs->minimum);
    arr = json_array();
    for (size_t i = 0; i < vs->n; i++)
        json_array_append_new(arr, json_string(vs->list[i]));
    return arr;
}
