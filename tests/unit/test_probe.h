/* SPDX-License-Identifier: MIT */
#pragma once

/* Helpers for the probe tests: temporary trees, fixture paths, probing them, finding problems. */

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <guestabi/probe.h>

#include "abi_fixtures.h"

/* A fixture tree under tests/data/sysfs/ (a fresh buffer each call, for up to 4 at once). */
static inline const char *fixture(const char *name)
{
    static char bufs[4][4096];
    static unsigned next;
    char *buf = bufs[next++ % 4];
    const char *root = getenv("GUESTABI_SOURCE_ROOT");

    snprintf(buf, sizeof(bufs[0]), "%s/tests/data/sysfs/%s", root ? root : ".", name);
    return buf;
}

/* A new empty directory; free() the path after tmpdir_remove(). */
static inline char *tmpdir_new(void)
{
    const char *base = getenv("TMPDIR");
    char *path = NULL;

    if (asprintf(&path, "%s/guestabi-probe-XXXXXX", base && *base ? base : "/tmp") < 0)
        return NULL;
    if (!mkdtemp(path)) {
        free(path);
        return NULL;
    }
    return path;
}

static inline int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static inline void tmpdir_remove(char *path)
{
    if (path)
        nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(path);
}

/* mkdir -p of dir/rel. */
static inline int mkdirs(const char *dir, const char *rel)
{
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/%s", dir, rel);

    if (n < 0 || (size_t)n >= sizeof(path))
        return -ENAMETOOLONG;
    for (char *s = path + strlen(dir) + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
            return -errno;
        *s = '/';
    }
    return mkdir(path, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

/* Write dir/rel (its directories made first). */
static inline int put_file(const char *dir, const char *rel, const char *data, size_t size)
{
    char path[4096], parent[4096];
    const char *slash = strrchr(rel, '/');
    int fd, r = 0;

    if (slash) {
        snprintf(parent, sizeof(parent), "%.*s", (int)(slash - rel), rel);
        if ((r = mkdirs(dir, parent)) < 0)
            return r;
    }
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    while (size) {
        ssize_t w = write(fd, data, size);
        if (w < 0) {
            r = -errno;
            break;
        }
        data += w;
        size -= (size_t)w;
    }
    close(fd);
    return r;
}

static inline int put_text(const char *dir, const char *rel, const char *text)
{
    return put_file(dir, rel, text, strlen(text));
}

static inline int put_link(const char *dir, const char *rel, const char *target)
{
    char path[4096], parent[4096];
    const char *slash = strrchr(rel, '/');
    int r;

    if (slash) {
        snprintf(parent, sizeof(parent), "%.*s", (int)(slash - rel), rel);
        if ((r = mkdirs(dir, parent)) < 0)
            return r;
    }
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    return symlink(target, path) < 0 ? -errno : 0;
}

/* Probe `parts` of the given roots (NULL: the real ones) with a fixed host name. */
static inline struct gabi_probe *probe_roots(const struct gabi_catalog *cat, const char *sysfs,
                                             const char *dev, unsigned parts)
{
    struct gabi_probe_options o = {
        .host = "fixture", .sysfs_root = sysfs, .dev_root = dev, .parts = parts};
    struct gabi_probe *p = NULL;
    struct gabi_error err = {0};

    if (gabi_probe_run(cat, &o, &p, &err) < 0)
        printf("# probe: %s: %s\n", err.where, err.message);
    return p;
}

/* The first problem whose path contains `path` and whose message contains `message`. */
static inline const struct gabi_probe_problem *find_problem(const struct gabi_probe *p,
                                                            const char *path, const char *message)
{
    for (size_t i = 0; i < gabi_probe_n_problems(p); i++) {
        const struct gabi_probe_problem *pr = gabi_probe_problem(p, i);
        if (strstr(pr->path, path) && strstr(pr->message, message))
            return pr;
    }
    return NULL;
}

static inline void print_problems(const struct gabi_probe *p)
{
    for (size_t i = 0; i < gabi_probe_n_problems(p); i++)
        printf("#   problem: %s: %s\n", gabi_probe_problem(p, i)->path,
               gabi_probe_problem(p, i)->message);
}

#define CHECK_PROBLEM(p, path, message)                                                            \
    do {                                                                                           \
        if (!find_problem((p), (path), (message))) {                                               \
            TAP_FAIL("no problem about \"%s\" saying \"%s\"", (path), (message));                  \
            print_problems(p);                                                                     \
        }                                                                                          \
    } while (0)

static inline const struct gabi_probe_mdev_type *find_mdev(const struct gabi_probe *p,
                                                           const char *parent, const char *id)
{
    for (size_t i = 0; i < gabi_probe_n_mdev_types(p); i++) {
        const struct gabi_probe_mdev_type *t = gabi_probe_mdev_type(p, i);
        if (strcmp(t->parent, parent) == 0 && strcmp(t->id, id) == 0)
            return t;
    }
    return NULL;
}

static inline const struct gabi_hostcaps_device_type *find_host_type(const struct gabi_hostcaps *h,
                                                                     const char *name)
{
    for (size_t i = 0; i < gabi_hostcaps_n_device_types(h); i++)
        if (strcmp(gabi_hostcaps_device_type(h, i)->name, name) == 0)
            return gabi_hostcaps_device_type(h, i);
    return NULL;
}
