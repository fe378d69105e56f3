/* SPDX-License-Identifier: MIT */
/*
 * The engine's speed: one check (a pin against a host, every reason collected), the same
 * answer without reasons, and the fleet question "which of these N hosts can take this pin"
 * over synthetic hosts built the way the probe builds them. Prints medians; not a test.
 *
 * Usage: bench_check [N_HOSTS] (default 100000)
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <guestabi/abi.h>

static double now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return v[n / 2];
}

/* A host like the fleets the catalog describes: a kernel generation, a few back-ends running
 * a newest-first run of modes, an mdev type, a couple of VFs. */
static struct gabi_hostcaps *synth_host(const struct gabi_catalog *cat, size_t i, unsigned *seed)
{
    char name[64];
    struct gabi_hostcaps *h;
    const struct gabi_mode *modes[GABI_MAX_MODES];
    static const char *const loads_sets[][3] = {
        {"1.0", NULL, NULL}, {"1.0", "1.1", NULL}, {"2.0", "1.1", "1.0"}};

    snprintf(name, sizeof(name), "host-%06zu", i);
    h = gabi_hostcaps_new(cat, name, "6.1.0");
    if (!h)
        return NULL;
    for (unsigned k = 0; k < GABI_KCAP_COUNT; k++) {
        bool new_kernel = rand_r(seed) % 3 != 0;
        bool uso = k == GABI_KCAP_TAP_USO4 || k == GABI_KCAP_TAP_USO6;
        gabi_hostcaps_set_cap(h, k, !uso || new_kernel ? GABI_CAP_SUPPORTED : GABI_CAP_UNSUPPORTED);
    }
    for (int cls = GABI_CLASS_NET; cls <= GABI_CLASS_BLK; cls++) {
        struct gabi_hostcaps_backend b = {.cls = cls};
        size_t n = 0, skip = (size_t)(rand_r(seed) % 2);

        for (size_t m = 0; m < gabi_catalog_n_modes(cat); m++) {
            const struct gabi_mode *mode = gabi_catalog_mode(cat, m);
            if (mode->cls != (enum gabi_device_class)cls)
                continue;
            if (skip) {
                skip--;
                continue;
            }
            modes[n++] = mode;
        }
        b.name = cls == GABI_CLASS_NET ? "guestabi-net" : "guestabi-blk";
        b.modes = modes;
        b.n_modes = n;
        gabi_hostcaps_add_backend(h, &b);
    }
    {
        const char *const *set = loads_sets[rand_r(seed) % 3];
        size_t n = 0;
        while (n < 3 && set[n])
            n++;
        struct gabi_hostcaps_device_type t = {.name = "mtty-1",
                                              .kind = "mdev",
                                              .loads = {.n = n, .list = set},
                                              .writes = {.n = n, .list = set},
                                              .available_instances = 4};
        gabi_hostcaps_add_device_type(h, &t);
    }
    for (int v = 0; v < 2; v++) {
        struct gabi_hostcaps_failover f = {.address = "0000:3b:02.0",
                                           .device = "8086:154c",
                                           .driver = "vfio-pci",
                                           .in_use = rand_r(seed) % 2};
        gabi_hostcaps_add_failover(h, &f);
    }
    return h;
}

static const char pin_doc[] =
    "{\"schema\": \"guestabi.pin/1\", \"vm\": \"bench\", \"platform\": \"linux-6.2\", "
    "\"devices\": ["
    "{\"id\": \"net0\", \"class\": \"virtio-net\", \"mode\": \"upstream.guestabi-net.v3\"},"
    "{\"id\": \"disk0\", \"class\": \"virtio-blk\", \"mode\": \"upstream.guestabi-blk.v2\"},"
    "{\"id\": \"serial0\", \"class\": \"mdev\", \"type\": \"mtty-1\", \"state_version\": "
    "\"1.1\"},"
    "{\"id\": \"net1\", \"class\": \"virtio-net\", \"mode\": \"upstream.guestabi-net.v3\", "
    "\"failover\": {\"primary\": \"hostdev0\", \"device\": \"8086:154c\"}}]}";

int main(int argc, char **argv)
{
    size_t n_hosts = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    struct gabi_catalog *cat = gabi_catalog_new();
    struct gabi_hostcaps **hosts;
    struct gabi_pin *pin = NULL;
    struct gabi_error err = {0};
    unsigned seed = 42;
    double t0, samples[41];
    size_t accepted = 0, reasons = 0;
    volatile size_t sink = 0;

    if (n_hosts < 1 || n_hosts > 1000000) {
        fprintf(stderr, "bench_check: N_HOSTS must be 1..1000000\n");
        return 2;
    }
    if (gabi_catalog_add_builtin(cat, &err) < 0 || gabi_catalog_finalize(cat, &err) < 0 ||
        gabi_pin_parse(cat, "bench-pin", pin_doc, strlen(pin_doc), &pin, &err) < 0) {
        fprintf(stderr, "bench_check: %s: %s\n", err.where, err.message);
        return 1;
    }
    hosts = calloc(n_hosts, sizeof(*hosts));
    t0 = now_ns();
    for (size_t i = 0; i < n_hosts; i++)
        if (!(hosts[i] = synth_host(cat, i, &seed)))
            return 1;
    printf("built %zu synthetic hosts in %.1f ms\n", n_hosts, (now_ns() - t0) / 1e6);

    /* one full check: every reason, a verdict allocated and freed */
    for (size_t s = 0; s < 41; s++) {
        const size_t iters = 2000;
        t0 = now_ns();
        for (size_t i = 0; i < iters; i++) {
            struct gabi_verdict *v = NULL;
            if (gabi_check(cat, pin, hosts[i % n_hosts], &v) < 0)
                return 1;
            sink += gabi_verdict_n_reasons(v);
            gabi_verdict_free(v);
        }
        samples[s] = (now_ns() - t0) / iters;
    }
    printf("check (full verdict, all reasons): %8.2f us per pin x host   (target < 5 us)\n",
           median(samples, 41) / 1e3);

    for (size_t s = 0; s < 41; s++) {
        const size_t iters = 200000;
        t0 = now_ns();
        for (size_t i = 0; i < iters; i++)
            sink += gabi_check_ok(pin, hosts[i % n_hosts]);
        samples[s] = (now_ns() - t0) / iters;
    }
    printf("check (yes/no, no reasons):        %8.1f ns per pin x host\n", median(samples, 41));

    /* the fleet question, host by host */
    for (size_t s = 0; s < 21; s++) {
        size_t n_ok = 0;
        t0 = now_ns();
        for (size_t i = 0; i < n_hosts; i++)
            n_ok += gabi_check_ok(pin, hosts[i]);
        samples[s] = now_ns() - t0;
        accepted = n_ok;
    }
    printf("filter %zu hosts, one by one:   %8.2f ms; %zu accept the pin\n", n_hosts,
           median(samples, 21) / 1e6, accepted);

    /* and through a fleet table */
    {
        struct gabi_fleet *fleet = NULL;
        size_t *ok = calloc(n_hosts, sizeof(*ok)), n_ok = 0;

        t0 = now_ns();
        if (!ok ||
            gabi_fleet_new(cat, (const struct gabi_hostcaps *const *)hosts, n_hosts, &fleet) < 0)
            return 1;
        printf("fleet table for %zu hosts built in %.2f ms\n", n_hosts, (now_ns() - t0) / 1e6);
        for (size_t s = 0; s < 21; s++) {
            t0 = now_ns();
            n_ok = gabi_fleet_filter(fleet, pin, ok);
            samples[s] = now_ns() - t0;
        }
        printf("filter %zu hosts, fleet table:  %8.2f ms   (target < 10 ms for 100000); "
               "%zu accept the pin%s\n",
               n_hosts, median(samples, 21) / 1e6, n_ok,
               n_ok == accepted ? "" : " (DISAGREES with one by one)");
        gabi_fleet_free(fleet);
        free(ok);
    }

    /* and the same with every refusal explained */
    t0 = now_ns();
    for (size_t i = 0; i < n_hosts; i++) {
        struct gabi_verdict *v = NULL;
        if (gabi_check(cat, pin, hosts[i], &v) < 0)
            return 1;
        reasons += gabi_verdict_n_reasons(v);
        gabi_verdict_free(v);
    }
    printf("explain all %zu hosts:           %8.2f ms   (%zu reasons)\n", n_hosts,
           (now_ns() - t0) / 1e6, reasons);

    for (size_t i = 0; i < n_hosts; i++)
        gabi_hostcaps_free(hosts[i]);
    free(hosts);
    gabi_pin_free(pin);
    gabi_catalog_free(cat);
    return sink == (size_t)-1;
}
