/* SPDX-License-Identifier: MIT */
/* hostcaps documents: parsing, derived platforms, building, and round trips. */

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "abi_fixtures.h"
#include "tap.h"

static struct gabi_hostcaps *load(const struct gabi_catalog *cat, const char *rel)
{
    struct gabi_hostcaps *h = NULL;
    struct gabi_error err = {0};

    if (gabi_hostcaps_load_file(cat, source_path(rel), &h, &err) < 0)
        printf("# %s: %s\n", err.where, err.message);
    return h;
}

TEST(example_hosts_parse)
{
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_hostcaps *old, *new;
    const struct gabi_platform *ps[16];

    REQUIRE(cat);
    old = load(cat, "docs/examples/host-2019.json");
    new = load(cat, "docs/examples/host-2024.json");
    REQUIRE(old && new);
    CHECK_STR(gabi_hostcaps_host(old), "rack1-2019");
    CHECK_INT(gabi_hostcaps_cap(old, GABI_KCAP_TAP_USO4), GABI_CAP_UNSUPPORTED);
    CHECK_INT(gabi_hostcaps_cap(new, GABI_KCAP_TAP_USO4), GABI_CAP_SUPPORTED);
    /* platforms are derived from the kernel capabilities */
    CHECK(!gabi_hostcaps_runs_platform(old, gabi_catalog_find_platform(cat, "linux-6.2")));
    CHECK(gabi_hostcaps_runs_platform(new, gabi_catalog_find_platform(cat, "linux-6.2")));
    CHECK_INT(gabi_hostcaps_platforms(old, ps, 16), 5);
    CHECK_STR(ps[0]->name, "linux-5.14");
    CHECK(gabi_hostcaps_runs_mode(old, gabi_catalog_find_mode(cat, "dpdk.vhost-net.16.11")));
    CHECK(!gabi_hostcaps_runs_mode(old, gabi_catalog_find_mode(cat, "upstream.guestabi-net.v2")));
    /* mtty-1 lists no versions: the catalog's rule fills them in */
    REQUIRE(gabi_hostcaps_n_device_types(old) == 1);
    CHECK(gabi_versions_accepts(&gabi_hostcaps_device_type(old, 0)->loads, "1.0"));
    CHECK_INT(gabi_hostcaps_device_type(old, 0)->available_instances, 24);
    CHECK_INT(gabi_hostcaps_n_failover(new), 2);
    gabi_hostcaps_free(old);
    gabi_hostcaps_free(new);
    gabi_catalog_free(cat);
}

TEST(round_trip_through_json)
{
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_hostcaps *h, *again;
    char *a, *b;

    REQUIRE(cat);
    h = load(cat, "docs/examples/host-2024.json");
    REQUIRE(h);
    a = gabi_hostcaps_to_json(h);
    REQUIRE(a);
    again = hostcaps_from(cat, a);
    REQUIRE(again);
    b = gabi_hostcaps_to_json(again);
    CHECK_STR(a, b);
    CHECK_CONTAINS(a, "\"linux-6.2\"");
    free(a);
    free(b);
    gabi_hostcaps_free(h);
    gabi_hostcaps_free(again);
    gabi_catalog_free(cat);
}

TEST(built_like_a_probe)
{
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_hostcaps *h;
    const struct gabi_mode *modes[32];
    const struct gabi_mode *v2;
    struct gabi_hostcaps_backend b = {.name = "net0", .cls = GABI_CLASS_NET, .has_offer = true};
    char *text;

    REQUIRE(cat);
    h = gabi_hostcaps_new(cat, "probed", "6.18.0");
    REQUIRE(h);
    CHECK(!gabi_hostcaps_runs_platform(h, gabi_catalog_find_platform(cat, "linux-4.13")));
    for (unsigned k = GABI_KCAP_TAP_VNET_HDR; k <= GABI_KCAP_TAP_USO6; k++)
        gabi_hostcaps_set_cap(h, k, GABI_CAP_SUPPORTED);
    gabi_hostcaps_set_cap(h, GABI_KCAP_VHOST_NET, GABI_CAP_ABSENT);
    CHECK(gabi_hostcaps_runs_platform(h, gabi_catalog_find_platform(cat, "linux-6.2")));
    gabi_hostcaps_set_cap(h, GABI_KCAP_TAP_USO6, GABI_CAP_NOT_PERMITTED);
    CHECK(!gabi_hostcaps_runs_platform(h, gabi_catalog_find_platform(cat, "linux-6.2")));

    v2 = gabi_catalog_find_mode(cat, "upstream.guestabi-net.v2");
    b.features = v2->features;
    b.protocol_features = v2->protocol_features;
    b.max_queue_pairs = 4;
    b.max_queue_size = 1024;
    b.n_modes = gabi_catalog_modes_for_offer(cat, GABI_CLASS_NET, b.features, b.protocol_features,
                                             4, 1024, modes, 32);
    b.modes = modes;
    CHECK_INT(b.n_modes, 2); /* v2 and v1 */
    REQUIRE(gabi_hostcaps_add_backend(h, &b) == 0);
    CHECK(gabi_hostcaps_runs_mode(h, v2));
    text = gabi_hostcaps_to_json(h);
    CHECK_CONTAINS(text, "\"tap.uso6\": \"not-permitted\"");
    CHECK_CONTAINS(text, "\"vhost-net\": \"absent\"");
    CHECK_CONTAINS(text, "\"VIRTIO_RING_F_EVENT_IDX\"");
    free(text);
    gabi_hostcaps_free(h);
    gabi_catalog_free(cat);
}

TEST(bad_hostcaps)
{
    static const struct {
        const char *doc, *where, *message;
    } cases[] = {
        {"{\"schema\": \"guestabi.hostcaps/1\"}", "test.json: $", "missing required key \"host\""},
        {"{\"schema\": \"guestabi.hostcaps/1\", \"host\": \"h\", \"backends\": [{\"name\": \"b\", "
         "\"class\": \"virtio-net\", \"modes\": [\"upstream.guestabi-net.v9\"]}]}",
         "test.json: $.backends[0].modes[0]", "did you mean upstream.guestabi-net.v1"},
        {"{\"schema\": \"guestabi.hostcaps/1\", \"host\": \"h\", \"backends\": [{\"name\": \"b\", "
         "\"class\": \"virtio-blk\", \"modes\": [\"upstream.guestabi-net.v1\"]}]}",
         "test.json: $.backends[0].modes[0]", "is a virtio-net mode"},
        {"{\"schema\": \"guestabi.hostcaps/1\", \"host\": \"h\", \"kernel\": {\"capabilities\": "
         "{\"tap.uso\": \"supported\"}}}",
         "test.json: $.kernel.capabilities.tap.uso", "tap.uso4"},
        {"{\"schema\": \"guestabi.hostcaps/1\", \"host\": \"h\", \"kernel\": {\"capabilities\": "
         "{\"tap.uso4\": \"yes\"}}}",
         "test.json: $.kernel.capabilities.tap.uso4", "unknown capability state \"yes\""},
        {"{\"schema\": \"guestabi.hostcaps/1\", \"host\": \"h\", \"device_types\": [{\"name\": "
         "\"nvidia-35\"}]}",
         "test.json: $.device_types[0]", "the catalog has no rule"},
        {"{\"schema\": \"guestabi.hostcaps/1\", \"host\": \"h\", \"platforms\": [\"linux-6.3\"]}",
         "test.json: $.platforms[0]", "unknown platform"},
        {"{\"schema\": \"guestabi.hostcaps/1\", \"host\": 7}", "test.json: $.host",
         "expected a string, got an integer"},
    };
    struct gabi_catalog *cat = builtin_catalog();

    REQUIRE(cat);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct gabi_hostcaps *h = NULL;
        struct gabi_error err = {0};
        int r = gabi_hostcaps_parse(cat, "test.json", cases[i].doc, strlen(cases[i].doc), &h, &err);

        CHECK_INT(r, -EINVAL);
        CHECK(h == NULL);
        CHECK_STR(err.where, cases[i].where);
        CHECK_CONTAINS(err.message, cases[i].message);
    }
    gabi_catalog_free(cat);
}

TEST(declared_platforms_narrow)
{
    static const char doc[] =
        "{\"schema\": \"guestabi.hostcaps/1\", \"host\": \"h\", \"kernel\": {\"capabilities\": "
        "{\"tap.vnet_hdr\": \"supported\", \"tap.csum\": \"supported\", \"tap.tso4\": "
        "\"supported\", \"tap.tso6\": \"supported\", \"tap.tso_ecn\": \"supported\"}}, "
        "\"platforms\": [\"linux-4.14\", \"linux-6.2\"]}";
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_hostcaps *h;
    const struct gabi_platform *ps[8];

    REQUIRE(cat);
    h = hostcaps_from(cat, doc);
    REQUIRE(h);
    /* 6.2 is declared but the kernel cannot run it; 4.13 it could, but is not declared */
    CHECK_INT(gabi_hostcaps_platforms(h, ps, 8), 1);
    CHECK_STR(ps[0]->name, "linux-4.14");
    gabi_hostcaps_free(h);
    gabi_catalog_free(cat);
}

/* A named pipe given as a document is refused at once (it could block for ever); so are
 * directories. alarm() turns a hang into a failure instead of a stuck test. */
TEST(non_regular_documents_refused)
{
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_hostcaps *h = NULL;
    struct gabi_pin *pin = NULL;
    struct gabi_error err = {0};
    char dir[] = "/tmp/gabi-fifo-XXXXXX", fifo[64];

    REQUIRE(cat);
    REQUIRE(mkdtemp(dir));
    snprintf(fifo, sizeof(fifo), "%s/doc.json", dir);
    REQUIRE(mkfifo(fifo, 0600) == 0);
    alarm(10);
    CHECK_INT(gabi_hostcaps_load_file(cat, fifo, &h, &err), -ESPIPE);
    CHECK_STR(err.where, fifo);
    CHECK_CONTAINS(err.message, "not a regular file");
    CHECK_CONTAINS(err.message, "\"-\"");
    CHECK_INT(gabi_pin_load_file(cat, fifo, &pin, &err), -ESPIPE);
    CHECK_INT(gabi_pin_load_file(cat, dir, &pin, &err), -ESPIPE);
    alarm(0);
    unlink(fifo);
    rmdir(dir);
    gabi_catalog_free(cat);
}

TAP_MAIN()
