/* SPDX-License-Identifier: MIT */
#pragma once

/* The default catalog, compiled in from lib/abi/catalog.d/ (generated at build time). */

#include <stddef.h>

struct gabi_builtin_document {
    const char *name;
    const char *text;
};

extern const struct gabi_builtin_document gabi_builtin_catalog[];
extern const size_t gabi_builtin_catalog_n;
