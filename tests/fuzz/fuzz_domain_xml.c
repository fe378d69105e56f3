/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: a libvirt domain's XML and the pin in it (lib/libvirt). Every input is parsed
 * or refused with an error that names a place, never crashes or leaks; an accepted pin is
 * written back in both forms and the form with the namespace on the root reads back the same.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <guestabi/libvirt.h>

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gabi_error err = {0};
    struct gabi_domain *d = NULL;
    char *xml, *doc = NULL, *j1, *j2;
    int r;

    r = gabi_domain_parse(catalog(), "fuzz.xml", (const char *)data, size, &d, &err);
    if (r < 0) {
        if (err.code >= 0 || !err.message[0] || !err.where[0])
            abort(); /* a refusal always says what and where */
        return 0;
    }
    if (!gabi_domain_pin(d)) {
        gabi_domain_free(d);
        return 0;
    }
    free(gabi_domain_pin_to_xml(d, true));
    xml = gabi_domain_pin_to_xml(d, false);
    if (!xml)
        abort();
    /* the pin alone in a domain of the same name, without devices: it reads back when it
     * names no alias */
    for (size_t i = 0; i < gabi_pin_n_devices(gabi_domain_pin(d)); i++)
        if (gabi_domain_pin_target(d, i))
            goto out;
    if (strlen(gabi_domain_name(d)) < 256 && !strpbrk(gabi_domain_name(d), "<&]") &&
        asprintf(&doc, "<domain><name>%s</name><metadata>%s</metadata></domain>",
                 gabi_domain_name(d), xml) > 0) {
        struct gabi_domain *d2 = NULL;

        if (gabi_domain_parse(catalog(), "again.xml", doc, strlen(doc), &d2, &err) == 0) {
            j1 = gabi_pin_to_json(gabi_domain_pin(d));
            j2 = gabi_pin_to_json(gabi_domain_pin(d2));
            if (!j1 || !j2 || strcmp(j1, j2) != 0)
                abort();
            free(j1);
            free(j2);
            gabi_domain_free(d2);
        }
    }
out:
    free(doc);
    free(xml);
    gabi_domain_free(d);
    return 0;
}
