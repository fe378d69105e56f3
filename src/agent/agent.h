/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * guestabid, the host agent: one epoll loop serving JSON-RPC (lib/rpc), supervising one
 * back-end process per vhost-user port (guestabi-net / guestabi-blk), keeping the ports in
 * SQLite so that a restart brings every port back in the same mode on the same socket.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include <guestabi/abi.h>
#include <guestabi/error.h>
#include <guestabi/log.h>
#include <guestabi/rpc.h>

#define AGENT_MAX_PORTS        1024u
#define AGENT_MAX_ID           64u /* bytes in a port id: [A-Za-z0-9._-] */
#define AGENT_MAX_CATALOGS     16u
#define AGENT_MAX_BACKEND_DIRS 4u
#define AGENT_CTL_MAX          (256u << 10) /* bytes of one stats reply from a back-end */

struct store;
struct agent_placement;

/* How a port's back-end forwards or stores: exactly one of these. */
struct port_backing {
    char *tap;     /* virtio-net: a tap device by name */
    bool loopback; /* virtio-net: back to the guest */
    char *disk;    /* virtio-blk: a file or block device */
    uint64_t ram;  /* virtio-blk: a RAM disk of this many bytes */
};

/* Who may connect to a port's socket (port.add's "access"): applied each time its back-end
 * listens, so a restarted back-end's new socket gets it too. */
struct port_access {
    char *json;  /* as stored, or NULL: the socket stays root's, mode 0660 */
    uid_t uid;   /* (uid_t)-1: unchanged */
    gid_t gid;   /* (gid_t)-1: unchanged */
    mode_t mode; /* 0: unchanged */
};

enum port_state {
    PORT_STARTING,   /* its back-end was started again and has not said READY yet */
    PORT_RUNNING,    /* its back-end process is up and listens */
    PORT_RESTARTING, /* it died; restarted at restart_at_ms */
};

/* The epoll token of a port's READY pipe: its serial with this bit (the control connection's
 * is the serial alone). */
#define PORT_TOKEN_READY (1ull << 62)

struct port {
    struct port *next;
    uint64_t serial; /* epoll token of its control connection */
    char *id;
    enum gabi_device_class cls;
    char *socket;
    const struct gabi_mode *mode;
    struct port_backing backing;
    char *backing_json; /* as stored */
    struct port_access access;
    int64_t created; /* unix seconds */

    /* the back-end process */
    enum port_state state;
    pid_t pid;
    unsigned restarts;
    uint64_t started_ms, restart_at_ms;
    char last_exit[128];                  /* why it last died, or "" */
    char *control;                        /* its control socket (guestabi-net) or NULL */
    char *log;                            /* its stderr */
    int ready_fd;                         /* STARTING: the read end of its --ready-fd, or -1 */
    bool timed_out;                       /* killed for not getting ready in time */
    struct gabi_rpc_pending *pending_add; /* STARTING for a port.add: its answer */
    char ready_buf[8];
    size_t ready_len;

    /* the control connection (guestabi-net): stats polled every poll interval */
    int ctl_fd;
    char *ctl_buf;
    size_t ctl_len;
    uint64_t ctl_sent_ms; /* a request is outstanding since then; 0: none */
    json_t *stats;        /* the last stats of this port, or NULL */
    uint64_t stats_ms;
    int connected;        /* -1 unknown, 0, 1 */
    int64_t connections;  /* front-end connections the back-end reported */
    char last_error[512]; /* why its last connection closed, or "" */
};

struct agent {
    /* options */
    const char *socket_path, *state_dir, *run_dir, *group, *host_name;
    const char *catalogs[AGENT_MAX_CATALOGS];
    unsigned n_catalogs;
    const char *backend_dirs[AGENT_MAX_BACKEND_DIRS];
    unsigned n_backend_dirs;
    int ready_fd;
    unsigned poll_ms;
    struct gabi_rpc_config rpc_cfg;
    const char *placement_url, *placement_token; /* NULL: $OS_PLACEMENT_ENDPOINT, $OS_TOKEN */
    unsigned placement_timeout_ms;
    const char *sysfs_root, *dev_root; /* the probe's roots (NULL: /sys, /dev) */
    unsigned failover_ttl_s, failover_settle_ms;

    /* state */
    int epfd, sigfd;
    bool stop;
    struct gabi_catalog *cat;
    struct gabi_hostcaps *caps;
    char *backend_path[2]; /* guestabi-net, guestabi-blk (NULL: not found) */
    const struct gabi_mode *runs[2][GABI_MAX_MODES]; /* modes each back-end runs, newest first */
    size_t n_runs[2];
    struct gabi_rpc_server *rpc;
    struct store *store;
    struct sqlite3 *failover_db; /* failover.c's connection to the same database */
    struct port *ports;
    size_t n_ports;
    uint64_t next_serial;
    uint64_t last_poll_ms;
    struct agent_placement *placement; /* placement.c */
};

enum { BACKEND_NET = 0, BACKEND_BLK = 1 };

uint64_t agent_now_ms(void);
void agent_log(int level, const char *peer, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* caps.c: the back-ends, the modes they run and this host's hostcaps */
int agent_find_backends(struct agent *a, struct gabi_error *reterr);
int agent_probe(struct agent *a, struct gabi_error *reterr);
int agent_backend_index(enum gabi_device_class cls); /* -1: none */
bool agent_runs_mode(const struct agent *a, const struct gabi_mode *m);

/* store.c: the ports in SQLite */
int store_open(const char *dir, struct store **ret, struct gabi_error *reterr);
struct store *store_close(struct store *st);
int store_insert(struct store *st, const struct port *p, struct gabi_error *reterr);
int store_delete(struct store *st, const char *id, struct gabi_error *reterr);
/* Opened read-only (the directory cannot be written): insert and delete fail with -EROFS. */
bool store_readonly(const struct store *st);
typedef int (*store_row_fn)(const char *id, const char *cls, const char *socket, const char *mode,
                            const char *backing, const char *access, int64_t created,
                            void *userdata);
int store_foreach(struct store *st, store_row_fn fn, void *userdata, struct gabi_error *reterr);

/* ports.c: ports and their back-end processes */
int port_parse_backing(enum gabi_device_class cls, json_t *j, struct port_backing *ret,
                       struct gabi_error *reterr);
/* "access": {"user"?: NAME, "group"?: NAME, "mode"?: "0660"} (NULL j: none); *ret takes a
 * canonical copy of it. Errors name params.access.KEY. */
int port_parse_access(json_t *j, struct port_access *ret, struct gabi_error *reterr);
struct port *port_new(struct agent *a, const char *id, enum gabi_device_class cls,
                      const char *socket, const struct gabi_mode *mode,
                      const struct port_backing *backing, const char *backing_json,
                      int64_t created);
struct port *port_free(struct agent *a, struct port *p);
struct port *port_find(struct agent *a, const char *id);
struct port *port_find_socket(struct agent *a, const char *socket);
/* Start its back-end and wait (bounded) until it listens. */
int port_start(struct agent *a, struct port *p, struct gabi_error *reterr);
/* Start its back-end and answer `pending` (a deferred port.add) once it listens, or with the
 * reason it exited. <0 (reterr) when it could not even be started: nothing is pending then. */
int port_start_async(struct agent *a, struct port *p, struct gabi_rpc_pending *pending,
                     struct gabi_error *reterr);
/* SIGTERM, then SIGKILL after a grace period; reaps it. */
void port_stop(struct agent *a, struct port *p);
void ports_reap(struct agent *a);      /* SIGCHLD */
void ports_tick(struct agent *a);      /* restarts due, stats polls */
int ports_timeout_ms(struct agent *a); /* until the next tick is due */
void port_ctl_event(struct agent *a, uint64_t serial, uint32_t events);
json_t *port_json(const struct agent *a, const struct port *p);

/* methods.c */
extern const struct gabi_rpc_method agent_methods[];
extern const size_t agent_n_methods;
void agent_event(struct agent *a, const char *method, json_t *params);
