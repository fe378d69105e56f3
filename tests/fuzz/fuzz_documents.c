/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the document parsers. The first byte picks the parser (catalog, hostcaps,
 * pin); the rest is the document. Every input must be parsed or refused with an error that
 * names a place, never crash or leak; accepted documents are run through the decisions.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <guestabi/abi.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct gabi_catalog *catalog(void)
{
    static struct gabi_catalog *cat;
    struct gabi_error err;

    if (!cat) {
        cat = gabi_catalog_new();
        if (gabi_catalog_add_builtin(cat, &err) < 0 || gabi_catalog_finalize(cat, &err) < 0)
            abort();
    }
    return cat;
}

static void check_error(const struct gabi_error *err)
{
    /* a refusal always says what and where */
    if (err->code >= 0 || !err->message[0] || !err->where[0])
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gabi_error err = {0};
    const char *doc;

    if (size < 1)
        return 0;
    doc = (const char *)data + 1;
    size--;
    switch (data[0] % 3) {
    case 0: {
        struct gabi_catalog *cat = gabi_catalog_new();
        int r = gabi_catalog_add_builtin(cat, &err);

        if (r < 0)
            abort();
        r = gabi_catalog_add_document(cat, 2, "fuzz.json", doc, size, &err);
        if (r >= 0)
            r = gabi_catalog_finalize(cat, &err);
        if (r < 0)
            check_error(&err);
        gabi_catalog_free(cat);
        break;
    }
    case 1: {
        struct gabi_hostcaps *h = NULL;

        if (gabi_hostcaps_parse(catalog(), "fuzz.json", doc, size, &h, &err) < 0) {
            check_error(&err);
        } else {
            struct gabi_verdict *v = NULL;
            const struct gabi_hostcaps *hosts[1] = {h};
            char *text = gabi_hostcaps_to_json(h);
            struct gabi_hostcaps *again = NULL;

            /* what we write we can read back */
            if (!text ||
                gabi_hostcaps_parse(catalog(), "again", text, strlen(text), &again, &err) < 0)
                abort();
            free(text);
            gabi_hostcaps_free(again);
            if (gabi_pick(catalog(), hosts, 1, &v) < 0)
                abort();
            gabi_verdict_free(v);
            gabi_hostcaps_free(h);
        }
        break;
    }
    default: {
        struct gabi_pin *p = NULL;

        if (gabi_pin_parse(catalog(), "fuzz.json", doc, size, &p, &err) < 0) {
            check_error(&err);
        } else {
            char *text = gabi_pin_to_json(p);
            struct gabi_pin *again = NULL;

            if (!text || gabi_pin_parse(catalog(), "again", text, strlen(text), &again, &err) < 0)
                abort();
            free(text);
            gabi_pin_free(again);
            gabi_pin_free(p);
        }
        break;
    }
    }
    return 0;
}
