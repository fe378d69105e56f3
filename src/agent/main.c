/* SPDX-License-Identifier: MIT */
/*
 * guestabid: the host agent. Options, start-up (catalog, back-ends, probe, database, ports
 * from the database, the RPC socket, readiness), and one epoll loop until SIGTERM/SIGINT.
 */

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <guestabi/log.h>
#include <guestabi/placement.h>

#include "agent.h"
#include "placement.h"
#include "failover.h"
#include <guestabi/util.h>

#define VERSION "0.1.0"

enum { TOKEN_RPC = 1, TOKEN_SIGNAL = 2, TOKEN_PORT_BASE = 16 };

uint64_t agent_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void agent_log(int level, const char *peer, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (peer)
        gabi_log((enum gabi_log_level)level, "guestabid", "%s: %s", peer, msg);
    else
        gabi_log((enum gabi_log_level)level, "guestabid", "%s", msg);
}

/* What RPC peers cause, at most LOG_BURST lines at once and LOG_PER_SEC a second after that,
 * then how many were left out. */
#define LOG_BURST   50
#define LOG_PER_SEC 10

static void rpc_log(enum gabi_log_level level, const char *peer, const char *msg, void *userdata)
{
    static double tokens = LOG_BURST;
    static uint64_t last_ms;
    static unsigned suppressed;
    uint64_t now = agent_now_ms();

    (void)userdata;
    if (!gabi_log_enabled(level))
        return;
    tokens = MIN((double)LOG_BURST, tokens + (double)(now - last_ms) * LOG_PER_SEC / 1000.0);
    last_ms = now;
    if (tokens < 1) {
        suppressed++;
        return;
    }
    tokens -= 1;
    if (suppressed) {
        agent_log(GABI_LOG_INFO, NULL, "%u lines about RPC clients left out", suppressed);
        suppressed = 0;
    }
    agent_log(level, peer, "%s", msg);
}

/* systemd's readiness protocol: one datagram "READY=1" to $NOTIFY_SOCKET. */
static void notify_ready(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    socklen_t len;
    int fd;

    if (!path || !*path || strlen(path) >= sizeof(sa.sun_path) ||
        (path[0] != '/' && path[0] != '@'))
        return;
    memcpy(sa.sun_path, path, strlen(path));
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace */
    len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (sendto(fd, "READY=1", 7, MSG_NOSIGNAL, (struct sockaddr *)&sa, len) < 0)
        agent_log(GABI_LOG_WARNING, NULL, "NOTIFY_SOCKET %s: %s", path, strerror(errno));
    close(fd);
}

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: guestabid [OPTIONS]\n"
            "\n"
            "The guestabi host agent: serves this host's capabilities and ABI checks over\n"
            "JSON-RPC 2.0 and runs vhost-user ports, each in its own compat mode, as supervised\n"
            "back-end processes kept in a SQLite database (see guestabid(8), docs/rpc.md).\n"
            "\n"
            "Options:\n"
            "  --socket PATH        the RPC socket (default /run/guestabi/guestabid.sock)\n"
            "  --state-dir DIR      the database's directory (default /var/lib/guestabi)\n"
            "  --run-dir DIR        back-ends' control sockets and logs (default: the RPC\n"
            "                       socket's directory)\n"
            "  --catalog DIR        also read catalog documents from DIR (repeatable)\n"
            "  --backend-dir DIR    where guestabi-net and guestabi-blk are (repeatable;\n"
            "                       default %s)\n"
            "  --group NAME         members of this group may use the socket too (mode 0660)\n"
            "  --host-name NAME     this host's name in hostcaps (default: the node name)\n"
            "  --foreground         stay in the foreground (the default; kept for scripts)\n"
            "  --ready-fd FD        write \"READY\\n\" to FD once serving, then close it\n"
            "  --poll-ms MS         how often back-ends are asked for their stats (1000)\n"
            "  --max-request BYTES  the longest request line (1 MiB)\n"
            "  --max-clients N      clients at once (128)\n"
            "  --max-output BYTES   replies queued for a client that does not read (4 MiB)\n"
            "  --request-timeout-ms MS  a started request line must end within (10000)\n"
            "  --placement-url URL  publish this host to OpenStack Placement (default\n"
            "                       $OS_PLACEMENT_ENDPOINT; none: off)\n"
            "  --placement-token TOKEN  its x-auth-token (default $OS_TOKEN)\n"
            "  --placement-timeout-ms MS  per Placement request (30000; a sync is killed\n"
            "                       after 4 times that)\n"
            "  --sysfs-root DIR     read (and bind VFs through) sysfs under DIR (/sys)\n"
            "  --dev-root DIR       device nodes under DIR (/dev)\n"
            "  --failover-ttl-s S   a failover reservation never bound expires after (600)\n"
            "  --failover-settle-ms MS  a VF's driver link must change within (1000)\n"
            "  -v, --verbose        log debug lines\n"
            "  -h, --help           this text\n"
            "  --version            the version\n",
#ifdef GUESTABI_BINDIR
            GUESTABI_BINDIR
#else
            "/usr/local/bin"
#endif
    );
}

static int parse_num(const char *opt, const char *arg, uint64_t min, uint64_t max, uint64_t *ret)
{
    if (gabi_parse_u64(arg, ret) < 0 || *ret < min || *ret > max) {
        fprintf(stderr, "guestabid: %s wants a number from %llu to %llu\n", opt,
                (unsigned long long)min, (unsigned long long)max);
        return -1;
    }
    return 0;
}

static int parse_args(struct agent *a, int argc, char **argv)
{
    enum {
        O_SOCKET = 0x100,
        O_STATE,
        O_RUN,
        O_CATALOG,
        O_BACKEND,
        O_GROUP,
        O_HOST,
        O_FG,
        O_READY,
        O_POLL,
        O_MAXREQ,
        O_MAXCL,
        O_MAXOUT,
        O_REQMS,
        O_PLURL,
        O_PLTOKEN,
        O_PLMS,
        O_VERSION,
        O_SYSFS,
        O_DEVROOT,
        O_FOTTL,
        O_FOSETTLE
    };
    static const struct option opts[] = {
        {"socket", required_argument, NULL, O_SOCKET},
        {"state-dir", required_argument, NULL, O_STATE},
        {"run-dir", required_argument, NULL, O_RUN},
        {"catalog", required_argument, NULL, O_CATALOG},
        {"backend-dir", required_argument, NULL, O_BACKEND},
        {"group", required_argument, NULL, O_GROUP},
        {"host-name", required_argument, NULL, O_HOST},
        {"foreground", no_argument, NULL, O_FG},
        {"ready-fd", required_argument, NULL, O_READY},
        {"poll-ms", required_argument, NULL, O_POLL},
        {"max-request", required_argument, NULL, O_MAXREQ},
        {"max-clients", required_argument, NULL, O_MAXCL},
        {"max-output", required_argument, NULL, O_MAXOUT},
        {"request-timeout-ms", required_argument, NULL, O_REQMS},
        {"placement-url", required_argument, NULL, O_PLURL},
        {"placement-token", required_argument, NULL, O_PLTOKEN},
        {"placement-timeout-ms", required_argument, NULL, O_PLMS},
        {"sysfs-root", required_argument, NULL, O_SYSFS},
        {"dev-root", required_argument, NULL, O_DEVROOT},
        {"failover-ttl-s", required_argument, NULL, O_FOTTL},
        {"failover-settle-ms", required_argument, NULL, O_FOSETTLE},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, O_VERSION},
        {NULL, 0, NULL, 0},
    };
    uint64_t v;
    int c;

    while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        switch (c) {
        case O_SOCKET:
            a->socket_path = optarg;
            break;
        case O_STATE:
            a->state_dir = optarg;
            break;
        case O_RUN:
            a->run_dir = optarg;
            break;
        case O_CATALOG:
            if (a->n_catalogs == AGENT_MAX_CATALOGS) {
                fprintf(stderr, "guestabid: at most %u --catalog\n", AGENT_MAX_CATALOGS);
                return 2;
            }
            a->catalogs[a->n_catalogs++] = optarg;
            break;
        case O_BACKEND:
            if (a->n_backend_dirs == AGENT_MAX_BACKEND_DIRS) {
                fprintf(stderr, "guestabid: at most %u --backend-dir\n", AGENT_MAX_BACKEND_DIRS);
                return 2;
            }
            a->backend_dirs[a->n_backend_dirs++] = optarg;
            break;
        case O_GROUP:
            a->group = optarg;
            break;
        case O_HOST:
            a->host_name = optarg;
            break;
        case O_FG:
            break;
        case O_READY:
            if (parse_num("--ready-fd", optarg, 0, 1u << 20, &v) < 0)
                return 2;
            a->ready_fd = (int)v;
            break;
        case O_PLURL:
            a->placement_url = optarg;
            break;
        case O_PLTOKEN:
            a->placement_token = optarg;
            break;
        case O_PLMS:
            if (parse_num("--placement-timeout-ms", optarg, 100, 600000, &v) < 0)
                return 2;
            a->placement_timeout_ms = (unsigned)v;
            break;
        case O_POLL:
            if (parse_num("--poll-ms", optarg, 10, 600000, &v) < 0)
                return 2;
            a->poll_ms = (unsigned)v;
            break;
        case O_MAXREQ:
            if (parse_num("--max-request", optarg, 256, 64u << 20, &v) < 0)
                return 2;
            a->rpc_cfg.max_request = v;
            break;
        case O_MAXCL:
            if (parse_num("--max-clients", optarg, 1, 65536, &v) < 0)
                return 2;
            a->rpc_cfg.max_clients = v;
            break;
        case O_MAXOUT:
            if (parse_num("--max-output", optarg, 4096, 1u << 30, &v) < 0)
                return 2;
            a->rpc_cfg.max_output = v;
            break;
        case O_REQMS:
            if (parse_num("--request-timeout-ms", optarg, 10, 3600000, &v) < 0)
                return 2;
            a->rpc_cfg.request_ms = (unsigned)v;
            break;
        case O_SYSFS:
            a->sysfs_root = optarg;
            break;
        case O_DEVROOT:
            a->dev_root = optarg;
            break;
        case O_FOTTL:
            if (parse_num("--failover-ttl-s", optarg, 1, 86400, &v) < 0)
                return 2;
            a->failover_ttl_s = (unsigned)v;
            break;
        case O_FOSETTLE:
            if (parse_num("--failover-settle-ms", optarg, 0, 60000, &v) < 0)
                return 2;
            a->failover_settle_ms = (unsigned)v;
            break;
        case 'v':
            gabi_log_set_max_level(GABI_LOG_DEBUG);
            break;
        case 'h':
            usage(stdout);
            return -1;
        case O_VERSION:
            printf("guestabid %s\n", VERSION);
            return -1;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "guestabid: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    return 0;
}

/* One database row becomes a running port again. */
static int restore_row(const char *id, const char *cls_name, const char *socket,
                       const char *mode_name, const char *backing_json, const char *access_json,
                       int64_t created, void *userdata)
{
    struct agent *a = userdata;
    struct gabi_error err = {0};
    struct port_backing b = {0};
    struct port_access acc = {0};
    const struct gabi_mode *mode = gabi_catalog_find_mode(a->cat, mode_name);
    int cls = gabi_class_from_name(cls_name);
    json_t *j = json_loads(backing_json, 0, NULL);
    struct port *p;
    int r;

    if (!mode || cls < 0 || !j ||
        port_parse_backing((enum gabi_device_class)cls, j, &b, &err) < 0) {
        agent_log(GABI_LOG_ERR, id, "cannot restore (mode %s, %s): %s", mode_name, cls_name,
                  err.message[0] ? err.message : "unknown mode or class");
        json_decref(j);
        return 0; /* the row stays for an operator; the others come back */
    }
    json_decref(j);
    j = access_json ? json_loads(access_json, 0, NULL) : NULL;
    if (j && port_parse_access(j, &acc, &err) < 0) /* a user or group gone since: no access */
        agent_log(GABI_LOG_ERR, id, "socket access: %s", err.message);
    json_decref(j);
    p = port_new(a, id, (enum gabi_device_class)cls, socket, mode, &b, backing_json, created);
    if (!p) {
        free(acc.json);
        return -ENOMEM;
    }
    p->access = acc;
    r = port_start(a, p, &err);
    if (r < 0) {
        agent_log(GABI_LOG_ERR, id, "restore: %s; retrying", err.message);
        p->state = PORT_RESTARTING;
        p->restarts = 1;
        p->restart_at_ms = agent_now_ms() + 1000;
        gabi_strlcpy(p->last_exit, err.message, sizeof(p->last_exit));
    }
    return 0;
}

/* Publishing to Placement: on when a URL is given (or in the environment), checked now. */
static int placement_setup(struct agent *a, struct gabi_error *reterr)
{
    struct gabi_placement_conn conn = {.url = a->placement_url, .token = a->placement_token};
    struct gabi_placement *pl = NULL;
    const char *url = a->placement_url ? a->placement_url : getenv("OS_PLACEMENT_ENDPOINT");
    int r;

    if (url && !*url)
        url = NULL;
    if (url) {
        r = gabi_placement_new(&conn, &pl, reterr); /* the URL's and token's syntax */
        gabi_placement_free(pl);
        if (r < 0) {
            gabi_error_prefix_where(reterr, "--placement-url");
            return r;
        }
        conn.token = a->placement_token ? a->placement_token : getenv("OS_TOKEN");
    }
    r = agent_placement_new(url, url ? conn.token : NULL, a->placement_timeout_ms, &a->placement);
    if (r < 0)
        return gabi_error_set(reterr, r, NULL, "out of memory");
    if (url)
        agent_log(GABI_LOG_INFO, "placement", "publishing this host to %s", url);
    return 0;
}

static int setup(struct agent *a)
{
    struct gabi_error err = {0};
    struct epoll_event ev;
    sigset_t mask;
    int r;

    if (a->group) {
        struct group *g = getgrnam(a->group);

        if (!g) {
            fprintf(stderr, "guestabid: --group %s: no such group\n", a->group);
            return -ENOENT;
        }
        a->rpc_cfg.gid = g->gr_gid;
    }
    r = gabi_catalog_load_default(a->catalogs, a->n_catalogs, &a->cat, &err);
    if (r < 0)
        goto fail;
    if ((r = agent_find_backends(a, &err)) < 0 || (r = agent_probe(a, &err)) < 0)
        goto fail;
    if (mkdir(a->state_dir, 0750) < 0 && errno != EEXIST) {
        r = gabi_error_set(&err, -errno, a->state_dir, "%s", strerror(errno));
        goto fail;
    }
    if (mkdir(a->run_dir, 0755) < 0 && errno != EEXIST) {
        r = gabi_error_set(&err, -errno, a->run_dir, "%s", strerror(errno));
        goto fail;
    }
    if ((r = store_open(a->state_dir, &a->store, &err)) < 0 || (r = failover_open(a, &err)) < 0)
        goto fail;
    if ((r = placement_setup(a, &err)) < 0)
        goto fail;

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    a->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    a->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (a->sigfd < 0 || a->epfd < 0) {
        r = gabi_error_set(&err, -errno, NULL, "signalfd/epoll: %s", strerror(errno));
        goto fail;
    }
    ev = (struct epoll_event){.events = EPOLLIN, .data.u64 = TOKEN_SIGNAL};
    epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->sigfd, &ev);
    a->next_serial = TOKEN_PORT_BASE;

    /* the ports first: a client that connects sees every port that was there */
    if ((r = store_foreach(a->store, restore_row, a, &err)) < 0)
        goto fail;
    a->rpc_cfg.path = a->socket_path;
    if ((r = gabi_rpc_server_new(&a->rpc_cfg, agent_methods, agent_n_methods, a, &a->rpc, &err)) <
        0)
        goto fail;
    gabi_rpc_server_set_log(a->rpc, rpc_log, a);
    ev = (struct epoll_event){.events = EPOLLIN, .data.u64 = TOKEN_RPC};
    if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, gabi_rpc_server_fd(a->rpc), &ev) < 0) {
        r = gabi_error_set(&err, -errno, NULL, "epoll: %s", strerror(errno));
        goto fail;
    }
    return 0;
fail:
    agent_log(GABI_LOG_ERR, NULL, "%s%s%s", err.where, err.where[0] ? ": " : "", err.message);
    return r;
}

static void run(struct agent *a)
{
    while (!a->stop) {
        struct epoll_event ev[64];
        int t1 = gabi_rpc_server_timeout_ms(a->rpc), t2 = ports_timeout_ms(a), timeout, k;
        int t3 = agent_placement_timeout_ms(a);

        timeout = t1 < 0 ? t2 : t2 < 0 ? t1 : MIN(t1, t2);
        timeout = timeout < 0 ? t3 : t3 < 0 ? timeout : MIN(timeout, t3);
        k = epoll_wait(a->epfd, ev, ARRAY_SIZE(ev), timeout);
        if (k < 0 && errno != EINTR) {
            agent_log(GABI_LOG_ERR, NULL, "epoll_wait: %s", strerror(errno));
            return;
        }
        for (int i = 0; i < k; i++) {
            uint64_t t = ev[i].data.u64;

            if (t == TOKEN_SIGNAL) {
                struct signalfd_siginfo si;

                while (read(a->sigfd, &si, sizeof(si)) == sizeof(si)) {
                    if (si.ssi_signo == SIGCHLD)
                        ports_reap(a);
                    else
                        a->stop = true;
                }
            } else if (t == PLACEMENT_TOKEN) {
                agent_placement_event(a, ev[i].events);
            } else if (t != TOKEN_RPC) {
                port_ctl_event(a, t, ev[i].events);
            }
        }
        /* the RPC after the children: a port.get sees what the loop just learnt */
        gabi_rpc_server_process(a->rpc);
        ports_tick(a);
        agent_placement_tick(a);
    }
}

static void teardown(struct agent *a)
{
    a->placement = agent_placement_free(a->placement);
    a->rpc = gabi_rpc_server_free(a->rpc);
    /* stop the back-ends; the database keeps the ports for the next start */
    while (a->ports) {
        port_stop(a, a->ports);
        port_free(a, a->ports);
    }
    failover_close(a);
    a->store = store_close(a->store);
    gabi_hostcaps_free(a->caps);
    gabi_catalog_free(a->cat);
    free(a->backend_path[0]);
    free(a->backend_path[1]);
    if (a->sigfd >= 0)
        close(a->sigfd);
    if (a->epfd >= 0)
        close(a->epfd);
}

int main(int argc, char **argv)
{
    struct agent a = {
        .socket_path = "/run/guestabi/guestabid.sock",
        .state_dir = "/var/lib/guestabi",
        .ready_fd = -1,
        .poll_ms = 1000,
        .epfd = -1,
        .sigfd = -1,
        .rpc_cfg = {.gid = (gid_t)-1},
        .failover_ttl_s = FAILOVER_TTL_S,
        .failover_settle_ms = FAILOVER_SETTLE_MS,
    };
    char *run_dir = NULL;
    int r;

    gabi_log_set_handler(gabi_log_stderr, NULL);
    gabi_log_set_max_level(GABI_LOG_INFO);
    r = parse_args(&a, argc, argv);
    if (r)
        return r < 0 ? 0 : r;
    if (!a.run_dir) {
        run_dir = strdup(a.socket_path);
        if (!run_dir)
            return 1;
        if (strrchr(run_dir, '/'))
            *strrchr(run_dir, '/') = '\0';
        else
            strcpy(run_dir, ".");
        a.run_dir = run_dir[0] ? run_dir : "/";
    }
    r = setup(&a);
    if (r == 0) {
        agent_log(GABI_LOG_INFO, NULL, "serving %s: %zu port%s, state in %s/guestabid.db",
                  a.socket_path, a.n_ports, a.n_ports == 1 ? "" : "s", a.state_dir);
        notify_ready();
        gabi_ready_fd_signal(&a.ready_fd);
        a.last_poll_ms = agent_now_ms();
        agent_placement_trigger(&a, "start");
        run(&a);
        agent_log(GABI_LOG_INFO, NULL, "stopping");
    }
    teardown(&a);
    free(run_dir);
    return r < 0 ? 1 : 0;
}
