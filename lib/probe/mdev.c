/* SPDX-License-Identifier: MIT */
/* The mdev part: <sysfs>/class/mdev_bus/PARENT/mdev_supported_types/TYPE and the device-state
 * versions each type loads. */

#include <stdio.h>
#include <string.h>

#include "abi/versions.h"
#include "probe/internal.h"

/* Free text for people: newlines folded to "; ", other control and non-ASCII bytes to '?'. */
static const char *fold_text(struct gabi_probe *p, const char *s)
{
    size_t len = strlen(s);
    char *out = gabi_arena_alloc(&p->arena, len * 2 + 1), *o = out;

    if (!out)
        return NULL;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '\n') {
            if (o > out && s[1])
                o += sprintf(o, "; ");
        } else if (c == '\t') {
            *o++ = ' ';
        } else {
            *o++ = c < 0x20 || c >= 0x7f ? '?' : (char)c;
        }
    }
    *o = '\0';
    return out;
}

/* The versions of one type: its migration_versions attribute, else the catalog's rule. */
static int type_versions(struct gabi_probe *p, const struct sdir *t, struct gabi_probe_mdev_type *e)
{
    char buf[GABI_PROBE_MAX_ATTR + 1];
    const struct gabi_device_type *rule;
    int r = sattr_read(p, t, "migration_versions", buf, sizeof(buf));

    if (r >= 0) {
        _cleanup_free_ struct gabi_probe_versions *pv = NULL;
        const char *path = sdir_child_path(p, t, "migration_versions");
        struct gabi_error err = {0};

        if (!path)
            return -ENOMEM;
        r = gabi_probe_versions_parse(path, buf, (size_t)r, &pv, &err);
        if (r == -ENOMEM)
            return r;
        if (r < 0) {
            probe_problem(p, err.where, err.code, "%s", err.message);
            e->why = "its migration_versions attribute is malformed";
            return 0;
        }
        if ((r = gabi_versions_copy(&p->arena, &e->loads, &pv->loads)) < 0 ||
            (r = gabi_versions_copy(&p->arena, &e->writes, &pv->writes)) < 0)
            return r;
        e->source = GABI_PROBE_VERSIONS_ATTRIBUTE;
        return 0;
    }
    if (r != -ENOENT) {
        e->why = "its migration_versions attribute cannot be read";
        return 0;
    }
    rule = gabi_catalog_find_device_type(p->cat, e->id);
    /* the catalog requires kind and loads of every rule, and fills writes in */
    if (rule && strcmp(rule->kind, "mdev") == 0) {
        e->loads = rule->loads;
        e->writes = rule->writes;
        e->source = GABI_PROBE_VERSIONS_CATALOG;
        return 0;
    }
    e->why = gabi_arena_printf(&p->arena,
                               "the driver publishes no migration_versions attribute and the "
                               "catalog has no rule for %s",
                               e->id);
    return e->why ? 0 : -ENOMEM;
}

static int add_type(struct gabi_probe *p, const struct gabi_probe_mdev_type *e)
{
    struct gabi_probe_mdev_type *n;

    if (p->n_mdev >= GABI_MAX_HOST_DEVICES) {
        if (p->n_mdev == GABI_MAX_HOST_DEVICES)
            probe_problem(p, e->path, -E2BIG, "more than %u mdev types: the rest are left out",
                          GABI_MAX_HOST_DEVICES);
        return 0;
    }
    n = realloc(p->mdev, (p->n_mdev + 1) * sizeof(*n));
    if (!n)
        return -ENOMEM;
    p->mdev = n;
    p->mdev[p->n_mdev++] = *e;
    return 0;
}

static int probe_type(struct gabi_probe *p, const char *parent, const struct sdir *types,
                      const char *id)
{
    char buf[GABI_PROBE_MAX_ATTR + 1];
    struct gabi_probe_mdev_type e = {.parent = parent, .id = id, .available_instances = UINT32_MAX};
    struct sdir t;
    uint32_t avail;
    int r;

    r = sdir_open(p, types, id, &t);
    if (r < 0) {
        if (r != -ENOMEM)
            probe_problem(p, sdir_child_path(p, types, id), r, "not a readable directory: %s",
                          strerror(-r));
        return r == -ENOMEM ? r : 0;
    }
    e.path = t.path;
    if (sattr_read_line(p, &t, "name", buf, sizeof(buf)) >= 0)
        e.name = gabi_arena_strdup(&p->arena, buf);
    r = sattr_read_line(p, &t, "device_api", buf, sizeof(buf));
    if (r >= 0)
        e.device_api = gabi_arena_strdup(&p->arena, buf);
    else if (r == -ENOENT)
        probe_problem(p, sdir_child_path(p, &t, "device_api"), r,
                      "missing (every mdev type has one)");
    r = sattr_read_u32(p, &t, "available_instances", UINT32_MAX - 1, &avail);
    if (r == 0)
        e.available_instances = avail;
    else if (r == -ENOENT)
        probe_problem(p, sdir_child_path(p, &t, "available_instances"), r,
                      "missing (every mdev type has one): taken as unknown");
    if (sattr_read(p, &t, "description", buf, sizeof(buf)) >= 0)
        e.description = fold_text(p, buf);
    r = type_versions(p, &t, &e);
    sdir_close(&t);
    if (r < 0)
        return r;
    return add_type(p, &e);
}

/* One hostcaps entry per type id: instances summed over parents, versions the same on all. */
static int add_to_hostcaps(struct gabi_probe *p)
{
    for (size_t i = 0; i < p->n_mdev; i++) {
        const struct gabi_probe_mdev_type *e = &p->mdev[i];
        struct gabi_hostcaps_device_type t = {
            .name = e->id, .kind = "mdev", .loads = e->loads, .writes = e->writes};
        uint64_t avail = 0;
        bool first = true, agree = true, unknown = false;
        int r;

        if (e->source == GABI_PROBE_VERSIONS_NONE)
            continue;
        for (size_t j = 0; j < p->n_mdev && first; j++)
            if (j < i && p->mdev[j].source != GABI_PROBE_VERSIONS_NONE &&
                strcmp(p->mdev[j].id, e->id) == 0)
                first = false;
        if (!first)
            continue;
        for (size_t j = i; j < p->n_mdev; j++) {
            const struct gabi_probe_mdev_type *o = &p->mdev[j];

            if (o->source == GABI_PROBE_VERSIONS_NONE || strcmp(o->id, e->id) != 0)
                continue;
            if (!gabi_versions_equal(&o->loads, &e->loads) ||
                !gabi_versions_equal(&o->writes, &e->writes)) {
                probe_problem(p, o->path, -EINVAL,
                              "type %s has other state versions under parent %s than under "
                              "parent %s: left out of hostcaps",
                              e->id, o->parent, e->parent);
                agree = false;
                break;
            }
            if (o->available_instances == UINT32_MAX)
                unknown = true;
            else
                avail += o->available_instances;
        }
        if (!agree)
            continue;
        t.available_instances = unknown ? UINT32_MAX : (uint32_t)MIN(avail, UINT32_MAX - 1);
        r = gabi_hostcaps_add_device_type(p->hostcaps, &t);
        if (r == -E2BIG) {
            probe_problem(p, e->path, r, "more than %u device types: the rest are left out",
                          GABI_MAX_HOST_DEVICES);
            return 0;
        }
        if (r < 0)
            return r;
    }
    return 0;
}

int probe_mdev(struct gabi_probe *p, int sysfs_fd)
{
    const struct sdir root = {.fd = sysfs_fd, .path = p->sysfs_root};
    const char **parents = NULL;
    struct sdir bus;
    int n, r;

    r = sdir_open(p, &root, "class/mdev_bus", &bus);
    if (r == -ENOENT)
        return 0; /* no mediated-device parent on this host */
    if (r < 0) {
        if (r != -ENOMEM)
            probe_problem(p, sdir_child_path(p, &root, "class/mdev_bus"), r, "cannot open: %s",
                          strerror(-r));
        return r == -ENOMEM ? r : 0;
    }
    n = sdir_list(p, &bus, &parents);
    for (int i = 0; i < n; i++) {
        const char **ids = NULL;
        struct sdir types;
        char rel[GABI_MAX_NAME + 32];
        int n_ids;

        snprintf(rel, sizeof(rel), "%s/mdev_supported_types", parents[i]);
        r = sdir_open(p, &bus, rel, &types);
        if (r == -ENOMEM)
            break;
        if (r < 0) {
            probe_problem(p, sdir_child_path(p, &bus, rel), r, "cannot open: %s", strerror(-r));
            r = 0;
            continue;
        }
        n_ids = sdir_list(p, &types, &ids);
        r = 0;
        for (int k = 0; k < n_ids && r >= 0; k++)
            r = probe_type(p, parents[i], &types, ids[k]);
        sdir_close(&types);
        if (r < 0 || n_ids == -ENOMEM) {
            r = -ENOMEM;
            break;
        }
    }
    sdir_close(&bus);
    if (n == -ENOMEM || r == -ENOMEM)
        return -ENOMEM;
    return add_to_hostcaps(p);
}
