/* SPDX-License-Identifier: MIT */
/* gabi_probe_run(): the result object, its problems, the vhost-user hook, accessors. */

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>

#include <guestabi/log.h>

#include "probe/internal.h"

const char *gabi_probe_versions_source_name(enum gabi_probe_versions_source s)
{
    switch (s) {
    case GABI_PROBE_VERSIONS_NONE:
        return "none";
    case GABI_PROBE_VERSIONS_ATTRIBUTE:
        return "migration_versions";
    case GABI_PROBE_VERSIONS_CATALOG:
        return "catalog";
    }
    return "?";
}

void probe_problem(struct gabi_probe *p, const char *path, int code, const char *fmt, ...)
{
    struct gabi_probe_problem *pr;
    char msg[GABI_ERROR_MESSAGE_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    gabi_log_debug("probe", "%s: %s", path ? path : "?", msg);
    p->n_problems_total++;
    if (p->n_problems >= GABI_PROBE_MAX_PROBLEMS)
        return;
    pr = &p->problems[p->n_problems];
    pr->path = gabi_arena_strdup(&p->arena, path ? path : "");
    pr->message = gabi_arena_strdup(&p->arena, msg);
    pr->code = code < 0 ? code : -EINVAL;
    if (pr->path && pr->message)
        p->n_problems++;
}

struct gabi_probe *gabi_probe_free(struct gabi_probe *p)
{
    if (!p)
        return NULL;
    gabi_hostcaps_free(p->hostcaps);
    free(p->mdev);
    free(p->backends);
    gabi_arena_release(&p->arena);
    free(p);
    return NULL;
}

/* The configured back-ends are the caller's input: refuse bad ones before probing anything. */
static int check_vhost_user(const struct gabi_probe_options *o, struct gabi_error *reterr)
{
    if (o->n_vhost_user > GABI_PROBE_MAX_VHOST_USER)
        return gabi_error_set(reterr, -E2BIG, NULL, "%zu vhost-user back-ends, more than %u",
                              o->n_vhost_user, GABI_PROBE_MAX_VHOST_USER);
    for (size_t i = 0; i < o->n_vhost_user; i++) {
        const struct gabi_probe_vhost_user *b = &o->vhost_user[i];

        if (!b->name || !probe_is_token(b->name, GABI_MAX_NAME - 1))
            return gabi_error_set(reterr, -EINVAL, NULL,
                                  "vhost-user back-end %zu: a name is 1 to %u printable "
                                  "characters without spaces",
                                  i + 1, GABI_MAX_NAME - 1);
        if (!gabi_class_is_virtio(b->cls))
            return gabi_error_set(reterr, -EINVAL, NULL,
                                  "vhost-user back-end %s: the class must be virtio-net or "
                                  "virtio-blk",
                                  b->name);
        if (!b->socket || !b->socket[0] ||
            strlen(b->socket) >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
            return gabi_error_set(reterr, -EINVAL, NULL,
                                  "vhost-user back-end %s: a socket path is 1 to %zu bytes",
                                  b->name, sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1);
        for (size_t j = 0; j < i; j++)
            if (strcmp(o->vhost_user[j].name, b->name) == 0)
                return gabi_error_set(reterr, -EINVAL, NULL,
                                      "vhost-user back-end %s is named twice", b->name);
    }
    return 0;
}

/* The hook: a front-end the program supplies reads each back-end's offer. Without one, the
 * back-ends are reported as not probed and left out of hostcaps: never guessed. */
static int probe_vhost_user(struct gabi_probe *p, const struct gabi_probe_options *o)
{
    if (o->n_vhost_user == 0)
        return 0;
    p->backends = calloc(o->n_vhost_user, sizeof(*p->backends));
    if (!p->backends)
        return -ENOMEM;
    for (size_t i = 0; i < o->n_vhost_user; i++) {
        const struct gabi_probe_vhost_user *b = &o->vhost_user[i];
        struct gabi_probe_backend *e = &p->backends[p->n_backends++];
        const struct gabi_mode *modes[GABI_MAX_MODES];
        struct gabi_hostcaps_backend hb;
        struct gabi_error err = {0};
        struct gabi_probe_offer offer = {0};
        int r;

        e->name = gabi_arena_strdup(&p->arena, b->name);
        e->socket = gabi_arena_strdup(&p->arena, b->socket);
        e->cls = b->cls;
        if (!e->name || !e->socket)
            return -ENOMEM;
        if (!o->vhost_user_probe) {
            e->state = GABI_PROBE_BACKEND_NOT_PROBED;
            e->message = "not probed: this program passed no vhost-user front-end; left out "
                         "of hostcaps";
            continue;
        }
        r = o->vhost_user_probe(b, &offer, &err, o->vhost_user_userdata);
        if (r < 0) {
            e->state = GABI_PROBE_BACKEND_FAILED;
            e->message = gabi_arena_printf(&p->arena, "%s: %s", b->socket,
                                           err.message[0] ? err.message : strerror(-r));
            continue;
        }
        if (offer.max_queue_pairs < 1 || offer.max_queue_pairs > 0x8000 ||
            offer.max_queue_size < 1 || offer.max_queue_size > 32768) {
            e->state = GABI_PROBE_BACKEND_FAILED;
            e->message = gabi_arena_printf(&p->arena,
                                           "%s: offer out of bounds (%u queue pairs of %u "
                                           "entries; 1..32768 each)",
                                           b->socket, offer.max_queue_pairs, offer.max_queue_size);
            continue;
        }
        e->state = GABI_PROBE_BACKEND_PROBED;
        e->offer = offer;
        e->n_modes = gabi_catalog_modes_for_offer(p->cat, b->cls, offer.features,
                                                  offer.protocol_features, offer.max_queue_pairs,
                                                  offer.max_queue_size, modes, GABI_MAX_MODES);
        e->n_modes = MIN(e->n_modes, (size_t)GABI_MAX_MODES);
        hb = (struct gabi_hostcaps_backend){
            .name = b->name,
            .cls = b->cls,
            .socket = b->socket,
            .n_modes = e->n_modes,
            .modes = modes,
            .has_offer = true,
            .features = offer.features,
            .protocol_features = offer.protocol_features,
            .max_queue_pairs = offer.max_queue_pairs,
            .max_queue_size = offer.max_queue_size,
        };
        r = gabi_hostcaps_add_backend(p->hostcaps, &hb);
        if (r < 0)
            return r;
    }
    return 0;
}

static int open_root(const char *path, const char *what, int *ret_fd, struct gabi_error *reterr)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0) {
        int r = -errno;
        return gabi_error_set(reterr, r, path, "%s root: %s", what, strerror(-r));
    }
    *ret_fd = fd;
    return 0;
}

int gabi_probe_run(const struct gabi_catalog *cat, const struct gabi_probe_options *opts,
                   struct gabi_probe **ret, struct gabi_error *reterr)
{
    static const struct gabi_probe_options defaults = {0};
    _cleanup_close_ int sysfs_fd = -1, dev_fd = -1;
    struct gabi_probe *p;
    struct utsname u;
    int r;

    if (!opts)
        opts = &defaults;
    if ((r = check_vhost_user(opts, reterr)) < 0)
        return r;
    p = calloc(1, sizeof(*p));
    if (!p)
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    gabi_arena_init(&p->arena);
    p->cat = cat;
    for (size_t i = 0; i < GABI_PROBE_N_VNET_HDR; i++)
        p->vnet[i].size = probe_vnet_hdr_sizes[i];
    p->parts = opts->parts ? opts->parts & GABI_PROBE_ALL : GABI_PROBE_ALL;
    p->sysfs_root = gabi_arena_strdup(&p->arena, opts->sysfs_root ? opts->sysfs_root : "/sys");
    p->dev_root = gabi_arena_strdup(&p->arena, opts->dev_root ? opts->dev_root : "/dev");
    if (!p->sysfs_root || !p->dev_root)
        goto oom;
    if (p->parts & (GABI_PROBE_MDEV | GABI_PROBE_FAILOVER)) {
        r = open_root(p->sysfs_root, "sysfs", &sysfs_fd, reterr);
        if (r < 0)
            goto fail;
    }
    if (p->parts & GABI_PROBE_KERNEL) {
        r = open_root(p->dev_root, "dev", &dev_fd, reterr);
        if (r < 0)
            goto fail;
    }
    if (uname(&u) < 0) {
        r = gabi_error_set(reterr, -errno, NULL, "uname: %s", strerror(errno));
        goto fail;
    }
    p->release = gabi_arena_strdup(&p->arena, u.release);
    p->hostcaps = gabi_hostcaps_new(cat, opts->host ? opts->host : u.nodename,
                                    p->parts & GABI_PROBE_KERNEL ? u.release : NULL);
    if (!p->release || !p->hostcaps)
        goto oom;
    if (p->parts & GABI_PROBE_KERNEL)
        probe_kernel(p);
    if ((p->parts & GABI_PROBE_MDEV) && probe_mdev(p, sysfs_fd) < 0)
        goto oom;
    if ((p->parts & GABI_PROBE_FAILOVER) && probe_failover(p, sysfs_fd) < 0)
        goto oom;
    if ((p->parts & GABI_PROBE_VHOST_USER) && probe_vhost_user(p, opts) < 0)
        goto oom;
    if ((p->parts & GABI_PROBE_HYPERVISOR) && probe_hypervisor(p, opts) < 0)
        goto oom;
    *ret = p;
    return 0;

oom:
    r = gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
fail:
    gabi_probe_free(p);
    return r;
}

/* ---- accessors ------------------------------------------------------------------------- */

const struct gabi_hostcaps *gabi_probe_hostcaps(const struct gabi_probe *p)
{
    return p->hostcaps;
}

struct gabi_hostcaps *gabi_probe_hostcaps_steal(struct gabi_probe *p)
{
    return TAKE_PTR(p->hostcaps);
}

unsigned gabi_probe_parts(const struct gabi_probe *p)
{
    return p->parts;
}

const char *gabi_probe_sysfs_root(const struct gabi_probe *p)
{
    return p->sysfs_root;
}

const char *gabi_probe_dev_root(const struct gabi_probe *p)
{
    return p->dev_root;
}

const char *gabi_probe_kernel_release(const struct gabi_probe *p)
{
    return p->release;
}

const char *gabi_probe_tap_name(const struct gabi_probe *p)
{
    return p->tap_name;
}

const struct gabi_probe_kcap *gabi_probe_kcap(const struct gabi_probe *p, enum gabi_kcap cap)
{
    return (unsigned)cap < GABI_KCAP_COUNT ? &p->kcaps[cap] : NULL;
}

const struct gabi_probe_vnet_hdr *gabi_probe_vnet_hdr(const struct gabi_probe *p, size_t i)
{
    return i < GABI_PROBE_N_VNET_HDR ? &p->vnet[i] : NULL;
}

int gabi_probe_vhost_net_features(const struct gabi_probe *p, uint64_t *ret)
{
    if (!p->has_vhost_net_features)
        return -ENOENT;
    *ret = p->vhost_net_features;
    return 0;
}

size_t gabi_probe_n_mdev_types(const struct gabi_probe *p)
{
    return p->n_mdev;
}

const struct gabi_probe_mdev_type *gabi_probe_mdev_type(const struct gabi_probe *p, size_t i)
{
    return i < p->n_mdev ? &p->mdev[i] : NULL;
}

size_t gabi_probe_n_backends(const struct gabi_probe *p)
{
    return p->n_backends;
}

const struct gabi_probe_backend *gabi_probe_backend(const struct gabi_probe *p, size_t i)
{
    return i < p->n_backends ? &p->backends[i] : NULL;
}

const struct gabi_hostcaps_hypervisor *gabi_probe_hypervisor(const struct gabi_probe *p)
{
    static const struct gabi_hostcaps_hypervisor none = {0};

    return p->hostcaps ? gabi_hostcaps_hypervisor(p->hostcaps) : &none;
}

size_t gabi_probe_hypervisor_n_properties(const struct gabi_probe *p)
{
    return p->n_hv_properties;
}

size_t gabi_probe_n_problems(const struct gabi_probe *p)
{
    return p->n_problems;
}

size_t gabi_probe_n_problems_total(const struct gabi_probe *p)
{
    return p->n_problems_total;
}

const struct gabi_probe_problem *gabi_probe_problem(const struct gabi_probe *p, size_t i)
{
    return i < p->n_problems ? &p->problems[i] : NULL;
}
