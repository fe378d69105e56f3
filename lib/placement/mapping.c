/* SPDX-License-Identifier: MIT */
/* Hostcaps and pins as Placement traits, resource classes and Kubernetes labels. No I/O. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <guestabi/placement.h>

#include <guestabi/util.h>
#include "placement/internal.h"

/* ---- string arrays ----------------------------------------------------------------------------
 */

int strv_take(struct strv *sv, char *s)
{
    if (!s)
        return -ENOMEM;
    if (sv->n == sv->alloc) {
        size_t alloc = sv->alloc ? sv->alloc * 2 : 16;
        char **v = realloc(sv->v, alloc * sizeof(*v));

        if (!v) {
            free(s);
            return -ENOMEM;
        }
        sv->v = v;
        sv->alloc = alloc;
    }
    sv->v[sv->n++] = s;
    return 0;
}

int strv_add(struct strv *sv, const char *s)
{
    return strv_take(sv, strdup(s));
}

bool strv_contains(const struct strv *sv, const char *s)
{
    for (size_t i = 0; i < sv->n; i++)
        if (strcmp(sv->v[i], s) == 0)
            return true;
    return false;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void strv_sort_unique(struct strv *sv)
{
    size_t j = 0;

    if (sv->n > 1)
        qsort(sv->v, sv->n, sizeof(*sv->v), cmp_str);
    for (size_t i = 0; i < sv->n; i++) {
        if (j && strcmp(sv->v[j - 1], sv->v[i]) == 0)
            free(sv->v[i]);
        else
            sv->v[j++] = sv->v[i];
    }
    sv->n = j;
}

void strv_free_array(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

void strv_free(struct strv *sv)
{
    strv_free_array(sv->v, sv->n);
    *sv = (struct strv){0};
}

/* ---- the encoding ------------------------------------------------------------------------------
 */

static const char *const kind_words[GABI_PLACEMENT_KIND_COUNT] = {
    [GABI_PLACEMENT_MODE] = "MODE",
    [GABI_PLACEMENT_PLATFORM] = "PLATFORM",
    [GABI_PLACEMENT_STATE] = "STATE",
    [GABI_PLACEMENT_VF] = "VF",
};

/* Punctuation with a letter of its own after '_' (docs/placement.md); any other byte that is
 * not [a-z0-9] is "_C" + letter (upper-case letters) or "_X" + two hex digits. */
static const struct {
    char c, code;
} escapes[] = {
    {'.', 'D'}, {'-', 'H'}, {'_', 'U'}, {':', 'K'}, {'/', 'S'}, {'+', 'P'},
};

/* Append the encoding of s to buf at *len; -ENAMETOOLONG when it would pass `max`. */
static int encode(const char *s, char *buf, size_t *len, size_t max)
{
    static const char hex[] = "0123456789ABCDEF";

    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char code[4] = {0};
        size_t n = 0;

        if (*p >= 'a' && *p <= 'z') {
            code[n++] = (char)(*p - 'a' + 'A');
        } else if (*p >= '0' && *p <= '9') {
            code[n++] = (char)*p;
        } else if (*p >= 'A' && *p <= 'Z') {
            code[n++] = '_';
            code[n++] = 'C';
            code[n++] = (char)*p;
        } else {
            code[n++] = '_';
            for (size_t i = 0; i < ARRAY_SIZE(escapes) && n == 1; i++)
                if (escapes[i].c == (char)*p)
                    code[n++] = escapes[i].code;
            if (n == 1) {
                code[n++] = 'X';
                code[n++] = hex[*p >> 4];
                code[n++] = hex[*p & 15];
            }
        }
        if (*len + n > max)
            return -ENAMETOOLONG;
        memcpy(buf + *len, code, n);
        *len += n;
    }
    buf[*len] = '\0';
    return 0;
}

int gabi_placement_name(enum gabi_placement_kind kind, const char *name, const char *version,
                        char *buf, size_t size, struct gabi_error *reterr)
{
    size_t len, max = MIN(size - 1, (size_t)GABI_PLACEMENT_NAME_MAX);
    int r;

    if ((unsigned)kind >= GABI_PLACEMENT_KIND_COUNT || !name || !*name || size < 2 ||
        (kind == GABI_PLACEMENT_STATE) != (version != NULL) || (version && !*version))
        return gabi_error_set(reterr, -EINVAL, NULL, "no name to make a Placement name of");
    len = (size_t)snprintf(buf, size, "%s%s_", GABI_PLACEMENT_PREFIX, kind_words[kind]);
    if (len > max)
        return -ENAMETOOLONG;
    r = encode(name, buf, &len, max);
    if (r >= 0 && version) {
        if (len + 2 > max)
            r = -ENAMETOOLONG;
        else {
            memcpy(buf + len, "__", 3);
            len += 2;
            r = encode(version, buf, &len, max);
        }
    }
    if (r < 0)
        return gabi_error_set(reterr, r, NULL,
                              "%s \"%s\"%s%s is too long for a Placement name: its encoding "
                              "passes %u characters",
                              kind == GABI_PLACEMENT_VF ? "failover device" : "catalog name", name,
                              version ? " version " : "", version ? version : "",
                              GABI_PLACEMENT_NAME_MAX);
    return (int)len;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode one component from *p up to "__" or the end; -EINVAL on anything not made by
 * encode(). */
static int decode(const char **p, char *out, size_t size)
{
    const char *s = *p;
    size_t n = 0;

    while (*s && !(s[0] == '_' && s[1] == '_')) {
        int c;

        if ((*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')) {
            c = *s >= 'A' && *s <= 'Z' ? *s - 'A' + 'a' : *s;
            s++;
        } else if (*s == '_') {
            c = -1;
            for (size_t i = 0; i < ARRAY_SIZE(escapes); i++)
                if (escapes[i].code == s[1])
                    c = (unsigned char)escapes[i].c;
            if (c >= 0) {
                s += 2;
            } else if (s[1] == 'C' && s[2] >= 'A' && s[2] <= 'Z') {
                c = s[2];
                s += 3;
            } else if (s[1] == 'X' && hexval(s[2]) >= 0 && hexval(s[3]) >= 0) {
                c = hexval(s[2]) * 16 + hexval(s[3]);
                /* only bytes that have no shorter code are written this way */
                if (c == 0 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9'))
                    return -EINVAL;
                for (size_t i = 0; i < ARRAY_SIZE(escapes); i++)
                    if (escapes[i].c == c)
                        return -EINVAL;
                s += 4;
            } else {
                return -EINVAL;
            }
        } else {
            return -EINVAL;
        }
        if (n + 1 >= size)
            return -ENAMETOOLONG;
        out[n++] = (char)c;
    }
    if (!n)
        return -EINVAL;
    out[n] = '\0';
    *p = s;
    return 0;
}

int gabi_placement_name_decode(const char *trait, enum gabi_placement_kind *ret_kind, char *name,
                               char *version, size_t size)
{
    const char *p;
    size_t plen = strlen(GABI_PLACEMENT_PREFIX);

    if (strncmp(trait, GABI_PLACEMENT_PREFIX, plen) != 0)
        return -EINVAL;
    for (int k = 0; k < GABI_PLACEMENT_KIND_COUNT; k++) {
        size_t klen = strlen(kind_words[k]);

        p = trait + plen;
        if (strncmp(p, kind_words[k], klen) != 0 || p[klen] != '_')
            continue;
        p += klen + 1;
        if (decode(&p, name, size) < 0)
            return -EINVAL;
        if (k == GABI_PLACEMENT_STATE) {
            if (p[0] != '_' || p[1] != '_')
                return -EINVAL;
            p += 2;
            if (decode(&p, version, size) < 0)
                return -EINVAL;
        } else if (version && size) {
            version[0] = '\0';
        }
        if (*p)
            return -EINVAL;
        *ret_kind = (enum gabi_placement_kind)k;
        return 0;
    }
    return -EINVAL;
}

/* ---- a host ------------------------------------------------------------------------------------
 */

struct gabi_placement_host *gabi_placement_host_free(struct gabi_placement_host *ph)
{
    if (!ph)
        return NULL;
    free(ph->name);
    strv_free_array(ph->traits, ph->n_traits);
    for (size_t i = 0; i < ph->n_inventory; i++)
        free(ph->inventory[i].resource_class);
    free(ph->inventory);
    free(ph);
    return NULL;
}

static int add_name(struct strv *sv, enum gabi_placement_kind kind, const char *name,
                    const char *version, struct gabi_error *reterr)
{
    char buf[GABI_PLACEMENT_NAME_MAX + 1];
    int r = gabi_placement_name(kind, name, version, buf, sizeof(buf), reterr);

    if (r < 0)
        return r;
    if (sv->n >= GABI_PLACEMENT_MAX_TRAITS)
        return gabi_error_set(reterr, -E2BIG, NULL, "more than %u traits",
                              GABI_PLACEMENT_MAX_TRAITS);
    return strv_add(sv, buf);
}

static void add_versions(const char **cand, size_t *n, size_t max, const struct gabi_versions *vs)
{
    if (vs->version && *n < max)
        cand[(*n)++] = vs->version;
    if (vs->minimum && *n < max)
        cand[(*n)++] = vs->minimum;
    for (size_t i = 0; i < vs->n && *n < max; i++)
        cand[(*n)++] = vs->list[i];
}

/* The versions of a device type a host publishes: its load list, or for a range every version
 * the catalog or the host names for the type inside the range (docs/placement.md). */
static int add_state_traits(struct strv *sv, const struct gabi_catalog *cat,
                            const struct gabi_hostcaps_device_type *t, struct gabi_error *reterr)
{
    const char *cand[GABI_MAX_VERSIONS * 6];
    const struct gabi_device_type *ct = gabi_catalog_find_device_type(cat, t->name);
    size_t n = 0;

    add_versions(cand, &n, ARRAY_SIZE(cand), &t->loads);
    add_versions(cand, &n, ARRAY_SIZE(cand), &t->writes);
    if (ct) {
        add_versions(cand, &n, ARRAY_SIZE(cand), &ct->loads);
        add_versions(cand, &n, ARRAY_SIZE(cand), &ct->writes);
    }
    for (size_t i = 0; i < n; i++) {
        int r;

        if (!gabi_versions_accepts(&t->loads, cand[i]))
            continue;
        r = add_name(sv, GABI_PLACEMENT_STATE, t->name, cand[i], reterr);
        if (r < 0)
            return r;
    }
    return 0;
}

static int add_inventory(struct gabi_placement_host *ph, const struct gabi_hostcaps_failover *f,
                         struct gabi_error *reterr)
{
    char rc[GABI_PLACEMENT_NAME_MAX + 1];
    struct gabi_placement_inventory *inv;
    int r = gabi_placement_name(GABI_PLACEMENT_VF, f->device, NULL, rc, sizeof(rc), reterr);

    if (r < 0)
        return r;
    for (size_t i = 0; i < ph->n_inventory; i++)
        if (strcmp(ph->inventory[i].resource_class, rc) == 0) {
            ph->inventory[i].total++;
            ph->inventory[i].reserved += f->in_use;
            return 0;
        }
    inv = realloc(ph->inventory, (ph->n_inventory + 1) * sizeof(*inv));
    if (!inv)
        return -ENOMEM;
    ph->inventory = inv;
    inv[ph->n_inventory] = (struct gabi_placement_inventory){strdup(rc), 1, f->in_use};
    if (!inv[ph->n_inventory].resource_class)
        return -ENOMEM;
    ph->n_inventory++;
    return 0;
}

static int cmp_inventory(const void *a, const void *b)
{
    return strcmp(((const struct gabi_placement_inventory *)a)->resource_class,
                  ((const struct gabi_placement_inventory *)b)->resource_class);
}

int gabi_placement_host_from_hostcaps(const struct gabi_catalog *cat, const struct gabi_hostcaps *h,
                                      struct gabi_placement_host **ret, struct gabi_error *reterr)
{
    struct gabi_placement_host *ph = calloc(1, sizeof(*ph));
    struct strv sv = {0};
    int r;

    if (!ph || !(ph->name = strdup(gabi_hostcaps_host(h)))) {
        r = -ENOMEM;
        goto fail;
    }
    r = strv_add(&sv, GABI_PLACEMENT_HOST_TRAIT);
    for (size_t i = 0; r >= 0 && i < gabi_catalog_n_modes(cat); i++) {
        const struct gabi_mode *m = gabi_catalog_mode(cat, i);
        if (gabi_hostcaps_runs_mode(h, m))
            r = add_name(&sv, GABI_PLACEMENT_MODE, m->name, NULL, reterr);
    }
    for (size_t i = 0; r >= 0 && i < gabi_catalog_n_platforms(cat); i++) {
        const struct gabi_platform *p = gabi_catalog_platform(cat, i);
        if (gabi_hostcaps_runs_platform(h, p))
            r = add_name(&sv, GABI_PLACEMENT_PLATFORM, p->name, NULL, reterr);
    }
    /* A type with no free instance takes no VM: check says so too (available_instances). */
    for (size_t i = 0; r >= 0 && i < gabi_hostcaps_n_device_types(h); i++) {
        const struct gabi_hostcaps_device_type *t = gabi_hostcaps_device_type(h, i);
        if (t->available_instances != 0)
            r = add_state_traits(&sv, cat, t, reterr);
    }
    for (size_t i = 0; r >= 0 && i < gabi_hostcaps_n_failover(h); i++)
        r = add_inventory(ph, gabi_hostcaps_failover(h, i), reterr);
    if (r < 0)
        goto fail;
    strv_sort_unique(&sv);
    if (ph->n_inventory > 1)
        qsort(ph->inventory, ph->n_inventory, sizeof(*ph->inventory), cmp_inventory);
    ph->traits = sv.v;
    ph->n_traits = sv.n;
    *ret = ph;
    return 0;
fail:
    strv_free(&sv);
    gabi_placement_host_free(ph);
    if (r == -ENOMEM)
        gabi_error_set(reterr, r, NULL, "out of memory");
    gabi_error_prefix_where(reterr, gabi_hostcaps_host(h));
    return r;
}

/* ---- a pin --------------------------------------------------------------------------------------
 */

struct gabi_placement_query *gabi_placement_query_free(struct gabi_placement_query *q)
{
    if (!q)
        return NULL;
    for (size_t i = 0; i < q->n_needs; i++) {
        free(q->needs[i].name);
        free(q->needs[i].wanted);
    }
    free(q->needs);
    free(q->vm);
    free(q);
    return NULL;
}

static int add_need(struct gabi_placement_query *q, const char *name, uint32_t amount,
                    const char *device, const char *key, const char *wanted)
{
    struct gabi_placement_need *n;

    if (q->n_needs >= GABI_PLACEMENT_MAX_TRAITS)
        return -E2BIG;
    n = realloc(q->needs, (q->n_needs + 1) * sizeof(*n));
    if (!n)
        return -ENOMEM;
    q->needs = n;
    n = &q->needs[q->n_needs];
    *n = (struct gabi_placement_need){.name = strdup(name),
                                      .amount = amount,
                                      .device = device,
                                      .key = key,
                                      .wanted = strdup(wanted)};
    if (!n->name || !n->wanted) {
        free(n->name);
        free(n->wanted);
        return -ENOMEM;
    }
    q->n_needs++;
    return 0;
}

static int need_name(struct gabi_placement_query *q, enum gabi_placement_kind kind,
                     const char *name, const char *version, const char *device, const char *key,
                     struct gabi_error *reterr)
{
    char buf[GABI_PLACEMENT_NAME_MAX + 1];
    char wanted[2 * GABI_MAX_NAME + 8];
    int r = gabi_placement_name(kind, name, version, buf, sizeof(buf), reterr);

    if (r < 0)
        return r;
    if (version)
        snprintf(wanted, sizeof(wanted), "%s %s", name, version);
    else
        gabi_strlcpy(wanted, name, sizeof(wanted));
    /* a failover pair asks for one free VF of its device (check counts presence, not pairs) */
    if (kind == GABI_PLACEMENT_VF)
        for (size_t i = 0; i < q->n_needs; i++)
            if (strcmp(q->needs[i].name, buf) == 0)
                return 0;
    r = add_need(q, buf, kind == GABI_PLACEMENT_VF ? 1 : 0, device, key, wanted);
    if (r < 0)
        return gabi_error_set(reterr, r, NULL, "pin %s: too many needs", q->vm);
    return 0;
}

int gabi_placement_query_from_pin(const struct gabi_catalog *cat, const struct gabi_pin *pin,
                                  struct gabi_placement_query **ret, struct gabi_error *reterr)
{
    struct gabi_placement_query *q = calloc(1, sizeof(*q));
    const struct gabi_platform *p = gabi_pin_platform(pin);
    int r;

    (void)cat;
    if (!p && gabi_pin_needs_platform(pin)) {
        free(q);
        return gabi_error_set(reterr, -EINVAL, gabi_pin_vm(pin),
                              "VM %s names no platform but has a virtio-net device: it runs its "
                              "source host's newest platform, which no query can know; pin the "
                              "platform (guestabi query-platforms on the source names it)",
                              gabi_pin_vm(pin));
    }
    if (!q || !(q->vm = strdup(gabi_pin_vm(pin)))) {
        free(q);
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    }
    r = add_need(q, GABI_PLACEMENT_HOST_TRAIT, 0, "", "host", "published by guestabi");
    if (r >= 0 && p)
        r = need_name(q, GABI_PLACEMENT_PLATFORM, p->name, NULL, "", "platform", reterr);
    for (size_t i = 0; r >= 0 && i < gabi_pin_n_devices(pin); i++) {
        const struct gabi_pin_device *d = gabi_pin_device(pin, i);

        if (d->mode)
            r = need_name(q, GABI_PLACEMENT_MODE, d->mode->name, NULL, d->id, "mode", reterr);
        if (r >= 0 && d->state_version)
            r = need_name(q, GABI_PLACEMENT_STATE, d->type, d->state_version, d->id,
                          "state_version", reterr);
        if (r >= 0 && d->failover_device)
            r = need_name(q, GABI_PLACEMENT_VF, d->failover_device, NULL, d->id, "failover",
                          reterr);
    }
    if (r < 0) {
        if (r == -ENOMEM)
            gabi_error_set(reterr, r, NULL, "out of memory");
        gabi_placement_query_free(q);
        return r;
    }
    *ret = q;
    return 0;
}

int gabi_placement_query_add_resources(struct gabi_placement_query *q, const char *spec,
                                       struct gabi_error *reterr)
{
    _cleanup_free_ char *copy = strdup(spec);
    char *save = NULL;
    size_t n = 0;

    if (!copy)
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        uint64_t amount;
        int r;

        if (++n > GABI_PLACEMENT_MAX_RESOURCES)
            return gabi_error_set(reterr, -E2BIG, "--resources", "more than %u resources",
                                  GABI_PLACEMENT_MAX_RESOURCES);
        if (!colon || colon == tok)
            return gabi_error_set(reterr, -EINVAL, "--resources",
                                  "\"%s\" is not CLASS:AMOUNT (e.g. VCPU:2)", tok);
        *colon = '\0';
        if (strlen(tok) > GABI_PLACEMENT_NAME_MAX || strspn(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                                 "0123456789_") != strlen(tok))
            return gabi_error_set(reterr, -EINVAL, "--resources",
                                  "resource class \"%s\" is not [A-Z0-9_]{1,255}", tok);
        if (gabi_parse_u64(colon + 1, &amount) < 0 || amount == 0 || amount > INT32_MAX)
            return gabi_error_set(reterr, -EINVAL, "--resources",
                                  "amount \"%s\" of %s is not a whole number from 1 to %d",
                                  colon + 1, tok, INT32_MAX);
        r = add_need(q, tok, (uint32_t)amount, "", "resources", tok);
        if (r < 0)
            return gabi_error_set(reterr, r, "--resources", "cannot add %s", tok);
    }
    if (!n)
        return gabi_error_set(reterr, -EINVAL, "--resources", "names no resource");
    return 0;
}

bool gabi_placement_query_has_resources(const struct gabi_placement_query *q)
{
    for (size_t i = 0; i < q->n_needs; i++)
        if (q->needs[i].amount)
            return true;
    return false;
}

char *gabi_placement_query_required(const struct gabi_placement_query *q)
{
    struct strv sv = {0};
    char *out = NULL;
    size_t len = 0;

    for (size_t i = 0; i < q->n_needs; i++) {
        const struct gabi_placement_need *n = &q->needs[i];
        char *s = NULL;

        if (n->amount)
            continue;
        if (n->forbidden) {
            if (asprintf(&s, "!%s", n->name) < 0)
                s = NULL;
        } else {
            s = strdup(n->name);
        }
        if (strv_take(&sv, s) < 0)
            goto done;
    }
    strv_sort_unique(&sv);
    for (size_t i = 0; i < sv.n; i++)
        len += strlen(sv.v[i]) + 1;
    out = len ? malloc(len) : NULL;
    if (out) {
        out[0] = '\0';
        for (size_t i = 0; i < sv.n; i++) {
            if (i)
                strcat(out, ",");
            strcat(out, sv.v[i]);
        }
    }
done:
    strv_free(&sv);
    return out;
}

bool query_class_total(const struct gabi_placement_query *q, size_t i, uint64_t *ret_sum)
{
    const struct gabi_placement_need *n = &q->needs[i];
    uint64_t sum = 0;

    if (!n->amount)
        return false;
    for (size_t j = 0; j < i; j++)
        if (q->needs[j].amount && strcmp(q->needs[j].name, n->name) == 0)
            return false;
    for (size_t j = i; j < q->n_needs; j++)
        if (q->needs[j].amount && strcmp(q->needs[j].name, n->name) == 0)
            sum += q->needs[j].amount;
    *ret_sum = sum;
    return true;
}

char *gabi_placement_query_resources(const struct gabi_placement_query *q)
{
    size_t cap = 1, len = 0;
    char *out;

    for (size_t i = 0; i < q->n_needs; i++)
        if (q->needs[i].amount)
            cap += strlen(q->needs[i].name) + 13;
    if (cap == 1 || !(out = malloc(cap)))
        return NULL;
    out[0] = '\0';
    /* one entry per class, amounts summed */
    for (size_t i = 0; i < q->n_needs; i++) {
        const struct gabi_placement_need *n = &q->needs[i];
        uint64_t sum;

        if (!query_class_total(q, i, &sum))
            continue;
        len += (size_t)snprintf(out + len, cap - len, "%s%s:%llu", len ? "," : "", n->name,
                                (unsigned long long)MIN(sum, (uint64_t)INT32_MAX));
    }
    return out;
}

/* ---- Kubernetes labels ------------------------------------------------------------------------
 */

static uint64_t fnv1a(const char *s, uint64_t h)
{
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

int gabi_label_key(const char *trait, char *buf, size_t size)
{
    size_t plen = strlen(GABI_PLACEMENT_PREFIX), n, klen;
    const char *rest;

    if (strncmp(trait, GABI_PLACEMENT_PREFIX, plen) != 0 || !trait[plen])
        return -EINVAL;
    rest = trait + plen;
    n = strlen(rest);
    if (n <= GABI_LABEL_NAME_MAX) {
        if (snprintf(buf, size, "%s%s", GABI_LABEL_PREFIX, rest) >= (int)size)
            return -ENOBUFS;
        for (char *p = buf + strlen(GABI_LABEL_PREFIX); *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        return (int)strlen(buf);
    }
    /* Too long for a label: the kind, '-' (which no short form has) and a 128-bit hash. */
    klen = strcspn(rest, "_");
    if (klen > 16)
        return -EINVAL;
    if (snprintf(buf, size, "%s%.*s-%016llx%016llx", GABI_LABEL_PREFIX, (int)klen, rest,
                 (unsigned long long)fnv1a(trait, 0xcbf29ce484222325ull),
                 (unsigned long long)fnv1a(trait, 0x84222325cbf29ce4ull)) >= (int)size)
        return -ENOBUFS;
    for (char *p = buf + strlen(GABI_LABEL_PREFIX); *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return (int)strlen(buf);
}

static bool alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool gabi_label_key_valid(const char *key)
{
    const char *slash = strchr(key, '/'), *name = slash ? slash + 1 : key;
    size_t n = strlen(name);

    if (slash) {
        size_t plen = (size_t)(slash - key);
        /* DNS subdomain: at most 253, labels of [a-z0-9-] starting and ending alphanumeric */
        if (plen == 0 || plen > 253 || strchr(name, '/'))
            return false;
        for (const char *p = key; p < slash; p++) {
            bool start = p == key || p[-1] == '.', end = p + 1 == slash || p[1] == '.';
            if (*p == '.' ? (start || end)
                          : !((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                              (*p == '-' && !start && !end)))
                return false;
        }
    }
    if (n == 0 || n > GABI_LABEL_NAME_MAX || !alnum(name[0]) || !alnum(name[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!alnum(name[i]) && name[i] != '-' && name[i] != '_' && name[i] != '.')
            return false;
    return true;
}
