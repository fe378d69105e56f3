/* SPDX-License-Identifier: MIT */
/* guestabi catalog validate DIR...: check catalog documents before installing them. */

#include <string.h>

#include "cli.h"

static int run_catalog(struct cli *cli, int argc, char **argv)
{
    struct gabi_catalog *cat;
    struct gabi_error err = {0};
    int first, ex, r;

    first = cli_parse_options(cli, &cli_cmd_catalog, argc, argv, NULL, "", NULL, NULL, &ex);
    if (first < 0)
        return ex;
    if (first >= argc || strcmp(argv[first], "validate") != 0)
        return cli_usage_error(cli, &cli_cmd_catalog, "the subcommand is \"validate\"");
    if (first + 1 >= argc)
        return cli_usage_error(cli, &cli_cmd_catalog, "name at least one catalog directory");
    /* The directories are validated on top of the built-in catalog, as they would be used. */
    cat = gabi_catalog_new();
    if (!cat)
        return cli_errorf(cli, "out of memory");
    r = gabi_catalog_add_builtin(cat, &err);
    for (int i = first + 1; r >= 0 && i < argc; i++)
        r = gabi_catalog_add_dir(cat, 2, argv[i], &err);
    if (r >= 0)
        r = gabi_catalog_finalize(cat, &err);
    if (r < 0) {
        gabi_catalog_free(cat);
        return cli_error(cli, &err);
    }
    if (cli->json)
        printf("{\"schema\": \"guestabi.catalog-validate/1\", \"ok\": true, \"modes\": %zu, "
               "\"platforms\": %zu, \"device_types\": %zu}\n",
               gabi_catalog_n_modes(cat), gabi_catalog_n_platforms(cat),
               gabi_catalog_n_device_types(cat));
    else
        printf("catalog is valid: %zu modes, %zu platforms, %zu device types (with the "
               "built-in catalog)\n",
               gabi_catalog_n_modes(cat), gabi_catalog_n_platforms(cat),
               gabi_catalog_n_device_types(cat));
    gabi_catalog_free(cat);
    return 0;
}

const struct cli_command cli_cmd_catalog = {
    "catalog",
    "Validate catalog documents (on top of the built-in catalog)",
    "validate DIR...",
    run_catalog,
};
