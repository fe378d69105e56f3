/* SPDX-License-Identifier: MIT */
/*
 * guestabi state: move a vhost-user back-end's device state (SET_DEVICE_STATE_FD /
 * CHECK_DEVICE_STATE) while no VM drives it: back-end to back-end, or to and from a file.
 * The back-end must be suspended (no ring running), as it is when its VM is stopped or gone.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include <guestabi/vhost_client.h>
#include <guestabi/vhost_state.h>

#include "cli.h"
#include <guestabi/util.h>

struct state_opts {
    const char *from, *to, *type;
    uint32_t timeout_s;
};

static int state_opt(struct cli *cli, int opt, const char *arg, void *userdata)
{
    struct state_opts *o = userdata;

    switch (opt) {
    case 'f':
        o->from = arg;
        return 0;
    case 't':
        o->to = arg;
        return 0;
    case 'y':
        o->type = arg;
        return cli_check_value(cli, &cli_cmd_state, "--type", arg, false);
    case 'T':
        return cli_parse_number(cli, &cli_cmd_state, "--timeout", arg, 1, 3600, &o->timeout_s);
    }
    return -1;
}

static const struct option state_options[] = {
    {"from", required_argument, NULL, 'f'},
    {"to", required_argument, NULL, 't'},
    {"timeout", required_argument, NULL, 'T'},
    {"type", required_argument, NULL, 'y'},
    {NULL, 0, NULL, 0},
};

/* Connect to a back-end and negotiate what a state transfer needs. */
static int open_backend(const char *path, int timeout_ms, struct gabi_vhost_client **ret,
                        struct gabi_error *err)
{
    struct gabi_vhost_client *c = NULL;
    uint64_t f, pf;
    int r = gabi_vhost_client_connect(path, timeout_ms, &c, err);

    if (r < 0)
        return r;
    r = gabi_vhost_client_negotiate(
        c, UINT64_MAX, (1ull << GABI_PF_DEVICE_STATE) | (1ull << GABI_PF_REPLY_ACK), &f, &pf);
    if (r < 0) {
        gabi_vhost_client_free(c);
        return gabi_error_set(err, r, path, "negotiation failed: %s", strerror(-r));
    }
    if (!(pf & (1ull << GABI_PF_DEVICE_STATE))) {
        gabi_vhost_client_free(c);
        return gabi_error_set(err, -EOPNOTSUPP, path,
                              "the back-end does not offer VHOST_USER_PROTOCOL_F_DEVICE_STATE: "
                              "its state cannot be transferred");
    }
    *ret = c;
    return 0;
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* "512 B", "3.1 MiB", "2.4 GiB" */
static const char *size_text(double bytes, char *buf, size_t size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    unsigned u = 0;

    while (bytes >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
    return buf;
}

/* ---- progress on a terminal ------------------------------------------------------------------ */

#define PROGRESS_INTERVAL 0.25 /* seconds between two updates */

struct progress {
    struct timespec t0;
    double last;    /* seconds_since(t0) of the last update */
    uint64_t bytes; /* so far */
    uint64_t total; /* the whole stream, 0 while unknown */
    int peek_fd;    /* save: the file being written, whose header gives the total */
    bool shown;     /* a line is on the terminal */
};

/* The stream's total size from its header, once the header is in the file being written. */
static void progress_peek_total(struct progress *p)
{
    uint8_t hdr[GABI_VHOST_STATE_HEADER_MAX];
    struct gabi_vhost_state_info info;
    ssize_t n;
    int hsize;

    if (p->total || p->peek_fd < 0 || p->bytes < GABI_VHOST_STATE_HEADER_SIZE)
        return;
    n = pread(p->peek_fd, hdr, MIN(sizeof(hdr), p->bytes), 0);
    if (n <= 0)
        return;
    hsize = gabi_vhost_state_header_parse(hdr, (size_t)n, &info, NULL, NULL);
    if (hsize > 0)
        p->total = (uint64_t)hsize + info.payload_size + GABI_VHOST_STATE_TRAILER_SIZE;
}

static void progress_show(struct progress *p, double now)
{
    char done[32], total[32], rate[32];
    double bps = now > 0 ? (double)p->bytes / now : 0;

    size_text((double)p->bytes, done, sizeof(done));
    size_text(bps, rate, sizeof(rate));
    if (p->total && p->total >= p->bytes) {
        double left = bps > 0 ? (double)(p->total - p->bytes) / bps : 0;

        printf("\r  %s of %s (%3.0f%%), %s/s, %.0f s left  ", done,
               size_text((double)p->total, total, sizeof(total)),
               100.0 * (double)p->bytes / (double)p->total, rate, left);
    } else {
        printf("\r  %s, %s/s, %.0f s  ", done, rate, now);
    }
    fflush(stdout);
    p->shown = true;
}

static void progress_update(uint64_t bytes, void *userdata)
{
    struct progress *p = userdata;
    double now = seconds_since(&p->t0);

    p->bytes = bytes;
    if (now - p->last < PROGRESS_INTERVAL)
        return;
    p->last = now;
    progress_peek_total(p);
    progress_show(p, now);
}

/* The last figures, then the line ends: the result is printed below it. */
static void progress_end(struct progress *p)
{
    if (!p->bytes && !p->shown)
        return;
    progress_peek_total(p);
    progress_show(p, seconds_since(&p->t0));
    printf("\n");
}

/* ---- load: the stream's header, read before anything is sent -------------------------------- */

/* Parse the header at the start of the file. 0, or < 0 with *reterr saying why a back-end
 * would refuse the stream. */
static int read_stream_header(int fd, const char *path, struct gabi_vhost_state_info *ret_info,
                              struct gabi_error *reterr)
{
    uint8_t hdr[GABI_VHOST_STATE_HEADER_MAX];
    enum gabi_vhost_state_outcome outcome = GABI_VHOST_STATE_PENDING;
    struct gabi_error err = {0};
    ssize_t n = pread(fd, hdr, sizeof(hdr), 0);

    if (n < 0)
        return gabi_error_set(reterr, -errno, path, "%s", strerror(errno));
    if (gabi_vhost_state_header_parse(hdr, (size_t)n, ret_info, &outcome, &err) < 0)
        return gabi_error_set(reterr, -EINVAL, path,
                              "not a device-state stream a back-end would load (%s: %s); nothing "
                              "was sent",
                              gabi_vhost_state_outcome_name(outcome), err.message);
    return 0;
}

/* What a guestabi back-end of `type` loads: the catalog's rule for it (the back-ends follow
 * their catalog rule), as cli_print_versions writes it, or NULL when the catalog has none. */
static const char *catalog_loads(struct cli *cli, const char *type, char *buf, size_t size)
{
    const struct gabi_device_type *t =
        cli->cat ? gabi_catalog_find_device_type(cli->cat, type) : NULL;
    FILE *f;

    if (!t || !(f = fmemopen(buf, size, "w")))
        return NULL;
    cli_print_versions(f, &t->loads);
    fclose(f);
    buf[size - 1] = '\0';
    return buf;
}

/* The reason a load is refused, in the front-end's words: from the header it relayed and
 * (--type, else the stream's own type) the catalog's rule. "" when the header says nothing
 * about it. `code`: the back-end's CHECK_DEVICE_STATE answer, 0 before sending. */
static void load_reason(struct cli *cli, const struct gabi_vhost_state_info *info, const char *type,
                        const char *sock, uint64_t code, char *buf, size_t size)
{
    char loads[512];
    const char *rule;

    buf[0] = '\0';
    if (type && strcmp(type, info->device_type) != 0) {
        snprintf(buf, size,
                 "device type: the stream holds %s state, the back-end at %s is %s (--type)",
                 info->device_type, sock, type);
        return;
    }
    rule = catalog_loads(cli, type ? type : info->device_type, loads, sizeof(loads));
    if (code == GABI_VHOST_STATE_WRONG_TYPE) {
        snprintf(buf, size,
                 "device type: the stream holds %s state (version %s), which the back-end at %s "
                 "does not serve: it is another device type (--type TYPE checks this before "
                 "sending)",
                 info->device_type, info->state_version, sock);
    } else if (rule && !code) {
        const struct gabi_device_type *t =
            gabi_catalog_find_device_type(cli->cat, type ? type : info->device_type);

        if (!gabi_versions_accepts(&t->loads, info->state_version))
            snprintf(buf, size,
                     "state version: the stream holds %s state version %s; %s loads %s (the "
                     "catalog's rule)",
                     info->device_type, info->state_version, t->name, rule);
    } else if (code == GABI_VHOST_STATE_REFUSED) {
        if (rule)
            snprintf(buf, size,
                     "state version: the stream holds %s state version %s; %s loads %s (the "
                     "catalog's rule)",
                     info->device_type, info->state_version, type ? type : info->device_type, rule);
        else
            snprintf(buf, size,
                     "state version: the stream holds %s state version %s, which the back-end "
                     "does not load (the catalog has no rule for %s)",
                     info->device_type, info->state_version, info->device_type);
    }
}

/* ---- the command ------------------------------------------------------------------------------
 */

struct state_result {
    const char *verb, *from, *to;
    bool ok, relayed_bytes;
    double seconds;
    struct gabi_vhost_state_xfer x;
    bool have_info;
    struct gabi_vhost_state_info info;
    const char *reason; /* load refused: why, in our words */
    const struct gabi_error *err;
};

/* One side's CHECK_DEVICE_STATE answer: its failure code, or success when the whole transfer
 * succeeded; null when this side was not asked, or gave no failure (it may not have been
 * reached). */
static json_t *check_json(uint64_t code, bool side, bool ok)
{
    const char *n = code && code < 256
                        ? gabi_vhost_state_outcome_name((enum gabi_vhost_state_outcome)code)
                        : NULL;

    if (!side || (!ok && !code))
        return json_null();
    if (ok)
        return json_pack("{s:I, s:s}", "code", (json_int_t)0, "outcome", "succeeded");
    return json_pack("{s:I, s:s}", "code", (json_int_t)code, "outcome", n ? n : "unknown");
}

static int print_state_json(const struct state_result *res)
{
    json_t *root = json_object();
    bool save = strcmp(res->verb, "save") == 0, load = strcmp(res->verb, "load") == 0;
    char *text;

    json_object_set_new(root, "schema", json_string("guestabi.state/1"));
    json_object_set_new(root, "action", json_string(res->verb));
    json_object_set_new(root, "from", json_string(res->from));
    json_object_set_new(root, "to", json_string(res->to));
    json_object_set_new(root, "ok", json_boolean(res->ok));
    json_object_set_new(root, "seconds", json_real(res->seconds));
    json_object_set_new(root, "bytes", json_integer((json_int_t)res->x.bytes));
    json_object_set_new(root, "spliced", json_integer((json_int_t)res->x.spliced));
    json_object_set_new(root, "bytes_per_second",
                        json_real(res->seconds > 0 ? (double)res->x.bytes / res->seconds : 0));
    json_object_set_new(root, "through",
                        json_string(res->x.bytes ? "guestabi" : "back-end to back-end"));
    if (res->have_info)
        json_object_set_new(root, "stream",
                            json_pack("{s:s, s:s, s:I}", "device_type", res->info.device_type,
                                      "state_version", res->info.state_version, "payload_size",
                                      (json_int_t)res->info.payload_size));
    else
        json_object_set_new(root, "stream", json_null());
    json_object_set_new(root, "check",
                        json_pack("{s:o, s:o}", "source",
                                  check_json(res->x.check_code[0], !load, res->ok), "destination",
                                  check_json(res->x.check_code[1], !save, res->ok)));
    json_object_set_new(root, "reason",
                        res->reason && res->reason[0] ? json_string(res->reason) : json_null());
    if (res->err)
        json_object_set_new(
            root, "error",
            json_pack("{s:s, s:s}", "where", res->err->where, "message", res->err->message));
    else
        json_object_set_new(root, "error", json_null());
    text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    return cli_print_json(text);
}

static int run_state(struct cli *cli, int argc, char **argv)
{
    struct state_opts o = {.timeout_s = 120};
    struct gabi_vhost_client *src = NULL, *dst = NULL;
    struct state_result res = {0};
    struct progress prog = {.peek_fd = -1};
    struct gabi_error err = {0};
    char reason[1024] = "";
    const char *verb;
    struct stat st;
    char *tmp;
    int first, ex, r, fd = -1, ms;
    bool show_progress;

    /* guestabi state ACTION [options]: the options follow the action */
    if (argc < 2 || argv[1][0] == '-') {
        first = cli_parse_options(cli, &cli_cmd_state, argc, argv, state_options, "", state_opt, &o,
                                  &ex);
        return first < 0 ? ex : cli_usage_error(cli, &cli_cmd_state, "move, save or load?");
    }
    verb = argv[1];
    first = cli_parse_options(cli, &cli_cmd_state, argc - 1, argv + 1, state_options, "", state_opt,
                              &o, &ex);
    if (first < 0)
        return ex;
    if (first < argc - 1)
        return cli_usage_error(cli, &cli_cmd_state, "unexpected argument \"%s\"", argv[1 + first]);
    if (!o.from || !o.to)
        return cli_usage_error(cli, &cli_cmd_state, "--from and --to are both needed");
    if (o.type && strcmp(verb, "load") != 0)
        return cli_usage_error(cli, &cli_cmd_state, "--type goes with load");
    ms = (int)o.timeout_s * 1000;
    show_progress = !cli->json && isatty(STDOUT_FILENO);
    clock_gettime(CLOCK_MONOTONIC, &prog.t0);

    if (strcmp(verb, "move") == 0) {
        r = open_backend(o.from, ms, &src, &err);
        if (r >= 0)
            r = open_backend(o.to, ms, &dst, &err);
        if (r >= 0 && show_progress)
            gabi_vhost_client_set_progress(src, progress_update, &prog);
        if (r >= 0)
            r = gabi_vhost_client_move_state(src, dst, ms, &res.x, &err);
    } else if (strcmp(verb, "save") == 0) {
        /* Into a new file beside the target, renamed over it only once the back-end has
         * answered CHECK with success: a refused save leaves an existing file as it was. */
        if (stat(o.to, &st) == 0 && !S_ISREG(st.st_mode))
            return cli_errorf(cli, "%s: not a regular file: a saved state goes into a file", o.to);
        tmp = malloc(strlen(o.to) + sizeof(".XXXXXX"));
        if (!tmp)
            return cli_errorf(cli, "%s: %s", o.to, strerror(ENOMEM));
        strcpy(tmp, o.to);
        strcat(tmp, ".XXXXXX");
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
            r = errno;
            free(tmp);
            return cli_errorf(cli, "%s: cannot create a file beside it: %s", o.to, strerror(r));
        }
        prog.peek_fd = fd;
        r = open_backend(o.from, ms, &src, &err);
        if (r >= 0 && show_progress)
            gabi_vhost_client_set_progress(src, progress_update, &prog);
        if (r >= 0)
            r = gabi_vhost_client_save_state(src, fd, ms, &res.x, &err);
        if (r >= 0 && fsync(fd) < 0)
            r = gabi_error_set(&err, -errno, o.to, "fsync: %s", strerror(errno));
        if (r >= 0 && rename(tmp, o.to) < 0)
            r = gabi_error_set(&err, -errno, o.to, "rename from %s: %s", tmp, strerror(errno));
        if (r >= 0)
            res.have_info = read_stream_header(fd, o.to, &res.info, NULL) == 0;
        if (r < 0)
            unlink(tmp);
        free(tmp);
    } else if (strcmp(verb, "load") == 0) {
        fd = open(o.from, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
            return cli_errorf(cli, "%s: %s", o.from, strerror(errno));
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
            close(fd);
            return cli_errorf(cli, "%s: not a regular file: a saved state is loaded from a file",
                              o.from);
        }
        if (fcntl(fd, F_SETFL, 0) < 0 || !cli_catalog(cli)) {
            close(fd);
            return EXIT_BAD_INPUT;
        }
        prog.total = (uint64_t)st.st_size;
        /* The header first: a stream no back-end would load is not sent, and the reasons a
         * back-end refuses one are named here, not only in its log. */
        r = read_stream_header(fd, o.from, &res.info, &err);
        res.have_info = r >= 0;
        if (r >= 0) {
            load_reason(cli, &res.info, o.type, o.to, 0, reason, sizeof(reason));
            if (reason[0] && o.type)
                r = gabi_error_set(&err, -EPROTO, o.from, "%s; nothing was sent", reason);
        }
        if (r >= 0)
            r = open_backend(o.to, ms, &dst, &err);
        if (r >= 0 && show_progress)
            gabi_vhost_client_set_progress(dst, progress_update, &prog);
        if (r >= 0)
            r = gabi_vhost_client_load_state(dst, fd, ms, &res.x, &err);
        if (r < 0 && res.have_info && res.x.check_code[GABI_VHOST_STATE_LOAD]) {
            load_reason(cli, &res.info, o.type, o.to, res.x.check_code[GABI_VHOST_STATE_LOAD],
                        reason, sizeof(reason));
            if (reason[0]) {
                size_t len = strlen(err.message);

                snprintf(err.message + len, sizeof(err.message) - len, ": %s", reason);
            }
        }
    } else {
        return cli_usage_error(cli, &cli_cmd_state, "unknown action \"%s\" (move, save, load)",
                               verb);
    }
    if (show_progress)
        progress_end(&prog);
    if (fd >= 0)
        close(fd);
    gabi_vhost_client_free(src);
    gabi_vhost_client_free(dst);
    res.verb = verb;
    res.from = o.from;
    res.to = o.to;
    res.ok = r >= 0;
    res.seconds = seconds_since(&prog.t0);
    res.reason = reason;
    if (r < 0) {
        res.err = &err;
        cli_error(cli, &err);
        if (cli->json)
            print_state_json(&res);
        else
            printf("state %s from %s to %s: REFUSED; the source's state is untouched, the "
                   "destination loaded (or, for a file, kept) nothing new\n",
                   verb, o.from, o.to);
        return EXIT_INCOMPATIBLE;
    }
    if (cli->json)
        return print_state_json(&res) == 0 ? EXIT_COMPATIBLE : EXIT_BAD_INPUT;
    printf("state %s from %s to %s: done in %.3f s", verb, o.from, o.to, res.seconds);
    if (res.x.bytes) {
        char rate[32];

        printf(
            ", %llu bytes through guestabi (%llu spliced), %s/s", (unsigned long long)res.x.bytes,
            (unsigned long long)res.x.spliced,
            size_text(res.seconds > 0 ? (double)res.x.bytes / res.seconds : 0, rate, sizeof(rate)));
    } else {
        printf(", back-end to back-end");
    }
    printf("; CHECK_DEVICE_STATE: success\n");
    return EXIT_COMPATIBLE;
}

const struct cli_command cli_cmd_state = {
    "state",
    "Move a suspended vhost-user back-end's device state: to another back-end, or to and "
    "from a file",
    "(move | save | load) --from SOCK|FILE --to SOCK|FILE [--timeout SECONDS] [--type TYPE]\n"
    "  move --from SOCK --to SOCK   back-end to back-end (SET_DEVICE_STATE_FD both ways,\n"
    "                               then CHECK_DEVICE_STATE on both)\n"
    "  save --from SOCK --to FILE   the state stream into a file (replaced only when the\n"
    "                               back-end reports success)\n"
    "  load --from FILE --to SOCK   a saved stream into a back-end; its header is read first:\n"
    "                               a stream no back-end would load is not sent, and a\n"
    "                               refusal names the type and version against the rule\n"
    "  --type TYPE                  load: the destination's device type; a stream of another\n"
    "                               type, or of a version TYPE does not load (catalog), is\n"
    "                               refused before sending\n"
    "On a terminal, progress (bytes, rate, time left) is shown a few times a second; with\n"
    "--json the result (guestabi.state/1) carries the totals and the rate instead.\n"
    "The destination parses the stream's header (device type, state version) before it loads\n"
    "a byte, and commits only a whole, verified stream. Exit status: 0 done, 1 refused.",
    run_state,
};
