/* SPDX-License-Identifier: MIT */
/* guestabi modes / platforms / device-types: what the catalog names, or what a host runs. */

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

struct list_opts {
    const char *host;
    int cls;
};

static int list_opt(struct cli *cli, int opt, const char *arg, void *userdata)
{
    struct list_opts *o = userdata;

    switch (opt) {
    case 'H':
        o->host = arg;
        return 0;
    case 'C':
        o->cls = gabi_class_from_name(arg);
        if (o->cls < 0) {
            cli_errorf(cli, "unknown device class \"%s\" (virtio-net, virtio-blk)", arg);
            return -1;
        }
        return 0;
    }
    return -1;
}

static const struct option list_options[] = {
    {"host", required_argument, NULL, 'H'},
    {"class", required_argument, NULL, 'C'},
    {NULL, 0, NULL, 0},
};

/* Parse options and load the catalog and the optional host; returns < 0 with *ret_exit set. */
static int list_setup(struct cli *cli, const struct cli_command *cmd, int argc, char **argv,
                      struct list_opts *o, struct gabi_hostcaps **ret_host, int *ret_exit)
{
    int first = cli_parse_options(cli, cmd, argc, argv, list_options, "", list_opt, o, ret_exit);
    char *path;

    if (first < 0)
        return -1;
    if (first < argc) {
        *ret_exit = cli_usage_error(cli, cmd, "unexpected argument \"%s\"", argv[first]);
        return -1;
    }
    *ret_exit = EXIT_BAD_INPUT;
    if (!cli_catalog(cli))
        return -1;
    *ret_host = NULL;
    path = (char *)o->host;
    if (path && cli_load_hosts(cli, &path, 1, ret_host) < 0)
        return -1;
    return 0;
}

static int run_modes(struct cli *cli, int argc, char **argv)
{
    struct list_opts o = {.cls = GABI_CLASS_NONE};
    struct gabi_hostcaps *host = NULL;
    const struct gabi_mode **modes;
    struct gabi_catalog *cat;
    size_t n = 0;
    int ex;

    if (list_setup(cli, &cli_cmd_modes, argc, argv, &o, &host, &ex) < 0)
        return ex;
    cat = cli->cat;
    modes = calloc(gabi_catalog_n_modes(cat) + 1, sizeof(*modes));
    if (!modes) {
        gabi_hostcaps_free(host);
        return cli_errorf(cli, "out of memory");
    }
    for (size_t i = 0; i < gabi_catalog_n_modes(cat); i++) {
        const struct gabi_mode *m = gabi_catalog_mode(cat, i);
        if (o.cls != GABI_CLASS_NONE && m->cls != (enum gabi_device_class)o.cls)
            continue;
        if (host && !gabi_hostcaps_runs_mode(host, m))
            continue;
        modes[n++] = m;
    }
    if (cli->json) {
        ex = cli_print_json(gabi_modes_to_json(cat, modes, n));
    } else {
        enum gabi_device_class last = GABI_CLASS_NONE;

        if (host)
            printf("Modes host %s can run, newest first:\n", gabi_hostcaps_host(host));
        for (size_t i = 0; i < n; i++) {
            const struct gabi_mode *m = modes[i];
            bool newest = m == gabi_catalog_newest_mode(cat, m->cls);

            if (m->cls != last)
                printf("%s%s\n", i ? "\n" : "", gabi_class_name(m->cls));
            last = m->cls;
            printf("  %s  (order %lld%s)\n", m->name, (long long)m->order,
                   newest ? ", newest" : "");
            if (m->description)
                printf("    %s\n", m->description);
            printf("    %-10s %u %s%s of %u entries\n", "queues", m->max_queue_pairs,
                   m->cls == GABI_CLASS_NET ? "pair" : "queue", m->max_queue_pairs == 1 ? "" : "s",
                   m->max_queue_size);
            cli_print_features(stdout, "features", m->cls, m->features);
            cli_print_protocol_features(stdout, "protocol", m->protocol_features);
            for (size_t k = 0; k < gabi_mode_n_extra(cat, m); k++) {
                const char *key, *val;
                if (gabi_mode_extra(cat, m, k, &key, &val) == 0)
                    printf("    %-10s %s\n", key, val);
            }
        }
        if (n == 0)
            printf("(no modes)\n");
        ex = 0;
    }
    free(modes);
    gabi_hostcaps_free(host);
    return ex;
}

static int run_platforms(struct cli *cli, int argc, char **argv)
{
    struct list_opts o = {0};
    struct gabi_hostcaps *host = NULL;
    const struct gabi_platform **ps;
    struct gabi_catalog *cat;
    size_t n = 0;
    int ex;

    if (list_setup(cli, &cli_cmd_platforms, argc, argv, &o, &host, &ex) < 0)
        return ex;
    cat = cli->cat;
    ps = calloc(gabi_catalog_n_platforms(cat) + 1, sizeof(*ps));
    if (!ps) {
        gabi_hostcaps_free(host);
        return cli_errorf(cli, "out of memory");
    }
    for (size_t i = 0; i < gabi_catalog_n_platforms(cat); i++) {
        const struct gabi_platform *p = gabi_catalog_platform(cat, i);
        if (host && !gabi_hostcaps_runs_platform(host, p))
            continue;
        ps[n++] = p;
    }
    if (cli->json && host) {
        json_t *root = cli_platforms_json(cat, host, ps, n);

        ex = cli_print_json(root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL);
        json_decref(root);
    } else if (cli->json) {
        ex = cli_print_json(gabi_platforms_to_json(cat, ps, n));
    } else {
        const struct gabi_platform *def = host ? gabi_hostcaps_default_platform(host) : NULL;

        if (host)
            printf("Platforms host %s can run, newest first:\n", gabi_hostcaps_host(host));
        for (size_t i = 0; i < n; i++) {
            const struct gabi_platform *p = ps[i];
            const char *req[GABI_KCAP_COUNT];
            size_t nreq = 0;

            printf("  %s  (order %lld%s%s%s)\n", p->name, (long long)p->order,
                   p->base ? ", based on " : "", p->base ? p->base : "",
                   p == def ? "; default: the newest runnable one" : "");
            if (p->description)
                printf("    %s\n", p->description);
            for (unsigned k = 0; k < GABI_KCAP_COUNT; k++)
                if (p->requires & (1u << k))
                    req[nreq++] = gabi_kcap_name(k);
            printf("    %-10s", "requires");
            for (size_t k = 0; k < nreq; k++)
                printf(" %s", req[k]);
            printf("%s\n", nreq ? "" : " nothing");
            cli_print_features(stdout, "features", GABI_CLASS_NET, p->features);
        }
        if (n == 0)
            printf("(no platforms)\n");
        ex = 0;
    }
    free(ps);
    gabi_hostcaps_free(host);
    return ex;
}

static int run_device_types(struct cli *cli, int argc, char **argv)
{
    struct list_opts o = {0};
    struct gabi_hostcaps *host = NULL;
    const struct gabi_device_type **ts;
    struct gabi_catalog *cat;
    size_t n = 0, total;
    int ex;

    if (list_setup(cli, &cli_cmd_device_types, argc, argv, &o, &host, &ex) < 0)
        return ex;
    cat = cli->cat;
    total = host ? gabi_hostcaps_n_device_types(host) : gabi_catalog_n_device_types(cat);
    ts = calloc(total + 1, sizeof(*ts));
    if (!ts) {
        gabi_hostcaps_free(host);
        return cli_errorf(cli, "out of memory");
    }
    /* A host's device types are shown in the catalog's shape. */
    struct gabi_device_type *host_types = calloc(total + 1, sizeof(*host_types));
    if (!host_types) {
        free(ts);
        gabi_hostcaps_free(host);
        return cli_errorf(cli, "out of memory");
    }
    for (size_t i = 0; i < total; i++) {
        if (host) {
            const struct gabi_hostcaps_device_type *t = gabi_hostcaps_device_type(host, i);
            host_types[i] = (struct gabi_device_type){.name = t->name,
                                                      .kind = t->kind,
                                                      .writes = t->writes,
                                                      .loads = t->loads,
                                                      .origin = gabi_hostcaps_host(host)};
            ts[n++] = &host_types[i];
        } else {
            ts[n++] = gabi_catalog_device_type(cat, i);
        }
    }
    if (cli->json) {
        ex = cli_print_json(gabi_device_types_to_json(cat, ts, n));
    } else {
        if (host)
            printf("Device types on host %s:\n", gabi_hostcaps_host(host));
        for (size_t i = 0; i < n; i++) {
            printf("  %s  (%s)\n", ts[i]->name, ts[i]->kind ? ts[i]->kind : "?");
            if (ts[i]->description)
                printf("    %s\n", ts[i]->description);
            printf("    %-10s ", "writes");
            cli_print_versions(stdout, &ts[i]->writes);
            printf("\n    %-10s ", "loads");
            cli_print_versions(stdout, &ts[i]->loads);
            printf("\n");
        }
        if (n == 0)
            printf("(no device types)\n");
        ex = 0;
    }
    free(host_types);
    free(ts);
    gabi_hostcaps_free(host);
    return ex;
}

const struct cli_command cli_cmd_modes = {
    "modes",
    "List compat modes (vhost-user device ABIs), newest first per class",
    "[--class CLASS] [--host HOSTCAPS]\n"
    "  --class CLASS    only virtio-net or virtio-blk modes\n"
    "  --host HOSTCAPS  only the modes that host's back-ends can run",
    run_modes,
};

const struct cli_command cli_cmd_platforms = {
    "platforms",
    "List platforms (host-kernel ABIs), newest first",
    "[--host HOSTCAPS]\n"
    "  --host HOSTCAPS  only the platforms that host's kernel can run",
    run_platforms,
};

const struct cli_command cli_cmd_device_types = {
    "device-types",
    "List device-state version rules per device type",
    "[--host HOSTCAPS]\n"
    "  --host HOSTCAPS  the device types that host has, with the versions they load",
    run_device_types,
};
