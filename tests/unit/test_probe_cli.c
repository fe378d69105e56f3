/* SPDX-License-Identifier: MIT */
/* guestabi probe / query-platforms, run as a program: output, --json, exit codes. */

#include <jansson.h>
#include <sys/wait.h>

#include "tap.h"
#include "test_probe.h"

struct run {
    int status; /* exit code, or 128 + signal */
    char *out;
    char *err;
};

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "re");
    char *buf = NULL;
    size_t size = 0;

    if (!f)
        return strdup("");
    if (getdelim(&buf, &size, '\0', f) < 0) {
        free(buf);
        buf = strdup("");
    }
    fclose(f);
    return buf;
}

/* Run guestabi with args (NULL-terminated), capturing stdout and stderr. */
static struct run run_cli(const char *const *args)
{
    const char *build = getenv("GUESTABI_BUILD_ROOT");
    char exe[4096], out[4200], err[4200];
    const char *argv[32];
    struct run r = {.status = -1};
    char *dir = tmpdir_new();
    size_t n = 0;
    pid_t pid;
    int st;

    if (!dir)
        return r;
    snprintf(exe, sizeof(exe), "%s/src/cli/guestabi", build ? build : ".");
    snprintf(out, sizeof(out), "%s/out", dir);
    snprintf(err, sizeof(err), "%s/err", dir);
    argv[n++] = exe;
    for (; *args && n < 31; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);

        if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0)
            _exit(127);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    if (pid > 0 && waitpid(pid, &st, 0) == pid)
        r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r.out = slurp(out);
    r.err = slurp(err);
    tmpdir_remove(dir);
    return r;
}

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
}

#define RUN(...) run_cli((const char *const[]){__VA_ARGS__, NULL})

TEST(probe_json_is_the_hostcaps_document)
{
    struct gabi_catalog *cat = builtin_catalog();
    char *dev = tmpdir_new(), *want, *want_nl = NULL;
    struct gabi_probe *p;
    struct run r;

    REQUIRE(cat && dev);
    r = RUN("probe", "--json", "--host-name", "fixture", "--sysfs-root", fixture("host1"),
            "--dev-root", dev);
    CHECK_INT(r.status, 0);
    CHECK_STR(r.err, "");
    p = probe_roots(cat, fixture("host1"), dev, 0);
    REQUIRE(p);
    want = gabi_hostcaps_to_json(gabi_probe_hostcaps(p));
    REQUIRE(want && asprintf(&want_nl, "%s\n", want) > 0);
    CHECK_STR(r.out, want_nl);
    free(want);
    free(want_nl);
    gabi_probe_free(p);
    run_free(&r);
    tmpdir_remove(dev);
    gabi_catalog_free(cat);
}

TEST(probe_human_summary)
{
    char *dev = tmpdir_new();
    struct run r;

    REQUIRE(dev);
    r = RUN("probe", "--host-name", "fixture", "--sysfs-root", fixture("host1"), "--dev-root", dev);
    CHECK_INT(r.status, 0);
    CHECK_CONTAINS(r.out, "Host fixture\n");
    CHECK_CONTAINS(r.out, "tap.uso4      absent");
    CHECK_CONTAINS(r.out, "vhost-net     absent");
    CHECK_CONTAINS(r.out, "Platforms this host runs (kernel and hypervisor), newest first: none");
    CHECK_CONTAINS(r.out, "acme-vgpu-4  on 0000:00:02.0  \"ACME vGPU 4\"  vfio-pci  4 available");
    CHECK_CONTAINS(r.out, "loads      3.2 down to 2.9");
    CHECK_CONTAINS(r.out, "cannot migrate: the driver publishes no migration_versions");
    CHECK_CONTAINS(r.out, "mtty-2  on mtty  \"Dual port serial\"  vfio-pci  0 available");
    CHECK_CONTAINS(r.out, "0000:5e:02.1  8086:154c  pf ens2f0  driver vfio-pci  mac none");
    run_free(&r);
    tmpdir_remove(dev);
}

TEST(probe_bad_input)
{
    struct run r;

    r = RUN("probe", "--sysfs-root", "/nonexistent/sys");
    CHECK_INT(r.status, 2);
    CHECK_CONTAINS(r.err, "/nonexistent/sys");
    CHECK_STR(r.out, "");
    run_free(&r);

    /* unreadable content: warnings naming each file, exit 0; --strict makes it exit 2 */
    r = RUN("probe", "--only", "mdev,failover", "--sysfs-root", fixture("bad"));
    CHECK_INT(r.status, 0);
    CHECK_CONTAINS(r.err, "mixed-1/migration_versions:2: a \"version\" line after a version list");
    CHECK_CONTAINS(r.err, "eth9/device/sriov_numvfs: value 100000 is larger than 256");
    CHECK_CONTAINS(r.out, "14 problems (on stderr)");
    run_free(&r);
    r = RUN("probe", "--strict", "--json", "--only", "mdev", "--sysfs-root", fixture("bad"));
    CHECK_INT(r.status, 2);
    CHECK_CONTAINS(r.out, "\"good-1\""); /* the document is still printed */
    run_free(&r);

    r = RUN("probe", "--only", "kernel,bogus");
    CHECK_INT(r.status, 2);
    CHECK_CONTAINS(r.err, "parts are kernel, mdev, failover, vhost-user");
    run_free(&r);
    r = RUN("probe", "extra");
    CHECK_INT(r.status, 2);
    run_free(&r);
    r = RUN("probe", "--help");
    CHECK_INT(r.status, 0);
    CHECK_CONTAINS(r.out, "--sysfs-root DIR");
    run_free(&r);
}

TEST(probe_vhost_user_not_faked)
{
    struct run r;

    /* No back-end listens there: reported with the reason, left out of hostcaps. */
    r = RUN("probe", "--only", "vhost-user", "--vhost-user", "virtio-net:ovs0=/run/ovs/vhu0");
    CHECK_INT(r.status, 0);
    CHECK_CONTAINS(r.out, "ovs0 (virtio-net) /run/ovs/vhu0");
    CHECK_CONTAINS(r.out, "/run/ovs/vhu0: connect: No such file or directory");
    run_free(&r);
    r = RUN("probe", "--json", "--only", "vhost-user", "--vhost-user",
            "virtio-net:ovs0=/run/ovs/vhu0");
    CHECK_INT(r.status, 0);
    CHECK_CONTAINS(r.out, "\"backends\": []");
    run_free(&r);
    r = RUN("probe", "--vhost-user", "ovs0=/run/ovs/vhu0");
    CHECK_INT(r.status, 2);
    CHECK_CONTAINS(r.err, "expected CLASS:NAME=PATH");
    run_free(&r);
    r = RUN("probe", "--vhost-user", "virtio-scsi:a=/b");
    CHECK_INT(r.status, 2);
    CHECK_CONTAINS(r.err, "unknown class \"virtio-scsi\"");
    run_free(&r);
    r = RUN("probe", "--vhost-user", "virtio-net:a=/b", "--vhost-user", "virtio-blk:a=/c");
    CHECK_INT(r.status, 2);
    CHECK_CONTAINS(r.err, "named twice");
    run_free(&r);
}

TEST(query_platforms_without_tun)
{
    struct gabi_catalog *cat = builtin_catalog();
    char *dev = tmpdir_new();
    json_t *root, *nr;
    struct run r;

    REQUIRE(cat && dev);
    r = RUN("query-platforms", "--host-name", "fixture", "--dev-root", dev);
    CHECK_INT(r.status, 1);
    CHECK_CONTAINS(r.out, "  none\n");
    CHECK_CONTAINS(r.out, "linux-6.2        not runnable: needs tap.vnet_hdr (absent)");
    CHECK_CONTAINS(r.out, "tap.uso4 (absent), tap.uso6 (absent)");
    run_free(&r);
    r = RUN("query-platforms", "--json", "--dev-root", dev);
    CHECK_INT(r.status, 1);
    root = json_loads(r.out, 0, NULL);
    REQUIRE(root);
    CHECK(json_is_null(json_object_get(root, "default")));
    CHECK_INT(json_array_size(json_object_get(root, "platforms")), 0);
    nr = json_object_get(root, "not_runnable");
    CHECK_INT(json_array_size(nr), gabi_catalog_n_platforms(cat));
    CHECK_STR(json_string_value(
                  json_object_get(json_object_get(json_array_get(nr, 0), "missing"), "tap.uso4")),
              "absent");
    json_decref(root);
    run_free(&r);
    tmpdir_remove(dev);
    gabi_catalog_free(cat);
}

/* On this machine's kernel and QEMU: the same platforms as the library's probe, newest the
 * default. */
TEST(query_platforms_here)
{
    struct gabi_catalog *cat = builtin_catalog();
    const struct gabi_platform *ps[GABI_MAX_PLATFORMS];
    json_t *root, *arr;
    struct gabi_probe *p;
    struct run r;
    size_t n;

    REQUIRE(cat);
    p = probe_roots(cat, NULL, NULL, GABI_PROBE_KERNEL | GABI_PROBE_HYPERVISOR);
    REQUIRE(p);
    n = gabi_hostcaps_platforms(gabi_probe_hostcaps(p), ps, GABI_MAX_PLATFORMS);
    r = RUN("query-platforms", "--json");
    CHECK_INT(r.status, n ? 0 : 1);
    root = json_loads(r.out, 0, NULL);
    REQUIRE(root);
    arr = json_object_get(root, "platforms");
    CHECK_INT(json_array_size(arr), n);
    for (size_t i = 0; i < n && i < json_array_size(arr); i++) {
        json_t *e = json_array_get(arr, i);
        CHECK_STR(json_string_value(json_object_get(e, "name")), ps[i]->name);
        CHECK_INT(json_is_true(json_object_get(e, "default")), i == 0);
    }
    if (n)
        CHECK_STR(json_string_value(json_object_get(root, "default")), ps[0]->name);
    printf("# default platform here: %s\n", n ? ps[0]->name : "none");
    json_decref(root);
    run_free(&r);
    gabi_probe_free(p);
    gabi_catalog_free(cat);
}

/* --qemu and --qemu-timeout: a missing QEMU is reported in the document, not an error; a bad
 * timeout is a usage error. */
TEST(probe_qemu_options)
{
    struct run r;

    r = RUN("probe", "--json", "--only", "hypervisor", "--qemu", "/nonexistent/qemu");
    CHECK_INT(r.status, 0);
    CHECK_CONTAINS(r.out, "\"state\": \"absent\"");
    CHECK_CONTAINS(r.out, "/nonexistent/qemu cannot be run");
    CHECK_STR(r.err, "");
    run_free(&r);
    r = RUN("query-platforms", "--qemu", "/nonexistent/qemu");
    CHECK_CONTAINS(r.out, "Hypervisor absent: /nonexistent/qemu cannot be run: No such file or "
                          "directory: platforms judged on the kernel alone\n");
    run_free(&r);
    r = RUN("query-platforms", "--qemu-timeout", "0");
    CHECK_INT(r.status, 2);
    CHECK_CONTAINS(r.err, "--qemu-timeout \"0\": expected 1 to 600000 (ms)");
    run_free(&r);
    r = RUN("probe", "--only", "kernel,hypervisr");
    CHECK_INT(r.status, 2);
    CHECK_CONTAINS(r.err, "parts are kernel, mdev, failover, vhost-user, hypervisor");
    run_free(&r);
}

/*
 * The seed-001 case: a kernel whose tap takes USO under a QEMU without the USO properties
 * (Debian 12: QEMU 7.2). query-platforms must not offer linux-6.2 and must say which QEMU
 * properties are missing; a kernel-only judgement would offer it as the default.
 */
TEST(query_platforms_here_needs_qemu_uso)
{
    struct gabi_catalog *cat = builtin_catalog();
    const struct gabi_hostcaps_hypervisor *hv;
    const struct gabi_hostcaps *h;
    struct gabi_probe *p;
    json_t *root, *nr, *e;
    struct run r;
    size_t i;
    bool kernel_uso, qemu_uso, found = false;

    REQUIRE(cat);
    p = probe_roots(cat, NULL, NULL, GABI_PROBE_KERNEL | GABI_PROBE_HYPERVISOR);
    REQUIRE(p);
    h = gabi_probe_hostcaps(p);
    hv = gabi_hostcaps_hypervisor(h);
    kernel_uso = gabi_hostcaps_cap(h, GABI_KCAP_TAP_USO4) == GABI_CAP_SUPPORTED;
    qemu_uso = hv->net_features & (1ull << GABI_NET_F_HOST_USO);
    if (!kernel_uso || hv->state != GABI_HV_PROBED || qemu_uso) {
        char why[160];

        snprintf(why, sizeof(why), "tap %s; QEMU %s %s", kernel_uso ? "takes USO" : "without USO",
                 gabi_hv_state_name(hv->state), hv->version ? hv->version : "");
        gabi_probe_free(p);
        gabi_catalog_free(cat);
        SKIP_CASE("it needs a tap that takes USO and a QEMU without host_uso (%s)", why);
    }
    r = RUN("query-platforms");
    CHECK_INT(r.status, 0);
    CHECK(!strstr(r.out, "linux-6.2        default"));
    CHECK_CONTAINS(r.out, "linux-6.2        not runnable: QEMU ");
    CHECK_CONTAINS(r.out, "has no virtio-net property guest_uso4, guest_uso6, host_uso\n");
    run_free(&r);
    r = RUN("query-platforms", "--json");
    CHECK_INT(r.status, 0);
    root = json_loads(r.out, 0, NULL);
    REQUIRE(root);
    CHECK(strcmp(json_string_value(json_object_get(root, "default")), "linux-6.2") != 0);
    CHECK_STR(json_string_value(json_object_get(json_object_get(root, "hypervisor"), "version")),
              hv->version);
    nr = json_object_get(root, "not_runnable");
    json_array_foreach (nr, i, e) {
        json_t *props = json_object_get(e, "missing_properties");

        if (strcmp(json_string_value(json_object_get(e, "name")), "linux-6.2") != 0)
            continue;
        found = true;
        CHECK_INT(json_object_size(json_object_get(e, "missing")), 0);
        CHECK_INT(json_array_size(props), 3);
        CHECK_STR(json_string_value(json_array_get(props, 2)), "host_uso");
    }
    CHECK(found);
    json_decref(root);
    run_free(&r);
    gabi_probe_free(p);
    gabi_catalog_free(cat);
}

TAP_MAIN()
