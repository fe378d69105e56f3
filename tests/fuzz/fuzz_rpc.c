/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: lib/rpc's server. The input is what one client sends (a newline is added at
 * the end) over a real unix socket to a server with small bounds (4 KiB per request, 8 levels,
 * 4 per batch) and four methods: one that echoes its typed parameters, one that always fails,
 * one that subscribes and notifies, one that answers later (deferred). Every line back must be a
 * JSON-RPC 2.0 response (a result, or an error whose data names a path and a reason) or a
 * notification; the server must never crash or leak, and must forget the client once it hangs up.
 */

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <guestabi/rpc.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int m_echo(struct gabi_rpc_call *call, json_t *params, json_t **ret,
                  struct gabi_error *reterr, void *userdata)
{
    static const char *const known[] = {"name", "flag", "doc", NULL};
    const char *name;
    bool flag;
    json_t *doc = NULL;
    int r;

    (void)call;
    (void)userdata;
    if ((r = gabi_rpc_param_only(params, known, reterr)) < 0 ||
        (r = gabi_rpc_param_string(params, "name", true, 64, &name, reterr)) < 0 ||
        (r = gabi_rpc_param_bool(params, "flag", false, &flag, reterr)) < 0)
        return r;
    if (json_object_get(params, "doc") &&
        (r = gabi_rpc_param_object(params, "doc", &doc, reterr)) < 0)
        return r;
    *ret = json_pack("{s:s, s:b, s:O?}", "name", name, "flag", flag, "doc", doc);
    return 0;
}

static int m_fail(struct gabi_rpc_call *call, json_t *params, json_t **ret,
                  struct gabi_error *reterr, void *userdata)
{
    (void)call;
    (void)params;
    (void)ret;
    (void)userdata;
    return gabi_error_set(reterr, -ENOENT, "params.id", "no such thing");
}

static struct gabi_rpc_server *server;

static int m_subscribe(struct gabi_rpc_call *call, json_t *params, json_t **ret,
                       struct gabi_error *reterr, void *userdata)
{
    (void)params;
    (void)reterr;
    (void)userdata;
    gabi_rpc_call_subscribe(call);
    /* a notification while the subscriber's own request is being served */
    gabi_rpc_server_notify(server, "thing.happened", json_pack("{s:i}", "n", 1));
    *ret = json_true();
    return 0;
}

/* Answers later (in a batch: at once); the previous one held is answered now. */
static struct gabi_rpc_pending *held;

static int m_later(struct gabi_rpc_call *call, json_t *params, json_t **ret,
                   struct gabi_error *reterr, void *userdata)
{
    struct gabi_rpc_pending *p = gabi_rpc_call_defer(call);

    (void)params;
    (void)reterr;
    (void)userdata;
    if (!p) {
        *ret = json_string("now");
        return 0;
    }
    if (held)
        gabi_rpc_pending_reply(server, held, json_string("later"), NULL);
    held = p;
    return 0;
}

static const struct gabi_rpc_method methods[] = {
    {"echo", m_echo, "{name, flag?, doc?}", "the same"},
    {"fail", m_fail, "{}", "never"},
    {"subscribe", m_subscribe, "{}", "true"},
    {"later", m_later, "{}", "\"later\", some time after"},
};

static char path[108], dir_path[64];

static void cleanup(void)
{
    held = gabi_rpc_pending_free(held);
    server = gabi_rpc_server_free(server); /* unlinks the socket */
    rmdir(dir_path);
}

static void setup(void)
{
    char dir[] = "/tmp/gabi-fuzz-rpc-XXXXXX";
    struct gabi_rpc_config cfg = {
        .gid = (gid_t)-1,
        .max_request = 4096,
        .max_depth = 8,
        .max_batch = 4,
        .max_output = 1 << 20,
        .request_ms = 60000,
    };
    struct gabi_error err = {0};

    if (!mkdtemp(dir))
        abort();
    snprintf(dir_path, sizeof(dir_path), "%s", dir);
    snprintf(path, sizeof(path), "%s/rpc.sock", dir);
    cfg.path = path;
    if (gabi_rpc_server_new(&cfg, methods, sizeof(methods) / sizeof(methods[0]), NULL, &server,
                            &err) < 0) {
        fprintf(stderr, "fuzz_rpc: %s: %s\n", err.where, err.message);
        abort();
    }
    atexit(cleanup);
}

/* One line from the server must be a response or a notification. */
static void check_line(const char *line, size_t len)
{
    json_t *j = json_loadb(line, len, 0, NULL), *one;
    size_t i;

    if (!j)
        abort();
    if (json_is_array(j)) {
        if (json_array_size(j) == 0)
            abort();
    }
    for (i = 0; i < (json_is_array(j) ? json_array_size(j) : 1); i++) {
        one = json_is_array(j) ? json_array_get(j, i) : j;
        if (!json_is_object(one) || !json_is_string(json_object_get(one, "jsonrpc")))
            abort();
        if (json_object_get(one, "method"))
            continue; /* a notification */
        if (!json_object_get(one, "id"))
            abort();
        if (json_object_get(one, "error")) {
            json_t *e = json_object_get(one, "error"), *d = json_object_get(e, "data");

            if (!json_is_integer(json_object_get(e, "code")) ||
                !json_is_string(json_object_get(d, "path")) ||
                !json_is_string(json_object_get(d, "reason")) ||
                !json_string_length(json_object_get(d, "reason")))
                abort();
        } else if (!json_object_get(one, "result")) {
            abort();
        }
    }
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    static char in[1 << 16];
    size_t sent = 0, have = 0, total = size + 1;
    int fd, idle = 0;
    bool hung_up = false;

    if (!server)
        setup();
    memcpy(sa.sun_path, path, strlen(path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        abort();
    /* send, serve, read, until everything is sent and nothing more comes back */
    while (idle < 3) {
        bool progress = false;
        ssize_t k;
        char *nl;

        if (sent < total && !hung_up) {
            const char *p = sent < size ? (const char *)data + sent : "\n";
            size_t n = sent < size ? size - sent : 1;

            k = send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (k > 0) {
                sent += (size_t)k;
                progress = true;
            } else if (k < 0 && errno != EAGAIN) {
                hung_up = true; /* the server dropped us (too long, ...) */
            }
        }
        gabi_rpc_server_process(server);
        k = recv(fd, in + have, sizeof(in) - have, MSG_DONTWAIT);
        if (k > 0) {
            have += (size_t)k;
            progress = true;
        } else if (k == 0) {
            hung_up = true;
        }
        while ((nl = memchr(in, '\n', have))) {
            check_line(in, (size_t)(nl - in));
            have -= (size_t)(nl - in) + 1;
            memmove(in, nl + 1, have);
        }
        if (have == sizeof(in))
            have = 0; /* a line longer than we keep: the server's output is bounded elsewhere */
        if (progress)
            idle = 0;
        else if (sent == total || hung_up)
            idle++;
        else
            poll(NULL, 0, 0);
    }
    if (held && size && (data[0] & 1)) {
        gabi_rpc_pending_reply(server, held, json_string("later"), NULL);
        held = NULL;
    }
    close(fd);
    if (held) { /* its client is gone: nobody to answer, still freed */
        struct gabi_error err = {0};

        gabi_error_set(&err, -EIO, "params", "too late");
        gabi_rpc_pending_reply(server, held, NULL, &err);
        held = NULL;
    }
    for (int i = 0; i < 4 && gabi_rpc_server_n_clients(server); i++)
        gabi_rpc_server_process(server);
    if (gabi_rpc_server_n_clients(server) != 0)
        abort(); /* the server must forget a client that hung up */
    return 0;
}
