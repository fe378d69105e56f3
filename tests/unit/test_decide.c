/* SPDX-License-Identifier: MIT */
/* Decisions: pick, check (every reason), the fast check, match. */

#include <errno.h>

#include "abi_fixtures.h"
#include "tap.h"

/* A host with one mdev type M that loads (and writes) `versions` (a JSON array). */
static struct gabi_hostcaps *mdev_host(const struct gabi_catalog *cat, const char *name,
                                       const char *versions)
{
    char doc[1024];

    snprintf(doc, sizeof(doc),
             "{\"schema\": \"guestabi.hostcaps/1\", \"host\": \"%s\", \"device_types\": "
             "[{\"name\": \"M\", \"kind\": \"mdev\", \"loads\": %s}]}",
             name, versions);
    return hostcaps_from(cat, doc);
}

static const char *pick_m(const struct gabi_catalog *cat, const char *n_versions,
                          const char *o_versions, bool *ok, char *buf, size_t size)
{
    struct gabi_hostcaps *hosts[2] = {mdev_host(cat, "N", n_versions),
                                      mdev_host(cat, "O", o_versions)};
    struct gabi_verdict *v = NULL;
    const char *got = NULL;

    if (hosts[0] && hosts[1] &&
        gabi_pick(cat, (const struct gabi_hostcaps *const *)hosts, 2, &v) == 0) {
        got = find_choice(v, "M", "state_version");
        snprintf(buf, size, "%s", got ? got : "(missing)");
        *ok = gabi_verdict_ok(v);
    }
    gabi_verdict_free(v);
    gabi_hostcaps_free(hosts[0]);
    gabi_hostcaps_free(hosts[1]);
    return got ? buf : NULL;
}

/* Seed 002: the versions the thread gives for each pair of devices. */
TEST(seed_002_pick)
{
    struct gabi_catalog *cat = builtin_catalog();
    char buf[64];
    bool ok = false;

    REQUIRE(cat);
    CHECK_STR(pick_m(cat, "[\"6.3\", \"6.2\", \"6.1\", \"5.3\"]", "[\"5.3\", \"5.2\", \"5.1\"]",
                     &ok, buf, sizeof(buf)),
              "5.3");
    CHECK(ok);
    CHECK_STR(pick_m(cat, "[\"6.3\", \"6.2\", \"6.1\", \"5.2\"]", "[\"5.3\", \"5.2\", \"5.1\"]",
                     &ok, buf, sizeof(buf)),
              "5.2");
    CHECK(ok);
    CHECK_STR(pick_m(cat, "[\"6.3\", \"6.2\", \"6.1\"]", "[\"5.3\", \"5.2\", \"5.1\"]", &ok, buf,
                     sizeof(buf)),
              "(none)");
    CHECK(!ok);
    CHECK_STR(pick_m(cat, "[\"6.3\", \"6.2\", \"6.1\"]", "[\"5.3\", \"5.2\", \"5.1\", \"6.1\"]",
                     &ok, buf, sizeof(buf)),
              "6.1");
    CHECK(ok);
    gabi_catalog_free(cat);
}

static bool match_ok(const char *version, const struct gabi_versions *dest)
{
    struct gabi_verdict *v = NULL;
    bool ok;

    if (gabi_match("M", version, dest, "dst", &v) < 0)
        return false;
    ok = gabi_verdict_ok(v);
    gabi_verdict_free(v);
    return ok;
}

/* Seed 002: the source version is fixed; match never picks another one. */
TEST(seed_002_match_is_not_negotiation)
{
    const char *new_dev[] = {"6.3", "6.2", "6.1", "5.3"};
    const char *old_dev[] = {"5.3", "5.2", "5.1"};
    const char *old_updated[] = {"5.3", "5.2", "5.1", "6.1"};
    struct gabi_versions n = {.n = 4, .list = new_dev}, o = {.n = 3, .list = old_dev},
                         u = {.n = 4, .list = old_updated};
    struct gabi_verdict *v = NULL;
    const struct gabi_reason *r;

    /* a VM started on the old device writes 5.3: the new device loads it */
    CHECK(match_ok("5.3", &n));
    /* one started on the new device writes 6.3: the old device refuses, even though they
     * share 5.3, because the running source cannot switch to 5.3 now */
    CHECK(!match_ok("6.3", &o));
    CHECK(!match_ok("6.3", &u));
    /* a VM pinned to 6.1 (the pick for new + updated old) moves both ways */
    CHECK(match_ok("6.1", &u));
    CHECK(match_ok("6.1", &n));
    REQUIRE(gabi_match("gpu0", "6.3", &o, "old-host", &v) == 0);
    r = find_reason(v, "gpu0", "state_version");
    REQUIRE(r);
    CHECK_STR(r->wanted, "6.3");
    CHECK_STR(r->offered, "[5.3, 5.2, 5.1]");
    CHECK_CONTAINS(r->message, "not renegotiated");
    CHECK_INT(gabi_verdict_n_choices(v), 0);
    gabi_verdict_free(v);

    /* version plus minimum */
    struct gabi_versions range = {.version = "6.10", .minimum = "6.2"};
    CHECK(match_ok("6.9", &range));
    CHECK(!match_ok("6.1", &range));
    CHECK(!match_ok("7.0", &range));
}

static const char uso_pin[] = "{\"schema\": \"guestabi.pin/1\", \"vm\": \"vm1\", \"platform\": "
                              "\"linux-6.2\", \"devices\": []}";

TEST(uso_platform_refused_without_uso_kernel)
{
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_hostcaps *old = NULL;
    struct gabi_pin *pin;
    struct gabi_verdict *v = NULL;
    struct gabi_error err = {0};
    size_t n_platform = 0;

    REQUIRE(cat);
    REQUIRE(gabi_hostcaps_load_file(cat, source_path("docs/examples/host-2019.json"), &old, &err) ==
            0);
    pin = pin_from(cat, uso_pin);
    REQUIRE(pin);
    REQUIRE(gabi_check(cat, pin, old, &v) == 0);
    CHECK(!gabi_verdict_ok(v));
    CHECK(!gabi_check_ok(pin, old));
    for (size_t i = 0; i < gabi_verdict_n_reasons(v); i++) {
        const struct gabi_reason *r = gabi_verdict_reason(v, i);
        CHECK_STR(r->key, "platform");
        CHECK_CONTAINS(r->message, "VIRTIO_NET_F_HOST_USO");
        CHECK_CONTAINS(r->offered, "unsupported");
        n_platform++;
    }
    /* one reason per missing capability: tap.uso4 and tap.uso6 */
    CHECK_INT(n_platform, 2);
    CHECK_CONTAINS(gabi_verdict_reason(v, 0)->message, "tap.uso4");
    CHECK_CONTAINS(gabi_verdict_reason(v, 0)->message, "VIRTIO_NET_F_GUEST_USO4");
    CHECK_CONTAINS(gabi_verdict_reason(v, 1)->message, "tap.uso6");
    CHECK_CONTAINS(gabi_verdict_reason(v, 1)->message, "VIRTIO_NET_F_GUEST_USO6");
    gabi_verdict_free(v);
    gabi_pin_free(pin);
    gabi_hostcaps_free(old);
    gabi_catalog_free(cat);
}

TEST(check_reports_every_reason)
{
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_hostcaps *old = NULL, *new = NULL;
    struct gabi_pin *pin = NULL;
    struct gabi_verdict *v = NULL;
    struct gabi_error err = {0};
    const struct gabi_reason *r;

    REQUIRE(cat);
    REQUIRE(gabi_hostcaps_load_file(cat, source_path("docs/examples/host-2019.json"), &old, &err) ==
            0);
    REQUIRE(gabi_hostcaps_load_file(cat, source_path("docs/examples/host-2024.json"), &new, &err) ==
            0);
    REQUIRE(gabi_pin_load_file(cat, source_path("docs/examples/vm-newest.json"), &pin, &err) == 0);

    REQUIRE(gabi_check(cat, pin, new, &v) == 0);
    CHECK(gabi_verdict_ok(v));
    CHECK(gabi_check_ok(pin, new));
    CHECK_STR(find_choice(v, "net0", "mode"), "upstream.guestabi-net.v3");
    v = gabi_verdict_free(v);

    REQUIRE(gabi_check(cat, pin, old, &v) == 0);
    CHECK(!gabi_verdict_ok(v));
    /* platform (2 capabilities), net0, disk0, net1: each named, not only the first */
    CHECK(find_reason(v, "", "platform") != NULL);
    r = find_reason(v, "net0", "mode");
    REQUIRE(r);
    CHECK_STR(r->wanted, "upstream.guestabi-net.v3");
    CHECK_CONTAINS(r->offered, "upstream.guestabi-net.v1");
    r = find_reason(v, "net0", "features");
    REQUIRE(r);
    CHECK_CONTAINS(r->wanted, "VIRTIO_RING_F_INDIRECT_DESC");
    r = find_reason(v, "net0", "max_queue_pairs");
    REQUIRE(r);
    CHECK_STR(r->wanted, "8");
    CHECK(find_reason(v, "net0", "protocol_features") != NULL);
    CHECK(find_reason(v, "disk0", "mode") != NULL);
    CHECK(find_reason(v, "disk0", "max_queue_size") != NULL);
    CHECK(find_reason(v, "net1", "mode") != NULL);
    /* the serial device is fine, and the failover VF is free */
    CHECK(find_reason(v, "serial0", "state_version") == NULL);
    CHECK(find_reason(v, "net1", "failover") == NULL);
    CHECK(gabi_verdict_n_reasons(v) >= 10);
    v = gabi_verdict_free(v);

    gabi_pin_free(pin);
    gabi_hostcaps_free(old);
    gabi_hostcaps_free(new);
    gabi_catalog_free(cat);
}

TEST(failover_and_state_reasons)
{
    static const char host[] =
        "{\"schema\": \"guestabi.hostcaps/1\", \"host\": \"h\", \"backends\": [{\"name\": "
        "\"n\", \"class\": \"virtio-net\", \"modes\": [\"upstream.guestabi-net.v1\"]}], "
        "\"device_types\": [{\"name\": \"vgpu\", \"loads\": [\"5.3\", \"5.2\"], "
        "\"available_instances\": 0}], "
        "\"failover\": [{\"address\": \"0000:01:00.1\", \"device\": \"8086:154c\", "
        "\"in_use\": true}]}";
    static const char pin_doc[] =
        "{\"schema\": \"guestabi.pin/1\", \"vm\": \"vm\", \"devices\": ["
        "{\"id\": \"gpu0\", \"class\": \"mdev\", \"type\": \"vgpu\", \"state_version\": \"6.1\"},"
        "{\"id\": \"gpu1\", \"class\": \"mdev\", \"type\": \"other\", \"state_version\": \"1\"},"
        "{\"id\": \"net1\", \"class\": \"virtio-net\", \"mode\": \"upstream.guestabi-net.v1\", "
        "\"failover\": {\"primary\": \"hostdev0\", \"device\": \"8086:154c\"}}]}";
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_hostcaps *h;
    struct gabi_pin *pin;
    struct gabi_verdict *v = NULL;
    const struct gabi_reason *r;

    REQUIRE(cat);
    h = hostcaps_from(cat, host);
    pin = pin_from(cat, pin_doc);
    REQUIRE(h && pin);
    REQUIRE(gabi_check(cat, pin, h, &v) == 0);
    r = find_reason(v, "gpu0", "state_version");
    REQUIRE(r);
    CHECK_STR(r->offered, "[5.3, 5.2]");
    CHECK(find_reason(v, "gpu0", "available_instances") != NULL);
    r = find_reason(v, "gpu1", "device_type");
    REQUIRE(r);
    CHECK_STR(r->offered, "vgpu");
    r = find_reason(v, "net1", "failover");
    REQUIRE(r);
    CHECK_CONTAINS(r->offered, "(in use)");
    CHECK(find_reason(v, "net1", "mode") == NULL);
    /* net1 makes the pin depend on a platform it does not name */
    r = find_reason(v, "", "platform");
    REQUIRE(r);
    CHECK_STR(r->wanted, "unpinned");
    CHECK_INT(gabi_verdict_n_reasons(v), 5);
    CHECK(!gabi_check_ok(pin, h));
    gabi_verdict_free(v);
    gabi_pin_free(pin);
    gabi_hostcaps_free(h);
    gabi_catalog_free(cat);
}

TEST(bad_pins)
{
    static const struct {
        const char *doc, *where, *message;
    } cases[] = {
        {"{\"schema\": \"guestabi.pin/1\", \"vm\": \"v\", \"platform\": \"linux-6.3\", "
         "\"devices\": []}",
         "pin.json: $.platform", "did you mean linux-6.2"},
        {"{\"schema\": \"guestabi.pin/1\", \"vm\": \"v\", \"devices\": [{\"id\": \"a\", "
         "\"class\": \"virtio-net\"}]}",
         "pin.json: $.devices[0]", "needs a \"mode\""},
        {"{\"schema\": \"guestabi.pin/1\", \"vm\": \"v\", \"devices\": [{\"id\": \"a\", "
         "\"class\": \"virtio-blk\", \"mode\": \"upstream.guestabi-net.v1\"}]}",
         "pin.json: $.devices[0].mode", "is a virtio-net mode"},
        {"{\"schema\": \"guestabi.pin/1\", \"vm\": \"v\", \"devices\": [{\"id\": \"a\", "
         "\"class\": \"mdev\", \"type\": \"t\", \"state_version\": \"1\"}, {\"id\": \"a\", "
         "\"class\": \"mdev\", \"type\": \"t\", \"state_version\": \"1\"}]}",
         "pin.json: $.devices[1]", "used twice"},
        {"{\"schema\": \"guestabi.pin/1\", \"vm\": \"v\", \"devices\": [{\"id\": \"a\", "
         "\"class\": \"virtio-blk\", \"mode\": \"upstream.guestabi-blk.v1\", \"failover\": "
         "{\"primary\": \"p\", \"device\": \"8086:154c\"}}]}",
         "pin.json: $.devices[0].failover", "only a virtio-net device"},
    };
    struct gabi_catalog *cat = builtin_catalog();

    REQUIRE(cat);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct gabi_pin *p = NULL;
        struct gabi_error err = {0};

        CHECK_INT(gabi_pin_parse(cat, "pin.json", cases[i].doc, strlen(cases[i].doc), &p, &err),
                  -EINVAL);
        CHECK(p == NULL);
        CHECK_STR(err.where, cases[i].where);
        CHECK_CONTAINS(err.message, cases[i].message);
    }
    gabi_catalog_free(cat);
}

TEST(pick_over_example_hosts)
{
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_hostcaps *hosts[2] = {0};
    struct gabi_verdict *v = NULL;
    struct gabi_error err = {0};

    REQUIRE(cat);
    REQUIRE(gabi_hostcaps_load_file(cat, source_path("docs/examples/host-2019.json"), &hosts[0],
                                    &err) == 0);
    REQUIRE(gabi_hostcaps_load_file(cat, source_path("docs/examples/host-2024.json"), &hosts[1],
                                    &err) == 0);
    REQUIRE(gabi_pick(cat, (const struct gabi_hostcaps *const *)hosts, 2, &v) == 0);
    CHECK(gabi_verdict_ok(v));
    CHECK_STR(find_choice(v, "platform", "platform"), "linux-5.14");
    /* dpdk.vhost-net.18.11 (201811) is older than guestabi-net.v1 (202601): the newest
     * common virtio-net mode is v1 */
    CHECK_STR(find_choice(v, "virtio-net", "mode"), "upstream.guestabi-net.v1");
    CHECK_STR(find_choice(v, "virtio-blk", "mode"), "upstream.guestabi-blk.v1");
    CHECK_STR(find_choice(v, "mtty-1", "state_version"), "1.0");
    v = gabi_verdict_free(v);
    /* one host alone: its newest */
    REQUIRE(gabi_pick(cat, (const struct gabi_hostcaps *const *)&hosts[1], 1, &v) == 0);
    CHECK_STR(find_choice(v, "platform", "platform"), "linux-6.2");
    CHECK_STR(find_choice(v, "virtio-net", "mode"), "upstream.guestabi-net.v3");
    gabi_verdict_free(v);
    CHECK_INT(gabi_pick(cat, NULL, 0, &v), -EINVAL);
    gabi_hostcaps_free(hosts[0]);
    gabi_hostcaps_free(hosts[1]);
    gabi_catalog_free(cat);
}

TEST(pick_without_common_mode_names_each_host)
{
    static const char a[] = "{\"schema\": \"guestabi.hostcaps/1\", \"host\": \"a\", \"backends\": "
                            "[{\"name\": \"n\", \"class\": \"virtio-net\", \"modes\": "
                            "[\"upstream.guestabi-net.v3\"]}]}";
    static const char b[] = "{\"schema\": \"guestabi.hostcaps/1\", \"host\": \"b\", \"backends\": "
                            "[{\"name\": \"n\", \"class\": \"virtio-net\", \"modes\": "
                            "[\"dpdk.vhost-net.16.11\"]}]}";
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_hostcaps *hosts[2];
    struct gabi_verdict *v = NULL;
    size_t n_mode = 0;

    REQUIRE(cat);
    hosts[0] = hostcaps_from(cat, a);
    hosts[1] = hostcaps_from(cat, b);
    REQUIRE(hosts[0] && hosts[1]);
    REQUIRE(gabi_pick(cat, (const struct gabi_hostcaps *const *)hosts, 2, &v) == 0);
    CHECK(!gabi_verdict_ok(v));
    CHECK_STR(find_choice(v, "virtio-net", "mode"), "(none)");
    for (size_t i = 0; i < gabi_verdict_n_reasons(v); i++)
        if (strcmp(gabi_verdict_reason(v, i)->key, "mode") == 0)
            n_mode++;
    CHECK_INT(n_mode, 2);
    gabi_verdict_free(v);
    gabi_hostcaps_free(hosts[0]);
    gabi_hostcaps_free(hosts[1]);
    gabi_catalog_free(cat);
}

/* A random host over the built-in catalog's modes and capabilities, a device type "t"
 * loading one of 3 versions (or a range), and a VF that may be in use. */
static struct gabi_hostcaps *random_host(const struct gabi_catalog *cat, int round, unsigned *seed)
{
    char host[4096];
    size_t off = 0;

    off += snprintf(host + off, sizeof(host) - off,
                    "{\"schema\": \"guestabi.hostcaps/1\", \"host\": \"h%d\", \"kernel\": "
                    "{\"capabilities\": {",
                    round);
    for (unsigned k = 0; k < GABI_KCAP_COUNT; k++)
        off += snprintf(host + off, sizeof(host) - off, "%s\"%s\": \"%s\"", k ? ", " : "",
                        gabi_kcap_name(k), rand_r(seed) % 5 ? "supported" : "unsupported");
    off += snprintf(host + off, sizeof(host) - off, "}}, \"backends\": [");
    for (int b = 0; b < 2; b++) {
        enum gabi_device_class cls = b ? GABI_CLASS_BLK : GABI_CLASS_NET;
        bool first = true;

        off += snprintf(host + off, sizeof(host) - off,
                        "%s{\"name\": \"b%d\", \"class\": \"%s\", \"modes\": [", b ? ", " : "", b,
                        gabi_class_name(cls));
        for (size_t i = 0; i < gabi_catalog_n_modes(cat); i++) {
            const struct gabi_mode *m = gabi_catalog_mode(cat, i);
            if (m->cls != cls || rand_r(seed) % 2)
                continue;
            off += snprintf(host + off, sizeof(host) - off, "%s\"%s\"", first ? "" : ", ", m->name);
            first = false;
        }
        off += snprintf(host + off, sizeof(host) - off, "]}");
    }
    if (rand_r(seed) % 4 == 0)
        off += snprintf(host + off, sizeof(host) - off,
                        "], \"device_types\": [{\"name\": \"t\", \"loads\": {\"version\": "
                        "\"%d\", \"minimum\": \"0\"}}], ",
                        rand_r(seed) % 3);
    else
        off += snprintf(host + off, sizeof(host) - off,
                        "], \"device_types\": [{\"name\": \"t\", \"loads\": [\"%d\"], "
                        "\"available_instances\": %d}], ",
                        rand_r(seed) % 3, rand_r(seed) % 4 ? 2 : 0);
    snprintf(host + off, sizeof(host) - off,
             "\"failover\": [{\"address\": \"a\", \"device\": \"1:%d\", \"in_use\": %s}]}",
             rand_r(seed) % 2, rand_r(seed) % 2 ? "true" : "false");
    return hostcaps_from(cat, host);
}

static struct gabi_pin *random_pin(const struct gabi_catalog *cat, unsigned *seed)
{
    char pin_doc[2048];
    const struct gabi_mode *pm = gabi_catalog_mode(cat, rand_r(seed) % gabi_catalog_n_modes(cat));
    const struct gabi_platform *pp =
        gabi_catalog_platform(cat, rand_r(seed) % gabi_catalog_n_platforms(cat));

    snprintf(pin_doc, sizeof(pin_doc),
             "{\"schema\": \"guestabi.pin/1\", \"vm\": \"v\", \"platform\": \"%s\", "
             "\"devices\": [{\"id\": \"d\", \"class\": \"%s\", \"mode\": \"%s\"%s}, "
             "{\"id\": \"s\", \"class\": \"mdev\", \"type\": \"t\", \"state_version\": "
             "\"%d\"}]}",
             pp->name, gabi_class_name(pm->cls), pm->name,
             pm->cls == GABI_CLASS_NET && rand_r(seed) % 2
                 ? ", \"failover\": {\"primary\": \"p\", \"device\": \"1:1\"}"
                 : "",
             rand_r(seed) % 3);
    return pin_from(cat, pin_doc);
}

/* The fast check and the full one agree, on hosts and pins built at random. */
TEST(fast_check_agrees_with_full_check)
{
    struct gabi_catalog *cat = builtin_catalog();
    unsigned seed = 12345;
    size_t disagreements = 0, oks = 0;

    REQUIRE(cat);
    for (int round = 0; round < 400; round++) {
        struct gabi_hostcaps *h = random_host(cat, round, &seed);
        struct gabi_pin *pin = random_pin(cat, &seed);
        struct gabi_verdict *v = NULL;

        REQUIRE(h && pin);
        REQUIRE(gabi_check(cat, pin, h, &v) == 0);
        if (gabi_verdict_ok(v) != gabi_check_ok(pin, h))
            disagreements++;
        /* a refusal always says why */
        if (!gabi_verdict_ok(v) && gabi_verdict_n_reasons(v) == 0)
            disagreements++;
        oks += gabi_verdict_ok(v);
        gabi_verdict_free(v);
        gabi_pin_free(pin);
        gabi_hostcaps_free(h);
    }
    CHECK_INT(disagreements, 0);
    /* the random mix exercises both answers */
    CHECK(oks > 0 && oks < 400);
    gabi_catalog_free(cat);
}

/* A fleet table gives the same hosts as checking them one by one. */
TEST(fleet_filter_agrees_with_check)
{
    enum { N = 300 };
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_hostcaps *hosts[N];
    struct gabi_fleet *fleet = NULL;
    unsigned seed = 777;
    size_t idx[N], total = 0;

    REQUIRE(cat);
    for (int i = 0; i < N; i++) {
        hosts[i] = random_host(cat, i, &seed);
        REQUIRE(hosts[i]);
    }
    REQUIRE(gabi_fleet_new(cat, (const struct gabi_hostcaps *const *)hosts, N, &fleet) == 0);
    CHECK_INT(gabi_fleet_n_hosts(fleet), N);
    for (int round = 0; round < 200; round++) {
        struct gabi_pin *pin = random_pin(cat, &seed);
        size_t n, expect = 0, k = 0;
        bool same = true;

        REQUIRE(pin);
        n = gabi_fleet_filter(fleet, pin, idx);
        for (size_t i = 0; i < N; i++) {
            if (!gabi_check_ok(pin, hosts[i]))
                continue;
            expect++;
            if (k >= n || idx[k++] != i)
                same = false;
        }
        CHECK(same && n == expect);
        total += n;
        gabi_pin_free(pin);
    }
    /* some pins fit some hosts */
    CHECK(total > 0);
    gabi_fleet_free(fleet);
    for (int i = 0; i < N; i++)
        gabi_hostcaps_free(hosts[i]);
    gabi_catalog_free(cat);
}

/* Shared capacity is the host's: two mtty-1 devices need two instances, two failover standbys
 * two free VFs. check, the fast check and the fleet table give the same answer on the same
 * documents (tests/data/capacity, also the golden cases capacity-*). */
TEST(shared_capacity_counted_per_host)
{
    static const char *const host_files[] = {"tests/data/capacity/host-small.json",
                                             "tests/data/capacity/host-big.json"};
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_hostcaps *hosts[2] = {NULL, NULL};
    struct gabi_pin *one = NULL, *two = NULL;
    struct gabi_fleet *fleet = NULL;
    struct gabi_verdict *v = NULL;
    struct gabi_error err = {0};
    const struct gabi_reason *r;
    size_t idx[2];

    REQUIRE(cat);
    for (size_t i = 0; i < 2; i++)
        REQUIRE(gabi_hostcaps_load_file(cat, source_path(host_files[i]), &hosts[i], &err) == 0);
    REQUIRE(gabi_pin_load_file(cat, source_path("tests/data/capacity/pin-one.json"), &one, &err) ==
            0);
    REQUIRE(gabi_pin_load_file(cat, source_path("tests/data/capacity/pin-two.json"), &two, &err) ==
            0);

    /* one of each fits the small host */
    REQUIRE(gabi_check(cat, one, hosts[0], &v) == 0);
    CHECK(gabi_verdict_ok(v));
    CHECK(gabi_check_ok(one, hosts[0]));
    v = gabi_verdict_free(v);

    /* two of each do not: needed and free are both named */
    REQUIRE(gabi_check(cat, two, hosts[0], &v) == 0);
    CHECK(!gabi_verdict_ok(v));
    CHECK(!gabi_check_ok(two, hosts[0]));
    r = find_reason(v, "serial0", "available_instances");
    REQUIRE(r);
    CHECK_STR(r->wanted, "2");
    CHECK_STR(r->offered, "1");
    CHECK_CONTAINS(r->message, "serial0, serial1");
    r = find_reason(v, "net0", "failover");
    REQUIRE(r);
    CHECK_STR(r->wanted, "2 x 8086:154c");
    CHECK_STR(r->offered, "1 free");
    CHECK_INT(gabi_verdict_n_reasons(v), 2);
    v = gabi_verdict_free(v);

    /* the big host has room for both */
    REQUIRE(gabi_check(cat, two, hosts[1], &v) == 0);
    CHECK(gabi_verdict_ok(v));
    v = gabi_verdict_free(v);

    /* and the fleet table agrees */
    REQUIRE(gabi_fleet_new(cat, (const struct gabi_hostcaps *const *)hosts, 2, &fleet) == 0);
    CHECK_INT(gabi_fleet_filter(fleet, one, idx), 2);
    REQUIRE(gabi_fleet_filter(fleet, two, idx) == 1);
    CHECK_INT(idx[0], 1);

    gabi_fleet_free(fleet);
    gabi_pin_free(one);
    gabi_pin_free(two);
    gabi_hostcaps_free(hosts[0]);
    gabi_hostcaps_free(hosts[1]);
    gabi_catalog_free(cat);
}

/* Seed 001: a pin without a platform never passes unnoticed. Without the source it is refused
 * with the reason; with it, the source's default is what is judged, and the verdict says so. */
TEST(platformless_pin_judged_on_the_source_default)
{
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_hostcaps *h2019 = NULL, *h2024 = NULL;
    struct gabi_pin *pin = NULL;
    struct gabi_verdict *v = NULL;
    struct gabi_error err = {0};
    struct gabi_fleet *fleet = NULL;
    const struct gabi_hostcaps *both[2];
    const struct gabi_reason *r;
    const char *from = NULL;
    size_t idx[2];
    char *text;

    REQUIRE(cat);
    REQUIRE(gabi_hostcaps_load_file(cat, source_path("docs/examples/host-2019.json"), &h2019,
                                    &err) == 0);
    REQUIRE(gabi_hostcaps_load_file(cat, source_path("docs/examples/host-2024.json"), &h2024,
                                    &err) == 0);
    both[0] = h2019;
    both[1] = h2024;
    CHECK_STR(gabi_hostcaps_default_platform(h2024)->name, "linux-6.2");
    CHECK_STR(gabi_hostcaps_default_platform(h2019)->name, "linux-5.14");
    REQUIRE(gabi_fleet_new(cat, both, 2, &fleet) == 0);

    /* unresolved: refused on either host, by check, the fast check and the fleet table */
    pin = pin_from(cat, "{\"schema\": \"guestabi.pin/1\", \"vm\": \"v\", \"devices\": [{\"id\": "
                        "\"net0\", \"class\": \"virtio-net\", \"mode\": "
                        "\"upstream.guestabi-net.v1\"}]}");
    REQUIRE(pin);
    CHECK(gabi_pin_needs_platform(pin));
    for (size_t i = 0; i < 2; i++) {
        REQUIRE(gabi_check(cat, pin, both[i], &v) == 0);
        CHECK(!gabi_verdict_ok(v));
        r = find_reason(v, "", "platform");
        REQUIRE(r);
        CHECK_CONTAINS(r->message, "--source");
        CHECK(gabi_verdict_platform(v, &from) == NULL);
        CHECK_STR(from, "unpinned");
        CHECK(!gabi_check_ok(pin, both[i]));
        v = gabi_verdict_free(v);
    }
    CHECK_INT(gabi_fleet_filter(fleet, pin, idx), 0);

    /* started on the USO host: it runs linux-6.2, which the 2019 host cannot offer */
    REQUIRE(gabi_pin_resolve_platform(pin, h2024, &err) == 0);
    CHECK_STR(gabi_pin_platform(pin)->name, "linux-6.2");
    CHECK_STR(gabi_pin_platform_source(pin), "rack9-2024");
    REQUIRE(gabi_check(cat, pin, h2019, &v) == 0);
    CHECK(!gabi_verdict_ok(v));
    r = find_reason(v, "", "platform");
    REQUIRE(r);
    CHECK_STR(r->wanted, "linux-6.2: tap.uso4");
    CHECK_STR(gabi_verdict_platform(v, &from), "linux-6.2");
    CHECK_STR(from, "source");
    text = gabi_verdict_to_json(v);
    CHECK_CONTAINS(text, "\"platform\": \"linux-6.2\"");
    CHECK_CONTAINS(text, "\"platform_from\": \"source\"");
    free(text);
    v = gabi_verdict_free(v);
    REQUIRE(gabi_fleet_filter(fleet, pin, idx) == 1);
    CHECK_INT(idx[0], 1);
    gabi_pin_free(pin);

    /* started on the 2019 host: linux-5.14, which both run */
    pin = pin_from(cat, "{\"schema\": \"guestabi.pin/1\", \"vm\": \"v\", \"devices\": [{\"id\": "
                        "\"net0\", \"class\": \"virtio-net\", \"mode\": "
                        "\"upstream.guestabi-net.v1\"}]}");
    REQUIRE(pin && gabi_pin_resolve_platform(pin, h2019, &err) == 0);
    REQUIRE(gabi_check(cat, pin, h2024, &v) == 0);
    CHECK(gabi_verdict_ok(v));
    CHECK_STR(gabi_verdict_platform(v, NULL), "linux-5.14");
    v = gabi_verdict_free(v);
    CHECK_INT(gabi_fleet_filter(fleet, pin, idx), 2);
    gabi_pin_free(pin);

    /* no device depends on a platform: nothing to resolve, and the verdict says so */
    pin = pin_from(cat, "{\"schema\": \"guestabi.pin/1\", \"vm\": \"v\", \"devices\": [{\"id\": "
                        "\"serial0\", \"class\": \"mdev\", \"type\": \"mtty-1\", "
                        "\"state_version\": \"1.0\"}]}");
    REQUIRE(pin);
    CHECK(!gabi_pin_needs_platform(pin));
    REQUIRE(gabi_check(cat, pin, h2019, &v) == 0);
    CHECK(gabi_verdict_ok(v));
    CHECK(gabi_verdict_platform(v, &from) == NULL);
    CHECK_STR(from, "not-needed");
    gabi_verdict_free(v);
    gabi_pin_free(pin);

    gabi_fleet_free(fleet);
    gabi_hostcaps_free(h2019);
    gabi_hostcaps_free(h2024);
    gabi_catalog_free(cat);
}

TEST(verdict_json)
{
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_hostcaps *old = NULL;
    struct gabi_pin *pin;
    struct gabi_verdict *v = NULL;
    struct gabi_error err = {0};
    char *text;

    REQUIRE(cat);
    REQUIRE(gabi_hostcaps_load_file(cat, source_path("docs/examples/host-2019.json"), &old, &err) ==
            0);
    pin = pin_from(cat, uso_pin);
    REQUIRE(pin && gabi_check(cat, pin, old, &v) == 0);
    text = gabi_verdict_to_json(v);
    CHECK_CONTAINS(text, "\"schema\": \"guestabi.verdict/1\"");
    CHECK_CONTAINS(text, "\"ok\": false");
    CHECK_CONTAINS(text, "\"wanted\": \"linux-6.2: tap.uso4\"");
    free(text);
    gabi_verdict_free(v);
    gabi_pin_free(pin);
    gabi_hostcaps_free(old);
    gabi_catalog_free(cat);
}

TAP_MAIN()
