/* SPDX-License-Identifier: MIT */
/*
 * guestabid's RPC cost: abi.check through the agent's socket (requests per second, p50 and
 * p99 latency, with 1 and with 16 clients each sending one request at a time) next to the same
 * check in-process (the bare gabi_check, and pin parse + check + verdict JSON, the work the
 * agent does minus the transport); then port.add latency (reply = the back-end listens, a
 * front-end can connect) as the host goes from 1 to N ports, and port.del. Starts its own
 * agent on a scratch directory. Prints figures; not a test.
 *
 * Usage: bench_rpc [SECONDS_PER_RUN (2)] [PORTS (256)]
 */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include <guestabi/abi.h>

#include "benchutil.h"

#define MAX_CLIENTS 16
#define MAX_SAMPLES (1u << 21)

static const char *pin_text =
    "{\"schema\": \"guestabi.pin/1\", \"vm\": \"vm42\", \"platform\": \"linux-5.14\", "
    "\"devices\": [{\"id\": \"net0\", \"class\": \"virtio-net\", \"mode\": "
    "\"upstream.guestabi-net.v1\"}, {\"id\": \"disk0\", \"class\": \"virtio-blk\", \"mode\": "
    "\"upstream.guestabi-blk.v1\"}]}";

static char dir[] = "/tmp/gabi-bench-rpc-XXXXXX";
static char sock_path[256];

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1));

    return n ? v[i] : 0;
}

/* ---- a blocking client ------------------------------------------------------------------- */

struct client {
    int fd;
    char buf[1 << 16];
    size_t len;
};

static int client_open(struct client *c)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    memcpy(sa.sun_path, sock_path, strlen(sock_path));
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    c->len = 0;
    return c->fd >= 0 && connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : -errno;
}

/* Send one line, read one line; the reply's first bytes into ret (NUL-terminated). */
static int client_call(struct client *c, const char *line, size_t len, char *ret, size_t size)
{
    char *nl;

    if (send(c->fd, line, len, MSG_NOSIGNAL) != (ssize_t)len)
        return -EIO;
    while (!(nl = memchr(c->buf, '\n', c->len))) {
        ssize_t k;

        if (c->len == sizeof(c->buf))
            c->len = 0; /* a long reply: keep only its end */
        k = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
        if (k <= 0)
            return -EIO;
        c->len += (size_t)k;
    }
    if (ret) {
        size_t n = (size_t)(nl - c->buf) < size - 1 ? (size_t)(nl - c->buf) : size - 1;
        memcpy(ret, c->buf, n);
        ret[n] = '\0';
    }
    c->len -= (size_t)(nl - c->buf) + 1;
    memmove(c->buf, nl + 1, c->len);
    return 0;
}

/* ---- abi.check through the RPC ----------------------------------------------------------- */

struct worker {
    pthread_t t;
    double seconds;
    double *lat;
    size_t n, cap;
    int err;
};

static char *check_line;
static size_t check_len;

static void *work(void *arg)
{
    struct worker *w = arg;
    struct client c;
    double end;
    char head[64];

    if (client_open(&c) < 0) {
        w->err = 1;
        return NULL;
    }
    end = bench_now() + w->seconds;
    while (bench_now() < end && w->n < w->cap) {
        double t0 = bench_now();

        if (client_call(&c, check_line, check_len, head, sizeof(head)) < 0 ||
            !strstr(head, "\"result\"")) {
            w->err = 1;
            break;
        }
        w->lat[w->n++] = bench_now() - t0;
    }
    close(c.fd);
    return NULL;
}

static void rpc_run(unsigned n_clients, double seconds)
{
    struct worker w[MAX_CLIENTS] = {{0}};
    double *all, t0, wall;
    size_t total = 0;

    for (unsigned i = 0; i < n_clients; i++) {
        w[i].seconds = seconds;
        w[i].cap = MAX_SAMPLES / n_clients;
        w[i].lat = malloc(w[i].cap * sizeof(double));
    }
    t0 = bench_now();
    for (unsigned i = 0; i < n_clients; i++)
        pthread_create(&w[i].t, NULL, work, &w[i]);
    for (unsigned i = 0; i < n_clients; i++) {
        pthread_join(w[i].t, NULL);
        total += w[i].n;
        if (w[i].err)
            fprintf(stderr, "bench_rpc: client %u failed\n", i);
    }
    wall = bench_now() - t0;
    all = malloc((total ? total : 1) * sizeof(double));
    total = 0;
    for (unsigned i = 0; i < n_clients; i++) {
        memcpy(all + total, w[i].lat, w[i].n * sizeof(double));
        total += w[i].n;
        free(w[i].lat);
    }
    qsort(all, total, sizeof(double), cmp_double);
    printf("  abi.check via RPC, %2u client%s  %9.0f req/s   p50 %7.1f us   p99 %7.1f us\n",
           n_clients, n_clients == 1 ? " " : "s", (double)total / wall, pct(all, total, 0.5) * 1e6,
           pct(all, total, 0.99) * 1e6);
    free(all);
}

/* ---- the same check in-process ----------------------------------------------------------- */

static void inproc_run(const char *hostcaps_text, double seconds)
{
    struct gabi_catalog *cat = NULL;
    struct gabi_hostcaps *h = NULL;
    struct gabi_pin *pin = NULL;
    struct gabi_error err = {0};
    double *lat = malloc(MAX_SAMPLES * sizeof(double)), end, t_start;
    size_t n = 0;

    if (gabi_catalog_load_default(NULL, 0, &cat, &err) < 0 ||
        gabi_hostcaps_parse(cat, "agent", hostcaps_text, strlen(hostcaps_text), &h, &err) < 0 ||
        gabi_pin_parse(cat, "pin", pin_text, strlen(pin_text), &pin, &err) < 0) {
        fprintf(stderr, "bench_rpc: in-process set-up: %s\n", err.message);
        goto out;
    }
    /* the bare decision */
    t_start = bench_now();
    end = t_start + seconds;
    while (bench_now() < end && n < MAX_SAMPLES) {
        struct gabi_verdict *v = NULL;
        double t0 = bench_now();

        gabi_check(cat, pin, h, &v);
        lat[n++] = bench_now() - t0;
        gabi_verdict_free(v);
    }
    qsort(lat, n, sizeof(double), cmp_double);
    printf("  gabi_check in-process           %9.0f checks/s  p50 %7.2f us   p99 %7.2f us\n",
           (double)n / (bench_now() - t_start), pct(lat, n, 0.5) * 1e6, pct(lat, n, 0.99) * 1e6);
    /* what the agent does per request, minus the socket: parse the pin, check, verdict JSON */
    n = 0;
    t_start = bench_now();
    end = t_start + seconds;
    while (bench_now() < end && n < MAX_SAMPLES) {
        struct gabi_verdict *v = NULL;
        struct gabi_pin *p = NULL;
        double t0 = bench_now();
        char *text;

        gabi_pin_parse(cat, "pin", pin_text, strlen(pin_text), &p, NULL);
        gabi_check(cat, p, h, &v);
        text = gabi_verdict_to_json(v);
        lat[n++] = bench_now() - t0;
        free(text);
        gabi_verdict_free(v);
        gabi_pin_free(p);
    }
    qsort(lat, n, sizeof(double), cmp_double);
    printf("  parse + check + JSON in-process %9.0f checks/s  p50 %7.2f us   p99 %7.2f us\n",
           (double)n / (bench_now() - t_start), pct(lat, n, 0.5) * 1e6, pct(lat, n, 0.99) * 1e6);
out:
    free(lat);
    gabi_pin_free(pin);
    gabi_hostcaps_free(h);
    gabi_catalog_free(cat);
}

/* ---- port.add from 1 to N ports ---------------------------------------------------------- */

static void ports_run(unsigned n_ports)
{
    static const unsigned edges[] = {1, 16, 64, 128, 256, 512, 1024};
    double *lat = calloc(n_ports, sizeof(double)), *del = calloc(n_ports, sizeof(double));
    struct client c;
    unsigned done = 0, from = 0;
    char line[1024], head[256];

    if (!lat || !del || client_open(&c) < 0) {
        fprintf(stderr, "bench_rpc: cannot connect\n");
        goto out;
    }
    for (unsigned i = 0; i < n_ports; i++) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int n, fd;
        double t0;

        n = snprintf(line, sizeof(line),
                     "{\"jsonrpc\":\"2.0\",\"id\":%u,\"method\":\"port.add\",\"params\":{\"id\":"
                     "\"p%u\",\"class\":\"virtio-net\",\"socket\":\"%s/p%u.sock\",\"mode\":"
                     "\"upstream.guestabi-net.v1\",\"backing\":{\"loopback\":true}}}\n",
                     i, i, dir, i);
        t0 = bench_now();
        if (client_call(&c, line, (size_t)n, head, sizeof(head)) < 0 ||
            !strstr(head, "\"result\"")) {
            fprintf(stderr, "bench_rpc: port.add %u: %s\n", i, head);
            break;
        }
        lat[i] = bench_now() - t0;
        /* a front-end can connect at once */
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/p%u.sock", dir, i);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            fprintf(stderr, "bench_rpc: p%u: no listener after port.add answered\n", i);
            if (fd >= 0)
                close(fd);
            break;
        }
        close(fd);
        done++;
    }
    printf("  port.add latency (reply = the back-end listens), by ports already on the host:\n");
    for (size_t e = 0; e < sizeof(edges) / sizeof(edges[0]) && from < done; e++) {
        unsigned to = edges[e] < done ? edges[e] : done;
        size_t n = to - from;
        double *w = malloc(n * sizeof(double));

        memcpy(w, lat + from, n * sizeof(double));
        qsort(w, n, sizeof(double), cmp_double);
        printf("    ports %4u..%-4u  median %6.2f ms   p99 %6.2f ms\n", from + 1, to,
               pct(w, n, 0.5) * 1e3, pct(w, n, 0.99) * 1e3);
        free(w);
        from = to;
    }
    memcpy(del, lat, done * sizeof(double));
    qsort(del, done, sizeof(double), cmp_double);
    printf("    all %u          median %6.2f ms   p99 %6.2f ms\n", done, pct(del, done, 0.5) * 1e3,
           pct(del, done, 0.99) * 1e3);
    for (unsigned i = 0; i < done; i++) {
        int n = snprintf(line, sizeof(line),
                         "{\"jsonrpc\":\"2.0\",\"id\":%u,\"method\":\"port.del\",\"params\":"
                         "{\"id\":\"p%u\"}}\n",
                         i, i);
        double t0 = bench_now();

        if (client_call(&c, line, (size_t)n, head, sizeof(head)) < 0)
            break;
        del[i] = bench_now() - t0;
    }
    qsort(del, done, sizeof(double), cmp_double);
    printf("  port.del latency (back-end stopped)  median %6.2f ms   p99 %6.2f ms\n",
           pct(del, done, 0.5) * 1e3, pct(del, done, 0.99) * 1e3);
    close(c.fd);
out:
    free(lat);
    free(del);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    unsigned n_ports = argc > 2 ? (unsigned)atoi(argv[2]) : 256;
    char state[300], ports_opt[16], caps[1 << 16];
    const char *agent_argv[24];
    struct client c;
    size_t n = 0;
    pid_t pid;

    if (seconds <= 0 || n_ports == 0 || n_ports > 1024) {
        fprintf(stderr, "usage: bench_rpc [SECONDS_PER_RUN] [PORTS (1..1024)]\n");
        return 2;
    }
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(sock_path, sizeof(sock_path), "%s/guestabid.sock", dir);
    snprintf(state, sizeof(state), "%s/state", dir);
    snprintf(ports_opt, sizeof(ports_opt), "%u", 1000u);
    agent_argv[n++] = GUESTABID_PATH;
    agent_argv[n++] = "--socket";
    agent_argv[n++] = sock_path;
    agent_argv[n++] = "--state-dir";
    agent_argv[n++] = state;
    agent_argv[n++] = "--backend-dir";
    agent_argv[n++] = GUESTABI_NET_DIR;
    agent_argv[n++] = "--backend-dir";
    agent_argv[n++] = GUESTABI_BLK_DIR;
    agent_argv[n++] = "--poll-ms";
    agent_argv[n++] = ports_opt;
    agent_argv[n++] = "--ready-fd";
    agent_argv[n++] = BENCH_READY_FD_STR;
    agent_argv[n] = NULL;
    setenv("GUESTABI_SYSTEM_CATALOG", "", 1);
    pid = bench_spawn_ready(agent_argv, -1, true, 30000, "guestabid");
    if (pid < 0)
        return 1;
    {
        json_t *req = json_pack("{s:s, s:i, s:s, s:{s:o}}", "jsonrpc", "2.0", "id", 1, "method",
                                "abi.check", "params", "pin", json_loads(pin_text, 0, NULL));
        char *t = json_dumps(req, JSON_COMPACT);

        json_decref(req);
        check_len = strlen(t) + 1;
        check_line = malloc(check_len + 1);
        memcpy(check_line, t, check_len - 1);
        check_line[check_len - 1] = '\n';
        free(t);
    }
    /* this host's document, for the in-process comparison */
    if (client_open(&c) < 0 ||
        client_call(&c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"host.caps\"}\n", 50, caps,
                    sizeof(caps)) < 0) {
        fprintf(stderr, "bench_rpc: host.caps failed\n");
        kill(pid, SIGTERM);
        return 1;
    }
    close(c.fd);
    {
        json_t *r = json_loads(caps, 0, NULL);
        char *t = json_dumps(json_object_get(r, "result"), JSON_COMPACT);

        printf("guestabid's RPC (%s), %.1f s per run\n", sock_path, seconds);
        rpc_run(1, seconds);
        rpc_run(16, seconds);
        inproc_run(t, seconds);
        free(t);
        json_decref(r);
    }
    ports_run(n_ports);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    free(check_line);
    {
        char cmd[400];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        if (system(cmd) != 0) {
            /* leave it */
        }
    }
    return 0;
}
