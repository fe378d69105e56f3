/* SPDX-License-Identifier: MIT */
/*
 * guestabi failover migrate: a failover migration driven over the source QEMU's QMP socket,
 * with a bound on the guest's unplug. QEMU 7.2 waits in wait-unplug for as long as the guest
 * takes to release its failover primary; past the bound this cancels the migration and says
 * why. Every status change is printed with its time since the migrate command.
 */

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include <guestabi/util.h>

#define QMP_MAX_LINE (1u << 20)

struct qmp {
    int fd;
    char *buf;
    size_t len;
    int64_t deadline_ms;
};

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The next JSON line that is not an event. */
static int qmp_read(struct qmp *q, json_t **ret, char *why, size_t size)
{
    for (;;) {
        char *nl = q->len ? memchr(q->buf, '\n', q->len) : NULL;
        struct pollfd p = {.fd = q->fd, .events = POLLIN};
        int64_t left = q->deadline_ms - mono_ms();
        ssize_t n;

        if (nl) {
            json_t *j;

            *nl = '\0';
            j = json_loads(q->buf, 0, NULL);
            q->len -= (size_t)(nl + 1 - q->buf);
            memmove(q->buf, nl + 1, q->len);
            if (!j) {
                snprintf(why, size, "QEMU sent a line that is not JSON");
                return -EBADMSG;
            }
            if (json_object_get(j, "event")) {
                json_decref(j);
                continue;
            }
            *ret = j;
            return 0;
        }
        if (q->len >= QMP_MAX_LINE) {
            snprintf(why, size, "a QMP line longer than %u bytes", QMP_MAX_LINE);
            return -E2BIG;
        }
        if (left <= 0 || poll(&p, 1, (int)MIN(left, 1000)) < 0) {
            snprintf(why, size, "QEMU did not answer in time");
            return -ETIMEDOUT;
        }
        if (!(p.revents & (POLLIN | POLLHUP)))
            continue;
        n = read(q->fd, q->buf + q->len, QMP_MAX_LINE - q->len);
        if (n <= 0) {
            snprintf(why, size, "QEMU closed its QMP socket");
            return -EPIPE;
        }
        q->len += (size_t)n;
    }
}

/* Execute cmd (args stolen, may be NULL); *ret the "return" member (new reference). */
static int qmp_exec(struct qmp *q, const char *cmd, json_t *args, json_t **ret, char *why,
                    size_t size)
{
    json_t *req = json_pack("{s:s}", "execute", cmd), *rep = NULL, *err;
    char *text;
    int r;

    if (args)
        json_object_set_new(req, "arguments", args);
    text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!text)
        return -ENOMEM;
    r = write(q->fd, text, strlen(text)) == (ssize_t)strlen(text) && write(q->fd, "\n", 1) == 1
            ? 0
            : -EPIPE;
    free(text);
    if (r < 0) {
        snprintf(why, size, "cannot write to QEMU's QMP socket");
        return r;
    }
    if ((r = qmp_read(q, &rep, why, size)) < 0)
        return r;
    if ((err = json_object_get(rep, "error"))) {
        snprintf(why, size, "QMP %s: %s", cmd,
                 json_string_value(json_object_get(err, "desc")) ?: "error");
        json_decref(rep);
        return -EIO;
    }
    if (ret)
        *ret = json_incref(json_object_get(rep, "return"));
    json_decref(rep);
    return 0;
}

static int qmp_open(struct qmp *q, const char *path, char *why, size_t size)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    json_t *greeting = NULL;
    int r;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(why, size, "QMP socket path %s is too long", path);
        return -ENAMETOOLONG;
    }
    memcpy(sa.sun_path, path, strlen(path));
    q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    q->buf = malloc(QMP_MAX_LINE);
    if (q->fd < 0 || !q->buf || connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        snprintf(why, size, "cannot connect to QMP socket %s: %s", path, strerror(errno));
        return -errno;
    }
    if ((r = qmp_read(q, &greeting, why, size)) < 0)
        return r;
    r = json_object_get(greeting, "QMP") ? 0 : -EPROTO;
    json_decref(greeting);
    if (r < 0) {
        snprintf(why, size, "%s: no QMP greeting", path);
        return r;
    }
    return qmp_exec(q, "qmp_capabilities", NULL, NULL, why, size);
}

int cli_failover_migrate(struct cli *cli, const char *qmp_path, const char *uri, unsigned unplug_ms,
                         unsigned timeout_s)
{
    struct qmp q = {.fd = -1, .deadline_ms = mono_ms() + (int64_t)timeout_s * 1000};
    char why[512] = "", last[32] = "", reason[640] = "";
    int64_t t0, since = 0;
    int r;

    r = qmp_open(&q, qmp_path, why, sizeof(why));
    if (r == 0)
        r = qmp_exec(
            &q, "migrate-set-capabilities",
            json_pack("{s:[{s:s, s:b}]}", "capabilities", "capability", "events", "state", 1), NULL,
            why, sizeof(why));
    if (r == 0)
        r = qmp_exec(&q, "migrate", json_pack("{s:s}", "uri", uri), NULL, why, sizeof(why));
    t0 = mono_ms();
    while (r == 0) {
        json_t *info = NULL;
        const char *st;

        if ((r = qmp_exec(&q, "query-migrate", NULL, &info, why, sizeof(why))) < 0)
            break;
        st = json_string_value(json_object_get(info, "status"));
        st = st ? st : "none";
        if (strcmp(st, last) != 0) {
            printf("+%.3fs %s\n", (double)(mono_ms() - t0) / 1000.0, st);
            fflush(stdout);
            snprintf(last, sizeof(last), "%s", st);
            since = mono_ms();
        }
        if (!strcmp(st, "completed") || !strcmp(st, "failed") || !strcmp(st, "cancelled")) {
            const char *desc = json_string_value(json_object_get(info, "error-desc"));

            if (strcmp(st, "completed") != 0 && !reason[0])
                snprintf(reason, sizeof(reason), "the migration %s%s%s", st, desc ? ": " : "",
                         desc ? desc : "");
            json_decref(info);
            break;
        }
        json_decref(info); /* st with it: `last` holds the status */
        if (!strcmp(last, "wait-unplug") && !reason[0] && mono_ms() - since > (int64_t)unplug_ms) {
            snprintf(reason, sizeof(reason),
                     "the guest did not release its failover primary within %u ms "
                     "(migration in wait-unplug): migration cancelled",
                     unplug_ms);
            printf("+%.3fs %s\n", (double)(mono_ms() - t0) / 1000.0, reason);
            r = qmp_exec(&q, "migrate_cancel", NULL, NULL, why, sizeof(why));
        }
        if (r == 0 && mono_ms() >= q.deadline_ms) {
            snprintf(reason, sizeof(reason), "the migration did not end within %u s: cancelled",
                     timeout_s);
            q.deadline_ms = mono_ms() + 5000;
            (void)qmp_exec(&q, "migrate_cancel", NULL, NULL, why, sizeof(why));
            break;
        }
        usleep(20000);
    }
    if (q.fd >= 0)
        close(q.fd);
    free(q.buf);
    if (r < 0)
        return cli_errorf(cli, "failover migrate: %s", why);
    if (reason[0]) {
        fprintf(stderr, "%s: failover migrate: %s\n", cli->prog, reason);
        return EXIT_INCOMPATIBLE;
    }
    return 0;
}
