/* SPDX-License-Identifier: MIT */
/*
 * Test support: compat modes as the product ships them, read from the built-in catalog, so
 * no test spells out a mode the catalog defines.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <guestabi/abi.h>

#include "vhost_guest.h"

#define MAX_MODES 16

const struct gabi_vhost_mode *test_catalog_mode(const char *name)
{
    static struct gabi_catalog *cat;
    static struct gabi_vhost_mode modes[MAX_MODES];
    static unsigned n_modes;
    const struct gabi_mode *m;
    struct gabi_error err = {0};

    for (unsigned i = 0; i < n_modes; i++)
        if (strcmp(modes[i].name, name) == 0)
            return &modes[i];
    if (!cat) {
        cat = gabi_catalog_new();
        if (!cat || gabi_catalog_add_builtin(cat, &err) < 0 ||
            gabi_catalog_finalize(cat, &err) < 0) {
            fprintf(stderr, "the built-in catalog: %s\n", err.message);
            abort();
        }
    }
    m = gabi_catalog_find_mode(cat, name);
    if (!m || n_modes == MAX_MODES) {
        fprintf(stderr, "the built-in catalog has no mode %s\n", name);
        abort();
    }
    modes[n_modes] = (struct gabi_vhost_mode){
        .name = m->name, /* the catalog lives as long as the process */
        .features = m->features,
        .protocol_features = m->protocol_features,
        .max_queue_pairs = m->max_queue_pairs,
        .max_queue_size = m->max_queue_size,
    };
    return &modes[n_modes++];
}
