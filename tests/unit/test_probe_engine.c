/* SPDX-License-Identifier: MIT */
/* Probed hostcaps through the engine: JSON round trips, check, pick, and the vhost-user hook. */

#include "tap.h"
#include "test_probe.h"

/* host1's sysfs fixture with a /dev root that has no tun (a fixture-limited kernel). */
static struct gabi_probe *probe_limited_host1(const struct gabi_catalog *cat, char **ret_dir)
{
    *ret_dir = tmpdir_new();
    if (!*ret_dir)
        return NULL;
    return probe_roots(cat, fixture("host1"), *ret_dir,
                       GABI_PROBE_KERNEL | GABI_PROBE_MDEV | GABI_PROBE_FAILOVER);
}

static struct gabi_verdict *check(const struct gabi_catalog *cat, const struct gabi_hostcaps *h,
                                  const char *pin_text)
{
    struct gabi_verdict *v = NULL;
    struct gabi_pin *pin = pin_from(cat, pin_text);

    if (pin && gabi_check(cat, pin, h, &v) < 0)
        v = NULL;
    gabi_pin_free(pin);
    return v;
}

static int fake_front_end(const struct gabi_probe_vhost_user *b, struct gabi_probe_offer *ret,
                          struct gabi_error *reterr, void *userdata)
{
    const struct gabi_catalog *cat = userdata;
    const struct gabi_mode *v2 = gabi_catalog_find_mode(cat, "upstream.guestabi-net.v2");

    if (strcmp(b->name, "down0") == 0)
        return gabi_error_set(reterr, -ECONNREFUSED, b->socket, "connect: Connection refused");
    if (strcmp(b->name, "weird0") == 0) {
        *ret = (struct gabi_probe_offer){.max_queue_pairs = 0, .max_queue_size = 256};
        return 0;
    }
    *ret = (struct gabi_probe_offer){.features = v2->features,
                                     .protocol_features = v2->protocol_features,
                                     .max_queue_pairs = 4,
                                     .max_queue_size = 1024};
    return 0;
}

TEST(json_round_trip)
{
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_hostcaps *again, *own;
    struct gabi_probe *p;
    char *dir = NULL, *a, *b;

    REQUIRE(cat);
    p = probe_limited_host1(cat, &dir);
    REQUIRE(p);
    a = gabi_hostcaps_to_json(gabi_probe_hostcaps(p));
    REQUIRE(a);
    again = hostcaps_from(cat, a);
    REQUIRE(again);
    b = gabi_hostcaps_to_json(again);
    CHECK_STR(a, b);
    CHECK_CONTAINS(a, "\"tap.uso4\": \"absent\"");
    CHECK_CONTAINS(a, "\"acme-vgpu-4\"");
    CHECK_CONTAINS(a, "\"0000:5e:02.1\"");
    CHECK(strstr(a, "nvidia-35") == NULL);
    CHECK_INT(gabi_hostcaps_n_device_types(again), 4);
    CHECK_INT(gabi_hostcaps_n_failover(again), 2);
    free(b);
    /* the document outlives the probe result it is taken from */
    own = gabi_probe_hostcaps_steal(p);
    CHECK(gabi_probe_hostcaps(p) == NULL);
    gabi_probe_free(p);
    REQUIRE(own);
    b = gabi_hostcaps_to_json(own);
    CHECK_STR(a, b);
    gabi_hostcaps_free(own);
    free(a);
    free(b);
    gabi_hostcaps_free(again);
    tmpdir_remove(dir);
    gabi_catalog_free(cat);
}

/* The engine refuses a linux-6.2 pin on a host whose probe found no USO, naming the
 * capability and what the probe answered. */
TEST(linux_6_2_pin_refused_on_a_limited_host)
{
    struct gabi_catalog *cat = builtin_catalog();
    const struct gabi_reason *r = NULL;
    struct gabi_verdict *v;
    struct gabi_probe *p;
    char *dir = NULL;

    REQUIRE(cat);
    p = probe_limited_host1(cat, &dir);
    REQUIRE(p);
    v = check(cat, gabi_probe_hostcaps(p),
              "{\"schema\": \"guestabi.pin/1\", \"vm\": \"vm1\", \"platform\": \"linux-6.2\", "
              "\"devices\": []}");
    REQUIRE(v);
    CHECK(!gabi_verdict_ok(v));
    for (size_t i = 0; i < gabi_verdict_n_reasons(v); i++) {
        const struct gabi_reason *x = gabi_verdict_reason(v, i);
        if (strcmp(x->wanted, "linux-6.2: tap.uso4") == 0)
            r = x;
    }
    REQUIRE(r);
    CHECK_STR(r->key, "platform");
    CHECK_STR(r->offered, "tap.uso4: absent");
    CHECK_STR(r->host, "fixture");
    CHECK_CONTAINS(r->message, "needs kernel capability tap.uso4");
    CHECK_CONTAINS(r->message, "GUEST_USO4");
    gabi_verdict_free(v);
    gabi_probe_free(p);
    tmpdir_remove(dir);
    gabi_catalog_free(cat);
}

TEST(state_versions_checked_against_probed_types)
{
    static const struct {
        const char *device; /* "type", "version" */
        const char *type, *version;
        bool ok;
        const char *key; /* the reason's key when refused */
    } cases[] = {
        {"gpu0", "acme-vgpu-4", "3.1", true, NULL},
        {"gpu0", "acme-vgpu-4", "2.9", false, "state_version"},
        {"gpu0", "acme-vgpu-8", "2.9", true, NULL},
        {"gpu0", "acme-vgpu-8", "2.8", false, "state_version"},
        {"serial0", "mtty-1", "1.0", true, NULL},
        {"serial0", "mtty-2", "1.0", false, "available_instances"},
        /* a type the probe found but that publishes no versions: refused, named */
        {"gpu1", "nvidia-35", "1.0", false, "device_type"},
    };
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_probe *p;
    char *dir = NULL;

    REQUIRE(cat);
    p = probe_limited_host1(cat, &dir);
    REQUIRE(p);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char pin[512];
        struct gabi_verdict *v;

        snprintf(pin, sizeof(pin),
                 "{\"schema\": \"guestabi.pin/1\", \"vm\": \"vm1\", \"devices\": [{\"id\": "
                 "\"%s\", \"class\": \"mdev\", \"type\": \"%s\", \"state_version\": \"%s\"}]}",
                 cases[i].device, cases[i].type, cases[i].version);
        v = check(cat, gabi_probe_hostcaps(p), pin);
        REQUIRE(v);
        CHECK_INT(gabi_verdict_ok(v), cases[i].ok);
        if (!cases[i].ok) {
            const struct gabi_reason *r = find_reason(v, cases[i].device, cases[i].key);
            if (!r)
                TAP_FAIL("case %zu: no reason %s for %s", i, cases[i].key, cases[i].device);
            else
                CHECK_CONTAINS(r->message, cases[i].type);
        }
        gabi_verdict_free(v);
    }
    gabi_probe_free(p);
    tmpdir_remove(dir);
    gabi_catalog_free(cat);
}

TEST(failover_checked_against_probed_vfs)
{
    static const struct gabi_probe_vhost_user net0 = {"net0", GABI_CLASS_NET, "/run/net0.sock"};
    struct gabi_catalog *cat = builtin_catalog();
    const struct gabi_reason *r;
    struct gabi_verdict *v;
    struct gabi_probe *p = NULL;
    struct gabi_error err = {0};
    struct gabi_probe_options o = {.host = "fixture",
                                   .sysfs_root = fixture("host1"),
                                   .parts = GABI_PROBE_FAILOVER | GABI_PROBE_VHOST_USER,
                                   .vhost_user = &net0,
                                   .n_vhost_user = 1,
                                   .vhost_user_probe = fake_front_end};

    REQUIRE(cat);
    o.vhost_user_userdata = cat;
    REQUIRE(gabi_probe_run(cat, &o, &p, &err) == 0);
    v = check(cat, gabi_probe_hostcaps(p),
              "{\"schema\": \"guestabi.pin/1\", \"vm\": \"vm1\", \"devices\": [{\"id\": \"net1\", "
              "\"class\": \"virtio-net\", \"mode\": \"upstream.guestabi-net.v1\", \"failover\": "
              "{\"primary\": \"hostdev0\", \"device\": \"8086:154c\"}}]}");
    REQUIRE(v);
    /* the VF is there; what is missing is the platform the pin does not name (the probe read
     * no kernel, so no source default could stand in for it either) */
    CHECK(!find_reason(v, "net1", "failover"));
    r = find_reason(v, "", "platform");
    REQUIRE(r);
    CHECK_STR(r->wanted, "unpinned");
    CHECK_INT(gabi_verdict_n_reasons(v), 1);
    gabi_verdict_free(v);
    v = check(cat, gabi_probe_hostcaps(p),
              "{\"schema\": \"guestabi.pin/1\", \"vm\": \"vm1\", \"devices\": [{\"id\": \"net1\", "
              "\"class\": \"virtio-net\", \"mode\": \"upstream.guestabi-net.v1\", \"failover\": "
              "{\"primary\": \"hostdev0\", \"device\": \"15b3:101e\"}}]}");
    REQUIRE(v);
    CHECK(!gabi_verdict_ok(v));
    CHECK_INT(gabi_verdict_n_reasons(v), 2); /* the failover VF, and the unpinned platform */
    r = find_reason(v, "net1", "failover");
    REQUIRE(r);
    CHECK_STR(r->wanted, "15b3:101e");
    CHECK_STR(r->offered, "0000:5e:02.0 8086:154c, 0000:5e:02.1 8086:154c");
    gabi_verdict_free(v);
    gabi_probe_free(p);
    gabi_catalog_free(cat);
}

/* pick over a probed host and a document: the probed types take part like any other. */
TEST(pick_with_a_probed_host)
{
    struct gabi_catalog *cat = builtin_catalog();
    const struct gabi_hostcaps *hosts[2];
    struct gabi_hostcaps *doc = NULL;
    struct gabi_verdict *v = NULL;
    struct gabi_error err = {0};
    struct gabi_probe *p;
    char *dir = NULL;

    REQUIRE(cat);
    p = probe_limited_host1(cat, &dir);
    REQUIRE(p);
    REQUIRE(gabi_hostcaps_load_file(cat, source_path("docs/examples/host-2024.json"), &doc, &err) ==
            0);
    hosts[0] = gabi_probe_hostcaps(p);
    hosts[1] = doc;
    REQUIRE(gabi_pick(cat, hosts, 2, &v) == 0);
    CHECK_STR(find_choice(v, "mtty-1", "state_version"), "1.0");
    /* only the probed host has ACME vGPUs */
    CHECK_STR(find_choice(v, "acme-vgpu-4", "state_version"), "(none)");
    CHECK(find_reason(v, "acme-vgpu-4", "device_type") != NULL);
    /* the probed kernel (no tun) runs no platform */
    CHECK_STR(find_choice(v, "platform", "platform"), "(none)");
    CHECK(!gabi_verdict_ok(v));
    gabi_verdict_free(v);

    /* the same host twice picks its own newest versions */
    hosts[1] = gabi_probe_hostcaps(p);
    REQUIRE(gabi_pick(cat, hosts, 2, &v) == 0);
    CHECK_STR(find_choice(v, "acme-vgpu-4", "state_version"), "3.2");
    CHECK_STR(find_choice(v, "acme-vgpu-8", "state_version"), "3.2");
    gabi_verdict_free(v);
    gabi_hostcaps_free(doc);
    gabi_probe_free(p);
    tmpdir_remove(dir);
    gabi_catalog_free(cat);
}

/* ---- the vhost-user hook ----------------------------------------------------------------- */

TEST(vhost_user_hook)
{
    static const struct gabi_probe_vhost_user backends[] = {
        {"net0", GABI_CLASS_NET, "/run/guestabi/net0.sock"},
        {"down0", GABI_CLASS_NET, "/run/guestabi/down0.sock"},
        {"weird0", GABI_CLASS_NET, "/run/guestabi/weird0.sock"},
    };
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_probe_options o = {
        .host = "h", .parts = GABI_PROBE_VHOST_USER, .vhost_user = backends, .n_vhost_user = 3};
    const struct gabi_hostcaps_backend *hb;
    struct gabi_hostcaps *again;
    struct gabi_error err = {0};
    struct gabi_probe *p = NULL;
    char *json;

    REQUIRE(cat);
    /* without a front-end: reported as not probed, never guessed */
    REQUIRE(gabi_probe_run(cat, &o, &p, &err) == 0);
    REQUIRE(gabi_probe_n_backends(p) == 3);
    for (size_t i = 0; i < 3; i++) {
        CHECK_INT(gabi_probe_backend(p, i)->state, GABI_PROBE_BACKEND_NOT_PROBED);
        CHECK_CONTAINS(gabi_probe_backend(p, i)->message, "not probed");
    }
    CHECK_INT(gabi_hostcaps_n_backends(gabi_probe_hostcaps(p)), 0);
    gabi_probe_free(p);

    /* with one */
    o.vhost_user_probe = fake_front_end;
    o.vhost_user_userdata = cat;
    REQUIRE(gabi_probe_run(cat, &o, &p, &err) == 0);
    CHECK_INT(gabi_probe_backend(p, 0)->state, GABI_PROBE_BACKEND_PROBED);
    CHECK_INT(gabi_probe_backend(p, 0)->n_modes, 2); /* v2 and v1 */
    CHECK_INT(gabi_probe_backend(p, 1)->state, GABI_PROBE_BACKEND_FAILED);
    CHECK_CONTAINS(gabi_probe_backend(p, 1)->message, "/run/guestabi/down0.sock");
    CHECK_CONTAINS(gabi_probe_backend(p, 1)->message, "Connection refused");
    CHECK_INT(gabi_probe_backend(p, 2)->state, GABI_PROBE_BACKEND_FAILED);
    CHECK_CONTAINS(gabi_probe_backend(p, 2)->message, "out of bounds");
    REQUIRE(gabi_hostcaps_n_backends(gabi_probe_hostcaps(p)) == 1);
    hb = gabi_hostcaps_backend(gabi_probe_hostcaps(p), 0);
    CHECK_STR(hb->name, "net0");
    CHECK_STR(hb->socket, "/run/guestabi/net0.sock");
    CHECK(hb->has_offer);
    CHECK_INT(hb->max_queue_pairs, 4);
    CHECK(gabi_hostcaps_runs_mode(gabi_probe_hostcaps(p),
                                  gabi_catalog_find_mode(cat, "upstream.guestabi-net.v2")));
    json = gabi_hostcaps_to_json(gabi_probe_hostcaps(p));
    again = hostcaps_from(cat, json);
    CHECK(again != NULL);
    gabi_hostcaps_free(again);
    free(json);
    gabi_probe_free(p);
    gabi_catalog_free(cat);
}

TEST(vhost_user_options_refused)
{
    static const struct {
        struct gabi_probe_vhost_user b[2];
        size_t n;
        const char *message;
    } cases[] = {
        {{{"a b", GABI_CLASS_NET, "/s"}}, 1, "a name is 1 to 127"},
        {{{"", GABI_CLASS_NET, "/s"}}, 1, "a name is 1 to 127"},
        {{{"m0", GABI_CLASS_MDEV, "/s"}}, 1, "virtio-net or virtio-blk"},
        {{{"n0", GABI_CLASS_NET, ""}}, 1, "a socket path is 1 to 107 bytes"},
        {{{"n0", GABI_CLASS_NET, "/s"}, {"n0", GABI_CLASS_BLK, "/t"}}, 2, "named twice"},
    };
    struct gabi_catalog *cat = builtin_catalog();
    char longpath[200];

    REQUIRE(cat);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct gabi_probe_options o = {
            .parts = GABI_PROBE_VHOST_USER, .vhost_user = cases[i].b, .n_vhost_user = cases[i].n};
        struct gabi_error err = {0};
        struct gabi_probe *p = NULL;

        CHECK_INT(gabi_probe_run(cat, &o, &p, &err), -EINVAL);
        CHECK(p == NULL);
        CHECK_CONTAINS(err.message, cases[i].message);
    }
    memset(longpath, 'x', sizeof(longpath) - 1);
    longpath[sizeof(longpath) - 1] = '\0';
    {
        struct gabi_probe_vhost_user b = {"n0", GABI_CLASS_NET, longpath};
        struct gabi_probe_options o = {.vhost_user = &b, .n_vhost_user = 1};
        struct gabi_error err = {0};
        struct gabi_probe *p = NULL;

        CHECK_INT(gabi_probe_run(cat, &o, &p, &err), -EINVAL);
        CHECK_CONTAINS(err.message, "socket path");
        o.n_vhost_user = GABI_PROBE_MAX_VHOST_USER + 1;
        CHECK_INT(gabi_probe_run(cat, &o, &p, &err), -E2BIG);
    }
    gabi_catalog_free(cat);
}

TAP_MAIN()
