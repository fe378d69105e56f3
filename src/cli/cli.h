/* SPDX-License-Identifier: MIT */
#pragma once

/* The guestabi command line: shared context, option parsing and output helpers. */

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include <guestabi/abi.h>

/* Exit codes: compatible / incompatible / bad input or usage. */
enum {
    EXIT_COMPATIBLE = 0,
    EXIT_INCOMPATIBLE = 1,
    EXIT_BAD_INPUT = 2,
};

#define CLI_MAX_CATALOG_DIRS 16

struct cli {
    const char *prog;
    bool json;
    const char *catalog_dirs[CLI_MAX_CATALOG_DIRS];
    size_t n_catalog_dirs;
    struct gabi_catalog *cat;
    const char *agent; /* --agent SOCK, or NULL */
};

struct cli_command {
    const char *name;
    const char *summary;
    const char *usage; /* options and arguments, shown by --help */
    int (*run)(struct cli *cli, int argc, char **argv);
};

/* Parse this command's options: the shared --json, --catalog DIR and --help plus `extra`.
 * For each extra option fn(cli, opt, optarg, userdata) is called; it returns < 0 to fail.
 * On success returns optind (first positional). --help prints usage and returns -1 with
 * *ret_exit 0; a usage error prints and returns -1 with *ret_exit 2. */
int cli_parse_options(struct cli *cli, const struct cli_command *cmd, int argc, char **argv,
                      const struct option *extra, const char *shortopts,
                      int (*fn)(struct cli *cli, int opt, const char *arg, void *userdata),
                      void *userdata, int *ret_exit);

/* The catalog (default + system + --catalog), loaded on first use; NULL after reporting. */
struct gabi_catalog *cli_catalog(struct cli *cli);

/* Report a failure with its location; returns EXIT_BAD_INPUT. */
int cli_error(struct cli *cli, const struct gabi_error *err);
int cli_errorf(struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_usage_error(struct cli *cli, const struct cli_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A name or version given on the command line, checked by the rule documents follow
 * (gabi_name_check / gabi_version_check): 0, or -1 after a usage error naming the option. */
int cli_check_value(struct cli *cli, const struct cli_command *cmd, const char *option,
                    const char *value, bool version);

/* A number given on the command line, read as a JSON document's number is: decimal digits,
 * no sign and no leading zero, from min to max. 0, or -1 after a usage error naming the option. */
int cli_parse_number(struct cli *cli, const struct cli_command *cmd, const char *option,
                     const char *arg, uint32_t min, uint32_t max, uint32_t *ret);

/* Human output helpers. */
const char *cli_short_feature(const char *name);
void cli_print_features(FILE *f, const char *label, enum gabi_device_class cls, uint64_t mask);
void cli_print_protocol_features(FILE *f, const char *label, uint64_t mask);
void cli_print_verdict(FILE *f, const struct gabi_verdict *v);
void cli_print_versions(FILE *f, const struct gabi_versions *vs);
/* The platforms document (gabi_platforms_to_json) of those host h runs, with its "host",
 * "kernel" and "default" (the newest runnable platform, what a VM started without one runs)
 * and a "default" flag on each platform. NULL on allocation failure. */
struct json_t;
struct json_t *cli_platforms_json(const struct gabi_catalog *cat, const struct gabi_hostcaps *h,
                                  const struct gabi_platform *const *ps, size_t n);
/* Print a malloc'd JSON text followed by a newline, and free it. */
int cli_print_json(char *text);

/* Load hostcaps files; on failure reports and returns < 0. */
int cli_load_hosts(struct cli *cli, char **paths, size_t n, struct gabi_hostcaps **ret);

extern const struct cli_command cli_cmd_modes, cli_cmd_platforms, cli_cmd_device_types,
    cli_cmd_pick, cli_cmd_check, cli_cmd_filter, cli_cmd_match, cli_cmd_catalog, cli_cmd_negotiate,
    cli_cmd_state;
extern const struct cli_command cli_cmd_probe, cli_cmd_query_platforms;

/* cmd_agent.c: this host's guestabid (--agent SOCK, $GUESTABI_AGENT, or the default socket). */
#include <jansson.h>
extern const struct cli_command cli_cmd_port, cli_cmd_host;
const char *cli_agent_socket(const struct cli *cli);
/* One JSON-RPC call (steals params): 0 and *ret_result, 1 and *ret_error, < 0 reported. */
int cli_agent_call(struct cli *cli, const char *method, json_t *params, json_t **ret_result,
                   json_t **ret_error);
/* Report the agent's error object (stolen) for method; returns EXIT_BAD_INPUT. */
int cli_agent_error(struct cli *cli, const char *method, json_t *err);
extern const struct cli_command cli_cmd_failover; /* cmd_failover.c */
/* qmp_watch.c: migrate over a QMP socket, cancelled past unplug_ms in wait-unplug or past
 * timeout_s; 0 when completed, EXIT_INCOMPATIBLE with the reason on stderr otherwise. */
int cli_failover_migrate(struct cli *cli, const char *qmp_path, const char *uri, unsigned unplug_ms,
                         unsigned timeout_s);
/* The agent's host.caps as hostcaps ("@agent" wherever a HOSTCAPS file is taken). */
int cli_agent_hostcaps(struct cli *cli, struct gabi_hostcaps **ret);
extern const struct cli_command cli_cmd_placement, cli_cmd_labels;
extern const struct cli_command cli_cmd_pin;

/* The pin of a libvirt domain (by name, through libvirt at uri) or of a domain XML file;
 * reports and returns < 0 on failure, also when the domain has no pin. */
int cli_load_domain_pin(struct cli *cli, const char *xml_path, const char *name, const char *uri,
                        struct gabi_pin **ret);
