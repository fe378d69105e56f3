/* SPDX-License-Identifier: MIT */
/* The unit tests' programs of this build as child processes: argv with placeholders, started
 * and awaited through --ready-fd, run to completion with their output, stopped. */
#ifndef GABI_TEST_CHILD_H
#define GABI_TEST_CHILD_H

#include <stddef.h>
#include <sys/types.h>

/* $GUESTABI_BUILD_ROOT/rel (or ./rel); static storage, valid until the next call. */
const char *child_binary(const char *rel);

/* argv: binary, then args (NULL-terminated) each passed through subst (when not NULL; it
 * returns the argument itself or what a placeholder stands for), then "--ready-fd N" when
 * ready_fd >= 0. Static storage: valid until the next call; at most 60 arguments. */
char **child_argv(const char *binary, const char *const *args,
                  const char *(*subst)(const char *arg, void *userdata), void *userdata,
                  int ready_fd);

/* The ready-fd number child_start() hands its children. */
#define CHILD_READY_FD 100

/* Starts argv (built with ready_fd CHILD_READY_FD), its output into log_path (NULL: ours),
 * and waits up to 20 s for "READY\n" on the ready fd. 0 with *ret_pid set, or -EIO (the child
 * is killed and reaped). The child gets SIGTERM if the test dies first. */
int child_start(char **argv, const char *log_path, pid_t *ret_pid);
/* Sends sig and reaps: the exit status, 128 + signal, or -errno; *pid becomes 0. */
int child_stop(pid_t *pid, int sig);
/* Runs argv to completion, its stdout and stderr into out (NUL-terminated): the exit status,
 * 128 + signal, or -errno. */
int child_run(char **argv, char *out, size_t size);

#endif
