/* SPDX-License-Identifier: MIT */
/* guestabi placement sync / hosts, and guestabi labels: hosts and pins on OpenStack Placement
 * and as Kubernetes node labels (docs/placement.md). */

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include <guestabi/placement.h>
#include <guestabi/probe.h>

#include "cli.h"
#include <guestabi/util.h>

#define MAX_SYNC_HOSTS 100000u

struct pl_opts {
    struct gabi_placement_conn conn;
    char **hosts;
    size_t n_hosts;
    const char *pin, *resources, *explain;
};

static int pl_opt(struct cli *cli, int opt, const char *arg, void *userdata)
{
    struct pl_opts *o = userdata;
    uint64_t secs;

    switch (opt) {
    case 'u':
        o->conn.url = arg;
        break;
    case 't':
        o->conn.token = arg;
        break;
    case 'T':
        if (gabi_parse_u64(arg, &secs) < 0 || secs == 0 || secs > 3600)
            return cli_errorf(cli, "--timeout \"%s\": seconds from 1 to 3600", arg), -1;
        o->conn.timeout_ms = (long)secs * 1000;
        break;
    case 'H': {
        char **h;

        if (o->n_hosts >= MAX_SYNC_HOSTS)
            return cli_errorf(cli, "at most %u --host documents", MAX_SYNC_HOSTS), -1;
        h = realloc(o->hosts, (o->n_hosts + 1) * sizeof(*h));
        if (!h)
            return cli_errorf(cli, "out of memory"), -1;
        o->hosts = h;
        o->hosts[o->n_hosts++] = (char *)arg;
        break;
    }
    case 'p':
        o->pin = arg;
        break;
    case 'r':
        o->resources = arg;
        break;
    case 'e':
        o->explain = arg;
        break;
    default:
        return -1;
    }
    return 0;
}

#define CONN_OPTIONS                                                                               \
    {"url", required_argument, NULL, 'u'}, {"token", required_argument, NULL, 't'},                \
    {                                                                                              \
        "timeout", required_argument, NULL, 'T'                                                    \
    }

static const struct option sync_options[] = {
    CONN_OPTIONS,
    {"host", required_argument, NULL, 'H'},
    {NULL, 0, NULL, 0},
};

static const struct option hosts_options[] = {
    CONN_OPTIONS,
    {"pin", required_argument, NULL, 'p'},
    {"resources", required_argument, NULL, 'r'},
    {"explain", required_argument, NULL, 'e'},
    {NULL, 0, NULL, 0},
};

static const struct option labels_options[] = {
    {"host", required_argument, NULL, 'H'},
    {"pin", required_argument, NULL, 'p'},
    {NULL, 0, NULL, 0},
};

static const struct cli_command cmd_sync = {
    "placement sync",
    "Publish hosts to OpenStack Placement: their provider's guestabi traits and failover "
    "inventory, leaving every other trait and class as it is",
    "[--host HOSTCAPS]... [--url URL] [--token TOKEN] [--timeout SECONDS]\n"
    "  --host HOSTCAPS  a host's document (repeatable); default: this host, probed\n"
    "  --url URL        Placement's endpoint; default $OS_PLACEMENT_ENDPOINT\n"
    "  --token TOKEN    x-auth-token; default $OS_TOKEN\n"
    "  --timeout SECONDS  per request (default 30)",
    NULL,
};

static const struct cli_command cmd_hosts = {
    "placement hosts",
    "Ask Placement which hosts can take a VM's pin (and resources)",
    "--pin PIN [--resources CLASS:N,...] [--explain HOST] [--url URL] [--token TOKEN]\n"
    "  --resources R    also ask for resources, e.g. VCPU:2,MEMORY_MB:4096\n"
    "                   (then GET /allocation_candidates, else /resource_providers)\n"
    "  --explain HOST   say what Placement's provider HOST lacks for the pin",
    NULL,
};

static void free_hosts(struct gabi_hostcaps **hosts, size_t n)
{
    for (size_t i = 0; hosts && i < n; i++)
        gabi_hostcaps_free(hosts[i]);
    free(hosts);
}

/* This host's own hostcaps: the probe (kernel, mdev, failover; vhost-user back-ends are the
 * agent's to name). */
static struct gabi_hostcaps *probe_self(struct cli *cli)
{
    struct gabi_probe_options o = {0};
    struct gabi_probe *p = NULL;
    struct gabi_hostcaps *h;
    struct gabi_error err = {0};

    o.parts = GABI_PROBE_KERNEL | GABI_PROBE_MDEV | GABI_PROBE_FAILOVER;
    if (gabi_probe_run(cli->cat, &o, &p, &err) < 0) {
        cli_error(cli, &err);
        return NULL;
    }
    h = gabi_probe_hostcaps_steal(p);
    gabi_probe_free(p);
    if (!h)
        cli_errorf(cli, "the probe produced no hostcaps");
    return h;
}

/* The hosts named by --host, or this one; NULL after reporting. */
static struct gabi_hostcaps **load_hosts(struct cli *cli, struct pl_opts *o, size_t *ret_n)
{
    size_t n = o->n_hosts ? o->n_hosts : 1;
    struct gabi_hostcaps **hosts = calloc(n, sizeof(*hosts));

    if (!hosts || !cli_catalog(cli)) {
        free(hosts);
        return NULL;
    }
    if (o->n_hosts ? cli_load_hosts(cli, o->hosts, n, hosts) < 0 : !(hosts[0] = probe_self(cli))) {
        free(hosts);
        return NULL;
    }
    *ret_n = n;
    return hosts;
}

static int run_sync(struct cli *cli, int argc, char **argv)
{
    struct pl_opts o = {0};
    struct gabi_placement *pl = NULL;
    struct gabi_hostcaps **hosts;
    json_t *results = NULL;
    size_t n = 0, n_done = 0;
    int first, ex;

    first = cli_parse_options(cli, &cmd_sync, argc, argv, sync_options, "", pl_opt, &o, &ex);
    if (first < 0) {
        free(o.hosts);
        return ex;
    }
    if (first < argc) {
        free(o.hosts);
        return cli_usage_error(cli, &cmd_sync, "unexpected argument \"%s\"", argv[first]);
    }
    hosts = load_hosts(cli, &o, &n);
    free(o.hosts);
    if (!hosts)
        return EXIT_BAD_INPUT;
    {
        struct gabi_error err = {0};

        if (gabi_placement_new(&o.conn, &pl, &err) < 0) {
            free_hosts(hosts, n);
            return cli_error(cli, &err);
        }
    }
    results = json_array();
    ex = EXIT_COMPATIBLE;
    for (size_t i = 0; i < n; i++) {
        struct gabi_placement_host *ph = NULL;
        struct gabi_placement_sync_result res = {0};
        struct gabi_error err = {0};

        if (gabi_placement_host_from_hostcaps(cli->cat, hosts[i], &ph, &err) < 0 ||
            gabi_placement_sync(pl, ph, &res, &err) < 0) {
            gabi_placement_host_free(ph);
            ex = cli_error(cli, &err);
            fprintf(stderr, "%s: host %s was not synced (%zu of %zu were); a new sync retries it\n",
                    cli->prog, gabi_hostcaps_host(hosts[i]), n_done, n);
            break;
        }
        n_done++;
        if (cli->json) {
            json_array_append_new(
                results,
                json_pack("{s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:b, s:I}", "host", ph->name, "uuid",
                          res.uuid, "created", res.created, "traits", (json_int_t)ph->n_traits,
                          "added", (json_int_t)res.n_added, "removed", (json_int_t)res.n_removed,
                          "kept", (json_int_t)res.n_kept, "inventory_set", res.inventory_set,
                          "conflicts", (json_int_t)res.n_conflicts));
        } else if (n <= 100 || res.created || res.n_added || res.n_removed || res.n_conflicts) {
            printf("host %s: provider %s%s; %zu guestabi traits (%zu added, %zu removed), "
                   "%zu others kept%s",
                   ph->name, res.uuid, res.created ? " created" : "", ph->n_traits, res.n_added,
                   res.n_removed, res.n_kept, res.inventory_set ? "; failover inventory set" : "");
            if (res.n_conflicts)
                printf("; %u concurrent change%s re-read and retried", res.n_conflicts,
                       res.n_conflicts == 1 ? "" : "s");
            printf("%s\n", res.n_added || res.n_removed || res.inventory_set || res.created
                               ? ""
                               : " (unchanged)");
        }
        gabi_placement_host_free(ph);
    }
    if (cli->json && ex == EXIT_COMPATIBLE) {
        json_t *root =
            json_pack("{s:s, s:o}", "schema", "guestabi.placement-sync/1", "hosts", results);
        cli_print_json(json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER));
        json_decref(root);
    } else {
        json_decref(results);
    }
    gabi_placement_free(pl);
    free_hosts(hosts, n);
    return ex;
}

static int explain_host(struct cli *cli, struct gabi_placement *pl,
                        const struct gabi_placement_query *q, const char *host)
{
    struct gabi_placement_provider *p = NULL;
    struct gabi_error err = {0};
    char **lines = NULL;
    size_t n = 0;

    if (gabi_placement_provider_get(pl, host, &p, &err) < 0)
        return cli_error(cli, &err);
    if (gabi_placement_explain(q, p, host, &lines, &n) < 0) {
        gabi_placement_provider_free(p);
        return cli_errorf(cli, "out of memory");
    }
    if (cli->json) {
        json_t *arr = json_array(), *root;

        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, json_string(lines[i]));
        root = json_pack("{s:s, s:s, s:s, s:b, s:o}", "schema", "guestabi.placement-explain/1",
                         "vm", q->vm, "host", host, "ok", n == 0, "reasons", arr);
        cli_print_json(json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER));
        json_decref(root);
    } else {
        printf("VM %s on Placement's host %s: %s", q->vm, host, n ? "INCOMPATIBLE" : "compatible");
        if (n)
            printf(", %zu reason%s", n, n == 1 ? "" : "s");
        printf("\n");
        for (size_t i = 0; i < n; i++)
            printf("  - %s\n", lines[i]);
    }
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
    gabi_placement_provider_free(p);
    return n ? EXIT_INCOMPATIBLE : EXIT_COMPATIBLE;
}

static int run_hosts(struct cli *cli, int argc, char **argv)
{
    struct pl_opts o = {0};
    struct gabi_placement *pl = NULL;
    struct gabi_placement_query *q = NULL;
    struct gabi_pin *pin = NULL;
    struct gabi_error err = {0};
    char **names = NULL;
    size_t n = 0;
    int first, ex;

    first = cli_parse_options(cli, &cmd_hosts, argc, argv, hosts_options, "", pl_opt, &o, &ex);
    free(o.hosts);
    if (first < 0)
        return ex;
    if (first < argc)
        return cli_usage_error(cli, &cmd_hosts, "unexpected argument \"%s\"", argv[first]);
    if (!o.pin)
        return cli_usage_error(cli, &cmd_hosts, "--pin is needed");
    if (!cli_catalog(cli))
        return EXIT_BAD_INPUT;
    if (gabi_pin_load_file(cli->cat, o.pin, &pin, &err) < 0 ||
        gabi_placement_query_from_pin(cli->cat, pin, &q, &err) < 0 ||
        (o.resources && gabi_placement_query_add_resources(q, o.resources, &err) < 0) ||
        gabi_placement_new(&o.conn, &pl, &err) < 0) {
        ex = cli_error(cli, &err);
        goto done;
    }
    if (o.explain) {
        ex = explain_host(cli, pl, q, o.explain);
        goto done;
    }
    if (gabi_placement_hosts(pl, q, &names, &n, &err) < 0) {
        ex = cli_error(cli, &err);
        goto done;
    }
    if (cli->json) {
        json_t *arr = json_array(), *root;
        char *req = gabi_placement_query_required(q), *res = gabi_placement_query_resources(q);

        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, json_string(names[i]));
        root = json_pack("{s:s, s:s, s:s?, s:s?, s:o}", "schema", "guestabi.placement-hosts/1",
                         "vm", q->vm, "required", req, "resources", res, "hosts", arr);
        cli_print_json(json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER));
        json_decref(root);
        free(req);
        free(res);
    } else {
        for (size_t i = 0; i < n; i++)
            printf("%s\n", names[i]);
        if (!n)
            fprintf(stderr,
                    "Placement has no host that can take VM %s (guestabi placement hosts --pin "
                    "%s --explain HOST says why)\n",
                    q->vm, o.pin);
    }
    ex = n ? EXIT_COMPATIBLE : EXIT_INCOMPATIBLE;
done:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    gabi_placement_free(pl);
    gabi_placement_query_free(q);
    gabi_pin_free(pin);
    return ex;
}

static int run_placement(struct cli *cli, int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "sync") == 0)
        return run_sync(cli, argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "hosts") == 0)
        return run_hosts(cli, argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("Usage: %s placement sync %s\n\n       %s placement hosts %s\n", cli->prog,
               cmd_sync.usage, cli->prog, cmd_hosts.usage);
        return 0;
    }
    if (argc < 2)
        return cli_usage_error(cli, &cli_cmd_placement, "name a subcommand: sync or hosts");
    return cli_usage_error(cli, &cli_cmd_placement, "unknown subcommand \"%s\" (sync, hosts)",
                           argv[1]);
}

/* ---- labels ------------------------------------------------------------------------------------
 */

static int label_of(struct cli *cli, const char *trait, char *buf, size_t size)
{
    if (gabi_label_key(trait, buf, size) < 0 || !gabi_label_key_valid(buf))
        return cli_errorf(cli, "no valid label for %s", trait), -1;
    return 0;
}

static int pin_labels(struct cli *cli, const char *path)
{
    struct gabi_placement_query *q = NULL;
    struct gabi_pin *pin = NULL;
    struct gabi_error err = {0};
    json_t *sel = json_object(), *exprs = json_array(), *root;
    int ex = EXIT_COMPATIBLE;

    if (gabi_pin_load_file(cli->cat, path, &pin, &err) < 0 ||
        gabi_placement_query_from_pin(cli->cat, pin, &q, &err) < 0) {
        ex = cli_error(cli, &err);
        goto done;
    }
    for (size_t i = 0; i < q->n_needs; i++) {
        char key[128];

        if (label_of(cli, q->needs[i].name, key, sizeof(key)) < 0) {
            ex = EXIT_BAD_INPUT;
            goto done;
        }
        if (json_object_get(sel, key))
            continue;
        json_object_set_new(sel, key, json_string("true"));
        json_array_append_new(
            exprs, json_pack("{s:s, s:s, s:[s]}", "key", key, "operator", "In", "values", "true"));
    }
    /* JSON is YAML too: paste under a VirtualMachine's spec.template.spec */
    root = json_pack("{s:s, s:s, s:O, s:{s:{s:{s:[{s:O}]}}}}", "schema", "guestabi.labels-pin/1",
                     "vm", q->vm, "nodeSelector", sel, "affinity", "nodeAffinity",
                     "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms",
                     "matchExpressions", exprs);
    cli_print_json(json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER));
    json_decref(root);
done:
    json_decref(sel);
    json_decref(exprs);
    gabi_placement_query_free(q);
    gabi_pin_free(pin);
    return ex;
}

static int run_labels(struct cli *cli, int argc, char **argv)
{
    struct pl_opts o = {0};
    struct gabi_hostcaps **hosts = NULL;
    struct gabi_placement_host *ph = NULL;
    struct gabi_error err = {0};
    json_t *labels;
    size_t n = 0;
    int first, ex;

    first =
        cli_parse_options(cli, &cli_cmd_labels, argc, argv, labels_options, "", pl_opt, &o, &ex);
    if (first < 0 || first < argc || o.n_hosts > 1 || (o.pin && o.n_hosts)) {
        free(o.hosts);
        if (first < 0)
            return ex;
        return cli_usage_error(cli, &cli_cmd_labels, "give at most one --host, or --pin alone");
    }
    if (!cli_catalog(cli)) {
        free(o.hosts);
        return EXIT_BAD_INPUT;
    }
    if (o.pin)
        return pin_labels(cli, o.pin);
    hosts = load_hosts(cli, &o, &n);
    free(o.hosts);
    if (!hosts)
        return EXIT_BAD_INPUT;
    if (gabi_placement_host_from_hostcaps(cli->cat, hosts[0], &ph, &err) < 0) {
        free_hosts(hosts, n);
        return cli_error(cli, &err);
    }
    labels = json_object();
    ex = EXIT_COMPATIBLE;
    for (size_t i = 0; i < ph->n_traits + ph->n_inventory && ex == EXIT_COMPATIBLE; i++) {
        char key[128];
        bool is_trait = i < ph->n_traits;
        const struct gabi_placement_inventory *inv =
            is_trait ? NULL : &ph->inventory[i - ph->n_traits];

        /* a failover class is a label while the host has a free VF of it */
        if (inv && inv->reserved >= inv->total)
            continue;
        if (label_of(cli, is_trait ? ph->traits[i] : inv->resource_class, key, sizeof(key)) < 0)
            ex = EXIT_BAD_INPUT;
        else
            json_object_set_new(labels, key, json_string("true"));
    }
    if (ex == EXIT_COMPATIBLE) {
        if (cli->json) {
            json_t *root = json_pack("{s:s, s:s, s:O}", "schema", "guestabi.labels/1", "host",
                                     ph->name, "labels", labels);
            cli_print_json(json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER));
            json_decref(root);
        } else {
            const char *k;
            json_t *v;

            json_object_foreach (labels, k, v) {
                printf("%s=true\n", k);
            }
        }
    }
    json_decref(labels);
    gabi_placement_host_free(ph);
    free_hosts(hosts, n);
    return ex;
}

const struct cli_command cli_cmd_placement = {
    "placement",
    "Publish hosts to OpenStack Placement as traits (sync); ask it which hosts can take a pin "
    "(hosts)",
    "sync [--host HOSTCAPS]... | hosts --pin PIN [--resources R] [--explain HOST]\n"
    "         [--url URL] [--token TOKEN] [--timeout SECONDS]   (placement --help for more)",
    run_placement,
};

const struct cli_command cli_cmd_labels = {
    "labels",
    "Kubernetes node labels for a host (guestabi.io/...=true), or the nodeSelector and node "
    "affinity a VM's pin needs",
    "[--host HOSTCAPS | --pin PIN]\n"
    "  --host HOSTCAPS  a host's document; default: this host, probed\n"
    "  --pin PIN        print the pin's nodeSelector and affinity instead",
    run_labels,
};
