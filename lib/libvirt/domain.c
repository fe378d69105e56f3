/* SPDX-License-Identifier: MIT */
/*
 * A libvirt domain's XML as guestabi reads it: the name, the aliased devices (a vhost-user
 * interface or disk with its socket path) and the pin in <metadata>. libxml2 parses; the pin
 * element becomes a guestabi.pin/1 document that lib/abi parses, so an XML pin and a JSON pin
 * are checked by the same code.
 */

#include <errno.h>
#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <stdio.h>
#include <string.h>

#include <guestabi/libvirt.h>

#include "common/arena.h"
#include <guestabi/util.h>

struct gabi_domain {
    struct gabi_arena arena;
    const struct gabi_catalog *cat;
    const char *origin;
    const char *name, *uuid;
    struct gabi_domain_device *devices;
    size_t n_devices;
    struct gabi_pin *pin;
    const struct gabi_domain_device **targets; /* per pin device */
};

struct gabi_domain *gabi_domain_free(struct gabi_domain *d)
{
    if (!d)
        return NULL;
    gabi_pin_free(d->pin);
    free(d->targets);
    free(d->devices);
    gabi_arena_release(&d->arena);
    free(d);
    return NULL;
}

const char *gabi_domain_name(const struct gabi_domain *d)
{
    return d->name;
}

const char *gabi_domain_uuid(const struct gabi_domain *d)
{
    return d->uuid;
}

size_t gabi_domain_n_devices(const struct gabi_domain *d)
{
    return d->n_devices;
}

const struct gabi_domain_device *gabi_domain_device(const struct gabi_domain *d, size_t i)
{
    return i < d->n_devices ? &d->devices[i] : NULL;
}

const struct gabi_domain_device *gabi_domain_find_device(const struct gabi_domain *d,
                                                         const char *alias)
{
    for (size_t i = 0; i < d->n_devices; i++)
        if (strcmp(d->devices[i].alias, alias) == 0)
            return &d->devices[i];
    return NULL;
}

const struct gabi_pin *gabi_domain_pin(const struct gabi_domain *d)
{
    return d->pin;
}

const struct gabi_domain_device *gabi_domain_pin_target(const struct gabi_domain *d, size_t i)
{
    return d->pin && i < gabi_pin_n_devices(d->pin) ? d->targets[i] : NULL;
}

/* ---- parsing ------------------------------------------------------------------------------- */

/* libxml2 reports through its context; nothing is printed. */
static void quiet(void *ctx, xmlErrorPtr err)
{
    (void)ctx;
    (void)err;
}

static int xerr(struct gabi_domain *d, const xmlNode *n, struct gabi_error *reterr, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));
static int xerr(struct gabi_domain *d, const xmlNode *n, struct gabi_error *reterr, const char *fmt,
                ...)
{
    char where[GABI_ERROR_WHERE_MAX], msg[GABI_ERROR_MESSAGE_MAX];
    va_list ap;

    if (n)
        snprintf(where, sizeof(where), "%s:%ld", d->origin, (long)xmlGetLineNo(n));
    else
        snprintf(where, sizeof(where), "%s", d->origin);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return gabi_error_set(reterr, -EINVAL, where, "%s", msg);
}

static bool is_elem(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static bool in_pin_ns(const xmlNode *n)
{
    return n->ns && n->ns->href && strcmp((const char *)n->ns->href, GABI_LIBVIRT_PIN_NS) == 0;
}

/* A string libxml2 allocated, moved into the arena (NULL stays NULL). */
static const char *keep(struct gabi_domain *d, xmlChar *v)
{
    char *s;

    if (!v)
        return NULL;
    s = gabi_arena_strdup(&d->arena, (const char *)v);
    xmlFree(v);
    return s;
}

/* An attribute's value (NULL when absent). */
static const char *attr(struct gabi_domain *d, const xmlNode *n, const char *name)
{
    return keep(d, xmlGetNoNsProp(n, (const xmlChar *)name));
}

static const char *text_of(struct gabi_domain *d, const xmlNode *n)
{
    return keep(d, xmlNodeGetContent(n));
}

static int check_depth(struct gabi_domain *d, const xmlNode *n, unsigned depth,
                       struct gabi_error *reterr)
{
    if (depth > GABI_LIBVIRT_MAX_DEPTH)
        return xerr(d, n, reterr, "elements nest deeper than %u levels", GABI_LIBVIRT_MAX_DEPTH);
    for (const xmlNode *c = n->children; c; c = c->next) {
        int r;

        if (c->type == XML_ENTITY_REF_NODE || c->type == XML_ENTITY_NODE)
            return xerr(d, c, reterr, "entity references are not accepted");
        if (c->type == XML_ELEMENT_NODE && (r = check_depth(d, c, depth + 1, reterr)) < 0)
            return r;
    }
    return 0;
}

/* One child of <devices>: kept when it has an <alias name=.../>. */
static int parse_device(struct gabi_domain *d, const xmlNode *n, struct gabi_error *reterr)
{
    struct gabi_domain_device dev = {0};
    const xmlNode *source = NULL;

    for (const xmlNode *c = n->children; c; c = c->next) {
        if (is_elem(c, "alias") && !c->ns) {
            if (dev.alias)
                return xerr(d, c, reterr, "<%s> has two <alias> elements", n->name);
            dev.alias = attr(d, c, "name");
            if (!dev.alias || !dev.alias[0])
                return xerr(d, c, reterr, "<alias> without a name");
        } else if (is_elem(c, "source") && !c->ns && !source) {
            source = c;
        }
    }
    if (!dev.alias)
        return 0;
    if (strlen(dev.alias) > GABI_MAX_NAME)
        return xerr(d, n, reterr, "alias longer than %u bytes", GABI_MAX_NAME);
    if (gabi_domain_find_device(d, dev.alias)) {
        /* libvirt gives a <console> that mirrors a serial port the serial port's alias */
        if (strcmp((const char *)n->name, "console") == 0)
            return 0;
        return xerr(d, n, reterr, "alias \"%s\" is used by two devices", dev.alias);
    }
    if (d->n_devices >= GABI_LIBVIRT_MAX_DEVICES)
        return xerr(d, n, reterr, "more than %u aliased devices", GABI_LIBVIRT_MAX_DEVICES);
    dev.element = gabi_arena_strdup(&d->arena, (const char *)n->name);
    dev.type = attr(d, n, "type");
    if (!dev.element)
        return -ENOMEM;
    dev.line = (unsigned)xmlGetLineNo(n);
    if (dev.type && strcmp(dev.type, "vhostuser") == 0 &&
        (strcmp(dev.element, "interface") == 0 || strcmp(dev.element, "disk") == 0)) {
        dev.cls = strcmp(dev.element, "interface") == 0 ? GABI_CLASS_NET : GABI_CLASS_BLK;
        dev.socket = source ? attr(d, source, "path") : NULL;
        if (!dev.socket)
            return xerr(d, n, reterr, "vhost-user %s \"%s\" has no <source path=...>", dev.element,
                        dev.alias);
    }
    d->devices[d->n_devices++] = dev;
    return 0;
}

static int check_attrs(struct gabi_domain *d, const xmlNode *n, const char *const *allowed,
                       struct gabi_error *reterr)
{
    for (const xmlAttr *a = n->properties; a; a = a->next) {
        bool ok = false;

        for (const char *const *k = allowed; *k && !ok; k++)
            ok = !a->ns && strcmp((const char *)a->name, *k) == 0;
        if (!ok)
            return xerr(d, n, reterr, "<%s:%s> has an unknown attribute \"%s\"",
                        GABI_LIBVIRT_PIN_PREFIX, n->name, a->name);
    }
    return 0;
}

/* Elements inside the pin must be ours and known; text only whitespace. */
static int check_children(struct gabi_domain *d, const xmlNode *n, const char *allowed,
                          struct gabi_error *reterr)
{
    for (const xmlNode *c = n->children; c; c = c->next) {
        if (c->type == XML_TEXT_NODE) {
            for (const xmlChar *s = c->content; s && *s; s++)
                if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
                    return xerr(d, c, reterr, "<%s:%s> holds text; it holds only elements",
                                GABI_LIBVIRT_PIN_PREFIX, n->name);
        } else if (c->type == XML_ELEMENT_NODE) {
            /* libvirt's virDomainSetMetadata puts only the root element in the namespace:
             * children without one are the pin's too */
            if (!allowed || (c->ns && !in_pin_ns(c)) || strcmp((const char *)c->name, allowed) != 0)
                return xerr(d, c, reterr, "<%s> is not expected inside <%s:%s>%s%s%s", c->name,
                            GABI_LIBVIRT_PIN_PREFIX, n->name, allowed ? " (only <" : "",
                            allowed ? allowed : "",
                            allowed ? "> elements, in " GABI_LIBVIRT_PIN_NS ")" : "");
        } else if (c->type != XML_COMMENT_NODE) {
            return xerr(d, c, reterr, "unexpected content inside <%s:%s>", GABI_LIBVIRT_PIN_PREFIX,
                        n->name);
        }
    }
    return 0;
}

static void set_str(json_t *o, const char *key, const char *v)
{
    if (v)
        json_object_set_new(o, key, json_string(v));
}

/* The pin element as a guestabi.pin/1 document; *aliases gets each device's alias. */
static int pin_to_json(struct gabi_domain *d, const xmlNode *pin, json_t **ret,
                       const char ***ret_aliases, unsigned **ret_lines, struct gabi_error *reterr)
{
    static const char *const pin_attrs[] = {"platform", NULL};
    static const char *const dev_attrs[] = {"id",   "alias",         "class", "mode",
                                            "type", "state_version", NULL};
    static const char *const fo_attrs[] = {"primary", "device", NULL};
    json_t *root, *arr;
    const char **aliases;
    unsigned *lines;
    size_t n = 0;
    int r;

    if ((r = check_attrs(d, pin, pin_attrs, reterr)) < 0 ||
        (r = check_children(d, pin, "device", reterr)) < 0)
        return r;
    for (const xmlNode *c = pin->children; c; c = c->next)
        n += c->type == XML_ELEMENT_NODE;
    if (n > GABI_MAX_PIN_DEVICES)
        return xerr(d, pin, reterr, "the pin has %zu devices; at most %u", n, GABI_MAX_PIN_DEVICES);
    aliases = gabi_arena_alloc_array(&d->arena, n + 1, sizeof(*aliases));
    lines = gabi_arena_alloc_array(&d->arena, n + 1, sizeof(*lines));
    if (!aliases || !lines)
        return -ENOMEM;
    root = json_pack("{s:s, s:s}", "schema", GABI_SCHEMA_PIN, "vm", d->name);
    arr = json_array();
    set_str(root, "platform", attr(d, pin, "platform"));
    n = 0;
    for (const xmlNode *c = pin->children; c; c = c->next) {
        json_t *o;
        const char *id;

        if (c->type != XML_ELEMENT_NODE)
            continue;
        if ((r = check_attrs(d, c, dev_attrs, reterr)) < 0 ||
            (r = check_children(d, c, "failover", reterr)) < 0)
            goto fail;
        id = attr(d, c, "id");
        if (!id) {
            r = xerr(d, c, reterr, "<%s:device> needs an id", GABI_LIBVIRT_PIN_PREFIX);
            goto fail;
        }
        for (size_t j = 0; j < json_array_size(arr); j++)
            if (strcmp(json_string_value(json_object_get(json_array_get(arr, j), "id")), id) == 0) {
                r = xerr(d, c, reterr, "device id \"%s\" is pinned twice (line %u first)", id,
                         lines[j]);
                goto fail;
            }
        o = json_pack("{s:s}", "id", id);
        set_str(o, "class", attr(d, c, "class"));
        set_str(o, "mode", attr(d, c, "mode"));
        set_str(o, "type", attr(d, c, "type"));
        set_str(o, "state_version", attr(d, c, "state_version"));
        for (const xmlNode *f = c->children; f; f = f->next) {
            if (f->type != XML_ELEMENT_NODE)
                continue;
            if ((r = check_attrs(d, f, fo_attrs, reterr)) < 0 ||
                (r = check_children(d, f, NULL, reterr)) < 0) {
                json_decref(o);
                goto fail;
            }
            if (json_object_get(o, "failover")) {
                json_decref(o);
                r = xerr(d, f, reterr, "device \"%s\" has two <%s:failover> elements", id,
                         GABI_LIBVIRT_PIN_PREFIX);
                goto fail;
            }
            json_object_set_new(o, "failover", json_object());
            set_str(json_object_get(o, "failover"), "primary", attr(d, f, "primary"));
            set_str(json_object_get(o, "failover"), "device", attr(d, f, "device"));
        }
        aliases[n] = attr(d, c, "alias");
        lines[n] = (unsigned)xmlGetLineNo(c);
        n++;
        json_array_append_new(arr, o);
    }
    json_object_set_new(root, "devices", arr);
    *ret = root;
    *ret_aliases = aliases;
    *ret_lines = lines;
    return 0;
fail:
    json_decref(arr);
    json_decref(root);
    return r;
}

/* Resolve aliases (given or "ua-<id>") of every pin device to the domain's devices. */
static int resolve_targets(struct gabi_domain *d, const struct gabi_pin *pin,
                           const char *const *aliases, const unsigned *lines,
                           const struct gabi_domain_device ***ret, struct gabi_error *reterr)
{
    size_t n = gabi_pin_n_devices(pin);
    const struct gabi_domain_device **t = calloc(n + 1, sizeof(*t));
    char where[GABI_ERROR_WHERE_MAX];

    if (!t)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const struct gabi_pin_device *pd = gabi_pin_device(pin, i);
        const char *alias = aliases ? aliases[i] : NULL;
        char def[GABI_MAX_NAME + 8];

        if (lines && lines[i])
            snprintf(where, sizeof(where), "%s:%u", d->origin, lines[i]);
        else
            snprintf(where, sizeof(where), "%s", d->origin);
        if (alias) {
            t[i] = gabi_domain_find_device(d, alias);
            if (!t[i]) {
                char names[512] = "";
                struct gabi_strbuf sb;

                gabi_strbuf_init(&sb, names, sizeof(names));
                for (size_t j = 0; j < d->n_devices; j++)
                    gabi_strbuf_item(&sb, ", ", d->devices[j].alias);
                free(t);
                return gabi_error_set(reterr, -ENOENT, where,
                                      "pin device \"%s\" names alias \"%s\", but domain %s has "
                                      "no device with that alias (its aliases: %s)",
                                      pd->id, alias, d->name, names[0] ? names : "none");
            }
        } else {
            snprintf(def, sizeof(def), "ua-%s", pd->id);
            t[i] = gabi_domain_find_device(d, def);
        }
        if (t[i] && gabi_class_is_virtio(pd->cls) && t[i]->cls != pd->cls) {
            int r = gabi_error_set(reterr, -EINVAL, where,
                                   "pin device \"%s\" is %s, but \"%s\" is a <%s%s%s%s> (a %s "
                                   "device is a vhost-user <%s type='vhostuser'>)",
                                   pd->id, gabi_class_name(pd->cls), t[i]->alias, t[i]->element,
                                   t[i]->type ? " type='" : "", t[i]->type ? t[i]->type : "",
                                   t[i]->type ? "'" : "", gabi_class_name(pd->cls),
                                   pd->cls == GABI_CLASS_NET ? "interface" : "disk");
            free(t);
            return r;
        }
        for (size_t j = 0; j < i; j++)
            if (t[i] && t[j] == t[i]) {
                int r = gabi_error_set(reterr, -EINVAL, where,
                                       "pin devices \"%s\" and \"%s\" both describe \"%s\"",
                                       gabi_pin_device(pin, j)->id, pd->id, t[i]->alias);
                free(t);
                return r;
            }
    }
    *ret = t;
    return 0;
}

static int parse_pin(struct gabi_domain *d, const xmlNode *pinel, struct gabi_error *reterr)
{
    const char **aliases = NULL;
    unsigned *lines = NULL;
    json_t *doc = NULL;
    char *text;
    struct gabi_pin *pin = NULL;
    char origin[GABI_ERROR_WHERE_MAX];
    int r;

    if ((r = pin_to_json(d, pinel, &doc, &aliases, &lines, reterr)) < 0)
        return r;
    text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (!text)
        return -ENOMEM;
    snprintf(origin, sizeof(origin), "%s:%ld <%s:pin>", d->origin, (long)xmlGetLineNo(pinel),
             GABI_LIBVIRT_PIN_PREFIX);
    r = gabi_pin_parse(d->cat, origin, text, strlen(text), &pin, reterr);
    free(text);
    if (r < 0)
        return r;
    r = resolve_targets(d, pin, aliases, lines, &d->targets, reterr);
    if (r < 0) {
        gabi_pin_free(pin);
        return r;
    }
    d->pin = pin;
    return 0;
}

static int parse_tree(struct gabi_domain *d, const xmlNode *root, struct gabi_error *reterr)
{
    const xmlNode *pinel = NULL;
    size_t n = 0;
    int r;

    if (!is_elem(root, "domain") || root->ns)
        return xerr(d, root, reterr, "not a libvirt domain: the root element is <%s>, not <domain>",
                    root->name);
    if ((r = check_depth(d, root, 1, reterr)) < 0)
        return r;
    for (const xmlNode *c = root->children; c; c = c->next) {
        if (is_elem(c, "name") && !c->ns)
            d->name = text_of(d, c);
        else if (is_elem(c, "uuid") && !c->ns)
            d->uuid = text_of(d, c);
        else if (is_elem(c, "devices") && !c->ns)
            for (const xmlNode *dev = c->children; dev; dev = dev->next)
                n += dev->type == XML_ELEMENT_NODE;
    }
    if (!d->name || !d->name[0])
        return xerr(d, root, reterr, "the domain has no <name>");
    if (strlen(d->name) > 1024)
        return xerr(d, root, reterr, "the domain's name is longer than 1024 bytes");
    d->devices = calloc(MIN(n, GABI_LIBVIRT_MAX_DEVICES) + 1, sizeof(*d->devices));
    if (!d->devices)
        return -ENOMEM;
    for (const xmlNode *c = root->children; c; c = c->next) {
        if (is_elem(c, "devices") && !c->ns) {
            for (const xmlNode *dev = c->children; dev; dev = dev->next)
                if (dev->type == XML_ELEMENT_NODE && (r = parse_device(d, dev, reterr)) < 0)
                    return r;
        } else if (is_elem(c, "metadata") && !c->ns) {
            for (const xmlNode *m = c->children; m; m = m->next) {
                const char *href;

                if (m->type != XML_ELEMENT_NODE)
                    continue;
                href = m->ns && m->ns->href ? (const char *)m->ns->href : "";
                if (in_pin_ns(m)) {
                    if (strcmp((const char *)m->name, "pin") != 0)
                        return xerr(d, m, reterr,
                                    "<%s> in namespace %s: the only element guestabi puts in "
                                    "<metadata> is <pin>",
                                    m->name, GABI_LIBVIRT_PIN_NS);
                    if (pinel)
                        return xerr(d, m, reterr,
                                    "the domain has two guestabi pins (line %ld first)",
                                    (long)xmlGetLineNo(pinel));
                    pinel = m;
                } else if (strncmp(href, "urn:guestabi:", 13) == 0 ||
                           (m->ns && m->ns->prefix &&
                            strcmp((const char *)m->ns->prefix, GABI_LIBVIRT_PIN_PREFIX) == 0 &&
                            strcmp((const char *)m->name, "pin") == 0)) {
                    return xerr(d, m, reterr,
                                "<%s> is in namespace \"%s\", which this guestabi does not read "
                                "(a pin is in %s)",
                                m->name, href, GABI_LIBVIRT_PIN_NS);
                }
            }
        }
    }
    return pinel ? parse_pin(d, pinel, reterr) : 0;
}

int gabi_domain_parse(const struct gabi_catalog *cat, const char *origin, const char *xml,
                      size_t size, struct gabi_domain **ret, struct gabi_error *reterr)
{
    struct gabi_domain *d;
    xmlParserCtxtPtr ctxt;
    xmlDocPtr doc;
    int r;

    if (size > GABI_LIBVIRT_MAX_XML)
        return gabi_error_set(reterr, -EFBIG, origin, "domain XML of %zu bytes; at most %u", size,
                              GABI_LIBVIRT_MAX_XML);
    if (memmem(xml, size, "<!DOCTYPE", 9) || memmem(xml, size, "<!ENTITY", 8))
        return gabi_error_set(reterr, -EINVAL, origin,
                              "a document type declaration (<!DOCTYPE or <!ENTITY) is not "
                              "accepted in domain XML");
    d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    gabi_arena_init(&d->arena);
    d->cat = cat;
    d->origin = gabi_arena_strdup(&d->arena, origin);
    ctxt = xmlNewParserCtxt();
    if (!ctxt || !d->origin) {
        xmlFreeParserCtxt(ctxt);
        gabi_domain_free(d);
        return -ENOMEM;
    }
    xmlSetStructuredErrorFunc(NULL, quiet);
    /* no network, no entity substitution (XML_PARSE_NOENT is not given), no DTD loading */
    doc = xmlCtxtReadMemory(ctxt, xml, (int)size, origin, NULL,
                            XML_PARSE_NONET | XML_PARSE_NOCDATA | XML_PARSE_NOERROR |
                                XML_PARSE_NOWARNING);
    if (!doc) {
        xmlErrorPtr e = xmlCtxtGetLastError(ctxt);
        char where[GABI_ERROR_WHERE_MAX], msg[512];

        snprintf(where, sizeof(where), "%s:%d", origin, e ? e->line : 0);
        snprintf(msg, sizeof(msg), "%s", e && e->message ? e->message : "not well-formed");
        msg[strcspn(msg, "\n")] = '\0';
        r = gabi_error_set(reterr, -EINVAL, where, "XML: %s", msg);
        xmlFreeParserCtxt(ctxt);
        xmlSetStructuredErrorFunc(NULL, NULL);
        gabi_domain_free(d);
        return r;
    }
    xmlFreeParserCtxt(ctxt);
    xmlSetStructuredErrorFunc(NULL, NULL);
    if (doc->intSubset || doc->extSubset)
        r = gabi_error_set(reterr, -EINVAL, origin, "a document type declaration is not accepted");
    else
        r = parse_tree(d, xmlDocGetRootElement(doc), reterr);
    xmlFreeDoc(doc);
    if (r < 0) {
        gabi_domain_free(d);
        return r;
    }
    *ret = d;
    return 0;
}

int gabi_domain_load_file(const struct gabi_catalog *cat, const char *path,
                          struct gabi_domain **ret, struct gabi_error *reterr)
{
    _cleanup_free_ char *buf = NULL;
    size_t size;
    int r = gabi_read_file(path, GABI_LIBVIRT_MAX_XML, &buf, &size);

    if (r == -EFBIG)
        return gabi_error_set(reterr, r, path, "domain XML larger than %u bytes",
                              GABI_LIBVIRT_MAX_XML);
    if (r < 0)
        return gabi_error_set(reterr, r, path, "cannot read: %s", strerror(-r));
    return gabi_domain_parse(cat, path, buf, size, ret, reterr);
}

/* ---- a new pin ------------------------------------------------------------------------------ */

int gabi_domain_set_pin(struct gabi_domain *d, struct gabi_pin *pin, const char *const *aliases,
                        struct gabi_error *reterr)
{
    const struct gabi_domain_device **t = NULL;
    int r = resolve_targets(d, pin, aliases, NULL, &t, reterr);

    if (r < 0) {
        gabi_pin_free(pin);
        return r;
    }
    gabi_pin_free(d->pin);
    free(d->targets);
    d->pin = pin;
    d->targets = t;
    return 0;
}

/* ---- writing -------------------------------------------------------------------------------- */

char *gabi_domain_pin_to_xml(const struct gabi_domain *d, bool for_set_metadata)
{
    xmlNodePtr root;
    xmlNsPtr ns, root_ns;
    xmlBufferPtr buf;
    char *text = NULL;

    if (!d->pin)
        return NULL;
    root = xmlNewNode(NULL, (const xmlChar *)"pin");
    if (!root)
        return NULL;
    /* virDomainSetMetadata gives the root element the namespace itself and refuses one that
     * has it already: there each child declares it */
    root_ns = for_set_metadata ? NULL
                               : xmlNewNs(root, (const xmlChar *)GABI_LIBVIRT_PIN_NS,
                                          (const xmlChar *)GABI_LIBVIRT_PIN_PREFIX);
    xmlSetNs(root, root_ns);
    if (gabi_pin_platform(d->pin))
        xmlNewProp(root, (const xmlChar *)"platform",
                   (const xmlChar *)gabi_pin_platform(d->pin)->name);
    for (size_t i = 0; i < gabi_pin_n_devices(d->pin); i++) {
        const struct gabi_pin_device *pd = gabi_pin_device(d->pin, i);
        xmlNodePtr n = xmlNewChild(root, NULL, (const xmlChar *)"device", NULL);

        ns = root_ns ? root_ns
                     : xmlNewNs(n, (const xmlChar *)GABI_LIBVIRT_PIN_NS,
                                (const xmlChar *)GABI_LIBVIRT_PIN_PREFIX);
        xmlSetNs(n, ns);

        xmlNewProp(n, (const xmlChar *)"id", (const xmlChar *)pd->id);
        if (d->targets[i])
            xmlNewProp(n, (const xmlChar *)"alias", (const xmlChar *)d->targets[i]->alias);
        xmlNewProp(n, (const xmlChar *)"class", (const xmlChar *)gabi_class_name(pd->cls));
        if (pd->mode)
            xmlNewProp(n, (const xmlChar *)"mode", (const xmlChar *)pd->mode->name);
        if (pd->type)
            xmlNewProp(n, (const xmlChar *)"type", (const xmlChar *)pd->type);
        if (pd->state_version)
            xmlNewProp(n, (const xmlChar *)"state_version", (const xmlChar *)pd->state_version);
        if (pd->failover_primary) {
            xmlNodePtr f = xmlNewChild(n, ns, (const xmlChar *)"failover", NULL);

            xmlNewProp(f, (const xmlChar *)"primary", (const xmlChar *)pd->failover_primary);
            xmlNewProp(f, (const xmlChar *)"device", (const xmlChar *)pd->failover_device);
        }
    }
    buf = xmlBufferCreate();
    if (buf && xmlNodeDump(buf, NULL, root, 0, 1) >= 0)
        text = strdup((const char *)xmlBufferContent(buf));
    xmlBufferFree(buf);
    xmlFreeNode(root);
    return text;
}
