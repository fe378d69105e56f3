/* SPDX-License-Identifier: MIT */
/* guestabi probe / query-platforms: what this host really supports, and the platforms it runs. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <guestabi/probe.h>

#include <guestabi/vhost_client.h>

#include "cli.h"

struct probe_opts {
    struct gabi_probe_options o;
    struct gabi_probe_vhost_user vu[GABI_PROBE_MAX_VHOST_USER];
    bool strict;
};

/* --vhost-user CLASS:NAME=PATH */
static int parse_vhost_user(struct cli *cli, struct probe_opts *po, const char *arg)
{
    const char *colon = strchr(arg, ':'), *eq = colon ? strchr(colon + 1, '=') : NULL;
    char cls[32];
    int c;

    if (!colon || !eq || eq == colon + 1 || !eq[1] || (size_t)(colon - arg) >= sizeof(cls)) {
        cli_errorf(cli,
                   "--vhost-user \"%s\": expected CLASS:NAME=PATH, e.g. "
                   "virtio-net:ovs0=/run/openvswitch/vhu0",
                   arg);
        return -1;
    }
    memcpy(cls, arg, (size_t)(colon - arg));
    cls[colon - arg] = '\0';
    c = gabi_class_from_name(cls);
    if (c < 0 || !gabi_class_is_virtio((enum gabi_device_class)c)) {
        cli_errorf(cli, "--vhost-user \"%s\": unknown class \"%s\" (virtio-net, virtio-blk)", arg,
                   cls);
        return -1;
    }
    if (po->o.n_vhost_user >= GABI_PROBE_MAX_VHOST_USER) {
        cli_errorf(cli, "at most %u --vhost-user back-ends", GABI_PROBE_MAX_VHOST_USER);
        return -1;
    }
    /* NAME and PATH point into argv; the name is cut at '=' in a copy. */
    char *name = strndup(colon + 1, (size_t)(eq - colon - 1));
    if (!name) {
        cli_errorf(cli, "out of memory");
        return -1;
    }
    if (cli_check_value(cli, &cli_cmd_probe, "--vhost-user NAME", name, false) < 0) {
        free(name);
        return -1;
    }
    po->vu[po->o.n_vhost_user++] = (struct gabi_probe_vhost_user){
        .name = name, .cls = (enum gabi_device_class)c, .socket = eq + 1};
    return 0;
}

static int parse_parts(struct cli *cli, struct probe_opts *po, const char *arg)
{
    static const struct {
        const char *name;
        unsigned part;
    } names[] = {
        {"kernel", GABI_PROBE_KERNEL},         {"mdev", GABI_PROBE_MDEV},
        {"failover", GABI_PROBE_FAILOVER},     {"vhost-user", GABI_PROBE_VHOST_USER},
        {"hypervisor", GABI_PROBE_HYPERVISOR},
    };
    const char *s = arg;
    unsigned parts = 0;

    while (*s) {
        size_t len = strcspn(s, ",");
        bool found = false;

        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
            if (strlen(names[i].name) == len && strncmp(names[i].name, s, len) == 0) {
                parts |= names[i].part;
                found = true;
            }
        if (!found) {
            cli_errorf(cli,
                       "--only \"%s\": parts are kernel, mdev, failover, vhost-user, hypervisor",
                       arg);
            return -1;
        }
        s += len;
        if (*s == ',')
            s++;
    }
    if (!parts) {
        cli_errorf(cli, "--only needs at least one part");
        return -1;
    }
    po->o.parts = parts;
    return 0;
}

static int probe_opt(struct cli *cli, int opt, const char *arg, void *userdata)
{
    struct probe_opts *po = userdata;

    switch (opt) {
    case 'S':
        po->o.sysfs_root = arg;
        return 0;
    case 'D':
        po->o.dev_root = arg;
        return 0;
    case 'N':
        po->o.host = arg;
        return cli_check_value(cli, &cli_cmd_probe, "--host-name", arg, false);
    case 'V':
        return parse_vhost_user(cli, po, arg);
    case 'O':
        return parse_parts(cli, po, arg);
    case 'X':
        po->strict = true;
        return 0;
    case 'Q':
        po->o.qemu = arg;
        return 0;
    case 'T': {
        char *end;
        unsigned long ms;

        errno = 0;
        ms = strtoul(arg, &end, 10);
        if (errno || end == arg || *end || arg[0] == '-' || ms < 1 || ms > 600000) {
            cli_errorf(cli, "--qemu-timeout \"%s\": expected 1 to 600000 (ms)", arg);
            return -1;
        }
        po->o.qemu_timeout_ms = (unsigned)ms;
        return 0;
    }
    }
    return -1;
}

static void free_opts(struct probe_opts *po)
{
    for (size_t i = 0; i < po->o.n_vhost_user; i++)
        free((char *)po->vu[i].name);
    po->o.n_vhost_user = 0;
}

static const struct option probe_options[] = {
    {"sysfs-root", required_argument, NULL, 'S'},
    {"dev-root", required_argument, NULL, 'D'},
    {"host-name", required_argument, NULL, 'N'},
    {"vhost-user", required_argument, NULL, 'V'},
    {"only", required_argument, NULL, 'O'},
    {"strict", no_argument, NULL, 'X'},
    {"qemu", required_argument, NULL, 'Q'},
    {"qemu-timeout", required_argument, NULL, 'T'},
    {NULL, 0, NULL, 0},
};

static const struct option query_platforms_options[] = {
    {"dev-root", required_argument, NULL, 'D'},
    {"host-name", required_argument, NULL, 'N'},
    {"qemu", required_argument, NULL, 'Q'},
    {"qemu-timeout", required_argument, NULL, 'T'},
    {NULL, 0, NULL, 0},
};

/* Parse, load the catalog and probe. Returns the probe, or NULL with *ret_exit set. */
/* The probe's vhost-user hook: lib/vhost's front-end reads what the back-end offers. */
static int probe_vhost_user(const struct gabi_probe_vhost_user *b, struct gabi_probe_offer *ret,
                            struct gabi_error *reterr, void *userdata)
{
    struct gabi_vhost_offer o;
    int r;

    (void)userdata;
    r = gabi_vhost_client_probe_offer(b->socket, 5000, &o, reterr);
    if (r < 0)
        return r;
    *ret = (struct gabi_probe_offer){
        .features = o.features,
        .protocol_features = o.protocol_features,
        .max_queue_pairs = o.max_queue_pairs,
        .max_queue_size = o.max_queue_size,
    };
    return 0;
}

static struct gabi_probe *setup(struct cli *cli, const struct cli_command *cmd, int argc,
                                char **argv, const struct option *options, struct probe_opts *po,
                                unsigned force_parts, int *ret_exit)
{
    struct gabi_probe *p = NULL;
    struct gabi_error err = {0};
    int first;

    first = cli_parse_options(cli, cmd, argc, argv, options, "", probe_opt, po, ret_exit);
    if (first < 0)
        return NULL;
    if (first < argc) {
        *ret_exit = cli_usage_error(cli, cmd, "unexpected argument \"%s\"", argv[first]);
        return NULL;
    }
    *ret_exit = EXIT_BAD_INPUT;
    if (!cli_catalog(cli))
        return NULL;
    if (force_parts)
        po->o.parts = force_parts;
    po->o.vhost_user = po->vu;
    po->o.vhost_user_probe = probe_vhost_user;
    if (gabi_probe_run(cli->cat, &po->o, &p, &err) < 0) {
        cli_error(cli, &err);
        return NULL;
    }
    return p;
}

static void print_problems(const struct gabi_probe *p, FILE *f)
{
    for (size_t i = 0; i < gabi_probe_n_problems(p); i++) {
        const struct gabi_probe_problem *pr = gabi_probe_problem(p, i);
        fprintf(f, "guestabi: warning: %s: %s\n", pr->path, pr->message);
    }
    if (gabi_probe_n_problems_total(p) > gabi_probe_n_problems(p))
        fprintf(f, "guestabi: warning: %zu more problems not shown\n",
                gabi_probe_n_problems_total(p) - gabi_probe_n_problems(p));
}

static void print_kernel(const struct gabi_probe *p)
{
    const char *tap = gabi_probe_tap_name(p);
    uint64_t vf;

    printf("Kernel %s\n", gabi_probe_kernel_release(p));
    if (tap[0])
        printf("  tap offloads, tried on a temporary tap %s (%s/net/tun; gone now):\n", tap,
               gabi_probe_dev_root(p));
    else
        printf("  tap offloads (%s/net/tun; no tap could be made):\n", gabi_probe_dev_root(p));
    for (unsigned k = 0; k < GABI_KCAP_COUNT; k++) {
        const struct gabi_probe_kcap *c = gabi_probe_kcap(p, k);

        if (k == GABI_KCAP_VHOST_NET) {
            printf("    %-13s", "vnet hdr size");
            for (size_t i = 0; i < GABI_PROBE_N_VNET_HDR; i++) {
                const struct gabi_probe_vnet_hdr *v = gabi_probe_vnet_hdr(p, i);
                printf(" %u %s%s", v->size, gabi_cap_state_name(v->state),
                       i + 1 < GABI_PROBE_N_VNET_HDR ? "," : "  (TUNSETVNETHDRSZ)\n");
            }
            printf("  vhost-net:\n");
        }
        printf("    %-13s %-13s %s\n", gabi_kcap_name(k), gabi_cap_state_name(c->state),
               c->detail ? c->detail : "");
    }
    if (gabi_probe_vhost_net_features(p, &vf) == 0)
        cli_print_features(stdout, "vhost-net", GABI_CLASS_NET, vf);
}

/* "guest_uso4, guest_uso6, host_uso": the properties of pl's features h's hypervisor lacks. */
static const char *missing_properties(const struct gabi_hostcaps *h, const struct gabi_platform *pl,
                                      char *buf, size_t size)
{
    uint64_t missing = gabi_hostcaps_platform_missing_features(h, pl);
    size_t len = 0;

    buf[0] = '\0';
    for (unsigned b = 0; b < 64 && len < size; b++)
        if (missing & (1ull << b))
            len += (size_t)snprintf(buf + len, size - len, "%s%s", len ? ", " : "",
                                    gabi_hv_property_for_feature(b)->name);
    return buf[0] ? buf : NULL;
}

/* How the hypervisor half was judged, one line. */
static void print_hypervisor_line(const struct gabi_hostcaps *h)
{
    const struct gabi_hostcaps_hypervisor *hv = gabi_hostcaps_hypervisor(h);

    if (hv->state == GABI_HV_PROBED)
        printf("Hypervisor QEMU %s (%s): %zu machine types\n", hv->version,
               hv->binary ? hv->binary : "stated", hv->n_machines);
    else
        printf("Hypervisor %s%s%s: platforms judged on the kernel alone\n",
               gabi_hv_state_name(hv->state), hv->message ? ": " : "",
               hv->message ? hv->message : "");
}

static void print_hypervisor(const struct gabi_probe *p)
{
    const struct gabi_hostcaps_hypervisor *hv = gabi_probe_hypervisor(p);
    const struct gabi_hv_property *t;
    size_t n;

    print_hypervisor_line(gabi_probe_hostcaps(p));
    if (hv->state != GABI_HV_PROBED)
        return;
    t = gabi_hv_properties(&n);
    printf("  virtio-net feature properties (of %zu properties in all):\n",
           gabi_probe_hypervisor_n_properties(p));
    for (size_t i = 0; i < n; i++)
        printf("    %-13s %-8s %s (QEMU %s)\n", t[i].name,
               hv->net_features & (1ull << t[i].bit) ? "present" : "absent",
               gabi_feature_name(GABI_CLASS_NET, t[i].bit), t[i].since);
}

static void print_platforms_line(const struct gabi_hostcaps *h)
{
    const struct gabi_platform *ps[GABI_MAX_PLATFORMS];
    size_t n = gabi_hostcaps_platforms(h, ps, GABI_MAX_PLATFORMS);

    printf("Platforms this host runs (kernel and hypervisor), newest first:");
    for (size_t i = 0; i < n && i < GABI_MAX_PLATFORMS; i++)
        printf("%s %s%s", i ? "," : "", ps[i]->name, i == 0 ? " (default)" : "");
    printf("%s\n", n ? "" : " none");
}

static void print_backends(const struct gabi_probe *p)
{
    size_t n = gabi_probe_n_backends(p);

    printf("vhost-user back-ends:%s\n", n ? "" : " none configured (--vhost-user)");
    for (size_t i = 0; i < n; i++) {
        const struct gabi_probe_backend *b = gabi_probe_backend(p, i);

        printf("  %s (%s) %s\n", b->name, gabi_class_name(b->cls), b->socket);
        if (b->state == GABI_PROBE_BACKEND_PROBED) {
            printf("    runs %zu catalog mode%s; offers %u queue pair%s of %u entries\n",
                   b->n_modes, b->n_modes == 1 ? "" : "s", b->offer.max_queue_pairs,
                   b->offer.max_queue_pairs == 1 ? "" : "s", b->offer.max_queue_size);
            cli_print_features(stdout, "features", b->cls, b->offer.features);
        } else {
            printf("    %s\n", b->message);
        }
    }
}

static void print_mdev(const struct gabi_probe *p)
{
    size_t n = gabi_probe_n_mdev_types(p);

    printf("Mediated device types (%s/class/mdev_bus):%s\n", gabi_probe_sysfs_root(p),
           n ? "" : " none");
    for (size_t i = 0; i < n; i++) {
        const struct gabi_probe_mdev_type *t = gabi_probe_mdev_type(p, i);

        printf("  %s  on %s", t->id, t->parent);
        if (t->name)
            printf("  \"%s\"", t->name);
        if (t->device_api)
            printf("  %s", t->device_api);
        if (t->available_instances == UINT32_MAX)
            printf("  ? available\n");
        else
            printf("  %u available\n", t->available_instances);
        if (t->source == GABI_PROBE_VERSIONS_NONE) {
            printf("    cannot migrate: %s (left out of hostcaps)\n", t->why);
            continue;
        }
        printf("    %-10s ", "loads");
        cli_print_versions(stdout, &t->loads);
        printf("  writes ");
        cli_print_versions(stdout, &t->writes);
        printf("  (from %s)\n", t->source == GABI_PROBE_VERSIONS_ATTRIBUTE
                                    ? "the driver's migration_versions"
                                    : "the catalog's rule");
    }
}

static void print_failover(const struct gabi_probe *p)
{
    const struct gabi_hostcaps *h = gabi_probe_hostcaps(p);
    size_t n = gabi_hostcaps_n_failover(h);

    printf("Failover candidates (SR-IOV VFs under %s/class/net):%s\n", gabi_probe_sysfs_root(p),
           n ? "" : " none");
    for (size_t i = 0; i < n; i++) {
        const struct gabi_hostcaps_failover *f = gabi_hostcaps_failover(h, i);

        printf("  %s  %s  pf %s  driver %s  mac %s\n", f->address, f->device, f->pf ? f->pf : "?",
               f->driver ? f->driver : "none", f->mac ? f->mac : "none");
    }
}

static int run_probe(struct cli *cli, int argc, char **argv)
{
    struct probe_opts po = {0};
    struct gabi_probe *p;
    unsigned parts;
    int ex;

    p = setup(cli, &cli_cmd_probe, argc, argv, probe_options, &po, 0, &ex);
    free_opts(&po);
    if (!p)
        return ex;
    parts = gabi_probe_parts(p);
    print_problems(p, stderr);
    if (cli->json) {
        ex = cli_print_json(gabi_hostcaps_to_json(gabi_probe_hostcaps(p)));
    } else {
        printf("Host %s\n", gabi_hostcaps_host(gabi_probe_hostcaps(p)));
        if (parts & GABI_PROBE_KERNEL)
            print_kernel(p);
        if (parts & GABI_PROBE_HYPERVISOR)
            print_hypervisor(p);
        if (parts & GABI_PROBE_KERNEL)
            print_platforms_line(gabi_probe_hostcaps(p));
        if (parts & GABI_PROBE_VHOST_USER)
            print_backends(p);
        if (parts & GABI_PROBE_MDEV)
            print_mdev(p);
        if (parts & GABI_PROBE_FAILOVER)
            print_failover(p);
        if (gabi_probe_n_problems_total(p))
            printf("%zu problem%s (on stderr)\n", gabi_probe_n_problems_total(p),
                   gabi_probe_n_problems_total(p) == 1 ? "" : "s");
        ex = 0;
    }
    if (ex == 0 && po.strict && gabi_probe_n_problems_total(p))
        ex = EXIT_BAD_INPUT;
    gabi_probe_free(p);
    return ex;
}

/* The capabilities a platform needs that the host lacks, as "tap.uso4 (unsupported)". */
static json_t *missing_json(const struct gabi_platform *pl, const struct gabi_hostcaps *h)
{
    json_t *o = json_object();

    for (unsigned k = 0; k < GABI_KCAP_COUNT; k++)
        if ((pl->requires & (1u << k)) && gabi_hostcaps_cap(h, k) != GABI_CAP_SUPPORTED)
            json_object_set_new(o, gabi_kcap_name(k),
                                json_string(gabi_cap_state_name(gabi_hostcaps_cap(h, k))));
    return o;
}

static int platforms_json(struct cli *cli, const struct gabi_hostcaps *h,
                          const struct gabi_platform *const *ps, size_t n)
{
    json_t *root = cli_platforms_json(cli->cat, h, ps, n), *not_runnable;
    char *text;

    if (!root)
        return cli_errorf(cli, "out of memory");
    {
        /* the hostcaps document's member, or {"state": "unknown"} */
        char *caps = gabi_hostcaps_to_json(h);
        json_t *doc = caps ? json_loads(caps, 0, NULL) : NULL;
        json_t *hv = doc ? json_object_get(doc, "hypervisor") : NULL;

        json_object_set_new(root, "hypervisor",
                            hv ? json_incref(hv) : json_pack("{s:s}", "state", "unknown"));
        json_decref(doc);
        free(caps);
    }
    not_runnable = json_array();
    for (size_t k = 0; k < gabi_catalog_n_platforms(cli->cat); k++) {
        const struct gabi_platform *pl = gabi_catalog_platform(cli->cat, k);

        uint64_t lacks = gabi_hostcaps_platform_missing_features(h, pl);
        json_t *props = json_array();

        if (gabi_hostcaps_runs_platform(h, pl)) {
            json_decref(props);
            continue;
        }
        for (unsigned b = 0; b < 64; b++)
            if (lacks & (1ull << b))
                json_array_append_new(props, json_string(gabi_hv_property_for_feature(b)->name));
        json_array_append_new(not_runnable,
                              json_pack("{s:s, s:o, s:o}", "name", pl->name, "missing",
                                        missing_json(pl, h), "missing_properties", props));
    }
    json_object_set_new(root, "not_runnable", not_runnable);
    text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    return cli_print_json(text);
}

static int run_query_platforms(struct cli *cli, int argc, char **argv)
{
    const struct gabi_platform *ps[GABI_MAX_PLATFORMS];
    struct probe_opts po = {0};
    const struct gabi_hostcaps *h;
    struct gabi_probe *p;
    size_t n;
    int ex;

    p = setup(cli, &cli_cmd_query_platforms, argc, argv, query_platforms_options, &po,
              GABI_PROBE_KERNEL | GABI_PROBE_HYPERVISOR, &ex);
    free_opts(&po);
    if (!p)
        return ex;
    print_problems(p, stderr);
    h = gabi_probe_hostcaps(p);
    n = gabi_hostcaps_platforms(h, ps, GABI_MAX_PLATFORMS);
    if (n > GABI_MAX_PLATFORMS)
        n = GABI_MAX_PLATFORMS;
    if (cli->json) {
        ex = platforms_json(cli, h, ps, n);
    } else {
        print_hypervisor_line(h);
        printf("Platforms host %s (kernel %s) can run, newest first:\n", gabi_hostcaps_host(h),
               gabi_hostcaps_kernel(h));
        for (size_t i = 0; i < n; i++) {
            if (i == 0)
                printf("  %-16s default (the newest runnable one)\n", ps[i]->name);
            else
                printf("  %s\n", ps[i]->name);
        }
        if (n == 0)
            printf("  none\n");
        for (size_t k = 0; k < gabi_catalog_n_platforms(cli->cat); k++) {
            const struct gabi_platform *pl = gabi_catalog_platform(cli->cat, k);
            const char *props;
            char buf[512];
            bool first = true;

            if (gabi_hostcaps_runs_platform(h, pl))
                continue;
            printf("  %-16s not runnable:", pl->name);
            for (unsigned c = 0; c < GABI_KCAP_COUNT; c++)
                if ((pl->requires & (1u << c)) && gabi_hostcaps_cap(h, c) != GABI_CAP_SUPPORTED) {
                    printf("%s %s (%s)", first ? " needs" : ",", gabi_kcap_name(c),
                           gabi_cap_state_name(gabi_hostcaps_cap(h, c)));
                    first = false;
                }
            props = missing_properties(h, pl, buf, sizeof(buf));
            if (props)
                printf("%s QEMU %s has no virtio-net property %s", first ? "" : ";",
                       gabi_hostcaps_hypervisor(h)->version, props);
            printf("\n");
        }
        ex = 0;
    }
    gabi_probe_free(p);
    if (ex == 0 && n == 0)
        ex = EXIT_INCOMPATIBLE;
    return ex;
}

const struct cli_command cli_cmd_probe = {
    "probe",
    "Probe this host: kernel tap offloads, vhost-net, mdev types, SR-IOV VFs, QEMU (hostcaps)",
    "[--sysfs-root DIR] [--dev-root DIR] [--host-name NAME] [--only PARTS]\n"
    "                [--vhost-user CLASS:NAME=PATH]... [--strict] [--qemu PATH]\n"
    "  --sysfs-root DIR   read sysfs there instead of /sys (fixture trees)\n"
    "  --dev-root DIR     open net/tun and vhost-net there instead of /dev\n"
    "  --host-name NAME   the host's name in the document (default: uname's nodename)\n"
    "  --only PARTS       probe only these parts: kernel,mdev,failover,vhost-user,hypervisor\n"
    "  --vhost-user CLASS:NAME=PATH\n"
    "                     a vhost-user back-end socket to probe: connect as a front-end,\n"
    "                     read its offer (features, protocol features, queues, ring size)\n"
    "                     and map it to the catalog modes it can run\n"
    "  --strict           exit 2 when anything could not be read (see the warnings)\n"
    "  --qemu PATH        the QEMU binary VMs run with (default: qemu-system-x86_64 on PATH)\n"
    "  --qemu-timeout MS  kill a QEMU run that takes longer (default 5000)\n"
    "--json prints the hostcaps document. Unreadable sysfs content is a warning on stderr\n"
    "and is left out; exit 2 only for bad options or roots (or --strict).",
    run_probe,
};

const struct cli_command cli_cmd_query_platforms = {
    "query-platforms",
    "List the catalog platforms this host's kernel and QEMU can run, newest (the default) first",
    "[--dev-root DIR] [--host-name NAME] [--qemu PATH]\n"
    "  --dev-root DIR     open net/tun and vhost-net there instead of /dev\n"
    "  --host-name NAME   the host's name in the output (default: uname's nodename)\n"
    "  --qemu PATH        the QEMU binary VMs run with (default: qemu-system-x86_64 on PATH)\n"
    "  --qemu-timeout MS  kill a QEMU run that takes longer (default 5000)\n"
    "A platform runs when the kernel has every capability it lists and QEMU has the\n"
    "virtio-net property of every feature it turns on. Choosing no platform\n"
    "means the newest runnable one. Exit 1 when none is runnable.",
    run_query_platforms,
};
