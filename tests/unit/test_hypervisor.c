/* SPDX-License-Identifier: MIT */
/* The hypervisor half of the engine: hostcaps' "hypervisor" member, platforms that need QEMU's
 * properties as well as the kernel's capabilities, machine types in pins, check, pick and the
 * fleet filter agreeing. Fixtures: tests/data/hypervisor. */

#include "abi_fixtures.h"
#include "tap.h"

static struct gabi_hostcaps *load_host(const struct gabi_catalog *cat, const char *name)
{
    char rel[256];
    struct gabi_hostcaps *h = NULL;
    struct gabi_error err = {0};

    snprintf(rel, sizeof(rel), "tests/data/hypervisor/%s", name);
    if (gabi_hostcaps_load_file(cat, source_path(rel), &h, &err) < 0)
        printf("# %s: %s: %s\n", name, err.where, err.message);
    return h;
}

static struct gabi_pin *load_pin(const struct gabi_catalog *cat, const char *name)
{
    char rel[256];
    struct gabi_pin *p = NULL;
    struct gabi_error err = {0};

    snprintf(rel, sizeof(rel), "tests/data/hypervisor/%s", name);
    if (gabi_pin_load_file(cat, source_path(rel), &p, &err) < 0)
        printf("# %s: %s: %s\n", name, err.where, err.message);
    return p;
}

static bool runs(const struct gabi_catalog *cat, const struct gabi_hostcaps *h, const char *pl)
{
    return gabi_hostcaps_runs_platform(h, gabi_catalog_find_platform(cat, pl));
}

/* The error parsing `hypervisor` (a JSON object text) inside an otherwise valid document. */
static const char *hv_error(const struct gabi_catalog *cat, const char *hypervisor)
{
    static struct gabi_error err;
    struct gabi_hostcaps *h = NULL;
    char doc[2048];

    snprintf(doc, sizeof(doc),
             "{\"schema\": \"guestabi.hostcaps/1\", \"host\": \"x\", \"hypervisor\": %s}",
             hypervisor);
    memset(&err, 0, sizeof(err));
    if (gabi_hostcaps_parse(cat, "h.json", doc, strlen(doc), &h, &err) == 0) {
        gabi_hostcaps_free(h);
        return "";
    }
    return err.message;
}

TEST(platforms_need_the_hypervisor_half)
{
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_hostcaps *q72, *q82, *q10, *none, *absent;

    REQUIRE(cat);
    q72 = load_host(cat, "host-qemu72-uso.json");
    q82 = load_host(cat, "host-qemu82-uso.json");
    q10 = load_host(cat, "host-qemu10-uso.json");
    none = load_host(cat, "host-kernel-only-uso.json");
    absent = load_host(cat, "host-qemu-absent.json");
    REQUIRE(q72 && q82 && q10 && none && absent);
    /* every one of them has a USO kernel */
    CHECK(!runs(cat, q72, "linux-6.2"));
    CHECK(runs(cat, q72, "linux-5.14"));
    CHECK(runs(cat, q82, "linux-6.2"));
    CHECK(runs(cat, q10, "linux-6.2")); /* properties derived from "version": "10.0.2" */
    CHECK(runs(cat, none, "linux-6.2"));
    CHECK(runs(cat, absent, "linux-6.2"));
    CHECK_INT(gabi_hostcaps_hypervisor(none)->state, GABI_HV_UNKNOWN);
    CHECK_INT(gabi_hostcaps_hypervisor(absent)->state, GABI_HV_ABSENT);
    CHECK_INT(
        gabi_hostcaps_platform_missing_features(q72, gabi_catalog_find_platform(cat, "linux-6.2")),
        (1ull << GABI_NET_F_GUEST_USO4) | (1ull << GABI_NET_F_GUEST_USO6) |
            (1ull << GABI_NET_F_HOST_USO));
    CHECK(gabi_hostcaps_has_machine(q72, "pc-q35-7.2"));
    CHECK(!gabi_hostcaps_has_machine(q72, "pc-q35-8.2"));
    CHECK(!gabi_hostcaps_has_machine(none, "pc-q35-7.2"));
    gabi_hostcaps_free(q72);
    gabi_hostcaps_free(q82);
    gabi_hostcaps_free(q10);
    gabi_hostcaps_free(none);
    gabi_hostcaps_free(absent);
    gabi_catalog_free(cat);
}

TEST(check_names_the_missing_half)
{
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_hostcaps *q72, *q82;
    struct gabi_pin *pin;
    struct gabi_verdict *v = NULL;
    const struct gabi_reason *r;

    REQUIRE(cat);
    q72 = load_host(cat, "host-qemu72-uso.json");
    q82 = load_host(cat, "host-qemu82-uso.json");
    pin = load_pin(cat, "vm-uso-q35-8.2.json");
    REQUIRE(q72 && q82 && pin);
    CHECK_STR(gabi_pin_machine(pin), "pc-q35-8.2");
    REQUIRE(gabi_check(cat, pin, q72, &v) == 0);
    CHECK(!gabi_verdict_ok(v));
    REQUIRE(gabi_verdict_n_reasons(v) == 4);
    r = gabi_verdict_reason(v, 2);
    CHECK_STR(r->key, "hypervisor");
    CHECK_STR(r->message,
              "QEMU 7.2.22 on host deb12-a has no virtio-net property host_uso: "
              "linux-6.2's VIRTIO_NET_F_HOST_USO cannot be offered (QEMU 8.2 added it)");
    CHECK_STR(r->wanted, "linux-6.2: host_uso");
    r = find_reason(v, "", "machine");
    REQUIRE(r);
    CHECK_STR(r->wanted, "pc-q35-8.2");
    CHECK_STR(r->offered, "pc-q35-7.2, pc-q35-7.1, pc-q35-7.0, pc-q35-6.2");
    CHECK(!find_reason(v, "", "platform")); /* the kernel half is there */
    CHECK(!gabi_check_ok(pin, q72));
    gabi_verdict_free(v);
    REQUIRE(gabi_check(cat, pin, q82, &v) == 0);
    CHECK(gabi_verdict_ok(v));
    CHECK_STR(find_choice(v, "machine", "machine"), "pc-q35-8.2");
    CHECK(!find_choice(v, "hypervisor", "hypervisor"));
    CHECK(gabi_check_ok(pin, q82));
    gabi_verdict_free(v);
    gabi_pin_free(pin);
    gabi_hostcaps_free(q72);
    gabi_hostcaps_free(q82);
    gabi_catalog_free(cat);
}

/* Older documents: no hypervisor member means unknown, judged on the kernel alone, and said. */
TEST(unknown_hypervisor_is_said)
{
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_hostcaps *none, *absent;
    struct gabi_pin *pin;
    struct gabi_verdict *v = NULL;
    const char *c;

    REQUIRE(cat);
    none = load_host(cat, "host-kernel-only-uso.json");
    absent = load_host(cat, "host-qemu-absent.json");
    pin = load_pin(cat, "vm-uso-q35-8.2.json");
    REQUIRE(none && absent && pin);
    REQUIRE(gabi_check(cat, pin, none, &v) == 0);
    CHECK(gabi_verdict_ok(v));
    c = find_choice(v, "hypervisor", "hypervisor");
    REQUIRE(c);
    CHECK_CONTAINS(c, "unknown on host handwritten-d");
    CHECK_CONTAINS(c, "platform linux-6.2 judged on the kernel alone");
    CHECK_CONTAINS(find_choice(v, "machine", "machine"), "pc-q35-8.2 (not checked");
    gabi_verdict_free(v);
    REQUIRE(gabi_check(cat, pin, absent, &v) == 0);
    CHECK(gabi_verdict_ok(v));
    CHECK_CONTAINS(find_choice(v, "hypervisor", "hypervisor"),
                   "absent on host noqemu-e (qemu-system-x86_64 not found on PATH");
    gabi_verdict_free(v);
    gabi_pin_free(pin);
    gabi_hostcaps_free(none);
    gabi_hostcaps_free(absent);
    gabi_catalog_free(cat);
}

TEST(pick_over_qemu_versions)
{
    struct gabi_catalog *cat = builtin_catalog();
    const struct gabi_hostcaps *hosts[2];
    struct gabi_hostcaps *q72, *q82, *q10;
    struct gabi_verdict *v = NULL;

    REQUIRE(cat);
    q72 = load_host(cat, "host-qemu72-uso.json");
    q82 = load_host(cat, "host-qemu82-uso.json");
    q10 = load_host(cat, "host-qemu10-uso.json");
    REQUIRE(q72 && q82 && q10);
    /* QEMU 10 and QEMU 7.2, both on USO kernels: no USO platform */
    hosts[0] = q10;
    hosts[1] = q72;
    REQUIRE(gabi_pick(cat, hosts, 2, &v) == 0);
    CHECK(gabi_verdict_ok(v));
    CHECK_STR(find_choice(v, "platform", "platform"), "linux-5.14");
    CHECK_STR(find_choice(v, "pc-q35", "machine"), "pc-q35-7.2");
    CHECK_STR(find_choice(v, "pc-i440fx", "machine"), "pc-i440fx-7.2");
    CHECK(!find_choice(v, "hypervisor", "hypervisor"));
    gabi_verdict_free(v);
    /* QEMU 10 and QEMU 8.2: USO on both */
    hosts[1] = q82;
    REQUIRE(gabi_pick(cat, hosts, 2, &v) == 0);
    CHECK_STR(find_choice(v, "platform", "platform"), "linux-6.2");
    CHECK_STR(find_choice(v, "pc-q35", "machine"), "pc-q35-8.2");
    gabi_verdict_free(v);
    gabi_hostcaps_free(q72);
    gabi_hostcaps_free(q82);
    gabi_hostcaps_free(q10);
    gabi_catalog_free(cat);
}

/* The fleet table and check agree host by host, for pins with and without a machine type. */
TEST(fleet_agrees_with_check)
{
    static const char *const hosts_files[] = {"host-qemu72-uso.json", "host-qemu82-uso.json",
                                              "host-qemu10-uso.json", "host-kernel-only-uso.json",
                                              "host-qemu-absent.json"};
    static const char *const pin_files[] = {"vm-uso-q35-8.2.json", "vm-q35-7.2.json"};
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_hostcaps *hosts[5];
    struct gabi_fleet *f = NULL;
    size_t ok[5], want_n[2] = {4, 5};

    REQUIRE(cat);
    for (size_t i = 0; i < 5; i++) {
        hosts[i] = load_host(cat, hosts_files[i]);
        REQUIRE(hosts[i]);
    }
    REQUIRE(gabi_fleet_new(cat, (const struct gabi_hostcaps *const *)hosts, 5, &f) == 0);
    for (size_t p = 0; p < 2; p++) {
        struct gabi_pin *pin = load_pin(cat, pin_files[p]);
        size_t n, k = 0;

        REQUIRE(pin);
        n = gabi_fleet_filter(f, pin, ok);
        CHECK_INT(n, want_n[p]);
        for (size_t i = 0; i < 5; i++) {
            struct gabi_verdict *v = NULL;
            bool in = k < n && ok[k] == i;

            REQUIRE(gabi_check(cat, pin, hosts[i], &v) == 0);
            CHECK_INT(in, gabi_verdict_ok(v));
            CHECK_INT(gabi_check_ok(pin, hosts[i]), gabi_verdict_ok(v));
            k += in;
            gabi_verdict_free(v);
        }
        gabi_pin_free(pin);
    }
    gabi_fleet_free(f);
    for (size_t i = 0; i < 5; i++)
        gabi_hostcaps_free(hosts[i]);
    gabi_catalog_free(cat);
}

TEST(document_round_trip)
{
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_hostcaps *h, *back;
    const struct gabi_hostcaps_hypervisor *a, *b;
    struct gabi_pin *pin, *pin2;
    char *text;

    REQUIRE(cat);
    h = load_host(cat, "host-qemu10-uso.json");
    REQUIRE(h);
    text = gabi_hostcaps_to_json(h);
    REQUIRE(text);
    CHECK_CONTAINS(text, "\"host_uso\"");
    back = hostcaps_from(cat, text);
    REQUIRE(back);
    a = gabi_hostcaps_hypervisor(h);
    b = gabi_hostcaps_hypervisor(back);
    CHECK_INT(b->state, GABI_HV_PROBED);
    CHECK_STR(b->version, "10.0.2");
    CHECK(a->net_features == b->net_features);
    CHECK_INT(b->n_machines, a->n_machines);
    CHECK(runs(cat, back, "linux-6.2"));
    free(text);
    gabi_hostcaps_free(back);
    gabi_hostcaps_free(h);
    pin = load_pin(cat, "vm-uso-q35-8.2.json");
    REQUIRE(pin);
    text = gabi_pin_to_json(pin);
    REQUIRE(text);
    pin2 = pin_from(cat, text);
    REQUIRE(pin2);
    CHECK_STR(gabi_pin_machine(pin2), "pc-q35-8.2");
    free(text);
    gabi_pin_free(pin2);
    gabi_pin_free(pin);
    gabi_catalog_free(cat);
}

TEST(document_errors)
{
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_hostcaps *h;

    REQUIRE(cat);
    CHECK_CONTAINS(
        hv_error(cat, "{\"version\": \"9.0\", \"virtio_net_properties\": [\"host_usoo\"]}"),
        "unknown virtio-net feature property \"host_usoo\"; did you mean host_uso");
    CHECK_CONTAINS(hv_error(cat, "{\"state\": \"absent\", \"version\": \"9.0\"}"),
                   "a hypervisor in state \"absent\" has no version");
    CHECK_CONTAINS(hv_error(cat, "{\"state\": \"sleeping\"}"), "unknown hypervisor state");
    CHECK_CONTAINS(hv_error(cat, "{\"machine_types\": []}"), "needs a \"version\"");
    CHECK_CONTAINS(hv_error(cat, "{\"version\": \"9.0\", \"machine_types\": [\"q35\", \"q35\"]}"),
                   "machine type \"q35\" is listed twice");
    CHECK_CONTAINS(hv_error(cat, "{\"version\": \"9.0\", \"machine_types\": [\"pc q35\"]}"),
                   "without spaces");
    CHECK_CONTAINS(hv_error(cat, "{\"name\": \"xen\", \"version\": \"4.17\"}"), "\"qemu\" only");
    CHECK_CONTAINS(hv_error(cat, "{\"version\": \"9.0\", \"machines\": []}"),
                   "unknown key \"machines\"");
    /* a stated version without a property list: the properties that version has */
    h = hostcaps_from(cat, "{\"schema\": \"guestabi.hostcaps/1\", \"host\": \"x\", "
                           "\"hypervisor\": {\"version\": \"8.1.5\"}}");
    REQUIRE(h);
    CHECK(!(gabi_hostcaps_hypervisor(h)->net_features & (1ull << GABI_NET_F_HOST_USO)));
    CHECK(gabi_hostcaps_hypervisor(h)->net_features & (1ull << GABI_NET_F_HOST_UFO));
    gabi_hostcaps_free(h);
    h = hostcaps_from(cat, "{\"schema\": \"guestabi.hostcaps/1\", \"host\": \"x\", "
                           "\"hypervisor\": {\"version\": \"8.2.0\"}}");
    REQUIRE(h);
    CHECK(gabi_hostcaps_hypervisor(h)->net_features & (1ull << GABI_NET_F_HOST_USO));
    gabi_hostcaps_free(h);
    CHECK(!pin_from(cat, "{\"schema\": \"guestabi.pin/1\", \"vm\": \"a\", \"machine\": \"pc "
                         "q35\", \"devices\": []}"));
    gabi_catalog_free(cat);
}

TAP_MAIN()
