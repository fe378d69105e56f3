/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A client of a JSON-RPC 2.0 server such as guestabid's (newline-delimited over a unix socket):
 * one connection, one call at a time, every call bounded by a deadline and every reply by a
 * size. Notifications the server sends in between (events.subscribe) are skipped. The guestabi
 * CLI and the libvirt hook talk to the agent through it.
 */

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <guestabi/error.h>

#define GABI_RPC_CLIENT_MAX_REPLY (64u << 20) /* bytes of one reply line, by default */

/* Caller-owned; fd -1 when closed. */
struct gabi_rpc_client {
    int fd;
    const char *path;     /* not copied */
    uint64_t deadline_ms; /* CLOCK_MONOTONIC (gabi_rpc_now_ms()): every call ends by then */
    size_t max_reply;     /* bytes of one reply line */
    unsigned next_id;
};

/* Milliseconds on CLOCK_MONOTONIC. */
uint64_t gabi_rpc_now_ms(void);

/* Connect to the server at `path`; every later call must end by deadline_ms, and no reply may
 * pass max_reply bytes (0: GABI_RPC_CLIENT_MAX_REPLY). */
int gabi_rpc_client_open(struct gabi_rpc_client *c, const char *path, uint64_t deadline_ms,
                         size_t max_reply, struct gabi_error *reterr);
void gabi_rpc_client_close(struct gabi_rpc_client *c);

/* Call `method` with params (stolen; NULL for none). On success *ret_result is the result (a
 * new reference). A JSON-RPC error gives -EREMOTE with reterr holding the server's reason and
 * the parameter's path, *ret_code its code and *ret_error the error object (a new reference),
 * each when not NULL; a transport failure or the deadline gives -errno with the reason. */
int gabi_rpc_client_call(struct gabi_rpc_client *c, const char *method, json_t *params,
                         json_t **ret_result, int *ret_code, json_t **ret_error,
                         struct gabi_error *reterr);
