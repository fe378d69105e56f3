/* SPDX-License-Identifier: MIT */
/*
 * The libvirt hook's failover rewrite (failover.h). libxml2 parses the domain without the
 * network, entities or a DTD; only the four attributes of each transient interface's source
 * address are set; the document is written back without a declaration or reformatting, so that
 * its tree is the one libvirt gave, but for those attributes.
 */

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlsave.h>

#include "failover.h"

bool hook_failover_parse_address(const char *s, unsigned *domain, unsigned *bus, unsigned *slot,
                                 unsigned *function)
{
    char tail;

    if (strlen(s) != 12 || s[4] != ':' || s[7] != ':' || s[10] != '.')
        return false;
    for (int i = 0; i < 12; i++)
        if (i != 4 && i != 7 && i != 10 && !isxdigit((unsigned char)s[i]))
            return false;
    if (sscanf(s, "%4x:%2x:%2x.%1x%c", domain, bus, slot, function, &tail) != 4)
        return false;
    return *slot < 32 && *function < 8;
}

static xmlNode *child(xmlNode *n, const char *name)
{
    for (xmlNode *c = n ? n->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
            return c;
    return NULL;
}

static bool attr_is(xmlNode *n, const char *name, const char *value)
{
    xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
    bool r = v && strcmp((const char *)v, value) == 0;

    xmlFree(v);
    return r;
}

/* The source address "DDDD:BB:SS.F" of an <address type='pci' .../>, into buf. */
static int address_of(xmlNode *a, char *buf, size_t size)
{
    static const char *const names[] = {"domain", "bus", "slot", "function"};
    unsigned long v[4];

    for (int i = 0; i < 4; i++) {
        xmlChar *s = xmlGetProp(a, (const xmlChar *)names[i]);
        char *end;

        if (!s)
            return -EINVAL;
        errno = 0;
        v[i] = strtoul((const char *)s, &end, 0);
        if (errno || *end || end == (char *)s) {
            xmlFree(s);
            return -EINVAL;
        }
        xmlFree(s);
    }
    if (v[0] > 0xffff || v[1] > 0xff || v[2] > 0x1f || v[3] > 7)
        return -EINVAL;
    snprintf(buf, size, "%04lx:%02lx:%02lx.%lx", v[0], v[1], v[2], v[3]);
    return 0;
}

static int rewrite_one(xmlNode *iface, unsigned index, hook_failover_reserve_fn fn, void *userdata,
                       struct gabi_error *reterr)
{
    xmlNode *teaming = child(iface, "teaming"), *addr = child(child(iface, "source"), "address");
    xmlChar *mac = xmlGetProp(child(iface, "mac"), (const xmlChar *)"address");
    xmlChar *peer = xmlGetProp(teaming, (const xmlChar *)"persistent");
    char where[64], old[16], new[64];
    unsigned d, b, s, f;
    struct hook_failover_iface fi = {.index = index};
    int r;

    snprintf(where, sizeof(where), "interface[type=hostdev][%u]", index);
    if (!addr || !attr_is(addr, "type", "pci") || address_of(addr, old, sizeof(old)) < 0) {
        r = gabi_error_set(reterr, -EINVAL, where,
                           "a transient failover interface needs <source><address type='pci' "
                           "domain bus slot function/>");
        goto out;
    }
    fi.mac = mac ? (const char *)mac : "";
    fi.persistent = peer ? (const char *)peer : "";
    fi.address = old;
    r = fn(&fi, new, sizeof(new), reterr, userdata);
    if (r < 0) {
        if (!reterr || !reterr->where[0])
            gabi_error_prefix_where(reterr, where);
        goto out;
    }
    if (!hook_failover_parse_address(new, &d, &b, &s, &f)) {
        r = gabi_error_set(reterr, -EINVAL, where, "reserved VF address \"%s\" is malformed", new);
        goto out;
    }
    {
        char v[4][8];

        snprintf(v[0], sizeof(v[0]), "0x%04x", d);
        snprintf(v[1], sizeof(v[1]), "0x%02x", b);
        snprintf(v[2], sizeof(v[2]), "0x%02x", s);
        snprintf(v[3], sizeof(v[3]), "0x%x", f);
        if (!xmlSetProp(addr, (const xmlChar *)"domain", (const xmlChar *)v[0]) ||
            !xmlSetProp(addr, (const xmlChar *)"bus", (const xmlChar *)v[1]) ||
            !xmlSetProp(addr, (const xmlChar *)"slot", (const xmlChar *)v[2]) ||
            !xmlSetProp(addr, (const xmlChar *)"function", (const xmlChar *)v[3]))
            r = gabi_error_set(reterr, -ENOMEM, where, "out of memory");
    }
out:
    xmlFree(mac);
    xmlFree(peer);
    return r;
}

int hook_failover_rewrite(const char *xml, size_t size, hook_failover_reserve_fn fn, void *userdata,
                          char **ret_xml, struct gabi_error *reterr)
{
    xmlDoc *doc;
    xmlNode *root, *devices;
    xmlBuffer *buf = NULL;
    xmlSaveCtxt *save;
    unsigned n = 0;
    int r = 0;

    *ret_xml = NULL;
    if (size > HOOK_FAILOVER_MAX_XML || size > INT32_MAX)
        return gabi_error_set(reterr, -E2BIG, "domain", "domain XML of %zu bytes (at most %u)",
                              size, HOOK_FAILOVER_MAX_XML);
    doc = xmlReadMemory(xml, (int)size, "domain.xml", NULL,
                        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc)
        return gabi_error_set(reterr, -EINVAL, "domain", "the domain XML does not parse");
    root = xmlDocGetRootElement(doc);
    if (doc->intSubset || !root || strcmp((const char *)root->name, "domain") != 0) {
        xmlFreeDoc(doc);
        return gabi_error_set(reterr, -EINVAL, "domain",
                              "not a libvirt domain (a <domain> without a DTD)");
    }
    devices = child(root, "devices");
    for (xmlNode *c = devices ? devices->children : NULL; c && r >= 0; c = c->next) {
        xmlNode *t;

        if (c->type != XML_ELEMENT_NODE || strcmp((const char *)c->name, "interface") != 0 ||
            !attr_is(c, "type", "hostdev"))
            continue;
        t = child(c, "teaming");
        if (!t || !attr_is(t, "type", "transient"))
            continue;
        r = rewrite_one(c, n, fn, userdata, reterr);
        n++;
    }
    if (r >= 0 && n > 0) {
        long w = -1;

        buf = xmlBufferCreate();
        save = buf ? xmlSaveToBuffer(buf, "UTF-8", XML_SAVE_NO_DECL) : NULL;
        if (save) {
            w = xmlSaveTree(save, root);
            if (xmlSaveClose(save) < 0)
                w = -1;
        }
        if (w < 0 || !(*ret_xml = strdup((const char *)xmlBufferContent(buf))))
            r = gabi_error_set(reterr, -ENOMEM, "domain", "cannot write the domain XML");
    }
    xmlBufferFree(buf);
    xmlFreeDoc(doc);
    return r < 0 ? r : (int)n;
}
