/* SPDX-License-Identifier: MIT */
/* The unit tests' programs as child processes (child.h). */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"

const char *child_binary(const char *rel)
{
    static char path[4096];
    const char *root = getenv("GUESTABI_BUILD_ROOT");

    snprintf(path, sizeof(path), "%s/%s", root ? root : ".", rel);
    return path;
}

char **child_argv(const char *binary, const char *const *args,
                  const char *(*subst)(const char *arg, void *userdata), void *userdata,
                  int ready_fd)
{
    static char *argv[64];
    static char fdbuf[16];
    unsigned n = 0;

    argv[n++] = (char *)binary;
    for (; *args && n < 60; args++)
        argv[n++] = (char *)(subst ? subst(*args, userdata) : *args);
    if (ready_fd >= 0) {
        snprintf(fdbuf, sizeof(fdbuf), "%d", ready_fd);
        argv[n++] = (char *)"--ready-fd";
        argv[n++] = fdbuf;
    }
    argv[n] = NULL;
    return argv;
}

static int exit_code(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* fork and exec argv[0]: stdout and stderr to out_fd and the ready pipe as CHILD_READY_FD when
 * those are >= 0; the child gets SIGTERM when the test goes away. The pid, or -1. */
static pid_t fork_exec(char **argv, int out_fd, int ready_fd)
{
    pid_t pid;

    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* a test that stops early does not leave it behind */
        if (ready_fd >= 0)
            dup2(ready_fd, CHILD_READY_FD); /* without CLOEXEC */
        if (out_fd >= 0) {
            dup2(out_fd, 1);
            dup2(out_fd, 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

int child_start(char **argv, const char *log_path, pid_t *ret_pid)
{
    char buf[16] = {0};
    struct pollfd pf;
    int pp[2], status, lf = -1;
    pid_t pid;

    if (pipe2(pp, O_CLOEXEC) < 0)
        return -errno;
    if (log_path)
        lf = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    pid = fork_exec(argv, lf, pp[1]);
    if (lf >= 0)
        close(lf);
    close(pp[1]);
    pf = (struct pollfd){.fd = pp[0], .events = POLLIN};
    if (pid < 0 || poll(&pf, 1, 20000) != 1 || read(pp[0], buf, sizeof(buf) - 1) < 5 ||
        strcmp(buf, "READY\n") != 0) {
        close(pp[0]);
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
        }
        return -EIO;
    }
    close(pp[0]);
    *ret_pid = pid;
    return 0;
}

int child_stop(pid_t *pid, int sig)
{
    int status;

    if (*pid <= 0)
        return -ECHILD;
    kill(*pid, sig);
    if (waitpid(*pid, &status, 0) < 0)
        return -errno;
    *pid = 0;
    return exit_code(status);
}

int child_run(char **argv, char *out, size_t size)
{
    char spill[4096];
    size_t got = 0;
    int pp[2], status;
    pid_t pid;

    if (pipe2(pp, O_CLOEXEC) < 0)
        return -errno;
    pid = fork_exec(argv, pp[1], -1);
    close(pp[1]);
    for (;;) {
        /* past `size`, the rest is read and dropped: a child must never block on a full pipe */
        bool room = got < size - 1;
        ssize_t n = read(pp[0], room ? out + got : spill, room ? size - 1 - got : sizeof(spill));

        if (n <= 0)
            break;
        if (room)
            got += (size_t)n;
    }
    out[got] = '\0';
    close(pp[0]);
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return -ECHILD;
    return exit_code(status);
}
