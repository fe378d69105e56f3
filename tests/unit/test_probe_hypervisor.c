/* SPDX-License-Identifier: MIT */
/*
 * The hypervisor part of the probe: fake QEMUs printing other versions' recorded answers
 * (tests/data/qemu), QEMUs that hang, fail, babble or are missing, and this machine's own QEMU
 * when it has one.
 */

#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "tap.h"
#include "test_probe.h"

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* An executable script `name` in dir with `body` after the #! line; returns its path. */
static const char *script(const char *dir, const char *name, const char *body)
{
    static char paths[4][4096];
    static unsigned next;
    char *path = paths[next++ % 4];
    char text[10000];

    snprintf(text, sizeof(text), "#!/bin/sh\n%s\n", body);
    snprintf(path, sizeof(paths[0]), "%s/%s", dir, name);
    if (put_text(dir, name, text) < 0 || chmod(path, 0755) < 0)
        return NULL;
    return path;
}

/* A fake QEMU answering as the recorded `version` does. */
static const char *fake_qemu(const char *dir, const char *version)
{
    char body[9000], rel[256];

    snprintf(rel, sizeof(rel), "tests/data/qemu/%s", version);
    snprintf(body, sizeof(body), "exec '%s/tests/data/qemu/fake-qemu.sh' '%s' \"$@\"",
             getenv("GUESTABI_SOURCE_ROOT") ? getenv("GUESTABI_SOURCE_ROOT") : ".",
             source_path(rel));
    return script(dir, version, body);
}

static struct gabi_probe *probe_qemu(const struct gabi_catalog *cat, const char *qemu,
                                     unsigned timeout_ms)
{
    struct gabi_probe_options o = {.host = "fixture",
                                   .parts = GABI_PROBE_HYPERVISOR,
                                   .qemu = qemu,
                                   .qemu_timeout_ms = timeout_ms};
    struct gabi_probe *p = NULL;
    struct gabi_error err = {0};

    if (gabi_probe_run(cat, &o, &p, &err) < 0)
        printf("# probe: %s: %s\n", err.where, err.message);
    return p;
}

/* Lines in a recorded file, less `skip` header lines. */
static size_t lines_in(const char *rel, size_t skip)
{
    FILE *f = fopen(source_path(rel), "r");
    size_t n = 0;
    int c;

    if (!f)
        return 0;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n - skip;
}

static bool has_feature(const struct gabi_hostcaps_hypervisor *hv, unsigned bit)
{
    return hv->net_features & (1ull << bit);
}

/* Probe the fake QEMU of a recorded version: probed, that version, every property and
 * machine type of the recording counted (`prop_header`: the help's header lines). */
static struct gabi_probe *probe_recorded(const struct gabi_catalog *cat, const char *dir,
                                         const char *version, size_t prop_header)
{
    struct gabi_probe *p = probe_qemu(cat, fake_qemu(dir, version), 0);
    const struct gabi_hostcaps_hypervisor *hv;
    char rel[256];

    if (!p)
        return NULL;
    hv = gabi_probe_hypervisor(p);
    CHECK_INT(hv->state, GABI_HV_PROBED);
    CHECK_STR(hv->version ? hv->version : "(none)", version);
    snprintf(rel, sizeof(rel), "tests/data/qemu/%s/virtio-net-pci-help", version);
    CHECK_INT(gabi_probe_hypervisor_n_properties(p), lines_in(rel, prop_header));
    snprintf(rel, sizeof(rel), "tests/data/qemu/%s/machine-help", version);
    CHECK_INT(hv->n_machines, lines_in(rel, 1));
    CHECK_INT(gabi_probe_n_problems_total(p), 0);
    return p;
}

/* Give the probed hostcaps a USO kernel, as every fixture host has. */
static void uso_kernel(struct gabi_hostcaps *h)
{
    for (unsigned k = 0; k < GABI_KCAP_VHOST_NET; k++)
        gabi_hostcaps_set_cap(h, k, GABI_CAP_SUPPORTED);
}

/* Other versions' answers, through the same child-process code as a real QEMU: QEMU 10.0
 * (USO properties), 7.2 (none) and 2.11 (the old "virtio-net-pci.NAME=TYPE" format, no
 * header). Over a USO kernel, linux-6.2 runs exactly where QEMU has the USO properties. */
TEST(recorded_versions)
{
    static const struct {
        const char *version;
        size_t prop_header;
        bool uso;
        const char *machine;
    } cases[] = {
        {"10.0.2", 1, true, "pc-q35-4.0.1"},
        {"7.2.22", 1, false, "pc-q35-7.2"},
        {"2.11.1", 0, false, "pc-q35-2.11"},
    };
    struct gabi_catalog *cat = builtin_catalog();
    char *dir = tmpdir_new();

    REQUIRE(cat && dir);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct gabi_hostcaps_hypervisor *hv;
        struct gabi_hostcaps *h;
        struct gabi_probe *p;

        printf("# QEMU %s\n", cases[i].version);
        p = probe_recorded(cat, dir, cases[i].version, cases[i].prop_header);
        REQUIRE(p);
        hv = gabi_probe_hypervisor(p);
        CHECK_INT(has_feature(hv, GABI_NET_F_HOST_USO), cases[i].uso);
        CHECK_INT(has_feature(hv, GABI_NET_F_GUEST_USO4), cases[i].uso);
        CHECK_INT(has_feature(hv, GABI_NET_F_GUEST_USO6), cases[i].uso);
        CHECK(has_feature(hv, GABI_NET_F_CSUM));
        CHECK(has_feature(hv, GABI_NET_F_HOST_UFO));
        CHECK(has_feature(hv, GABI_NET_F_GUEST_ECN));
        CHECK(gabi_hostcaps_has_machine(gabi_probe_hostcaps(p), cases[i].machine));
        h = gabi_probe_hostcaps_steal(p);
        uso_kernel(h);
        CHECK_INT(gabi_hostcaps_runs_platform(h, gabi_catalog_find_platform(cat, "linux-6.2")),
                  cases[i].uso);
        CHECK(gabi_hostcaps_runs_platform(h, gabi_catalog_find_platform(cat, "linux-5.14")));
        gabi_hostcaps_free(h);
        gabi_probe_free(p);
    }
    tmpdir_remove(dir);
    gabi_catalog_free(cat);
}

/* A program that ignores SIGCHLD has its children reaped by the kernel: the probe still gets
 * the answers, and does not wait for the deadline. */
TEST(sigchld_ignored)
{
    struct gabi_catalog *cat = builtin_catalog();
    char *dir = tmpdir_new();
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    struct gabi_probe *p;
    double t;

    REQUIRE(cat && dir);
    REQUIRE(sigaction(SIGCHLD, &ign, &old) == 0);
    t = now_ms();
    p = probe_qemu(cat, fake_qemu(dir, "10.0.2"), 3000);
    t = now_ms() - t;
    sigaction(SIGCHLD, &old, NULL);
    REQUIRE(p);
    CHECK_INT(gabi_probe_hypervisor(p)->state, GABI_HV_PROBED);
    CHECK(t < 2500);
    gabi_probe_free(p);
    tmpdir_remove(dir);
    gabi_catalog_free(cat);
}

/* The state letter in /proc/PID/stat of the pid written in dir/file; 0 when it is gone.
 * Waits a moment for a killed process to be reaped by whoever inherited it. */
static char process_state(const char *dir, const char *file)
{
    char path[4096], stat[512] = "";
    const char *paren;
    FILE *f;
    long pid = 0;

    snprintf(path, sizeof(path), "%s/%s", dir, file);
    f = fopen(path, "r");
    if (!f || fscanf(f, "%ld", &pid) != 1 || pid <= 0) {
        if (f)
            fclose(f);
        return '?';
    }
    fclose(f);
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    for (int i = 0; i < 50; i++) {
        f = fopen(path, "r");
        if (!f)
            return 0;
        if (!fgets(stat, sizeof(stat), f))
            stat[0] = '\0';
        fclose(f);
        paren = strrchr(stat, ')');
        if (!paren || paren[1] != ' ' || paren[2] == 'Z')
            return paren ? paren[2] : 0;
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
    }
    return paren ? paren[2] : 0;
}

/* A QEMU that never answers is killed at the timeout, with whatever it started. */
TEST(qemu_that_hangs)
{
    struct gabi_catalog *cat = builtin_catalog();
    char *dir = tmpdir_new(), body[9000];
    const struct gabi_hostcaps_hypervisor *hv;
    struct gabi_probe *p;
    double t;

    REQUIRE(cat && dir);
    t = now_ms();
    p = probe_qemu(cat, script(dir, "hang", "exec sleep 30"), 300);
    t = now_ms() - t;
    REQUIRE(p);
    hv = gabi_probe_hypervisor(p);
    CHECK_INT(hv->state, GABI_HV_FAILED);
    CHECK_CONTAINS(hv->message, "-version: did not finish within 300 ms and was killed");
    CHECK(t < 3000);
    CHECK_PROBLEM(p, "hang", "did not finish within 300 ms");
    gabi_probe_free(p);
    /* a child in the background keeps the pipes open: the whole group goes */
    snprintf(body, sizeof(body), "sleep 30 &\necho $! > '%s/bg.pid'\nsleep 30", dir);
    t = now_ms();
    p = probe_qemu(cat, script(dir, "hang2", body), 300);
    t = now_ms() - t;
    REQUIRE(p);
    CHECK_INT(gabi_probe_hypervisor(p)->state, GABI_HV_FAILED);
    CHECK(t < 3000);
    CHECK_INT(process_state(dir, "bg.pid") == 'S' || process_state(dir, "bg.pid") == 'R', 0);
    printf("# hanging QEMUs reported after %.0f ms\n", t);
    gabi_probe_free(p);
    tmpdir_remove(dir);
    gabi_catalog_free(cat);
}

TEST(qemu_that_fails)
{
    struct gabi_catalog *cat = builtin_catalog();
    char *dir = tmpdir_new();
    const struct gabi_hostcaps_hypervisor *hv;
    struct gabi_hostcaps *h;
    struct gabi_probe *p;
    char body[9000];

    REQUIRE(cat && dir);
    /* answers -version, then fails on -machine help */
    snprintf(body, sizeof(body),
             "[ \"$1\" = -version ] && exec cat '%s'\n"
             "echo 'qemu-system-x86_64: -machine help: could not load modules' >&2\nexit 3",
             source_path("tests/data/qemu/10.0.2/version"));
    p = probe_qemu(cat, script(dir, "fails", body), 0);
    REQUIRE(p);
    hv = gabi_probe_hypervisor(p);
    CHECK_INT(hv->state, GABI_HV_FAILED);
    CHECK_CONTAINS(hv->message, "-machine help: exited with status 3: qemu-system-x86_64: "
                                "-machine help: could not load modules");
    CHECK(!hv->version);
    CHECK_INT(hv->net_features, 0);
    /* failed is not "supports nothing": judged on the kernel alone */
    h = gabi_probe_hostcaps_steal(p);
    uso_kernel(h);
    CHECK(gabi_hostcaps_runs_platform(h, gabi_catalog_find_platform(cat, "linux-6.2")));
    gabi_hostcaps_free(h);
    gabi_probe_free(p);

    p = probe_qemu(cat, script(dir, "babbles", "echo hello"), 0);
    REQUIRE(p);
    CHECK_INT(gabi_probe_hypervisor(p)->state, GABI_HV_FAILED);
    CHECK_CONTAINS(gabi_probe_hypervisor(p)->message, "printed no \"QEMU emulator version");
    gabi_probe_free(p);

    p = probe_qemu(cat, script(dir, "floods", "head -c 400000 /dev/zero | tr '\\0' x"), 0);
    REQUIRE(p);
    CHECK_INT(gabi_probe_hypervisor(p)->state, GABI_HV_FAILED);
    CHECK_CONTAINS(gabi_probe_hypervisor(p)->message, "printed more than 262144 bytes");
    gabi_probe_free(p);

    p = probe_qemu(cat, script(dir, "killed", "kill -SEGV $$"), 0);
    REQUIRE(p);
    CHECK_CONTAINS(gabi_probe_hypervisor(p)->message, "-version: killed by signal 11");
    gabi_probe_free(p);
    tmpdir_remove(dir);
    gabi_catalog_free(cat);
}

TEST(qemu_missing)
{
    struct gabi_catalog *cat = builtin_catalog();
    char *dir = tmpdir_new();
    const struct gabi_hostcaps_hypervisor *hv;
    struct gabi_probe *p;
    char *json, path[4096];

    REQUIRE(cat && dir);
    p = probe_qemu(cat, "/nonexistent/qemu-system-x86_64", 0);
    REQUIRE(p);
    hv = gabi_probe_hypervisor(p);
    CHECK_INT(hv->state, GABI_HV_ABSENT);
    CHECK_CONTAINS(hv->message, "/nonexistent/qemu-system-x86_64 cannot be run");
    CHECK_INT(gabi_probe_n_problems_total(p), 0); /* a host without QEMU is no probe problem */
    json = gabi_hostcaps_to_json(gabi_probe_hostcaps(p));
    REQUIRE(json);
    CHECK_CONTAINS(json, "\"state\": \"absent\"");
    free(json);
    gabi_probe_free(p);
    p = probe_qemu(cat, "guestabi-no-such-qemu", 0);
    REQUIRE(p);
    CHECK_INT(gabi_probe_hypervisor(p)->state, GABI_HV_ABSENT);
    CHECK_CONTAINS(gabi_probe_hypervisor(p)->message, "guestabi-no-such-qemu not found on PATH");
    gabi_probe_free(p);
    /* there but not executable; a directory */
    REQUIRE(put_text(dir, "qemu", "#!/bin/sh\n") == 0);
    REQUIRE(snprintf(path, sizeof(path), "%s/qemu", dir) > 0);
    p = probe_qemu(cat, path, 0);
    REQUIRE(p);
    CHECK_INT(gabi_probe_hypervisor(p)->state, GABI_HV_ABSENT);
    CHECK_CONTAINS(gabi_probe_hypervisor(p)->message, "cannot be run: Permission denied");
    gabi_probe_free(p);
    p = probe_qemu(cat, dir, 0);
    REQUIRE(p);
    CHECK_INT(gabi_probe_hypervisor(p)->state, GABI_HV_FAILED);
    CHECK_CONTAINS(gabi_probe_hypervisor(p)->message, "-version: cannot be run");
    gabi_probe_free(p);
    tmpdir_remove(dir);
    gabi_catalog_free(cat);
}

/* This machine's own QEMU (qemu-system-x86_64 on PATH), when there is one: the version it
 * prints, and a linux-6.2 pin refused naming the properties it lacks when the tap takes USO. */
TEST(qemu_here)
{
    struct gabi_catalog *cat = builtin_catalog();
    const struct gabi_hostcaps_hypervisor *hv;
    const struct gabi_hostcaps *h;
    struct gabi_verdict *v = NULL;
    struct gabi_probe *p;
    struct gabi_pin *pin;
    char line[256] = "", want[64] = "";
    FILE *f;

    REQUIRE(cat);
    p = probe_roots(cat, NULL, NULL, GABI_PROBE_KERNEL | GABI_PROBE_HYPERVISOR);
    REQUIRE(p);
    h = gabi_probe_hostcaps(p);
    hv = gabi_hostcaps_hypervisor(h);
    if (hv->state == GABI_HV_ABSENT) {
        printf("# no QEMU here: %s\n", hv->message);
        gabi_probe_free(p);
        gabi_catalog_free(cat);
        return;
    }
    CHECK_INT(hv->state, GABI_HV_PROBED);
    f = popen("qemu-system-x86_64 -version", "r");
    REQUIRE(f);
    if (!fgets(line, sizeof(line), f))
        line[0] = '\0';
    pclose(f);
    CHECK(sscanf(line, "QEMU emulator version %63[0-9.]", want) == 1);
    CHECK_STR(hv->version, want);
    CHECK(has_feature(hv, GABI_NET_F_HOST_TSO4));
    CHECK(gabi_hostcaps_has_machine(h, "q35"));
    printf("# QEMU %s here: %s, %zu machine types\n", hv->version,
           has_feature(hv, GABI_NET_F_HOST_USO) ? "has host_uso" : "no host_uso", hv->n_machines);
    CHECK_INT(has_feature(hv, GABI_NET_F_HOST_USO), gabi_version_compare(hv->version, "8.2") >= 0);
    pin = pin_from(cat, "{\"schema\": \"guestabi.pin/1\", \"vm\": \"vm-uso\", \"platform\": "
                        "\"linux-6.2\", \"devices\": []}");
    REQUIRE(pin);
    REQUIRE(gabi_check(cat, pin, h, &v) == 0);
    if (gabi_hostcaps_cap(h, GABI_KCAP_TAP_USO4) == GABI_CAP_SUPPORTED &&
        !has_feature(hv, GABI_NET_F_HOST_USO)) {
        const struct gabi_reason *r = find_reason(v, "", "hypervisor");
        char msg[256];

        CHECK(!gabi_verdict_ok(v));
        CHECK(!find_reason(v, "", "platform")); /* the kernel takes USO: only QEMU lacks it */
        REQUIRE(r);
        snprintf(msg, sizeof(msg),
                 "QEMU %s on host fixture has no virtio-net property guest_uso4: linux-6.2's "
                 "VIRTIO_NET_F_GUEST_USO4 cannot be offered (QEMU 8.2 added it)",
                 hv->version);
        CHECK_STR(r->message, msg);
        CHECK_INT(gabi_verdict_n_reasons(v), 3);
    } else {
        printf("# linux-6.2 here: %s\n", gabi_verdict_ok(v) ? "accepted" : "refused");
    }
    gabi_verdict_free(v);
    gabi_pin_free(pin);
    gabi_probe_free(p);
    gabi_catalog_free(cat);
}

TAP_MAIN()
