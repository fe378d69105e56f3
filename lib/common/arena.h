/* SPDX-License-Identifier: MIT */
#pragma once

/* A bump allocator: documents allocate every string and array of theirs from one arena and
 * free them all at once. Internal. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct gabi_arena {
    struct arena_chunk *head;
    size_t total;
};

void gabi_arena_init(struct gabi_arena *a);
void gabi_arena_release(struct gabi_arena *a);
/* Zeroed, 16-byte aligned; NULL on allocation failure. */
void *gabi_arena_alloc(struct gabi_arena *a, size_t size);
void *gabi_arena_alloc_array(struct gabi_arena *a, size_t n, size_t size);
char *gabi_arena_strdup(struct gabi_arena *a, const char *s);
/* Formats with gabi_strbuf_vformat's conversions (no %x, no widths), up to 4 KiB. */
char *gabi_arena_printf(struct gabi_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* FNV-1a: names are hashed once at load so comparisons are cheap. */
static inline uint64_t gabi_hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

/* A string built in a caller's fixed buffer without printf (joins of names are hot in the
 * engine's reasons); too-long text ends in "...". */
struct gabi_strbuf {
    char *buf;
    size_t len, cap;
};

static inline void gabi_strbuf_init(struct gabi_strbuf *sb, char *buf, size_t cap)
{
    sb->buf = buf;
    sb->len = 0;
    sb->cap = cap;
    buf[0] = '\0';
}

void gabi_strbuf_add(struct gabi_strbuf *sb, const char *s);
/* printf for the engine's messages, without stdio: supports %s, %c, %d, %u, %ld, %lu, %lld,
 * %llu, %zu and %%; anything else is copied as is. */
void gabi_strbuf_vformat(struct gabi_strbuf *sb, const char *fmt, va_list ap);

/* Add `s`, preceded by `sep` unless the buffer is still empty. */
void gabi_strbuf_item(struct gabi_strbuf *sb, const char *sep, const char *s);
