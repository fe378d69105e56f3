/* SPDX-License-Identifier: MIT */
/* lib/placement's mapping: the trait encoding (injective, within Placement's rules), hosts as
 * traits and inventory, pins as queries that agree with gabi_check_ok, Kubernetes labels. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <guestabi/placement.h>

#include "abi_fixtures.h"
#include "tap.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static bool placement_syntax(const char *s)
{
    size_t n = strlen(s);

    if (n > GABI_PLACEMENT_NAME_MAX || strncmp(s, "CUSTOM_", 7) != 0)
        return false;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == n;
}

/* Encode, check syntax, decode, and compare with the input. */
static bool round_trip(enum gabi_placement_kind kind, const char *name, const char *version,
                       char *out)
{
    char n[512], v[512];
    enum gabi_placement_kind k;
    int r = gabi_placement_name(kind, name, version, out, GABI_PLACEMENT_NAME_MAX + 1, NULL);

    if (r < 0 || (size_t)r != strlen(out) || !placement_syntax(out)) {
        printf("# %s: encoding %d \"%s\"\n", name, r, r >= 0 ? out : "");
        return false;
    }
    if (gabi_placement_name_decode(out, &k, n, v, sizeof(n)) < 0 || k != kind ||
        strcmp(n, name) != 0 || (version && strcmp(v, version) != 0)) {
        printf("# %s: %s does not decode back\n", name, out);
        return false;
    }
    return true;
}

TEST(encoding_reads_like_the_name)
{
    char buf[GABI_PLACEMENT_NAME_MAX + 1];

    CHECK(gabi_placement_name(GABI_PLACEMENT_MODE, "upstream.guestabi-net.v2", NULL, buf,
                              sizeof(buf), NULL) > 0);
    CHECK_STR(buf, "CUSTOM_GUESTABI_MODE_UPSTREAM_DGUESTABI_HNET_DV2");
    CHECK(gabi_placement_name(GABI_PLACEMENT_PLATFORM, "linux-6.2", NULL, buf, sizeof(buf), NULL) >
          0);
    CHECK_STR(buf, "CUSTOM_GUESTABI_PLATFORM_LINUX_H6_D2");
    CHECK(gabi_placement_name(GABI_PLACEMENT_STATE, "i915-GVTg_V5_4", "1.0", buf, sizeof(buf),
                              NULL) > 0);
    CHECK_STR(buf, "CUSTOM_GUESTABI_STATE_I915_H_CG_CV_CTG_U_CV5_U4__1_D0");
    CHECK(gabi_placement_name(GABI_PLACEMENT_VF, "8086:154c", NULL, buf, sizeof(buf), NULL) > 0);
    CHECK_STR(buf, "CUSTOM_GUESTABI_VF_8086_K154C");
}

/* Names that differ only by '.' and '-', by case, by an underscore that looks like an escape,
 * or by where a state's type ends and its version begins: all different traits. */
TEST(encoding_is_injective_on_near_names)
{
    static const char *const names[] = {
        "a.b",  "a-b", "a_b",  "A.b", "a.B", "ab",   "a..b",   "a.-b", "a-.b", "a:b", "a/b",
        "a+b",  "a b", "a_Db", "a_d", "aD",  "a_DB", "a\x01b", "a__b", "a_",   "_a",  "a\xc3\xa9",
        "a_X2", "a,b", "AB",   "Ab",  "aB",  "a.b.", "a.b-",   "1.0",  "1-0",  "1_0", "10",
    };
    char traits[ARRAY_LEN(names)][GABI_PLACEMENT_NAME_MAX + 1];

    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        CHECK(round_trip(GABI_PLACEMENT_MODE, names[i], NULL, traits[i]));
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        for (size_t j = i + 1; j < ARRAY_LEN(names); j++)
            if (strcmp(traits[i], traits[j]) == 0)
                TAP_FAIL("\"%s\" and \"%s\" share %s", names[i], names[j], traits[i]);
}

TEST(state_pairs_do_not_run_together)
{
    static const char *const pairs[][2] = {
        {"a", "b.c"},  {"a.b", "c"},  {"a_", "b"},       {"a", "_b"},       {"a_", "_b"},
        {"a__b", "c"}, {"a", "b__c"}, {"mtty-1", "1.0"}, {"mtty", "1-1.0"}, {"mtty-1-1", "0"},
    };
    char traits[ARRAY_LEN(pairs)][GABI_PLACEMENT_NAME_MAX + 1];

    for (size_t i = 0; i < ARRAY_LEN(pairs); i++)
        CHECK(round_trip(GABI_PLACEMENT_STATE, pairs[i][0], pairs[i][1], traits[i]));
    for (size_t i = 0; i < ARRAY_LEN(pairs); i++)
        for (size_t j = i + 1; j < ARRAY_LEN(pairs); j++)
            if (strcmp(traits[i], traits[j]) == 0)
                TAP_FAIL("(%s, %s) and (%s, %s) share %s", pairs[i][0], pairs[i][1], pairs[j][0],
                         pairs[j][1], traits[i]);
}

/* Random names over the characters that matter: every one decodes back to itself, so no two
 * share a trait; and different kinds never share one either. */
TEST(encoding_round_trips_random_names)
{
    static const char alphabet[] = "ab.-_:/+AZ09 \x7f\xff";
    char name[64], trait[GABI_PLACEMENT_NAME_MAX + 1], other[GABI_PLACEMENT_NAME_MAX + 1];
    unsigned seed = 12345;
    size_t failures = 0;

    for (int i = 0; i < 20000 && failures < 5; i++) {
        size_t n = 1 + (size_t)rand_r(&seed) % 40;

        for (size_t j = 0; j < n; j++)
            name[j] = alphabet[(size_t)rand_r(&seed) % (sizeof(alphabet) - 1)];
        name[n] = '\0';
        if (!round_trip(GABI_PLACEMENT_MODE, name, NULL, trait))
            failures++;
        if (gabi_placement_name(GABI_PLACEMENT_PLATFORM, name, NULL, other, sizeof(other), NULL) <
                0 ||
            strcmp(trait, other) == 0)
            failures++;
    }
    CHECK_INT(failures, 0);
}

/* No truncation: long names that differ only at their end keep different traits; a name whose
 * trait would pass 255 characters is refused, never cut. */
TEST(long_names_refused_not_truncated)
{
    char a[300], b[300], ta[GABI_PLACEMENT_NAME_MAX + 1], tb[GABI_PLACEMENT_NAME_MAX + 1];
    struct gabi_error err = {0};
    int r;

    memset(a, 'x', GABI_MAX_NAME);
    a[GABI_MAX_NAME] = '\0';
    memcpy(b, a, sizeof(a));
    b[GABI_MAX_NAME - 1] = 'y';
    CHECK(round_trip(GABI_PLACEMENT_MODE, a, NULL, ta));
    CHECK(round_trip(GABI_PLACEMENT_MODE, b, NULL, tb));
    CHECK(strcmp(ta, tb) != 0);
    CHECK_INT(strlen(ta), strlen(GABI_PLACEMENT_PREFIX "MODE_") + GABI_MAX_NAME);

    memset(a, '.', GABI_MAX_NAME); /* 2 characters each: 256 */
    r = gabi_placement_name(GABI_PLACEMENT_MODE, a, NULL, ta, sizeof(ta), &err);
    CHECK_INT(r, -ENAMETOOLONG);
    CHECK_CONTAINS(err.message, "too long for a Placement name");
    /* the longest that fits: 255 exactly */
    memset(a, 'x', sizeof(a));
    a[255 - strlen(GABI_PLACEMENT_PREFIX "MODE_")] = '\0';
    CHECK_INT(gabi_placement_name(GABI_PLACEMENT_MODE, a, NULL, ta, sizeof(ta), NULL), 255);
    strcat(a, "x");
    CHECK_INT(gabi_placement_name(GABI_PLACEMENT_MODE, a, NULL, ta, sizeof(ta), NULL),
              -ENAMETOOLONG);
    CHECK_INT(gabi_placement_name(GABI_PLACEMENT_MODE, "", NULL, ta, sizeof(ta), NULL), -EINVAL);
}

TEST(decode_refuses_what_guestabi_did_not_make)
{
    static const char *const bad[] = {
        "CUSTOM_GUESTABI_MODE_",      "CUSTOM_GUESTABI_MODE_A_",   "CUSTOM_GUESTABI_MODE_A_Q",
        "CUSTOM_GUESTABI_MODE_A__B",  "CUSTOM_GUESTABI_STATE_A",   "CUSTOM_GUESTABI_MODE_A_X41",
        "CUSTOM_GUESTABI_MODE_A_X2E", "CUSTOM_GUESTABI_OTHER_A",   "HW_CPU_X86_AVX2",
        "CUSTOM_GUESTABI_MODE_A_CA_", "CUSTOM_GUESTABI_STATE_A__", "CUSTOM_GUESTABI_HOST",
    };
    char n[300], v[300];
    enum gabi_placement_kind k;

    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        if (gabi_placement_name_decode(bad[i], &k, n, v, sizeof(n)) == 0)
            TAP_FAIL("%s decoded as \"%s\"", bad[i], n);
}

static bool has_trait(const struct gabi_placement_host *ph, const char *t)
{
    for (size_t i = 0; i < ph->n_traits; i++)
        if (strcmp(ph->traits[i], t) == 0)
            return true;
    return false;
}

/* What Placement would answer for one provider: every required trait there, enough free
 * inventory for every resource. */
static bool provider_takes(const struct gabi_placement_host *ph,
                           const struct gabi_placement_query *q)
{
    for (size_t i = 0; i < q->n_needs; i++) {
        const struct gabi_placement_need *n = &q->needs[i];
        bool ok = false;

        if (!n->amount) {
            ok = has_trait(ph, n->name) != n->forbidden;
        } else {
            for (size_t j = 0; j < ph->n_inventory; j++)
                if (strcmp(ph->inventory[j].resource_class, n->name) == 0)
                    ok = ph->inventory[j].total - ph->inventory[j].reserved >= n->amount;
        }
        if (!ok)
            return false;
    }
    return true;
}

static const char *const hosts_json[] = {
    /* no USO, v1 only, one free VF of another device, mtty-1 exhausted */
    "{\"schema\": \"guestabi.hostcaps/1\", \"host\": \"h-a\", \"kernel\": {\"release\": \"5.4\", "
    "\"capabilities\": {\"tap.vnet_hdr\": \"supported\", \"tap.csum\": \"supported\", "
    "\"tap.tso4\": \"supported\", \"tap.tso6\": \"supported\", \"tap.tso_ecn\": \"supported\", "
    "\"tap.ufo\": \"supported\"}}, \"backends\": [{\"name\": \"n\", \"class\": \"virtio-net\", "
    "\"modes\": [\"upstream.guestabi-net.v1\"]}], \"device_types\": [{\"name\": \"mtty-1\", "
    "\"kind\": \"mdev\", \"available_instances\": 0}], \"failover\": [{\"address\": "
    "\"0000:01:00.1\", \"pf\": \"p\", \"device\": \"15b3:101e\", \"in_use\": false}]}",
    /* a range loader for mtty-2 and every VF in use */
    "{\"schema\": \"guestabi.hostcaps/1\", \"host\": \"h-b\", \"backends\": [{\"name\": \"n\", "
    "\"class\": \"virtio-net\", \"modes\": [\"upstream.guestabi-net.v2\", "
    "\"upstream.guestabi-net.v1\"]}], \"device_types\": [{\"name\": \"mtty-2\", \"kind\": "
    "\"mdev\", \"loads\": {\"version\": \"1.2\", \"minimum\": \"1.0\"}, \"writes\": [\"1.2\"]}], "
    "\"failover\": [{\"address\": \"0000:01:00.1\", \"pf\": \"p\", \"device\": \"8086:154c\", "
    "\"in_use\": true}]}",
};

static const char *const pins_json[] = {
    "{\"schema\": \"guestabi.pin/1\", \"vm\": \"p0\", \"devices\": []}",
    "{\"schema\": \"guestabi.pin/1\", \"vm\": \"p1\", \"platform\": \"linux-4.15\", \"devices\": "
    "[{\"id\": \"n\", \"class\": \"virtio-net\", \"mode\": \"upstream.guestabi-net.v1\"}]}",
    "{\"schema\": \"guestabi.pin/1\", \"vm\": \"p2\", \"devices\": [{\"id\": \"n\", \"class\": "
    "\"virtio-net\", \"mode\": \"upstream.guestabi-net.v2\"}]}",
    "{\"schema\": \"guestabi.pin/1\", \"vm\": \"p3\", \"devices\": [{\"id\": \"s\", \"class\": "
    "\"mdev\", \"type\": \"mtty-1\", \"state_version\": \"1.0\"}]}",
    "{\"schema\": \"guestabi.pin/1\", \"vm\": \"p4\", \"devices\": [{\"id\": \"s\", \"class\": "
    "\"mdev\", \"type\": \"mtty-2\", \"state_version\": \"1.2\"}]}",
    "{\"schema\": \"guestabi.pin/1\", \"vm\": \"p5\", \"platform\": \"linux-4.13\", "
    "\"devices\": [{\"id\": \"n\", \"class\": "
    "\"virtio-net\", \"mode\": \"upstream.guestabi-net.v1\", \"failover\": {\"primary\": \"h\", "
    "\"device\": \"8086:154c\"}}]}",
    "{\"schema\": \"guestabi.pin/1\", \"vm\": \"p6\", \"platform\": \"linux-4.13\", "
    "\"devices\": [{\"id\": \"n\", \"class\": "
    "\"virtio-net\", \"mode\": \"upstream.guestabi-net.v1\", \"failover\": {\"primary\": \"h\", "
    "\"device\": \"15b3:101e\"}}]}",
    "{\"schema\": \"guestabi.pin/1\", \"vm\": \"p7\", \"platform\": \"linux-6.2\", \"devices\": "
    "[]}",
};

/* The mapping is only right if asking Placement gives check's answer: for every host and pin,
 * "the provider has every trait and the inventory" == gabi_check_ok. Both answers occur. */
TEST(queries_agree_with_check)
{
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_hostcaps *hosts[ARRAY_LEN(hosts_json) + 2] = {0};
    struct gabi_placement_host *ph[ARRAY_LEN(hosts)] = {0};
    size_t n_yes = 0, n_no = 0;
    struct gabi_error err = {0};

    REQUIRE(cat);
    for (size_t i = 0; i < ARRAY_LEN(hosts_json); i++)
        hosts[i] = hostcaps_from(cat, hosts_json[i]);
    REQUIRE(gabi_hostcaps_load_file(cat, source_path("docs/examples/host-2019.json"),
                                    &hosts[ARRAY_LEN(hosts_json)], &err) == 0);
    REQUIRE(gabi_hostcaps_load_file(cat, source_path("docs/examples/host-2024.json"),
                                    &hosts[ARRAY_LEN(hosts_json) + 1], &err) == 0);
    for (size_t i = 0; i < ARRAY_LEN(hosts); i++) {
        REQUIRE(hosts[i]);
        REQUIRE(gabi_placement_host_from_hostcaps(cat, hosts[i], &ph[i], &err) == 0);
        for (size_t t = 0; t < ph[i]->n_traits; t++)
            CHECK(placement_syntax(ph[i]->traits[t]));
    }
    CHECK(has_trait(ph[1], "CUSTOM_GUESTABI_STATE_MTTY_H2__1_D0"));  /* from the catalog */
    CHECK(has_trait(ph[1], "CUSTOM_GUESTABI_STATE_MTTY_H2__1_D2"));  /* from its own writes */
    CHECK(!has_trait(ph[0], "CUSTOM_GUESTABI_STATE_MTTY_H1__1_D0")); /* no free instance */
    for (size_t p = 0; p < ARRAY_LEN(pins_json); p++) {
        struct gabi_pin *pin = pin_from(cat, pins_json[p]);
        struct gabi_placement_query *q = NULL;

        REQUIRE(pin);
        if (!gabi_pin_platform(pin) && gabi_pin_needs_platform(pin)) {
            /* check refuses it everywhere (the platform it runs is the source's); so does
             * the query, with the reason */
            CHECK(gabi_placement_query_from_pin(cat, pin, &q, &err) == -EINVAL);
            CHECK(strstr(err.message, "names no platform") != NULL);
            for (size_t i = 0; i < ARRAY_LEN(hosts); i++)
                CHECK(!gabi_check_ok(pin, hosts[i]));
            gabi_pin_free(pin);
            continue;
        }
        REQUIRE(gabi_placement_query_from_pin(cat, pin, &q, &err) == 0);
        for (size_t i = 0; i < ARRAY_LEN(hosts); i++) {
            bool want = gabi_check_ok(pin, hosts[i]), got = provider_takes(ph[i], q);

            if (want != got)
                TAP_FAIL("pin %s on %s: check says %d, the query %d", gabi_pin_vm(pin),
                         gabi_hostcaps_host(hosts[i]), want, got);
            if (want)
                n_yes++;
            else
                n_no++;
        }
        gabi_placement_query_free(q);
        gabi_pin_free(pin);
    }
    CHECK(n_yes >= 5 && n_no >= 5);
    for (size_t i = 0; i < ARRAY_LEN(hosts); i++) {
        gabi_placement_host_free(ph[i]);
        gabi_hostcaps_free(hosts[i]);
    }
    gabi_catalog_free(cat);
}

TEST(resources_parse_with_bounds)
{
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_pin *pin = pin_from(cat, pins_json[5]);
    struct gabi_placement_query *q = NULL;
    struct gabi_error err = {0};
    char *res;

    REQUIRE(pin && gabi_placement_query_from_pin(cat, pin, &q, &err) == 0);
    CHECK(gabi_placement_query_add_resources(q, "VCPU:2,MEMORY_MB:4096,VCPU:1", &err) == 0);
    res = gabi_placement_query_resources(q);
    CHECK_STR(res, "CUSTOM_GUESTABI_VF_8086_K154C:1,VCPU:3,MEMORY_MB:4096");
    free(res);
    CHECK(gabi_placement_query_add_resources(q, "vcpu:2", &err) == -EINVAL);
    CHECK_CONTAINS(err.message, "not [A-Z0-9_]");
    CHECK(gabi_placement_query_add_resources(q, "VCPU:0", &err) == -EINVAL);
    CHECK(gabi_placement_query_add_resources(q, "VCPU", &err) == -EINVAL);
    CHECK(gabi_placement_query_add_resources(q, "VCPU:99999999999", &err) == -EINVAL);
    CHECK(gabi_placement_query_add_resources(q, ",", &err) == -EINVAL);
    gabi_placement_query_free(q);
    gabi_pin_free(pin);
    gabi_catalog_free(cat);
}

TEST(labels_follow_the_traits)
{
    static const char *const traits[] = {
        "CUSTOM_GUESTABI_HOST",
        "CUSTOM_GUESTABI_MODE_UPSTREAM_DGUESTABI_HNET_DV2",
        "CUSTOM_GUESTABI_MODE_UPSTREAM_DGUESTABI_HNET_DV3",
        "CUSTOM_GUESTABI_PLATFORM_LINUX_H6_D2",
        "CUSTOM_GUESTABI_STATE_MTTY_H1__1_D0",
        "CUSTOM_GUESTABI_VF_8086_K154C",
        /* 64 and 65 characters after the prefix: hashed, and not alike */
        "CUSTOM_GUESTABI_MODE_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "CUSTOM_GUESTABI_MODE_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    };
    char keys[ARRAY_LEN(traits)][96];

    for (size_t i = 0; i < ARRAY_LEN(traits); i++) {
        REQUIRE(gabi_label_key(traits[i], keys[i], sizeof(keys[i])) > 0);
        if (!gabi_label_key_valid(keys[i]))
            TAP_FAIL("%s: label %s is not valid", traits[i], keys[i]);
        for (size_t j = 0; j < i; j++)
            if (strcmp(keys[i], keys[j]) == 0)
                TAP_FAIL("%s and %s share label %s", traits[i], traits[j], keys[i]);
    }
    CHECK_STR(keys[1], "guestabi.io/mode_upstream_dguestabi_hnet_dv2");
    CHECK_STR(keys[0], "guestabi.io/host");
    CHECK(strncmp(keys[6], "guestabi.io/mode-", 17) == 0);
    CHECK(gabi_label_key("HW_CPU_X86_AVX2", keys[0], sizeof(keys[0])) < 0);
    /* the syntax check itself refuses what Kubernetes refuses */
    CHECK(!gabi_label_key_valid("guestabi.io/-a"));
    CHECK(!gabi_label_key_valid("guestabi.io/a-"));
    CHECK(!gabi_label_key_valid("guestabi.io/a b"));
    CHECK(!gabi_label_key_valid("Guestabi.io/a"));
    CHECK(!gabi_label_key_valid("guestabi..io/a"));
    CHECK(
        !gabi_label_key_valid("guestabi.io/"
                              "a234567890123456789012345678901234567890123456789012345678901234"));
    CHECK(gabi_label_key_valid("guestabi.io/"
                               "a23456789012345678901234567890123456789012345678901234567890123"));
}

TAP_MAIN()
