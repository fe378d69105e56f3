/* SPDX-License-Identifier: MIT */
/* Human-readable output shared by the commands. */

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

const char *cli_short_feature(const char *name)
{
    static const char *const prefixes[] = {
        "VIRTIO_NET_F_",          "VIRTIO_BLK_F_", "VIRTIO_RING_F_", "VIRTIO_F_",
        "VHOST_USER_PROTOCOL_F_", "VHOST_USER_F_", "VHOST_F_",
    };

    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        size_t len = strlen(prefixes[i]);
        if (strncmp(name, prefixes[i], len) == 0)
            return name + len;
    }
    return name;
}

/* Words after a label, wrapped at 100 columns with a hanging indent. */
static void print_words(FILE *f, const char *label, const char *const *words, size_t n)
{
    size_t col = (size_t)fprintf(f, "    %-10s", label);

    if (n == 0)
        fputs(" none", f);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(words[i]) + 1;
        if (col + len > 100) {
            fprintf(f, "\n    %-10s", "");
            col = 14;
        }
        fprintf(f, " %s", words[i]);
        col += len;
    }
    fputc('\n', f);
}

/* The set bits of mask by name (bitN for unnamed ones), after a label. */
static void print_bits(FILE *f, const char *label, uint64_t mask,
                       const char *(*name_of)(unsigned bit, const void *ctx), const void *ctx)
{
    const char *words[64];
    char unnamed[64][8];
    size_t n = 0;

    for (unsigned b = 0; b < 64; b++) {
        const char *name;

        if (!(mask & (1ull << b)))
            continue;
        name = name_of(b, ctx);
        if (name) {
            words[n] = cli_short_feature(name);
        } else {
            snprintf(unnamed[n], sizeof(unnamed[n]), "bit%u", b);
            words[n] = unnamed[n];
        }
        n++;
    }
    print_words(f, label, words, n);
}

static const char *feature_name_of(unsigned bit, const void *ctx)
{
    return gabi_feature_name(*(const enum gabi_device_class *)ctx, bit);
}

static const char *protocol_feature_name_of(unsigned bit, const void *ctx)
{
    (void)ctx;
    return gabi_protocol_feature_name(bit);
}

void cli_print_features(FILE *f, const char *label, enum gabi_device_class cls, uint64_t mask)
{
    print_bits(f, label, mask, feature_name_of, &cls);
}

void cli_print_protocol_features(FILE *f, const char *label, uint64_t mask)
{
    print_bits(f, label, mask, protocol_feature_name_of, NULL);
}

void cli_print_versions(FILE *f, const struct gabi_versions *vs)
{
    if (vs->version) {
        fprintf(f, "%s down to %s", vs->version, vs->minimum);
        return;
    }
    fputc('[', f);
    for (size_t i = 0; i < vs->n; i++)
        fprintf(f, "%s%s", i ? " " : "", vs->list[i]);
    fputc(']', f);
}

void cli_print_verdict(FILE *f, const struct gabi_verdict *v)
{
    for (size_t i = 0; i < gabi_verdict_n_choices(v); i++) {
        const struct gabi_choice *c = gabi_verdict_choice(v, i);
        char label[160];

        if (!c->subject[0] || strcmp(c->subject, c->key) == 0)
            snprintf(label, sizeof(label), "%s", c->key);
        else
            snprintf(label, sizeof(label), "%s %s", c->subject, c->key);
        fprintf(f, "  %-34s %s\n", label, c->value ? c->value : "(none in common)");
    }
    for (size_t i = 0; i < gabi_verdict_n_reasons(v); i++) {
        const struct gabi_reason *r = gabi_verdict_reason(v, i);

        if (r->device[0])
            fprintf(f, "  - [%s %s] %s\n", r->device, r->key, r->message);
        else
            fprintf(f, "  - [%s] %s\n", r->key, r->message);
    }
}

json_t *cli_platforms_json(const struct gabi_catalog *cat, const struct gabi_hostcaps *h,
                           const struct gabi_platform *const *ps, size_t n)
{
    const struct gabi_platform *def = gabi_hostcaps_default_platform(h);
    char *text = gabi_platforms_to_json(cat, ps, n);
    json_t *root, *arr, *v;
    size_t i;

    if (!text)
        return NULL;
    root = json_loads(text, 0, NULL);
    free(text);
    if (!root)
        return NULL;
    json_object_set_new(root, "host", json_string(gabi_hostcaps_host(h)));
    json_object_set_new(root, "kernel",
                        gabi_hostcaps_kernel(h) ? json_string(gabi_hostcaps_kernel(h))
                                                : json_null());
    json_object_set_new(root, "default", def ? json_string(def->name) : json_null());
    arr = json_object_get(root, "platforms");
    json_array_foreach (arr, i, v)
        json_object_set_new(v, "default", json_boolean(ps[i] == def));
    return root;
}

int cli_print_json(char *text)
{
    if (!text)
        return EXIT_BAD_INPUT;
    fputs(text, stdout);
    fputc('\n', stdout);
    free(text);
    return 0;
}
