/* SPDX-License-Identifier: MIT */
/* Bounded reading of sysfs-shaped trees: attributes, directory listings, symlinks. */

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "probe/internal.h"

const char *sdir_child_path(struct gabi_probe *p, const struct sdir *d, const char *name)
{
    return gabi_arena_printf(&p->arena, "%s/%s", d->path, name);
}

int sdir_open(struct gabi_probe *p, const struct sdir *parent, const char *name, struct sdir *ret)
{
    const char *path = sdir_child_path(p, parent, name);
    int fd;

    if (!path)
        return -ENOMEM;
    fd = openat(parent->fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    *ret = (struct sdir){.fd = fd, .path = path};
    return 0;
}

void sdir_close(struct sdir *d)
{
    close_and_clear(&d->fd);
}

bool probe_is_token(const char *s, size_t max)
{
    size_t n = 0;

    for (; s[n]; n++)
        if ((unsigned char)s[n] <= 0x20 || (unsigned char)s[n] >= 0x7f || n >= max)
            return false;
    return n > 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void closedirp(DIR **d)
{
    if (*d)
        closedir(*d);
}

int sdir_list(struct gabi_probe *p, const struct sdir *d, const char ***ret_names)
{
    _cleanup_(closedirp) DIR *dir = NULL;
    const char **names = NULL;
    size_t n = 0, alloc = 0;
    bool truncated = false;
    struct dirent *de;
    int fd;

    /* fdopendir takes the fd; open the directory again so d stays usable. */
    fd = openat(d->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int r = -errno;
        probe_problem(p, d->path, r, "cannot list: %s", strerror(-r));
        return r;
    }
    dir = fdopendir(fd);
    if (!dir) {
        int r = -errno;
        close(fd);
        probe_problem(p, d->path, r, "cannot list: %s", strerror(-r));
        return r;
    }
    while ((errno = 0, de = readdir(dir))) {
        const char **nn;

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (!probe_is_token(de->d_name, GABI_MAX_NAME - 1)) {
            size_t len = strlen(de->d_name);
            bool long_name = len >= GABI_MAX_NAME;

            probe_problem(p, d->path, -ENAMETOOLONG, "entry %.*s%s left out: %s", 40, de->d_name,
                          len > 40 ? "..." : "",
                          long_name ? "name longer than 127 bytes"
                                    : "name has spaces, control or non-ASCII bytes");
            continue;
        }
        if (n >= GABI_PROBE_MAX_ENTRIES) {
            truncated = true;
            break;
        }
        if (n == alloc) {
            size_t na = alloc ? alloc * 2 : 16;
            nn = gabi_arena_alloc_array(&p->arena, na, sizeof(*nn));
            if (!nn)
                return -ENOMEM;
            if (n)
                memcpy(nn, names, n * sizeof(*nn));
            names = nn;
            alloc = na;
        }
        names[n] = gabi_arena_strdup(&p->arena, de->d_name);
        if (!names[n])
            return -ENOMEM;
        n++;
    }
    if (errno != 0 && !truncated) {
        int r = -errno;
        probe_problem(p, d->path, r, "cannot list: %s", strerror(-r));
        return r;
    }
    if (truncated)
        probe_problem(p, d->path, -E2BIG, "more than %u entries; the rest are left out",
                      GABI_PROBE_MAX_ENTRIES);
    if (n)
        qsort(names, n, sizeof(*names), name_cmp);
    *ret_names = names;
    return (int)n;
}

int sattr_read(struct gabi_probe *p, const struct sdir *d, const char *name, char *buf, size_t size)
{
    _cleanup_close_ int fd = -1;
    struct stat st;
    size_t len = 0;
    int r;

    if (size < 2)
        return -EINVAL;
    fd = openat(d->fd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        r = -errno;
        if (r != -ENOENT)
            probe_problem(p, sdir_child_path(p, d, name), r, "cannot open: %s", strerror(-r));
        return r;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        probe_problem(p, sdir_child_path(p, d, name), -EINVAL, "not a regular file");
        return -EINVAL;
    }
    /* sysfs reports a page as st_size whatever the content: read to the end, bounded. */
    for (;;) {
        char extra;
        ssize_t n;

        if (len == size - 1) {
            do {
                n = read(fd, &extra, 1);
            } while (n < 0 && errno == EINTR);
            if (n > 0) {
                probe_problem(p, sdir_child_path(p, d, name), -EFBIG,
                              "larger than %zu bytes: refused", size - 1);
                return -EFBIG;
            }
        } else {
            do {
                n = read(fd, buf + len, size - 1 - len);
            } while (n < 0 && errno == EINTR);
        }
        if (n < 0) {
            r = -errno;
            probe_problem(p, sdir_child_path(p, d, name), r, "cannot read: %s", strerror(-r));
            return r;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    if (memchr(buf, '\0', len)) {
        probe_problem(p, sdir_child_path(p, d, name), -EINVAL, "holds a NUL byte: refused");
        return -EINVAL;
    }
    if (len && buf[len - 1] == '\n')
        buf[--len] = '\0';
    return (int)len;
}

int sattr_read_line(struct gabi_probe *p, const struct sdir *d, const char *name, char *buf,
                    size_t size)
{
    int r = sattr_read(p, d, name, buf, size);

    if (r < 0)
        return r;
    for (int i = 0; i < r; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c < 0x20 || c >= 0x7f) {
            probe_problem(p, sdir_child_path(p, d, name), -EINVAL,
                          "malformed: expected one line of printable ASCII, found byte 0x%02x "
                          "at offset %d",
                          c, i);
            return -EINVAL;
        }
    }
    return r;
}

int sattr_read_u32(struct gabi_probe *p, const struct sdir *d, const char *name, uint32_t max,
                   uint32_t *ret)
{
    char buf[64];
    uint64_t v = 0;
    int r = sattr_read_line(p, d, name, buf, sizeof(buf));

    if (r < 0)
        return r;
    if (r == 0 || r > 20)
        goto bad;
    for (int i = 0; i < r; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            goto bad;
        v = v * 10 + (uint64_t)(buf[i] - '0');
        if (v > max) {
            probe_problem(p, sdir_child_path(p, d, name), -ERANGE,
                          "value %s is larger than %u: refused", buf, max);
            return -ERANGE;
        }
    }
    *ret = (uint32_t)v;
    return 0;
bad:
    probe_problem(p, sdir_child_path(p, d, name), -EINVAL,
                  "malformed: expected a decimal number, found \"%s\"", buf);
    return -EINVAL;
}

int slink_basename(struct gabi_probe *p, const struct sdir *d, const char *name, char *buf,
                   size_t size)
{
    char target[PATH_MAX];
    const char *base;
    ssize_t n;
    size_t len;

    n = readlinkat(d->fd, name, target, sizeof(target) - 1);
    if (n < 0) {
        int r = -errno;
        if (r == -ENOENT)
            return r;
        probe_problem(p, sdir_child_path(p, d, name), r == -EINVAL ? -EINVAL : r, "%s",
                      r == -EINVAL ? "not a symbolic link" : strerror(-r));
        return r;
    }
    target[n] = '\0';
    while (n > 1 && target[n - 1] == '/')
        target[--n] = '\0';
    base = strrchr(target, '/');
    base = base ? base + 1 : target;
    len = strlen(base);
    if (len >= size || !probe_is_token(base, size - 1) || strcmp(base, "..") == 0 ||
        strcmp(base, ".") == 0) {
        probe_problem(p, sdir_child_path(p, d, name), -EINVAL,
                      "malformed link target (last component empty, too long or not printable "
                      "ASCII)");
        return -EINVAL;
    }
    memcpy(buf, base, len + 1);
    return (int)len;
}
