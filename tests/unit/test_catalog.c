/* SPDX-License-Identifier: MIT */
/* The catalog: the built-in one, layering, and every kind of bad document. */

#include <errno.h>

#include "abi_fixtures.h"
#include "tap.h"

/* Add one document to a fresh catalog (built-in first when `with_builtin`), finalize. */
static int try_doc(const char *text, bool with_builtin, struct gabi_error *err)
{
    struct gabi_catalog *cat = gabi_catalog_new();
    int r = 0;

    memset(err, 0, sizeof(*err));
    if (with_builtin)
        r = gabi_catalog_add_builtin(cat, err);
    if (r >= 0)
        r = gabi_catalog_add_document(cat, 2, "site.json", text, strlen(text), err);
    if (r >= 0)
        r = gabi_catalog_finalize(cat, err);
    gabi_catalog_free(cat);
    return r;
}

#define MODE_JSON(name, order, features)                                                           \
    "{\"name\": \"" name "\", \"class\": \"virtio-net\", \"order\": " #order ", "                  \
    "\"features\": [" features "], \"max_queue_pairs\": 1, \"max_queue_size\": 256}"

#define V1 "\"VIRTIO_F_VERSION_1\""

TEST(builtin_catalog_loads)
{
    struct gabi_catalog *cat = builtin_catalog();
    const struct gabi_platform *p;
    const struct gabi_mode *m;

    REQUIRE(cat);
    CHECK(gabi_catalog_n_modes(cat) >= 9);
    m = gabi_catalog_newest_mode(cat, GABI_CLASS_NET);
    REQUIRE(m);
    CHECK_STR(m->name, "upstream.guestabi-net.v4");
    CHECK_STR(gabi_catalog_newest_mode(cat, GABI_CLASS_BLK)->name, "upstream.guestabi-blk.v2");

    /* inheritance: 6.2 = 4.15 (UFO back) + USO */
    p = gabi_catalog_find_platform(cat, "linux-6.2");
    REQUIRE(p);
    CHECK(p->features & (1ull << GABI_NET_F_HOST_USO));
    CHECK(p->features & (1ull << GABI_NET_F_HOST_UFO));
    CHECK(p->requires & (1u << GABI_KCAP_TAP_USO4));
    /* 4.14 dropped UFO from its base */
    p = gabi_catalog_find_platform(cat, "linux-4.14");
    REQUIRE(p);
    CHECK(!(p->features & (1ull << GABI_NET_F_HOST_UFO)));
    CHECK(!(p->requires & (1u << GABI_KCAP_TAP_UFO)));
    CHECK(p->features & (1ull << GABI_NET_F_HOST_TSO4));
    /* the distro entry has no USO */
    p = gabi_catalog_find_platform(cat, "linux-rhel-9.5");
    REQUIRE(p);
    CHECK(!(p->features & (1ull << GABI_NET_F_HOST_USO)));
    CHECK_STR(gabi_catalog_platform(cat, 0)->name, "linux-6.2");
    CHECK(gabi_catalog_find_device_type(cat, "mtty-1") != NULL);
    gabi_catalog_free(cat);
}

TEST(higher_layer_overrides)
{
    static const char site[] = "{\"schema\": \"guestabi.catalog/1\", \"modes\": [" MODE_JSON(
        "upstream.guestabi-net.v1", 202601, V1 ", \"VIRTIO_NET_F_MRG_RXBUF\"") "]}";
    struct gabi_catalog *cat = gabi_catalog_new();
    struct gabi_error err = {0};
    const struct gabi_mode *m;

    REQUIRE(gabi_catalog_add_builtin(cat, &err) == 0);
    CHECK_INT(gabi_catalog_add_document(cat, 1, "etc.json", site, strlen(site), &err), 0);
    CHECK_INT(gabi_catalog_finalize(cat, &err), 0);
    m = gabi_catalog_find_mode(cat, "upstream.guestabi-net.v1");
    REQUIRE(m);
    CHECK_STR(m->origin, "etc.json");
    CHECK(!(m->features & (1ull << GABI_F_LOG_ALL)));
    gabi_catalog_free(cat);
}

TEST(same_layer_conflict_names_both_files)
{
    static const char a[] =
        "{\"schema\": \"guestabi.catalog/1\", \"modes\": [" MODE_JSON("site.net.v1", 1, V1) "]}";
    static const char b[] = "{\"schema\": \"guestabi.catalog/1\", \"modes\": [" MODE_JSON(
        "site.net.v1", 1, V1 ", \"VIRTIO_NET_F_MRG_RXBUF\"") "]}";
    struct gabi_catalog *cat = gabi_catalog_new();
    struct gabi_error err = {0};

    CHECK_INT(gabi_catalog_add_document(cat, 1, "a.json", a, strlen(a), &err), 0);
    /* the same definition again is fine */
    CHECK_INT(gabi_catalog_add_document(cat, 1, "a2.json", a, strlen(a), &err), 0);
    CHECK_INT(gabi_catalog_add_document(cat, 1, "b.json", b, strlen(b), &err), -EEXIST);
    CHECK_CONTAINS(err.where, "b.json: $.modes[0]");
    CHECK_CONTAINS(err.message, "a.json: $.modes[0]");
    CHECK_CONTAINS(err.message, "site.net.v1");
    /* the failed document added nothing */
    CHECK_INT(gabi_catalog_n_modes(cat), 1);
    gabi_catalog_free(cat);
}

TEST(inheritance_cycle)
{
    static const char doc[] = "{\"schema\": \"guestabi.catalog/1\", \"platforms\": ["
                              "{\"name\": \"p-a\", \"base\": \"p-b\", \"order\": 1},"
                              "{\"name\": \"p-b\", \"base\": \"p-c\", \"order\": 2},"
                              "{\"name\": \"p-c\", \"base\": \"p-a\", \"order\": 3}]}";
    struct gabi_error err;

    CHECK_INT(try_doc(doc, false, &err), -ELOOP);
    CHECK_CONTAINS(err.message, "inherits from itself");
    CHECK_CONTAINS(err.where, "site.json: $.platforms[");
}

TEST(unknown_base_suggests)
{
    static const char doc[] = "{\"schema\": \"guestabi.catalog/1\", \"platforms\": ["
                              "{\"name\": \"site-1\", \"base\": \"linux-6.3\", \"order\": 9}]}";
    struct gabi_error err;

    CHECK_INT(try_doc(doc, true, &err), -ENOENT);
    CHECK_CONTAINS(err.message, "unknown platform \"linux-6.3\"");
    CHECK_CONTAINS(err.message, "did you mean linux-6.2");
    CHECK_CONTAINS(err.where, "$.platforms[0].base");
}

TEST(unknown_feature_names_path_and_nearest)
{
    static const char doc[] = "{\"schema\": \"guestabi.catalog/1\", \"modes\": [" MODE_JSON(
        "x.v1", 1, V1 ", \"VIRTIO_NET_F_HOST_US0\"") "]}";
    struct gabi_error err;

    CHECK_INT(try_doc(doc, false, &err), -EINVAL);
    CHECK_STR(err.where, "site.json: $.modes[0].features[1]");
    CHECK_CONTAINS(err.message, "unknown virtio-net feature \"VIRTIO_NET_F_HOST_US0\"");
    CHECK_CONTAINS(err.message, "did you mean VIRTIO_NET_F_HOST_USO");
}

TEST(feature_of_wrong_class)
{
    static const char doc[] = "{\"schema\": \"guestabi.catalog/1\", \"modes\": [" MODE_JSON(
        "x.v1", 1, V1 ", \"VIRTIO_BLK_F_FLUSH\"") "]}";
    struct gabi_error err;

    CHECK_INT(try_doc(doc, false, &err), -EINVAL);
    CHECK_CONTAINS(err.message, "does not belong to class virtio-net");
}

TEST(masks_are_never_numbers)
{
    static const char doc[] = "{\"schema\": \"guestabi.catalog/1\", \"modes\": [" MODE_JSON(
        "x.v1", 1, V1 ", 4294967296") "]}";
    static const char hex[] = "{\"schema\": \"guestabi.catalog/1\", \"modes\": [" MODE_JSON(
        "x.v1", 1, "\"0x100000000\"") "]}";
    struct gabi_error err;

    CHECK_INT(try_doc(doc, false, &err), -EINVAL);
    CHECK_CONTAINS(err.message, "never JSON numbers");
    CHECK_STR(err.where, "site.json: $.modes[0].features[1]");
    /* a hex string is a mask */
    CHECK_INT(try_doc(hex, false, &err), 0);
}

TEST(wrong_types)
{
    static const char doc[] =
        "{\"schema\": \"guestabi.catalog/1\", \"modes\": [{\"name\": \"x\", \"class\": "
        "\"virtio-net\", \"order\": 1, \"features\": [" V1 "], \"max_queue_pairs\": \"8\", "
        "\"max_queue_size\": 256}]}";
    static const char range[] =
        "{\"schema\": \"guestabi.catalog/1\", \"modes\": [{\"name\": \"x\", \"class\": "
        "\"virtio-net\", \"order\": 1, \"features\": [" V1 "], \"max_queue_pairs\": 1, "
        "\"max_queue_size\": 100}]}";
    static const char notarray[] = "{\"schema\": \"guestabi.catalog/1\", \"modes\": {}}";
    struct gabi_error err;

    CHECK_INT(try_doc(doc, false, &err), -EINVAL);
    CHECK_STR(err.where, "site.json: $.modes[0].max_queue_pairs");
    CHECK_CONTAINS(err.message, "expected an integer, got a string");
    CHECK_INT(try_doc(range, false, &err), -EINVAL);
    CHECK_CONTAINS(err.message, "not a power of two");
    CHECK_INT(try_doc(notarray, false, &err), -EINVAL);
    CHECK_STR(err.where, "site.json: $.modes");
}

TEST(malformed_json_has_line_and_column)
{
    static const char doc[] = "{\"schema\": \"guestabi.catalog/1\",\n  \"modes\": [\n  }\n";
    static const char dup[] = "{\"schema\": \"guestabi.catalog/1\", \"modes\": [], \"modes\": []}";
    static const char noschema[] = "{\"modes\": []}";
    static const char other[] = "{\"schema\": \"guestabi.pin/1\"}";
    struct gabi_error err;

    CHECK_INT(try_doc(doc, false, &err), -EINVAL);
    CHECK_CONTAINS(err.where, "site.json:3:");
    CHECK_CONTAINS(err.message, "invalid JSON");
    CHECK_INT(try_doc(dup, false, &err), -EINVAL);
    CHECK_CONTAINS(err.message, "duplicate");
    CHECK_INT(try_doc(noschema, false, &err), -EINVAL);
    CHECK_CONTAINS(err.message, "missing \"schema\"");
    CHECK_INT(try_doc(other, false, &err), -EINVAL);
    CHECK_CONTAINS(err.message, "expected \"guestabi.catalog/1\"");
    CHECK_INT(try_doc("[1,2]", false, &err), -EINVAL);
    CHECK_INT(try_doc("", false, &err), -EINVAL);
}

TEST(unknown_key_suggests)
{
    static const char doc[] =
        "{\"schema\": \"guestabi.catalog/1\", \"modes\": [{\"name\": \"x\", \"class\": "
        "\"virtio-net\", \"order\": 1, \"features\": [" V1 "], \"max_queue_pair\": 1, "
        "\"max_queue_size\": 256}]}";
    struct gabi_error err;

    CHECK_INT(try_doc(doc, false, &err), -EINVAL);
    CHECK_STR(err.where, "site.json: $.modes[0].max_queue_pair");
    CHECK_CONTAINS(err.message, "did you mean max_queue_pairs");
}

TEST(duplicates_in_one_document)
{
    static const char doc[] = "{\"schema\": \"guestabi.catalog/1\", \"modes\": [" MODE_JSON(
        "x.v1", 1, V1) ", " MODE_JSON("x.v1", 2, V1) "]}";
    struct gabi_error err;

    CHECK_INT(try_doc(doc, false, &err), -EINVAL);
    CHECK_CONTAINS(err.message, "defined twice in this document");
    CHECK_STR(err.where, "site.json: $.modes[1]");
}

TEST(platform_feature_needs_its_capability)
{
    static const char doc[] =
        "{\"schema\": \"guestabi.catalog/1\", \"platforms\": [{\"name\": \"bad\", \"order\": 1, "
        "\"requires\": [\"tap.vnet_hdr\"], \"features\": [\"VIRTIO_NET_F_HOST_USO\"]}]}";
    static const char not_kernel[] =
        "{\"schema\": \"guestabi.catalog/1\", \"platforms\": [{\"name\": \"bad\", \"order\": 1, "
        "\"features\": [\"VIRTIO_NET_F_MRG_RXBUF\"]}]}";
    struct gabi_error err;

    CHECK_INT(try_doc(doc, false, &err), -EINVAL);
    CHECK_CONTAINS(err.message, "VIRTIO_NET_F_HOST_USO, which needs tap.uso4, tap.uso6");
    CHECK_INT(try_doc(not_kernel, false, &err), -EINVAL);
    CHECK_CONTAINS(err.message, "does not depend on the host kernel");
}

TEST(order_ties_are_refused)
{
    static const char doc[] = "{\"schema\": \"guestabi.catalog/1\", \"modes\": [" MODE_JSON(
        "x.v1", 7, V1) ", " MODE_JSON("y.v1", 7, V1) "]}";
    struct gabi_error err;

    CHECK_INT(try_doc(doc, false, &err), -EINVAL);
    CHECK_CONTAINS(err.message, "share order 7");
}

TEST(device_type_rules)
{
    static const char doc[] =
        "{\"schema\": \"guestabi.catalog/1\", \"device_types\": ["
        "{\"name\": \"vgpu-a\", \"kind\": \"mdev\", \"loads\": {\"version\": \"6.3\", "
        "\"minimum\": \"6.0\"}},"
        "{\"name\": \"vgpu-b\", \"kind\": \"mdev\", \"loads\": [\"2\", \"1\"], \"writes\": [\"3\"]}"
        "]}";
    static const char backwards[] =
        "{\"schema\": \"guestabi.catalog/1\", \"device_types\": [{\"name\": \"v\", \"kind\": "
        "\"mdev\", \"loads\": {\"version\": \"6.0\", \"minimum\": \"6.10\"}}]}";
    struct gabi_error err;
    struct gabi_catalog *cat = gabi_catalog_new();
    const struct gabi_device_type *t;

    CHECK_INT(try_doc(doc, false, &err), -EINVAL);
    CHECK_CONTAINS(err.message, "writes version \"3\" that it does not load");
    CHECK_INT(try_doc(backwards, false, &err), -EINVAL);
    CHECK_CONTAINS(err.message, "minimum \"6.10\" is newer than version \"6.0\"");

    /* the range form writes its newest and loads the whole range */
    static const char ok[] =
        "{\"schema\": \"guestabi.catalog/1\", \"device_types\": [{\"name\": \"vgpu-a\", "
        "\"kind\": \"mdev\", \"loads\": {\"version\": \"6.10\", \"minimum\": \"6.2\"}}]}";
    REQUIRE(gabi_catalog_add_document(cat, 0, "ok.json", ok, strlen(ok), &err) == 0);
    REQUIRE(gabi_catalog_finalize(cat, &err) == 0);
    t = gabi_catalog_find_device_type(cat, "vgpu-a");
    REQUIRE(t);
    CHECK_INT(t->writes.n, 1);
    CHECK_STR(t->writes.list[0], "6.10");
    CHECK(gabi_versions_accepts(&t->loads, "6.9"));
    CHECK(gabi_versions_accepts(&t->loads, "6.10"));
    CHECK(!gabi_versions_accepts(&t->loads, "6.11"));
    CHECK(!gabi_versions_accepts(&t->loads, "6.1"));
    gabi_catalog_free(cat);
}

/* v3 is what v3 VMs were started with, bit for bit; v4 is v3 plus packed rings and IN_ORDER */
TEST(guestabi_net_v4_is_v3_plus_packed_and_in_order)
{
    struct gabi_catalog *cat = builtin_catalog();
    const struct gabi_mode *v3, *v4;
    const uint64_t v3_features = (1ull << GABI_NET_F_CSUM) | (1ull << GABI_NET_F_GUEST_CSUM) |
                                 (1ull << GABI_NET_F_MTU) | (1ull << GABI_NET_F_MRG_RXBUF) |
                                 (1ull << GABI_F_INDIRECT_DESC) | (1ull << GABI_F_EVENT_IDX) |
                                 (1ull << GABI_F_VERSION_1) | (1ull << GABI_F_LOG_ALL) |
                                 (1ull << GABI_F_PROTOCOL_FEATURES);

    REQUIRE(cat);
    v3 = gabi_catalog_find_mode(cat, "upstream.guestabi-net.v3");
    v4 = gabi_catalog_find_mode(cat, "upstream.guestabi-net.v4");
    REQUIRE(v3 && v4);
    CHECK(v3->features == v3_features);
    CHECK(!(v3->features & (1ull << GABI_F_RING_PACKED)));
    CHECK(v4->features ==
          (v3->features | (1ull << GABI_F_RING_PACKED) | (1ull << GABI_F_IN_ORDER)));
    CHECK(v4->protocol_features == v3->protocol_features);
    CHECK_INT(v4->max_queue_pairs, v3->max_queue_pairs);
    CHECK_INT(v4->max_queue_size, v3->max_queue_size);
    CHECK(v4->order > v3->order);
    gabi_catalog_free(cat);
}

TEST(require_mode_suggests)
{
    struct gabi_catalog *cat = builtin_catalog();
    const struct gabi_mode *m = NULL;
    struct gabi_error err = {0};

    REQUIRE(cat);
    CHECK_INT(gabi_catalog_require_mode(cat, "upstream.guestabi-net.v9", &m, &err), -ENOENT);
    CHECK_CONTAINS(err.message, "did you mean upstream.guestabi-net.v1");
    CHECK(m == NULL);
    gabi_catalog_free(cat);
}

TEST(offer_maps_to_modes)
{
    struct gabi_catalog *cat = builtin_catalog();
    const struct gabi_mode *modes[32];
    const struct gabi_mode *v1;
    size_t n;

    REQUIRE(cat);
    v1 = gabi_catalog_find_mode(cat, "upstream.guestabi-net.v1");
    REQUIRE(v1);
    /* exactly v1's offer runs v1 and nothing newer */
    n = gabi_catalog_modes_for_offer(cat, GABI_CLASS_NET, v1->features, v1->protocol_features,
                                     v1->max_queue_pairs, v1->max_queue_size, modes, 32);
    CHECK_INT(n, 1);
    CHECK(n == 1 && modes[0] == v1);
    /* one queue slot short of v1 runs nothing */
    n = gabi_catalog_modes_for_offer(cat, GABI_CLASS_NET, v1->features, v1->protocol_features,
                                     v1->max_queue_pairs, v1->max_queue_size / 2, modes, 32);
    CHECK_INT(n, 0);
    gabi_catalog_free(cat);
}

/* The one rule for names and versions (documents, probe, command line). */
TEST(name_and_version_rules)
{
    static const struct {
        const char *version;
        bool ok;
    } versions[] = {
        {"5.10", true}, {"10.0", true},   {"0.1", true},   {"1.0~rc1", true}, {"v2", true},
        {"100", true},  {"5.010", false}, {"1.00", false}, {"01", false},     {"", false},
        {"-1", false},  {"1:2", false},   {"1 2", false},  {"1/2", false},
    };
    char why[256], name[GABI_MAX_NAME + 2], version[GABI_MAX_VERSION + 2];

    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        bool ok = gabi_version_check(versions[i].version, why, sizeof(why)) == 0;

        if (ok != versions[i].ok)
            TAP_FAIL("version \"%s\": %s, expected %s", versions[i].version, ok ? "accepted" : why,
                     versions[i].ok ? "accepted" : "refused");
    }
    CHECK(gabi_version_check("5.010", why, sizeof(why)) < 0);
    CHECK_CONTAINS(why, "leading zero");
    memset(version, '1', GABI_MAX_VERSION);
    version[GABI_MAX_VERSION] = '\0';
    CHECK(gabi_version_check(version, why, sizeof(why)) == 0);
    version[GABI_MAX_VERSION] = '1';
    version[GABI_MAX_VERSION + 1] = '\0';
    CHECK(gabi_version_check(version, why, sizeof(why)) < 0);

    memset(name, 'n', GABI_MAX_NAME);
    name[GABI_MAX_NAME] = '\0';
    CHECK(gabi_name_check(name, why, sizeof(why)) == 0);
    name[GABI_MAX_NAME] = 'n';
    name[GABI_MAX_NAME + 1] = '\0';
    CHECK(gabi_name_check(name, why, sizeof(why)) < 0);
    CHECK_CONTAINS(why, "longer than 128");
    CHECK(gabi_name_check("0000:3b:02.0", why, sizeof(why)) == 0);
    CHECK(gabi_name_check("vm web", why, sizeof(why)) < 0);
    CHECK(gabi_name_check("", why, sizeof(why)) < 0);
}

TAP_MAIN()
