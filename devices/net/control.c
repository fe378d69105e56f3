/* SPDX-License-Identifier: MIT */
/*
 * The control socket (--control PATH): a unix stream socket for the host's tools. One
 * connection at a time, one request per line (at most 255 bytes), one JSON object per line
 * back:
 *
 *   stats [PORT]          {"schema": "guestabi-net.stats/1", "ports": [...]}: per port its
 *                         socket, link, MTU, connection, suspension, last state transfer,
 *                         per-queue-pair counters and their totals, the mode, the features
 *                         and protocol features negotiated ("0x..."), the started rings,
 *                         the connections so far and why the last one closed
 *   link PORT up|down     {"ok": true}: the port's administrative link (part of its state)
 *
 * PORT is a port's index (the order of --socket) or its socket path. Errors are
 * {"error": "..."}. The socket itself (one client at a time, bounded lines, a client that does
 * not read is dropped) is devices/common/devctl.c.
 */

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>

#include <guestabi/util.h>
#include "devctl.h"
#include "net.h"

/* ---- requests ---------------------------------------------------------------------------- */

static struct net_port *find_port(struct net *n, const char *arg)
{
    uint64_t i;

    if (gabi_parse_u64(arg, &i) == 0)
        return i < n->n_ports ? &n->ports[i] : NULL;
    for (unsigned k = 0; k < n->n_ports; k++)
        if (strcmp(n->ports[k].path, arg) == 0)
            return &n->ports[k];
    return NULL;
}

static json_t *counters(const struct net_qstats *q)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "tx_packets", (json_int_t)q->tx_packets,
                     "tx_bytes", (json_int_t)q->tx_bytes, "tx_dropped", (json_int_t)q->tx_dropped,
                     "rx_packets", (json_int_t)q->rx_packets, "rx_bytes", (json_int_t)q->rx_bytes,
                     "rx_dropped", (json_int_t)q->rx_dropped);
}

static json_t *port_json(struct net_port *p)
{
    json_t *queues = json_array(), *obj;
    struct net_qstats t;

    for (unsigned i = 0; i < p->n_q; i++)
        json_array_append_new(queues, counters(&p->q[i]));
    net_port_totals(p, &t);
    obj = json_pack("{s:i, s:s, s:I, s:o, s:o}", "port", (int)p->id, "link",
                    p->link_up ? "up" : "down", "mtu", (json_int_t)p->mtu, "queues", queues,
                    "totals", counters(&t));
    devctl_vhost_port(obj, p->b, p->path);
    return obj;
}

static json_t *handle(char *line, void *userdata)
{
    struct net *n = userdata;
    char *save = NULL, *cmd = strtok_r(line, " \t", &save);
    char *arg = strtok_r(NULL, " \t", &save), *arg2 = strtok_r(NULL, " \t", &save);
    struct net_port *p = NULL;

    if (!cmd)
        return json_pack("{s:s}", "error", "empty request");
    if (arg && !(p = find_port(n, arg)))
        return json_pack("{s:s}", "error", "no such port");
    if (strcmp(cmd, "stats") == 0 && !arg2) {
        json_t *ports = json_array();

        for (unsigned i = 0; i < n->n_ports; i++)
            if (!p || p == &n->ports[i])
                json_array_append_new(ports, port_json(&n->ports[i]));
        return json_pack("{s:s, s:o, s:{s:b, s:I, s:I}}", "schema", "guestabi-net.stats/1", "ports",
                         ports, "busy_poll", "on", n->busy_poll, "passes", (json_int_t)n->passes,
                         "idle_passes", (json_int_t)n->idle_passes);
    }
    if (strcmp(cmd, "link") == 0 && p && arg2 &&
        (strcmp(arg2, "up") == 0 || strcmp(arg2, "down") == 0)) {
        net_port_set_link(p, strcmp(arg2, "up") == 0);
        return json_pack("{s:b}", "ok", 1);
    }
    return json_pack("{s:s}", "error", "requests: stats [PORT], link PORT up|down");
}

/* ---- the socket (devices/common/devctl.c) ------------------------------------------------- */

int net_control_open(struct net *n, const char *path, char *why, size_t size)
{
    int r = devctl_open(path, handle, n, &n->control, why, size);

    if (r < 0)
        return r;
    n->control_src = (struct source){SRC_CONTROL, NULL, 0};
    r = net_watch(n, devctl_fd(n->control), &n->control_src, EPOLLIN);
    if (r < 0) {
        snprintf(why, size, "control socket: %s", strerror(-r));
        n->control = devctl_close(n->control);
    }
    return r;
}

void net_control_close(struct net *n)
{
    if (!n->control)
        return;
    net_unwatch(n, devctl_fd(n->control));
    n->control = devctl_close(n->control);
}

void net_control_event(struct net *n, struct source *src)
{
    (void)src;
    devctl_process(n->control);
}
