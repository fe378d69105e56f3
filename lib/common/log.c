/* SPDX-License-Identifier: MIT */
#include <guestabi/log.h>

#include <stdarg.h>
#include <stdio.h>

static gabi_log_fn log_fn;
static void *log_userdata;
static enum gabi_log_level log_max = GABI_LOG_INFO;

void gabi_log_set_handler(gabi_log_fn fn, void *userdata)
{
    log_fn = fn;
    log_userdata = userdata;
}

void gabi_log_set_max_level(enum gabi_log_level level)
{
    log_max = level;
}

int gabi_log_enabled(enum gabi_log_level level)
{
    return log_fn && level <= log_max;
}

void gabi_log(enum gabi_log_level level, const char *module, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    if (!gabi_log_enabled(level))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_fn(level, module, msg, log_userdata);
}

void gabi_log_stderr(enum gabi_log_level level, const char *module, const char *msg, void *userdata)
{
    (void)userdata;
    fprintf(stderr, "%s%s%s%s\n", level <= GABI_LOG_ERR ? "error: " : "", module ? module : "",
            module ? ": " : "", msg);
}
