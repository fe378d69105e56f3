/* SPDX-License-Identifier: MIT */
/*
 * What this host offers: the back-end programs the agent starts per port, the compat modes each
 * can run (its own --list-modes answer: the back-end is the authority on what it implements),
 * and the host's hostcaps (lib/probe, as `guestabi probe` builds it, plus those back-ends).
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <guestabi/probe.h>

#include "agent.h"
#include <guestabi/util.h>

#ifndef GUESTABI_BINDIR
#define GUESTABI_BINDIR "/usr/local/bin"
#endif

static const char *const backend_names[2] = {"guestabi-net", "guestabi-blk"};

int agent_backend_index(enum gabi_device_class cls)
{
    return cls == GABI_CLASS_NET ? BACKEND_NET : cls == GABI_CLASS_BLK ? BACKEND_BLK : -1;
}

bool agent_runs_mode(const struct agent *a, const struct gabi_mode *m)
{
    int b = agent_backend_index(m->cls);

    if (b < 0)
        return false;
    for (size_t i = 0; i < a->n_runs[b]; i++)
        if (a->runs[b][i] == m)
            return true;
    return false;
}

/* Run `prog --list-modes [--catalog DIR]...` and keep the catalog modes it names. */
static int list_modes(struct agent *a, int b, struct gabi_error *reterr)
{
    const char *argv[4 + 2 * AGENT_MAX_CATALOGS];
    char buf[64 << 10];
    size_t n = 0, len = 0;
    int pipefd[2], status;
    pid_t pid;

    argv[n++] = a->backend_path[b];
    argv[n++] = "--list-modes";
    for (unsigned i = 0; i < a->n_catalogs; i++) {
        argv[n++] = "--catalog";
        argv[n++] = a->catalogs[i];
    }
    argv[n] = NULL;
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return gabi_error_set(reterr, -errno, NULL, "pipe: %s", strerror(errno));
    pid = fork();
    if (pid < 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        return gabi_error_set(reterr, -errno, NULL, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        dup2(pipefd[1], STDOUT_FILENO);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    for (;;) {
        ssize_t k = read(pipefd[0], buf + len, sizeof(buf) - 1 - len);

        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        len += (size_t)k;
        if (len == sizeof(buf) - 1)
            break;
    }
    close(pipefd[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return gabi_error_set(reterr, -ECHILD, a->backend_path[b], "--list-modes failed");
    buf[len] = '\0';
    a->n_runs[b] = 0;
    for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        const struct gabi_mode *m;

        line[strcspn(line, "\t")] = '\0';
        m = gabi_catalog_find_mode(a->cat, line);
        if (m && a->n_runs[b] < GABI_MAX_MODES)
            a->runs[b][a->n_runs[b]++] = m;
    }
    return 0;
}

int agent_find_backends(struct agent *a, struct gabi_error *reterr)
{
    for (int b = 0; b < 2; b++) {
        free(a->backend_path[b]);
        a->backend_path[b] = NULL;
        for (unsigned i = 0; i <= a->n_backend_dirs && !a->backend_path[b]; i++) {
            const char *dir = i < a->n_backend_dirs ? a->backend_dirs[i] : GUESTABI_BINDIR;
            char *path;

            if (i == a->n_backend_dirs && a->n_backend_dirs)
                break; /* --backend-dir replaces the installed bindir */
            if (asprintf(&path, "%s/%s", dir, backend_names[b]) < 0)
                return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
            if (access(path, X_OK) == 0)
                a->backend_path[b] = path;
            else
                free(path);
        }
        if (a->backend_path[b]) {
            int r = list_modes(a, b, reterr);

            if (r < 0)
                return r;
            agent_log(GABI_LOG_INFO, NULL, "%s: %s runs %zu modes", backend_names[b],
                      a->backend_path[b], a->n_runs[b]);
        } else {
            agent_log(GABI_LOG_WARNING, NULL, "%s not found: no %s ports", backend_names[b],
                      b == BACKEND_NET ? "virtio-net" : "virtio-blk");
        }
    }
    return 0;
}

int agent_probe(struct agent *a, struct gabi_error *reterr)
{
    struct gabi_probe_options o = {
        .host = a->host_name,
        .sysfs_root = a->sysfs_root,
        .dev_root = a->dev_root,
        .parts = GABI_PROBE_KERNEL | GABI_PROBE_HYPERVISOR | GABI_PROBE_MDEV | GABI_PROBE_FAILOVER,
    };
    struct gabi_hostcaps *h;
    struct gabi_probe *p = NULL;
    int r;

    r = gabi_probe_run(a->cat, &o, &p, reterr);
    if (r < 0)
        return r;
    for (size_t i = 0; i < gabi_probe_n_problems(p); i++)
        agent_log(GABI_LOG_WARNING, NULL, "probe: %s: %s", gabi_probe_problem(p, i)->path,
                  gabi_probe_problem(p, i)->message);
    h = gabi_probe_hostcaps_steal(p);
    gabi_probe_free(p);
    for (int b = 0; b < 2; b++) {
        struct gabi_hostcaps_backend hb = {
            .name = backend_names[b],
            .cls = b == BACKEND_NET ? GABI_CLASS_NET : GABI_CLASS_BLK,
            .n_modes = a->n_runs[b],
            .modes = a->runs[b],
        };

        if (!a->backend_path[b] || !a->n_runs[b])
            continue;
        r = gabi_hostcaps_add_backend(h, &hb);
        if (r < 0) {
            gabi_hostcaps_free(h);
            return gabi_error_set(reterr, r, NULL, "hostcaps: %s", strerror(-r));
        }
    }
    gabi_hostcaps_free(a->caps);
    a->caps = h;
    return 0;
}
