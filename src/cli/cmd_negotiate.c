/* SPDX-License-Identifier: MIT */
/*
 * guestabi negotiate: act as a vhost-user front-end towards a back-end's socket and ask for a
 * given ABI (features, protocol features, queue pairs, ring size), the way a VM's QEMU would.
 * Prints what the back-end offers, every difference between the request and the offer, and
 * the back-end's own answer to the request. Starts no ring and maps no memory.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <guestabi/vhost_client.h>

#include "cli.h"
#include <guestabi/util.h>

struct negotiate_opts {
    const char *socket;
    const char *mode;
    const char *features;
    const char *protocol_features;
    uint32_t queue_pairs;
    uint32_t ring_size;
    int cls;
};

static int negotiate_opt(struct cli *cli, int opt, const char *arg, void *userdata)
{
    struct negotiate_opts *o = userdata;

    switch (opt) {
    case 's':
        o->socket = arg;
        return 0;
    case 'm':
        o->mode = arg;
        return 0;
    case 'f':
        o->features = arg;
        return 0;
    case 'p':
        o->protocol_features = arg;
        return 0;
    case 'q':
        return cli_parse_number(cli, &cli_cmd_negotiate, "--queue-pairs", arg, 1, 0x8000,
                                &o->queue_pairs);
    case 'r':
        return cli_parse_number(cli, &cli_cmd_negotiate, "--ring-size", arg, 1, 32768,
                                &o->ring_size);
    case 'C':
        o->cls = gabi_class_from_name(arg);
        if (o->cls < 0 || !gabi_class_is_virtio(o->cls)) {
            cli_errorf(cli, "--class \"%s\": virtio-net or virtio-blk", arg);
            return -1;
        }
        return 0;
    }
    return -1;
}

static const struct option negotiate_options[] = {
    {"socket", required_argument, NULL, 's'},
    {"mode", required_argument, NULL, 'm'},
    {"features", required_argument, NULL, 'f'},
    {"protocol-features", required_argument, NULL, 'p'},
    {"queue-pairs", required_argument, NULL, 'q'},
    {"ring-size", required_argument, NULL, 'r'},
    {"class", required_argument, NULL, 'C'},
    {NULL, 0, NULL, 0},
};

/* A comma-separated list of spec names (short names accepted: "EVENT_IDX"). */
static int parse_names(struct cli *cli, const char *what, const char *list,
                       enum gabi_device_class cls, bool protocol, uint64_t *ret)
{
    static const char *const prefixes[] = {
        "",         "VIRTIO_NET_F_", "VIRTIO_BLK_F_", "VIRTIO_F_", "VIRTIO_RING_F_",
        "VHOST_F_", "VHOST_USER_F_"};
    char *copy = strdup(list), *save = NULL;
    uint64_t mask = 0;
    int r = 0;

    if (!copy)
        return -ENOMEM;
    for (char *tok = strtok_r(copy, ", ", &save); tok && r == 0;
         tok = strtok_r(NULL, ", ", &save)) {
        unsigned bit = 0;
        bool found = false;

        for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]) && !found; i++) {
            char name[128];

            if (protocol && i > 0)
                snprintf(name, sizeof(name), "VHOST_USER_PROTOCOL_F_%s", tok);
            else
                snprintf(name, sizeof(name), "%s%s", prefixes[i], tok);
            found = protocol ? gabi_protocol_feature_from_name(name, &bit) == 0
                             : gabi_feature_from_name(cls, name, &bit) == 0;
        }
        if (!found)
            r = cli_errorf(cli, "%s: unknown %s%s \"%s\"", what,
                           protocol ? "" : gabi_class_name(cls),
                           protocol ? "vhost-user protocol feature" : " feature", tok);
        else
            mask |= 1ull << bit;
    }
    free(copy);
    if (r)
        return -1;
    *ret = mask;
    return 0;
}

/* One request of the negotiation. Without REPLY_ACK a refusal only shows as a closed
 * connection, so a GET_FEATURES follows as a barrier (what QEMU does too). */
static void step(struct gabi_vhost_client *c, const char *what, int r, char *refusal, size_t size)
{
    uint64_t f;

    if (r >= 0)
        r = gabi_vhost_client_get_features(c, &f);
    if (r == -EPIPE || r == -ECONNRESET)
        snprintf(refusal, size, "%s: the back-end closed the connection", what);
    else if (r == -EIO)
        snprintf(refusal, size, "%s: the back-end answered with a failure", what);
    else if (r < 0)
        snprintf(refusal, size, "%s failed (%s)", what, strerror(-r));
}

/* The differences between the request and the offer: printed, or collected for --json. */
struct diffs {
    json_t *arr; /* --json: {"key", "message"} objects; NULL: print */
    size_t n;
};

static void diff_add(struct diffs *d, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void diff_add(struct diffs *d, const char *key, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (d->arr)
        json_array_append_new(d->arr, json_pack("{s:s, s:s}", "key", key, "message", msg));
    else
        printf("  - %s\n", msg);
    d->n++;
}

static void print_mask_diff(struct diffs *d, const char *what, enum gabi_device_class cls,
                            bool protocol, uint64_t missing)
{
    for (unsigned b = 0; b < 64; b++) {
        const char *name;

        if (!(missing & (1ull << b)))
            continue;
        name = protocol ? gabi_protocol_feature_name(b) : gabi_feature_name(cls, b);
        if (name)
            diff_add(d, protocol ? "protocol_features" : "features", "%s %s is not offered", what,
                     name);
        else
            diff_add(d, protocol ? "protocol_features" : "features", "%s bit %u is not offered",
                     what, b);
    }
}

/* An ABI as JSON: feature names (unnamed bits as "0x..."), queue pairs and ring size. */
static json_t *abi_json(enum gabi_device_class cls, uint64_t f, uint64_t pf, uint32_t qp,
                        uint32_t ring)
{
    json_t *feats = json_array(), *pfeats = json_array();

    for (unsigned b = 0; b < 64; b++) {
        const char *n;
        char hex[24];

        if (f & (1ull << b)) {
            n = gabi_feature_name(cls, b);
            snprintf(hex, sizeof(hex), "0x%llx", 1ull << b);
            json_array_append_new(feats, json_string(n ? n : hex));
        }
        if (pf & (1ull << b)) {
            n = gabi_protocol_feature_name(b);
            snprintf(hex, sizeof(hex), "0x%llx", 1ull << b);
            json_array_append_new(pfeats, json_string(n ? n : hex));
        }
    }
    return json_pack("{s:o, s:o, s:I, s:I}", "features", feats, "protocol_features", pfeats,
                     "queue_pairs", (json_int_t)qp, "ring_size", (json_int_t)ring);
}

static int run_negotiate(struct cli *cli, int argc, char **argv)
{
    struct negotiate_opts o = {.cls = GABI_CLASS_NET};
    struct gabi_vhost_offer offer;
    struct gabi_vhost_client *c = NULL;
    struct gabi_error err = {0};
    uint64_t want_f, want_pf = 0, got_f = 0, got_pf = 0, qnum = 1;
    struct diffs d = {0};
    char refusal[512] = "";
    int first, ex, r;

    first = cli_parse_options(cli, &cli_cmd_negotiate, argc, argv, negotiate_options, "",
                              negotiate_opt, &o, &ex);
    if (first < 0)
        return ex;
    if (first < argc)
        return cli_usage_error(cli, &cli_cmd_negotiate, "unexpected argument \"%s\"", argv[first]);
    if (!o.socket)
        return cli_usage_error(cli, &cli_cmd_negotiate, "--socket is needed");
    if (o.mode && (o.features || o.protocol_features || o.queue_pairs || o.ring_size))
        return cli_usage_error(cli, &cli_cmd_negotiate,
                               "ask either for a --mode or for features, queues and ring size");
    if (o.mode) {
        const struct gabi_mode *m;

        if (!cli_catalog(cli))
            return EXIT_BAD_INPUT;
        if (gabi_catalog_require_mode(cli->cat, o.mode, &m, &err) < 0)
            return cli_error(cli, &err);
        o.cls = m->cls;
        want_f = m->features;
        want_pf = m->protocol_features;
        o.queue_pairs = m->max_queue_pairs;
        o.ring_size = m->max_queue_size;
    } else {
        uint64_t named = 0;

        if (o.features && parse_names(cli, "--features", o.features, o.cls, false, &named) < 0)
            return EXIT_BAD_INPUT;
        /* what --help promises: VERSION_1 and PROTOCOL_FEATURES always asked for */
        want_f = named | (1ull << GABI_F_VERSION_1) | (1ull << GABI_F_PROTOCOL_FEATURES);
        if (o.protocol_features &&
            parse_names(cli, "--protocol-features", o.protocol_features, o.cls, true, &want_pf) < 0)
            return EXIT_BAD_INPUT;
    }
    if (o.queue_pairs > 1)
        want_pf |= 1ull << GABI_PF_MQ;

    /* What the back-end offers. */
    if (gabi_vhost_client_probe_offer(o.socket, 5000, &offer, &err) < 0)
        return cli_error(cli, &err);
    if (cli->json) {
        d.arr = json_array();
    } else {
        printf("Back-end %s offers:\n", o.socket);
        cli_print_features(stdout, "features", o.cls, offer.features);
        cli_print_protocol_features(stdout, "protocol", offer.protocol_features);
        printf("    %-10s %u pair%s of up to %u entries\n", "queues", offer.max_queue_pairs,
               offer.max_queue_pairs == 1 ? "" : "s", offer.max_queue_size);
        printf("Asked for%s%s:\n", o.mode ? " mode " : "", o.mode ? o.mode : "");
        cli_print_features(stdout, "features", o.cls, want_f);
        cli_print_protocol_features(stdout, "protocol", want_pf);
        printf("    %-10s %u pair%s of %u entries\n", "queues", o.queue_pairs ? o.queue_pairs : 1,
               o.queue_pairs > 1 ? "s" : "", o.ring_size ? o.ring_size : 256);
        printf("Differences:\n");
    }
    print_mask_diff(&d, "feature", o.cls, false, want_f & ~offer.features);
    print_mask_diff(&d, "protocol feature", o.cls, true, want_pf & ~offer.protocol_features);
    if (o.queue_pairs > offer.max_queue_pairs)
        diff_add(&d, "max_queue_pairs", "%u queue pair%s asked, %u offered", o.queue_pairs,
                 o.queue_pairs == 1 ? "" : "s", offer.max_queue_pairs);
    if (o.ring_size > offer.max_queue_size)
        diff_add(&d, "max_queue_size", "rings of %u entries asked, %u offered", o.ring_size,
                 offer.max_queue_size);
    if (!d.n && !d.arr)
        printf("  none\n");

    /* And the back-end's own answer: ask for exactly that, as a front-end would. */
    r = gabi_vhost_client_connect(o.socket, 5000, &c, &err);
    if (r < 0) {
        json_decref(d.arr);
        return cli_error(cli, &err);
    }
    r = gabi_vhost_client_get_features(c, &got_f);
    if (r >= 0)
        r = gabi_vhost_client_get_protocol_features(c, &got_pf);
    if (r < 0)
        snprintf(refusal, sizeof(refusal), "reading the offer failed (%s)", strerror(-r));
    if (!refusal[0])
        step(c, "SET_PROTOCOL_FEATURES", gabi_vhost_client_set_protocol_features(c, want_pf),
             refusal, sizeof(refusal));
    if (!refusal[0])
        step(c, "SET_OWNER", gabi_vhost_client_set_owner(c), refusal, sizeof(refusal));
    if (!refusal[0] && (want_pf & (1ull << GABI_PF_MQ))) {
        r = gabi_vhost_client_get_queue_num(c, &qnum);
        if (r < 0)
            snprintf(refusal, sizeof(refusal), "GET_QUEUE_NUM failed (%s)", strerror(-r));
        else if (o.queue_pairs > qnum)
            snprintf(refusal, sizeof(refusal),
                     "GET_QUEUE_NUM answers %llu queue pairs: %u do not fit (QEMU would not "
                     "start the device)",
                     (unsigned long long)qnum, o.queue_pairs);
    }
    if (!refusal[0])
        step(c, "SET_FEATURES", gabi_vhost_client_set_features(c, want_f), refusal,
             sizeof(refusal));
    if (!refusal[0] && o.ring_size)
        step(c, "SET_VRING_NUM", gabi_vhost_client_set_vring_num(c, 0, o.ring_size), refusal,
             sizeof(refusal));
    gabi_vhost_client_free(c);

    if (d.arr) {
        json_t *root = json_object();

        json_object_set_new(root, "schema", json_string("guestabi.negotiate/1"));
        json_object_set_new(root, "socket", json_string(o.socket));
        json_object_set_new(root, "class", json_string(gabi_class_name(o.cls)));
        json_object_set_new(root, "mode", o.mode ? json_string(o.mode) : json_null());
        json_object_set_new(root, "offer",
                            abi_json(o.cls, offer.features, offer.protocol_features,
                                     offer.max_queue_pairs, offer.max_queue_size));
        json_object_set_new(root, "asked",
                            abi_json(o.cls, want_f, want_pf, o.queue_pairs ? o.queue_pairs : 1,
                                     o.ring_size ? o.ring_size : 256));
        json_object_set_new(root, "differences", d.arr);
        json_object_set_new(root, "accepted", json_boolean(!refusal[0]));
        json_object_set_new(root, "refusal", refusal[0] ? json_string(refusal) : json_null());
        json_object_set_new(root, "ok", json_boolean(!refusal[0] && !d.n));
        if (cli_print_json(json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) != 0)
            d.n = 1;
        json_decref(root);
        return refusal[0] || d.n ? EXIT_INCOMPATIBLE : EXIT_COMPATIBLE;
    }
    if (refusal[0]) {
        printf("The back-end refused: %s\n", refusal);
        return EXIT_INCOMPATIBLE;
    }
    printf("The back-end accepted the request.\n");
    return d.n ? EXIT_INCOMPATIBLE : EXIT_COMPATIBLE;
}

const struct cli_command cli_cmd_negotiate = {
    "negotiate",
    "Ask a vhost-user back-end, as a front-end would, for a mode or an ABI: what it offers, "
    "what it refuses",
    "--socket PATH (--mode NAME | [--class CLASS] [--features LIST]\n"
    "         [--protocol-features LIST] [--queue-pairs N] [--ring-size N])\n"
    "  --socket PATH            the back-end's vhost-user socket\n"
    "  --mode NAME              ask for exactly a catalog mode\n"
    "  --features LIST          virtio features, comma-separated (EVENT_IDX or\n"
    "                           VIRTIO_RING_F_EVENT_IDX); VERSION_1 is always asked for\n"
    "  --protocol-features LIST vhost-user protocol features (MQ, REPLY_ACK, ...)\n"
    "  --queue-pairs N          queue pairs (virtio-blk: queues)\n"
    "  --ring-size N            entries per ring\n"
    "With --json: guestabi.negotiate/1, the offer, the request, every difference and the\n"
    "back-end's answer.\n"
    "Exit status: 0 the back-end accepted everything asked, 1 it refused or lacks something.",
    run_negotiate,
};
