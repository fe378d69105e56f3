/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The pin in a libvirt domain's XML. A domain carries its guestabi pin in <metadata>, in the
 * namespace urn:guestabi:pin:1:
 *
 *   <guestabi:pin xmlns:guestabi="urn:guestabi:pin:1" platform="linux-5.14">
 *     <guestabi:device id="net0" alias="ua-net0" class="virtio-net"
 *                      mode="upstream.guestabi-net.v1"/>
 *     <guestabi:device id="serial0" class="mdev" type="mtty-1" state_version="1.0"/>
 *     <guestabi:device id="net1" alias="ua-net1" class="virtio-net" mode="...">
 *       <guestabi:failover primary="hostdev0" device="8086:154c"/>
 *     </guestabi:device>
 *   </guestabi:pin>
 *
 * It holds what a guestabi.pin/1 document holds (the VM is the domain's <name>), plus, per
 * device, the alias of the domain device it describes (`<alias name='ua-net0'/>`). Parsing
 * yields the same struct gabi_pin a JSON pin parses to, checked against the catalog, and the
 * domain's aliased devices (for a vhost-user interface or disk: its socket path).
 *
 * Domain XML is untrusted input: it is bounded in size and depth, parsed with libxml2 without
 * network access, and a document type declaration (the only way to declare entities) is
 * refused. Every failure names the file, the line and what is wrong.
 */

#include <stdbool.h>
#include <stddef.h>

#include <guestabi/abi.h>
#include <guestabi/error.h>

#define GABI_LIBVIRT_PIN_NS      "urn:guestabi:pin:1"
#define GABI_LIBVIRT_PIN_PREFIX  "guestabi"

#define GABI_LIBVIRT_MAX_XML     (4u << 20) /* bytes of one domain XML */
#define GABI_LIBVIRT_MAX_DEPTH   32u        /* element nesting */
#define GABI_LIBVIRT_MAX_DEVICES 1024u      /* aliased devices in one domain */

struct gabi_domain;

/* A device of the domain that has an alias. */
struct gabi_domain_device {
    const char *alias;          /* "ua-net0" */
    const char *element;        /* "interface", "disk", "hostdev", ... */
    const char *type;           /* its type attribute ("vhostuser"), or NULL */
    enum gabi_device_class cls; /* NET: a vhost-user interface; BLK: a vhost-user disk; NONE */
    const char *socket;         /* the vhost-user socket path (cls NET or BLK), or NULL */
    unsigned line;
};

/* Parse a domain's XML. The domain may have no pin (gabi_domain_pin() is NULL then); a pin
 * that is there must be valid against `cat`, and every alias it names must be a device of the
 * domain of a fitting kind (a virtio-net device: an interface; virtio-blk: a disk). */
int gabi_domain_parse(const struct gabi_catalog *cat, const char *origin, const char *xml,
                      size_t size, struct gabi_domain **ret, struct gabi_error *reterr);
int gabi_domain_load_file(const struct gabi_catalog *cat, const char *path,
                          struct gabi_domain **ret, struct gabi_error *reterr);
struct gabi_domain *gabi_domain_free(struct gabi_domain *d);

const char *gabi_domain_name(const struct gabi_domain *d);
const char *gabi_domain_uuid(const struct gabi_domain *d); /* or NULL */
size_t gabi_domain_n_devices(const struct gabi_domain *d);
const struct gabi_domain_device *gabi_domain_device(const struct gabi_domain *d, size_t i);
const struct gabi_domain_device *gabi_domain_find_device(const struct gabi_domain *d,
                                                         const char *alias);

/* The pin, or NULL when the domain has none. */
const struct gabi_pin *gabi_domain_pin(const struct gabi_domain *d);
/* The domain device pin device i describes (i as in gabi_pin_device()), or NULL. */
const struct gabi_domain_device *gabi_domain_pin_target(const struct gabi_domain *d, size_t i);

/*
 * Give the domain a pin (replacing any it had): takes ownership of `pin` (also on failure).
 * aliases[i] names the domain device of pin device i; NULL there means "ua-<id>" when the domain
 * has a device with that alias, and no device otherwise. aliases may be NULL (all defaults).
 * Fails, naming the device, when an alias is unknown, of the wrong kind, or used twice.
 */
int gabi_domain_set_pin(struct gabi_domain *d, struct gabi_pin *pin, const char *const *aliases,
                        struct gabi_error *reterr);

/* The <guestabi:pin> element of the domain's pin, malloc'd; NULL when there is no pin or
 * memory ran out. for_set_metadata: the form virDomainSetMetadata takes (it puts the root
 * element in the namespace itself and refuses one that declares it): the root without a
 * namespace, each child declaring it. */
char *gabi_domain_pin_to_xml(const struct gabi_domain *d, bool for_set_metadata);
