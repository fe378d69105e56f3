/* SPDX-License-Identifier: MIT */
/* guestabi pick / check / filter / match: the decisions, with every reason. */

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include <guestabi/util.h>

/* Print a verdict (human or JSON) and map it to an exit code. */
static int report(struct cli *cli, const struct gabi_verdict *v, const char *headline,
                  const char *note)
{
    if (cli->json) {
        if (cli_print_json(gabi_verdict_to_json(v)) != 0)
            return EXIT_BAD_INPUT;
    } else {
        size_t n = gabi_verdict_n_reasons(v);

        printf("%s: %s", headline, gabi_verdict_ok(v) ? "compatible" : "INCOMPATIBLE");
        if (n)
            printf(", %zu reason%s", n, n == 1 ? "" : "s");
        printf("\n");
        if (note)
            printf("  %s\n", note);
        cli_print_verdict(stdout, v);
    }
    return gabi_verdict_ok(v) ? EXIT_COMPATIBLE : EXIT_INCOMPATIBLE;
}

/* The hosts named on the command line, freed as one by hosts_done. */
struct hosts {
    struct gabi_hostcaps **v;
    size_t n;
};

static void hosts_done(struct hosts *h)
{
    if (h->v)
        for (size_t i = 0; i < h->n; i++)
            gabi_hostcaps_free(h->v[i]);
    free(h->v);
}

/* Load the n documents at paths into h: 0, or an exit code (the error printed). */
static int hosts_load(struct cli *cli, char **paths, size_t n, struct hosts *h)
{
    h->v = calloc(n, sizeof(*h->v));
    if (!h->v)
        return cli_errorf(cli, "out of memory");
    h->n = n;
    return cli_load_hosts(cli, paths, n, h->v) < 0 ? EXIT_BAD_INPUT : 0;
}

/* ---- pick --------------------------------------------------------------------------------- */

static int run_pick(struct cli *cli, int argc, char **argv)
{
    _cleanup_(hosts_done) struct hosts hosts = {0};
    _cleanup_(gabi_verdict_freep) struct gabi_verdict *v = NULL;
    char headline[512];
    int first, ex, r;

    first = cli_parse_options(cli, &cli_cmd_pick, argc, argv, NULL, "", NULL, NULL, &ex);
    if (first < 0)
        return ex;
    if (first >= argc)
        return cli_usage_error(cli, &cli_cmd_pick, "name at least one HOSTCAPS document");
    ex = hosts_load(cli, argv + first, (size_t)(argc - first), &hosts);
    if (ex)
        return ex;
    r = gabi_pick(cli->cat, (const struct gabi_hostcaps *const *)hosts.v, hosts.n, &v);
    if (r < 0)
        return cli_errorf(cli, "pick failed: %s", strerror(-r));
    snprintf(headline, sizeof(headline), "Newest ABI common to %zu host%s", hosts.n,
             hosts.n == 1 ? "" : "s");
    return report(cli, v, headline, NULL);
}

/* ---- check and filter ----------------------------------------------------------------------- */

struct check_opts {
    const char *pin, *host, *source, *domain, *xml, *uri;
};

static int check_opt(struct cli *cli, int opt, const char *arg, void *userdata)
{
    struct check_opts *o = userdata;

    (void)cli;
    if (opt == 'p')
        o->pin = arg;
    else if (opt == 'H')
        o->host = arg;
    else if (opt == 'S')
        o->source = arg;
    else if (opt == 'D' || opt == 'X' || opt == 'C') /* a libvirt domain's pin (cmd_pin.c) */
        *(opt == 'D' ? &o->domain : opt == 'X' ? &o->xml : &o->uri) = arg;
    else
        return -1;
    return 0;
}

static const struct option check_options[] = {
    {"pin", required_argument, NULL, 'p'},
    {"host", required_argument, NULL, 'H'},
    {"source", required_argument, NULL, 'S'},
    {"domain", required_argument, NULL, 'D'},
    {"xml", required_argument, NULL, 'X'},
    {"connect", required_argument, NULL, 'C'},
    {NULL, 0, NULL, 0},
};

/* With --source, give a pin that names no platform the source's default. */
static int resolve_source(struct cli *cli, const char *source, struct gabi_pin *pin)
{
    _cleanup_(gabi_hostcaps_freep) struct gabi_hostcaps *src = NULL;
    struct gabi_error err = {0};
    char *srcpath = (char *)source;

    if (!source)
        return 0;
    if (cli_load_hosts(cli, &srcpath, 1, &src) < 0)
        return -1;
    if (gabi_pin_resolve_platform(pin, src, &err) < 0) {
        gabi_strlcpy(err.where, source, sizeof(err.where));
        cli_error(cli, &err);
        return -1;
    }
    return 0;
}

/* Load the pin and, with --source, give it the source's default platform when it names none. */
static int load_pin(struct cli *cli, const char *path, const char *source, struct gabi_pin **ret)
{
    struct gabi_error err = {0};
    _cleanup_(gabi_pin_freep) struct gabi_pin *pin = NULL;

    if (!cli_catalog(cli))
        return -1;
    if (gabi_pin_load_file(cli->cat, path, &pin, &err) < 0) {
        cli_error(cli, &err);
        return -1;
    }
    if (resolve_source(cli, source, pin) < 0)
        return -1;
    *ret = TAKE_PTR(pin);
    return 0;
}

static int run_check(struct cli *cli, int argc, char **argv)
{
    struct check_opts o = {0};
    _cleanup_(gabi_pin_freep) struct gabi_pin *pin = NULL;
    _cleanup_(gabi_hostcaps_freep) struct gabi_hostcaps *host = NULL;
    _cleanup_(gabi_verdict_freep) struct gabi_verdict *v = NULL;
    char headline[512], note[512];
    char *hostpath;
    int first, ex, r;

    first =
        cli_parse_options(cli, &cli_cmd_check, argc, argv, check_options, "", check_opt, &o, &ex);
    if (first < 0)
        return ex;
    if (!!o.pin + !!o.domain + !!o.xml != 1 || !o.host)
        return cli_usage_error(cli, &cli_cmd_check,
                               "--host and one of --pin, --domain, --xml are needed");
    if (first < argc)
        return cli_usage_error(cli, &cli_cmd_check, "unexpected argument \"%s\"", argv[first]);
    if (o.pin ? load_pin(cli, o.pin, o.source, &pin) < 0
              : cli_load_domain_pin(cli, o.xml, o.domain, o.uri, &pin) < 0 ||
                    resolve_source(cli, o.source, pin) < 0)
        return EXIT_BAD_INPUT;
    hostpath = (char *)o.host;
    if (cli_load_hosts(cli, &hostpath, 1, &host) < 0)
        return EXIT_BAD_INPUT;
    r = gabi_check(cli->cat, pin, host, &v);
    if (r < 0)
        return cli_errorf(cli, "check failed: %s", strerror(-r));
    snprintf(headline, sizeof(headline), "VM %s on host %s", gabi_pin_vm(pin),
             gabi_hostcaps_host(host));
    if (gabi_pin_platform_source(pin))
        snprintf(note, sizeof(note),
                 "(the pin names no platform: judged on %s, the default of source host %s)",
                 gabi_pin_platform(pin)->name, gabi_pin_platform_source(pin));
    return report(cli, v, headline, gabi_pin_platform_source(pin) ? note : NULL);
}

static int run_filter(struct cli *cli, int argc, char **argv)
{
    struct check_opts o = {0};
    _cleanup_(gabi_pin_freep) struct gabi_pin *pin = NULL;
    _cleanup_(hosts_done) struct hosts hosts = {0};
    _cleanup_(gabi_fleet_freep) struct gabi_fleet *fleet = NULL;
    _cleanup_free_ size_t *ok = NULL;
    size_t n_ok;
    int first, ex;

    first =
        cli_parse_options(cli, &cli_cmd_filter, argc, argv, check_options, "", check_opt, &o, &ex);
    if (first < 0)
        return ex;
    if (!o.pin)
        return cli_usage_error(cli, &cli_cmd_filter, "--pin is needed");
    if (o.host)
        return cli_usage_error(cli, &cli_cmd_filter, "name the hosts as arguments, not --host");
    if (first >= argc)
        return cli_usage_error(cli, &cli_cmd_filter, "name at least one HOSTCAPS document");
    if (load_pin(cli, o.pin, o.source, &pin) < 0)
        return EXIT_BAD_INPUT;
    /* as before: a host list that cannot be allocated or loaded is bad input */
    if (hosts_load(cli, argv + first, (size_t)(argc - first), &hosts) != 0)
        return EXIT_BAD_INPUT;
    ok = calloc(hosts.n, sizeof(*ok));
    if (!ok ||
        gabi_fleet_new(cli->cat, (const struct gabi_hostcaps *const *)hosts.v, hosts.n, &fleet) < 0)
        return cli_errorf(cli, "out of memory");
    n_ok = gabi_fleet_filter(fleet, pin, ok);
    if (cli->json) {
        json_t *arr = json_array(), *root;

        for (size_t i = 0; i < n_ok; i++)
            json_array_append_new(arr, json_string(gabi_hostcaps_host(hosts.v[ok[i]])));
        root = json_pack("{s:s, s:s, s:o}", "schema", "guestabi.filter/1", "vm", gabi_pin_vm(pin),
                         "hosts", arr);
        cli_print_json(json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER));
        json_decref(root);
    } else {
        for (size_t i = 0; i < n_ok; i++)
            printf("%s\n", gabi_hostcaps_host(hosts.v[ok[i]]));
    }
    if (!n_ok && !cli->json)
        fprintf(stderr, "no host can take VM %s (guestabi check --pin %s --host HOST says why)\n",
                gabi_pin_vm(pin), o.pin);
    return n_ok ? EXIT_COMPATIBLE : EXIT_INCOMPATIBLE;
}

/* ---- match ---------------------------------------------------------------------------------- */

struct match_opts {
    const char *version, *loads, *minimum, *newest, *host, *type, *device;
};

static int match_opt(struct cli *cli, int opt, const char *arg, void *userdata)
{
    struct match_opts *o = userdata;

    switch (opt) {
    case 'v':
        o->version = arg;
        return cli_check_value(cli, &cli_cmd_match, "--version", arg, true);
    case 'l':
        o->loads = arg;
        break;
    case 'm':
        o->minimum = arg;
        return cli_check_value(cli, &cli_cmd_match, "--minimum", arg, true);
    case 'n':
        o->newest = arg;
        return cli_check_value(cli, &cli_cmd_match, "--newest", arg, true);
    case 'H':
        o->host = arg;
        break;
    case 't':
        o->type = arg;
        return cli_check_value(cli, &cli_cmd_match, "--type", arg, false);
    case 'd':
        o->device = arg;
        return cli_check_value(cli, &cli_cmd_match, "--device", arg, false);
    default:
        return -1;
    }
    return 0;
}

static const struct option match_options[] = {
    {"version", required_argument, NULL, 'v'}, {"loads", required_argument, NULL, 'l'},
    {"minimum", required_argument, NULL, 'm'}, {"newest", required_argument, NULL, 'n'},
    {"host", required_argument, NULL, 'H'},    {"type", required_argument, NULL, 't'},
    {"device", required_argument, NULL, 'd'},  {NULL, 0, NULL, 0},
};

static int run_match(struct cli *cli, int argc, char **argv)
{
    struct match_opts o = {0};
    struct gabi_versions dest = {0};
    _cleanup_(gabi_hostcaps_freep) struct gabi_hostcaps *host = NULL;
    _cleanup_(gabi_verdict_freep) struct gabi_verdict *v = NULL;
    _cleanup_free_ char *copy = NULL;
    const char *list[GABI_MAX_VERSIONS];
    char headline[512];
    int first, ex, r, forms;

    first =
        cli_parse_options(cli, &cli_cmd_match, argc, argv, match_options, "", match_opt, &o, &ex);
    if (first < 0)
        return ex;
    if (first < argc)
        return cli_usage_error(cli, &cli_cmd_match, "unexpected argument \"%s\"", argv[first]);
    if (!o.version)
        return cli_usage_error(cli, &cli_cmd_match, "--version (the source's version) is needed");
    forms = !!o.loads + !!(o.minimum || o.newest) + !!(o.host || o.type);
    if (forms != 1)
        return cli_usage_error(cli, &cli_cmd_match,
                               "give the destination's versions one way: --loads LIST, "
                               "--newest V --minimum V, or --host HOSTCAPS --type TYPE");
    if (o.loads) {
        size_t n = 0;

        copy = strdup(o.loads);
        if (!copy)
            return cli_errorf(cli, "out of memory");
        /* split at commas; an empty entry is an empty version, as in a document */
        for (char *next = copy, *tok; (tok = strsep(&next, ","));) {
            tok += strspn(tok, " ");
            tok[strcspn(tok, " ")] = '\0';
            if (n >= GABI_MAX_VERSIONS)
                return cli_usage_error(cli, &cli_cmd_match, "--loads lists more than %u versions",
                                       GABI_MAX_VERSIONS);
            if (cli_check_value(cli, &cli_cmd_match, "--loads", tok, true) < 0)
                return EXIT_BAD_INPUT;
            for (size_t j = 0; j < n; j++)
                if (strcmp(list[j], tok) == 0)
                    return cli_usage_error(cli, &cli_cmd_match,
                                           "--loads: version \"%s\" is listed twice", tok);
            list[n++] = tok;
        }
        if (!n)
            return cli_usage_error(cli, &cli_cmd_match, "--loads lists no version");
        dest.list = list;
        dest.n = n;
    } else if (o.minimum || o.newest) {
        if (!o.minimum || !o.newest)
            return cli_usage_error(cli, &cli_cmd_match, "--newest and --minimum go together");
        if (gabi_version_compare(o.minimum, o.newest) > 0)
            return cli_errorf(cli, "--minimum %s is newer than --newest %s", o.minimum, o.newest);
        dest.version = o.newest;
        dest.minimum = o.minimum;
    } else {
        char *path = (char *)o.host;
        bool found = false;

        if (!o.host || !o.type)
            return cli_usage_error(cli, &cli_cmd_match, "--host and --type go together");
        if (cli_load_hosts(cli, &path, 1, &host) < 0)
            return EXIT_BAD_INPUT;
        for (size_t i = 0; i < gabi_hostcaps_n_device_types(host); i++) {
            const struct gabi_hostcaps_device_type *t = gabi_hostcaps_device_type(host, i);
            if (strcmp(t->name, o.type) == 0) {
                dest = t->loads;
                found = true;
            }
        }
        if (!found)
            return cli_errorf(cli, "%s: host %s has no device type \"%s\"", o.host,
                              gabi_hostcaps_host(host), o.type);
    }
    r = gabi_match(o.device ? o.device : o.type, o.version, &dest,
                   host ? gabi_hostcaps_host(host) : NULL, &v);
    if (r < 0)
        return cli_errorf(cli, "match failed: %s", strerror(-r));
    snprintf(headline, sizeof(headline), "Source state version %s", o.version);
    return report(cli, v, headline, NULL);
}

const struct cli_command cli_cmd_pick = {
    "pick",
    "Pick the newest platform, mode per class and state version per device type that every "
    "host supports",
    "HOSTCAPS...",
    run_pick,
};

const struct cli_command cli_cmd_check = {
    "check",
    "Check a VM's pin against a host: compatible, or every reason it is not",
    "(--pin PIN | --domain NAME [--connect URI] | --xml DOMAIN.xml) --host HOSTCAPS\n"
    "      [--source HOSTCAPS]\n"
    "  --pin PIN          the VM's pin (a guestabi.pin/1 document)\n"
    "  --domain NAME      the pin in a libvirt domain's XML (--connect URI: which libvirt)\n"
    "  --xml DOMAIN.xml   the pin in a domain XML file\n"
    "  --host HOSTCAPS    the destination\n"
    "  --source HOSTCAPS  the host the VM runs on now: a pin without a platform is judged on\n"
    "                     the source's default (its newest runnable platform), which is what\n"
    "                     the VM runs. Without it such a pin is refused if it has a\n"
    "                     virtio-net device.",
    run_check,
};

const struct cli_command cli_cmd_filter = {
    "filter",
    "Print the hosts that can take a VM's pin (the fleet question)",
    "--pin PIN [--source HOSTCAPS] HOSTCAPS...\n"
    "  --source HOSTCAPS  as for check: a pin without a platform takes the source's default",
    run_filter,
};

const struct cli_command cli_cmd_match = {
    "match",
    "Does a destination accept a source's fixed device-state version? (never renegotiated)",
    "--version V (--loads V1,V2,... | --newest V --minimum V | --host HOSTCAPS --type TYPE)\n"
    "         [--device ID]\n"
    "  --version V          the version the source device writes\n"
    "  --loads LIST         the destination loads these versions (comma-separated)\n"
    "  --newest V --minimum V  ... or every version from MINIMUM up to NEWEST\n"
    "  --host H --type T    ... or what device type T on host H loads",
    run_match,
};
