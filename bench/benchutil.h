/* SPDX-License-Identifier: MIT */
/* What the benchmarks share: a clock, CPU pinning, a back-end started and awaited through
 * its --ready-fd. */
#ifndef GABI_BENCHUTIL_H
#define GABI_BENCHUTIL_H

#include <stdbool.h>
#include <sys/types.h>

/* The fd number a child started by bench_spawn_ready() writes "READY\n" to: argv must carry
 * "--ready-fd", BENCH_READY_FD_STR. */
#define BENCH_READY_FD     100
#define BENCH_READY_FD_STR "100"

/* CLOCK_MONOTONIC in seconds. */
double bench_now(void);
/* Pins the calling thread to one CPU (cpu < 0: leaves it). */
void bench_pin(int cpu);
/* Starts argv (argv[0] looked up in PATH when it has no slash) on `cpu` (< 0: anywhere), its
 * stderr to /dev/null when quiet, and waits up to timeout_ms for its "READY\n". The pid, or -1
 * after saying on stderr that `who` could not start it (the child is killed). */
pid_t bench_spawn_ready(const char *const argv[], int cpu, bool quiet, int timeout_ms,
                        const char *who);

#endif
