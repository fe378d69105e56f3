/* SPDX-License-Identifier: MIT */
#include <guestabi/util.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int gabi_read_file(const char *path, size_t max_size, char **ret_buf, size_t *ret_size)
{
    _cleanup_close_ int fd = -1;
    struct stat st;

    /* O_NONBLOCK: opening a named pipe without a writer must not wait for one */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -ESPIPE;
    return gabi_read_fd(fd, max_size, ret_buf, ret_size);
}

int gabi_read_fd(int fd, size_t max_size, char **ret_buf, size_t *ret_size)
{
    _cleanup_free_ char *buf = NULL;
    size_t size = 0, alloc = 4096;

    buf = malloc(alloc);
    if (!buf)
        return -ENOMEM;
    for (;;) {
        ssize_t n;

        if (size + 1 >= alloc) {
            char *nbuf;

            if (alloc > max_size)
                return -EFBIG;
            alloc *= 2;
            nbuf = realloc(buf, alloc);
            if (!nbuf)
                return -ENOMEM;
            buf = nbuf;
        }
        n = read(fd, buf + size, alloc - size - 1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        size += (size_t)n;
        if (size > max_size)
            return -EFBIG;
    }
    buf[size] = '\0';
    *ret_buf = TAKE_PTR(buf);
    if (ret_size)
        *ret_size = size;
    return 0;
}

size_t gabi_strlcpy(char *dst, const char *src, size_t size)
{
    size_t len = strlen(src);

    if (size) {
        size_t n = len < size - 1 ? len : size - 1;
        memcpy(dst, src, n);
        dst[n] = '\0';
    }
    return len;
}

int gabi_parse_u64(const char *s, uint64_t *ret)
{
    unsigned long long v;
    char *end;

    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 0);
    if (errno == ERANGE)
        return -ERANGE;
    if (errno || *end)
        return -EINVAL;
    *ret = v;
    return 0;
}

int gabi_fd_nonblock_own(int *fd)
{
    struct stat st;
    int fl = fcntl(*fd, F_GETFL);

    if (fl < 0 || fstat(*fd, &st) < 0)
        return -errno;
    if (fl & O_NONBLOCK)
        return 0;
    if (S_ISFIFO(st.st_mode)) {
        char path[40];
        int nfd;

        snprintf(path, sizeof(path), "/proc/self/fd/%d", *fd);
        nfd = open(path, (fl & O_ACCMODE) | O_NONBLOCK | O_CLOEXEC);
        if (nfd >= 0) {
            close(*fd);
            *fd = nfd;
            return 0;
        }
    }
    return fcntl(*fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0;
}

void gabi_ready_fd_signal(int *fd)
{
    if (*fd < 0)
        return;
    if (write(*fd, "READY\n", 6) != 6) {
        /* the reader went away */
    }
    close_and_clear(fd);
}
