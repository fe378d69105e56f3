/* SPDX-License-Identifier: MIT */
/* Verdicts: a decision with every value it chose and every reason against it. */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "abi/internal.h"

struct gabi_verdict *verdict_new(const char *operation, const char *host)
{
    struct gabi_verdict *v = calloc(1, sizeof(*v));

    if (!v)
        return NULL;
    gabi_arena_init(&v->arena);
    v->operation = operation;
    v->host = host ? gabi_arena_strdup(&v->arena, host) : NULL;
    v->ok = true;
    return v;
}

struct gabi_verdict *gabi_verdict_free(struct gabi_verdict *v)
{
    if (!v)
        return NULL;
    free(v->reasons);
    free(v->choices);
    gabi_arena_release(&v->arena);
    free(v);
    return NULL;
}

static const char *dup_empty(struct gabi_verdict *v, const char *s)
{
    return gabi_arena_strdup(&v->arena, s ? s : "");
}

int verdict_add_reason(struct gabi_verdict *v, const char *host, const char *device,
                       const char *key, const char *wanted, const char *offered, const char *fmt,
                       ...)
{
    struct gabi_reason *r;
    char msg[1024];
    va_list ap;

    if (v->n_reasons == v->alloc_reasons) {
        size_t na = v->alloc_reasons ? v->alloc_reasons * 2 : 8;
        struct gabi_reason *n = realloc(v->reasons, na * sizeof(*n));

        if (!n)
            return -ENOMEM;
        v->reasons = n;
        v->alloc_reasons = na;
    }
    {
        struct gabi_strbuf sb;

        gabi_strbuf_init(&sb, msg, sizeof(msg));
        va_start(ap, fmt);
        gabi_strbuf_vformat(&sb, fmt, ap);
        va_end(ap);
    }
    r = &v->reasons[v->n_reasons];
    r->host = dup_empty(v, host);
    r->device = dup_empty(v, device);
    r->key = dup_empty(v, key);
    r->wanted = dup_empty(v, wanted);
    r->offered = dup_empty(v, offered);
    r->message = dup_empty(v, msg);
    if (!r->host || !r->device || !r->key || !r->wanted || !r->offered || !r->message)
        return -ENOMEM;
    v->n_reasons++;
    v->ok = false;
    return 0;
}

int verdict_add_choice(struct gabi_verdict *v, const char *subject, const char *key,
                       const char *value)
{
    struct gabi_choice *c;

    if (v->n_choices == v->alloc_choices) {
        size_t na = v->alloc_choices ? v->alloc_choices * 2 : 8;
        struct gabi_choice *n = realloc(v->choices, na * sizeof(*n));

        if (!n)
            return -ENOMEM;
        v->choices = n;
        v->alloc_choices = na;
    }
    c = &v->choices[v->n_choices];
    c->subject = dup_empty(v, subject);
    c->key = dup_empty(v, key);
    c->value = value ? gabi_arena_strdup(&v->arena, value) : NULL;
    if (!c->subject || !c->key || (value && !c->value))
        return -ENOMEM;
    v->n_choices++;
    return 0;
}

bool gabi_verdict_ok(const struct gabi_verdict *v)
{
    return v->ok;
}

size_t gabi_verdict_n_reasons(const struct gabi_verdict *v)
{
    return v->n_reasons;
}

const struct gabi_reason *gabi_verdict_reason(const struct gabi_verdict *v, size_t i)
{
    return i < v->n_reasons ? &v->reasons[i] : NULL;
}

size_t gabi_verdict_n_choices(const struct gabi_verdict *v)
{
    return v->n_choices;
}

const struct gabi_choice *gabi_verdict_choice(const struct gabi_verdict *v, size_t i)
{
    return i < v->n_choices ? &v->choices[i] : NULL;
}

const char *gabi_verdict_operation(const struct gabi_verdict *v)
{
    return v->operation;
}

const char *gabi_verdict_platform(const struct gabi_verdict *v, const char **ret_from)
{
    if (ret_from)
        *ret_from = v->platform_from;
    return v->platform;
}

char *gabi_verdict_to_json(const struct gabi_verdict *v)
{
    json_t *root = json_object(), *arr;
    char *text;

    json_object_set_new(root, "schema", json_string(GABI_SCHEMA_VERDICT));
    json_object_set_new(root, "operation", json_string(v->operation));
    if (v->host)
        json_object_set_new(root, "host", json_string(v->host));
    json_object_set_new(root, "ok", json_boolean(v->ok));
    if (v->platform_from) {
        json_object_set_new(root, "platform", v->platform ? json_string(v->platform) : json_null());
        json_object_set_new(root, "platform_from", json_string(v->platform_from));
    }
    arr = json_array();
    for (size_t i = 0; i < v->n_choices; i++) {
        const struct gabi_choice *c = &v->choices[i];
        json_array_append_new(arr,
                              json_pack("{s:s, s:s, s:o}", "subject", c->subject, "key", c->key,
                                        "value", c->value ? json_string(c->value) : json_null()));
    }
    json_object_set_new(root, "choices", arr);
    arr = json_array();
    for (size_t i = 0; i < v->n_reasons; i++) {
        const struct gabi_reason *r = &v->reasons[i];
        json_array_append_new(arr,
                              json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "host", r->host, "device",
                                        r->device, "key", r->key, "wanted", r->wanted, "offered",
                                        r->offered, "message", r->message));
    }
    json_object_set_new(root, "reasons", arr);
    text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    return text;
}
