/* SPDX-License-Identifier: MIT */
#pragma once

/* Small helpers of lib/common that guestabi's libraries and programs share: sizes, branch
 * hints, fds, strings, numbers (cleanup attributes and ownership transfer come from
 * <guestabi/cleanup.h>). */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <guestabi/cleanup.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b)     ((a) < (b) ? (a) : (b))
#define MAX(a, b)     ((a) > (b) ? (a) : (b))

#define likely(x)     __builtin_expect(!!(x), 1)
#define unlikely(x)   __builtin_expect(!!(x), 0)

/* Close an fd variable and set it to -1. */
static inline void close_and_clear(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* The --ready-fd handshake every guestabi program speaks: "READY\n" written to *fd, which is
 * then closed and set to -1 (nothing when it is -1; a reader that went away is no error: it
 * learns nothing either way). */
void gabi_ready_fd_signal(int *fd);

/* Make *fd non-blocking without touching a file description a peer may share: a pipe end is
 * opened again through /proc/self/fd (a description of its own, O_NONBLOCK; *fd is replaced
 * and the old fd closed); anything else, or when that open fails, gets O_NONBLOCK on its
 * description. 0 or -errno (*fd unchanged then). */
int gabi_fd_nonblock_own(int *fd);

/* Read a whole file of at most max_size bytes, NUL-terminated. 0, or -errno (-EFBIG if larger;
 * -ESPIPE if path is not a regular file: a named pipe or a device could block for ever, so it
 * is refused without reading). */
int gabi_read_file(const char *path, size_t max_size, char **ret_buf, size_t *ret_size);
/* The same from an open fd (read to EOF; standard input, say), whatever it is. */
int gabi_read_fd(int fd, size_t max_size, char **ret_buf, size_t *ret_size);

/* strlcpy-alike: copies at most size-1 bytes, always terminates; returns strlen(src). */
size_t gabi_strlcpy(char *dst, const char *src, size_t size);

/* Parse an unsigned decimal or 0x-hex number fully; 0 or -EINVAL / -ERANGE. */
int gabi_parse_u64(const char *s, uint64_t *ret);
