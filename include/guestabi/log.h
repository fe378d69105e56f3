/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Logging. Libraries log at debug level at most, through a handler the program installs;
 * without a handler nothing is printed. Programs log per module with a prefix naming the
 * device or peer a line concerns.
 */

enum gabi_log_level {
    GABI_LOG_ERR = 3,
    GABI_LOG_WARNING = 4,
    GABI_LOG_INFO = 6,
    GABI_LOG_DEBUG = 7,
};

typedef void (*gabi_log_fn)(enum gabi_log_level level, const char *module, const char *msg,
                            void *userdata);

/* Install the process-wide handler (NULL: drop everything) and the most verbose level passed. */
void gabi_log_set_handler(gabi_log_fn fn, void *userdata);
void gabi_log_set_max_level(enum gabi_log_level level);
int gabi_log_enabled(enum gabi_log_level level);

void gabi_log(enum gabi_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A handler that writes "module: msg" lines to stderr. */
void gabi_log_stderr(enum gabi_log_level level, const char *module, const char *msg,
                     void *userdata);

#define gabi_log_debug(module, ...)                                                                \
    do {                                                                                           \
        if (gabi_log_enabled(GABI_LOG_DEBUG))                                                      \
            gabi_log(GABI_LOG_DEBUG, module, __VA_ARGS__);                                         \
    } while (0)
