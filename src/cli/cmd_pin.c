/* SPDX-License-Identifier: MIT */
/*
 * guestabi pin: the pin in a libvirt domain's <metadata>, written and read through libvirt's C
 * API (virDomainSetMetadata, live and config); and the domain's pin for `check`.
 */

#include <dlfcn.h>
#include <errno.h>
#include <jansson.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdlib.h>
#include <string.h>

#include <guestabi/libvirt.h>

#include "cli.h"

#define MAX_ALIASES 64

/*
 * libvirt's C API, loaded when a command needs it: linking libvirt would make every guestabi
 * command load libvirt and its ~50 libraries at start (60 ms here, for `guestabi --version`).
 */
#define LIBVIRT_FUNCTIONS(X)                                                                       \
    X(virConnectClose)                                                                             \
    X(virConnectOpen)                                                                              \
    X(virDomainFree)                                                                               \
    X(virDomainGetXMLDesc)                                                                         \
    X(virDomainIsActive)                                                                           \
    X(virDomainIsPersistent)                                                                       \
    X(virDomainLookupByName)                                                                       \
    X(virDomainSetMetadata)                                                                        \
    X(virGetLastErrorMessage)                                                                      \
    X(virSetErrorFunc)

static struct {
    void *handle;
#define FIELD(name) __typeof__(name) *name;
    LIBVIRT_FUNCTIONS(FIELD)
#undef FIELD
} lv_api;

static int lv_load(struct cli *cli)
{
    const char *missing = NULL;

    if (lv_api.handle)
        return 0;
    lv_api.handle = dlopen("libvirt.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!lv_api.handle)
        return cli_errorf(cli, "cannot load libvirt's library (Debian: libvirt0): %s", dlerror()),
               -1;
#define LOAD(name)                                                                                 \
    lv_api.name = (__typeof__(lv_api.name))dlsym(lv_api.handle, #name);                            \
    if (!lv_api.name && !missing)                                                                  \
        missing = #name;
    LIBVIRT_FUNCTIONS(LOAD)
#undef LOAD
    if (missing) {
        cli_errorf(cli, "libvirt.so.0 has no %s", missing);
        dlclose(lv_api.handle);
        lv_api.handle = NULL;
        return -1;
    }
    return 0;
}

/* libvirt prints its errors by default; guestabi reports them itself. */
static void libvirt_quiet(void *userdata, virErrorPtr err)
{
    (void)userdata;
    (void)err;
}

static const char *libvirt_reason(void)
{
    const char *m = lv_api.virGetLastErrorMessage();

    return m ? m : "unknown libvirt error";
}

struct lv {
    virConnectPtr conn;
    virDomainPtr dom;
};

static void lv_close(struct lv *lv)
{
    if (lv->dom)
        lv_api.virDomainFree(lv->dom);
    if (lv->conn)
        lv_api.virConnectClose(lv->conn);
    lv->dom = NULL;
    lv->conn = NULL;
}

static int lv_open(struct cli *cli, const char *uri, const char *name, struct lv *lv)
{
    if (lv_load(cli) < 0)
        return -1;
    lv_api.virSetErrorFunc(NULL, libvirt_quiet);
    lv->conn = lv_api.virConnectOpen(uri);
    if (!lv->conn) {
        cli_errorf(cli, "cannot connect to libvirt%s%s: %s", uri ? " at " : "", uri ? uri : "",
                   libvirt_reason());
        return -1;
    }
    lv->dom = lv_api.virDomainLookupByName(lv->conn, name);
    if (!lv->dom) {
        cli_errorf(cli, "no domain %s: %s", name, libvirt_reason());
        lv_close(lv);
        return -1;
    }
    return 0;
}

/* The domain (from libvirt or a file), parsed. */
static int load_domain(struct cli *cli, const char *xml_path, const char *name, const char *uri,
                       struct lv *lv, struct gabi_domain **ret)
{
    struct gabi_error err = {0};
    char *xml;
    int r;

    if (!cli_catalog(cli))
        return -1;
    if (xml_path) {
        if (gabi_domain_load_file(cli->cat, xml_path, ret, &err) < 0) {
            cli_error(cli, &err);
            return -1;
        }
        return 0;
    }
    if (lv_open(cli, uri, name, lv) < 0)
        return -1;
    xml = lv_api.virDomainGetXMLDesc(lv->dom, 0);
    if (!xml) {
        cli_errorf(cli, "domain %s: cannot read its XML: %s", name, libvirt_reason());
        return -1;
    }
    {
        char origin[256];

        snprintf(origin, sizeof(origin), "domain %s", name);
        r = gabi_domain_parse(cli->cat, origin, xml, strlen(xml), ret, &err);
    }
    free(xml);
    if (r < 0) {
        cli_error(cli, &err);
        return -1;
    }
    return 0;
}

int cli_load_domain_pin(struct cli *cli, const char *xml_path, const char *name, const char *uri,
                        struct gabi_pin **ret)
{
    struct lv lv = {0};
    struct gabi_domain *d = NULL;
    struct gabi_error err = {0};
    char *text;
    int r = load_domain(cli, xml_path, name, uri, &lv, &d);

    lv_close(&lv);
    if (r < 0)
        return -1;
    if (!gabi_domain_pin(d)) {
        cli_errorf(cli,
                   "domain %s has no guestabi pin (guestabi pin --domain %s --pin FILE "
                   "gives it one)",
                   gabi_domain_name(d), gabi_domain_name(d));
        gabi_domain_free(d);
        return -1;
    }
    text = gabi_pin_to_json(gabi_domain_pin(d));
    r = text ? gabi_pin_parse(cli->cat, gabi_domain_name(d), text, strlen(text), ret, &err)
             : -ENOMEM;
    free(text);
    gabi_domain_free(d);
    if (r < 0) {
        cli_error(cli, &err);
        return -1;
    }
    return 0;
}

/* ---- pin ------------------------------------------------------------------------------------ */

struct pin_opts {
    const char *domain, *pin, *uri, *xml;
    bool pick, show;
    const char *alias_ids[MAX_ALIASES], *alias_names[MAX_ALIASES];
    size_t n_aliases;
    char *alias_buf[MAX_ALIASES];
};

static int pin_opt(struct cli *cli, int opt, const char *arg, void *userdata)
{
    struct pin_opts *o = userdata;
    char *eq;

    switch (opt) {
    case 'd':
        o->domain = arg;
        break;
    case 'p':
        o->pin = arg;
        break;
    case 'c':
        o->uri = arg;
        break;
    case 'x':
        o->xml = arg;
        break;
    case 'k':
        o->pick = true;
        break;
    case 's':
        o->show = true;
        break;
    case 'a':
        if (o->n_aliases >= MAX_ALIASES)
            return cli_usage_error(cli, &cli_cmd_pin, "at most %d --alias", MAX_ALIASES), -1;
        o->alias_buf[o->n_aliases] = strdup(arg);
        if (!o->alias_buf[o->n_aliases])
            return -1;
        eq = strchr(o->alias_buf[o->n_aliases], '=');
        if (!eq || eq == o->alias_buf[o->n_aliases] || !eq[1]) {
            free(o->alias_buf[o->n_aliases]);
            return cli_usage_error(cli, &cli_cmd_pin, "--alias takes ID=ALIAS, not \"%s\"", arg),
                   -1;
        }
        *eq = '\0';
        o->alias_ids[o->n_aliases] = o->alias_buf[o->n_aliases];
        o->alias_names[o->n_aliases++] = eq + 1;
        break;
    default:
        return -1;
    }
    return 0;
}

static void show_pin(struct cli *cli, const struct gabi_domain *d)
{
    const struct gabi_pin *pin = gabi_domain_pin(d);

    if (cli->json) {
        cli_print_json(gabi_pin_to_json(pin));
        return;
    }
    printf("Domain %s is pinned to platform %s\n", gabi_domain_name(d),
           gabi_pin_platform(pin) ? gabi_pin_platform(pin)->name : "(any)");
    for (size_t i = 0; i < gabi_pin_n_devices(pin); i++) {
        const struct gabi_pin_device *pd = gabi_pin_device(pin, i);
        const struct gabi_domain_device *t = gabi_domain_pin_target(d, i);

        printf("  %-10s %-10s %s", pd->id, gabi_class_name(pd->cls),
               pd->mode ? pd->mode->name : pd->type);
        if (pd->state_version)
            printf(" state %s", pd->state_version);
        if (pd->failover_primary)
            printf(" failover standby of %s (%s)", pd->failover_primary, pd->failover_device);
        if (t)
            printf("  <- %s%s%s", t->alias, t->socket ? " at " : "", t->socket ? t->socket : "");
        printf("\n");
    }
}

/* The reasons of a verdict about `subject` (a device class, or "platform" for the key). */
static void print_reasons(const struct gabi_verdict *v, const char *subject)
{
    for (size_t i = 0; i < gabi_verdict_n_reasons(v); i++) {
        const struct gabi_reason *rs = gabi_verdict_reason(v, i);

        if (strcmp(rs->device, subject) == 0 || strcmp(rs->key, subject) == 0)
            fprintf(stderr, "  - %s\n", rs->message);
    }
}

/* A pin from `pick` over hosts: the platform chosen, and per vhost-user device of the domain
 * a device named after its alias ("ua-net0" -> "net0") in the mode chosen for its class. */
static int pin_from_pick(struct cli *cli, struct gabi_domain *d, char **paths, size_t n,
                         struct gabi_pin **ret, const char ***ret_aliases)
{
    struct gabi_hostcaps **hosts = calloc(n, sizeof(*hosts));
    struct gabi_verdict *v = NULL;
    const char **aliases = NULL;
    json_t *doc = NULL, *arr;
    struct gabi_error err = {0};
    char *text = NULL;
    int r = -1;

    if (!hosts || cli_load_hosts(cli, paths, n, hosts) < 0) {
        free(hosts);
        return -1;
    }
    if (gabi_pick(cli->cat, (const struct gabi_hostcaps *const *)hosts, n, &v) < 0) {
        cli_errorf(cli, "pick failed");
        goto out;
    }
    aliases = calloc(gabi_domain_n_devices(d) + 1, sizeof(*aliases));
    doc = json_pack("{s:s, s:s}", "schema", GABI_SCHEMA_PIN, "vm", gabi_domain_name(d));
    arr = json_array();
    json_object_set_new(doc, "devices", arr);
    if (!aliases || !doc) {
        cli_errorf(cli, "out of memory");
        goto out;
    }
    /* only what this domain uses must be common: its platform and its devices' classes (a
     * class no host runs, or device types it does not have, do not matter) */
    for (size_t i = 0; i < gabi_verdict_n_choices(v); i++) {
        const struct gabi_choice *c = gabi_verdict_choice(v, i);

        if (strcmp(c->key, "platform") == 0 && c->value)
            json_object_set_new(doc, "platform", json_string(c->value));
        else if (strcmp(c->key, "platform") == 0) {
            fprintf(stderr, "%s: these hosts share no platform:\n", cli->prog);
            print_reasons(v, "platform");
            r = -2;
            goto out;
        }
    }
    for (size_t i = 0; i < gabi_domain_n_devices(d); i++) {
        const struct gabi_domain_device *dev = gabi_domain_device(d, i);
        const char *mode = NULL, *id = dev->alias;

        if (dev->cls == GABI_CLASS_NONE)
            continue;
        for (size_t j = 0; j < gabi_verdict_n_choices(v); j++) {
            const struct gabi_choice *c = gabi_verdict_choice(v, j);

            if (strcmp(c->subject, gabi_class_name(dev->cls)) == 0 && strcmp(c->key, "mode") == 0)
                mode = c->value;
        }
        if (!mode) {
            fprintf(stderr,
                    "%s: no %s mode is common to these hosts, which %s of domain %s "
                    "needs:\n",
                    cli->prog, gabi_class_name(dev->cls), dev->alias, gabi_domain_name(d));
            print_reasons(v, gabi_class_name(dev->cls));
            r = -2;
            goto out;
        }
        if (strncmp(id, "ua-", 3) == 0)
            id += 3;
        aliases[json_array_size(arr)] = dev->alias;
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "id", id, "class",
                                             gabi_class_name(dev->cls), "mode", mode));
    }
    if (!json_array_size(arr)) {
        cli_errorf(cli,
                   "domain %s has no vhost-user interface or disk with an alias "
                   "(<alias name='ua-...'/>) to pin",
                   gabi_domain_name(d));
        goto out;
    }
    text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text || gabi_pin_parse(cli->cat, "pick", text, strlen(text), ret, &err) < 0) {
        cli_error(cli, &err);
        goto out;
    }
    *ret_aliases = aliases;
    aliases = NULL;
    r = 0;
out:
    free(text);
    json_decref(doc);
    free(aliases);
    gabi_verdict_free(v);
    for (size_t i = 0; i < n; i++)
        gabi_hostcaps_free(hosts[i]);
    free(hosts);
    return r;
}

static int write_pin(struct cli *cli, struct lv *lv, const struct gabi_domain *d)
{
    unsigned flags = VIR_DOMAIN_AFFECT_CONFIG;
    char *xml = gabi_domain_pin_to_xml(d, true);
    int active = lv_api.virDomainIsActive(lv->dom),
        persistent = lv_api.virDomainIsPersistent(lv->dom);

    if (!xml)
        return cli_errorf(cli, "out of memory"), -1;
    if (active < 0 || persistent < 0) {
        free(xml);
        return cli_errorf(cli, "domain %s: %s", gabi_domain_name(d), libvirt_reason()), -1;
    }
    if (active)
        flags =
            persistent ? VIR_DOMAIN_AFFECT_LIVE | VIR_DOMAIN_AFFECT_CONFIG : VIR_DOMAIN_AFFECT_LIVE;
    if (lv_api.virDomainSetMetadata(lv->dom, VIR_DOMAIN_METADATA_ELEMENT, xml,
                                    GABI_LIBVIRT_PIN_PREFIX, GABI_LIBVIRT_PIN_NS, flags) < 0) {
        cli_errorf(cli, "domain %s: cannot write the pin: %s", gabi_domain_name(d),
                   libvirt_reason());
        free(xml);
        return -1;
    }
    free(xml);
    return 0;
}

static int run_pin(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"domain", required_argument, NULL, 'd'},  {"pin", required_argument, NULL, 'p'},
        {"connect", required_argument, NULL, 'c'}, {"pick", no_argument, NULL, 'k'},
        {"show", no_argument, NULL, 's'},          {"alias", required_argument, NULL, 'a'},
        {"xml", required_argument, NULL, 'x'},     {NULL, 0, NULL, 0},
    };
    struct pin_opts o = {0};
    struct lv lv = {0};
    struct gabi_domain *d = NULL;
    struct gabi_pin *pin = NULL;
    struct gabi_error err = {0};
    const char **aliases = NULL;
    int first, ex = EXIT_BAD_INPUT, r;

    first = cli_parse_options(cli, &cli_cmd_pin, argc, argv, opts, "", pin_opt, &o, &ex);
    if (first < 0)
        goto out;
    ex = EXIT_BAD_INPUT;
    if (!o.domain == !o.xml) {
        ex = cli_usage_error(cli, &cli_cmd_pin,
                             "name the domain: --domain NAME (or --xml FILE "
                             "with --show)");
        goto out;
    }
    if (o.xml && !o.show) {
        ex = cli_usage_error(cli, &cli_cmd_pin, "--xml only shows; --domain writes");
        goto out;
    }
    if (o.show + !!o.pin + o.pick != 1) {
        ex = cli_usage_error(cli, &cli_cmd_pin,
                             "give exactly one of --show, --pin FILE, "
                             "--pick HOSTCAPS...");
        goto out;
    }
    if (!o.pick && first < argc) {
        ex = cli_usage_error(cli, &cli_cmd_pin, "unexpected argument \"%s\"", argv[first]);
        goto out;
    }
    if (o.pick && first >= argc) {
        ex = cli_usage_error(cli, &cli_cmd_pin, "--pick needs at least one HOSTCAPS document");
        goto out;
    }
    for (int i = first; i < argc; i++)
        if (strncmp(argv[i], "--", 2) == 0) {
            ex = cli_usage_error(cli, &cli_cmd_pin,
                                 "%s after the HOSTCAPS arguments: options "
                                 "go before them",
                                 argv[i]);
            goto out;
        }
    if (load_domain(cli, o.xml, o.domain, o.uri, &lv, &d) < 0)
        goto out;
    if (o.show) {
        if (!gabi_domain_pin(d)) {
            fprintf(stderr, "%s: domain %s has no guestabi pin\n", cli->prog, gabi_domain_name(d));
            ex = EXIT_INCOMPATIBLE;
            goto out;
        }
        show_pin(cli, d);
        ex = 0;
        goto out;
    }
    if (o.pin) {
        size_t n;

        if (gabi_pin_load_file(cli->cat, o.pin, &pin, &err) < 0) {
            ex = cli_error(cli, &err);
            goto out;
        }
        n = gabi_pin_n_devices(pin);
        aliases = calloc(n + 1, sizeof(*aliases));
        if (!aliases) {
            ex = cli_errorf(cli, "out of memory");
            goto out;
        }
        for (size_t k = 0; k < o.n_aliases; k++) {
            bool found = false;

            for (size_t i = 0; i < n; i++)
                if (strcmp(gabi_pin_device(pin, i)->id, o.alias_ids[k]) == 0) {
                    aliases[i] = o.alias_names[k];
                    found = true;
                }
            if (!found) {
                ex = cli_errorf(cli, "--alias %s=%s: the pin has no device %s", o.alias_ids[k],
                                o.alias_names[k], o.alias_ids[k]);
                goto out;
            }
        }
    } else {
        r = pin_from_pick(cli, d, argv + first, (size_t)(argc - first), &pin, &aliases);
        if (r < 0) {
            ex = r == -2 ? EXIT_INCOMPATIBLE : EXIT_BAD_INPUT;
            goto out;
        }
    }
    r = gabi_domain_set_pin(d, pin, aliases, &err);
    pin = NULL; /* taken */
    if (r < 0) {
        ex = cli_error(cli, &err);
        goto out;
    }
    if (write_pin(cli, &lv, d) < 0)
        goto out;
    if (!cli->json)
        printf("Pinned domain %s:\n", gabi_domain_name(d));
    show_pin(cli, d);
    ex = 0;
out:
    for (size_t k = 0; k < o.n_aliases; k++)
        free(o.alias_buf[k]);
    free(aliases);
    gabi_pin_free(pin);
    gabi_domain_free(d);
    lv_close(&lv);
    return ex;
}

const struct cli_command cli_cmd_pin = {
    "pin",
    "Write or show the pin in a libvirt domain's XML (<metadata>, urn:guestabi:pin:1)",
    "--domain NAME [--connect URI] (--pin FILE [--alias ID=ALIAS]... | --show |\n"
    "         --pick HOSTCAPS...) | --xml FILE --show\n"
    "  --pin FILE       pin the domain to a guestabi.pin/1 document; device ID describes the\n"
    "                   domain device with alias ua-ID unless --alias ID=ALIAS says otherwise\n"
    "  --pick HOSTCAPS  pin it to the newest ABI these hosts share: every vhost-user interface\n"
    "                   and disk with an alias ua-ID becomes pin device ID\n"
    "  --show           print the domain's pin (--json: as a guestabi.pin/1 document)\n"
    "  --connect URI    libvirt connection (default: libvirt's own default)\n"
    "  --xml FILE       read a domain XML file instead of asking libvirt\n"
    "The pin is written live and to the persistent configuration (virDomainSetMetadata).",
    run_pin,
};
