/* SPDX-License-Identifier: MIT */
#include "common/arena.h"

#include <stdarg.h>
#include <stdbool.h>
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

/* Uninitialized memory, for callers that fill all of it. */
static void *arena_alloc_raw(struct gabi_arena *a, size_t size)
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
    return p;
}

void *gabi_arena_alloc(struct gabi_arena *a, size_t size)
{
    void *p = arena_alloc_raw(a, size);

    if (p)
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
    char *p = arena_alloc_raw(a, len + 1);

    if (p)
        memcpy(p, s, len + 1);
    return p;
}

char *gabi_arena_printf(struct gabi_arena *a, const char *fmt, ...)
{
    char buf[4096];
    struct gabi_strbuf sb;
    va_list ap;

    gabi_strbuf_init(&sb, buf, sizeof(buf));
    va_start(ap, fmt);
    gabi_strbuf_vformat(&sb, fmt, ap);
    va_end(ap);
    return gabi_arena_strdup(a, buf);
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

static void add_unsigned(struct gabi_strbuf *sb, unsigned long long v, bool negative)
{
    char digits[24];
    size_t n = sizeof(digits) - 1;

    digits[n] = '\0';
    do {
        digits[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (negative)
        digits[--n] = '-';
    gabi_strbuf_add(sb, digits + n);
}

static void add_signed(struct gabi_strbuf *sb, long long v)
{
    if (v < 0)
        add_unsigned(sb, -(unsigned long long)v, true);
    else
        add_unsigned(sb, (unsigned long long)v, false);
}

void gabi_strbuf_vformat(struct gabi_strbuf *sb, const char *fmt, va_list ap)
{
    const char *p = fmt;

    while (*p) {
        const char *pct = strchr(p, '%');
        char lit[256];

        if (!pct) {
            gabi_strbuf_add(sb, p);
            return;
        }
        /* the literal run before the conversion */
        while (p < pct) {
            size_t n = (size_t)(pct - p) < sizeof(lit) - 1 ? (size_t)(pct - p) : sizeof(lit) - 1;
            memcpy(lit, p, n);
            lit[n] = '\0';
            gabi_strbuf_add(sb, lit);
            p += n;
        }
        p = pct + 1;
        if (*p == 's') {
            const char *s = va_arg(ap, const char *);
            gabi_strbuf_add(sb, s ? s : "(null)");
            p++;
        } else if (*p == 'c') {
            char c[2] = {(char)va_arg(ap, int), '\0'};
            gabi_strbuf_add(sb, c);
            p++;
        } else if (*p == 'd') {
            add_signed(sb, va_arg(ap, int));
            p++;
        } else if (*p == 'u') {
            add_unsigned(sb, va_arg(ap, unsigned), false);
            p++;
        } else if (p[0] == 'z' && p[1] == 'u') {
            add_unsigned(sb, va_arg(ap, size_t), false);
            p += 2;
        } else if (p[0] == 'l' && p[1] == 'l' && (p[2] == 'd' || p[2] == 'u')) {
            if (p[2] == 'd')
                add_signed(sb, va_arg(ap, long long));
            else
                add_unsigned(sb, va_arg(ap, unsigned long long), false);
            p += 3;
        } else if (p[0] == 'l' && (p[1] == 'd' || p[1] == 'u')) {
            if (p[1] == 'd')
                add_signed(sb, va_arg(ap, long));
            else
                add_unsigned(sb, va_arg(ap, unsigned long), false);
            p += 2;
        } else if (*p == '%') {
            gabi_strbuf_add(sb, "%");
            p++;
        } else {
            gabi_strbuf_add(sb, "%");
        }
    }
}
