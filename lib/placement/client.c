/* SPDX-License-Identifier: MIT */
/* The Placement client: libcurl for HTTP, jansson for JSON, microversion 1.39. */

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <guestabi/placement.h>

#include <guestabi/util.h>
#include "placement/internal.h"

#define MAX_BODY     (64u << 20) /* an answer listing thousands of providers fits */
#define MAX_ATTEMPTS 8           /* read-merge-write rounds against concurrent writers */

struct gabi_placement {
    CURL *curl;
    char *url; /* without a trailing '/' */
    char *token;
    long timeout_ms;
    char curl_error[CURL_ERROR_SIZE];
    struct strv known; /* traits and classes seen to exist: not asked for again */
};

struct body {
    char *buf;
    size_t len, cap;
    bool too_big;
};

static size_t on_data(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct body *b = userdata;
    size_t n = size * nmemb;

    if (b->len + n + 1 > MAX_BODY) {
        b->too_big = true;
        return 0;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = MAX(b->cap * 2, b->len + n + 1);
        char *p = realloc(b->buf, cap);

        if (!p)
            return 0;
        b->buf = p;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, data, n);
    b->len += n;
    b->buf[b->len] = '\0';
    return n;
}

int gabi_placement_new(const struct gabi_placement_conn *conn, struct gabi_placement **ret,
                       struct gabi_error *reterr)
{
    static bool global_done;
    const char *url = conn && conn->url ? conn->url : getenv("OS_PLACEMENT_ENDPOINT");
    const char *token = conn && conn->token ? conn->token : getenv("OS_TOKEN");
    struct gabi_placement *pl;
    size_t n;

    if (!url || !*url)
        return gabi_error_set(reterr, -EINVAL, NULL,
                              "no Placement endpoint: give --url or set OS_PLACEMENT_ENDPOINT");
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return gabi_error_set(reterr, -EINVAL, NULL,
                              "Placement endpoint \"%s\" is not an http:// or https:// URL", url);
    if (!token || !*token)
        return gabi_error_set(reterr, -EINVAL, NULL,
                              "no token for Placement: give --token or set OS_TOKEN");
    if (strlen(url) > 2048 || strlen(token) > 4096 || strpbrk(token, "\r\n"))
        return gabi_error_set(reterr, -EINVAL, NULL, "Placement endpoint or token malformed");
    if (!global_done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return gabi_error_set(reterr, -EIO, NULL, "libcurl failed to initialize");
        global_done = true;
    }
    pl = calloc(1, sizeof(*pl));
    if (!pl || !(pl->url = strdup(url)) || !(pl->token = strdup(token)) ||
        !(pl->curl = curl_easy_init())) {
        gabi_placement_free(pl);
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    }
    n = strlen(pl->url);
    while (n && pl->url[n - 1] == '/')
        pl->url[--n] = '\0';
    pl->timeout_ms = conn && conn->timeout_ms > 0 ? conn->timeout_ms : 30000;
    *ret = pl;
    return 0;
}

struct gabi_placement *gabi_placement_free(struct gabi_placement *pl)
{
    if (!pl)
        return NULL;
    if (pl->curl)
        curl_easy_cleanup(pl->curl);
    free(pl->url);
    free(pl->token);
    strv_free(&pl->known);
    free(pl);
    return NULL;
}

/* Placement's own words from an error body ({"errors": [{"title", "detail", "code"}]}). */
static const char *error_detail(json_t *body, const char **ret_code)
{
    json_t *e = json_array_get(json_object_get(body, "errors"), 0);
    const char *d = json_string_value(json_object_get(e, "detail"));

    if (ret_code)
        *ret_code = json_string_value(json_object_get(e, "code"));
    if (!d)
        d = json_string_value(json_object_get(e, "title"));
    return d ? d : "";
}

/* One request. status and body are returned for every HTTP answer; transport failures (no
 * answer) are errors with a sentence naming the endpoint. */
static int request(struct gabi_placement *pl, const char *method, const char *path, json_t *send,
                   long *ret_status, json_t **ret_body, struct gabi_error *reterr)
{
    _cleanup_free_ char *url = NULL, *auth = NULL, *payload = NULL;
    struct curl_slist *headers = NULL;
    struct body b = {0};
    CURLcode cc;
    long status = 0;
    int r = 0;

    if (asprintf(&url, "%s%s", pl->url, path) < 0 ||
        asprintf(&auth, "x-auth-token: %s", pl->token) < 0) {
        url = auth = NULL;
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    }
    if (send && !(payload = json_dumps(send, JSON_COMPACT)))
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    curl_easy_reset(pl->curl);
    headers = curl_slist_append(headers, auth);
    headers =
        curl_slist_append(headers, "OpenStack-API-Version: placement " GABI_PLACEMENT_MICROVERSION);
    headers = curl_slist_append(headers, "Accept: application/json");
    if (payload)
        headers = curl_slist_append(headers, "Content-Type: application/json");
    if (!headers)
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    pl->curl_error[0] = '\0';
    curl_easy_setopt(pl->curl, CURLOPT_URL, url);
    curl_easy_setopt(pl->curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(pl->curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(pl->curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(pl->curl, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(pl->curl, CURLOPT_ERRORBUFFER, pl->curl_error);
    curl_easy_setopt(pl->curl, CURLOPT_TIMEOUT_MS, pl->timeout_ms);
    curl_easy_setopt(pl->curl, CURLOPT_CONNECTTIMEOUT_MS, pl->timeout_ms);
    curl_easy_setopt(pl->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(pl->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(pl->curl, CURLOPT_USERAGENT, "guestabi");
    if (payload) {
        curl_easy_setopt(pl->curl, CURLOPT_POSTFIELDS, payload);
        curl_easy_setopt(pl->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
    }
    cc = curl_easy_perform(pl->curl);
    curl_slist_free_all(headers);
    if (cc != CURLE_OK) {
        const char *why = pl->curl_error[0] ? pl->curl_error : curl_easy_strerror(cc);

        free(b.buf);
        if (b.too_big)
            return gabi_error_set(reterr, -EFBIG, NULL,
                                  "Placement at %s answered %s %s with more than %u MiB", pl->url,
                                  method, path, MAX_BODY >> 20);
        if (cc == CURLE_OPERATION_TIMEDOUT)
            return gabi_error_set(reterr, -ETIMEDOUT, NULL,
                                  "Placement at %s did not answer %s %s within %ld ms (%s)",
                                  pl->url, method, path, pl->timeout_ms, why);
        if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST)
            return gabi_error_set(reterr, -ECONNREFUSED, NULL,
                                  "cannot reach Placement at %s: %s (is it running? check "
                                  "--url or OS_PLACEMENT_ENDPOINT)",
                                  pl->url, why);
        return gabi_error_set(reterr, -EIO, NULL, "Placement at %s: %s %s failed: %s", pl->url,
                              method, path, why);
    }
    curl_easy_getinfo(pl->curl, CURLINFO_RESPONSE_CODE, &status);
    if (ret_body) {
        *ret_body = NULL;
        if (b.len) {
            json_error_t jerr;

            *ret_body = json_loadb(b.buf, b.len, 0, &jerr);
            if (!*ret_body && status >= 200 && status < 300)
                r = gabi_error_set(reterr, -EPROTO, NULL,
                                   "Placement at %s answered %s %s with malformed JSON: %s",
                                   pl->url, method, path, jerr.text);
        }
    }
    free(b.buf);
    *ret_status = status;
    return r;
}

/* An unexpected status as a sentence: what it means for a person running guestabi. */
static int status_error(struct gabi_placement *pl, const char *method, const char *path,
                        long status, json_t *body, struct gabi_error *reterr)
{
    const char *detail = error_detail(body, NULL);

    switch (status) {
    case 401:
    case 403:
        return gabi_error_set(reterr, -EACCES, NULL,
                              "Placement at %s refused the token (%ld) for %s %s: give a valid "
                              "--token or OS_TOKEN. %s",
                              pl->url, status, method, path, detail);
    case 406:
        return gabi_error_set(reterr, -EPROTONOSUPPORT, NULL,
                              "Placement at %s does not speak microversion %s (406 for %s %s): "
                              "guestabi needs Placement 7.0 (Yoga) or later. %s",
                              pl->url, GABI_PLACEMENT_MICROVERSION, method, path, detail);
    case 409:
        return gabi_error_set(reterr, -EBUSY, NULL, "Placement at %s: conflict (409) on %s %s: %s",
                              pl->url, method, path, detail);
    case 404:
        return gabi_error_set(reterr, -ENOENT, NULL, "Placement at %s: %s %s not found (404): %s",
                              pl->url, method, path, detail);
    default:
        return gabi_error_set(reterr, -EIO, NULL, "Placement at %s answered %s %s with %ld: %s",
                              pl->url, method, path, status, detail);
    }
}

/* A request that must answer one of two statuses. */
static int call(struct gabi_placement *pl, const char *method, const char *path, json_t *send,
                long ok1, long ok2, json_t **ret_body, struct gabi_error *reterr)
{
    json_t *body = NULL;
    long status;
    int r = request(pl, method, path, send, &status, &body, reterr);

    if (r < 0) {
        json_decref(body);
        return r;
    }
    if (status != ok1 && status != ok2) {
        r = status_error(pl, method, path, status, body, reterr);
        json_decref(body);
        return r;
    }
    if (ret_body)
        *ret_body = body;
    else
        json_decref(body);
    return (int)status;
}

static char *escape(struct gabi_placement *pl, const char *s)
{
    char *e = curl_easy_escape(pl->curl, s, 0);
    char *copy = e ? strdup(e) : NULL;

    curl_free(e);
    return copy;
}

static bool ours(const char *name)
{
    return strncmp(name, GABI_PLACEMENT_PREFIX, strlen(GABI_PLACEMENT_PREFIX)) == 0;
}

/* ---- sync -------------------------------------------------------------------------------------
 */

/* Every name in `want` exists in Placement: one listing, then a PUT for each missing one. */
static int ensure_names(struct gabi_placement *pl, const char *collection, char *const *want,
                        size_t n, struct gabi_error *reterr)
{
    _cleanup_free_ char *path = NULL;
    json_t *body = NULL, *list;
    struct strv have = {0};
    size_t i;
    int r;

    for (i = 0; i < n && strv_contains(&pl->known, want[i]); i++)
        ;
    if (i == n)
        return 0;
    if (asprintf(&path, "/%s?name=startswith:%s", collection, GABI_PLACEMENT_PREFIX) < 0) {
        path = NULL;
        return -ENOMEM;
    }
    r = call(pl, "GET", path, NULL, 200, 200, &body, reterr);
    if (r < 0)
        return r;
    list = json_object_get(body, collection);
    for (i = 0; r >= 0 && i < json_array_size(list); i++) {
        json_t *e = json_array_get(list, i);
        const char *s = json_is_string(e) ? json_string_value(e)
                                          : json_string_value(json_object_get(e, "name"));
        if (s)
            r = strv_add(&have, s);
    }
    json_decref(body);
    for (i = 0; r >= 0 && i < n; i++) {
        char p[GABI_PLACEMENT_NAME_MAX + 64];

        if (strv_contains(&have, want[i]))
            continue;
        snprintf(p, sizeof(p), "/%s/%s", collection, want[i]);
        r = call(pl, "PUT", p, NULL, 201, 204, NULL, reterr);
    }
    /* remember them (bounded: a long-lived caller's memory stays small) */
    for (i = 0; r >= 0 && i < n && pl->known.n < 4 * GABI_PLACEMENT_MAX_TRAITS; i++)
        if (!strv_contains(&pl->known, want[i]))
            r = strv_add(&pl->known, want[i]);
    strv_free(&have);
    return r < 0 ? r : 0;
}

/* The provider named `name`: its uuid, created when missing (a concurrent creation is found). */
/* *ret_fresh is the generation of a provider created here (it has no traits, no inventory),
 * else -1. */
static int find_provider(struct gabi_placement *pl, const char *name, bool create, char *uuid,
                         json_int_t *ret_fresh, struct gabi_error *reterr)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        _cleanup_free_ char *esc = escape(pl, name), *path = NULL;
        json_t *body = NULL, *rp, *req;
        const char *u;
        long status = 0;
        int r;

        if (!esc || asprintf(&path, "/resource_providers?name=%s", esc) < 0) {
            path = NULL;
            return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
        }
        r = call(pl, "GET", path, NULL, 200, 200, &body, reterr);
        if (r < 0)
            return r;
        rp = json_array_get(json_object_get(body, "resource_providers"), 0);
        u = json_string_value(json_object_get(rp, "uuid"));
        if (u) {
            gabi_strlcpy(uuid, u, 40);
            *ret_fresh = -1;
            json_decref(body);
            return 0;
        }
        json_decref(body);
        if (!create)
            return gabi_error_set(reterr, -ENOENT, NULL,
                                  "Placement at %s has no resource provider named \"%s\"", pl->url,
                                  name);
        req = json_pack("{s:s}", "name", name);
        body = NULL;
        r = request(pl, "POST", "/resource_providers", req, &status, &body, reterr);
        json_decref(req);
        if (r >= 0 && status != 200 && status != 409)
            r = status_error(pl, "POST", "/resource_providers", status, body, reterr);
        if (r < 0) {
            json_decref(body);
            return r;
        }
        u = json_string_value(json_object_get(body, "uuid"));
        if (status == 200 && u) {
            gabi_strlcpy(uuid, u, 40);
            *ret_fresh = json_integer_value(json_object_get(body, "generation"));
            json_decref(body);
            return 0;
        }
        /* 409: someone created it meanwhile; look again */
        json_decref(body);
    }
    return gabi_error_set(reterr, -EIO, NULL,
                          "Placement at %s: cannot create or find resource provider \"%s\"",
                          pl->url, name);
}

/* Is a 409 the generation conflict (retry) rather than another refusal? */
static bool is_generation_conflict(json_t *body)
{
    const char *code = NULL;

    error_detail(body, &code);
    return !code || strcmp(code, "placement.concurrent_update") == 0;
}

/* *fresh: the generation of a provider known to be empty (its state need not be read), or -1;
 * on return the generation after our write when the provider was fresh, else -1. */
/* Write with the generation read: 0 written (*ret_body holds the answer), 1 when a concurrent
 * writer came first (re-read and try again), or -errno. */
static int put_generation(struct gabi_placement *pl, const char *path, json_t *req,
                          struct gabi_placement_sync_result *res, json_t **ret_body,
                          struct gabi_error *reterr)
{
    json_t *body = NULL;
    long status;
    int r = request(pl, "PUT", path, req, &status, &body, reterr);

    json_decref(req);
    if (r >= 0 && status == 200) {
        *ret_body = body;
        return 0;
    }
    if (r >= 0 && status == 409 && is_generation_conflict(body)) {
        res->n_conflicts++;
        json_decref(body);
        return 1;
    }
    if (r >= 0)
        r = status_error(pl, "PUT", path, status, body, reterr);
    json_decref(body);
    return r;
}

/* What guestabi wants of a provider's traits: the current ones that are not guestabi's, and
 * the host's; *changed when that differs from cur (counted in res). */
static json_t *merge_traits(const struct gabi_placement_host *host, json_t *cur,
                            struct gabi_placement_sync_result *res, bool *changed)
{
    json_t *next = json_array();
    size_t added = 0, removed = 0, kept = 0;

    for (size_t i = 0; i < json_array_size(cur); i++) {
        const char *t = json_string_value(json_array_get(cur, i));
        bool wanted = false;

        if (!t)
            continue;
        for (size_t j = 0; j < host->n_traits && !wanted; j++)
            wanted = strcmp(host->traits[j], t) == 0;
        if (!ours(t)) {
            kept++;
            json_array_append_new(next, json_string(t));
        } else if (!wanted) {
            removed++;
        }
    }
    for (size_t j = 0; j < host->n_traits; j++) {
        bool have = false;

        for (size_t i = 0; i < json_array_size(cur) && !have; i++)
            have = strcmp(json_string_value(json_array_get(cur, i)) ?: "", host->traits[j]) == 0;
        added += !have;
        json_array_append_new(next, json_string(host->traits[j]));
    }
    res->n_kept = kept;
    res->n_added = added;
    res->n_removed = removed;
    *changed = added || removed;
    return next;
}

static bool inventory_same(json_t *cur, const struct gabi_placement_inventory *inv)
{
    return cur && json_integer_value(json_object_get(cur, "total")) == (json_int_t)inv->total &&
           json_integer_value(json_object_get(cur, "reserved")) == (json_int_t)inv->reserved &&
           json_integer_value(json_object_get(cur, "max_unit")) == (json_int_t)inv->total;
}

/* The same for inventories: the classes that are not guestabi's as they are, the host's. */
static json_t *merge_inventory(const struct gabi_placement_host *host, json_t *cur,
                               struct gabi_placement_sync_result *res, bool *changed)
{
    json_t *next = json_object(), *v;
    const char *rc;

    *changed = false;
    json_object_foreach (cur, rc, v) {
        bool wanted = false;

        for (size_t j = 0; j < host->n_inventory && !wanted; j++)
            wanted = strcmp(host->inventory[j].resource_class, rc) == 0;
        if (!ours(rc))
            json_object_set(next, rc, v); /* as it is: not ours */
        else if (!wanted)
            *changed = true;
    }
    for (size_t j = 0; j < host->n_inventory; j++) {
        const struct gabi_placement_inventory *inv = &host->inventory[j];

        *changed |= !inventory_same(json_object_get(cur, inv->resource_class), inv);
        json_object_set_new(next, inv->resource_class,
                            json_pack("{s:i, s:i, s:i, s:i, s:i, s:f}", "total", inv->total,
                                      "reserved", inv->reserved, "min_unit", 1, "max_unit",
                                      inv->total, "step_size", 1, "allocation_ratio", 1.0));
    }
    res->inventory_set = *changed;
    return next;
}

/* One of a provider's collections ("traits", "inventories") made what merge says, leaving
 * what is not guestabi's as it is: read it (a fresh provider's is empty: not read), merge,
 * write with the generation read, and again from the read when a concurrent writer came
 * first. *fresh: the generation of a provider known to be empty, or -1; on return the
 * generation after our write when it was fresh (the next collection need not be read), else
 * -1. */
static int sync_collection(struct gabi_placement *pl, const struct gabi_placement_host *host,
                           const char *uuid, const char *key,
                           json_t *(*merge)(const struct gabi_placement_host *host, json_t *cur,
                                            struct gabi_placement_sync_result *res, bool *changed),
                           struct gabi_placement_sync_result *res, json_int_t *fresh,
                           struct gabi_error *reterr)
{
    char path[128];

    snprintf(path, sizeof(path), "/resource_providers/%s/%s", uuid, key);
    for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        json_t *body = NULL, *next, *req;
        bool changed;
        json_int_t gen;
        int r = 0;

        if (*fresh >= 0)
            body = json_pack("{s:o, s:I}", key,
                             strcmp(key, "traits") == 0 ? json_array() : json_object(),
                             "resource_provider_generation", *fresh);
        else
            r = call(pl, "GET", path, NULL, 200, 200, &body, reterr);
        *fresh = -1;
        if (r < 0 || !body)
            return r < 0 ? r : -ENOMEM;
        gen = json_integer_value(json_object_get(body, "resource_provider_generation"));
        next = merge(host, json_object_get(body, key), res, &changed);
        json_decref(body);
        res->generation = gen;
        if (!changed) {
            json_decref(next);
            return 0;
        }
        req = json_pack("{s:I, s:o}", "resource_provider_generation", gen, key, next);
        r = put_generation(pl, path, req, res, &body, reterr);
        if (r == 1)
            continue;
        if (r < 0)
            return r;
        res->generation = json_integer_value(json_object_get(body, "resource_provider_generation"));
        if (res->created) /* the provider is still ours alone: its next generation */
            *fresh = res->generation;
        json_decref(body);
        return 0;
    }
    return gabi_error_set(reterr, -EBUSY, NULL,
                          "Placement at %s: provider %s changed under every one of %d attempts "
                          "to set its %s; they were left as they were",
                          pl->url, host->name, MAX_ATTEMPTS, key);
}

int gabi_placement_sync(struct gabi_placement *pl, const struct gabi_placement_host *host,
                        struct gabi_placement_sync_result *ret, struct gabi_error *reterr)
{
    struct gabi_placement_sync_result res = {0};
    json_int_t fresh = -1;
    char **classes = calloc(host->n_inventory + 1, sizeof(*classes));
    int r;

    if (!classes)
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    for (size_t i = 0; i < host->n_inventory; i++)
        classes[i] = host->inventory[i].resource_class;
    r = ensure_names(pl, "traits", host->traits, host->n_traits, reterr);
    if (r >= 0)
        r = ensure_names(pl, "resource_classes", classes, host->n_inventory, reterr);
    free(classes);
    if (r >= 0)
        r = find_provider(pl, host->name, true, res.uuid, &fresh, reterr);
    res.created = fresh >= 0;
    if (r >= 0)
        r = sync_collection(pl, host, res.uuid, "traits", merge_traits, &res, &fresh, reterr);
    if (r >= 0)
        r = sync_collection(pl, host, res.uuid, "inventories", merge_inventory, &res, &fresh,
                            reterr);
    if (r < 0) {
        if (r == -ENOMEM)
            gabi_error_set(reterr, r, NULL, "out of memory");
        gabi_error_prefix_where(reterr, host->name);
        return r;
    }
    if (ret)
        *ret = res;
    return 0;
}

int gabi_placement_sync_hostcaps(const struct gabi_catalog *cat, const struct gabi_hostcaps *h,
                                 const struct gabi_placement_conn *conn,
                                 struct gabi_placement_sync_result *ret, struct gabi_error *reterr)
{
    struct gabi_placement_host *ph = NULL;
    struct gabi_placement *pl = NULL;
    int r = gabi_placement_host_from_hostcaps(cat, h, &ph, reterr);

    if (r >= 0)
        r = gabi_placement_new(conn, &pl, reterr);
    if (r >= 0)
        r = gabi_placement_sync(pl, ph, ret, reterr);
    gabi_placement_free(pl);
    gabi_placement_host_free(ph);
    return r;
}

/* ---- queries ----------------------------------------------------------------------------------
 */

/* Whether every trait and custom resource class the query names exists: one that does not is
 * one no provider has (Placement would answer 400). */
static int names_exist(struct gabi_placement *pl, const struct gabi_placement_query *q,
                       struct gabi_error *reterr)
{
    _cleanup_free_ char *path = NULL;
    struct strv want = {0};
    json_t *body = NULL;
    size_t len = 17;
    int r = 0;

    for (size_t i = 0; i < q->n_needs; i++) {
        const struct gabi_placement_need *n = &q->needs[i];
        char p[GABI_PLACEMENT_NAME_MAX + 64];

        if (n->amount && strncmp(n->name, "CUSTOM_", 7) == 0) {
            snprintf(p, sizeof(p), "/resource_classes/%s", n->name);
            r = call(pl, "GET", p, NULL, 200, 404, NULL, reterr);
            if (r == 404 || r < 0)
                goto done;
        } else if (!n->amount && !n->forbidden && !strv_contains(&want, n->name)) {
            r = strv_add(&want, n->name);
            if (r < 0)
                goto done;
            len += strlen(n->name) + 1;
        }
    }
    r = 1;
    if (!want.n)
        goto done;
    path = malloc(len);
    if (!path) {
        r = -ENOMEM;
        goto done;
    }
    strcpy(path, "/traits?name=in:");
    for (size_t i = 0; i < want.n; i++) {
        if (i)
            strcat(path, ",");
        strcat(path, want.v[i]);
    }
    r = call(pl, "GET", path, NULL, 200, 200, &body, reterr);
    if (r >= 0)
        r = json_array_size(json_object_get(body, "traits")) >= want.n ? 1 : 0;
    json_decref(body);
done:
    strv_free(&want);
    return r == 404 ? 0 : r;
}

int gabi_placement_hosts(struct gabi_placement *pl, const struct gabi_placement_query *q,
                         char ***ret, size_t *ret_n, struct gabi_error *reterr)
{
    _cleanup_free_ char *required = gabi_placement_query_required(q);
    _cleanup_free_ char *resources = gabi_placement_query_resources(q);
    _cleanup_free_ char *path = NULL;
    struct strv names = {0}, uuids = {0};
    json_t *body = NULL, *rps;
    int r;

    if (!required) /* the query always holds GABI_PLACEMENT_HOST_TRAIT */
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    r = names_exist(pl, q, reterr);
    if (r <= 0) {
        if (r == 0) {
            *ret = NULL;
            *ret_n = 0;
        }
        return r;
    }
    if (resources) {
        /* candidates name providers by uuid only: collect them, then name them below */
        if (asprintf(&path, "/allocation_candidates?resources=%s&required=%s", resources,
                     required) < 0) {
            path = NULL;
            return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
        }
        r = call(pl, "GET", path, NULL, 200, 200, &body, reterr);
        if (r < 0)
            return r;
        {
            json_t *summaries = json_object_get(body, "provider_summaries"), *v;
            const char *u;

            json_object_foreach (summaries, u, v) {
                if (strv_add(&uuids, u) < 0) {
                    json_decref(body);
                    strv_free(&uuids);
                    return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
                }
            }
        }
        json_decref(body);
        free(path);
    }
    if (asprintf(&path, "/resource_providers?required=%s", required) < 0) {
        path = NULL;
        strv_free(&uuids);
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    }
    r = call(pl, "GET", path, NULL, 200, 200, &body, reterr);
    if (r < 0) {
        strv_free(&uuids);
        return r;
    }
    rps = json_object_get(body, "resource_providers");
    for (size_t i = 0; r >= 0 && i < json_array_size(rps); i++) {
        json_t *rp = json_array_get(rps, i);
        const char *name = json_string_value(json_object_get(rp, "name"));
        const char *u = json_string_value(json_object_get(rp, "uuid"));

        if (name && u && (!resources || strv_contains(&uuids, u)))
            r = strv_add(&names, name);
    }
    json_decref(body);
    strv_free(&uuids);
    if (r < 0) {
        strv_free(&names);
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    }
    strv_sort_unique(&names);
    *ret = names.v;
    *ret_n = names.n;
    return 0;
}

struct gabi_placement_provider *gabi_placement_provider_free(struct gabi_placement_provider *p)
{
    if (!p)
        return NULL;
    strv_free_array(p->traits, p->n_traits);
    strv_free_array(p->classes, p->n_classes);
    free(p->free);
    free(p);
    return NULL;
}

int gabi_placement_provider_get(struct gabi_placement *pl, const char *name,
                                struct gabi_placement_provider **ret, struct gabi_error *reterr)
{
    struct gabi_placement_provider *p = calloc(1, sizeof(*p));
    struct strv traits = {0}, classes = {0};
    json_t *tb = NULL, *ib = NULL, *ub = NULL, *inv, *v;
    const char *rc;
    char path[128];
    json_int_t fresh;
    int r;

    if (!p)
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    r = find_provider(pl, name, false, p->uuid, &fresh, reterr);
    snprintf(path, sizeof(path), "/resource_providers/%s/traits", p->uuid);
    if (r >= 0)
        r = call(pl, "GET", path, NULL, 200, 200, &tb, reterr);
    snprintf(path, sizeof(path), "/resource_providers/%s/inventories", p->uuid);
    if (r >= 0)
        r = call(pl, "GET", path, NULL, 200, 200, &ib, reterr);
    snprintf(path, sizeof(path), "/resource_providers/%s/usages", p->uuid);
    if (r >= 0)
        r = call(pl, "GET", path, NULL, 200, 200, &ub, reterr);
    for (size_t i = 0; r >= 0 && i < json_array_size(json_object_get(tb, "traits")); i++) {
        const char *t = json_string_value(json_array_get(json_object_get(tb, "traits"), i));
        if (t)
            r = strv_add(&traits, t);
    }
    inv = json_object_get(ib, "inventories");
    p->free = calloc(json_object_size(inv) + 1, sizeof(*p->free));
    if (r >= 0 && !p->free)
        r = -ENOMEM;
    json_object_foreach (inv, rc, v) {
        json_int_t total = json_integer_value(json_object_get(v, "total"));
        json_int_t reserved = json_integer_value(json_object_get(v, "reserved"));
        double ratio = json_number_value(json_object_get(v, "allocation_ratio"));
        json_int_t used = json_integer_value(json_object_get(json_object_get(ub, "usages"), rc));

        if (r < 0)
            break;
        p->free[classes.n] = (int64_t)((double)(total - reserved) * ratio) - used;
        r = strv_add(&classes, rc);
    }
    json_decref(tb);
    json_decref(ib);
    json_decref(ub);
    p->traits = traits.v;
    p->n_traits = traits.n;
    p->classes = classes.v;
    p->n_classes = classes.n;
    if (r < 0) {
        gabi_placement_provider_free(p);
        if (r == -ENOMEM)
            gabi_error_set(reterr, r, NULL, "out of memory");
        return r;
    }
    *ret = p;
    return 0;
}
