/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Error reporting for functions whose callers need more than an errno: parsers, decisions, RPC.
 *
 * Fallible functions return an int: >= 0 on success, -errno on failure. Where a person needs
 * to know what went wrong, they take a trailing `struct gabi_error *reterr` that the caller
 * owns and that is filled only on failure (it may be NULL when the caller does not care).
 */

#include <stdarg.h>
#include <stddef.h>

#define GABI_ERROR_WHERE_MAX   512
#define GABI_ERROR_MESSAGE_MAX 1024

struct gabi_error {
    int code;                         /* -errno, e.g. -EINVAL */
    char where[GABI_ERROR_WHERE_MAX]; /* "file:line:col", "file: $.modes[2].features[0]", "" */
    char message[GABI_ERROR_MESSAGE_MAX];
};

/* Fill *reterr (if not NULL) and return code, so callers can `return gabi_error_set(...)`.
 * `where` may be NULL. code must be negative. */
int gabi_error_set(struct gabi_error *reterr, int code, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The same with a va_list, for functions that take a format of their own. */
int gabi_error_setv(struct gabi_error *reterr, int code, const char *where, const char *fmt,
                    va_list ap) __attribute__((format(printf, 4, 0)));

/* Prefix the location with `prefix` ("file.json" + ": " + old where). */
void gabi_error_prefix_where(struct gabi_error *err, const char *prefix);

/* "where: message" into buf (always NUL-terminated); returns buf. */
const char *gabi_error_format(const struct gabi_error *err, char *buf, size_t size);
