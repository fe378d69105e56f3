/* SPDX-License-Identifier: MIT */
/*
 * The hypervisor part of the probe: ask the QEMU binary VMs run with what it is, which machine
 * types it has and which virtio-net feature properties it knows, without starting a VM. Each
 * question is one child process (`-version`, `-machine help`, `-device virtio-net-pci,help`)
 * with stdin on /dev/null, its output bounded and its run bounded in time: a child that
 * outlives the timeout is killed with its process group.
 */

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <guestabi/log.h>

#include "probe/internal.h"

/* One run's outcome: the exit status, or why there is none. */
struct qemu_run {
    char *out; /* stdout, NUL-terminated */
    size_t size;
    char err[256]; /* the start of stderr, for messages */
    int status;    /* waitpid() status when the child exited */
    bool timed_out, too_large;
};

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The binary to run: `qemu` itself when it has a slash, else the first executable match on
 * PATH. 0 and *ret (arena), -ENOENT when there is none. */
static int resolve_binary(struct gabi_probe *p, const char *qemu, const char **ret)
{
    const char *path = getenv("PATH");

    if (strchr(qemu, '/')) {
        if (access(qemu, X_OK) < 0)
            return -errno;
        *ret = gabi_arena_strdup(&p->arena, qemu);
        return *ret ? 0 : -ENOMEM;
    }
    if (!path || !path[0])
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t len = strcspn(path, ":");
        const char *cand;
        struct stat st;

        if (len > 0 && len < 4096) {
            char dir[4096];

            memcpy(dir, path, len);
            dir[len] = '\0';
            cand = gabi_arena_printf(&p->arena, "%s/%s", dir, qemu);
            if (!cand)
                return -ENOMEM;
            if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0) {
                *ret = cand;
                return 0;
            }
        }
        path += len;
        if (*path == ':')
            path++;
    }
    return -ENOENT;
}

/* Read what is there on fd into buf (growing up to max); false at EOF or error. */
static bool drain(int fd, char **buf, size_t *size, size_t *alloc, size_t max, bool *too_large)
{
    char chunk[4096];
    ssize_t n = read(fd, chunk, sizeof(chunk));

    if (n < 0)
        return errno == EINTR || errno == EAGAIN;
    if (n == 0)
        return false;
    if (*size + (size_t)n > max) {
        *too_large = true;
        return false;
    }
    if (*size + (size_t)n + 1 > *alloc) {
        size_t na = MAX(*alloc * 2, *size + (size_t)n + 1);
        char *nb = realloc(*buf, na);

        if (!nb) {
            *too_large = true;
            return false;
        }
        *buf = nb;
        *alloc = na;
    }
    memcpy(*buf + *size, chunk, (size_t)n);
    *size += (size_t)n;
    (*buf)[*size] = '\0';
    return true;
}

/* Run `binary arg1 arg2` with a deadline. 0 with *run filled (whatever the exit status), or
 * -errno when the child could not be started. */
static int run_qemu(const char *binary, const char *arg1, const char *arg2, unsigned timeout_ms,
                    struct qemu_run *run)
{
    const char *argv[] = {binary, arg1, arg2, NULL};
    int out[2] = {-1, -1}, err[2] = {-1, -1}, exec_err[2] = {-1, -1};
    _cleanup_close_ int null_fd = -1;
    size_t err_size = 0, out_alloc = 0;
    long long deadline = now_ms() + timeout_ms;
    bool out_open = true, err_open = true;
    int child_errno = 0, r = 0;
    pid_t pid;

    memset(run, 0, sizeof(*run));
    null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0)
        return -errno;
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || pipe2(exec_err, O_CLOEXEC) < 0) {
        r = -errno;
        goto out;
    }
    pid = fork();
    if (pid < 0) {
        r = -errno;
        goto out;
    }
    if (pid == 0) {
        /* The child: only async-signal-safe calls. Its own process group, so a timeout kills
         * whatever it started too. */
        int e;

        setpgid(0, 0);
        if (dup2(null_fd, 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0)
            _exit(127);
        execv(binary, (char *const *)argv);
        e = errno;
        if (write(exec_err[1], &e, sizeof(e)) < 0)
            _exit(127);
        _exit(127);
    }
    close_and_clear(&out[1]);
    close_and_clear(&err[1]);
    close_and_clear(&exec_err[1]);
    if (read(exec_err[0], &child_errno, sizeof(child_errno)) == (ssize_t)sizeof(child_errno)) {
        waitpid(pid, NULL, 0);
        r = -child_errno;
        goto out;
    }
    run->err[0] = '\0';
    while (out_open || err_open) {
        struct pollfd pfd[2] = {{.fd = out_open ? out[0] : -1, .events = POLLIN},
                                {.fd = err_open ? err[0] : -1, .events = POLLIN}};
        long long left = deadline - now_ms();
        int n;

        if (left <= 0) {
            run->timed_out = true;
            break;
        }
        n = poll(pfd, 2, (int)MIN(left, 1000));
        if (n < 0 && errno != EINTR) {
            run->timed_out = true; /* cannot wait any longer: treat as not answering */
            break;
        }
        if (n <= 0)
            continue;
        if (pfd[0].revents && !drain(out[0], &run->out, &run->size, &out_alloc,
                                     GABI_PROBE_MAX_QEMU_OUT, &run->too_large))
            out_open = false;
        if (run->too_large)
            break;
        if (pfd[1].revents) {
            /* stderr: keep its start for messages, read and drop the rest */
            char sink[4096];
            ssize_t k = read(err[0], sink, sizeof(sink));

            if (k > 0) {
                size_t c = MIN(sizeof(run->err) - 1 - err_size, (size_t)k);

                memcpy(run->err + err_size, sink, c);
                err_size += c;
                run->err[err_size] = '\0';
            } else if (k == 0 || (errno != EINTR && errno != EAGAIN)) {
                err_open = false;
            }
        }
    }
    /* Wait for the exit until the deadline; then kill the group. */
    for (;;) {
        pid_t w = run->timed_out || run->too_large ? 0 : waitpid(pid, &run->status, WNOHANG);

        if (w == pid)
            break;
        if (w < 0 && errno != EINTR) {
            r = -errno;
            break;
        }
        if (run->timed_out || run->too_large || now_ms() >= deadline) {
            run->timed_out = !run->too_large;
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            while (waitpid(pid, &run->status, 0) < 0 && errno == EINTR)
                ;
            break;
        }
        nanosleep(&(struct timespec){.tv_nsec = 2000000}, NULL);
    }
    if (!run->out) {
        run->out = calloc(1, 1);
        if (!run->out)
            r = -ENOMEM;
    }
out:
    close_and_clear(&out[0]);
    close_and_clear(&out[1]);
    close_and_clear(&err[0]);
    close_and_clear(&err[1]);
    close_and_clear(&exec_err[0]);
    close_and_clear(&exec_err[1]);
    return r;
}

/* Why a finished run does not count, or NULL when it exited 0. */
static const char *run_failure(struct gabi_probe *p, const struct qemu_run *run,
                               unsigned timeout_ms)
{
    char first[160];

    gabi_strlcpy(first, run->err, sizeof(first));
    first[strcspn(first, "\n")] = '\0';
    if (run->too_large)
        return gabi_arena_printf(&p->arena, "printed more than %u bytes", GABI_PROBE_MAX_QEMU_OUT);
    if (run->timed_out)
        return gabi_arena_printf(&p->arena, "did not finish within %u ms and was killed",
                                 timeout_ms);
    if (WIFSIGNALED(run->status))
        return gabi_arena_printf(&p->arena, "killed by signal %d%s%s", WTERMSIG(run->status),
                                 first[0] ? ": " : "", first);
    if (WEXITSTATUS(run->status) != 0)
        return gabi_arena_printf(&p->arena, "exited with status %d%s%s", WEXITSTATUS(run->status),
                                 first[0] ? ": " : "", first);
    return NULL;
}

/* ---- parsing what QEMU prints ------------------------------------------------------------ */

/* "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)" -> "7.2.22". */
static const char *parse_version(struct gabi_probe *p, const char *out)
{
    static const char prefix[] = "QEMU emulator version ";
    const char *s = strstr(out, prefix);
    char v[32];
    size_t len;

    if (!s)
        return NULL;
    s += sizeof(prefix) - 1;
    len = strspn(s, "0123456789.");
    if (len == 0 || len >= sizeof(v) || !(s[0] >= '0' && s[0] <= '9'))
        return NULL;
    memcpy(v, s, len);
    v[len] = '\0';
    return gabi_arena_strdup(&p->arena, v);
}

/* The next line of *s into line (cut at size - 1); false at the end. */
static bool next_line(const char **s, char *line, size_t size)
{
    size_t len;

    if (!**s)
        return false;
    len = strcspn(*s, "\n");
    gabi_strlcpy(line, *s, MIN(len + 1, size));
    *s += (*s)[len] ? len + 1 : len;
    return true;
}

/*
 * `-device virtio-net-pci,help`: since QEMU 5.x "virtio-net-pci options:" then one
 * "  NAME=<TYPE>  - ..." per line; before, one "virtio-net-pci.NAME=TYPE ..." per line. Counts
 * every property; returns the feature bits of the ones in gabi_hv_properties(), or -EINVAL when
 * the output has neither form.
 */
static int parse_device_help(const char *out, uint64_t *ret_features, size_t *ret_n)
{
    static const char old_prefix[] = "virtio-net-pci.";
    const char *s = out;
    char line[512];
    bool header = false;
    uint64_t features = 0;
    size_t n = 0;

    while (next_line(&s, line, sizeof(line))) {
        const char *name = line;
        const struct gabi_hv_property *prop;
        size_t len;

        if (strcmp(line, "virtio-net-pci options:") == 0) {
            header = true;
            continue;
        }
        if (strncmp(line, old_prefix, sizeof(old_prefix) - 1) == 0)
            name = line + sizeof(old_prefix) - 1;
        else if (header && line[0] == ' ')
            name = line + strspn(line, " ");
        else
            continue;
        len = strcspn(name, "=");
        if (!name[len] || len == 0 || len >= GABI_MAX_NAME)
            continue;
        ((char *)name)[len] = '\0';
        n++;
        prop = gabi_hv_property_find(name);
        if (prop)
            features |= 1ull << prop->bit;
    }
    if (n == 0)
        return -EINVAL;
    *ret_features = features;
    *ret_n = n;
    return 0;
}

/* `-machine help`: "Supported machines are:" then "NAME   DESCRIPTION" per line. */
static int parse_machines(struct gabi_probe *p, const char *out, const char ***ret, size_t *ret_n)
{
    const char *s = strstr(out, "Supported machines are:");
    const char **names;
    char line[512];
    size_t n = 0;

    if (!s)
        return -EINVAL;
    names = gabi_arena_alloc_array(&p->arena, GABI_MAX_MACHINES, sizeof(*names));
    if (!names)
        return -ENOMEM;
    next_line(&s, line, sizeof(line));
    while (next_line(&s, line, sizeof(line))) {
        size_t len = strcspn(line, " \t");

        line[len] = '\0';
        if (!probe_is_token(line, GABI_MAX_NAME - 1))
            continue;
        if (n == GABI_MAX_MACHINES)
            return -E2BIG;
        names[n] = gabi_arena_strdup(&p->arena, line);
        if (!names[n])
            return -ENOMEM;
        n++;
    }
    if (n == 0)
        return -EINVAL;
    *ret = names;
    *ret_n = n;
    return 0;
}

/* ---- the part ---------------------------------------------------------------------------- */

static int set_failed(struct gabi_probe *p, struct gabi_hostcaps_hypervisor *hv,
                      enum gabi_hv_state state, const char *message)
{
    hv->state = state;
    hv->version = NULL;
    hv->net_features = 0;
    hv->has_machines = false;
    hv->n_machines = 0;
    hv->message = message ? message : "out of memory";
    /* A host without QEMU is no problem of the probe's: the member says so. One that does not
     * answer is. */
    if (state == GABI_HV_FAILED)
        probe_problem(p, hv->binary, -EIO, "%s", hv->message);
    return gabi_hostcaps_set_hypervisor(p->hostcaps, hv);
}

int probe_hypervisor(struct gabi_probe *p, const struct gabi_probe_options *o)
{
    static const char *const questions[][2] = {
        {"-version", NULL},
        {"-machine", "help"},
        {"-device", "virtio-net-pci,help"},
    };
    const char *qemu = o->qemu ? o->qemu : GABI_PROBE_QEMU_DEFAULT;
    unsigned timeout = o->qemu_timeout_ms ? o->qemu_timeout_ms : GABI_PROBE_QEMU_TIMEOUT;
    struct gabi_hostcaps_hypervisor hv = {.name = "qemu"};
    const char **machines = NULL;
    int r;

    r = resolve_binary(p, qemu, &hv.binary);
    if (r == -ENOMEM)
        return r;
    if (r < 0) {
        hv.binary = gabi_arena_strdup(&p->arena, qemu);
        return set_failed(
            p, &hv, GABI_HV_ABSENT,
            gabi_arena_printf(&p->arena, "%s %s: %s", qemu,
                              strchr(qemu, '/') ? "cannot be run" : "not found on PATH",
                              strerror(-r)));
    }
    for (size_t q = 0; q < ARRAY_SIZE(questions); q++) {
        const char *what =
            gabi_arena_printf(&p->arena, "%s %s%s%s", hv.binary, questions[q][0],
                              questions[q][1] ? " " : "", questions[q][1] ? questions[q][1] : "");
        struct qemu_run run;
        const char *why;

        r = run_qemu(hv.binary, questions[q][0], questions[q][1], timeout, &run);
        if (r < 0)
            return set_failed(
                p, &hv, r == -ENOENT ? GABI_HV_ABSENT : GABI_HV_FAILED,
                gabi_arena_printf(&p->arena, "%s: cannot be run: %s", what, strerror(-r)));
        why = run_failure(p, &run, timeout);
        if (!why) {
            if (q == 0) {
                hv.version = parse_version(p, run.out);
                if (!hv.version)
                    why = "printed no \"QEMU emulator version X.Y.Z\" line";
            } else if (q == 1) {
                r = parse_machines(p, run.out, &machines, &hv.n_machines);
                if (r == -ENOMEM) {
                    free(run.out);
                    return r;
                }
                if (r < 0)
                    why = r == -E2BIG ? "listed more than 512 machine types"
                                      : "printed no \"Supported machines are:\" list";
                hv.machines = machines;
                hv.has_machines = r == 0;
            } else if (parse_device_help(run.out, &hv.net_features, &p->n_hv_properties) < 0) {
                why = "listed no virtio-net-pci property";
            }
        }
        free(run.out);
        gabi_log_debug("probe", "%s: %s", what, why ? why : "ok");
        if (why)
            return set_failed(p, &hv, GABI_HV_FAILED,
                              gabi_arena_printf(&p->arena, "%s: %s", what, why));
    }
    hv.state = GABI_HV_PROBED;
    return gabi_hostcaps_set_hypervisor(p->hostcaps, &hv);
}
