/* SPDX-License-Identifier: MIT */
/*
 * Whole-probe wall time: gabi_probe_run() with every part on this host's /sys and /dev (a
 * temporary tap, TUNSETOFFLOAD per capability, TUNSETVNETHDRSZ, /dev/vhost-net, mdev types,
 * SR-IOV VFs, the QEMU binary) plus serializing the hostcaps document, as `guestabi probe --json`
 * does. Prints the median of N runs without the hypervisor part (target: under 50 ms) and with it
 * (three QEMU runs: -version, -machine help, -device virtio-net-pci,help). A measurement, not
 * a test.
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

/* Median of n runs of the probe with `parts`, and its min and max. */
static int measure(const struct gabi_catalog *cat, struct gabi_probe_options o, unsigned parts,
                   unsigned long n, double *t, double *ret_median, size_t *ret_problems)
{
    struct gabi_error err = {0};

    o.parts = parts;
    for (unsigned long i = 0; i < n; i++) {
        struct gabi_probe *p = NULL;
        double start = now_ms();
        char *json;

        if (gabi_probe_run(cat, &o, &p, &err) < 0) {
            fprintf(stderr, "probe: %s: %s\n", err.where, err.message);
            return -1;
        }
        json = gabi_hostcaps_to_json(gabi_probe_hostcaps(p));
        t[i] = now_ms() - start;
        *ret_problems = gabi_probe_n_problems_total(p);
        free(json);
        gabi_probe_free(p);
    }
    qsort(t, n, sizeof(*t), cmp_double);
    *ret_median = n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
    return 0;
}

int main(int argc, char **argv)
{
    struct gabi_probe_options o = {0};
    struct gabi_catalog *cat = NULL;
    struct gabi_error err = {0};
    unsigned long n = 20;
    double *t, median, median_hv;
    size_t problems = 0, problems_hv = 0;

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
    if (measure(cat, o, GABI_PROBE_ALL & ~GABI_PROBE_HYPERVISOR, n, t, &median, &problems) < 0)
        return 2;
    printf("probe without the hypervisor (%s, %s): median %.3f ms over %lu runs (min %.3f, max "
           "%.3f); target < 50 ms%s\n",
           o.sysfs_root ? o.sysfs_root : "/sys", o.dev_root ? o.dev_root : "/dev", median, n, t[0],
           t[n - 1], problems ? " (with problems: see guestabi probe)" : "");
    if (measure(cat, o, GABI_PROBE_ALL, n, t, &median_hv, &problems_hv) < 0)
        return 2;
    printf("probe with the hypervisor (three QEMU runs): median %.3f ms over %lu runs (min %.3f, "
           "max %.3f); the hypervisor part %.3f ms%s\n",
           median_hv, n, t[0], t[n - 1], median_hv - median,
           problems_hv > problems ? " (QEMU did not answer: see guestabi probe)" : "");
    free(t);
    gabi_catalog_free(cat);
    return 0;
}
