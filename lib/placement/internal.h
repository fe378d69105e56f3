/* SPDX-License-Identifier: MIT */
#pragma once

/* lib/placement internals: growable string arrays. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

struct gabi_placement_query;
/* For the first need of its resource class, the amount the query asks of that class in all
 * (true); false for a trait or a class already counted at an earlier need. */
bool query_class_total(const struct gabi_placement_query *q, size_t i, uint64_t *ret_sum);
