/* SPDX-License-Identifier: MIT */
/*
 * guestabi-blk's control socket (--control PATH; the socket is devices/common/devctl.c):
 *
 *   stats [0]    {"schema": "guestabi-blk.stats/1", "ports": [{...}]}: the disk's socket, mode,
 *                connection, what the front-end negotiated, the started rings, the last state
 *                transfer (devctl_vhost_port) and "totals": requests and bytes
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>

#include "blk.h"
#include "devctl.h"

static json_t *handle(char *line, void *userdata)
{
    struct blk *k = userdata;
    const struct blk_stats *s = &k->stats;
    char *save = NULL, *cmd = strtok_r(line, " \t", &save), *arg = strtok_r(NULL, " \t", &save);
    json_t *port;

    if (!cmd || strcmp(cmd, "stats") != 0 || strtok_r(NULL, " \t", &save) ||
        (arg && strcmp(arg, "0") != 0 && strcmp(arg, k->socket) != 0))
        return json_pack("{s:s}", "error", "requests: stats [0]");
    port = json_pack("{s:i, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}", "port", 0, "totals",
                     "reads", (json_int_t)s->reads, "writes", (json_int_t)s->writes, "flushes",
                     (json_int_t)s->flushes, "discards", (json_int_t)s->discards, "write_zeroes",
                     (json_int_t)s->write_zeroes, "bytes_read", (json_int_t)s->bytes_read,
                     "bytes_written", (json_int_t)s->bytes_written, "io_errors",
                     (json_int_t)s->ioerr, "unsupported", (json_int_t)s->unsupp);
    devctl_vhost_port(port, k->b, k->socket);
    return json_pack("{s:s, s:[o]}", "schema", "guestabi-blk.stats/1", "ports", port);
}

int blk_control_open(struct blk *k, const char *path, char *why, size_t size)
{
    int r = devctl_open(path, handle, k, &k->control, why, size);

    if (r < 0)
        return r;
    k->control_src = (struct blk_source){BLK_SRC_CONTROL, 0};
    r = blk_watch(k, devctl_fd(k->control), &k->control_src, EPOLLIN);
    if (r < 0) {
        snprintf(why, size, "control socket: %s", strerror(-r));
        k->control = devctl_close(k->control);
    }
    return r;
}
