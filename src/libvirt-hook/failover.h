/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The failover part of the libvirt hook (docs/failover.md): at `migrate begin` on the
 * destination, every <interface type='hostdev'> with <teaming type='transient' .../> needs an
 * equivalent VF of this host; the domain XML is printed again with that interface's
 * <source><address .../> naming the VF reserved for it, and nothing else changed.
 */

#include <stdbool.h>
#include <stddef.h>

#include <guestabi/error.h>

#define HOOK_FAILOVER_MAX_XML (4u << 20) /* bytes of a domain XML */

/* One transient failover interface: its MAC, the alias of its persistent (standby) peer, and
 * the source address it has (the source host's VF). */
struct hook_failover_iface {
    unsigned index; /* among the domain's transient failover interfaces, from 0 */
    const char *mac;
    const char *persistent;
    const char *address; /* "0000:5e:02.0" */
};

/* Reserve a VF for iface: write its PCI address ("0000:5e:02.0") into ret_address, or fail
 * with the reason in reterr (it refuses the migration). */
typedef int (*hook_failover_reserve_fn)(const struct hook_failover_iface *iface, char *ret_address,
                                        size_t size, struct gabi_error *reterr, void *userdata);

/* Rewrite the transient failover interfaces of a domain XML, each through fn. Returns the
 * number of interfaces rewritten (0: *ret_xml is NULL, nothing to print), with *ret_xml the new
 * document (malloc'd, NUL-terminated); or -errno with reterr naming the interface. */
int hook_failover_rewrite(const char *xml, size_t size, hook_failover_reserve_fn fn, void *userdata,
                          char **ret_xml, struct gabi_error *reterr);

/* "0000:5e:02.0" into its four parts; false when malformed. */
bool hook_failover_parse_address(const char *s, unsigned *domain, unsigned *bus, unsigned *slot,
                                 unsigned *function);

/* ---- with the agent (failover_agent.c) -------------------------------------------------- */

struct gabi_rpc_client;
struct gabi_domain;

/* migrate begin: a VF reserved for each transient failover interface of the domain (the
 * device its standby's pin device names: <guestabi:failover device=.../>), the XML rewritten
 * into *ret_xml (NULL when the domain has no such interface). On failure what was reserved for
 * `vm` is released and reterr has the agent's reason. */
int hook_failover_begin(struct gabi_rpc_client *c, const struct gabi_domain *dom, const char *vm,
                        const char *xml, size_t size, char **ret_xml, struct gabi_error *reterr);
/* prepare: the VFs reserved for vm bound to vfio-pci; 0 when nothing was reserved. */
int hook_failover_bind(struct gabi_rpc_client *c, const char *vm, struct gabi_error *reterr);
/* release: vm's VFs released; how many (0: none), or -errno with reterr. */
int hook_failover_release(struct gabi_rpc_client *c, const char *vm, struct gabi_error *reterr);
