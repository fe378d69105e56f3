/* SPDX-License-Identifier: MIT */
/*
 * Ports: one supervised back-end process each (guestabi-net or guestabi-blk), started with
 * the port's socket and mode, so that a hostile front-end or a crash takes down that port
 * only. A back-end that dies is restarted after a back-off (QEMU's reconnect= brings the
 * front-end back); children get PR_SET_PDEATHSIG(SIGKILL) so that they never outlive the agent,
 * which re-creates them from the database when it starts again. Each back-end's control socket
 * is polled for what the front-end negotiated and the port's counters.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include "agent.h"
#include <guestabi/util.h>

#define READY_TIMEOUT_MS 5000
#define STOP_GRACE_MS    2000
#define CTL_TIMEOUT_MS   2000
#define BACKOFF_MIN_MS   100
#define BACKOFF_MAX_MS   5000
#define STABLE_MS        10000 /* running this long resets the back-off */
#define MAX_TAP          15    /* IFNAMSIZ - 1 */
#define MAX_RAM          (64ull << 30)

/* ---- backing ------------------------------------------------------------------------------ */

static int backing_key_error(struct gabi_error *reterr, const char *key, const char *why)
{
    char where[64];

    snprintf(where, sizeof(where), "params.backing.%s", key);
    return gabi_error_set(reterr, -EINVAL, where, "%s", why);
}

int port_parse_backing(enum gabi_device_class cls, json_t *j, struct port_backing *ret,
                       struct gabi_error *reterr)
{
    struct port_backing b = {0};
    const char *key;
    json_t *v;

    if (!json_is_object(j))
        return gabi_error_set(reterr, -EINVAL, "params.backing",
                              "must be an object: {\"tap\": NAME} | {\"loopback\": true} "
                              "(virtio-net), {\"disk\": PATH} | {\"ram\": BYTES} (virtio-blk)");
    if (json_object_size(j) != 1)
        return gabi_error_set(reterr, -EINVAL, "params.backing",
                              "must name exactly one backing (it names %zu)", json_object_size(j));
    json_object_foreach (j, key, v) {
        if (cls == GABI_CLASS_NET && strcmp(key, "tap") == 0) {
            const char *s = json_string_value(v);

            if (!s || !*s || strlen(s) > MAX_TAP || strchr(s, '/') || strchr(s, ' ') ||
                strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
                return backing_key_error(reterr, key,
                                         "a tap device name: 1 to 15 characters, no '/' or ' '");
            b.tap = strdup(s);
        } else if (cls == GABI_CLASS_NET && strcmp(key, "loopback") == 0) {
            if (!json_is_true(v))
                return backing_key_error(reterr, key, "must be true");
            b.loopback = true;
        } else if (cls == GABI_CLASS_BLK && strcmp(key, "disk") == 0) {
            const char *s = json_string_value(v);

            if (!s || s[0] != '/' || strlen(s) >= 4096)
                return backing_key_error(reterr, key, "an absolute path, shorter than 4096");
            b.disk = strdup(s);
        } else if (cls == GABI_CLASS_BLK && strcmp(key, "ram") == 0) {
            json_int_t n = json_integer_value(v);

            if (!json_is_integer(v) || n <= 0 || n % 512 || (uint64_t)n > MAX_RAM)
                return backing_key_error(reterr, key,
                                         "bytes: a positive multiple of 512, at most 64 GiB");
            b.ram = (uint64_t)n;
        } else {
            return backing_key_error(reterr, key,
                                     cls == GABI_CLASS_NET
                                         ? "a virtio-net port's backing is \"tap\" or \"loopback\""
                                         : "a virtio-blk port's backing is \"disk\" or \"ram\"");
        }
    }
    *ret = b;
    return 0;
}

int port_parse_access(json_t *j, struct port_access *ret, struct gabi_error *reterr)
{
    struct port_access acc = {.uid = (uid_t)-1, .gid = (gid_t)-1};
    const char *key;
    json_t *v;

    if (!j) {
        *ret = acc;
        return 0;
    }
    if (!json_is_object(j) || !json_object_size(j))
        return gabi_error_set(reterr, -EINVAL, "params.access",
                              "an object with \"user\", \"group\" and/or \"mode\"");
    json_object_foreach (j, key, v) {
        const char *s = json_string_value(v);
        char where[64];

        snprintf(where, sizeof(where), "params.access.%s", key);
        if (!s || !*s || strlen(s) > 64)
            return gabi_error_set(reterr, -EINVAL, where, "a string of 1 to 64 bytes");
        if (strcmp(key, "user") == 0) {
            struct passwd *pw = getpwnam(s);

            if (!pw)
                return gabi_error_set(reterr, -EINVAL, where, "no user %s on this host", s);
            acc.uid = pw->pw_uid;
        } else if (strcmp(key, "group") == 0) {
            struct group *gr = getgrnam(s);

            if (!gr)
                return gabi_error_set(reterr, -EINVAL, where, "no group %s on this host", s);
            acc.gid = gr->gr_gid;
        } else if (strcmp(key, "mode") == 0) {
            char *end;
            unsigned long m = strtoul(s, &end, 8);

            if (*end || s[0] != '0' || m > 0777 || !(m & 0600))
                return gabi_error_set(reterr, -EINVAL, where,
                                      "an octal mode such as \"0660\" that lets the owner "
                                      "read and write");
            acc.mode = (mode_t)m;
        } else {
            return gabi_error_set(reterr, -EINVAL, where,
                                  "unknown key (access takes user, group, mode)");
        }
    }
    acc.json = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    if (!acc.json)
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    *ret = acc;
    return 0;
}

/* The socket gets its access each time a back-end listens on it anew. */
static void apply_access(const struct port *p)
{
    const struct port_access *acc = &p->access;

    if (!acc->json)
        return;
    if ((acc->uid != (uid_t)-1 || acc->gid != (gid_t)-1) &&
        chown(p->socket, acc->uid, acc->gid) < 0)
        agent_log(GABI_LOG_ERR, p->id, "chown %s (access %s): %s", p->socket, acc->json,
                  strerror(errno));
    if (acc->mode && chmod(p->socket, acc->mode) < 0)
        agent_log(GABI_LOG_ERR, p->id, "chmod %s (access %s): %s", p->socket, acc->json,
                  strerror(errno));
}

static void backing_clear(struct port_backing *b)
{
    free(b->tap);
    free(b->disk);
    *b = (struct port_backing){0};
}

/* ---- the port object ---------------------------------------------------------------------- */

struct port *port_new(struct agent *a, const char *id, enum gabi_device_class cls,
                      const char *socket, const struct gabi_mode *mode,
                      const struct port_backing *backing, const char *backing_json, int64_t created)
{
    struct port *p = calloc(1, sizeof(*p));

    if (!p)
        return NULL;
    p->serial = ++a->next_serial;
    p->id = strdup(id);
    p->cls = cls;
    p->socket = strdup(socket);
    p->mode = mode;
    p->backing = *backing; /* takes its strings */
    p->backing_json = strdup(backing_json);
    p->created = created;
    p->ctl_fd = -1;
    p->ready_fd = -1;
    p->connected = -1;
    if (asprintf(&p->log, "%s/port-%s.log", a->run_dir, id) < 0)
        p->log = NULL;
    if (asprintf(&p->control, "%s/port-%s.ctl", a->run_dir, id) < 0)
        p->control = NULL;
    if (!p->id || !p->socket || !p->backing_json || !p->log || !p->control) {
        free(p->id);
        free(p->socket);
        free(p->backing_json);
        free(p->log);
        free(p->control);
        free(p);
        return NULL;
    }
    p->next = a->ports;
    a->ports = p;
    a->n_ports++;
    return p;
}

static void ctl_close(struct agent *a, struct port *p)
{
    if (p->ctl_fd >= 0) {
        epoll_ctl(a->epfd, EPOLL_CTL_DEL, p->ctl_fd, NULL);
        close_and_clear(&p->ctl_fd);
    }
    p->ctl_len = 0;
    p->ctl_sent_ms = 0;
}

static void ready_close(struct agent *a, struct port *p)
{
    if (p->ready_fd >= 0) {
        epoll_ctl(a->epfd, EPOLL_CTL_DEL, p->ready_fd, NULL);
        close_and_clear(&p->ready_fd);
    }
}

struct port *port_free(struct agent *a, struct port *p)
{
    struct port **pp;

    if (!p)
        return NULL;
    for (pp = &a->ports; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            a->n_ports--;
            break;
        }
    ctl_close(a, p);
    ready_close(a, p);
    p->pending_add = gabi_rpc_pending_free(p->pending_add);
    if (p->control)
        unlink(p->control);
    free(p->ctl_buf);
    json_decref(p->stats);
    backing_clear(&p->backing);
    free(p->id);
    free(p->socket);
    free(p->backing_json);
    free(p->access.json);
    free(p->control);
    free(p->log);
    free(p);
    return NULL;
}

struct port *port_find(struct agent *a, const char *id)
{
    for (struct port *p = a->ports; p; p = p->next)
        if (strcmp(p->id, id) == 0)
            return p;
    return NULL;
}

struct port *port_find_socket(struct agent *a, const char *socket)
{
    for (struct port *p = a->ports; p; p = p->next)
        if (strcmp(p->socket, socket) == 0)
            return p;
    return NULL;
}

/* ---- the back-end process ----------------------------------------------------------------- */

/* The last non-empty line of the port's log (the back-end's reason), into buf. */
static void last_log_line(const struct port *p, char *buf, size_t size)
{
    char tail[1024];
    int fd = open(p->log, O_RDONLY | O_CLOEXEC);
    off_t end;
    ssize_t k;

    buf[0] = '\0';
    if (fd < 0)
        return;
    end = lseek(fd, 0, SEEK_END);
    k = pread(fd, tail, sizeof(tail) - 1,
              end > (off_t)sizeof(tail) - 1 ? end - (off_t)sizeof(tail) + 1 : 0);
    close(fd);
    if (k <= 0)
        return;
    tail[k] = '\0';
    while (k > 0 && (tail[k - 1] == '\n' || tail[k - 1] == ' '))
        tail[--k] = '\0';
    {
        char *nl = strrchr(tail, '\n');

        gabi_strlcpy(buf, nl ? nl + 1 : tail, size);
    }
}

static void describe_status(int status, char *buf, size_t size)
{
    if (WIFEXITED(status))
        snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, size, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, size, "stopped (status 0x%x)", status);
}

static size_t build_argv(const struct agent *a, const struct port *p, const char **argv, char *ram)
{
    size_t n = 0;

    argv[n++] = a->backend_path[agent_backend_index(p->cls)];
    argv[n++] = "--socket";
    argv[n++] = p->socket;
    if (p->backing.tap) {
        argv[n++] = "--tap";
        argv[n++] = p->backing.tap;
    } else if (p->backing.loopback) {
        argv[n++] = "--loopback";
    } else if (p->backing.disk) {
        argv[n++] = "--disk";
        argv[n++] = p->backing.disk;
    } else if (p->backing.ram) {
        sprintf(ram, "%" PRIu64, p->backing.ram);
        argv[n++] = "--ram";
        argv[n++] = ram;
    }
    argv[n++] = "--mode";
    argv[n++] = p->mode->name;
    if (p->control) {
        argv[n++] = "--control";
        argv[n++] = p->control;
    }
    for (unsigned i = 0; i < a->n_catalogs; i++) {
        argv[n++] = "--catalog";
        argv[n++] = a->catalogs[i];
    }
    argv[n++] = "--ready-fd";
    argv[n++] = "3";
    argv[n] = NULL;
    return n;
}

static uint64_t backoff_ms(unsigned restarts)
{
    uint64_t ms = BACKOFF_MIN_MS;

    for (unsigned i = 1; i < restarts && ms < BACKOFF_MAX_MS; i++)
        ms *= 2;
    return MIN(ms, (uint64_t)BACKOFF_MAX_MS);
}

/* Fork and exec the port's back-end; *ret_ready is the read end of its --ready-fd. */
static int spawn(struct agent *a, struct port *p, int *ret_ready, struct gabi_error *reterr)
{
    const char *argv[16 + 2 * AGENT_MAX_CATALOGS];
    char ram[24];
    int ready[2], logfd;
    pid_t parent = getpid(), pid;

    if (!a->backend_path[agent_backend_index(p->cls)])
        return gabi_error_set(reterr, -EOPNOTSUPP, "params.class",
                              "no back-end program for %s on this host", gabi_class_name(p->cls));
    build_argv(a, p, argv, ram);
    logfd = open(p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (logfd < 0)
        return gabi_error_set(reterr, -errno, p->log, "back-end log: %s", strerror(errno));
    if (pipe2(ready, O_CLOEXEC) < 0) {
        close(logfd);
        return gabi_error_set(reterr, -errno, NULL, "pipe: %s", strerror(errno));
    }
    pid = fork();
    if (pid < 0) {
        int e = errno;

        close(logfd);
        close(ready[0]);
        close(ready[1]);
        return gabi_error_set(reterr, -e, NULL, "fork: %s", strerror(e));
    }
    if (pid == 0) {
        sigset_t none;
        int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);

        /* never outlive the agent: it restarts every port from the database */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        setpgid(0, 0); /* a terminal's ^C goes to the agent, which stops its ports */
        if (devnull >= 0)
            dup2(devnull, STDIN_FILENO);
        dup2(logfd, STDOUT_FILENO);
        dup2(logfd, STDERR_FILENO);
        if (ready[1] == 3)
            fcntl(3, F_SETFD, 0);
        else
            dup2(ready[1], 3);
        /* nothing else of the agent's, not even what it inherited without CLOEXEC */
        close_range(4, ~0u, 0);
        execv(argv[0], (char *const *)argv);
        dprintf(STDERR_FILENO, "guestabid: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(logfd);
    close(ready[1]);
    p->pid = pid;
    p->state = PORT_STARTING;
    p->started_ms = agent_now_ms();
    p->restart_at_ms = 0;
    p->connected = -1;
    p->connections = 0;
    json_decref(p->stats);
    p->stats = NULL;
    *ret_ready = ready[0];
    return 0;
}

static void started(struct port *p)
{
    apply_access(p);
    p->state = PORT_RUNNING;
    agent_log(GABI_LOG_INFO, p->id, "back-end pid %d on %s, mode %s", (int)p->pid, p->socket,
              p->mode->name);
}

int port_start(struct agent *a, struct port *p, struct gabi_error *reterr)
{
    char line[512], why[160], buf[8];
    struct pollfd pfd;
    uint64_t deadline;
    size_t got = 0;
    int ready, status, r;

    r = spawn(a, p, &ready, reterr);
    if (r < 0)
        return r;
    /* until it says READY (its socket listens), or exits, or the time is up */
    deadline = agent_now_ms() + READY_TIMEOUT_MS;
    pfd = (struct pollfd){.fd = ready, .events = POLLIN};
    while (got < 6) {
        uint64_t now = agent_now_ms();
        ssize_t k;

        if (now >= deadline)
            break;
        r = poll(&pfd, 1, (int)(deadline - now));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        k = read(ready, buf + got, sizeof(buf) - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(ready);
    if (got >= 6 && memcmp(buf, "READY\n", 6) == 0) {
        started(p);
        return 0;
    }
    /* it failed: collect it here, so that SIGCHLD does not restart it */
    kill(p->pid, SIGKILL);
    while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
        ;
    p->pid = 0;
    describe_status(status, why, sizeof(why));
    last_log_line(p, line, sizeof(line));
    return gabi_error_set(reterr, -ECHILD, p->log, "%s %s before it listened on %s%s%s",
                          a->backend_path[agent_backend_index(p->cls)],
                          got ? "answered garbage" : why, p->socket, line[0] ? ": " : "", line);
}

/* Its READY arrives as an event (ready_event) instead of being waited for. */
static int watch_ready(struct agent *a, struct port *p, int fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = p->serial | PORT_TOKEN_READY};

    if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        close(fd);
        return -errno;
    }
    p->ready_fd = fd;
    p->ready_len = 0;
    return 0;
}

/* A restart does not hold up the loop. */
static void port_restart(struct agent *a, struct port *p)
{
    struct gabi_error err = {0};
    int fd;

    if (spawn(a, p, &fd, &err) < 0) {
        p->restarts++;
        p->restart_at_ms = agent_now_ms() + backoff_ms(p->restarts);
        gabi_strlcpy(p->last_exit, err.message, sizeof(p->last_exit));
        agent_log(GABI_LOG_WARNING, p->id, "restart failed: %s", err.message);
        return;
    }
    if (watch_ready(a, p, fd) < 0)
        kill(p->pid, SIGKILL); /* reaped and retried as any back-end that died */
}

int port_start_async(struct agent *a, struct port *p, struct gabi_rpc_pending *pending,
                     struct gabi_error *reterr)
{
    int fd, r = spawn(a, p, &fd, reterr);

    if (r < 0)
        return r;
    r = watch_ready(a, p, fd);
    if (r < 0) {
        int status;

        kill(p->pid, SIGKILL);
        while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
            ;
        p->pid = 0;
        return gabi_error_set(reterr, r, NULL, "epoll: %s", strerror(-r));
    }
    p->pending_add = pending;
    return 0;
}

static void ready_event(struct agent *a, struct port *p)
{
    ssize_t k = read(p->ready_fd, p->ready_buf + p->ready_len, sizeof(p->ready_buf) - p->ready_len);

    if (k < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (k > 0)
        p->ready_len += (size_t)k;
    if (p->ready_len >= 6 && memcmp(p->ready_buf, "READY\n", 6) == 0) {
        ready_close(a, p);
        started(p);
        if (p->pending_add) {
            agent_event(a, "port.added",
                        json_pack("{s:s, s:s, s:s}", "id", p->id, "socket", p->socket, "mode",
                                  p->mode->name));
            gabi_rpc_pending_reply(a->rpc, TAKE_PTR(p->pending_add), port_json(a, p), NULL);
        } else {
            agent_event(a, "port.restarted",
                        json_pack("{s:s, s:s, s:i, s:i}", "id", p->id, "socket", p->socket, "pid",
                                  (int)p->pid, "restarts", (int)p->restarts));
        }
    } else if (k <= 0 || p->ready_len == sizeof(p->ready_buf)) {
        /* closed without READY: it is exiting; SIGCHLD retries it */
        ready_close(a, p);
        kill(p->pid, SIGKILL);
    }
}

void port_stop(struct agent *a, struct port *p)
{
    uint64_t deadline = agent_now_ms() + STOP_GRACE_MS;
    int status;

    ctl_close(a, p);
    ready_close(a, p);
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGTERM);
    for (;;) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);

        if (r == p->pid || (r < 0 && errno != EINTR))
            break;
        if (agent_now_ms() >= deadline) {
            kill(p->pid, SIGKILL);
            while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
                ;
            break;
        }
        usleep(2000);
    }
    p->pid = 0;
}

/* A port.add whose back-end exited before it listened: no row, no port, the reason. */
static void add_failed(struct agent *a, struct port *p)
{
    struct gabi_error err = {0}, derr = {0};
    char line[512];

    ready_close(a, p);
    p->pid = 0;
    last_log_line(p, line, sizeof(line));
    gabi_error_set(&err, -ECHILD, p->log, "%s %s before it listened on %s%s%s",
                   a->backend_path[agent_backend_index(p->cls)], p->last_exit, p->socket,
                   line[0] ? ": " : "", line);
    if (store_delete(a->store, p->id, &derr) < 0)
        agent_log(GABI_LOG_ERR, p->id, "%s (the row stays; the next start retries it)",
                  derr.message);
    agent_log(GABI_LOG_WARNING, p->id, "port.add failed: %s", err.message);
    gabi_rpc_pending_reply(a->rpc, TAKE_PTR(p->pending_add), NULL, &err);
    port_free(a, p);
}

void ports_reap(struct agent *a)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        struct port *p;

        if (pid <= 0)
            return;
        for (p = a->ports; p && p->pid != pid; p = p->next)
            ;
        if (!p)
            continue;
        describe_status(status, p->last_exit, sizeof(p->last_exit));
        if (p->timed_out)
            snprintf(p->last_exit, sizeof(p->last_exit), "did not listen within %d ms",
                     READY_TIMEOUT_MS);
        p->timed_out = false;
        if (p->pending_add) {
            add_failed(a, p);
            continue;
        }
        if (agent_now_ms() - p->started_ms > STABLE_MS)
            p->restarts = 0;
        p->restarts++;
        p->pid = 0;
        p->state = PORT_RESTARTING;
        p->restart_at_ms = agent_now_ms() + backoff_ms(p->restarts);
        ctl_close(a, p);
        ready_close(a, p);
        agent_log(GABI_LOG_WARNING, p->id, "back-end %s; restarting in %" PRIu64 " ms",
                  p->last_exit, p->restart_at_ms - agent_now_ms());
        agent_event(a, "port.broken",
                    json_pack("{s:s, s:s, s:s, s:i}", "id", p->id, "socket", p->socket, "reason",
                              p->last_exit, "restart_in_ms",
                              (int)(p->restart_at_ms - agent_now_ms())));
        if (p->connected == 1)
            agent_event(a, "port.disconnected",
                        json_pack("{s:s, s:s, s:s}", "id", p->id, "socket", p->socket, "reason",
                                  p->last_exit));
        p->connected = -1;
        json_decref(p->stats);
        p->stats = NULL;
    }
}

/* ---- the control connection (the back-end's stats) ---------------------------------------- */

static void ctl_poll(struct agent *a, struct port *p)
{
    uint64_t now = agent_now_ms();

    if (!p->control || p->pid <= 0 || p->state != PORT_RUNNING)
        return;
    if (p->ctl_sent_ms) {
        if (now - p->ctl_sent_ms > CTL_TIMEOUT_MS) {
            agent_log(GABI_LOG_WARNING, p->id, "control socket: no answer in %d ms",
                      CTL_TIMEOUT_MS);
            ctl_close(a, p);
        }
        return;
    }
    if (p->ctl_fd < 0) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = p->serial};
        int fd;

        if (strlen(p->control) >= sizeof(sa.sun_path))
            return;
        memcpy(sa.sun_path, p->control, strlen(p->control));
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            return;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS &&
            errno != EAGAIN) {
            close(fd);
            return;
        }
        if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            return;
        }
        p->ctl_fd = fd;
        p->ctl_len = 0;
    }
    if (send(p->ctl_fd, "stats 0\n", 8, MSG_DONTWAIT | MSG_NOSIGNAL) != 8) {
        ctl_close(a, p);
        return;
    }
    p->ctl_sent_ms = now;
}

/* What the back-end reported about its front-end, as events: a connection that came and
 * went between two polls still gives port.connected and port.disconnected. */
static void update_connected(struct agent *a, struct port *p, json_t *stats)
{
    int connected = json_is_true(json_object_get(stats, "connected"));
    int64_t conns = json_integer_value(json_object_get(stats, "connections"));
    const char *err = json_string_value(json_object_get(stats, "last_error"));
    bool fresh = conns > p->connections;

    if (err)
        gabi_strlcpy(p->last_error, err, sizeof(p->last_error));
    if (fresh && p->connected == 1)
        agent_event(a, "port.disconnected",
                    json_pack("{s:s, s:s, s:s}", "id", p->id, "socket", p->socket, "reason",
                              p->last_error[0] ? p->last_error : "the front-end reconnected"));
    if (fresh || (connected && p->connected != 1))
        agent_event(
            a, "port.connected",
            json_pack("{s:s, s:s, s:s}", "id", p->id, "socket", p->socket, "mode", p->mode->name));
    if (!connected && (fresh || p->connected == 1))
        agent_event(
            a, "port.disconnected",
            json_pack("{s:s, s:s, s:s}", "id", p->id, "socket", p->socket, "reason",
                      p->last_error[0] ? p->last_error : "the front-end closed the connection"));
    p->connected = connected;
    p->connections = conns;
}

void port_ctl_event(struct agent *a, uint64_t serial, uint32_t events)
{
    struct port *p;
    ssize_t k;
    char *nl;

    for (p = a->ports; p && p->serial != (serial & ~PORT_TOKEN_READY); p = p->next)
        ;
    if (p && (serial & PORT_TOKEN_READY)) {
        if (p->ready_fd >= 0)
            ready_event(a, p);
        return;
    }
    if (!p || p->ctl_fd < 0)
        return;
    if (!p->ctl_buf && !(p->ctl_buf = malloc(AGENT_CTL_MAX))) {
        ctl_close(a, p);
        return;
    }
    k = recv(p->ctl_fd, p->ctl_buf + p->ctl_len, AGENT_CTL_MAX - p->ctl_len, MSG_DONTWAIT);
    if (k < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (k <= 0) {
        ctl_close(a, p);
        return;
    }
    p->ctl_len += (size_t)k;
    nl = memchr(p->ctl_buf, '\n', p->ctl_len);
    if (!nl) {
        if (p->ctl_len == AGENT_CTL_MAX)
            ctl_close(a, p);
        return;
    }
    {
        json_t *j = json_loadb(p->ctl_buf, (size_t)(nl - p->ctl_buf), 0, NULL);
        json_t *port = json_array_get(json_object_get(j, "ports"), 0);

        if (json_is_object(port)) {
            json_decref(p->stats);
            p->stats = json_incref(port);
            p->stats_ms = agent_now_ms();
            update_connected(a, p, port);
        }
        json_decref(j);
    }
    p->ctl_len = 0;
    p->ctl_sent_ms = 0;
    (void)events;
}

void ports_tick(struct agent *a)
{
    uint64_t now = agent_now_ms();
    bool poll_due = now - a->last_poll_ms >= a->poll_ms;

    if (poll_due)
        a->last_poll_ms = now;
    for (struct port *p = a->ports; p; p = p->next) {
        if (p->state == PORT_RESTARTING && now >= p->restart_at_ms)
            port_restart(a, p);
        else if (p->state == PORT_STARTING && p->pid > 0 &&
                 now - p->started_ms >= READY_TIMEOUT_MS) {
            agent_log(GABI_LOG_WARNING, p->id, "back-end not ready after %d ms; killing it",
                      READY_TIMEOUT_MS);
            p->timed_out = true;
            ready_close(a, p);
            kill(p->pid, SIGKILL);
        }
        if (poll_due)
            ctl_poll(a, p);
    }
}

int ports_timeout_ms(struct agent *a)
{
    uint64_t now = agent_now_ms(), next = a->last_poll_ms + a->poll_ms;

    if (!a->ports)
        return -1;
    for (struct port *p = a->ports; p; p = p->next)
        if (p->state == PORT_RESTARTING)
            next = MIN(next, p->restart_at_ms);
        else if (p->state == PORT_STARTING)
            next = MIN(next, p->started_ms + READY_TIMEOUT_MS);
    return next <= now ? 0 : (int)MIN(next - now, (uint64_t)INT32_MAX);
}

/* ---- what port.get answers ---------------------------------------------------------------- */

static json_t *names_json(enum gabi_device_class cls, uint64_t mask, bool protocol)
{
    json_t *arr = json_array();

    for (unsigned bit = 0; bit < 64; bit++) {
        const char *name;
        char hex[24];

        if (!(mask & (1ull << bit)))
            continue;
        name = protocol ? gabi_protocol_feature_name(bit) : gabi_feature_name(cls, bit);
        if (!name) {
            snprintf(hex, sizeof(hex), "0x%" PRIx64, (uint64_t)1 << bit);
            name = hex;
        }
        json_array_append_new(arr, json_string(name));
    }
    return arr;
}

static uint64_t hex_value(json_t *j)
{
    uint64_t v = 0;

    if (json_is_string(j))
        gabi_parse_u64(json_string_value(j), &v);
    return v;
}

json_t *port_json(const struct agent *a, const struct port *p)
{
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:o, s:I}", "id", p->id, "class", gabi_class_name(p->cls),
                  "socket", p->socket, "mode", p->mode->name, "backing",
                  json_loads(p->backing_json, 0, NULL), "created", (json_int_t)p->created);

    json_object_set_new(o, "state",
                        json_string(p->state == PORT_RUNNING    ? "running"
                                    : p->state == PORT_STARTING ? "starting"
                                                                : "restarting"));
    json_object_set_new(o, "access",
                        p->access.json ? json_loads(p->access.json, 0, NULL) : json_null());
    json_object_set_new(o, "pid", p->pid > 0 ? json_integer(p->pid) : json_null());
    json_object_set_new(o, "restarts", json_integer(p->restarts));
    json_object_set_new(o, "last_exit", p->last_exit[0] ? json_string(p->last_exit) : json_null());
    json_object_set_new(o, "connected",
                        p->connected < 0 ? json_null() : json_boolean(p->connected));
    json_object_set_new(o, "connections", json_integer((json_int_t)p->connections));
    json_object_set_new(o, "last_error",
                        p->last_error[0] ? json_string(p->last_error) : json_null());
    if (p->stats) {
        json_t *s = p->stats, *rings = json_object_get(s, "started_rings"), *r;
        uint64_t f = hex_value(json_object_get(s, "features"));
        uint64_t pf = hex_value(json_object_get(s, "protocol_features"));
        json_t *sizes = json_array();
        unsigned pairs = 0;
        size_t i;

        json_array_foreach (rings, i, r) {
            json_array_append(sizes, json_object_get(r, "size"));
            /* virtio-net: a pair of rings per queue pair; virtio-blk: a ring per queue */
            pairs =
                p->cls == GABI_CLASS_NET
                    ? MAX(pairs, (unsigned)json_integer_value(json_object_get(r, "index")) / 2 + 1)
                    : pairs + 1;
        }
        json_object_set_new(o, "features",
                            p->connected == 1 ? names_json(p->cls, f, false) : json_array());
        json_object_set_new(o, "protocol_features",
                            p->connected == 1 ? names_json(p->cls, pf, true) : json_array());
        json_object_set_new(o, "queue_pairs", json_integer(pairs));
        json_object_set_new(o, "ring_sizes", sizes);
        json_object_set(o, "link", json_object_get(s, "link"));
        json_object_set(o, "counters", json_object_get(s, "totals"));
        json_object_set(o, "state_transfer",
                        json_object_get(s, "state_transfer") ? json_object_get(s, "state_transfer")
                                                             : json_null());
        json_object_set_new(o, "stats_age_ms",
                            json_integer((json_int_t)(agent_now_ms() - p->stats_ms)));
    } else {
        /* the same members, unknown until the back-end first answers (never, for blk) */
        static const char *const keys[] = {
            "features", "protocol_features", "queue_pairs",    "ring_sizes",
            "link",     "counters",          "state_transfer", "stats_age_ms"};

        for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
            json_object_set_new(o, keys[i], json_null());
    }
    (void)a;
    return o;
}
