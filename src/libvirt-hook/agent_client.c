/* SPDX-License-Identifier: MIT */
/* guestabid's JSON-RPC over its unix socket, one call at a time, each bounded in time. */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent_client.h"
#include <guestabi/util.h>

uint64_t agent_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Wait for `events` on c->fd until the deadline: 0, -ETIMEDOUT or -errno. */
static int wait_fd(struct agent_client *c, short events)
{
    for (;;) {
        uint64_t now = agent_now_ms();
        struct pollfd p = {.fd = c->fd, .events = events};
        int r;

        if (now >= c->deadline_ms)
            return -ETIMEDOUT;
        r = poll(&p, 1, (int)MIN(c->deadline_ms - now, (uint64_t)60000));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r > 0)
            return 0;
    }
}

int agent_client_open(struct agent_client *c, const char *path, uint64_t deadline_ms,
                      struct gabi_error *reterr)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int r;

    c->fd = -1;
    c->path = path;
    c->deadline_ms = deadline_ms;
    c->next_id = 1;
    if (strlen(path) >= sizeof(sa.sun_path))
        return gabi_error_set(reterr, -ENAMETOOLONG, path, "socket path too long");
    memcpy(sa.sun_path, path, strlen(path) + 1);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (c->fd < 0)
        return gabi_error_set(reterr, -errno, path, "socket: %s", strerror(errno));
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        r = -errno;
        if (r == -EAGAIN || r == -EINPROGRESS) {
            int err = 0;
            socklen_t len = sizeof(err);

            r = wait_fd(c, POLLOUT);
            if (r == 0 && getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err)
                r = -err;
        }
        if (r < 0) {
            close_and_clear(&c->fd);
            return gabi_error_set(reterr, r, path, "cannot connect to the guestabi agent: %s",
                                  r == -ETIMEDOUT ? "it did not accept in time" : strerror(-r));
        }
    }
    return 0;
}

void agent_client_close(struct agent_client *c)
{
    close_and_clear(&c->fd);
}

static int send_all(struct agent_client *c, const char *buf, size_t len)
{
    while (len) {
        ssize_t k = send(c->fd, buf, len, MSG_NOSIGNAL);

        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && errno == EAGAIN) {
            int r = wait_fd(c, POLLOUT);

            if (r < 0)
                return r;
            continue;
        }
        if (k < 0)
            return -errno;
        buf += k;
        len -= (size_t)k;
    }
    return 0;
}

/* One reply line (without the newline), malloc'd. Notifications the agent may send first
 * are lines too; the caller skips them. */
static int recv_line(struct agent_client *c, char **ret)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);

    if (!buf)
        return -ENOMEM;
    for (;;) {
        ssize_t k;
        int r;

        if (len + 1 >= cap) {
            char *nb;

            if (cap >= AGENT_MAX_REPLY) {
                free(buf);
                return -EMSGSIZE;
            }
            cap *= 2;
            nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                return -ENOMEM;
            }
            buf = nb;
        }
        /* peek, so that bytes past the newline stay for the next line */
        k = recv(c->fd, buf + len, cap - 1 - len, MSG_PEEK);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && errno == EAGAIN) {
            if ((r = wait_fd(c, POLLIN)) < 0) {
                free(buf);
                return r;
            }
            continue;
        }
        if (k <= 0) {
            free(buf);
            return k == 0 ? -ECONNRESET : -errno;
        }
        {
            char *nl = memchr(buf + len, '\n', (size_t)k);
            size_t take = nl ? (size_t)(nl - (buf + len)) + 1 : (size_t)k;

            k = recv(c->fd, buf + len, take, 0);
            if (k < 0) {
                free(buf);
                return -errno;
            }
            len += (size_t)k;
            if (nl) {
                buf[len - 1] = '\0';
                *ret = buf;
                return 0;
            }
        }
    }
}

int agent_client_call(struct agent_client *c, const char *method, json_t *params,
                      json_t **ret_result, int *ret_code, struct gabi_error *reterr)
{
    unsigned id = c->next_id++;
    json_t *req = json_pack("{s:s, s:s, s:o, s:I}", "jsonrpc", "2.0", "method", method, "params",
                            params ? params : json_object(), "id", (json_int_t)id);
    char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    int r;

    json_decref(req);
    if (!text)
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    r = send_all(c, text, strlen(text));
    if (r == 0)
        r = send_all(c, "\n", 1);
    free(text);
    if (r < 0)
        return gabi_error_set(reterr, r, c->path, "%s: cannot send to the guestabi agent: %s",
                              method, r == -ETIMEDOUT ? "it did not read in time" : strerror(-r));
    for (;;) {
        char *line = NULL;
        json_t *reply, *v;
        json_error_t jerr;

        r = recv_line(c, &line);
        if (r < 0)
            return gabi_error_set(reterr, r, c->path, "%s: no answer from the guestabi agent: %s",
                                  method,
                                  r == -ETIMEDOUT    ? "it did not answer in time"
                                  : r == -ECONNRESET ? "it closed the connection"
                                                     : strerror(-r));
        reply = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
        free(line);
        if (!reply || !json_is_object(reply)) {
            json_decref(reply);
            return gabi_error_set(reterr, -EBADMSG, c->path,
                                  "%s: the guestabi agent's answer is not a JSON object", method);
        }
        v = json_object_get(reply, "id");
        if (!json_is_integer(v) || json_integer_value(v) != (json_int_t)id) {
            json_decref(reply); /* a notification, or an answer to someone else */
            continue;
        }
        if ((v = json_object_get(reply, "error"))) {
            json_t *data = json_object_get(v, "data");
            const char *msg = json_string_value(json_object_get(v, "message"));
            const char *reason = json_string_value(json_object_get(data, "reason"));
            const char *path = json_string_value(json_object_get(data, "path"));

            if (ret_code)
                *ret_code = (int)json_integer_value(json_object_get(v, "code"));
            r = gabi_error_set(reterr, -EREMOTE, path, "%s",
                               reason ? reason
                               : msg  ? msg
                                      : "error without a message");
            json_decref(reply);
            return r;
        }
        v = json_object_get(reply, "result");
        if (!v) {
            json_decref(reply);
            return gabi_error_set(reterr, -EBADMSG, c->path,
                                  "%s: the guestabi agent answered neither result nor error",
                                  method);
        }
        *ret_result = json_incref(v);
        json_decref(reply);
        return 0;
    }
}
