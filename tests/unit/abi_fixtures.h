/* SPDX-License-Identifier: MIT */
#pragma once

/* Helpers for engine tests: the built-in catalog, documents from strings and files. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <guestabi/abi.h>

static inline struct gabi_catalog *builtin_catalog(void)
{
    struct gabi_catalog *cat = gabi_catalog_new();
    struct gabi_error err = {0};

    if (!cat || gabi_catalog_add_builtin(cat, &err) < 0 || gabi_catalog_finalize(cat, &err) < 0) {
        printf("# built-in catalog: %s: %s\n", err.where, err.message);
        return gabi_catalog_free(cat);
    }
    return cat;
}

static inline struct gabi_hostcaps *hostcaps_from(const struct gabi_catalog *cat, const char *text)
{
    struct gabi_hostcaps *h = NULL;
    struct gabi_error err = {0};

    if (gabi_hostcaps_parse(cat, "test.json", text, strlen(text), &h, &err) < 0)
        printf("# hostcaps: %s: %s\n", err.where, err.message);
    return h;
}

static inline struct gabi_pin *pin_from(const struct gabi_catalog *cat, const char *text)
{
    struct gabi_pin *p = NULL;
    struct gabi_error err = {0};

    if (gabi_pin_parse(cat, "pin.json", text, strlen(text), &p, &err) < 0)
        printf("# pin: %s: %s\n", err.where, err.message);
    return p;
}

/* A file under the source tree (GUESTABI_SOURCE_ROOT, set by meson). */
static inline const char *source_path(const char *rel)
{
    static char buf[4096];
    const char *root = getenv("GUESTABI_SOURCE_ROOT");

    snprintf(buf, sizeof(buf), "%s/%s", root ? root : ".", rel);
    return buf;
}

static inline const struct gabi_reason *find_reason(const struct gabi_verdict *v,
                                                    const char *device, const char *key)
{
    for (size_t i = 0; i < gabi_verdict_n_reasons(v); i++) {
        const struct gabi_reason *r = gabi_verdict_reason(v, i);
        if (strcmp(r->device, device) == 0 && strcmp(r->key, key) == 0)
            return r;
    }
    return NULL;
}

static inline const char *find_choice(const struct gabi_verdict *v, const char *subject,
                                      const char *key)
{
    for (size_t i = 0; i < gabi_verdict_n_choices(v); i++) {
        const struct gabi_choice *c = gabi_verdict_choice(v, i);
        if (strcmp(c->subject, subject) == 0 && strcmp(c->key, key) == 0)
            return c->value ? c->value : "(none)";
    }
    return NULL;
}
