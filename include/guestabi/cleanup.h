/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Scope-bound cleanup, as systemd writes it. A variable declared
 *
 *     _cleanup_(gabi_pin_freep) struct gabi_pin *pin = NULL;
 *
 * is freed by its own free function on every way out of its scope, a half-built one included;
 * TAKE_PTR(pin) hands it on instead. Every public object's header defines its
 * gabi_<object>_freep with GABI_DEFINE_FREEP. fds: _cleanup_close_ and TAKE_FD (-1 is none).
 */

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f)    __attribute__((cleanup(f)))
#define _cleanup_free_  _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)

/* Defines free_fn##p(type **), for _cleanup_: free_fn(*p) unless *p is NULL. */
#define GABI_DEFINE_FREEP(type, free_fn)                                                           \
    static inline void free_fn##p(type **p)                                                        \
    {                                                                                              \
        if (*p)                                                                                    \
            free_fn(*p);                                                                           \
    }

static inline void freep(void *p)
{
    free(*(void **)p);
}

static inline void closep(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}

/* Take a pointer out of a cleanup variable so it is not freed at scope exit. */
#define TAKE_PTR(p)                                                                                \
    ({                                                                                             \
        __typeof__(p) _p = (p);                                                                    \
        (p) = NULL;                                                                                \
        _p;                                                                                        \
    })

#define TAKE_FD(fd)                                                                                \
    ({                                                                                             \
        int _fd = (fd);                                                                            \
        (fd) = -1;                                                                                 \
        _fd;                                                                                       \
    })
