/* SPDX-License-Identifier: MIT */
/*
 * guestabi port / host: talk to this host's guestabid over its JSON-RPC socket (--agent SOCK,
 * $GUESTABI_AGENT, or /run/guestabi/guestabid.sock), and "@agent" as a HOSTCAPS argument.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include <guestabi/rpc_client.h>
#include <guestabi/util.h>

#define AGENT_DEFAULT "/run/guestabi/guestabid.sock"
#define AGENT_TIMEOUT 30000 /* ms for one call */

const char *cli_agent_socket(const struct cli *cli)
{
    const char *env = getenv("GUESTABI_AGENT");

    if (cli->agent)
        return cli->agent;
    return env && *env ? env : AGENT_DEFAULT;
}

/* One call. 0 with *ret_result, 1 with *ret_error (the agent's error object), or < 0 after
 * reporting (the agent cannot be reached, or answered nonsense). */
int cli_agent_call(struct cli *cli, const char *method, json_t *params, json_t **ret_result,
                   json_t **ret_error)
{
    struct gabi_rpc_client c;
    struct gabi_error err = {0};
    const char *path = cli_agent_socket(cli);
    int r = gabi_rpc_client_open(&c, path, gabi_rpc_now_ms() + AGENT_TIMEOUT, 0, &err);

    if (r < 0) {
        json_decref(params);
        cli_errorf(cli, "cannot reach guestabid at %s: %s (--agent SOCK or $GUESTABI_AGENT)", path,
                   err.message);
        return r;
    }
    r = gabi_rpc_client_call(&c, method, params, ret_result, NULL, ret_error, &err);
    gabi_rpc_client_close(&c);
    if (r == -EREMOTE)
        return 1;
    if (r < 0)
        cli_errorf(cli, "guestabid at %s: %s", path, err.message);
    return r;
}

/* Report an agent's error object; returns EXIT_BAD_INPUT. */
int cli_agent_error(struct cli *cli, const char *method, json_t *err)
{
    json_t *data = json_object_get(err, "data");
    const char *path = json_string_value(json_object_get(data, "path"));
    const char *reason = json_string_value(json_object_get(data, "reason"));

    if (cli->json) {
        char *t = json_dumps(err, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (t)
            fprintf(stderr, "%s\n", t);
        free(t);
    }
    fprintf(stderr, "%s: error: %s: %s%s%s (%" JSON_INTEGER_FORMAT ")\n", cli->prog, method,
            path && *path ? path : "", path && *path ? ": " : "",
            reason ? reason : json_string_value(json_object_get(err, "message")),
            json_integer_value(json_object_get(err, "code")));
    json_decref(err);
    return EXIT_BAD_INPUT;
}

/* Call and print the result as JSON, or return it through *ret for human output. */
static int call(struct cli *cli, const char *method, json_t *params, json_t **ret)
{
    json_t *res = NULL, *err = NULL;
    int r = cli_agent_call(cli, method, params, &res, &err);

    if (r < 0)
        return EXIT_BAD_INPUT;
    if (r == 1)
        return cli_agent_error(cli, method, err);
    *ret = res;
    return 0;
}

/* ---- @agent as a HOSTCAPS argument -------------------------------------------------------- */

int cli_agent_hostcaps(struct cli *cli, struct gabi_hostcaps **ret)
{
    struct gabi_error err = {0};
    json_t *res = NULL;
    char *text, origin[160];
    int r;

    if (call(cli, "host.caps", NULL, &res) != 0)
        return -EIO;
    text = json_dumps(res, JSON_COMPACT);
    json_decref(res);
    if (!text)
        return -ENOMEM;
    snprintf(origin, sizeof(origin), "guestabid at %s", cli_agent_socket(cli));
    r = gabi_hostcaps_parse(cli->cat, origin, text, strlen(text), ret, &err);
    free(text);
    if (r < 0)
        cli_error(cli, &err);
    return r;
}

/* ---- guestabi port ------------------------------------------------------------------------ */

static void print_names(const char *label, json_t *arr)
{
    size_t i, col = 15;
    json_t *v;

    printf("  %-12s", label);
    if (!json_array_size(arr))
        printf(" none");
    json_array_foreach (arr, i, v) {
        const char *s = cli_short_feature(json_string_value(v));

        if (col + strlen(s) + 1 > 100) {
            printf("\n  %-12s", "");
            col = 15;
        }
        printf(" %s", s);
        col += strlen(s) + 1;
    }
    printf("\n");
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "-";
}

static const char *connected_word(json_t *p)
{
    json_t *c = json_object_get(p, "connected");
    return json_is_true(c) ? "yes" : json_is_false(c) ? "no" : "?";
}

static void print_port(json_t *p)
{
    json_t *c = json_object_get(p, "counters"), *v;
    size_t i;

    printf("Port %s (%s)\n", str(p, "id"), str(p, "class"));
    printf("  %-12s %s\n", "mode", str(p, "mode"));
    printf("  %-12s %s\n", "socket", str(p, "socket"));
    {
        char *b = json_dumps(json_object_get(p, "backing"), JSON_COMPACT);
        printf("  %-12s %s\n", "backing", b ? b : "-");
        free(b);
    }
    printf("  %-12s %s, pid %" JSON_INTEGER_FORMAT ", %" JSON_INTEGER_FORMAT " restart%s%s%s\n",
           "back-end", str(p, "state"), json_integer_value(json_object_get(p, "pid")),
           json_integer_value(json_object_get(p, "restarts")),
           json_integer_value(json_object_get(p, "restarts")) == 1 ? "" : "s",
           json_is_string(json_object_get(p, "last_exit")) ? "; last " : "",
           json_is_string(json_object_get(p, "last_exit")) ? str(p, "last_exit") : "");
    printf("  %-12s %s (%" JSON_INTEGER_FORMAT " connection%s so far)\n", "front-end",
           connected_word(p), json_integer_value(json_object_get(p, "connections")),
           json_integer_value(json_object_get(p, "connections")) == 1 ? "" : "s");
    if (json_is_string(json_object_get(p, "last_error")))
        printf("  %-12s %s\n", "last close", str(p, "last_error"));
    if (!json_is_array(json_object_get(p, "features")))
        return; /* not known (yet): a virtio-blk port, or a back-end that did not answer */
    if (json_is_true(json_object_get(p, "connected"))) {
        print_names("features", json_object_get(p, "features"));
        print_names("protocol", json_object_get(p, "protocol_features"));
        bool net = strcmp(str(p, "class"), "virtio-net") == 0;
        json_int_t nq = json_integer_value(json_object_get(p, "queue_pairs"));

        printf("  %-12s %" JSON_INTEGER_FORMAT " %s%s, rings of", "queues", nq,
               net ? "pair" : "queue", nq == 1 ? "" : "s");
        json_array_foreach (json_object_get(p, "ring_sizes"), i, v)
            printf("%s %" JSON_INTEGER_FORMAT, i ? "," : "", json_integer_value(v));
        printf("%s\n", json_array_size(json_object_get(p, "ring_sizes")) ? "" : " -");
    }
    if (json_is_object(c)) {
        /* virtio-blk counts requests, virtio-net packets (rx: to the guest, tx: from it) */
        bool blk = json_object_get(c, "reads") != NULL;
        const char *k[4] = {"rx_packets", "rx_bytes", "tx_packets", "tx_bytes"};

        if (blk) {
            k[0] = "reads", k[1] = "bytes_read", k[2] = "writes", k[3] = "bytes_written";
        }
        printf("  %-12s %s%" JSON_INTEGER_FORMAT " %s %" JSON_INTEGER_FORMAT
               " bytes, %s%" JSON_INTEGER_FORMAT " %s %" JSON_INTEGER_FORMAT " bytes\n",
               "counters", blk ? "" : "rx ", json_integer_value(json_object_get(c, k[0])),
               blk ? "reads" : "packets", json_integer_value(json_object_get(c, k[1])),
               blk ? "" : "tx ", json_integer_value(json_object_get(c, k[2])),
               blk ? "writes" : "packets", json_integer_value(json_object_get(c, k[3])));
    }
    if (json_is_object(json_object_get(p, "state_transfer"))) {
        json_t *st = json_object_get(p, "state_transfer");
        printf("  %-12s %s %s\n", "state", str(st, "direction"), str(st, "outcome"));
    }
}

struct port_opts {
    const char *cls, *socket, *mode, *tap, *disk, *ram;
    bool loopback, refresh;
};

static int port_opt(struct cli *cli, int opt, const char *arg, void *userdata)
{
    struct port_opts *o = userdata;

    (void)cli;
    switch (opt) {
    case 'C':
        o->cls = arg;
        break;
    case 'S':
        o->socket = arg;
        break;
    case 'm':
        o->mode = arg;
        break;
    case 't':
        o->tap = arg;
        break;
    case 'd':
        o->disk = arg;
        break;
    case 'R':
        o->ram = arg;
        break;
    case 'l':
        o->loopback = true;
        break;
    case 'r':
        o->refresh = true;
        break;
    default:
        return -1;
    }
    return 0;
}

static const struct option port_options[] = {
    {"class", required_argument, NULL, 'C'}, {"socket", required_argument, NULL, 'S'},
    {"mode", required_argument, NULL, 'm'},  {"tap", required_argument, NULL, 't'},
    {"disk", required_argument, NULL, 'd'},  {"ram", required_argument, NULL, 'R'},
    {"loopback", no_argument, NULL, 'l'},    {NULL, 0, NULL, 0},
};

static json_t *backing_of(struct cli *cli, const struct port_opts *o)
{
    uint64_t v;

    if (!!o->tap + !!o->disk + !!o->ram + o->loopback != 1) {
        cli_usage_error(cli, &cli_cmd_port,
                        "give one backing: --tap NAME, --loopback, --disk PATH or --ram BYTES");
        return NULL;
    }
    if (o->tap)
        return json_pack("{s:s}", "tap", o->tap);
    if (o->loopback)
        return json_pack("{s:b}", "loopback", 1);
    if (o->disk)
        return json_pack("{s:s}", "disk", o->disk);
    if (gabi_parse_u64(o->ram, &v) < 0 || v > INT64_MAX) {
        cli_errorf(cli, "--ram wants a size in bytes");
        return NULL;
    }
    return json_pack("{s:I}", "ram", (json_int_t)v);
}

static int print_result(struct cli *cli, json_t *res)
{
    int ex = cli_print_json(json_dumps(res, JSON_INDENT(2) | JSON_PRESERVE_ORDER));
    json_decref(res);
    return ex;
}

/* "CMD SUB [ID] [OPTIONS]": SUB and ID are taken out of argv (options may come before or after
 * them), then the options are parsed. Returns the first argument left, or -1 with *ret_exit. */
static int take_positionals(struct cli *cli, const struct cli_command *cmd, int *argc, char **argv,
                            const char **ret[], size_t n_ret, const struct option *opts,
                            struct port_opts *o, int *ret_exit)
{
    size_t got = 0;
    int first, w = 1;

    for (int i = 1; i < *argc; i++) {
        if (argv[i][0] != '-' && got < n_ret) {
            const struct option *op = NULL;
            const char *prev = argv[i - 1];

            /* not the value of the option before it */
            for (const struct option *x = opts; x && x->name && i > 1; x++)
                if (x->has_arg == required_argument && prev[0] == '-' && prev[1] == '-' &&
                    strcmp(prev + 2, x->name) == 0)
                    op = x;
            if (!op) {
                *ret[got++] = argv[i];
                continue;
            }
        }
        argv[w++] = argv[i];
    }
    *argc = w;
    first = cli_parse_options(cli, cmd, *argc, argv, opts, "", port_opt, o, ret_exit);
    if (first >= 0 && first < *argc) {
        *ret_exit = cli_usage_error(cli, cmd, "unexpected argument \"%s\"", argv[first]);
        return -1;
    }
    return first;
}

static int run_port(struct cli *cli, int argc, char **argv)
{
    struct port_opts o = {0};
    json_t *res = NULL, *params;
    const char *sub = NULL, *id = NULL, **pos[] = {&sub, &id};
    int ex;

    if (take_positionals(cli, &cli_cmd_port, &argc, argv, pos, 2, port_options, &o, &ex) < 0)
        return ex;
    if (!sub)
        return cli_usage_error(cli, &cli_cmd_port, "add, del, list or show?");
    if (strcmp(sub, "list") == 0) {
        size_t i;
        json_t *p;

        if (id)
            return cli_usage_error(cli, &cli_cmd_port, "port list takes no argument");
        if ((ex = call(cli, "port.list", NULL, &res)) != 0)
            return ex;
        if (cli->json)
            return print_result(cli, res);
        printf("%-16s %-10s %-28s %-10s %-9s %s\n", "ID", "CLASS", "MODE", "STATE", "FRONT-END",
               "SOCKET");
        json_array_foreach (json_object_get(res, "ports"), i, p)
            printf("%-16s %-10s %-28s %-10s %-9s %s\n", str(p, "id"), str(p, "class"),
                   str(p, "mode"), str(p, "state"), connected_word(p), str(p, "socket"));
        json_array_foreach (json_object_get(res, "ports"), i, p)
            if (json_is_true(json_object_get(p, "connected"))) {
                printf("\n");
                print_port(p);
            }
        json_decref(res);
        return 0;
    }
    if (!id)
        return cli_usage_error(cli, &cli_cmd_port, "port %s needs the port's ID", sub);
    if (strcmp(sub, "add") == 0) {
        json_t *backing;

        if (!o.cls || !o.socket)
            return cli_usage_error(cli, &cli_cmd_port, "port add needs --class and --socket");
        if (!(backing = backing_of(cli, &o)))
            return EXIT_BAD_INPUT;
        params = json_pack("{s:s, s:s, s:s, s:o}", "id", id, "class", o.cls, "socket", o.socket,
                           "backing", backing);
        if (o.mode)
            json_object_set_new(params, "mode", json_string(o.mode));
        if ((ex = call(cli, "port.add", params, &res)) != 0)
            return ex;
    } else if (strcmp(sub, "del") == 0 || strcmp(sub, "show") == 0) {
        bool del = strcmp(sub, "del") == 0;

        if ((ex = call(cli, del ? "port.del" : "port.get", json_pack("{s:s}", "id", id), &res)) !=
            0)
            return ex;
        if (del && !cli->json) {
            printf("Port %s deleted\n", id);
            json_decref(res);
            return 0;
        }
    } else {
        return cli_usage_error(cli, &cli_cmd_port, "unknown sub-command \"%s\"", sub);
    }
    if (cli->json)
        return print_result(cli, res);
    print_port(res);
    json_decref(res);
    return 0;
}

/* ---- guestabi host ------------------------------------------------------------------------ */

static const struct option host_options[] = {
    {"refresh", no_argument, NULL, 'r'},
    {NULL, 0, NULL, 0},
};

static int run_host(struct cli *cli, int argc, char **argv)
{
    struct port_opts o = {0};
    json_t *res = NULL, *b;
    const char *sub = NULL, **pos[] = {&sub};
    size_t i;
    int ex;

    if (take_positionals(cli, &cli_cmd_host, &argc, argv, pos, 1, host_options, &o, &ex) < 0)
        return ex;
    if (!sub || strcmp(sub, "caps") != 0)
        return cli_usage_error(cli, &cli_cmd_host, "the sub-command is caps");
    if ((ex = call(cli, "host.caps", o.refresh ? json_pack("{s:b}", "refresh", 1) : NULL, &res)) !=
        0)
        return ex;
    if (cli->json)
        return print_result(cli, res);
    printf("Host %s (kernel %s), from guestabid at %s\n", str(res, "host"),
           str(json_object_get(res, "kernel"), "release"), cli_agent_socket(cli));
    json_array_foreach (json_object_get(res, "backends"), i, b) {
        json_t *m;
        size_t k;

        printf("  %s (%s) runs:", str(b, "name"), str(b, "class"));
        json_array_foreach (json_object_get(b, "modes"), k, m)
            printf("%s %s", k ? "," : "", json_string_value(m) ? json_string_value(m) : "?");
        printf("\n");
    }
    json_decref(res);
    return 0;
}

const struct cli_command cli_cmd_port = {
    "port",
    "Add, delete, list and show the vhost-user ports of this host's guestabid",
    "add ID --class CLASS --socket PATH [--mode MODE] (--tap NAME | --loopback |\n"
    "                --disk PATH | --ram BYTES)\n"
    "       port del ID | port list | port show ID\n"
    "  --class CLASS   virtio-net or virtio-blk\n"
    "  --socket PATH   the vhost-user socket the port listens on (QEMU connects to it)\n"
    "  --mode MODE     the compat mode (default: the newest this host runs)\n"
    "  --tap NAME, --loopback        a virtio-net port's backing\n"
    "  --disk PATH, --ram BYTES      a virtio-blk port's backing\n"
    "The agent is --agent SOCK (before the command), $GUESTABI_AGENT or " AGENT_DEFAULT ".",
    run_port,
};

const struct cli_command cli_cmd_host = {
    "host",
    "This host's capabilities as its guestabid probed them (host caps)",
    "caps [--refresh]\n"
    "  --refresh       probe again\n"
    "Other commands take the agent's host document as HOSTCAPS argument \"@agent\"\n"
    "(e.g. guestabi check --pin vm.json --host @agent).",
    run_host,
};
