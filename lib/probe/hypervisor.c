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

/* One QEMU run: the child, its pipes, what it printed and how it ended. */
struct qemu_run {
    pid_t pid;
    int out, err; /* read ends; -1 once at EOF */
    char *buf;    /* stdout, NUL-terminated */
    size_t size, alloc;
    char first_err[256]; /* the start of stderr, for messages */
    size_t err_size;
    int status; /* waitpid() status once reaped */
    bool reaped, timed_out, too_large;
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

/* Start `binary arg1 [arg2]` with stdin on /dev/null and its output on pipes. 0, or -errno
 * when the child could not be started (exec's errno comes back on a CLOEXEC pipe). */
static int run_start(const char *binary, const char *arg1, const char *arg2, int null_fd,
                     struct qemu_run *run)
{
    const char *argv[] = {binary, arg1, arg2, NULL};
    int out[2] = {-1, -1}, err[2] = {-1, -1}, exec_err[2] = {-1, -1};
    int child_errno = 0, r = 0;
    pid_t pid;

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
        /* The child: only async-signal-safe calls. Its own process group, so that a timeout
         * kills whatever it started too. */
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
    close_and_clear(&exec_err[1]);
    if (read(exec_err[0], &child_errno, sizeof(child_errno)) == (ssize_t)sizeof(child_errno)) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        r = -child_errno;
        goto out;
    }
    run->pid = pid;
    run->out = TAKE_FD(out[0]);
    run->err = TAKE_FD(err[0]);
out:
    close_and_clear(&out[0]);
    close_and_clear(&out[1]);
    close_and_clear(&err[0]);
    close_and_clear(&err[1]);
    close_and_clear(&exec_err[0]);
    close_and_clear(&exec_err[1]);
    return r;
}

/* Read what is there on run->out, growing the buffer up to GABI_PROBE_MAX_QEMU_OUT. */
static void read_out(struct qemu_run *run)
{
    char chunk[4096];
    ssize_t n = read(run->out, chunk, sizeof(chunk));

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        close_and_clear(&run->out);
        return;
    }
    if (run->size + (size_t)n > GABI_PROBE_MAX_QEMU_OUT) {
        run->too_large = true;
        close_and_clear(&run->out);
        return;
    }
    if (run->size + (size_t)n + 1 > run->alloc) {
        size_t na = MAX(run->alloc * 2, run->size + (size_t)n + 1);
        char *nb = realloc(run->buf, na);

        if (!nb) {
            run->too_large = true; /* cannot hold it: not understood */
            close_and_clear(&run->out);
            return;
        }
        run->buf = nb;
        run->alloc = na;
    }
    memcpy(run->buf + run->size, chunk, (size_t)n);
    run->size += (size_t)n;
    run->buf[run->size] = '\0';
}

/* Keep the start of stderr, read and drop the rest. */
static void read_err(struct qemu_run *run)
{
    char chunk[4096];
    ssize_t n = read(run->err, chunk, sizeof(chunk));

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        close_and_clear(&run->err);
        return;
    }
    n = (ssize_t)MIN(sizeof(run->first_err) - 1 - run->err_size, (size_t)n);
    memcpy(run->first_err + run->err_size, chunk, (size_t)n);
    run->err_size += (size_t)n;
    run->first_err[run->err_size] = '\0';
}

/* Kill a run with its process group, and reap it. */
static void run_kill(struct qemu_run *run)
{
    close_and_clear(&run->out);
    close_and_clear(&run->err);
    kill(-run->pid, SIGKILL);
    kill(run->pid, SIGKILL);
    while (waitpid(run->pid, &run->status, 0) < 0 && errno == EINTR)
        ;
    run->reaped = true;
}

/* Drive the started runs to their end, all at once, until the deadline: read their output,
 * reap them; kill (with its process group) and reap whatever is still running then. */
static void runs_finish(struct qemu_run *runs, size_t n, long long deadline)
{
    for (;;) {
        struct pollfd pfd[6];
        struct qemu_run *owner[6];
        size_t n_fds = 0, n_live = 0;
        long long left = deadline - now_ms();

        for (size_t i = 0; i < n; i++) {
            struct qemu_run *run = &runs[i];

            if (run->pid <= 0 || run->reaped)
                continue;
            if (run->too_large) {
                run_kill(run); /* what it printed is refused already */
                continue;
            }
            if (run->out < 0 && run->err < 0) {
                pid_t w = waitpid(run->pid, &run->status, WNOHANG);

                /* ECHILD: a program that ignores SIGCHLD has its children reaped for it; the
                 * status is lost, and the output (complete: the pipes closed) decides. */
                if (w == run->pid || (w < 0 && errno == ECHILD)) {
                    run->reaped = true;
                    continue;
                }
            }
            n_live++;
            if (run->out >= 0) {
                owner[n_fds] = run;
                pfd[n_fds++] = (struct pollfd){.fd = run->out, .events = POLLIN};
            }
            if (run->err >= 0) {
                owner[n_fds] = run;
                pfd[n_fds++] = (struct pollfd){.fd = run->err, .events = POLLIN};
            }
        }
        if (n_live == 0)
            return;
        if (left <= 0)
            break;
        /* With every pipe closed, poll() only sleeps: look for the exit again in 2 ms. */
        if (poll(pfd, n_fds, n_fds ? (int)MIN(left, 1000) : (int)MIN(left, 2)) <= 0)
            continue;
        for (size_t k = 0; k < n_fds; k++) {
            if (!pfd[k].revents)
                continue;
            if (pfd[k].fd == owner[k]->out)
                read_out(owner[k]);
            else
                read_err(owner[k]);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (runs[i].pid <= 0 || runs[i].reaped)
            continue;
        runs[i].timed_out = true;
        run_kill(&runs[i]);
    }
}

static void run_release(struct qemu_run *run)
{
    close_and_clear(&run->out);
    close_and_clear(&run->err);
    free(run->buf);
    run->buf = NULL;
}

/* Why a finished run does not count, or NULL when it exited 0. */
static const char *run_failure(struct gabi_probe *p, const struct qemu_run *run,
                               unsigned timeout_ms)
{
    char first[160];

    gabi_strlcpy(first, run->first_err, sizeof(first));
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
    struct qemu_run runs[ARRAY_SIZE(questions)];
    int start_err[ARRAY_SIZE(questions)];
    enum gabi_hv_state state = GABI_HV_FAILED;
    _cleanup_close_ int null_fd = -1;
    const char **machines = NULL, *why = NULL, *what = NULL;
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
    /* The three questions run at once: each costs a QEMU start, and they do not depend on
     * each other. One deadline bounds them all. */
    null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0)
        return set_failed(p, &hv, GABI_HV_FAILED,
                          gabi_arena_printf(&p->arena, "/dev/null: %s", strerror(errno)));
    for (size_t q = 0; q < ARRAY_SIZE(questions); q++) {
        runs[q] = (struct qemu_run){.out = -1, .err = -1};
        start_err[q] = run_start(hv.binary, questions[q][0], questions[q][1], null_fd, &runs[q]);
    }
    runs_finish(runs, ARRAY_SIZE(questions), now_ms() + timeout);
    for (size_t q = 0; q < ARRAY_SIZE(questions) && !why; q++) {
        const char *out = runs[q].buf ? runs[q].buf : "";

        what =
            gabi_arena_printf(&p->arena, "%s %s%s%s", hv.binary, questions[q][0],
                              questions[q][1] ? " " : "", questions[q][1] ? questions[q][1] : "");
        if (start_err[q] < 0) {
            state = start_err[q] == -ENOENT ? GABI_HV_ABSENT : GABI_HV_FAILED;
            why = gabi_arena_printf(&p->arena, "cannot be run: %s", strerror(-start_err[q]));
            continue;
        }
        why = run_failure(p, &runs[q], timeout);
        if (why)
            continue;
        if (q == 0) {
            hv.version = parse_version(p, out);
            if (!hv.version)
                why = "printed no \"QEMU emulator version X.Y.Z\" line";
        } else if (q == 1) {
            r = parse_machines(p, out, &machines, &hv.n_machines);
            if (r == -ENOMEM)
                why = "out of memory";
            else if (r < 0)
                why = r == -E2BIG ? "listed more than 512 machine types"
                                  : "printed no \"Supported machines are:\" list";
            hv.machines = machines;
            hv.has_machines = r == 0;
        } else if (parse_device_help(out, &hv.net_features, &p->n_hv_properties) < 0) {
            why = "listed no virtio-net-pci property";
        }
    }
    for (size_t q = 0; q < ARRAY_SIZE(questions); q++)
        run_release(&runs[q]);
    gabi_log_debug("probe", "%s: %s", hv.binary, why ? why : "ok");
    if (why)
        return set_failed(p, &hv, state, gabi_arena_printf(&p->arena, "%s: %s", what, why));
    hv.state = GABI_HV_PROBED;
    return gabi_hostcaps_set_hypervisor(p->hostcaps, &hv);
}
