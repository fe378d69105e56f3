/* SPDX-License-Identifier: MIT */
/*
 * guestabi failover: this host's failover VFs through its guestabid (failover.list,
 * failover.reserve, failover.bind, failover.release; docs/rpc.md, docs/failover.md).
 */

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

struct failover_opts {
    const char *device, *reservation, *qmp, *uri;
    uint32_t count, ttl, unplug_ms, timeout_s;
};

enum {
    OPT_DEVICE = 0x200,
    OPT_COUNT,
    OPT_TTL,
    OPT_RESERVATION,
    OPT_QMP,
    OPT_URI,
    OPT_UNPLUG,
    OPT_TIMEOUT
};

static int on_option(struct cli *cli, int opt, const char *arg, void *userdata)
{
    struct failover_opts *o = userdata;

    switch (opt) {
    case OPT_DEVICE:
        o->device = arg;
        return 0;
    case OPT_COUNT:
        return cli_parse_number(cli, &cli_cmd_failover, "--count", arg, 1, 64, &o->count);
    case OPT_TTL:
        return cli_parse_number(cli, &cli_cmd_failover, "--ttl", arg, 1, 86400, &o->ttl);
    case OPT_RESERVATION:
        o->reservation = arg;
        return 0;
    case OPT_QMP:
        o->qmp = arg;
        return 0;
    case OPT_URI:
        o->uri = arg;
        return 0;
    case OPT_UNPLUG:
        return cli_parse_number(cli, &cli_cmd_failover, "--unplug-timeout", arg, 1, 3600000,
                                &o->unplug_ms);
    case OPT_TIMEOUT:
        return cli_parse_number(cli, &cli_cmd_failover, "--timeout", arg, 1, 86400, &o->timeout_s);
    }
    return -1;
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s ? s : "-";
}

static void print_list(json_t *res)
{
    json_t *v;
    size_t i;

    printf("%-14s %-10s %-10s %-10s %-9s %-22s %s\n", "ADDRESS", "DEVICE", "PF", "DRIVER", "STATE",
           "RESERVATION", "VM");
    json_array_foreach (json_object_get(res, "vfs"), i, v)
        printf("%-14s %-10s %-10s %-10s %-9s %-22s %s\n", str(v, "address"), str(v, "device"),
               str(v, "pf"), str(v, "driver"), str(v, "state"), str(v, "reservation"),
               str(v, "vm"));
}

static void print_addresses(const char *what, json_t *res, const char *key)
{
    json_t *a;
    size_t i;

    printf("%s", what);
    json_array_foreach (json_object_get(res, key), i, a)
        printf("%s %s", i ? "," : "", json_string_value(a));
    printf("%s\n", json_array_size(json_object_get(res, key)) ? "" : " none");
}

static int run_failover(struct cli *cli, int argc, char **argv)
{
    static const struct option extra[] = {
        {"device", required_argument, NULL, OPT_DEVICE},
        {"count", required_argument, NULL, OPT_COUNT},
        {"ttl", required_argument, NULL, OPT_TTL},
        {"reservation", required_argument, NULL, OPT_RESERVATION},
        {"qmp", required_argument, NULL, OPT_QMP},
        {"uri", required_argument, NULL, OPT_URI},
        {"unplug-timeout", required_argument, NULL, OPT_UNPLUG},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {NULL, 0, NULL, 0},
    };
    struct failover_opts o = {0};
    const char *sub = argc > 1 ? argv[1] : NULL, *method, *vm;
    json_t *params = NULL, *res = NULL, *err = NULL;
    int first, ex, r;

    if (!sub || sub[0] == '-')
        return cli_usage_error(cli, &cli_cmd_failover, "list, reserve, bind, release or migrate?");
    first = cli_parse_options(cli, &cli_cmd_failover, argc - 1, argv + 1, extra, NULL, on_option,
                              &o, &ex);
    if (first < 0)
        return ex;
    vm = first + 1 < argc ? argv[first + 1] : NULL;
    if (first + 2 < argc)
        return cli_usage_error(cli, &cli_cmd_failover, "unexpected argument \"%s\"",
                               argv[first + 2]);
    if (strcmp(sub, "migrate") == 0) {
        if (vm || !o.qmp || !o.uri)
            return cli_usage_error(cli, &cli_cmd_failover,
                                   "failover migrate needs --qmp SOCK and --uri URI");
        return cli_failover_migrate(cli, o.qmp, o.uri, o.unplug_ms ? o.unplug_ms : 30000,
                                    o.timeout_s ? o.timeout_s : 600);
    }
    if (strcmp(sub, "list") == 0) {
        if (vm || o.device || o.reservation)
            return cli_usage_error(cli, &cli_cmd_failover, "failover list takes no argument");
        method = "failover.list";
    } else if (strcmp(sub, "reserve") == 0) {
        if (!vm || !o.device)
            return cli_usage_error(cli, &cli_cmd_failover,
                                   "failover reserve needs the VM and --device VENDOR:DEVICE");
        method = "failover.reserve";
        params = json_pack("{s:s, s:s}", "vm", vm, "device", o.device);
        if (o.count)
            json_object_set_new(params, "count", json_integer(o.count));
        if (o.ttl)
            json_object_set_new(params, "ttl_s", json_integer(o.ttl));
    } else if (strcmp(sub, "bind") == 0 || strcmp(sub, "release") == 0) {
        if (!vm == !o.reservation)
            return cli_usage_error(cli, &cli_cmd_failover,
                                   "failover %s needs the VM or "
                                   "--reservation ID (one of them)",
                                   sub);
        method = sub[0] == 'b' ? "failover.bind" : "failover.release";
        params =
            vm ? json_pack("{s:s}", "vm", vm) : json_pack("{s:s}", "reservation", o.reservation);
    } else {
        return cli_usage_error(cli, &cli_cmd_failover, "unknown sub-command \"%s\"", sub);
    }
    r = cli_agent_call(cli, method, params, &res, &err);
    if (r < 0)
        return EXIT_BAD_INPUT;
    if (r == 1)
        return cli_agent_error(cli, method, err);
    if (cli->json) {
        ex = cli_print_json(json_dumps(res, JSON_INDENT(2) | JSON_PRESERVE_ORDER));
        json_decref(res);
        return ex;
    }
    if (strcmp(sub, "list") == 0)
        print_list(res);
    else if (strcmp(sub, "reserve") == 0)
        print_addresses(str(res, "reservation"), res, "addresses");
    else if (strcmp(sub, "bind") == 0)
        print_addresses("on vfio-pci:", res, "bound");
    else
        print_addresses("released:", res, "released");
    json_decref(res);
    return 0;
}

const struct cli_command cli_cmd_failover = {
    "failover",
    "Reserve, bind, release and list this host's failover VFs through its guestabid",
    "list | reserve --device VENDOR:DEVICE [--count N] [--ttl SECONDS] VM\n"
    "       failover bind (VM | --reservation ID) | failover release (VM | --reservation ID)\n"
    "  --device ID     the VF's vendor:device, as the probe names it (8086:154c)\n"
    "  --count N       VFs to reserve (1 to 64, default 1)\n"
    "  --ttl SECONDS   a reservation never bound expires after (default: the agent's)\n"
    "  --reservation ID  one reservation instead of all of the VM's\n"
    "       failover migrate --qmp SOCK --uri URI [--unplug-timeout MS] [--timeout S]\n"
    "  --qmp SOCK      the source QEMU's QMP socket\n"
    "  --uri URI       where to migrate (QMP migrate's uri)\n"
    "  --unplug-timeout MS  cancel when the guest has not released its failover primary\n"
    "                  within MS of wait-unplug (default 30000)\n"
    "  --timeout S     cancel when the migration has not ended within S (default 600)\n"
    "Binding puts the VFs on vfio-pci; migrate prints each migration status with its time and\n"
    "exits 1 with the reason when the migration does not complete (docs/failover.md).",
    run_failover,
};
