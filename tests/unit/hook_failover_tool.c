/* SPDX-License-Identifier: MIT */
/*
 * The libvirt hook's failover rewrite (src/libvirt-hook/failover.c) as a filter, for
 * test_failover_hook.py: `hook_failover_tool ADDR... < domain.xml`, ADDR the VF given to the
 * Nth transient failover interface, or "!REASON" to refuse it. Prints the rewritten XML (nothing
 * when the domain has no such interface) and exits 0, or prints the reason and exits 1. Each
 * interface's MAC, persistent peer and old address go to stderr.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/libvirt-hook/failover.h"

struct given {
    int argc;
    char **argv;
};

static int reserve(const struct hook_failover_iface *fi, char *ret, size_t size,
                   struct gabi_error *reterr, void *userdata)
{
    const struct given *g = userdata;
    const char *a;

    fprintf(stderr, "interface %u: mac %s, persistent %s, address %s\n", fi->index, fi->mac,
            fi->persistent, fi->address);
    if ((int)fi->index >= g->argc)
        return gabi_error_set(reterr, -ENOENT, NULL, "no VF given for interface %u", fi->index);
    a = g->argv[fi->index];
    if (a[0] == '!')
        return gabi_error_set(reterr, -EBUSY, NULL, "%s", a + 1);
    snprintf(ret, size, "%s", a);
    return 0;
}

int main(int argc, char **argv)
{
    struct given g = {argc - 1, argv + 1};
    struct gabi_error err = {0};
    static char xml[HOOK_FAILOVER_MAX_XML + 1];
    char *out = NULL;
    size_t n = fread(xml, 1, sizeof(xml), stdin);
    int r;

    r = hook_failover_rewrite(xml, n, reserve, &g, &out, &err);
    if (r < 0) {
        fprintf(stderr, "refused: %s%s%s\n", err.where, err.where[0] ? ": " : "", err.message);
        return 1;
    }
    if (out)
        printf("%s\n", out);
    free(out);
    return 0;
}
