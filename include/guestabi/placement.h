/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Hosts on OpenStack Placement (docs/placement.md).
 *
 * The mapping (pure, no I/O): a host's capabilities become custom traits on its resource
 * provider, one per compat mode it runs, platform it runs and (device type, state version) it
 * loads, plus CUSTOM_GUESTABI_HOST ("published by guestabi"); its failover VFs become
 * inventory of one custom resource class per "vendor:device". A VM's pin becomes a query: the
 * traits it requires and the resources it asks for. Every name is CUSTOM_GUESTABI_<KIND>_ and
 * an injective encoding of the catalog names, so two different names never share a trait; a
 * name whose trait would pass Placement's 255 characters is refused (-ENAMETOOLONG).
 * The same mapping gives Kubernetes node labels (guestabi.io/<trait in lower case>).
 *
 * The client (lib/placement/client.c, libcurl): sync a host (find or create its provider, create
 * missing traits and resource classes, set guestabi's traits and inventory without touching
 * anything else, generation checked, 409 re-read and retried) and ask which providers can take
 * a query. Calls block for at most the connection's timeout; the library owns no thread.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <guestabi/abi.h>
#include <guestabi/error.h>

#define GABI_PLACEMENT_PREFIX        "CUSTOM_GUESTABI_"
#define GABI_PLACEMENT_HOST_TRAIT    "CUSTOM_GUESTABI_HOST"
#define GABI_PLACEMENT_NAME_MAX      255u /* Placement's limit on trait and class names */
#define GABI_PLACEMENT_MICROVERSION  "1.39"
#define GABI_PLACEMENT_MAX_TRAITS    4096u /* on one provider, or in one query */
#define GABI_PLACEMENT_MAX_RESOURCES 64u
#define GABI_LABEL_PREFIX            "guestabi.io/"
#define GABI_LABEL_NAME_MAX          63u /* Kubernetes: the name segment of a label key */

enum gabi_placement_kind {
    GABI_PLACEMENT_MODE,     /* CUSTOM_GUESTABI_MODE_<mode> */
    GABI_PLACEMENT_PLATFORM, /* CUSTOM_GUESTABI_PLATFORM_<platform> */
    GABI_PLACEMENT_STATE,    /* CUSTOM_GUESTABI_STATE_<device type>__<state version> */
    GABI_PLACEMENT_VF,       /* resource class CUSTOM_GUESTABI_VF_<vendor:device> */
    GABI_PLACEMENT_KIND_COUNT,
};

/* The trait (or resource class) name for a catalog name; `version` only for STATE. Writes
 * into buf (size >= GABI_PLACEMENT_NAME_MAX + 1); returns its length, -EINVAL for an empty
 * name, -ENAMETOOLONG when it would pass 255 characters (reterr names the entry). */
int gabi_placement_name(enum gabi_placement_kind kind, const char *name, const char *version,
                        char *buf, size_t size, struct gabi_error *reterr);
/* The inverse: kind, name and (STATE) version back from a trait guestabi made; -EINVAL for
 * any other string. name and version are written into buffers of size bytes each. */
int gabi_placement_name_decode(const char *trait, enum gabi_placement_kind *ret_kind, char *name,
                               char *version, size_t size);

/* ---- a host as Placement sees it ----------------------------------------------------------- */

struct gabi_placement_inventory {
    char *resource_class;
    uint32_t total;
    uint32_t reserved; /* VFs the host reports in use */
};

struct gabi_placement_host {
    char *name;    /* the resource provider's name: the hostcaps' host */
    char **traits; /* sorted, unique, GABI_PLACEMENT_HOST_TRAIT included */
    size_t n_traits;
    struct gabi_placement_inventory *inventory; /* sorted by class */
    size_t n_inventory;
};

int gabi_placement_host_from_hostcaps(const struct gabi_catalog *cat, const struct gabi_hostcaps *h,
                                      struct gabi_placement_host **ret, struct gabi_error *reterr);
struct gabi_placement_host *gabi_placement_host_free(struct gabi_placement_host *ph);

/* ---- a pin as a query ------------------------------------------------------------------------ */

/* One thing the pin needs: a trait (amount 0) or an amount of a resource class. */
struct gabi_placement_need {
    char *name;         /* trait or resource class */
    uint32_t amount;    /* 0 for a trait */
    bool forbidden;     /* a trait the host must not have */
    const char *device; /* the pin's device id, "" for the VM (as check's reasons) */
    const char *key;    /* "platform", "mode", "state_version", "failover", "resources", "host" */
    char *wanted;       /* the catalog name (or "VCPU:2") */
};

struct gabi_placement_query {
    char *vm;
    struct gabi_placement_need *needs; /* traits first, in pin order, then resources */
    size_t n_needs;
};

int gabi_placement_query_from_pin(const struct gabi_catalog *cat, const struct gabi_pin *pin,
                                  struct gabi_placement_query **ret, struct gabi_error *reterr);
/* Add standard or custom resources, "VCPU:2,MEMORY_MB:4096". */
int gabi_placement_query_add_resources(struct gabi_placement_query *q, const char *spec,
                                       struct gabi_error *reterr);
struct gabi_placement_query *gabi_placement_query_free(struct gabi_placement_query *q);
bool gabi_placement_query_has_resources(const struct gabi_placement_query *q);
/* "required=A,B&resources=X:1" parts, malloc'd; NULL when empty or out of memory. */
char *gabi_placement_query_required(const struct gabi_placement_query *q);
char *gabi_placement_query_resources(const struct gabi_placement_query *q);

/* ---- Kubernetes labels on the same mapping ------------------------------------------------- */

/* The label key for a trait or resource class: guestabi.io/<lower-case name without
 * CUSTOM_GUESTABI_> when that fits 63 characters, else guestabi.io/<kind>-<32 hex digits of
 * a hash of the trait>; written into buf (size >= 80). Returns the length or -errno. */
int gabi_label_key(const char *trait, char *buf, size_t size);
/* Whether a label key is valid Kubernetes syntax (prefix a DNS subdomain, name segment of at
 * most 63 characters of [A-Za-z0-9._-] starting and ending alphanumeric). */
bool gabi_label_key_valid(const char *key);

/* ---- the client ------------------------------------------------------------------------------ */

struct gabi_placement_conn {
    const char *url;   /* "http://127.0.0.1:8778"; NULL: $OS_PLACEMENT_ENDPOINT */
    const char *token; /* x-auth-token; NULL: $OS_TOKEN */
    long timeout_ms;   /* per request; 0: 30 s */
};

struct gabi_placement;

int gabi_placement_new(const struct gabi_placement_conn *conn, struct gabi_placement **ret,
                       struct gabi_error *reterr);
struct gabi_placement *gabi_placement_free(struct gabi_placement *pl);

struct gabi_placement_sync_result {
    char uuid[40];        /* the provider */
    bool created;         /* the provider did not exist */
    size_t n_added;       /* guestabi traits added */
    size_t n_removed;     /* guestabi traits removed */
    size_t n_kept;        /* traits not guestabi's, left as they were */
    bool inventory_set;   /* guestabi's inventory changed */
    unsigned n_conflicts; /* 409s re-read and retried */
    int64_t generation;   /* the provider's resource_provider_generation after the sync */
};

/* Publish one host: idempotent; a second sync changes nothing (n_added = n_removed = 0). */
int gabi_placement_sync(struct gabi_placement *pl, const struct gabi_placement_host *host,
                        struct gabi_placement_sync_result *ret, struct gabi_error *reterr);
/* The whole thing for a program that has hostcaps (the agent on start and on refresh). */
int gabi_placement_sync_hostcaps(const struct gabi_catalog *cat, const struct gabi_hostcaps *h,
                                 const struct gabi_placement_conn *conn,
                                 struct gabi_placement_sync_result *ret, struct gabi_error *reterr);

/* Names of the providers that can take the query, sorted: /allocation_candidates at 1.39 when
 * the query has resources, else /resource_providers. *ret is a malloc'd array of malloc'd
 * strings (free each, then the array). */
int gabi_placement_hosts(struct gabi_placement *pl, const struct gabi_placement_query *q,
                         char ***ret, size_t *ret_n, struct gabi_error *reterr);

/* One provider as Placement holds it: its traits and each class's capacity left. */
struct gabi_placement_provider {
    char uuid[40];
    char **traits;
    size_t n_traits;
    char **classes;
    int64_t *free; /* (total - reserved) * ratio - used, per class */
    size_t n_classes;
};

int gabi_placement_provider_get(struct gabi_placement *pl, const char *name,
                                struct gabi_placement_provider **ret, struct gabi_error *reterr);
struct gabi_placement_provider *gabi_placement_provider_free(struct gabi_placement_provider *p);

/* Why a provider cannot take the query, in check's words: one line per unmet need (key,
 * device, wanted, what the provider has), malloc'd into *ret; returns how many. */
int gabi_placement_explain(const struct gabi_placement_query *q,
                           const struct gabi_placement_provider *p, const char *host, char ***ret,
                           size_t *ret_n);
