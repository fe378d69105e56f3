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

#include <guestabi/vhost_client.h>

#include "cli.h"
#include <guestabi/util.h>

struct state_opts {
    const char *from, *to;
    uint32_t timeout_s;
};

static int state_opt(struct cli *cli, int opt, const char *arg, void *userdata)
{
    struct state_opts *o = userdata;
    uint64_t v;

    switch (opt) {
    case 'f':
        o->from = arg;
        return 0;
    case 't':
        o->to = arg;
        return 0;
    case 'T':
        if (gabi_parse_u64(arg, &v) < 0 || v == 0 || v > 3600) {
            cli_errorf(cli, "--timeout \"%s\": seconds from 1 to 3600", arg);
            return -1;
        }
        o->timeout_s = (uint32_t)v;
        return 0;
    }
    return -1;
}

static const struct option state_options[] = {
    {"from", required_argument, NULL, 'f'},
    {"to", required_argument, NULL, 't'},
    {"timeout", required_argument, NULL, 'T'},
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

static int run_state(struct cli *cli, int argc, char **argv)
{
    struct state_opts o = {.timeout_s = 120};
    struct gabi_vhost_client *src = NULL, *dst = NULL;
    struct gabi_vhost_state_xfer x = {0};
    struct gabi_error err = {0};
    struct timespec t0;
    const char *verb;
    struct stat st;
    char *tmp;
    int first, ex, r, fd = -1, ms;

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
    ms = (int)o.timeout_s * 1000;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    if (strcmp(verb, "move") == 0) {
        r = open_backend(o.from, ms, &src, &err);
        if (r >= 0)
            r = open_backend(o.to, ms, &dst, &err);
        if (r >= 0)
            r = gabi_vhost_client_move_state(src, dst, ms, &x, &err);
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
        r = open_backend(o.from, ms, &src, &err);
        if (r >= 0)
            r = gabi_vhost_client_save_state(src, fd, ms, &x, &err);
        if (r >= 0 && fsync(fd) < 0)
            r = gabi_error_set(&err, -errno, o.to, "fsync: %s", strerror(errno));
        if (r >= 0 && rename(tmp, o.to) < 0)
            r = gabi_error_set(&err, -errno, o.to, "rename from %s: %s", tmp, strerror(errno));
        if (r < 0)
            unlink(tmp);
        free(tmp);
    } else if (strcmp(verb, "load") == 0) {
        fd = open(o.from, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return cli_errorf(cli, "%s: %s", o.from, strerror(errno));
        r = open_backend(o.to, ms, &dst, &err);
        if (r >= 0)
            r = gabi_vhost_client_load_state(dst, fd, ms, &x, &err);
    } else {
        return cli_usage_error(cli, &cli_cmd_state, "unknown action \"%s\" (move, save, load)",
                               verb);
    }
    if (fd >= 0)
        close(fd);
    gabi_vhost_client_free(src);
    gabi_vhost_client_free(dst);
    if (r < 0) {
        cli_error(cli, &err);
        printf("state %s from %s to %s: REFUSED; the source's state is untouched, the "
               "destination loaded (or, for a file, kept) nothing new\n",
               verb, o.from, o.to);
        return EXIT_INCOMPATIBLE;
    }
    printf("state %s from %s to %s: done in %.3f s", verb, o.from, o.to, seconds_since(&t0));
    if (x.bytes)
        printf(", %llu bytes through guestabi (%llu spliced)", (unsigned long long)x.bytes,
               (unsigned long long)x.spliced);
    else
        printf(", back-end to back-end");
    printf("; CHECK_DEVICE_STATE: success\n");
    return EXIT_COMPATIBLE;
}

const struct cli_command cli_cmd_state = {
    "state",
    "Move a suspended vhost-user back-end's device state: to another back-end, or to and "
    "from a file",
    "(move | save | load) --from SOCK|FILE --to SOCK|FILE [--timeout SECONDS]\n"
    "  move --from SOCK --to SOCK   back-end to back-end (SET_DEVICE_STATE_FD both ways,\n"
    "                               then CHECK_DEVICE_STATE on both)\n"
    "  save --from SOCK --to FILE   the state stream into a file (replaced only when the\n"
    "                               back-end reports success)\n"
    "  load --from FILE --to SOCK   a saved stream into a back-end\n"
    "The destination parses the stream's header (device type, state version) before it loads\n"
    "a byte, and commits only a whole, verified stream. Exit status: 0 done, 1 refused.",
    run_state,
};
