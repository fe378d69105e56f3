/* SPDX-License-Identifier: MIT */
#pragma once

/* lib/placement internals: growable string arrays. */

#include <stdbool.h>
#include <stddef.h>

struct strv {
    char **v;
    size_t n, alloc;
};

/* Append a copy of s (or take s when `take`); 0 or -ENOMEM (s is freed then if taken). */
int strv_add(struct strv *sv, const char *s);
int strv_take(struct strv *sv, char *s);
bool strv_contains(const struct strv *sv, const char *s);
/* Sort and drop duplicates. */
void strv_sort_unique(struct strv *sv);
void strv_free(struct strv *sv);
void strv_free_array(char **v, size_t n);
