/* SPDX-License-Identifier: MIT */
/* Version sets inside guestabi's libraries: a deep copy into an arena (hostcaps keep the
 * versions a probe or a document gave them). */
#ifndef GABI_ABI_VERSIONS_H
#define GABI_ABI_VERSIONS_H

#include <guestabi/abi.h>

#include "common/arena.h"

/* 0, -ENOMEM, or -E2BIG for more than GABI_MAX_VERSIONS entries. */
int gabi_versions_copy(struct gabi_arena *a, struct gabi_versions *dst,
                       const struct gabi_versions *src);

#endif
