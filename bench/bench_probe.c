/* SPDX-License-Identifier: MIT */
/*
 * Whole-probe wall time: gabi_probe_run() with every part on this host's /sys and /dev (a
 * temporary tap, TUNSETOFFLOAD per capability, TUNSETVNETHDRSZ, /dev/vhost-net, mdev types,
 * SR-IOV VFs) plus serializing the hostcaps document, as `guestabi probe --json` does.
 * Prints the median of N runs (target: under 50 ms). A measurement, not a test.
 *
 *   bench_probe [N] [SYSFS_ROOT [DEV_ROOT]]
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <guestabi/probe.h>

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    struct gabi_probe_options o = {0};
    struct gabi_catalog *cat = NULL;
    struct gabi_error err = {0};
    unsigned long n = 50;
    double *t, median;
    size_t problems = 0;

    if (argc > 1) {
        char *end;
        n = strtoul(argv[1], &end, 10);
        if (*end || n == 0 || n > 100000) {
            fprintf(stderr, "usage: %s [N] [SYSFS_ROOT [DEV_ROOT]]\n", argv[0]);
            return 2;
        }
    }
    if (argc > 2)
        o.sysfs_root = argv[2];
    if (argc > 3)
        o.dev_root = argv[3];
    if (gabi_catalog_load_default(NULL, 0, &cat, &err) < 0) {
        fprintf(stderr, "catalog: %s: %s\n", err.where, err.message);
        return 2;
    }
    t = calloc(n, sizeof(*t));
    if (!t)
        return 2;
    for (unsigned long i = 0; i < n; i++) {
        struct gabi_probe *p = NULL;
        double start = now_ms();
        char *json;

        if (gabi_probe_run(cat, &o, &p, &err) < 0) {
            fprintf(stderr, "probe: %s: %s\n", err.where, err.message);
            return 2;
        }
        json = gabi_hostcaps_to_json(gabi_probe_hostcaps(p));
        t[i] = now_ms() - start;
        problems = gabi_probe_n_problems_total(p);
        free(json);
        gabi_probe_free(p);
    }
    qsort(t, n, sizeof(*t), cmp_double);
    median = n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
    printf("probe (all parts, %s, %s): median %.3f ms over %lu runs (min %.3f, max %.3f); "
           "target < 50 ms%s\n",
           o.sysfs_root ? o.sysfs_root : "/sys", o.dev_root ? o.dev_root : "/dev", median, n, t[0],
           t[n - 1], problems ? " (with problems: see guestabi probe)" : "");
    free(t);
    gabi_catalog_free(cat);
    return 0;
}
