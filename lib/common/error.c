/* SPDX-License-Identifier: MIT */
#include <guestabi/error.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <guestabi/util.h>

int gabi_error_setv(struct gabi_error *reterr, int code, const char *where, const char *fmt,
                    va_list ap)
{
    if (reterr) {
        reterr->code = code;
        gabi_strlcpy(reterr->where, where ? where : "", sizeof(reterr->where));
        vsnprintf(reterr->message, sizeof(reterr->message), fmt, ap);
    }
    return code;
}

int gabi_error_set(struct gabi_error *reterr, int code, const char *where, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    gabi_error_setv(reterr, code, where, fmt, ap);
    va_end(ap);
    return code;
}

void gabi_error_prefix_where(struct gabi_error *err, const char *prefix)
{
    char tmp[GABI_ERROR_WHERE_MAX * 2 + 4];

    if (!err || !prefix || !*prefix)
        return;
    if (err->where[0])
        snprintf(tmp, sizeof(tmp), "%s: %s", prefix, err->where);
    else
        snprintf(tmp, sizeof(tmp), "%s", prefix);
    gabi_strlcpy(err->where, tmp, sizeof(err->where));
}

const char *gabi_error_format(const struct gabi_error *err, char *buf, size_t size)
{
    if (err->where[0])
        snprintf(buf, size, "%s: %s", err->where, err->message);
    else
        snprintf(buf, size, "%s", err->message);
    return buf;
}
