/* SPDX-License-Identifier: MIT */
/* The probe on fixture trees: mdev types, SR-IOV VFs, the migration_versions format, fake /dev
 * roots, and hostile input (malformed files, absurd sizes, symlink loops, over-long names). */

#include <sys/stat.h>

#include "tap.h"
#include "test_probe.h"

/* ---- tests/data/sysfs/host1 ------------------------------------------------------------ */

TEST(host1_mdev_types)
{
    struct gabi_catalog *cat = builtin_catalog();
    const struct gabi_probe_mdev_type *t;
    const struct gabi_hostcaps_device_type *ht;
    const struct gabi_hostcaps *h;
    struct gabi_probe *p;

    REQUIRE(cat);
    p = probe_roots(cat, fixture("host1"), NULL, GABI_PROBE_MDEV);
    REQUIRE(p);
    print_problems(p);
    CHECK_INT(gabi_probe_n_problems_total(p), 0);
    CHECK_INT(gabi_probe_n_mdev_types(p), 6);
    /* sorted by parent, then type */
    CHECK_STR(gabi_probe_mdev_type(p, 0)->parent, "0000:00:02.0");
    CHECK_STR(gabi_probe_mdev_type(p, 0)->id, "acme-vgpu-4");
    CHECK_STR(gabi_probe_mdev_type(p, 5)->id, "mtty-2");

    /* list form of migration_versions: loads all, writes the newest */
    t = find_mdev(p, "0000:00:02.0", "acme-vgpu-4");
    REQUIRE(t);
    CHECK_STR(t->name, "ACME vGPU 4");
    CHECK_STR(t->device_api, "vfio-pci");
    CHECK_STR(t->description, "framebuffer: 1024M; heads: 2");
    CHECK_INT(t->available_instances, 4);
    CHECK_INT(t->source, GABI_PROBE_VERSIONS_ATTRIBUTE);
    REQUIRE(t->loads.n == 3);
    CHECK_STR(t->loads.list[0], "3.2");
    CHECK_STR(t->loads.list[2], "3.0");
    REQUIRE(t->writes.n == 1);
    CHECK_STR(t->writes.list[0], "3.2");
    CHECK_CONTAINS(t->path, "host1/class/mdev_bus/0000:00:02.0/mdev_supported_types/acme-vgpu-4");

    /* range form */
    t = find_mdev(p, "0000:00:02.0", "acme-vgpu-8");
    REQUIRE(t);
    CHECK_INT(t->source, GABI_PROBE_VERSIONS_ATTRIBUTE);
    CHECK_STR(t->loads.version, "3.2");
    CHECK_STR(t->loads.minimum, "2.9");
    CHECK(gabi_versions_accepts(&t->loads, "3.0"));
    CHECK(!gabi_versions_accepts(&t->loads, "2.8"));

    /* no attribute: the catalog's rule; 0 available instances is kept as 0 */
    t = find_mdev(p, "mtty", "mtty-2");
    REQUIRE(t);
    CHECK_INT(t->source, GABI_PROBE_VERSIONS_CATALOG);
    CHECK_INT(t->available_instances, 0);
    CHECK(gabi_versions_accepts(&t->loads, "1.0"));
    CHECK_INT(find_mdev(p, "mtty", "mtty-1")->available_instances, 24);

    /* neither: reported, cannot migrate, and why */
    t = find_mdev(p, "0000:3b:00.0", "nvidia-35");
    REQUIRE(t);
    CHECK_INT(t->source, GABI_PROBE_VERSIONS_NONE);
    CHECK_INT(t->loads.n, 0);
    CHECK(t->loads.version == NULL);
    CHECK_CONTAINS(t->why, "no migration_versions attribute");
    CHECK_CONTAINS(t->why, "no rule for nvidia-35");

    /* hostcaps: one entry per type, instances summed over parents, versionless types left out */
    h = gabi_probe_hostcaps(p);
    CHECK_INT(gabi_hostcaps_n_device_types(h), 4);
    ht = find_host_type(h, "acme-vgpu-4");
    REQUIRE(ht);
    CHECK_INT(ht->available_instances, 7);
    CHECK_STR(ht->kind, "mdev");
    CHECK(find_host_type(h, "nvidia-35") == NULL);
    ht = find_host_type(h, "mtty-2");
    REQUIRE(ht);
    CHECK_INT(ht->available_instances, 0);
    gabi_probe_free(p);
    gabi_catalog_free(cat);
}

TEST(host1_failover)
{
    struct gabi_catalog *cat = builtin_catalog();
    const struct gabi_hostcaps_failover *f;
    const struct gabi_hostcaps *h;
    struct gabi_probe *p;

    REQUIRE(cat);
    p = probe_roots(cat, fixture("host1"), NULL, GABI_PROBE_FAILOVER);
    REQUIRE(p);
    print_problems(p);
    CHECK_INT(gabi_probe_n_problems_total(p), 0);
    h = gabi_probe_hostcaps(p);
    /* ens2f0 and the representor ens2f0r share the PF: its two VFs are listed once; ens2f1 has
     * none enabled; the VF's own netdev and lo are not PFs */
    REQUIRE(gabi_hostcaps_n_failover(h) == 2);
    f = gabi_hostcaps_failover(h, 0);
    CHECK_STR(f->address, "0000:5e:02.0");
    CHECK_STR(f->pf, "ens2f0");
    CHECK_STR(f->device, "8086:154c");
    CHECK_STR(f->driver, "iavf");
    CHECK_STR(f->mac, "52:54:00:24:00:01");
    CHECK(!f->in_use);
    f = gabi_hostcaps_failover(h, 1);
    CHECK_STR(f->address, "0000:5e:02.1");
    CHECK_STR(f->driver, "vfio-pci");
    CHECK(f->mac == NULL);
    CHECK_INT(gabi_hostcaps_n_device_types(h), 0); /* mdev was not asked for */
    gabi_probe_free(p);
    gabi_catalog_free(cat);
}

TEST(only_the_parts_asked_for)
{
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_probe *p;
    char *json;

    REQUIRE(cat);
    p = probe_roots(cat, fixture("host1"), "/nonexistent-dev-root", GABI_PROBE_MDEV);
    REQUIRE(p); /* the dev root is not looked at without the kernel part */
    CHECK_INT(gabi_probe_parts(p), GABI_PROBE_MDEV);
    CHECK_INT(gabi_probe_kcap(p, GABI_KCAP_TAP_CSUM)->state, GABI_CAP_UNKNOWN);
    CHECK(gabi_hostcaps_kernel(gabi_probe_hostcaps(p)) == NULL);
    json = gabi_hostcaps_to_json(gabi_probe_hostcaps(p));
    CHECK_CONTAINS(json, "\"capabilities\": {}");
    free(json);
    gabi_probe_free(p);
    gabi_catalog_free(cat);
}

/* ---- the migration_versions format ------------------------------------------------------ */

TEST(migration_versions_good)
{
    static const struct {
        const char *text;
        const char *loads;  /* "a b c" or "V..M" */
        const char *writes; /* "a b" */
    } cases[] = {
        {"3.2\n3.1\n3.0\n", "3.2 3.1 3.0", "3.2"},
        {"# newest first\n\n  5.3\n5.2  \n", "5.3 5.2", "5.3"},
        {"version 6.3\nminimum 6.1\n", "6.3..6.1", "6.3"},
        {"minimum 6.1\nversion 6.3", "6.3..6.1", "6.3"},
        {"version 2.0\nminimum 1.0\nwrites 2.0 1.5\n", "2.0..1.0", "2.0 1.5"},
        {"writes 1.4\n2.1\n1.4\n", "2.1 1.4", "1.4"},
        {"v1_rc-2+git~x\n", "v1_rc-2+git~x", "v1_rc-2+git~x"},
        {"\tversion\t1.0\t\nminimum 1.0\n", "1.0..1.0", "1.0"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct gabi_probe_versions *v = NULL;
        struct gabi_error err = {0};
        char got[256] = "", wr[256] = "";
        int r = gabi_probe_versions_parse("mv", cases[i].text, strlen(cases[i].text), &v, &err);

        CHECK_INT(r, 0);
        if (r < 0) {
            printf("# case %zu: %s: %s\n", i, err.where, err.message);
            continue;
        }
        if (v->loads.version)
            snprintf(got, sizeof(got), "%s..%s", v->loads.version, v->loads.minimum);
        for (size_t k = 0; k < v->loads.n; k++)
            snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", k ? " " : "",
                     v->loads.list[k]);
        for (size_t k = 0; k < v->writes.n; k++)
            snprintf(wr + strlen(wr), sizeof(wr) - strlen(wr), "%s%s", k ? " " : "",
                     v->writes.list[k]);
        CHECK_STR(got, cases[i].loads);
        CHECK_STR(wr, cases[i].writes);
        free(v);
    }
}

TEST(migration_versions_bad)
{
    static const struct {
        const char *text;
        const char *where;
        const char *message;
    } cases[] = {
        {"", "mv", "no versions"},
        {"# only a comment\n\n", "mv", "no versions"},
        {"3.2\nversion 3.1\n", "mv:2", "after a version list"},
        {"version 3.1\n3.0\n", "mv:2", "after \"version\"/\"minimum\" lines"},
        {"version 3.1\n", "mv", "\"version\" without \"minimum\""},
        {"minimum 3.1\n", "mv", "\"minimum\" without \"version\""},
        {"version 1.0\nminimum 2.0\n", "mv", "minimum \"2.0\" is newer than version \"1.0\""},
        {"version 1.0\nversion 1.1\nminimum 1.0\n", "mv:2", "\"version\" is given twice"},
        {"version 1.0 1.1\n", "mv:1", "takes exactly one version"},
        {"version\n", "mv:1", "\"version\" needs a value"},
        {"3.2\n3.1\n3.2\n", "mv:3", "\"3.2\" is listed twice"},
        {"3.2 beta\n", "mv:1", "neither a version"},
        {"stable 1.0\n", "mv:1", "neither a version"},
        {"-1.0\n", "mv:1", "is not a version"},
        {"1.0/../x\n", "mv:1", "is not a version"},
        {"1.0\r\n", "mv:1", "byte 0x0d is not printable ASCII"},
        {"1.\xc3\xa9\n", "mv:1", "byte 0xc3"},
        {"2.0\nwrites 3.0\n", "mv", "writes\" names 3.0, which the type does not load"},
        {"2.0\nwrites 2.0\nwrites 2.0\n", "mv:3", "\"writes\" is given twice"},
        {"2.0\nwrites 2.0 2.0\n", "mv:2", "listed twice"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct gabi_probe_versions *v = NULL;
        struct gabi_error err = {0};
        int r = gabi_probe_versions_parse("mv", cases[i].text, strlen(cases[i].text), &v, &err);

        CHECK_INT(r, -EINVAL);
        CHECK(v == NULL);
        CHECK_STR(err.where, cases[i].where);
        CHECK_CONTAINS(err.message, cases[i].message);
    }
}

TEST(migration_versions_bounds)
{
    struct gabi_probe_versions *v = NULL;
    struct gabi_error err = {0};
    char *big = malloc(GABI_PROBE_MAX_ATTR + 2), *many;
    char longv[80];
    size_t len = 0;

    REQUIRE(big);
    /* too large, and a NUL inside */
    memset(big, '1', GABI_PROBE_MAX_ATTR + 1);
    CHECK_INT(gabi_probe_versions_parse("mv", big, GABI_PROBE_MAX_ATTR + 1, &v, &err), -EINVAL);
    CHECK_CONTAINS(err.message, "larger than 4096");
    CHECK_INT(gabi_probe_versions_parse("mv", "1.0\0002.0\n", 8, &v, &err), -EINVAL);
    CHECK_CONTAINS(err.message, "NUL");
    /* a 65-character version */
    memset(longv, 'a', 65);
    longv[65] = '\0';
    CHECK_INT(gabi_probe_versions_parse("mv", longv, strlen(longv), &v, &err), -EINVAL);
    CHECK_CONTAINS(err.message, "is not a version");
    longv[64] = '\0';
    CHECK_INT(gabi_probe_versions_parse("mv", longv, strlen(longv), &v, &err), 0);
    free(v);
    v = NULL;
    /* 64 versions are fine, 65 are not */
    many = big;
    for (unsigned i = 0; i < 65; i++)
        len += (size_t)sprintf(many + len, "%u.0\n", 100 - i);
    CHECK_INT(gabi_probe_versions_parse("mv", many, len - 5, &v, &err), 0);
    if (v)
        CHECK_INT(v->loads.n, 64);
    free(v);
    v = NULL;
    CHECK_INT(gabi_probe_versions_parse("mv", many, len, &v, &err), -EINVAL);
    CHECK_STR(err.where, "mv:65");
    CHECK_CONTAINS(err.message, "more than 64 versions");
    free(big);
}

/* ---- /dev roots -------------------------------------------------------------------------- */

TEST(dev_root_without_tun)
{
    struct gabi_catalog *cat = builtin_catalog();
    const struct gabi_platform *ps[8];
    char *dir = tmpdir_new();
    struct gabi_probe *p;
    uint64_t f;

    REQUIRE(cat && dir);
    p = probe_roots(cat, NULL, dir, GABI_PROBE_KERNEL);
    REQUIRE(p);
    for (unsigned k = GABI_KCAP_TAP_VNET_HDR; k < GABI_KCAP_COUNT; k++) {
        const struct gabi_probe_kcap *c = gabi_probe_kcap(p, k);

        CHECK_INT(c->state, GABI_CAP_ABSENT);
        CHECK_INT(c->error, ENOENT);
        CHECK_CONTAINS(c->detail, dir);
        CHECK_INT(gabi_hostcaps_cap(gabi_probe_hostcaps(p), k), GABI_CAP_ABSENT);
    }
    CHECK_CONTAINS(gabi_probe_kcap(p, GABI_KCAP_TAP_USO4)->detail, "/net/tun");
    CHECK_CONTAINS(gabi_probe_kcap(p, GABI_KCAP_VHOST_NET)->detail, "/vhost-net");
    /* the flag set a capability would be tried with is known even when no tap could be made */
    CHECK_INT(gabi_probe_kcap(p, GABI_KCAP_TAP_USO4)->tun_flags, 0x61);
    for (size_t i = 0; i < GABI_PROBE_N_VNET_HDR; i++)
        CHECK_INT(gabi_probe_vnet_hdr(p, i)->state, GABI_CAP_ABSENT);
    CHECK_INT(gabi_probe_vnet_hdr(p, 2)->size, 20);
    CHECK_STR(gabi_probe_tap_name(p), "");
    CHECK_INT(gabi_probe_vhost_net_features(p, &f), -ENOENT);
    CHECK_INT(gabi_hostcaps_platforms(gabi_probe_hostcaps(p), ps, 8), 0);
    CHECK_INT(gabi_probe_n_problems_total(p), 0); /* absent is an answer, not a problem */
    gabi_probe_free(p);
    tmpdir_remove(dir);
    gabi_catalog_free(cat);
}

TEST(dev_root_with_impostors)
{
    struct gabi_catalog *cat = builtin_catalog();
    char *dir = tmpdir_new();
    struct gabi_probe *p;

    REQUIRE(cat && dir);
    /* net/tun a regular file; vhost-net a character device that is not vhost (/dev/null) */
    REQUIRE(put_text(dir, "net/tun", "not a device\n") == 0);
    REQUIRE(put_link(dir, "vhost-net", "/dev/null") == 0);
    p = probe_roots(cat, NULL, dir, GABI_PROBE_KERNEL);
    REQUIRE(p);
    CHECK_INT(gabi_probe_kcap(p, GABI_KCAP_TAP_CSUM)->state, GABI_CAP_ABSENT);
    CHECK_PROBLEM(p, "/net/tun", "not a character device");
    CHECK_INT(gabi_probe_kcap(p, GABI_KCAP_VHOST_NET)->state, GABI_CAP_ABSENT);
    CHECK_PROBLEM(p, "/vhost-net", "VHOST_GET_FEATURES");
    gabi_probe_free(p);

    /* net/tun a character device that is not tun */
    {
        char path[4096];
        snprintf(path, sizeof(path), "%s/net/tun", dir);
        REQUIRE(unlink(path) == 0);
    }
    REQUIRE(put_link(dir, "net/tun", "/dev/null") == 0);
    p = probe_roots(cat, NULL, dir, GABI_PROBE_KERNEL);
    REQUIRE(p);
    CHECK_INT(gabi_probe_kcap(p, GABI_KCAP_TAP_VNET_HDR)->state, GABI_CAP_ABSENT);
    CHECK_INT(gabi_probe_kcap(p, GABI_KCAP_TAP_USO6)->state, GABI_CAP_ABSENT);
    CHECK_PROBLEM(p, "/net/tun", "TUNGETFEATURES");
    gabi_probe_free(p);
    tmpdir_remove(dir);
    gabi_catalog_free(cat);
}

TEST(roots_that_do_not_exist)
{
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_probe_options o = {.sysfs_root = "/nonexistent/sys"};
    struct gabi_probe *p = NULL;
    struct gabi_error err = {0};

    REQUIRE(cat);
    CHECK_INT(gabi_probe_run(cat, &o, &p, &err), -ENOENT);
    CHECK(p == NULL);
    CHECK_STR(err.where, "/nonexistent/sys");
    CHECK_CONTAINS(err.message, "sysfs root");
    o = (struct gabi_probe_options){.dev_root = fixture("host1/class/net/lo/address")};
    CHECK_INT(gabi_probe_run(cat, &o, &p, &err), -ENOTDIR);
    CHECK_CONTAINS(err.where, "address");
    CHECK_CONTAINS(err.message, "dev root");
    gabi_catalog_free(cat);
}

/* ---- hostile trees ----------------------------------------------------------------------- */

TEST(committed_bad_tree)
{
    struct gabi_catalog *cat = builtin_catalog();
    const struct gabi_probe_mdev_type *t;
    const struct gabi_hostcaps *h;
    struct gabi_probe *p;

    REQUIRE(cat);
    p = probe_roots(cat, fixture("bad"), NULL, GABI_PROBE_MDEV | GABI_PROBE_FAILOVER);
    REQUIRE(p);
    h = gabi_probe_hostcaps(p);
    CHECK_PROBLEM(p, "mixed-1/migration_versions:2", "after a version list");
    CHECK_PROBLEM(p, "inverted-1/migration_versions", "minimum \"2.0\" is newer");
    CHECK_PROBLEM(p, "badver-1/migration_versions:1", "neither a version");
    CHECK_PROBLEM(p, "words-1/available_instances", "expected a decimal number, found \"lots\"");
    CHECK_PROBLEM(p, "huge-1/available_instances", "larger than 4294967294");
    CHECK_PROBLEM(p, "escape-1/name", "byte 0x1b");
    CHECK_PROBLEM(p, "nodevapi-1/device_api", "missing");
    CHECK_PROBLEM(p, "class/mdev_bus/nomdev/mdev_supported_types", "No such file");
    CHECK_PROBLEM(p, "eth5/device/sriov_numvfs", "more than sriov_totalvfs");
    CHECK_PROBLEM(p, "eth6/device/virtfn0/net/eth6v0/address", "malformed");
    CHECK_PROBLEM(p, "eth7/device/virtfn0", "not a PCI address");
    CHECK_PROBLEM(p, "eth8/device/virtfn0/vendor", "found \"intel\"");
    CHECK_PROBLEM(p, "eth8/device/virtfn1", "missing");
    CHECK_PROBLEM(p, "eth9/device/sriov_numvfs", "larger than 256");
    CHECK_INT(gabi_probe_n_problems_total(p), 14);

    /* malformed versions: reported, not migratable, not guessed from anywhere else */
    t = find_mdev(p, "bad0", "mixed-1");
    REQUIRE(t);
    CHECK_INT(t->source, GABI_PROBE_VERSIONS_NONE);
    CHECK_CONTAINS(t->why, "malformed");
    CHECK(find_host_type(h, "mixed-1") == NULL);
    /* a malformed count is unknown, not zero, and does not cost the type its versions */
    t = find_mdev(p, "bad0", "words-1");
    REQUIRE(t);
    CHECK_INT(t->available_instances, UINT32_MAX);
    CHECK(find_host_type(h, "words-1") != NULL);
    CHECK(find_mdev(p, "bad0", "escape-1")->name == NULL);
    /* the well-formed entries survive their neighbours */
    REQUIRE(find_host_type(h, "good-1"));
    CHECK_INT(find_host_type(h, "good-1")->writes.n, 2);
    REQUIRE(gabi_hostcaps_n_failover(h) == 1);
    CHECK_STR(gabi_hostcaps_failover(h, 0)->address, "0000:00:06.1");
    CHECK(gabi_hostcaps_failover(h, 0)->mac == NULL);
    gabi_probe_free(p);
    gabi_catalog_free(cat);
}

TEST(runtime_hostile_tree)
{
    static const char types[] = "class/mdev_bus/p0/mdev_supported_types";
    struct gabi_catalog *cat = builtin_catalog();
    char *dir = tmpdir_new(), rel[512], longname[201];
    char *mib = malloc(1u << 20);
    struct gabi_probe *p;

    REQUIRE(cat && dir && mib);
    memset(mib, '7', 1u << 20);
    /* symlink loops: a parent, an attribute, a netdev's device link */
    REQUIRE(put_link(dir, "class/mdev_bus/loop", "loop") == 0);
    snprintf(rel, sizeof(rel), "%s/t-loop/available_instances", types);
    REQUIRE(put_link(dir, rel, "available_instances") == 0);
    snprintf(rel, sizeof(rel), "%s/t-loop/migration_versions", types);
    REQUIRE(put_link(dir, rel, "../t-loop/migration_versions") == 0);
    REQUIRE(put_link(dir, "class/net/eth0/device", "../eth0/device") == 0);
    /* a directory that contains itself: walked at a fixed depth, never recursively */
    REQUIRE(put_link(dir, "class/mdev_bus/p1", ".") == 0);
    /* absurd sizes: a 1 MiB attribute, a huge count */
    snprintf(rel, sizeof(rel), "%s/t-big/migration_versions", types);
    REQUIRE(put_file(dir, rel, mib, 1u << 20) == 0);
    snprintf(rel, sizeof(rel), "%s/t-big/available_instances", types);
    REQUIRE(put_file(dir, rel, mib, 1u << 20) == 0);
    /* an over-long type name (200 bytes) */
    memset(longname, 'x', 200);
    longname[200] = '\0';
    snprintf(rel, sizeof(rel), "%s/%s/available_instances", types, longname);
    REQUIRE(put_text(dir, rel, "1\n") == 0);
    /* a FIFO where an attribute should be (opening it must not block) */
    snprintf(rel, sizeof(rel), "%s/%s/t-fifo", dir, types);
    REQUIRE(mkdir(rel, 0755) == 0);
    snprintf(rel, sizeof(rel), "%s/%s/t-fifo/available_instances", dir, types);
    REQUIRE(mkfifo(rel, 0644) == 0);
    /* a NUL byte in an attribute; a directory where a file should be */
    snprintf(rel, sizeof(rel), "%s/t-nul/name", types);
    REQUIRE(put_file(dir, rel, "a\0b\n", 4) == 0);
    snprintf(rel, sizeof(rel), "%s/t-nul/migration_versions/x", types);
    REQUIRE(put_text(dir, rel, "") == 0);

    p = probe_roots(cat, dir, NULL, GABI_PROBE_MDEV | GABI_PROBE_FAILOVER);
    REQUIRE(p);
    CHECK_PROBLEM(p, "class/mdev_bus/loop/mdev_supported_types", "Too many levels");
    CHECK_PROBLEM(p, "t-loop/available_instances", "Too many levels");
    CHECK_PROBLEM(p, "t-loop/migration_versions", "Too many levels");
    CHECK_PROBLEM(p, "class/net/eth0/device", "Too many levels");
    CHECK_PROBLEM(p, "class/mdev_bus/p1/mdev_supported_types", "No such file");
    CHECK_PROBLEM(p, "t-big/migration_versions", "larger than 4096 bytes");
    CHECK_PROBLEM(p, "t-big/available_instances", "larger than 63 bytes: refused");
    CHECK_PROBLEM(p, "p0/mdev_supported_types", "name longer than 127 bytes");
    CHECK_PROBLEM(p, "t-fifo/available_instances", "not a regular file");
    CHECK_PROBLEM(p, "t-nul/name", "NUL");
    CHECK_PROBLEM(p, "t-nul/migration_versions", "not a regular file");
    /* what could be read is still there; nothing malformed reached hostcaps */
    CHECK(find_mdev(p, "p0", "t-big") != NULL);
    CHECK_INT(find_mdev(p, "p0", "t-big")->source, GABI_PROBE_VERSIONS_NONE);
    CHECK_INT(gabi_hostcaps_n_device_types(gabi_probe_hostcaps(p)), 0);
    CHECK_INT(gabi_hostcaps_n_failover(gabi_probe_hostcaps(p)), 0);
    gabi_probe_free(p);
    free(mib);
    tmpdir_remove(dir);
    gabi_catalog_free(cat);
}

TEST(problems_are_bounded)
{
    struct gabi_catalog *cat = builtin_catalog();
    char *dir = tmpdir_new(), rel[256];
    struct gabi_probe *p;

    REQUIRE(cat && dir);
    for (unsigned i = 0; i < 100; i++) {
        snprintf(rel, sizeof(rel), "class/mdev_bus/p0/mdev_supported_types/t-%03u/device_api", i);
        REQUIRE(put_text(dir, rel, "vfio-pci\n") == 0); /* each lacks available_instances */
    }
    p = probe_roots(cat, dir, NULL, GABI_PROBE_MDEV);
    REQUIRE(p);
    CHECK_INT(gabi_probe_n_mdev_types(p), 100);
    CHECK_INT(gabi_probe_n_problems(p), GABI_PROBE_MAX_PROBLEMS);
    /* per type: available_instances missing, and no versions is not a problem */
    CHECK_INT(gabi_probe_n_problems_total(p), 100);
    CHECK(gabi_probe_problem(p, GABI_PROBE_MAX_PROBLEMS) == NULL);
    gabi_probe_free(p);
    tmpdir_remove(dir);
    gabi_catalog_free(cat);
}

TAP_MAIN()
