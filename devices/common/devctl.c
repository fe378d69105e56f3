/* SPDX-License-Identifier: MIT */
/* A back-end's control socket (devctl.h). */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <guestabi/vhost_backend.h>
#include <guestabi/vhost_vring.h>

#include <guestabi/util.h>
#include "devctl.h"

#define LINE_MAX_BYTES 256

struct devctl {
    char *path;
    int epfd, listen_fd, conn_fd;
    devctl_fn fn;
    void *userdata;
    char line[LINE_MAX_BYTES];
    size_t len;
};

int devctl_open(const char *path, devctl_fn fn, void *userdata, struct devctl **ret, char *why,
                size_t size)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct epoll_event ev = {.events = EPOLLIN};
    struct devctl *c;
    struct stat st;
    int r;

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
    c = calloc(1, sizeof(*c));
    if (!c || !(c->path = strdup(path))) {
        free(c);
        snprintf(why, size, "out of memory");
        return -ENOMEM;
    }
    c->fn = fn;
    c->userdata = userdata;
    c->conn_fd = -1;
    c->epfd = epoll_create1(EPOLL_CLOEXEC);
    c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ev.data.fd = c->listen_fd;
    if (c->epfd < 0 || c->listen_fd < 0 ||
        bind(c->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(c->listen_fd, 4) < 0 ||
        epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->listen_fd, &ev) < 0) {
        r = -errno;
        snprintf(why, size, "control socket %s: %s", path, strerror(-r));
        devctl_close(c);
        return r;
    }
    *ret = c;
    return 0;
}

static void drop_conn(struct devctl *c)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = c->listen_fd};

    if (c->conn_fd < 0)
        return;
    close_and_clear(&c->conn_fd); /* leaves the epoll set with it */
    c->len = 0;
    epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->listen_fd, &ev); /* the next client */
}

struct devctl *devctl_close(struct devctl *c)
{
    if (!c)
        return NULL;
    close_and_clear(&c->conn_fd);
    if (c->listen_fd >= 0) {
        close(c->listen_fd);
        unlink(c->path);
    }
    if (c->epfd >= 0)
        close(c->epfd);
    free(c->path);
    free(c);
    return NULL;
}

int devctl_fd(const struct devctl *c)
{
    return c->epfd;
}

static void reply(struct devctl *c, json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT);
    size_t len = text ? strlen(text) : 0, done = 0;
    struct timespec t0;

    json_decref(j);
    if (!text) {
        drop_conn(c);
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
            drop_conn(c);
            break;
        }
        done += (size_t)k;
    }
    free(text);
}

void devctl_process(struct devctl *c)
{
    struct epoll_event ev;
    ssize_t k;
    char *nl;

    if (epoll_wait(c->epfd, &ev, 1, 0) != 1)
        return;
    if (c->conn_fd < 0) {
        struct timeval tv = {.tv_sec = 1};
        struct epoll_event cev = {.events = EPOLLIN};
        int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);

        if (fd < 0)
            return;
        /* blocking sends, bounded by a timeout; reads only when epoll says so */
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        c->conn_fd = fd;
        c->len = 0;
        /* one client at a time; others wait in the backlog */
        epoll_ctl(c->epfd, EPOLL_CTL_DEL, c->listen_fd, NULL);
        cev.data.fd = fd;
        if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &cev) < 0)
            drop_conn(c);
        return;
    }
    /* One read per event (epoll calls again while there is more): a client that keeps
     * writing gets its turn between the ports', never the loop to itself. */
    k = recv(c->conn_fd, c->line + c->len, sizeof(c->line) - c->len, MSG_DONTWAIT);
    if (k < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (k <= 0) {
        drop_conn(c);
        return;
    }
    c->len += (size_t)k;
    while (c->conn_fd >= 0 && (nl = memchr(c->line, '\n', c->len))) {
        size_t used = (size_t)(nl - c->line) + 1;

        *nl = '\0';
        if (nl > c->line && nl[-1] == '\r')
            nl[-1] = '\0';
        reply(c, c->fn(c->line, c->userdata));
        if (c->conn_fd >= 0) {
            memmove(c->line, c->line + used, c->len - used);
            c->len -= used;
        }
    }
    if (c->conn_fd >= 0 && c->len == sizeof(c->line)) {
        reply(c, json_pack("{s:s}", "error", "request longer than 255 bytes"));
        drop_conn(c);
    }
}

void devctl_vhost_port(json_t *obj, struct gabi_vhost_backend *b, const char *socket)
{
    enum gabi_vhost_state_direction dir;
    enum gabi_vhost_state_outcome o;
    struct gabi_error err = {0};
    json_t *rings = json_array();
    char hex[2][24];

    snprintf(hex[0], sizeof(hex[0]), "0x%" PRIx64, gabi_vhost_backend_features(b));
    snprintf(hex[1], sizeof(hex[1]), "0x%" PRIx64, gabi_vhost_backend_protocol_features(b));
    for (unsigned i = 0; i < gabi_vhost_backend_n_vrings(b); i++) {
        struct gabi_vhost_vring *vr = gabi_vhost_backend_vring(b, i);

        if (vr && gabi_vhost_vring_started(vr))
            json_array_append_new(rings, json_pack("{s:i, s:i, s:b}", "index", (int)i, "size",
                                                   (int)gabi_vhost_vring_size(vr), "enabled",
                                                   gabi_vhost_vring_enabled(vr)));
    }
    json_object_set_new(obj, "socket", json_string(socket));
    json_object_set_new(obj, "mode", json_string(gabi_vhost_backend_mode(b)->name));
    json_object_set_new(obj, "connected", json_boolean(gabi_vhost_backend_connected(b)));
    json_object_set_new(obj, "suspended", json_boolean(gabi_vhost_backend_suspended(b)));
    json_object_set_new(obj, "features", json_string(hex[0]));
    json_object_set_new(obj, "protocol_features", json_string(hex[1]));
    json_object_set_new(obj, "started_rings", rings);
    json_object_set_new(obj, "connections",
                        json_integer((json_int_t)gabi_vhost_backend_n_connections(b)));
    json_object_set_new(obj, "last_error", json_string(gabi_vhost_backend_error(b)));
    if (gabi_vhost_backend_state_result(b, &dir, &o, &err) != -ENOENT)
        json_object_set_new(obj, "state_transfer",
                            json_pack("{s:s, s:s, s:s}", "direction",
                                      dir == GABI_VHOST_STATE_SAVE ? "save" : "load", "outcome",
                                      gabi_vhost_state_outcome_name(o), "message", err.message));
}
