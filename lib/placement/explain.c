/* SPDX-License-Identifier: MIT */
/* Why a provider cannot take a pin's query, in the words `guestabi check` uses. No I/O. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <guestabi/placement.h>

#include <guestabi/util.h>
#include "placement/internal.h"

static bool has(char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

/* What the provider publishes of one kind, decoded: "linux-4.13, linux-4.14" (malloc'd). */
static char *published(const struct gabi_placement_provider *p, enum gabi_placement_kind kind)
{
    size_t cap = 64, len = 0;
    char *out = malloc(cap);

    if (!out)
        return NULL;
    out[0] = '\0';
    for (size_t i = 0; i < p->n_traits; i++) {
        char name[GABI_PLACEMENT_NAME_MAX + 1], version[GABI_PLACEMENT_NAME_MAX + 1];
        enum gabi_placement_kind k;
        size_t need;

        if (gabi_placement_name_decode(p->traits[i], &k, name, version, sizeof(name)) < 0 ||
            k != kind)
            continue;
        need = len + strlen(name) + strlen(version) + 4;
        if (need > cap) {
            char *n = realloc(out, need * 2);
            if (!n) {
                free(out);
                return NULL;
            }
            out = n;
            cap = need * 2;
        }
        len += (size_t)snprintf(out + len, cap - len, "%s%s%s%s", len ? ", " : "", name,
                                *version ? " " : "", version);
    }
    if (!len) {
        free(out);
        return strdup("none");
    }
    return out;
}

static int reason(struct strv *sv, const struct gabi_placement_need *n,
                  const struct gabi_placement_provider *p, const char *host)
{
    _cleanup_free_ char *pub = NULL;
    char *line = NULL;
    int r = -1;

    if (n->amount) {
        int64_t left = 0;
        bool found = false;

        for (size_t i = 0; i < p->n_classes; i++)
            if (strcmp(p->classes[i], n->name) == 0) {
                left = p->free[i];
                found = true;
            }
        if (strcmp(n->key, "failover") == 0)
            r = asprintf(&line,
                         "failover: failover standby %s needs a free %s virtual function; host %s "
                         "has %lld free (%s)",
                         n->device, n->wanted, host, (long long)left, n->name);
        else
            r = asprintf(&line, "resources: %u %s asked; host %s has %s%lld free", n->amount,
                         n->name, host, found ? "" : "no inventory of it, ", (long long)left);
    } else if (strcmp(n->key, "platform") == 0) {
        pub = published(p, GABI_PLACEMENT_PLATFORM);
        r = asprintf(&line,
                     "platform: host %s does not list platform %s among those it runs (%s) "
                     "[trait %s]",
                     host, n->wanted, pub ? pub : "?", n->name);
    } else if (strcmp(n->key, "mode") == 0) {
        pub = published(p, GABI_PLACEMENT_MODE);
        r = asprintf(&line,
                     "mode: device %s is pinned to mode %s, which no back-end on host %s runs "
                     "(they run: %s) [trait %s]",
                     n->device, n->wanted, host, pub ? pub : "?", n->name);
    } else if (strcmp(n->key, "state_version") == 0) {
        pub = published(p, GABI_PLACEMENT_STATE);
        r = asprintf(&line,
                     "state_version: device %s needs %s loaded; host %s loads %s (a type with no "
                     "free instance loads nothing) [trait %s]",
                     n->device, n->wanted, host, pub ? pub : "?", n->name);
    } else if (strcmp(n->key, "host") == 0) {
        r = asprintf(&line,
                     "host: host %s was never published by guestabi (no trait %s): run "
                     "`guestabi placement sync` there",
                     host, n->name);
    } else {
        r = asprintf(&line, "%s: host %s %s trait %s", n->key, host,
                     n->forbidden ? "has the forbidden" : "lacks", n->name);
    }
    if (r < 0)
        return -ENOMEM;
    return strv_take(sv, line);
}

int gabi_placement_explain(const struct gabi_placement_query *q,
                           const struct gabi_placement_provider *p, const char *host, char ***ret,
                           size_t *ret_n)
{
    struct strv sv = {0};

    for (size_t i = 0; i < q->n_needs; i++) {
        const struct gabi_placement_need *n = &q->needs[i];
        bool unmet;
        int r;

        if (n->amount) {
            uint64_t sum = 0;
            int64_t left = 0;

            if (!query_class_total(q, i, &sum))
                continue;
            for (size_t j = 0; j < p->n_classes; j++)
                if (strcmp(p->classes[j], n->name) == 0)
                    left = p->free[j];
            unmet = left < (int64_t)sum;
        } else {
            unmet = has(p->traits, p->n_traits, n->name) == n->forbidden;
        }
        if (!unmet)
            continue;
        r = reason(&sv, n, p, host);
        if (r < 0) {
            strv_free(&sv);
            return r;
        }
    }
    *ret = sv.v;
    *ret_n = sv.n;
    return (int)sv.n;
}
