/* SPDX-License-Identifier: MIT */
/* hostcaps' "hypervisor" member: the QEMU a host runs VMs with, its feature properties and
 * machine types. Platforms need both halves: the kernel's capabilities and these properties. */

#include <stdio.h>
#include <stdlib.h>

#include "abi/internal.h"

static const char *const hv_state_names[GABI_HV_STATE_COUNT] = {
    [GABI_HV_UNKNOWN] = "unknown",
    [GABI_HV_PROBED] = "probed",
    [GABI_HV_ABSENT] = "absent",
    [GABI_HV_FAILED] = "failed",
};

const char *gabi_hv_state_name(enum gabi_hv_state s)
{
    return (unsigned)s < GABI_HV_STATE_COUNT ? hv_state_names[s] : "?";
}

int gabi_hv_state_from_name(const char *name)
{
    for (unsigned i = 0; i < GABI_HV_STATE_COUNT; i++)
        if (strcmp(hv_state_names[i], name) == 0)
            return (int)i;
    return -ENOENT;
}

uint64_t hv_switchable_features(void)
{
    const struct gabi_hv_property *t;
    uint64_t mask = 0;
    size_t n;

    t = gabi_hv_properties(&n);
    for (size_t i = 0; i < n; i++)
        mask |= 1ull << t[i].bit;
    return mask;
}

/* The properties a QEMU of `version` has, for documents that state only the version. */
static uint64_t features_of_version(const char *version)
{
    const struct gabi_hv_property *t;
    uint64_t mask = 0;
    size_t n;

    t = gabi_hv_properties(&n);
    for (size_t i = 0; i < n; i++)
        if (gabi_version_compare(t[i].since, version) <= 0)
            mask |= 1ull << t[i].bit;
    return mask;
}

const struct gabi_hostcaps_hypervisor *gabi_hostcaps_hypervisor(const struct gabi_hostcaps *h)
{
    return &h->hv;
}

uint64_t gabi_hostcaps_platform_missing_features(const struct gabi_hostcaps *h,
                                                 const struct gabi_platform *p)
{
    if (h->hv.state != GABI_HV_PROBED)
        return 0;
    return p->features & hv_switchable_features() & ~h->hv.net_features;
}

bool gabi_hostcaps_has_machine(const struct gabi_hostcaps *h, const char *machine)
{
    if (!h->hv.has_machines)
        return false;
    for (size_t i = 0; i < h->hv.n_machines; i++)
        if (strcmp(h->hv.machines[i], machine) == 0)
            return true;
    return false;
}

static const char *dup_opt(struct gabi_arena *a, const char *s, bool *oom)
{
    const char *d = s ? gabi_arena_strdup(a, s) : NULL;

    if (s && !d)
        *oom = true;
    return d;
}

int gabi_hostcaps_set_hypervisor(struct gabi_hostcaps *h, const struct gabi_hostcaps_hypervisor *hv)
{
    struct gabi_hostcaps_hypervisor c = *hv;
    const char **machines = NULL;
    bool oom = false;

    if (hv->n_machines > GABI_MAX_MACHINES || (unsigned)hv->state >= GABI_HV_STATE_COUNT)
        return -EINVAL;
    c.name = dup_opt(&h->arena, hv->name ? hv->name : "qemu", &oom);
    c.binary = dup_opt(&h->arena, hv->binary, &oom);
    c.version = dup_opt(&h->arena, hv->version, &oom);
    c.message = dup_opt(&h->arena, hv->message, &oom);
    if (hv->n_machines) {
        machines = gabi_arena_alloc_array(&h->arena, hv->n_machines, sizeof(*machines));
        oom |= !machines;
        for (size_t i = 0; machines && i < hv->n_machines; i++)
            machines[i] = dup_opt(&h->arena, hv->machines[i], &oom);
    }
    if (oom)
        return -ENOMEM;
    c.machines = machines;
    h->hv = c;
    hostcaps_update_platforms(h);
    return 0;
}

/* ---- the document member ------------------------------------------------------------------ */

static int parse_properties(struct jctx *c, json_t *arr, uint64_t *ret)
{
    size_t i, n_table, old = jctx_push_key(c, "virtio_net_properties");
    const struct gabi_hv_property *table = gabi_hv_properties(&n_table);
    uint64_t mask = 0;
    json_t *v;

    json_array_foreach (arr, i, v) {
        size_t old2 = jctx_push_index(c, i);
        const struct gabi_hv_property *prop;

        if (!json_is_string(v))
            return jerr(c, "expected a virtio-net property name");
        prop = gabi_hv_property_find(json_string_value(v));
        if (!prop) {
            struct gabi_suggest sg;
            char hint[256];

            gabi_suggest_init(&sg, json_string_value(v));
            for (size_t k = 0; k < n_table; k++)
                gabi_suggest_add(&sg, table[k].name);
            return jerr(c, "unknown virtio-net feature property \"%s\"%s", json_string_value(v),
                        gabi_suggest_format(&sg, hint, sizeof(hint)));
        }
        mask |= 1ull << prop->bit;
        jctx_pop(c, old2);
    }
    jctx_pop(c, old);
    *ret = mask;
    return 0;
}

static int parse_machines(struct jctx *c, json_t *arr, struct gabi_hostcaps_hypervisor *hv)
{
    size_t i, old = jctx_push_key(c, "machine_types");
    const char **machines;
    json_t *v;

    machines = gabi_arena_alloc_array(c->arena, json_array_size(arr) + 1, sizeof(*machines));
    if (!machines)
        return -ENOMEM;
    json_array_foreach (arr, i, v) {
        size_t old2 = jctx_push_index(c, i);
        const char *s;

        if (!json_is_string(v))
            return jerr(c, "expected a machine type name");
        s = json_string_value(v);
        if (!s[0] || strlen(s) >= GABI_MAX_NAME || strcspn(s, " \t\n") != strlen(s))
            return jerr(c, "a machine type is 1 to %u characters without spaces",
                        GABI_MAX_NAME - 1);
        for (size_t j = 0; j < i; j++)
            if (strcmp(machines[j], s) == 0)
                return jerr(c, "machine type \"%s\" is listed twice", s);
        machines[i] = gabi_arena_strdup(c->arena, s);
        if (!machines[i])
            return -ENOMEM;
        jctx_pop(c, old2);
    }
    jctx_pop(c, old);
    hv->machines = machines;
    hv->n_machines = json_array_size(arr);
    hv->has_machines = true;
    return 0;
}

int hostcaps_parse_hypervisor(struct jctx *c, json_t *root, struct gabi_hostcaps *h)
{
    static const char *const keys[] = {
        "name", "state", "binary", "version", "message", "machine_types", "virtio_net_properties",
        NULL};
    struct gabi_hostcaps_hypervisor hv = {.state = GABI_HV_PROBED, .name = "qemu"};
    const char *state = NULL;
    json_t *obj, *props, *machines;
    size_t old;
    int r;

    r = jget_object(c, root, "hypervisor", false, &obj);
    if (r < 0 || !obj)
        return r;
    old = jctx_push_key(c, "hypervisor");
    if ((r = jcheck_keys(c, obj, keys)) < 0 ||
        (r = jget_string(c, obj, "name", false, &hv.name)) < 0 ||
        (r = jget_string(c, obj, "state", false, &state)) < 0 ||
        (r = jget_string(c, obj, "binary", false, &hv.binary)) < 0 ||
        (r = jget_string(c, obj, "version", false, &hv.version)) < 0 ||
        (r = jget_string(c, obj, "message", false, &hv.message)) < 0 ||
        (r = jget_array(c, obj, "virtio_net_properties", false, 256, &props)) < 0 ||
        (r = jget_array(c, obj, "machine_types", false, GABI_MAX_MACHINES, &machines)) < 0)
        return r;
    if (strcmp(hv.name, "qemu") != 0)
        return jerr(c, "hypervisor \"%s\": guestabi knows \"qemu\" only", hv.name);
    if (state) {
        int s = gabi_hv_state_from_name(state);

        if (s < 0 || s == GABI_HV_UNKNOWN)
            return jerr(c,
                        "unknown hypervisor state \"%s\"; expected \"probed\", \"absent\" or "
                        "\"failed\"",
                        state);
        hv.state = (enum gabi_hv_state)s;
    }
    if (hv.state == GABI_HV_PROBED) {
        if (!hv.version)
            return jerr(c, "a probed hypervisor needs a \"version\"");
        if (props && (r = parse_properties(c, props, &hv.net_features)) < 0)
            return r;
        if (!props)
            hv.net_features = features_of_version(hv.version);
        if (machines && (r = parse_machines(c, machines, &hv)) < 0)
            return r;
    } else if (props || machines || hv.version) {
        return jerr(c, "a hypervisor in state \"%s\" has no version, properties or machine types",
                    gabi_hv_state_name(hv.state));
    }
    jctx_pop(c, old);
    h->hv = hv;
    return 0;
}

json_t *hostcaps_hypervisor_json(const struct gabi_hostcaps *h)
{
    const struct gabi_hostcaps_hypervisor *hv = &h->hv;
    json_t *o = json_object();

    json_object_set_new(o, "name", json_string(hv->name ? hv->name : "qemu"));
    json_object_set_new(o, "state", json_string(gabi_hv_state_name(hv->state)));
    if (hv->binary)
        json_object_set_new(o, "binary", json_string(hv->binary));
    if (hv->version)
        json_object_set_new(o, "version", json_string(hv->version));
    if (hv->message)
        json_object_set_new(o, "message", json_string(hv->message));
    if (hv->state == GABI_HV_PROBED) {
        const struct gabi_hv_property *t;
        json_t *arr = json_array();
        size_t n;

        t = gabi_hv_properties(&n);
        for (size_t i = 0; i < n; i++)
            if (hv->net_features & (1ull << t[i].bit))
                json_array_append_new(arr, json_string(t[i].name));
        json_object_set_new(o, "virtio_net_properties", arr);
    }
    if (hv->has_machines) {
        json_t *arr = json_array();

        for (size_t i = 0; i < hv->n_machines; i++)
            json_array_append_new(arr, json_string(hv->machines[i]));
        json_object_set_new(o, "machine_types", arr);
    }
    return o;
}

/* ---- decisions ---------------------------------------------------------------------------- */

size_t hv_machine_family_len(const char *machine)
{
    const char *dash = strrchr(machine, '-'), *s;
    bool dot = false;

    if (!dash || dash == machine || !(dash[1] >= '0' && dash[1] <= '9'))
        return 0;
    for (s = dash + 1; *s; s++) {
        if (*s == '.' && s[-1] != '.' && s[1] >= '0' && s[1] <= '9')
            dot = true;
        else if (!(*s >= '0' && *s <= '9'))
            return 0;
    }
    return dot ? (size_t)(dash - machine) : 0;
}

static const char *hv_label(struct gabi_arena *a, const struct gabi_hostcaps *h)
{
    return gabi_arena_printf(a, "QEMU %s on host %s", h->hv.version ? h->hv.version : "?", h->host);
}

int hv_platform_reasons(struct gabi_verdict *v, const struct gabi_platform *p,
                        const struct gabi_hostcaps *h)
{
    struct gabi_arena *a = &v->arena;
    uint64_t missing = gabi_hostcaps_platform_missing_features(h, p);
    const char *who = hv_label(a, h);

    for (unsigned b = 0; b < 64; b++) {
        const struct gabi_hv_property *prop;
        int r;

        if (!(missing & (1ull << b)))
            continue;
        prop = gabi_hv_property_for_feature(b);
        r = verdict_add_reason(
            v, h->host, "", "hypervisor", gabi_arena_printf(a, "%s: %s", p->name, prop->name),
            gabi_arena_printf(a, "QEMU %s: no %s", h->hv.version, prop->name),
            "%s has no virtio-net property %s: %s's %s cannot be offered (QEMU "
            "%s added it)",
            who, prop->name, p->name, gabi_feature_name(GABI_CLASS_NET, b), prop->since);
        if (r < 0)
            return r;
    }
    return 0;
}

/* "unknown on host X" / "absent on host X (why)": why the hypervisor half was not judged. */
static const char *hv_unknown_text(struct gabi_arena *a, const struct gabi_hostcaps *h)
{
    if (h->hv.state == GABI_HV_UNKNOWN)
        return gabi_arena_printf(a, "unknown on host %s (its hostcaps name none)", h->host);
    return gabi_arena_printf(a, "%s on host %s (%s)", gabi_hv_state_name(h->hv.state), h->host,
                             h->hv.message ? h->hv.message : "no details");
}

int hv_check(struct gabi_verdict *v, const struct gabi_pin *pin, const struct gabi_hostcaps *h)
{
    struct gabi_arena *a = &v->arena;
    char buf[4096];
    struct gabi_strbuf sb;
    size_t family;

    if (pin->platform && h->hv.state != GABI_HV_PROBED) {
        int r = verdict_add_choice(v, "hypervisor", "hypervisor",
                                   gabi_arena_printf(a,
                                                     "%s: platform %s judged on the kernel "
                                                     "alone",
                                                     hv_unknown_text(a, h), pin->platform->name));
        if (r < 0)
            return r;
    }
    if (!pin->machine)
        return 0;
    if (!h->hv.has_machines)
        return verdict_add_choice(v, "machine", "machine",
                                  gabi_arena_printf(a,
                                                    "%s (not checked: the machine types of host "
                                                    "%s's hypervisor are unknown)",
                                                    pin->machine, h->host));
    if (gabi_hostcaps_has_machine(h, pin->machine))
        return verdict_add_choice(v, "machine", "machine", pin->machine);
    /* Name the machine types of the same family ("pc-q35-"), else all of them. */
    family = hv_machine_family_len(pin->machine);
    gabi_strbuf_init(&sb, buf, sizeof(buf));
    for (size_t i = 0; i < h->hv.n_machines; i++)
        if (!family || strncmp(h->hv.machines[i], pin->machine, family + 1) == 0)
            gabi_strbuf_item(&sb, ", ", h->hv.machines[i]);
    if (!sb.len)
        for (size_t i = 0; i < h->hv.n_machines; i++)
            gabi_strbuf_item(&sb, ", ", h->hv.machines[i]);
    return verdict_add_reason(v, h->host, "", "machine", pin->machine, sb.len ? buf : "none",
                              "VM %s runs machine type %s, which %s does not have (it has: %s)",
                              pin->vm, pin->machine, hv_label(a, h), sb.len ? buf : "none");
}

/* Whether every host has machine type m. */
static bool all_have(const struct gabi_hostcaps *const *hosts, size_t n, const char *m)
{
    for (size_t h = 0; h < n; h++)
        if (!gabi_hostcaps_has_machine(hosts[h], m))
            return false;
    return true;
}

int hv_pick(struct gabi_verdict *v, const struct gabi_hostcaps *const *hosts, size_t n,
            bool platform_picked)
{
    const struct gabi_hostcaps_hypervisor *first = &hosts[0]->hv;
    char buf[2048];
    struct gabi_strbuf sb;
    int r;

    gabi_strbuf_init(&sb, buf, sizeof(buf));
    for (size_t h = 0; h < n; h++)
        if (hosts[h]->hv.state != GABI_HV_PROBED)
            gabi_strbuf_item(&sb, "; ", hv_unknown_text(&v->arena, hosts[h]));
    if (platform_picked && sb.len) {
        r = verdict_add_choice(
            v, "hypervisor", "hypervisor",
            gabi_arena_printf(&v->arena, "%s: the platform judged on the kernel alone there", buf));
        if (r < 0)
            return r;
    }
    for (size_t h = 0; h < n; h++)
        if (!hosts[h]->hv.has_machines)
            return 0; /* no machine type can be named for all */
    /* Per family of versioned machine types ("pc-q35"), the newest every host has. */
    for (size_t i = 0; i < first->n_machines; i++) {
        const char *m = first->machines[i], *best = NULL;
        size_t fam = hv_machine_family_len(m);
        bool seen = false;

        for (size_t j = 0; fam && j < i && !seen; j++)
            seen = hv_machine_family_len(first->machines[j]) == fam &&
                   strncmp(first->machines[j], m, fam + 1) == 0;
        if (!fam || seen)
            continue;
        for (size_t j = i; j < first->n_machines; j++) {
            const char *c = first->machines[j];

            if (hv_machine_family_len(c) != fam || strncmp(c, m, fam + 1) != 0)
                continue;
            if ((!best || gabi_version_compare(c + fam + 1, best + fam + 1) > 0) &&
                all_have(hosts, n, c))
                best = c;
        }
        if (best) {
            char family[GABI_MAX_NAME];

            memcpy(family, m, fam);
            family[fam] = '\0';
            r = verdict_add_choice(v, family, "machine", best);
            if (r < 0)
                return r;
        }
    }
    return 0;
}
