/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A small client of guestabid's JSON-RPC 2.0 (newline-delimited over a unix socket), for the
 * libvirt hook: one connection, one call at a time, every call bounded by a deadline.
 */

#include <jansson.h>
#include <stdint.h>

#include <guestabi/error.h>

#define AGENT_MAX_REPLY (4u << 20) /* bytes of one reply line */

struct agent_client {
    int fd;
    const char *path;
    uint64_t deadline_ms; /* CLOCK_MONOTONIC: every call ends by then */
    unsigned next_id;
};

/* Milliseconds on CLOCK_MONOTONIC. */
uint64_t agent_now_ms(void);

/* Connect to the agent at `path`; every later call must end by deadline_ms. */
int agent_client_open(struct agent_client *c, const char *path, uint64_t deadline_ms,
                      struct gabi_error *reterr);
void agent_client_close(struct agent_client *c);

/* Call `method` with params (stolen). On success *ret_result is the result (a new reference).
 * A JSON-RPC error gives -EREMOTE with reterr holding the agent's reason (and *ret_code its
 * code, if ret_code is not NULL); a transport failure or the deadline gives -errno. */
int agent_client_call(struct agent_client *c, const char *method, json_t *params,
                      json_t **ret_result, int *ret_code, struct gabi_error *reterr);
