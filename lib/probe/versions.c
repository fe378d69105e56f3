/* SPDX-License-Identifier: MIT */
/* The migration_versions attribute: guestabi's proposal for drivers to publish the
 * device-state versions an mdev type loads (docs/probe.md). */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "probe/internal.h"

#define VERSION_MAX GABI_MAX_VERSION

struct versions_block {
    struct gabi_probe_versions pub; /* first: free(&pub) frees the block */
    const char *loads[GABI_MAX_VERSIONS];
    const char *writes[GABI_MAX_VERSIONS];
    char text[];
};

struct vparse {
    const char *origin;
    unsigned line;
    struct gabi_error *reterr;
};

static int verr(const struct vparse *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int verr(const struct vparse *v, const char *fmt, ...)
{
    char where[GABI_ERROR_WHERE_MAX], msg[GABI_ERROR_MESSAGE_MAX];
    va_list ap;

    if (v->line)
        snprintf(where, sizeof(where), "%s:%u", v->origin, v->line);
    else
        snprintf(where, sizeof(where), "%s", v->origin);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return gabi_error_set(v->reterr, -EINVAL, where, "%s", msg);
}

/* Append version `s` to list (n entries), refusing bad and repeated ones. */
static int add_version(const struct vparse *v, const char **list, size_t *n, const char *s,
                       const char *what)
{
    char shown[VERSION_MAX + 8], why[GABI_ERROR_MESSAGE_MAX];

    snprintf(shown, sizeof(shown), "%.*s%s", (int)VERSION_MAX, s,
             strlen(s) > VERSION_MAX ? "..." : "");
    /* the rule every document kind follows (gabi_version_check) */
    if (gabi_version_check(s, why, sizeof(why)) < 0)
        return verr(v, "\"%s\" is not a version: %s", shown, why);
    for (size_t i = 0; i < *n; i++)
        if (strcmp(list[i], s) == 0)
            return verr(v, "version \"%s\" is listed twice in %s", s, what);
    if (*n >= GABI_MAX_VERSIONS)
        return verr(v, "more than %u versions in %s", GABI_MAX_VERSIONS, what);
    list[(*n)++] = s;
    return 0;
}

int gabi_probe_versions_parse(const char *origin, const char *buf, size_t size,
                              struct gabi_probe_versions **ret, struct gabi_error *reterr)
{
    struct vparse v = {.origin = origin ? origin : "migration_versions", .reterr = reterr};
    _cleanup_free_ struct versions_block *b = NULL;
    const char *version = NULL, *minimum = NULL;
    size_t n_list = 0, n_writes = 0;
    bool has_writes = false;
    char *line, *next;
    int r;

    if (size > GABI_PROBE_MAX_ATTR)
        return verr(&v, "%zu bytes, larger than %u: refused", size, GABI_PROBE_MAX_ATTR);
    if (memchr(buf, '\0', size))
        return verr(&v, "holds a NUL byte: refused");
    b = calloc(1, sizeof(*b) + size + 1);
    if (!b)
        return -ENOMEM;
    memcpy(b->text, buf, size);
    b->text[size] = '\0';

    for (line = b->text; line; line = next) {
        char *tok[GABI_MAX_VERSIONS + 2];
        size_t n_tok = 0;
        char *s, *save = NULL;

        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        v.line++;
        for (s = line; *s; s++) {
            unsigned char c = (unsigned char)*s;
            if ((c < 0x20 && c != '\t') || c >= 0x7f)
                return verr(&v, "byte 0x%02x is not printable ASCII", c);
        }
        for (s = strtok_r(line, " \t", &save); s; s = strtok_r(NULL, " \t", &save)) {
            if (n_tok >= ARRAY_SIZE(tok))
                return verr(&v, "too many words on one line (at most %zu)", ARRAY_SIZE(tok));
            tok[n_tok++] = s;
        }
        if (n_tok == 0 || tok[0][0] == '#')
            continue;
        if (n_tok == 1 && (strcmp(tok[0], "version") == 0 || strcmp(tok[0], "minimum") == 0 ||
                           strcmp(tok[0], "writes") == 0))
            return verr(&v, "\"%s\" needs a value", tok[0]);
        if (n_tok == 1) {
            if (version || minimum)
                return verr(&v,
                            "a version list line (\"%s\") after \"version\"/\"minimum\" lines: a "
                            "file uses one form",
                            tok[0]);
            if ((r = add_version(&v, b->loads, &n_list, tok[0], "the list")) < 0)
                return r;
        } else if (strcmp(tok[0], "version") == 0 || strcmp(tok[0], "minimum") == 0) {
            const char **slot = tok[0][0] == 'v' ? &version : &minimum;
            size_t one = 0;
            const char *tmp[1];

            if (n_list)
                return verr(&v, "a \"%s\" line after a version list: a file uses one form", tok[0]);
            if (n_tok != 2)
                return verr(&v, "\"%s\" takes exactly one version", tok[0]);
            if (*slot)
                return verr(&v, "\"%s\" is given twice", tok[0]);
            if ((r = add_version(&v, tmp, &one, tok[1], tok[0])) < 0)
                return r;
            *slot = tok[1];
        } else if (strcmp(tok[0], "writes") == 0) {
            if (has_writes)
                return verr(&v, "\"writes\" is given twice");
            has_writes = true;
            for (size_t i = 1; i < n_tok; i++)
                if ((r = add_version(&v, b->writes, &n_writes, tok[i], "\"writes\"")) < 0)
                    return r;
        } else {
            return verr(&v,
                        "\"%s\" followed by %zu more word%s is neither a version (one per "
                        "line) nor a known key (\"version V\", \"minimum M\", \"writes V...\")",
                        tok[0], n_tok - 1, n_tok == 2 ? "" : "s");
        }
    }
    v.line = 0;
    if (version || minimum) {
        if (!version || !minimum)
            return verr(&v, "\"%s\" without \"%s\": the range form needs both",
                        version ? "version" : "minimum", version ? "minimum" : "version");
        if (gabi_version_compare(minimum, version) > 0)
            return verr(&v, "minimum \"%s\" is newer than version \"%s\"", minimum, version);
        b->pub.loads.version = version;
        b->pub.loads.minimum = minimum;
    } else if (n_list) {
        b->pub.loads.n = n_list;
        b->pub.loads.list = b->loads;
    } else {
        return verr(&v, "no versions: one version per line, or \"version V\" and \"minimum M\"");
    }
    if (has_writes) {
        for (size_t i = 0; i < n_writes; i++)
            if (!gabi_versions_accepts(&b->pub.loads, b->writes[i]))
                return verr(&v, "\"writes\" names %s, which the type does not load", b->writes[i]);
    } else {
        b->writes[0] = version ? version : b->loads[0];
        n_writes = 1;
    }
    b->pub.writes.n = n_writes;
    b->pub.writes.list = b->writes;
    *ret = &TAKE_PTR(b)->pub;
    return 0;
}
