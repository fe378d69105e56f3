/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * JSON-RPC 2.0 over a unix stream socket, newline-delimited: one request (or batch) per line,
 * one reply per line. The server owns no loop: it keeps its listening socket and its clients
 * in an epoll set of its own whose fd the caller watches (gabi_rpc_server_fd(), readable when
 * anything is ready) and calls gabi_rpc_server_process() when it is, and at the latest after
 * gabi_rpc_server_timeout_ms().
 *
 * Everything a peer controls is bounded: the bytes of one request line, the nesting depth of
 * its JSON, the entries of a batch, the number of clients, the bytes queued for a client that
 * does not read (it is dropped), and how long a request may take to arrive (a client that
 * dribbles is dropped). Peers are checked at accept (SO_PEERCRED): root, the server's own user,
 * or a member of the configured group; anyone else gets one error line and is disconnected.
 *
 * Errors: handlers fail with a struct gabi_error (code -errno, where = the JSON path of the
 * offending parameter, message = the reason). The server maps the errno to a JSON-RPC code
 * (gabi_rpc_code_for_errno()) and answers {"code", "message", "data": {"errno", "path",
 * "reason"}}.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include <guestabi/error.h>
#include <guestabi/log.h>

/* JSON-RPC 2.0's own codes, and guestabi's (-32000 .. -32099, the server-error range). */
enum {
    GABI_RPC_PARSE_ERROR = -32700,
    GABI_RPC_INVALID_REQUEST = -32600,
    GABI_RPC_METHOD_NOT_FOUND = -32601,
    GABI_RPC_INVALID_PARAMS = -32602,
    GABI_RPC_INTERNAL_ERROR = -32603,
    GABI_RPC_NOT_FOUND = -32000,   /* ENOENT: no such port, mode, ... */
    GABI_RPC_EXISTS = -32001,      /* EEXIST: a port with that id or socket exists */
    GABI_RPC_UNSUPPORTED = -32002, /* EOPNOTSUPP: this host cannot run it */
    GABI_RPC_STORAGE = -32003,     /* EIO, ENOSPC, EROFS: the state database failed */
    GABI_RPC_BACKEND = -32004,     /* ECHILD: a back-end process failed to start */
    GABI_RPC_LIMIT = -32005,       /* E2BIG, EMFILE: a limit was reached */
    GABI_RPC_PERMISSION = -32006,  /* EPERM, EACCES: the peer is not allowed */
    GABI_RPC_TOO_SLOW = -32007,    /* ETIMEDOUT: the request did not arrive in time */
    GABI_RPC_REMOTE = -32008,      /* EREMOTEIO: a remote service (Placement) failed */
    GABI_RPC_DEVICE = -32009,      /* ENODEV: a device (a VF) refused a sysfs step */
};

/* The JSON-RPC code for a handler's -errno (EINVAL: invalid params). */
int gabi_rpc_code_for_errno(int code);

/* Defaults of struct gabi_rpc_config's bounds (0 there means these). */
#define GABI_RPC_DEFAULT_MAX_REQUEST (1u << 20) /* bytes in one request line */
#define GABI_RPC_DEFAULT_MAX_DEPTH   32u        /* nesting of arrays and objects */
#define GABI_RPC_DEFAULT_MAX_BATCH   64u        /* requests in one batch */
#define GABI_RPC_DEFAULT_MAX_CLIENTS 128u
#define GABI_RPC_DEFAULT_MAX_OUTPUT  (4u << 20) /* bytes queued for one client */
#define GABI_RPC_DEFAULT_REQUEST_MS  10000u     /* a started request line must end by then */

struct gabi_rpc_server;
struct gabi_rpc_call;

/* A method: params is the request's "params" (an object; {} when absent). On success the
 * handler sets *ret_result (a new reference) and returns 0; on failure it returns -errno with
 * reterr filled (where: the parameter's path, "params.id"). */
typedef int (*gabi_rpc_method_fn)(struct gabi_rpc_call *call, json_t *params, json_t **ret_result,
                                  struct gabi_error *reterr, void *userdata);

struct gabi_rpc_method {
    const char *name; /* "port.add" */
    gabi_rpc_method_fn fn;
    const char *params; /* one line: the parameters, for rpc.methods */
    const char *result; /* one line: what it answers */
};

struct gabi_rpc_config {
    const char *path; /* the socket; an existing socket there is replaced */
    mode_t mode;      /* of the socket file; 0: 0660 */
    gid_t gid;        /* group owning the socket and allowed to connect; (gid_t)-1: none */
    size_t max_request, max_depth, max_batch, max_clients, max_output;
    unsigned request_ms;
};

/* Listen on cfg->path serving `methods` (copied: n entries; the strings must outlive the
 * server). rpc.methods is built in. */
int gabi_rpc_server_new(const struct gabi_rpc_config *cfg, const struct gabi_rpc_method *methods,
                        size_t n_methods, void *userdata, struct gabi_rpc_server **ret,
                        struct gabi_error *reterr);
/* Closes every client and the socket (and unlinks it). NULL-safe; returns NULL. */
struct gabi_rpc_server *gabi_rpc_server_free(struct gabi_rpc_server *s);

/* The fd to watch for EPOLLIN. */
int gabi_rpc_server_fd(const struct gabi_rpc_server *s);
/* Milliseconds until the next deadline (a slow client), or -1 for none. */
int gabi_rpc_server_timeout_ms(const struct gabi_rpc_server *s);
/* Accept, read, answer and write what is ready, and drop clients past their deadlines; never
 * blocks. 0, or -errno for a failure of the server itself (not of a client). */
int gabi_rpc_server_process(struct gabi_rpc_server *s);

size_t gabi_rpc_server_n_clients(const struct gabi_rpc_server *s);

/*
 * Answering later: a handler that cannot answer at once (it waits for a process, say) calls
 * gabi_rpc_call_defer() and returns 0 without a result; the program answers with
 * gabi_rpc_pending_reply() when it knows (result stolen, or err), which also frees the pending
 * call. The client meanwhile gets the replies of its other requests (JSON-RPC matches them by
 * id). NULL inside a batch (a batch is answered as one line) or out of memory: answer now.
 * A client that went away is not answered; the pending call is still freed.
 */
struct gabi_rpc_pending;
struct gabi_rpc_pending *gabi_rpc_call_defer(struct gabi_rpc_call *call);
void gabi_rpc_pending_reply(struct gabi_rpc_server *s, struct gabi_rpc_pending *p, json_t *result,
                            const struct gabi_error *err);
/* Changed its mind before returning: the handler's own return value answers after all (free
 * the pending call with gabi_rpc_pending_free()). */
void gabi_rpc_call_undefer(struct gabi_rpc_call *call);
/* Forget a pending call without answering. NULL-safe; returns NULL. */
struct gabi_rpc_pending *gabi_rpc_pending_free(struct gabi_rpc_pending *p);

/* Inside a handler: mark the calling connection as subscribed to notifications. */
void gabi_rpc_call_subscribe(struct gabi_rpc_call *call);
/* The peer's credentials. */
void gabi_rpc_call_peer(const struct gabi_rpc_call *call, pid_t *ret_pid, uid_t *ret_uid);

/* Send {"jsonrpc":"2.0","method":method,"params":params} to every subscribed client (steals
 * params). A client whose queue overflows is dropped. Returns how many got it. */
size_t gabi_rpc_server_notify(struct gabi_rpc_server *s, const char *method, json_t *params);

/* Optional log of what peers did: connects and hang-ups at GABI_LOG_DEBUG, refusals and drops
 * (with why) at GABI_LOG_INFO. A peer can cause these at will: the program rate-limits them. */
typedef void (*gabi_rpc_log_fn)(enum gabi_log_level level, const char *peer, const char *msg,
                                void *userdata);
void gabi_rpc_server_set_log(struct gabi_rpc_server *s, gabi_rpc_log_fn fn, void *userdata);

/*
 * Parameters by name, for handlers: each checks one member of `params` and, on failure, fills
 * reterr with the path "params.KEY" and why (missing, wrong type, out of bounds) and returns
 * -EINVAL. Optional members that are absent give the default (or NULL).
 */
/* Refuse members not named in `known` (NULL-terminated), naming them and the known ones. */
int gabi_rpc_param_only(json_t *params, const char *const *known, struct gabi_error *reterr);
/* A string of 1 to max bytes without NUL; *ret points into params. */
int gabi_rpc_param_string(json_t *params, const char *key, bool required, size_t max,
                          const char **ret, struct gabi_error *reterr);
int gabi_rpc_param_bool(json_t *params, const char *key, bool dflt, bool *ret,
                        struct gabi_error *reterr);
/* An object member (required), borrowed. */
int gabi_rpc_param_object(json_t *params, const char *key, json_t **ret, struct gabi_error *reterr);
/* "an object", "a string", ...: for messages. */
const char *gabi_rpc_json_type(const json_t *v);
