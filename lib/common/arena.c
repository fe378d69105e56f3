/* SPDX-License-Identifier: MIT */
#include "common/arena.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct arena_chunk {
    struct arena_chunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

#define CHUNK_MIN 8192u

void gabi_arena_init(struct gabi_arena *a)
{
    a->head = NULL;
    a->total = 0;
}

void gabi_arena_release(struct gabi_arena *a)
{
    struct arena_chunk *c = a->head;

    while (c) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->total = 0;
}

void *gabi_arena_alloc(struct gabi_arena *a, size_t size)
{
    struct arena_chunk *c = a->head;
    void *p;

    size = (size + 15u) & ~(size_t)15u;
    if (size == 0)
        size = 16;
    if (!c || c->size - c->used < size) {
        size_t csize = size > CHUNK_MIN ? size : CHUNK_MIN;

        if (c && c->size * 2 > csize && c->size < (1u << 20))
            csize = c->size * 2 > size ? c->size * 2 : csize;
        c = malloc(sizeof(*c) + csize);
        if (!c)
            return NULL;
        c->size = csize;
        c->used = 0;
        c->next = a->head;
        a->head = c;
        a->total += csize;
    }
    p = c->data + c->used;
    c->used += size;
    memset(p, 0, size);
    return p;
}

void *gabi_arena_alloc_array(struct gabi_arena *a, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    return gabi_arena_alloc(a, n * size);
}

char *gabi_arena_strdup(struct gabi_arena *a, const char *s)
{
    size_t len = strlen(s);
    char *p = gabi_arena_alloc(a, len + 1);

    if (p)
        memcpy(p, s, len + 1);
    return p;
}

char *gabi_arena_printf(struct gabi_arena *a, const char *fmt, ...)
{
    char stack[512];
    va_list ap;
    int len;
    char *p;

    /* One formatting pass for the common short string, a second only for a long one. */
    va_start(ap, fmt);
    len = vsnprintf(stack, sizeof(stack), fmt, ap);
    va_end(ap);
    if (len < 0)
        return NULL;
    p = gabi_arena_alloc(a, (size_t)len + 1);
    if (!p)
        return NULL;
    if ((size_t)len < sizeof(stack)) {
        memcpy(p, stack, (size_t)len + 1);
        return p;
    }
    va_start(ap, fmt);
    vsnprintf(p, (size_t)len + 1, fmt, ap);
    va_end(ap);
    return p;
}

void gabi_strbuf_add(struct gabi_strbuf *sb, const char *s)
{
    size_t n = strlen(s);

    if (sb->len + n + 1 > sb->cap) {
        if (sb->cap < 4)
            return;
        n = sb->cap - 1 - sb->len;
        memcpy(sb->buf + sb->len, s, n);
        sb->len += n;
        memcpy(sb->buf + sb->cap - 4, "...", 4);
        return;
    }
    memcpy(sb->buf + sb->len, s, n + 1);
    sb->len += n;
}

void gabi_strbuf_item(struct gabi_strbuf *sb, const char *sep, const char *s)
{
    if (sb->len)
        gabi_strbuf_add(sb, sep);
    gabi_strbuf_add(sb, s);
}
