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
 * {"error": "..."}. A client that sends a longer line or does not read its replies (1 s) is
 * disconnected.
 */

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "common/util.h"
#include "net.h"

#define LINE_MAX_BYTES 256

struct net_control {
    char *path;
    int listen_fd;
    int conn_fd;
    char line[LINE_MAX_BYTES];
    size_t len;
    struct source listen_src, conn_src;
};

int net_control_open(struct net *n, const char *path, char *why, size_t size)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct net_control *c;
    struct stat st;
    int fd, r;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(why, size, "control socket path %s is too long", path);
        return -ENAMETOOLONG;
    }
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(why, size, "%s exists and is not a socket", path);
            return -EEXIST;
        }
        unlink(path);
    }
    memcpy(sa.sun_path, path, strlen(path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
        r = -errno;
        snprintf(why, size, "control socket %s: %s", path, strerror(-r));
        if (fd >= 0)
            close(fd);
        return r;
    }
    c = calloc(1, sizeof(*c));
    if (!c || !(c->path = strdup(path))) {
        free(c);
        close(fd);
        unlink(path);
        snprintf(why, size, "out of memory");
        return -ENOMEM;
    }
    c->listen_fd = fd;
    c->conn_fd = -1;
    c->listen_src = (struct source){SRC_CONTROL_LISTEN, NULL, 0};
    c->conn_src = (struct source){SRC_CONTROL_CONN, NULL, 0};
    n->control = c;
    r = net_watch(n, fd, &c->listen_src, EPOLLIN);
    if (r < 0) {
        snprintf(why, size, "control socket: %s", strerror(-r));
        net_control_close(n);
        return r;
    }
    return 0;
}

static void drop_conn(struct net *n)
{
    struct net_control *c = n->control;

    if (c->conn_fd < 0)
        return;
    net_unwatch(n, c->conn_fd);
    close_and_clear(&c->conn_fd);
    c->len = 0;
    net_watch(n, c->listen_fd, &c->listen_src, EPOLLIN); /* the next client */
}

void net_control_close(struct net *n)
{
    struct net_control *c = n->control;

    if (!c)
        return;
    drop_conn(n);
    net_unwatch(n, c->listen_fd);
    close(c->listen_fd);
    unlink(c->path);
    free(c->path);
    free(c);
    n->control = NULL;
}

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
    enum gabi_vhost_state_direction dir;
    enum gabi_vhost_state_outcome o;
    struct gabi_error err = {0};
    struct net_qstats t;
    json_t *queues = json_array(), *obj;
    int r = gabi_vhost_backend_state_result(p->b, &dir, &o, &err);

    for (unsigned i = 0; i < p->n_q; i++)
        json_array_append_new(queues, counters(&p->q[i]));
    net_port_totals(p, &t);
    obj = json_pack("{s:i, s:s, s:s, s:I, s:b, s:b, s:o, s:o}", "port", (int)p->id, "socket",
                    p->path, "link", p->link_up ? "up" : "down", "mtu", (json_int_t)p->mtu,
                    "connected", gabi_vhost_backend_connected(p->b), "suspended",
                    gabi_vhost_backend_suspended(p->b), "queues", queues, "totals", counters(&t));
    /* what the front-end negotiated: features, protocol features, the rings it started */
    {
        json_t *rings = json_array();
        char hex[2][24];

        snprintf(hex[0], sizeof(hex[0]), "0x%" PRIx64, gabi_vhost_backend_features(p->b));
        snprintf(hex[1], sizeof(hex[1]), "0x%" PRIx64, gabi_vhost_backend_protocol_features(p->b));
        for (unsigned i = 0; i < gabi_vhost_backend_n_vrings(p->b); i++) {
            struct gabi_vhost_vring *vr = gabi_vhost_backend_vring(p->b, i);

            if (vr && gabi_vhost_vring_started(vr))
                json_array_append_new(rings, json_pack("{s:i, s:i, s:b}", "index", (int)i, "size",
                                                       (int)gabi_vhost_vring_size(vr), "enabled",
                                                       gabi_vhost_vring_enabled(vr)));
        }
        json_object_set_new(obj, "mode", json_string(p->net->mode->name));
        json_object_set_new(obj, "features", json_string(hex[0]));
        json_object_set_new(obj, "protocol_features", json_string(hex[1]));
        json_object_set_new(obj, "started_rings", rings);
        json_object_set_new(obj, "connections",
                            json_integer((json_int_t)gabi_vhost_backend_n_connections(p->b)));
        json_object_set_new(obj, "last_error", json_string(gabi_vhost_backend_error(p->b)));
    }
    if (r != -ENOENT)
        json_object_set_new(obj, "state_transfer",
                            json_pack("{s:s, s:s, s:s}", "direction",
                                      dir == GABI_VHOST_STATE_SAVE ? "save" : "load", "outcome",
                                      gabi_vhost_state_outcome_name(o), "message", err.message));
    return obj;
}

static json_t *handle(struct net *n, char *line)
{
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
        return json_pack("{s:s, s:o}", "schema", "guestabi-net.stats/1", "ports", ports);
    }
    if (strcmp(cmd, "link") == 0 && p && arg2 &&
        (strcmp(arg2, "up") == 0 || strcmp(arg2, "down") == 0)) {
        net_port_set_link(p, strcmp(arg2, "up") == 0);
        return json_pack("{s:b}", "ok", 1);
    }
    return json_pack("{s:s}", "error", "requests: stats [PORT], link PORT up|down");
}

static void reply(struct net *n, json_t *j)
{
    struct net_control *c = n->control;
    char *text = json_dumps(j, JSON_COMPACT);
    size_t len = text ? strlen(text) : 0, done = 0;
    struct timespec t0;

    json_decref(j);
    if (!text) {
        drop_conn(n);
        return;
    }
    text[len] = '\n'; /* json_dumps allocated len + 1 bytes: the NUL becomes the newline */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (done < len + 1) {
        ssize_t k = send(c->conn_fd, text + done, len + 1 - done, MSG_NOSIGNAL);
        struct timespec t;

        if (k < 0 && errno == EINTR)
            continue;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (k <= 0 || t.tv_sec - t0.tv_sec > 1) {
            /* gone, or not reading (SO_SNDTIMEO), or reading too slowly for the loop to wait */
            drop_conn(n);
            break;
        }
        done += (size_t)k;
    }
    free(text);
}

void net_control_event(struct net *n, struct source *src)
{
    struct net_control *c = n->control;

    if (src->kind == SRC_CONTROL_LISTEN) {
        struct timeval tv = {.tv_sec = 1};
        int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);

        if (fd < 0)
            return;
        /* blocking sends, bounded by a timeout; reads only when epoll says so */
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        c->conn_fd = fd;
        c->len = 0;
        net_unwatch(n, c->listen_fd); /* one client at a time; others wait in the backlog */
        if (net_watch(n, fd, &c->conn_src, EPOLLIN) < 0)
            drop_conn(n);
        return;
    }
    /* One read per event (epoll calls again while there is more): a client that keeps
     * writing gets its turn between the ports', never the loop to itself. */
    {
        ssize_t k = recv(c->conn_fd, c->line + c->len, sizeof(c->line) - c->len, MSG_DONTWAIT);
        char *nl;

        if (k < 0 && (errno == EINTR || errno == EAGAIN))
            return;
        if (k <= 0) {
            drop_conn(n);
            return;
        }
        c->len += (size_t)k;
        while (c->conn_fd >= 0 && (nl = memchr(c->line, '\n', c->len))) {
            size_t used = (size_t)(nl - c->line) + 1;

            *nl = '\0';
            if (nl > c->line && nl[-1] == '\r')
                nl[-1] = '\0';
            reply(n, handle(n, c->line));
            if (c->conn_fd >= 0) {
                memmove(c->line, c->line + used, c->len - used);
                c->len -= used;
            }
        }
        if (c->conn_fd < 0)
            return;
        if (c->len == sizeof(c->line)) {
            reply(n, json_pack("{s:s}", "error", "request longer than 255 bytes"));
            drop_conn(n);
            return;
        }
    }
}
