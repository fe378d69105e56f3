/* SPDX-License-Identifier: MIT */
/*
 * The agent's JSON-RPC methods (docs/rpc.md). Every parameter is checked by name and type;
 * a failure names its path ("params.backing.tap") and the reason.
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "placement.h"
#include "failover.h"
#include <guestabi/util.h>

#define MAX_PICK_HOSTS 256u

/* ---- parameters --------------------------------------------------------------------------- */

static int get_class(json_t *params, bool required, int *ret, struct gabi_error *reterr)
{
    const char *s;
    int r = gabi_rpc_param_string(params, "class", required, 32, &s, reterr), c;

    if (r < 0)
        return r;
    if (!s) {
        *ret = -1;
        return 0;
    }
    c = gabi_class_from_name(s);
    if (c < 0 || !gabi_class_is_virtio((enum gabi_device_class)c))
        return gabi_error_set(reterr, -EINVAL, "params.class",
                              "unknown class \"%s\" (virtio-net, virtio-blk)", s);
    *ret = c;
    return 0;
}

/* A JSON parameter as text for lib/abi's parsers. */
static int document(json_t *params, const char *key, char **ret, struct gabi_error *reterr)
{
    json_t *v;
    int r = gabi_rpc_param_object(params, key, &v, reterr);

    if (r < 0)
        return r;
    *ret = json_dumps(v, JSON_COMPACT);
    return *ret ? 0 : gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
}

/* lib/abi's JSON text as a result. */
static int text_result(char *text, json_t **ret, struct gabi_error *reterr)
{
    if (!text)
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    *ret = json_loads(text, 0, NULL);
    free(text);
    return *ret ? 0 : gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
}

/* ---- host --------------------------------------------------------------------------------- */

static int m_host_caps(struct gabi_rpc_call *call, json_t *params, json_t **ret,
                       struct gabi_error *reterr, void *userdata)
{
    static const char *const keys[] = {"refresh", NULL};
    struct agent *a = userdata;
    struct gabi_hostcaps *h = NULL;
    bool refresh;
    int r;

    (void)call;
    if ((r = gabi_rpc_param_only(params, keys, reterr)) < 0 ||
        (r = gabi_rpc_param_bool(params, "refresh", false, &refresh, reterr)) < 0)
        return r;
    if (refresh && (r = agent_probe(a, reterr)) < 0)
        return r;
    if (refresh)
        agent_placement_trigger(a, "refresh");
    if ((r = failover_hostcaps(a, &h, reterr)) < 0)
        return r;
    r = text_result(gabi_hostcaps_to_json(h), ret, reterr);
    gabi_hostcaps_free(h);
    return r;
}

static int m_host_platforms(struct gabi_rpc_call *call, json_t *params, json_t **ret,
                            struct gabi_error *reterr, void *userdata)
{
    static const char *const keys[] = {NULL};
    const struct gabi_platform *ps[GABI_MAX_PLATFORMS];
    struct agent *a = userdata;
    size_t n;
    int r;

    (void)call;
    if ((r = gabi_rpc_param_only(params, keys, reterr)) < 0)
        return r;
    n = MIN(gabi_hostcaps_platforms(a->caps, ps, GABI_MAX_PLATFORMS), (size_t)GABI_MAX_PLATFORMS);
    r = text_result(gabi_platforms_to_json(a->cat, ps, n), ret, reterr);
    if (r == 0) {
        json_object_set_new(*ret, "host", json_string(gabi_hostcaps_host(a->caps)));
        json_object_set_new(*ret, "kernel", json_string(gabi_hostcaps_kernel(a->caps)));
        json_object_set_new(*ret, "default", n ? json_string(ps[0]->name) : json_null());
    }
    return r;
}

static int m_modes_list(struct gabi_rpc_call *call, json_t *params, json_t **ret,
                        struct gabi_error *reterr, void *userdata)
{
    static const char *const keys[] = {"class", NULL};
    const struct gabi_mode *ms[2 * GABI_MAX_MODES];
    struct agent *a = userdata;
    json_t *defaults;
    size_t n = 0;
    int cls, r;

    (void)call;
    if ((r = gabi_rpc_param_only(params, keys, reterr)) < 0 ||
        (r = get_class(params, false, &cls, reterr)) < 0)
        return r;
    defaults = json_object();
    for (int b = 0; b < 2; b++) {
        enum gabi_device_class c = b == BACKEND_NET ? GABI_CLASS_NET : GABI_CLASS_BLK;

        if (cls >= 0 && (int)c != cls)
            continue;
        for (size_t i = 0; i < a->n_runs[b]; i++)
            ms[n++] = a->runs[b][i];
        if (a->n_runs[b])
            json_object_set_new(defaults, gabi_class_name(c), json_string(a->runs[b][0]->name));
    }
    r = text_result(gabi_modes_to_json(a->cat, ms, n), ret, reterr);
    if (r == 0)
        json_object_set_new(*ret, "default", defaults);
    else
        json_decref(defaults);
    return r;
}

/* ---- decisions ---------------------------------------------------------------------------- */

static int m_abi_check(struct gabi_rpc_call *call, json_t *params, json_t **ret,
                       struct gabi_error *reterr, void *userdata)
{
    static const char *const keys[] = {"pin", NULL};
    struct agent *a = userdata;
    struct gabi_pin *pin = NULL;
    struct gabi_verdict *v = NULL;
    char *text = NULL;
    struct gabi_hostcaps *h = NULL;
    int r;

    (void)call;
    if ((r = gabi_rpc_param_only(params, keys, reterr)) < 0 ||
        (r = document(params, "pin", &text, reterr)) < 0)
        return r;
    r = gabi_pin_parse(a->cat, "params.pin", text, strlen(text), &pin, reterr);
    free(text);
    if (r < 0)
        return -EINVAL;                   /* reterr names the key inside the pin */
    r = failover_hostcaps(a, &h, reterr); /* VFs reserved or bound count as in use */
    if (r < 0) {
        gabi_pin_free(pin);
        return r;
    }
    r = gabi_check(a->cat, pin, h, &v);
    gabi_hostcaps_free(h);
    if (r < 0)
        r = gabi_error_set(reterr, r, NULL, "check failed: %s", strerror(-r));
    else
        r = text_result(gabi_verdict_to_json(v), ret, reterr);
    gabi_verdict_free(v);
    gabi_pin_free(pin);
    return r;
}

static int m_abi_pick(struct gabi_rpc_call *call, json_t *params, json_t **ret,
                      struct gabi_error *reterr, void *userdata)
{
    static const char *const keys[] = {"hosts", "include_this_host", NULL};
    struct agent *a = userdata;
    const struct gabi_hostcaps *list[MAX_PICK_HOSTS + 1];
    struct gabi_hostcaps *own[MAX_PICK_HOSTS];
    struct gabi_verdict *v = NULL;
    json_t *hosts = json_object_get(params, "hosts"), *h;
    size_t n = 0, n_own = 0, i;
    bool self;
    int r;

    (void)call;
    if ((r = gabi_rpc_param_only(params, keys, reterr)) < 0 ||
        (r = gabi_rpc_param_bool(params, "include_this_host", true, &self, reterr)) < 0)
        return r;
    if (hosts && !json_is_array(hosts))
        return gabi_error_set(reterr, -EINVAL, "params.hosts", "must be an array of hostcaps");
    if (json_array_size(hosts) > MAX_PICK_HOSTS)
        return gabi_error_set(reterr, -E2BIG, "params.hosts", "at most %u hosts", MAX_PICK_HOSTS);
    if (self)
        list[n++] = a->caps;
    r = 0;
    json_array_foreach (hosts, i, h) {
        char where[64], *text;

        snprintf(where, sizeof(where), "params.hosts[%zu]", i);
        if (!json_is_object(h)) {
            r = gabi_error_set(reterr, -EINVAL, where, "must be a hostcaps object");
            break;
        }
        text = json_dumps(h, JSON_COMPACT);
        r = text ? gabi_hostcaps_parse(a->cat, where, text, strlen(text), &own[n_own], reterr)
                 : gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
        free(text);
        if (r < 0) {
            r = -EINVAL;
            break;
        }
        list[n++] = own[n_own++];
    }
    if (r == 0 && n == 0)
        r = gabi_error_set(reterr, -EINVAL, "params.hosts",
                           "no host to pick for (give hosts, or include this host)");
    if (r == 0) {
        r = gabi_pick(a->cat, list, n, &v);
        if (r < 0)
            r = gabi_error_set(reterr, r, NULL, "pick failed: %s", strerror(-r));
        else
            r = text_result(gabi_verdict_to_json(v), ret, reterr);
    }
    gabi_verdict_free(v);
    for (i = 0; i < n_own; i++)
        gabi_hostcaps_free(own[i]);
    return r;
}

/* ---- ports -------------------------------------------------------------------------------- */

static bool valid_id(const char *s)
{
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '_' || *c == '-'))
            return false;
    return s[0] != '.' && s[0] != '-';
}

static int check_socket_path(const char *path, struct gabi_error *reterr)
{
    struct sockaddr_un sa;
    struct stat st;
    char dir[sizeof(sa.sun_path)];
    char *slash;

    if (path[0] != '/')
        return gabi_error_set(reterr, -EINVAL, "params.socket", "must be an absolute path");
    if (strlen(path) >= sizeof(sa.sun_path))
        return gabi_error_set(reterr, -ENAMETOOLONG, "params.socket",
                              "at most %zu bytes (a unix socket path)", sizeof(sa.sun_path) - 1);
    if (strstr(path, "/../") || strstr(path, "/./"))
        return gabi_error_set(reterr, -EINVAL, "params.socket", "must not contain . or ..");
    gabi_strlcpy(dir, path, sizeof(dir));
    slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return gabi_error_set(reterr, -ENOENT, "params.socket", "directory %s does not exist", dir);
    if (lstat(path, &st) == 0) {
        int fd;

        if (!S_ISSOCK(st.st_mode))
            return gabi_error_set(reterr, -EEXIST, "params.socket", "%s exists and is not a socket",
                                  path);
        /* a stale socket is replaced; one that something listens on is not taken over */
        memset(&sa, 0, sizeof(sa));
        sa.sun_family = AF_UNIX;
        memcpy(sa.sun_path, path, strlen(path));
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            close(fd);
            return gabi_error_set(reterr, -EADDRINUSE, "params.socket",
                                  "something already listens on %s", path);
        }
        if (fd >= 0)
            close(fd);
    }
    return 0;
}

static int m_port_add(struct gabi_rpc_call *call, json_t *params, json_t **ret,
                      struct gabi_error *reterr, void *userdata)
{
    static const char *const keys[] = {"id", "class", "socket", "mode", "backing", "access", NULL};
    struct agent *a = userdata;
    const char *id, *socket, *mode_name;
    const struct gabi_mode *mode = NULL;
    struct port_backing backing = {0};
    struct port_access access = {0};
    struct gabi_rpc_pending *pending;
    struct port *p;
    char *backing_json;
    int cls, b, r;

    (void)call;
    if ((r = gabi_rpc_param_only(params, keys, reterr)) < 0 ||
        (r = gabi_rpc_param_string(params, "id", true, AGENT_MAX_ID, &id, reterr)) < 0 ||
        (r = get_class(params, true, &cls, reterr)) < 0 ||
        (r = gabi_rpc_param_string(params, "socket", true, 4096, &socket, reterr)) < 0 ||
        (r = gabi_rpc_param_string(params, "mode", false, GABI_MAX_NAME, &mode_name, reterr)) < 0)
        return r;
    if (!valid_id(id))
        return gabi_error_set(reterr, -EINVAL, "params.id",
                              "letters, digits, '.', '_' and '-', not starting with '.' or '-'");
    if (port_find(a, id))
        return gabi_error_set(reterr, -EEXIST, "params.id", "port %s exists", id);
    if ((p = port_find_socket(a, socket)))
        return gabi_error_set(reterr, -EEXIST, "params.socket", "port %s listens on %s", p->id,
                              socket);
    if ((r = check_socket_path(socket, reterr)) < 0)
        return r;
    if (a->n_ports >= AGENT_MAX_PORTS)
        return gabi_error_set(reterr, -E2BIG, "params.id", "at most %u ports", AGENT_MAX_PORTS);
    b = agent_backend_index((enum gabi_device_class)cls);
    if (mode_name) {
        if ((r = gabi_catalog_require_mode(a->cat, mode_name, &mode, reterr)) < 0) {
            gabi_error_prefix_where(reterr, "params.mode");
            return -ENOENT;
        }
        if (mode->cls != (enum gabi_device_class)cls)
            return gabi_error_set(reterr, -EINVAL, "params.mode", "%s is a %s mode, not %s",
                                  mode->name, gabi_class_name(mode->cls),
                                  gabi_class_name((enum gabi_device_class)cls));
        if (!agent_runs_mode(a, mode))
            return gabi_error_set(reterr, -EOPNOTSUPP, "params.mode",
                                  "this host's back-end cannot run %s (modes.list names those "
                                  "it can)",
                                  mode->name);
    } else {
        if (!a->n_runs[b])
            return gabi_error_set(reterr, -EOPNOTSUPP, "params.class", "this host runs no %s mode",
                                  gabi_class_name(cls));
        mode = a->runs[b][0];
    }
    if ((r = port_parse_access(json_object_get(params, "access"), &access, reterr)) < 0)
        return r;
    if ((r = port_parse_backing((enum gabi_device_class)cls, json_object_get(params, "backing"),
                                &backing, reterr)) < 0) {
        free(access.json);
        return r;
    }
    backing_json = json_dumps(json_object_get(params, "backing"), JSON_COMPACT | JSON_SORT_KEYS);
    p = backing_json ? port_new(a, id, (enum gabi_device_class)cls, socket, mode, &backing,
                                backing_json, (int64_t)time(NULL))
                     : NULL;
    free(backing_json);
    if (!p) {
        free(backing.tap);
        free(backing.disk);
        free(access.json);
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    }
    p->access = access;
    /* the row first: a port that runs is a port that comes back after a crash */
    r = store_insert(a->store, p, reterr);
    if (r < 0) {
        port_free(a, p);
        return r;
    }
    /* answered once the back-end listens, the loop serving others meanwhile; inside a batch
     * (answered as one line) it is waited for */
    pending = gabi_rpc_call_defer(call);
    r = pending ? port_start_async(a, p, pending, reterr) : port_start(a, p, reterr);
    if (r < 0) {
        struct gabi_error derr = {0};

        gabi_rpc_pending_free(pending);
        gabi_rpc_call_undefer(call);
        if (store_delete(a->store, id, &derr) < 0)
            agent_log(GABI_LOG_ERR, id, "%s (the row stays; the next start retries it)",
                      derr.message);
        port_free(a, p);
        return r;
    }
    if (pending)
        return 0;
    agent_event(
        a, "port.added",
        json_pack("{s:s, s:s, s:s}", "id", p->id, "socket", p->socket, "mode", p->mode->name));
    *ret = port_json(a, p);
    return 0;
}

static int get_port(struct agent *a, json_t *params, struct port **ret, struct gabi_error *reterr)
{
    static const char *const keys[] = {"id", NULL};
    const char *id;
    int r;

    if ((r = gabi_rpc_param_only(params, keys, reterr)) < 0 ||
        (r = gabi_rpc_param_string(params, "id", true, AGENT_MAX_ID, &id, reterr)) < 0)
        return r;
    *ret = port_find(a, id);
    if (!*ret)
        return gabi_error_set(reterr, -ENOENT, "params.id", "no port %s", id);
    return 0;
}

static int m_port_del(struct gabi_rpc_call *call, json_t *params, json_t **ret,
                      struct gabi_error *reterr, void *userdata)
{
    struct agent *a = userdata;
    struct port *p;
    int r;

    (void)call;
    if ((r = get_port(a, params, &p, reterr)) < 0)
        return r;
    /* the row first: a crash between the two leaves no row, and nothing is started again */
    if ((r = store_delete(a->store, p->id, reterr)) < 0)
        return r;
    if (p->pending_add) {
        struct gabi_error gone = {0};

        gabi_error_set(&gone, -ENOENT, "params.id", "port %s was deleted before it listened",
                       p->id);
        gabi_rpc_pending_reply(a->rpc, TAKE_PTR(p->pending_add), NULL, &gone);
    }
    port_stop(a, p);
    *ret = json_pack("{s:s, s:b}", "id", p->id, "deleted", 1);
    agent_event(a, "port.deleted", json_pack("{s:s, s:s}", "id", p->id, "socket", p->socket));
    port_free(a, p);
    return 0;
}

static int m_port_get(struct gabi_rpc_call *call, json_t *params, json_t **ret,
                      struct gabi_error *reterr, void *userdata)
{
    struct agent *a = userdata;
    struct port *p;
    int r;

    (void)call;
    if ((r = get_port(a, params, &p, reterr)) < 0)
        return r;
    *ret = port_json(a, p);
    return 0;
}

static int m_port_list(struct gabi_rpc_call *call, json_t *params, json_t **ret,
                       struct gabi_error *reterr, void *userdata)
{
    static const char *const keys[] = {NULL};
    struct agent *a = userdata;
    json_t *arr;
    int r;

    (void)call;
    if ((r = gabi_rpc_param_only(params, keys, reterr)) < 0)
        return r;
    arr = json_array();
    for (struct port *p = a->ports; p; p = p->next)
        json_array_insert_new(arr, 0, port_json(a, p)); /* in the order they were added */
    *ret = json_pack("{s:o}", "ports", arr);
    return 0;
}

static int m_events_subscribe(struct gabi_rpc_call *call, json_t *params, json_t **ret,
                              struct gabi_error *reterr, void *userdata)
{
    static const char *const keys[] = {NULL};
    int r;

    (void)userdata;
    if ((r = gabi_rpc_param_only(params, keys, reterr)) < 0)
        return r;
    gabi_rpc_call_subscribe(call);
    *ret = json_pack("{s:b}", "subscribed", 1);
    return 0;
}

void agent_event(struct agent *a, const char *method, json_t *params)
{
    if (!a->rpc) {
        json_decref(params);
        return;
    }
    json_object_set_new(params, "time_ms", json_integer((json_int_t)agent_now_ms()));
    gabi_rpc_server_notify(a->rpc, method, params);
}

const struct gabi_rpc_method agent_methods[] = {
    {"host.caps", m_host_caps, "{\"refresh\"?: bool}",
     "this host's hostcaps (guestabi.hostcaps/1)"},
    {"host.platforms", m_host_platforms, "{}",
     "the platforms this host runs, newest (the default) first"},
    {"modes.list", m_modes_list, "{\"class\"?: \"virtio-net\"|\"virtio-blk\"}",
     "the modes this host's back-ends run, newest first, and the default per class"},
    {"abi.check", m_abi_check, "{\"pin\": guestabi.pin/1}",
     "the verdict (guestabi.verdict/1) of the pin on this host, with every reason"},
    {"abi.pick", m_abi_pick, "{\"hosts\"?: [guestabi.hostcaps/1...], \"include_this_host\"?: bool}",
     "the verdict of pick: the newest platform, mode and state versions common to the hosts"},
    {"port.add", m_port_add,
     "{\"id\": ID, \"class\": CLASS, \"socket\": PATH, \"mode\"?: MODE, \"backing\": {\"tap\": "
     "NAME} | {\"loopback\": true} | {\"disk\": PATH} | {\"ram\": BYTES}, \"access\"?: "
     "{\"user\"?: NAME, \"group\"?: NAME, \"mode\"?: \"0660\"}}",
     "the port, as port.get"},
    {"port.del", m_port_del, "{\"id\": ID}", "{\"id\", \"deleted\": true}"},
    {"port.list", m_port_list, "{}", "{\"ports\": [port...]}, in the order they were added"},
    {"port.get", m_port_get, "{\"id\": ID}",
     "the port: mode, back-end process, connection, negotiated features, rings, counters"},
    {"events.subscribe", m_events_subscribe, "{}",
     "{\"subscribed\": true}; then notifications port.added, port.deleted, port.connected, "
     "port.disconnected, port.broken, port.restarted, placement.synced, placement.failed, "
     "failover.reserved, failover.released"},
    {"placement.sync", agent_m_placement_sync, "{}",
     "once this host is synced to Placement: provider, generation, traits, added, removed"},
    {"placement.status", agent_m_placement_status, "{}",
     "whether publishing to Placement is on, whether a sync runs, the last sync's outcome"},
    {"failover.reserve", failover_reserve,
     "{\"vm\": ID, \"device\": \"8086:154c\", \"count\"?: 1..64, \"ttl_s\"?: 1..86400}",
     "{\"reservation\", \"vm\", \"device\", \"addresses\": [PCI address...], \"expires\"}"},
    {"failover.bind", failover_bind, "{\"reservation\": ID} | {\"vm\": ID}",
     "{\"reservation\"|\"vm\", \"bound\": [PCI address...]}: on vfio-pci, or none of them"},
    {"failover.release", failover_release, "{\"reservation\": ID} | {\"vm\": ID}",
     "{\"reservation\"|\"vm\", \"released\": [...], \"problems\": [...]}"},
    {"failover.list", failover_list, "{}",
     "{\"vfs\": [{address, pf, device, driver, mac, state: free|busy|reserved|bound, ...}]}"},
};
const size_t agent_n_methods = ARRAY_SIZE(agent_methods);
