/* SPDX-License-Identifier: MIT */
/* What the benchmarks share (benchutil.h). */
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

double bench_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void bench_pin(int cpu)
{
    cpu_set_t set;

    if (cpu < 0)
        return;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof(set), &set);
}

pid_t bench_spawn_ready(const char *const argv[], int cpu, bool quiet, int timeout_ms,
                        const char *who)
{
    char buf[8] = {0};
    struct pollfd pf;
    int p[2], status;
    pid_t pid;

    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        bench_pin(cpu);
        if (quiet) {
            int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

            if (null >= 0)
                dup2(null, 2);
        }
        dup2(p[1], BENCH_READY_FD); /* without CLOEXEC */
        execvp(argv[0], (char *const *)argv);
        perror(argv[0]);
        _exit(127);
    }
    close(p[1]);
    pf = (struct pollfd){.fd = p[0], .events = POLLIN};
    if (pid < 0 || poll(&pf, 1, timeout_ms) != 1 || read(p[0], buf, sizeof(buf) - 1) != 6 ||
        strcmp(buf, "READY\n") != 0) {
        fprintf(stderr, "%s: %s did not start\n", who, argv[0]);
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
        }
        close(p[0]);
        return -1;
    }
    close(p[0]);
    return pid;
}
