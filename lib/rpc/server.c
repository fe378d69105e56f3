/* SPDX-License-Identifier: MIT */
/*
 * The JSON-RPC 2.0 server (include/guestabi/rpc.h): a listening unix socket and its clients
 * in an epoll set of the server's own, driven by the caller's loop through
 * gabi_rpc_server_process(). Requests are answered in order, one line each.
 */

#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include <guestabi/rpc.h>

#include <guestabi/util.h>

#define READ_CHUNK   (64u << 10) /* bytes read from one client per event: fairness */
#define LISTEN_TOKEN UINT64_MAX
#define MAX_GROUPS   64

struct client {
    int fd;
    uint32_t gen;
    pid_t pid;
    uid_t uid;
    char peer[48]; /* "pid 123 uid 0", for the log */
    char *in;
    size_t in_len, in_cap, scanned;
    char *out;
    size_t out_off, out_len, out_cap;
    uint64_t started_ms; /* first byte of the unfinished line; 0: none */
    bool subscribed;
    bool closing; /* answered a fatal error: no more reads, dropped once written */
    bool want_out;
    bool doomed; /* overflowed while being served: dropped when its turn ends */
};

struct gabi_rpc_call {
    struct gabi_rpc_server *server;
    struct client *client;
    json_t *id;    /* the request's, NULL for a notification */
    bool in_batch; /* a batch is answered as one line: no deferring */
    bool deferred;
};

struct gabi_rpc_pending {
    size_t slot;
    uint32_t gen;
    json_t *id;
};

struct gabi_rpc_server {
    struct gabi_rpc_config cfg;
    char *path;
    int epfd, listen_fd;
    struct gabi_rpc_method *methods;
    size_t n_methods;
    void *userdata;
    struct client **slots; /* cfg.max_clients entries */
    size_t n_clients;
    struct client *current; /* being served: a notification never drops it */
    uint32_t next_gen;
    gabi_rpc_log_fn log_fn;
    void *log_userdata;
};

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void slog(struct gabi_rpc_server *s, enum gabi_log_level level, const char *peer,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void slog(struct gabi_rpc_server *s, enum gabi_log_level level, const char *peer,
                 const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (!s->log_fn)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    s->log_fn(level, peer, msg, s->log_userdata);
}

int gabi_rpc_code_for_errno(int code)
{
    switch (code) {
    case -EINVAL:
    case -ERANGE:
    case -ENAMETOOLONG:
        return GABI_RPC_INVALID_PARAMS;
    case -ENOENT:
    case -ESRCH:
        return GABI_RPC_NOT_FOUND;
    case -EEXIST:
    case -EADDRINUSE:
        return GABI_RPC_EXISTS;
    case -EOPNOTSUPP:
        return GABI_RPC_UNSUPPORTED;
    case -EIO:
    case -ENOSPC:
    case -EROFS:
    case -EDQUOT:
        return GABI_RPC_STORAGE;
    case -ECHILD:
        return GABI_RPC_BACKEND;
    case -E2BIG:
    case -EMFILE:
        return GABI_RPC_LIMIT;
    case -EPERM:
    case -EACCES:
        return GABI_RPC_PERMISSION;
    case -ETIMEDOUT:
        return GABI_RPC_TOO_SLOW;
    case -EREMOTEIO:
        return GABI_RPC_REMOTE;
    case -ENODEV:
        return GABI_RPC_DEVICE;
    default:
        return GABI_RPC_INTERNAL_ERROR;
    }
}

static const char *code_message(int code)
{
    switch (code) {
    case GABI_RPC_PARSE_ERROR:
        return "Parse error";
    case GABI_RPC_INVALID_REQUEST:
        return "Invalid Request";
    case GABI_RPC_METHOD_NOT_FOUND:
        return "Method not found";
    case GABI_RPC_INVALID_PARAMS:
        return "Invalid params";
    case GABI_RPC_NOT_FOUND:
        return "Not found";
    case GABI_RPC_EXISTS:
        return "Already exists";
    case GABI_RPC_UNSUPPORTED:
        return "Not supported on this host";
    case GABI_RPC_STORAGE:
        return "State database error";
    case GABI_RPC_BACKEND:
        return "Back-end failed";
    case GABI_RPC_LIMIT:
        return "Limit reached";
    case GABI_RPC_PERMISSION:
        return "Permission denied";
    case GABI_RPC_TOO_SLOW:
        return "Request too slow";
    case GABI_RPC_REMOTE:
        return "Remote service failed";
    case GABI_RPC_DEVICE:
        return "Device failed";
    default:
        return "Internal error";
    }
}

static const char *errno_name(int code)
{
    static const struct {
        int e;
        const char *name;
    } names[] = {
        {EINVAL, "EINVAL"},         {ERANGE, "ERANGE"},         {ENAMETOOLONG, "ENAMETOOLONG"},
        {ENOENT, "ENOENT"},         {ESRCH, "ESRCH"},           {EEXIST, "EEXIST"},
        {EADDRINUSE, "EADDRINUSE"}, {EOPNOTSUPP, "EOPNOTSUPP"}, {EIO, "EIO"},
        {ENOSPC, "ENOSPC"},         {EROFS, "EROFS"},           {EDQUOT, "EDQUOT"},
        {ECHILD, "ECHILD"},         {E2BIG, "E2BIG"},           {EMFILE, "EMFILE"},
        {EPERM, "EPERM"},           {EACCES, "EACCES"},         {ETIMEDOUT, "ETIMEDOUT"},
        {ENOMEM, "ENOMEM"},         {EREMOTEIO, "EREMOTEIO"},   {ENODEV, "ENODEV"},
    };

    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (-names[i].e == code)
            return names[i].name;
    return "EIO";
}

/* {"jsonrpc":"2.0","id":id,"error":{...}}; id is borrowed (NULL: null). */
static json_t *error_reply(json_t *id, int rpc_code, int err_code, const char *path,
                           const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static json_t *error_reply(json_t *id, int rpc_code, int err_code, const char *path,
                           const char *fmt, ...)
{
    char reason[GABI_ERROR_MESSAGE_MAX];
    json_t *data;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    data = json_pack("{s:s, s:s, s:s}", "errno", errno_name(err_code), "path", path ? path : "",
                     "reason", reason);
    return json_pack("{s:s, s:O, s:{s:i, s:s, s:o}}", "jsonrpc", "2.0", "id", id ? id : json_null(),
                     "error", "code", rpc_code, "message", code_message(rpc_code), "data", data);
}

/* ---- clients ------------------------------------------------------------------------------ */

static uint64_t token(size_t slot, uint32_t gen)
{
    return ((uint64_t)gen << 32) | (uint64_t)slot;
}

static size_t slot_of(const struct gabi_rpc_server *s, const struct client *c)
{
    for (size_t i = 0; i < s->cfg.max_clients; i++)
        if (s->slots[i] == c)
            return i;
    return SIZE_MAX;
}

static void client_drop(struct gabi_rpc_server *s, struct client *c, const char *why)
{
    size_t slot = slot_of(s, c);

    slog(s, strcmp(why, "closed by the peer") == 0 ? GABI_LOG_DEBUG : GABI_LOG_INFO, c->peer,
         "disconnected: %s", why);
    if (slot != SIZE_MAX) {
        s->slots[slot] = NULL;
        s->n_clients--;
    }
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

static int client_update_events(struct gabi_rpc_server *s, struct client *c)
{
    bool want = c->out_len > c->out_off;
    struct epoll_event ev;

    if (want == c->want_out)
        return 0;
    ev.events = (c->closing ? 0 : EPOLLIN) | (want ? EPOLLOUT : 0);
    ev.data.u64 = token(slot_of(s, c), c->gen);
    if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        return -errno;
    c->want_out = want;
    return 0;
}

/* Write what is queued. <0: the client is gone (the caller drops it). */
static int client_flush(struct client *c)
{
    while (c->out_off < c->out_len) {
        ssize_t k =
            send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_DONTWAIT | MSG_NOSIGNAL);

        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && errno == EAGAIN)
            break;
        if (k <= 0)
            return -EPIPE;
        c->out_off += (size_t)k;
    }
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    return 0;
}

/* Queue one line (steals j). <0: the client must be dropped (overflow, gone). */
static int client_send(struct gabi_rpc_server *s, struct client *c, json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT);
    size_t len;

    json_decref(j);
    if (!text)
        return -ENOMEM;
    len = strlen(text);
    if (c->out_off > 0 && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len - c->out_off + len + 1 > s->cfg.max_output) {
        free(text);
        return -ENOBUFS;
    }
    if (c->out_len + len + 1 > c->out_cap) {
        size_t pending = c->out_len - c->out_off, cap = MAX(c->out_cap * 2, pending + len + 1);
        char *n;

        if (c->out_off) {
            memmove(c->out, c->out + c->out_off, pending);
            c->out_off = 0;
            c->out_len = pending;
        }
        if (c->out_len + len + 1 > c->out_cap) {
            n = realloc(c->out, cap);
            if (!n) {
                free(text);
                return -ENOMEM;
            }
            c->out = n;
            c->out_cap = cap;
        }
    }
    memcpy(c->out + c->out_len, text, len);
    c->out[c->out_len + len] = '\n';
    c->out_len += len + 1;
    free(text);
    if (client_flush(c) < 0)
        return -EPIPE;
    return client_update_events(s, c);
}

/* ---- requests ----------------------------------------------------------------------------- */

/* Whether the JSON text nests arrays and objects at most max deep (strings are skipped). */
static bool depth_ok(const char *p, size_t len, size_t max)
{
    size_t depth = 0;
    bool in_str = false, esc = false;

    for (size_t i = 0; i < len; i++) {
        char ch = p[i];

        if (in_str) {
            if (esc)
                esc = false;
            else if (ch == '\\')
                esc = true;
            else if (ch == '"')
                in_str = false;
            continue;
        }
        if (ch == '"')
            in_str = true;
        else if (ch == '[' || ch == '{') {
            if (++depth > max)
                return false;
        } else if ((ch == ']' || ch == '}') && depth)
            depth--;
    }
    return true;
}

static int builtin_methods(struct gabi_rpc_server *s, json_t **ret)
{
    json_t *arr = json_array();

    json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "name", "rpc.methods", "params", "{}",
                                         "result", "{\"methods\": [{name, params, result}...]}"));
    for (size_t i = 0; i < s->n_methods; i++)
        json_array_append_new(
            arr, json_pack("{s:s, s:s, s:s}", "name", s->methods[i].name, "params",
                           s->methods[i].params ? s->methods[i].params : "{}", "result",
                           s->methods[i].result ? s->methods[i].result : ""));
    *ret = json_pack("{s:o}", "methods", arr);
    return *ret ? 0 : -ENOMEM;
}

/* One request object: the reply, or NULL for a notification. */
static json_t *handle_one(struct gabi_rpc_server *s, struct client *c, json_t *req, bool in_batch)
{
    json_t *id = NULL, *method, *params, *result = NULL;
    const struct gabi_rpc_method *m = NULL;
    struct gabi_rpc_call call = {s, c, NULL, in_batch, false};
    struct gabi_error err = {0};
    const char *key, *name;
    json_t *v;
    bool notification;
    int r;

    if (!json_is_object(req))
        return error_reply(NULL, GABI_RPC_INVALID_REQUEST, -EINVAL, "",
                           "a request is a JSON object");
    id = json_object_get(req, "id");
    notification = id == NULL;
    if (id && !json_is_string(id) && !json_is_integer(id) && !json_is_null(id))
        return error_reply(NULL, GABI_RPC_INVALID_REQUEST, -EINVAL, "id",
                           "\"id\" must be a string, an integer or null");
    json_object_foreach (req, key, v)
        if (strcmp(key, "jsonrpc") && strcmp(key, "id") && strcmp(key, "method") &&
            strcmp(key, "params"))
            return error_reply(id, GABI_RPC_INVALID_REQUEST, -EINVAL, key,
                               "unknown member \"%.64s\" (jsonrpc, id, method, params)", key);
    if (!json_is_string(json_object_get(req, "jsonrpc")) ||
        strcmp(json_string_value(json_object_get(req, "jsonrpc")), "2.0") != 0)
        return error_reply(id, GABI_RPC_INVALID_REQUEST, -EINVAL, "jsonrpc",
                           "\"jsonrpc\" must be \"2.0\"");
    method = json_object_get(req, "method");
    if (!json_is_string(method))
        return error_reply(id, GABI_RPC_INVALID_REQUEST, -EINVAL, "method",
                           "\"method\" must be a string");
    name = json_string_value(method);
    params = json_object_get(req, "params");
    if (params && !json_is_object(params)) {
        if (notification)
            return NULL;
        return error_reply(id, GABI_RPC_INVALID_PARAMS, -EINVAL, "params",
                           "\"params\" must be an object (parameters by name)");
    }
    if (strcmp(name, "rpc.methods") == 0) {
        r = builtin_methods(s, &result);
        if (r < 0)
            gabi_error_set(&err, r, NULL, "out of memory");
    } else {
        for (size_t i = 0; i < s->n_methods && !m; i++)
            if (strcmp(s->methods[i].name, name) == 0)
                m = &s->methods[i];
        if (!m) {
            if (notification)
                return NULL;
            return error_reply(id, GABI_RPC_METHOD_NOT_FOUND, -ENOENT, "method",
                               "no method \"%.128s\" (rpc.methods lists them)", name);
        }
        call.id = id;
        if (!params) {
            params = json_object();
            r = m->fn(&call, params, &result, &err, s->userdata);
            json_decref(params);
        } else {
            r = m->fn(&call, params, &result, &err, s->userdata);
        }
    }
    if (call.deferred)
        return NULL; /* answered later, by gabi_rpc_pending_reply() */
    if (notification) {
        json_decref(result);
        return NULL;
    }
    if (r < 0) {
        json_decref(result);
        return error_reply(id, gabi_rpc_code_for_errno(r), r, err.where, "%s", err.message);
    }
    return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result",
                     result ? result : json_null());
}

/* One complete line. <0: drop the client. */
static int handle_line(struct gabi_rpc_server *s, struct client *c, const char *line, size_t len)
{
    json_error_t jerr;
    json_t *req, *reply;

    while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        len--;
    if (len == 0)
        return 0; /* empty lines are keep-alives */
    if (!depth_ok(line, len, s->cfg.max_depth))
        return client_send(s, c,
                           error_reply(NULL, GABI_RPC_INVALID_REQUEST, -E2BIG, "",
                                       "JSON nested deeper than %zu levels", s->cfg.max_depth));
    req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!req)
        return client_send(s, c,
                           error_reply(NULL, GABI_RPC_PARSE_ERROR, -EINVAL, "", "column %d: %s",
                                       jerr.column, jerr.text));
    if (json_is_array(req)) {
        size_t n = json_array_size(req), i;
        json_t *replies, *e;

        if (n == 0 || n > s->cfg.max_batch) {
            json_decref(req);
            if (n == 0)
                return client_send(
                    s, c,
                    error_reply(NULL, GABI_RPC_INVALID_REQUEST, -EINVAL, "", "an empty batch"));
            return client_send(s, c,
                               error_reply(NULL, GABI_RPC_INVALID_REQUEST, -E2BIG, "",
                                           "a batch holds at most %zu requests", s->cfg.max_batch));
        }
        replies = json_array();
        json_array_foreach (req, i, e) {
            json_t *one = handle_one(s, c, e, true);

            if (one)
                json_array_append_new(replies, one);
        }
        json_decref(req);
        if (json_array_size(replies) == 0) {
            json_decref(replies);
            return 0;
        }
        return client_send(s, c, replies);
    }
    reply = handle_one(s, c, req, false);
    json_decref(req);
    return reply ? client_send(s, c, reply) : 0;
}

/* Read what one client sent and answer every complete line. <0: drop it. */
static int client_read(struct gabi_rpc_server *s, struct client *c, const char **why)
{
    size_t room, start;
    ssize_t k;
    char *nl;

    if (c->in_cap - c->in_len < READ_CHUNK) {
        size_t cap = c->in_len + READ_CHUNK;
        char *n = realloc(c->in, cap);

        if (!n) {
            *why = "out of memory";
            return -ENOMEM;
        }
        c->in = n;
        c->in_cap = cap;
    }
    room = MIN(c->in_cap - c->in_len, (size_t)READ_CHUNK);
    k = recv(c->fd, c->in + c->in_len, room, MSG_DONTWAIT);
    if (k < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (k <= 0) {
        *why = k == 0 ? "closed by the peer" : "read error";
        return -EPIPE;
    }
    if (c->in_len == 0)
        c->started_ms = now_ms();
    c->in_len += (size_t)k;
    start = 0;
    while (!c->closing && (nl = memchr(c->in + c->scanned, '\n', c->in_len - c->scanned))) {
        size_t end = (size_t)(nl - c->in);

        if (end - start > s->cfg.max_request)
            break; /* reported below */
        if (handle_line(s, c, c->in + start, end - start) < 0) {
            *why = "its replies overflowed (it does not read them)";
            return -ENOBUFS;
        }
        start = end + 1;
        c->scanned = start;
    }
    if (start) {
        memmove(c->in, c->in + start, c->in_len - start);
        c->in_len -= start;
        c->scanned -= start;
        c->started_ms = c->in_len ? now_ms() : 0;
    }
    if (!c->closing) {
        nl = memchr(c->in, '\n', c->in_len);
        if ((nl ? (size_t)(nl - c->in) : c->in_len) > s->cfg.max_request) {
            c->closing = true;
            if (client_send(s, c,
                            error_reply(NULL, GABI_RPC_INVALID_REQUEST, -E2BIG, "",
                                        "request longer than %zu bytes", s->cfg.max_request)) < 0) {
                *why = "request too long";
                return -E2BIG;
            }
            c->in_len = c->scanned = 0;
            c->started_ms = 0;
        } else {
            c->scanned = c->in_len;
        }
    }
    if (c->closing && c->out_len == c->out_off) {
        *why = "request too long";
        return -E2BIG;
    }
    if (c->closing) {
        /* no more reads: only the error line left to write */
        struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = token(slot_of(s, c), c->gen)};

        epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = true;
    }
    return 0;
}

static bool peer_allowed(const struct gabi_rpc_server *s, int fd, const struct ucred *cred)
{
    gid_t groups[MAX_GROUPS];
    socklen_t len = sizeof(groups);

    if (cred->uid == 0 || cred->uid == geteuid())
        return true;
    if (s->cfg.gid == (gid_t)-1)
        return false;
    if (cred->gid == s->cfg.gid)
        return true;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0)
        for (size_t i = 0; i < len / sizeof(gid_t); i++)
            if (groups[i] == s->cfg.gid)
                return true;
    return false;
}

/* Say why in one line, best effort, and close. */
static void refuse(int fd, int rpc_code, int err_code, const char *reason)
{
    json_t *j = error_reply(NULL, rpc_code, err_code, "", "%s", reason);
    char *text = json_dumps(j, JSON_COMPACT);

    json_decref(j);
    if (text) {
        size_t len = strlen(text);

        text[len] = '\n';
        if (send(fd, text, len + 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
            /* the peer is gone: nothing to tell */
        }
        free(text);
    }
    close(fd);
}

static void accept_clients(struct gabi_rpc_server *s)
{
    for (int tries = 0; tries < 16; tries++) {
        struct ucred cred = {0};
        socklen_t len = sizeof(cred);
        struct epoll_event ev;
        struct client *c;
        char peer[48], why[160];
        size_t slot;
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (fd < 0)
            return;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
            close(fd);
            continue;
        }
        snprintf(peer, sizeof(peer), "pid %d uid %u", (int)cred.pid, (unsigned)cred.uid);
        if (!peer_allowed(s, fd, &cred)) {
            snprintf(why, sizeof(why), "uid %u is not root and not in the agent's group",
                     (unsigned)cred.uid);
            slog(s, GABI_LOG_INFO, peer, "refused: %s", why);
            refuse(fd, GABI_RPC_PERMISSION, -EACCES, why);
            continue;
        }
        if (s->n_clients >= s->cfg.max_clients) {
            snprintf(why, sizeof(why), "too many clients (at most %zu)", s->cfg.max_clients);
            slog(s, GABI_LOG_INFO, peer, "refused: %s", why);
            refuse(fd, GABI_RPC_LIMIT, -EMFILE, why);
            continue;
        }
        c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        for (slot = 0; s->slots[slot]; slot++)
            ;
        c->fd = fd;
        c->gen = ++s->next_gen;
        c->pid = cred.pid;
        c->uid = cred.uid;
        memcpy(c->peer, peer, sizeof(peer));
        ev.events = EPOLLIN;
        ev.data.u64 = token(slot, c->gen);
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
            continue;
        }
        s->slots[slot] = c;
        s->n_clients++;
        slog(s, GABI_LOG_DEBUG, peer, "connected");
    }
}

/* ---- the server --------------------------------------------------------------------------- */

int gabi_rpc_server_new(const struct gabi_rpc_config *cfg, const struct gabi_rpc_method *methods,
                        size_t n_methods, void *userdata, struct gabi_rpc_server **ret,
                        struct gabi_error *reterr)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct gabi_rpc_server *s;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = LISTEN_TOKEN};
    struct stat st;
    int r;

    if (!cfg->path || strlen(cfg->path) >= sizeof(sa.sun_path))
        return gabi_error_set(reterr, -ENAMETOOLONG, cfg->path, "socket path too long");
    s = calloc(1, sizeof(*s));
    if (!s)
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    s->cfg = *cfg;
    s->epfd = s->listen_fd = -1;
    if (!s->cfg.mode)
        s->cfg.mode = 0660;
#define DEF(f, d)                                                                                  \
    if (!s->cfg.f)                                                                                 \
    s->cfg.f = (d)
    DEF(max_request, GABI_RPC_DEFAULT_MAX_REQUEST);
    DEF(max_depth, GABI_RPC_DEFAULT_MAX_DEPTH);
    DEF(max_batch, GABI_RPC_DEFAULT_MAX_BATCH);
    DEF(max_clients, GABI_RPC_DEFAULT_MAX_CLIENTS);
    DEF(max_output, GABI_RPC_DEFAULT_MAX_OUTPUT);
    DEF(request_ms, GABI_RPC_DEFAULT_REQUEST_MS);
#undef DEF
    s->path = strdup(cfg->path);
    s->methods = calloc(n_methods ? n_methods : 1, sizeof(*s->methods));
    s->slots = calloc(s->cfg.max_clients, sizeof(*s->slots));
    if (!s->path || !s->methods || !s->slots) {
        r = gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
        goto fail;
    }
    if (n_methods)
        memcpy(s->methods, methods, n_methods * sizeof(*methods));
    s->n_methods = n_methods;
    s->userdata = userdata;
    if (lstat(cfg->path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            r = gabi_error_set(reterr, -EEXIST, cfg->path, "exists and is not a socket");
            goto fail;
        }
        unlink(cfg->path);
    }
    memcpy(sa.sun_path, cfg->path, strlen(cfg->path));
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s->epfd < 0 || s->listen_fd < 0) {
        r = gabi_error_set(reterr, -errno, cfg->path, "socket: %s", strerror(errno));
        goto fail;
    }
    {
        /* bind with the final mode already in place: no window where anyone may connect */
        mode_t old = umask(0777 & ~s->cfg.mode);

        r = bind(s->listen_fd, (struct sockaddr *)&sa, sizeof(sa));
        umask(old);
    }
    if (r < 0 || chmod(cfg->path, s->cfg.mode) < 0 ||
        (s->cfg.gid != (gid_t)-1 && chown(cfg->path, (uid_t)-1, s->cfg.gid) < 0) ||
        listen(s->listen_fd, 128) < 0 || epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->listen_fd, &ev) < 0) {
        r = gabi_error_set(reterr, -errno, cfg->path, "listen: %s", strerror(errno));
        goto fail;
    }
    *ret = s;
    return 0;
fail:
    gabi_rpc_server_free(s);
    return r;
}

struct gabi_rpc_server *gabi_rpc_server_free(struct gabi_rpc_server *s)
{
    if (!s)
        return NULL;
    for (size_t i = 0; s->slots && i < s->cfg.max_clients; i++)
        if (s->slots[i])
            client_drop(s, s->slots[i], "server stopping");
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
        unlink(s->path);
    }
    if (s->epfd >= 0)
        close(s->epfd);
    free(s->slots);
    free(s->methods);
    free(s->path);
    free(s);
    return NULL;
}

int gabi_rpc_server_fd(const struct gabi_rpc_server *s)
{
    return s->epfd;
}

size_t gabi_rpc_server_n_clients(const struct gabi_rpc_server *s)
{
    return s->n_clients;
}

int gabi_rpc_server_timeout_ms(const struct gabi_rpc_server *s)
{
    uint64_t now = now_ms(), next = UINT64_MAX;

    for (size_t i = 0; i < s->cfg.max_clients; i++) {
        const struct client *c = s->slots[i];

        if (c && c->started_ms)
            next = MIN(next, c->started_ms + s->cfg.request_ms);
    }
    if (next == UINT64_MAX)
        return -1;
    return next <= now ? 0 : (int)MIN(next - now, (uint64_t)INT32_MAX);
}

static void expire(struct gabi_rpc_server *s)
{
    uint64_t now = now_ms();

    for (size_t i = 0; i < s->cfg.max_clients; i++) {
        struct client *c = s->slots[i];

        if (!c || !c->started_ms || now < c->started_ms + s->cfg.request_ms)
            continue;
        c->started_ms = 0;
        client_send(s, c,
                    error_reply(NULL, GABI_RPC_TOO_SLOW, -ETIMEDOUT, "",
                                "request not complete after %u ms", s->cfg.request_ms));
        client_drop(s, c, "request too slow");
    }
}

int gabi_rpc_server_process(struct gabi_rpc_server *s)
{
    struct epoll_event ev[32];
    int r, k = epoll_wait(s->epfd, ev, ARRAY_SIZE(ev), 0);

    if (k < 0 && errno != EINTR)
        return -errno;
    for (int i = 0; i < k; i++) {
        uint64_t t = ev[i].data.u64;
        size_t slot = (size_t)(t & 0xffffffffu);
        struct client *c;
        const char *why = NULL;

        if (t == LISTEN_TOKEN) {
            accept_clients(s);
            continue;
        }
        c = slot < s->cfg.max_clients ? s->slots[slot] : NULL;
        if (!c || c->gen != (uint32_t)(t >> 32))
            continue; /* dropped earlier in this batch */
        if (ev[i].events & EPOLLOUT) {
            if (client_flush(c) < 0) {
                client_drop(s, c, "write error");
                continue;
            }
            if (c->closing && c->out_off == c->out_len) {
                client_drop(s, c, "request too long");
                continue;
            }
            client_update_events(s, c);
        }
        if (!c->closing && (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
            s->current = c;
            r = client_read(s, c, &why);
            s->current = NULL;
            if (r < 0 || c->doomed)
                client_drop(s, c, r < 0 && why ? why : "its replies overflowed");
        }
    }
    expire(s);
    return 0;
}

void gabi_rpc_call_subscribe(struct gabi_rpc_call *call)
{
    call->client->subscribed = true;
}

void gabi_rpc_call_peer(const struct gabi_rpc_call *call, pid_t *ret_pid, uid_t *ret_uid)
{
    if (ret_pid)
        *ret_pid = call->client->pid;
    if (ret_uid)
        *ret_uid = call->client->uid;
}

size_t gabi_rpc_server_notify(struct gabi_rpc_server *s, const char *method, json_t *params)
{
    size_t n = 0;

    for (size_t i = 0; i < s->cfg.max_clients; i++) {
        struct client *c = s->slots[i];

        if (!c || !c->subscribed || c->closing)
            continue;
        if (client_send(s, c,
                        json_pack("{s:s, s:s, s:O}", "jsonrpc", "2.0", "method", method, "params",
                                  params)) < 0) {
            if (c == s->current)
                c->doomed = true;
            else
                client_drop(s, c, "its notifications overflowed (it does not read them)");
        } else
            n++;
    }
    json_decref(params);
    return n;
}

void gabi_rpc_server_set_log(struct gabi_rpc_server *s, gabi_rpc_log_fn fn, void *userdata)
{
    s->log_fn = fn;
    s->log_userdata = userdata;
}

struct gabi_rpc_pending *gabi_rpc_call_defer(struct gabi_rpc_call *call)
{
    struct gabi_rpc_pending *p;

    if (call->in_batch || call->deferred)
        return NULL;
    p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->slot = slot_of(call->server, call->client);
    p->gen = call->client->gen;
    p->id = call->id ? json_incref(call->id) : NULL;
    call->deferred = true;
    return p;
}

void gabi_rpc_call_undefer(struct gabi_rpc_call *call)
{
    call->deferred = false;
}

void gabi_rpc_pending_reply(struct gabi_rpc_server *s, struct gabi_rpc_pending *p, json_t *result,
                            const struct gabi_error *err)
{
    struct client *c;
    json_t *reply;

    if (!p) {
        json_decref(result);
        return;
    }
    c = p->slot < s->cfg.max_clients ? s->slots[p->slot] : NULL;
    if (c && c->gen == p->gen && p->id && !c->closing) {
        if (err)
            reply = error_reply(p->id, gabi_rpc_code_for_errno(err->code), err->code, err->where,
                                "%s", err->message);
        else
            reply = json_pack("{s:s, s:O, s:O}", "jsonrpc", "2.0", "id", p->id, "result",
                              result ? result : json_null());
        if (client_send(s, c, reply) < 0)
            client_drop(s, c, "its replies overflowed (it does not read them)");
    }
    json_decref(result);
    gabi_rpc_pending_free(p);
}

struct gabi_rpc_pending *gabi_rpc_pending_free(struct gabi_rpc_pending *p)
{
    if (p) {
        json_decref(p->id);
        free(p);
    }
    return NULL;
}
