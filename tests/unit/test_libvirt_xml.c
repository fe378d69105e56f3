/* SPDX-License-Identifier: MIT */
/* lib/libvirt: the pin in a domain's XML (tests/data/libvirt), read, written, refused. */

#include <errno.h>

#include <guestabi/libvirt.h>

#include "abi_fixtures.h"
#include "tap.h"

static struct gabi_domain *load(const struct gabi_catalog *cat, const char *name,
                                struct gabi_error *err)
{
    char rel[256];
    struct gabi_domain *d = NULL;

    snprintf(rel, sizeof(rel), "tests/data/libvirt/%s", name);
    if (gabi_domain_load_file(cat, source_path(rel), &d, err) < 0)
        return NULL;
    return d;
}

TEST(pinned_domain)
{
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_error err = {0};
    struct gabi_domain *d;
    const struct gabi_pin *pin;
    const struct gabi_domain_device *t;

    REQUIRE(cat);
    d = load(cat, "pinned.xml", &err);
    if (!d)
        printf("# %s: %s\n", err.where, err.message);
    REQUIRE(d);
    CHECK_STR(gabi_domain_name(d), "vm-web");
    CHECK_STR(gabi_domain_uuid(d), "6b0c3f8e-8d3b-4c1e-9a55-0f6f3e1c2a01");
    CHECK_INT(gabi_domain_n_devices(d), 4);
    pin = gabi_domain_pin(d);
    REQUIRE(pin);
    CHECK_STR(gabi_pin_vm(pin), "vm-web");
    REQUIRE(gabi_pin_platform(pin));
    CHECK_STR(gabi_pin_platform(pin)->name, "linux-5.14");
    REQUIRE(gabi_pin_n_devices(pin) == 4);
    CHECK_STR(gabi_pin_device(pin, 0)->mode->name, "upstream.guestabi-net.v1");
    CHECK_STR(gabi_pin_device(pin, 2)->state_version, "1.0");
    CHECK_STR(gabi_pin_device(pin, 3)->failover_primary, "hostdev0");
    CHECK_STR(gabi_pin_device(pin, 3)->failover_device, "8086:154c");

    t = gabi_domain_pin_target(d, 0); /* alias given */
    REQUIRE(t);
    CHECK_STR(t->alias, "ua-net0");
    CHECK_INT(t->cls, GABI_CLASS_NET);
    CHECK_STR(t->socket, "/var/lib/guestabi/vm/vm-web-net0.sock");
    t = gabi_domain_pin_target(d, 1); /* no alias: ua-disk0 by default */
    REQUIRE(t);
    CHECK_INT(t->cls, GABI_CLASS_BLK);
    CHECK_STR(t->socket, "/var/lib/guestabi/vm/vm-web-disk0.sock");
    CHECK(gabi_domain_pin_target(d, 2) == NULL); /* no ua-serial0 */
    t = gabi_domain_pin_target(d, 3);
    REQUIRE(t);
    CHECK_STR(t->alias, "ua-standby");
    t = gabi_domain_find_device(d, "serial0");
    REQUIRE(t);
    CHECK_INT(t->cls, GABI_CLASS_NONE);
    CHECK(t->socket == NULL);
    gabi_domain_free(d);
    gabi_catalog_free(cat);
}

TEST(no_pin)
{
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_error err = {0};
    struct gabi_domain *d;

    REQUIRE(cat);
    d = load(cat, "nopin.xml", &err);
    REQUIRE(d);
    CHECK(gabi_domain_pin(d) == NULL);
    CHECK(gabi_domain_pin_to_xml(d, false) == NULL);
    CHECK_STR(gabi_domain_find_device(d, "ua-net0")->socket, "/tmp/plain.sock");
    gabi_domain_free(d);
    gabi_catalog_free(cat);
}

/* Replace the <metadata> of a domain text by `meta`. */
static char *with_metadata(const char *domain_head, const char *meta, const char *tail)
{
    char *s = NULL;

    if (asprintf(&s, "%s<metadata>%s</metadata>%s", domain_head, meta, tail) < 0)
        return NULL;
    return s;
}

TEST(round_trip)
{
    static const char head[] = "<domain type='qemu'><name>vm-web</name>";
    static const char tail[] = "<devices><interface type='vhostuser'><source type='unix' "
                               "path='/a.sock'/><alias name='ua-net0'/></interface>"
                               "<interface type='vhostuser'><source type='unix' path='/b.sock'/>"
                               "<alias name='ua-standby'/></interface>"
                               "<disk type='vhostuser'><source type='unix' path='/c.sock'/>"
                               "<alias name='ua-disk0'/></disk></devices></domain>";
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_error err = {0};
    struct gabi_domain *d, *d2 = NULL;
    char *xml, *text, *json1, *json2;

    REQUIRE(cat);
    d = load(cat, "pinned.xml", &err);
    REQUIRE(d);
    xml = gabi_domain_pin_to_xml(d, false);
    REQUIRE(xml);
    CHECK_CONTAINS(xml, "xmlns:guestabi=\"urn:guestabi:pin:1\"");
    CHECK_CONTAINS(xml, "alias=\"ua-net0\"");
    CHECK_CONTAINS(xml, "alias=\"ua-disk0\""); /* the default alias is written out */
    text = with_metadata(head, xml, tail);
    REQUIRE(text);
    if (gabi_domain_parse(cat, "round-trip.xml", text, strlen(text), &d2, &err) < 0)
        printf("# %s: %s\n%s\n", err.where, err.message, text);
    REQUIRE(d2);
    json1 = gabi_pin_to_json(gabi_domain_pin(d));
    json2 = gabi_pin_to_json(gabi_domain_pin(d2));
    CHECK_STR(json1, json2);
    CHECK_STR(gabi_domain_pin_target(d2, 3)->alias, "ua-standby");
    free(json2);
    free(text);
    free(xml);
    gabi_domain_free(d2);
    d2 = NULL;

    /* the form for virDomainSetMetadata, stored as libvirt stores it (the root put in the
     * namespace by libvirt), reads back the same */
    xml = gabi_domain_pin_to_xml(d, true);
    REQUIRE(xml);
    CHECK(strncmp(xml, "<pin", 4) == 0);
    CHECK_CONTAINS(xml, "<guestabi:device xmlns:guestabi=\"urn:guestabi:pin:1\" id=\"net0\"");
    CHECK(strstr(xml, "</pin>") != NULL);
    {
        char *stored = NULL;

        *strstr(xml, "</pin>") = '\0';
        REQUIRE(asprintf(&stored,
                         "<guestabi:pin xmlns:guestabi=\"urn:guestabi:pin:1\"%s</guestabi:pin>",
                         xml + 4) > 0);
        text = with_metadata(head, stored, tail);
        free(stored);
    }
    REQUIRE(text);
    if (gabi_domain_parse(cat, "stored.xml", text, strlen(text), &d2, &err) < 0)
        printf("# %s: %s\n%s\n", err.where, err.message, text);
    REQUIRE(d2);
    json2 = gabi_pin_to_json(gabi_domain_pin(d2));
    CHECK_STR(json1, json2);
    free(json1);
    free(json2);
    free(text);
    free(xml);
    gabi_domain_free(d2);
    gabi_domain_free(d);
    gabi_catalog_free(cat);
}

TEST(set_pin)
{
    static const char json[] = "{\"schema\": \"guestabi.pin/1\", \"vm\": \"x\", \"devices\": "
                               "[{\"id\": \"net0\", \"class\": \"virtio-net\", \"mode\": "
                               "\"upstream.guestabi-net.v2\"}]}";
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_error err = {0};
    struct gabi_domain *d;
    const char *bad[] = {"ua-nothere"}, *disk[] = {"ua-disk0"}, *good[] = {"ua-standby"};
    char *xml;

    REQUIRE(cat);
    d = load(cat, "pinned.xml", &err);
    REQUIRE(d);
    /* default alias ua-net0 */
    CHECK_INT(gabi_domain_set_pin(d, pin_from(cat, json), NULL, &err), 0);
    CHECK_STR(gabi_domain_pin_target(d, 0)->alias, "ua-net0");
    xml = gabi_domain_pin_to_xml(d, false);
    CHECK_CONTAINS(xml, "mode=\"upstream.guestabi-net.v2\"");
    free(xml);
    /* unknown alias: refused, the old pin stays */
    CHECK_INT(gabi_domain_set_pin(d, pin_from(cat, json), bad, &err), -ENOENT);
    CHECK_CONTAINS(err.message, "names alias \"ua-nothere\", but domain vm-web has no device");
    CHECK_CONTAINS(err.message, "ua-net0, ua-standby, ua-disk0, serial0");
    CHECK_STR(gabi_domain_pin_target(d, 0)->alias, "ua-net0");
    /* a virtio-net device on a disk */
    CHECK_INT(gabi_domain_set_pin(d, pin_from(cat, json), disk, &err), -EINVAL);
    CHECK_CONTAINS(err.message, "\"ua-disk0\" is a <disk type='vhostuser'>");
    CHECK_INT(gabi_domain_set_pin(d, pin_from(cat, json), good, &err), 0);
    CHECK_STR(gabi_domain_pin_target(d, 0)->socket, "/var/lib/guestabi/vm/vm-web-net1.sock");
    gabi_domain_free(d);
    gabi_catalog_free(cat);
}

static const struct {
    const char *file;
    int code;
    const char *where; /* suffix of err.where */
    const char *message;
} bad_cases[] = {
    {"bad-wrong-ns.xml", -EINVAL, ".xml:4",
     "namespace \"urn:guestabi:pin:2\", which this "
     "guestabi does not read (a pin is in "
     "urn:guestabi:pin:1)"},
    {"bad-duplicate-device.xml", -EINVAL, ".xml:6",
     "device id \"net0\" is pinned twice (line 5 first)"},
    {"bad-unknown-alias.xml", -ENOENT, ".xml:5",
     "pin device \"net0\" names alias \"ua-net9\", but domain vm-alias has no device with that "
     "alias (its aliases: ua-net0)"},
    {"bad-alias-kind.xml", -EINVAL, ".xml:5", "\"ua-tap\" is a <interface type='network'>"},
    {"bad-entities.xml", -EINVAL, "bad-entities.xml", "document type declaration"},
    {"bad-unknown-mode.xml", -EINVAL, "<guestabi:pin>: $.devices[0].mode",
     "upstream.guestabi-net.v9"},
    {"bad-two-pins.xml", -EINVAL, ".xml:5", "two guestabi pins (line 4 first)"},
    {"bad-unknown-attribute.xml", -EINVAL, ".xml:4", "unknown attribute \"platfrom\""},
    {"bad-not-domain.xml", -EINVAL, ".xml:1", "the root element is <network>"},
    {"bad-malformed.xml", -EINVAL, ".xml:5", "XML: Premature end of data"},
};

TEST(bad_documents)
{
    struct gabi_catalog *cat = builtin_catalog();

    REQUIRE(cat);
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        struct gabi_error err = {0};
        struct gabi_domain *d = load(cat, bad_cases[i].file, &err);
        size_t lw = strlen(err.where), ls = strlen(bad_cases[i].where);

        printf("# %s: %s: %s\n", bad_cases[i].file, err.where, err.message);
        CHECK(d == NULL);
        gabi_domain_free(d);
        CHECK_INT(err.code, bad_cases[i].code);
        if (lw < ls || strcmp(err.where + lw - ls, bad_cases[i].where) != 0)
            TAP_FAIL("%s: where \"%s\" does not end in \"%s\"", bad_cases[i].file, err.where,
                     bad_cases[i].where);
        CHECK_CONTAINS(err.message, bad_cases[i].message);
    }
    gabi_catalog_free(cat);
}

TEST(deep_and_huge)
{
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_error err = {0};
    struct gabi_domain *d = NULL;
    size_t size = GABI_LIBVIRT_MAX_XML + 1, n = 0;
    char *buf = malloc(size + 1);

    REQUIRE(cat && buf);
    /* 40 nested elements: within libxml2's own limit, beyond guestabi's */
    n += (size_t)sprintf(buf, "<domain><name>deep</name><devices>");
    for (int i = 0; i < 40; i++)
        n += (size_t)sprintf(buf + n, "<x>");
    for (int i = 0; i < 40; i++)
        n += (size_t)sprintf(buf + n, "</x>");
    n += (size_t)sprintf(buf + n, "</devices></domain>");
    CHECK_INT(gabi_domain_parse(cat, "deep.xml", buf, n, &d, &err), -EINVAL);
    CHECK_CONTAINS(err.message, "nest deeper than 32 levels");
    CHECK(d == NULL);

    /* 10,000 levels: libxml2 refuses before building a tree */
    free(buf);
    size = 10000 * 7 + 64;
    buf = malloc(size);
    REQUIRE(buf);
    n = (size_t)sprintf(buf, "<domain>");
    for (int i = 0; i < 10000; i++)
        n += (size_t)sprintf(buf + n, "<x>");
    CHECK_INT(gabi_domain_parse(cat, "deeper.xml", buf, n, &d, &err), -EINVAL);
    CHECK_CONTAINS(err.message, "XML: ");
    CHECK(d == NULL);

    /* one byte over the bound: refused before parsing */
    free(buf);
    size = GABI_LIBVIRT_MAX_XML + 1;
    buf = malloc(size);
    REQUIRE(buf);
    memset(buf, ' ', size);
    CHECK_INT(gabi_domain_parse(cat, "huge.xml", buf, size, &d, &err), -EFBIG);
    CHECK_CONTAINS(err.message, "at most 4194304");
    free(buf);
    gabi_catalog_free(cat);
}

TEST(aliases_in_domain)
{
    static const char dup[] = "<domain><name>d</name><devices>"
                              "<interface type='vhostuser'><source path='/a'/><alias name='ua-x'/>"
                              "</interface>\n<disk type='file'><alias name='ua-x'/></disk>"
                              "</devices></domain>";
    static const char nosock[] = "<domain><name>d</name><devices>\n"
                                 "<interface type='vhostuser'><alias name='ua-x'/></interface>"
                                 "</devices></domain>";
    static const char noname[] = "<domain><uuid>u</uuid></domain>";
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_error err = {0};
    struct gabi_domain *d = NULL;

    REQUIRE(cat);
    CHECK_INT(gabi_domain_parse(cat, "dup.xml", dup, strlen(dup), &d, &err), -EINVAL);
    CHECK_CONTAINS(err.message, "alias \"ua-x\" is used by two devices");
    CHECK_STR(err.where, "dup.xml:2");
    CHECK_INT(gabi_domain_parse(cat, "nosock.xml", nosock, strlen(nosock), &d, &err), -EINVAL);
    CHECK_CONTAINS(err.message, "vhost-user interface \"ua-x\" has no <source path=...>");
    CHECK_INT(gabi_domain_parse(cat, "noname.xml", noname, strlen(noname), &d, &err), -EINVAL);
    CHECK_CONTAINS(err.message, "the domain has no <name>");
    CHECK(d == NULL);
    gabi_catalog_free(cat);
}

TEST(children_namespace)
{
    /* what `virsh metadata --set '<pin><device .../></pin>'` stores: unprefixed children */
    static const char plain[] =
        "<domain><name>p</name><metadata><g:pin xmlns:g='urn:guestabi:pin:1'>"
        "<device id='net0' class='virtio-net' mode='upstream.guestabi-net.v1'/></g:pin>"
        "</metadata></domain>";
    static const char other[] =
        "<domain><name>p</name><metadata><g:pin xmlns:g='urn:guestabi:pin:1'>\n"
        "<o:device xmlns:o='urn:other' id='net0'/></g:pin></metadata></domain>";
    struct gabi_catalog *cat = builtin_catalog();
    struct gabi_error err = {0};
    struct gabi_domain *d = NULL;

    REQUIRE(cat);
    CHECK_INT(gabi_domain_parse(cat, "plain.xml", plain, strlen(plain), &d, &err), 0);
    REQUIRE(d && gabi_domain_pin(d));
    CHECK_STR(gabi_pin_device(gabi_domain_pin(d), 0)->id, "net0");
    gabi_domain_free(d);
    d = NULL;
    CHECK_INT(gabi_domain_parse(cat, "other.xml", other, strlen(other), &d, &err), -EINVAL);
    CHECK_STR(err.where, "other.xml:2");
    CHECK_CONTAINS(err.message, "<device> is not expected inside <guestabi:pin>");
    CHECK(d == NULL);
    gabi_catalog_free(cat);
}

TAP_MAIN()
