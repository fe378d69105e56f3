/* SPDX-License-Identifier: MIT */
/* guestabi: name, pick and check the device ABI a VM is held to. */

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <guestabi/version.h>

#include "cli.h"

static const struct cli_command *const commands[] = {
    &cli_cmd_modes,     &cli_cmd_platforms, &cli_cmd_device_types, &cli_cmd_pick,
    &cli_cmd_check,     &cli_cmd_filter,    &cli_cmd_match,        &cli_cmd_catalog,
    &cli_cmd_negotiate, &cli_cmd_state,     &cli_cmd_probe,        &cli_cmd_query_platforms,
    &cli_cmd_port,      &cli_cmd_host,      &cli_cmd_placement,    &cli_cmd_labels,
    &cli_cmd_pin,       &cli_cmd_failover,
};

static void print_help(FILE *f, const char *prog)
{
    fprintf(f,
            "Usage: %s [--catalog DIR]... [--json] COMMAND [ARGS]\n"
            "\n"
            "Name the device ABI a VM is held to (compat modes, platforms, device-state\n"
            "versions), pick the newest one a set of hosts share, and check a VM's pin\n"
            "against a destination before migrating, with every reason it cannot work.\n"
            "\n"
            "Commands:\n",
            prog);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-14s %s\n", commands[i]->name, commands[i]->summary);
    fprintf(f, "\n"
               "Options:\n"
               "  --catalog DIR  add the *.json catalog documents in DIR (repeatable)\n"
               "  --json         machine-readable output\n"
               "  --agent SOCK   this host's guestabid (port, host, HOSTCAPS \"@agent\");\n"
               "                 default $GUESTABI_AGENT or /run/guestabi/guestabid.sock\n"
               "  -h, --help     this help; COMMAND --help for a command's own\n"
               "  --version      print the version\n"
               "\n"
               "Exit status: 0 compatible, 1 incompatible, 2 bad input or usage.\n"
               "The catalog is the built-in one, then /etc/guestabi/catalog.d/*.json (or the\n"
               "directory $GUESTABI_SYSTEM_CATALOG names; empty for none), then --catalog.\n");
}

static void print_command_help(FILE *f, const char *prog, const struct cli_command *cmd)
{
    fprintf(f,
            "Usage: %s %s %s\n\n%s\n\nCommon options:\n"
            "  --catalog DIR  add the *.json catalog documents in DIR (repeatable)\n"
            "  --json         machine-readable output\n"
            "  -h, --help     this help\n",
            prog, cmd->name, cmd->usage, cmd->summary);
}

int cli_error(struct cli *cli, const struct gabi_error *err)
{
    char buf[GABI_ERROR_WHERE_MAX + GABI_ERROR_MESSAGE_MAX + 4];

    fprintf(stderr, "%s: error: %s\n", cli->prog, gabi_error_format(err, buf, sizeof(buf)));
    return EXIT_BAD_INPUT;
}

int cli_errorf(struct cli *cli, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: error: ", cli->prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EXIT_BAD_INPUT;
}

int cli_usage_error(struct cli *cli, const struct cli_command *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s %s: ", cli->prog, cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nUsage: %s %s %s\n", cli->prog, cmd->name, cmd->usage);
    return EXIT_BAD_INPUT;
}

int cli_check_value(struct cli *cli, const struct cli_command *cmd, const char *option,
                    const char *value, bool version)
{
    char why[GABI_ERROR_MESSAGE_MAX];

    if ((version ? gabi_version_check(value, why, sizeof(why))
                 : gabi_name_check(value, why, sizeof(why))) == 0)
        return 0;
    cli_usage_error(cli, cmd, "%s \"%s\": %s", option, value, why);
    return -1;
}

int cli_parse_number(struct cli *cli, const struct cli_command *cmd, const char *option,
                     const char *arg, uint32_t min, uint32_t max, uint32_t *ret)
{
    uint64_t v = 0;
    bool digits = *arg != '\0';

    /* decimal as in a JSON document: no sign, no leading zero (strtoul would read "010" as
     * octal 8), no hex */
    for (const char *p = arg; *p && digits; p++)
        digits = *p >= '0' && *p <= '9' && !(p == arg && *p == '0' && p[1]);
    /* stops once past any uint32_t: v then exceeds max */
    for (const char *p = arg; digits && *p && v <= UINT32_MAX; p++)
        v = v * 10 + (uint64_t)(*p - '0');
    if (!digits || v < min || v > max) {
        cli_usage_error(cli, cmd,
                        "%s \"%s\": a whole number from %u to %u, written in decimal "
                        "without a leading zero",
                        option, arg, min, max);
        return -1;
    }
    *ret = (uint32_t)v;
    return 0;
}

static int add_catalog_dir(struct cli *cli, const char *dir)
{
    if (cli->n_catalog_dirs >= CLI_MAX_CATALOG_DIRS)
        return cli_errorf(cli, "at most %d --catalog directories", CLI_MAX_CATALOG_DIRS);
    cli->catalog_dirs[cli->n_catalog_dirs++] = dir;
    return 0;
}

int cli_parse_options(struct cli *cli, const struct cli_command *cmd, int argc, char **argv,
                      const struct option *extra, const char *shortopts,
                      int (*fn)(struct cli *cli, int opt, const char *arg, void *userdata),
                      void *userdata, int *ret_exit)
{
    enum { OPT_JSON = 0x1000, OPT_CATALOG };
    struct option opts[32];
    char so[64];
    size_t n = 0;
    int c;

    opts[n++] = (struct option){"json", no_argument, NULL, OPT_JSON};
    opts[n++] = (struct option){"catalog", required_argument, NULL, OPT_CATALOG};
    opts[n++] = (struct option){"help", no_argument, NULL, 'h'};
    for (const struct option *o = extra; o && o->name && n < 31; o++)
        opts[n++] = *o;
    opts[n] = (struct option){0};
    snprintf(so, sizeof(so), "+h%s", shortopts ? shortopts : "");

    *ret_exit = EXIT_BAD_INPUT;
    optind = 0; /* 0, not 1: GNU getopt then forgets its state from the previous argv */
    opterr = 0;
    while ((c = getopt_long(argc, argv, so, opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            print_command_help(stdout, cli->prog, cmd);
            *ret_exit = 0;
            return -1;
        case OPT_JSON:
            cli->json = true;
            break;
        case OPT_CATALOG:
            if (add_catalog_dir(cli, optarg) != 0)
                return -1;
            break;
        case '?':
            if (optopt)
                cli_usage_error(cli, cmd, "option -%c is unknown or needs an argument", optopt);
            else
                cli_usage_error(cli, cmd, "option %s is unknown or needs an argument",
                                argv[optind - 1]);
            return -1;
        default:
            if (!fn || fn(cli, c, optarg, userdata) < 0)
                return -1;
        }
    }
    return optind;
}

struct gabi_catalog *cli_catalog(struct cli *cli)
{
    struct gabi_error err = {0};

    if (cli->cat)
        return cli->cat;
    if (gabi_catalog_load_default(cli->catalog_dirs, cli->n_catalog_dirs, &cli->cat, &err) < 0) {
        cli_error(cli, &err);
        return NULL;
    }
    return cli->cat;
}

int cli_load_hosts(struct cli *cli, char **paths, size_t n, struct gabi_hostcaps **ret)
{
    struct gabi_catalog *cat = cli_catalog(cli);

    if (!cat)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        struct gabi_error err = {0};

        if (strcmp(paths[i], "@agent") == 0) {
            if (cli_agent_hostcaps(cli, &ret[i]) < 0) {
                for (size_t j = 0; j < i; j++)
                    ret[j] = gabi_hostcaps_free(ret[j]);
                return -EINVAL;
            }
            continue;
        }
        if (gabi_hostcaps_load_file(cat, paths[i], &ret[i], &err) < 0) {
            for (size_t j = 0; j < i; j++)
                ret[j] = gabi_hostcaps_free(ret[j]);
            cli_error(cli, &err);
            return -EINVAL;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"catalog", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"agent", required_argument, NULL, 'A'}, /* this host's guestabid */
        {NULL, 0, NULL, 0},
    };
    struct cli cli = {.prog = "guestabi"};
    const struct cli_command *cmd = NULL;
    int c, r;

    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            cli.json = true;
            break;
        case 'c':
            if (add_catalog_dir(&cli, optarg) != 0)
                return EXIT_BAD_INPUT;
            break;
        case 'h':
            print_help(stdout, cli.prog);
            return 0;
        case 'V':
            printf("guestabi %s\n", GABI_VERSION);
            return 0;
        case 'A':
            cli.agent = optarg;
            break;
        default:
            fprintf(stderr, "%s: unknown option %s\n\n", cli.prog, argv[optind - 1]);
            print_help(stderr, cli.prog);
            return EXIT_BAD_INPUT;
        }
    }
    if (optind >= argc) {
        print_help(stderr, cli.prog);
        return EXIT_BAD_INPUT;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i]->name, argv[optind]) == 0)
            cmd = commands[i];
    if (!cmd) {
        struct gabi_suggest s;
        char hint[256];

        gabi_suggest_init(&s, argv[optind]);
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
            gabi_suggest_add(&s, commands[i]->name);
        fprintf(stderr, "%s: unknown command \"%s\"%s\nRun '%s --help' for the commands.\n",
                cli.prog, argv[optind], gabi_suggest_format(&s, hint, sizeof(hint)), cli.prog);
        return EXIT_BAD_INPUT;
    }
    r = cmd->run(&cli, argc - optind, argv + optind);
    gabi_catalog_free(cli.cat);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "%s: error writing output\n", cli.prog);
        return EXIT_BAD_INPUT;
    }
    return r;
}
