/* SPDX-License-Identifier: MIT */
/*
 * Failover primaries: this host's SR-IOV VFs (lib/probe's failover part, read again at each
 * call) as a pool, reservations of them for a VM in SQLite, and binding a reserved VF to
 * vfio-pci through sysfs (docs/rpc.md "failover.*", docs/failover.md).
 *
 * The table failover_vfs has one row per reserved VF, its address the primary key: one VF is
 * never held for two VMs, whichever agent or client asks. A reservation that was never bound
 * expires at its `expires` time (unix seconds, so that it holds across a restart); expired
 * rows are dropped at the next failover call. A bound VF is held until released.
 *
 * Binding one VF, each step checked before the next:
 *   1. "vfio-pci" written to <sysfs>/bus/pci/devices/ADDR/driver_override, read back;
 *   2. ADDR written to <sysfs>/bus/pci/drivers/CURRENT/unbind (when a driver holds it), and
 *      the device's driver link gone;
 *   3. ADDR written to <sysfs>/bus/pci/drivers/vfio-pci/bind, and the driver link naming
 *      vfio-pci.
 * A failure undoes what was done, in reverse: driver_override cleared (the kernel matches a
 * driver_override before any bind, so it goes first), then the original driver bound again.
 * Releasing a bound VF is the same undo after unbinding it from vfio-pci.
 */

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include <guestabi/probe.h>

#include "agent.h"
#include "failover.h"
#include <guestabi/util.h>

#define MAX_COUNT      64u /* VFs in one reservation */
#define MAX_TTL_S      86400u
#define VFIO           "vfio-pci"
#define RESERVATION_ID 24 /* "rsv-" and 16 hex digits, NUL */

/* ---- the table ---------------------------------------------------------------------------- */

static int db_fail(sqlite3 *db, int rc, const char *what, struct gabi_error *reterr)
{
    if ((rc & 0xff) == SQLITE_CONSTRAINT) /* a VF another reservation took meanwhile */
        return gabi_error_set(reterr, -E2BIG, "params", "failover: %s: %s", what,
                              sqlite3_errmsg(db));
    return gabi_error_set(reterr, -EIO, NULL, "failover state: %s: %s", what, sqlite3_errmsg(db));
}

int failover_open(struct agent *a, struct gabi_error *reterr)
{
    char *path = NULL;
    int rc;

    if (store_readonly(a->store)) {
        agent_log(GABI_LOG_WARNING, NULL,
                  "failover: the state database is read-only: no reservations until the agent "
                  "is restarted on a writable directory");
        return 0;
    }
    if (asprintf(&path, "%s/guestabid.db", a->state_dir) < 0)
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    /* a connection of its own to the agent's database: store.c stays about ports */
    rc = sqlite3_open_v2(path, &a->failover_db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    free(path);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(a->failover_db, 2000);
        rc = sqlite3_exec(a->failover_db,
                          "PRAGMA synchronous=FULL;"
                          "CREATE TABLE IF NOT EXISTS failover_vfs ("
                          " address TEXT PRIMARY KEY," /* never one VF for two VMs */
                          " reservation TEXT NOT NULL,"
                          " vm TEXT NOT NULL,"
                          " device TEXT NOT NULL,"
                          " pf TEXT NOT NULL,"
                          " driver TEXT NOT NULL," /* the driver to give it back to, or "" */
                          " state TEXT NOT NULL CHECK (state IN ('reserved', 'bound')),"
                          " created INTEGER NOT NULL,"
                          " expires INTEGER NOT NULL)",
                          NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        int r = db_fail(a->failover_db, rc, "open", reterr);

        sqlite3_close(a->failover_db);
        a->failover_db = NULL;
        return r;
    }
    return 0;
}

void failover_close(struct agent *a)
{
    sqlite3_close(a->failover_db);
    a->failover_db = NULL;
}

static int exec_sql(struct agent *a, const char *sql, struct gabi_error *reterr)
{
    int rc = sqlite3_exec(a->failover_db, sql, NULL, NULL, NULL);

    return rc == SQLITE_OK ? 0 : db_fail(a->failover_db, rc, sql, reterr);
}

/* Drop reservations past their time that were never bound. Fails when the database is
 * read-only: every failover method begins with it. */
static int expire(struct agent *a, struct gabi_error *reterr)
{
    sqlite3_stmt *st;
    int rc;

    if (!a->failover_db)
        return gabi_error_set(reterr, -EROFS, NULL,
                              "the state database is read-only: failover reservations are "
                              "unavailable until the agent is restarted on a writable directory");
    rc = sqlite3_prepare_v2(a->failover_db,
                            "DELETE FROM failover_vfs WHERE state = 'reserved' AND expires <= ? "
                            "RETURNING reservation, vm, address",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return db_fail(a->failover_db, rc, "expire", reterr);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)time(NULL));
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        agent_log(GABI_LOG_INFO, (const char *)sqlite3_column_text(st, 1),
                  "failover: reservation %s of %s expired", sqlite3_column_text(st, 0),
                  sqlite3_column_text(st, 2));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : db_fail(a->failover_db, rc, "expire", reterr);
}

/* ---- the pool ----------------------------------------------------------------------------- */

static int probe_pool(struct agent *a, struct gabi_probe **ret, struct gabi_error *reterr)
{
    struct gabi_probe_options o = {
        .host = a->host_name,
        .sysfs_root = a->sysfs_root,
        .dev_root = a->dev_root,
        .parts = GABI_PROBE_FAILOVER,
    };

    return gabi_probe_run(a->cat, &o, ret, reterr);
}

/* The row holding a VF: its reservation, vm and state (copied), or 0 when free. */
struct holder {
    char reservation[RESERVATION_ID];
    char vm[AGENT_MAX_ID + 1];
    char state[16];
    int64_t expires;
};

static int find_holder(struct agent *a, const char *address, struct holder *ret,
                       struct gabi_error *reterr)
{
    sqlite3_stmt *st;
    int rc, r = 0;

    rc = sqlite3_prepare_v2(a->failover_db,
                            "SELECT reservation, vm, state, expires FROM failover_vfs "
                            "WHERE address = ?",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return db_fail(a->failover_db, rc, "select", reterr);
    sqlite3_bind_text(st, 1, address, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        gabi_strlcpy(ret->reservation, (const char *)sqlite3_column_text(st, 0),
                     sizeof(ret->reservation));
        gabi_strlcpy(ret->vm, (const char *)sqlite3_column_text(st, 1), sizeof(ret->vm));
        gabi_strlcpy(ret->state, (const char *)sqlite3_column_text(st, 2), sizeof(ret->state));
        ret->expires = sqlite3_column_int64(st, 3);
        r = 1;
    } else if (rc != SQLITE_DONE) {
        r = db_fail(a->failover_db, rc, "select", reterr);
    }
    sqlite3_finalize(st);
    return r;
}

/* A VF on vfio-pci that no row holds may be any VM's: it is busy, never free. */
static bool vf_free(const struct gabi_hostcaps_failover *f, int held)
{
    return held == 0 && !(f->driver && strcmp(f->driver, VFIO) == 0);
}

/* ---- sysfs -------------------------------------------------------------------------------- */

static int sysfs_path(struct agent *a, char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int sysfs_path(struct agent *a, char *buf, size_t size, const char *fmt, ...)
{
    char rel[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(rel, sizeof(rel), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(rel))
        return -ENAMETOOLONG;
    n = snprintf(buf, size, "%s/%s", a->sysfs_root ? a->sysfs_root : "/sys", rel);
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* One write to a sysfs attribute, as the kernel takes it: open, one write(2), close; the
 * kernel's answer (a refused bind, an unknown driver) is write's errno. */
static int sysfs_write(const char *path, const char *value, struct gabi_error *reterr)
{
    size_t n = strlen(value);
    int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC), r = 0;
    ssize_t w;

    if (fd < 0)
        return gabi_error_set(reterr, -errno, path, "cannot open: %s", strerror(errno));
    w = write(fd, value, n);
    if (w < 0)
        r = gabi_error_set(reterr, -errno, path, "writing \"%.*s\": %s", (int)strcspn(value, "\n"),
                           value, strerror(errno));
    else if ((size_t)w != n)
        r = gabi_error_set(reterr, -EIO, path, "short write");
    if (close(fd) < 0 && r == 0)
        r = gabi_error_set(reterr, -errno, path, "close: %s", strerror(errno));
    return r;
}

/* The basename of ADDR's driver link into buf ("" when none); -errno. */
static int vf_driver(struct agent *a, const char *addr, char *buf, size_t size)
{
    char path[1024], target[1024];
    ssize_t n;
    int r = sysfs_path(a, path, sizeof(path), "bus/pci/devices/%s/driver", addr);

    if (r < 0)
        return r;
    n = readlink(path, target, sizeof(target) - 1);
    if (n < 0) {
        buf[0] = '\0';
        return errno == ENOENT ? 0 : -errno;
    }
    target[n] = '\0';
    gabi_strlcpy(buf, strrchr(target, '/') ? strrchr(target, '/') + 1 : target, size);
    return 0;
}

/* Wait (bounded by --failover-settle-ms) until ADDR's driver is `want` ("" for none). A bind
 * or unbind is synchronous in the kernel; the bound is for drivers that probe late. */
static int vf_wait_driver(struct agent *a, const char *addr, const char *want,
                          struct gabi_error *reterr)
{
    uint64_t deadline = agent_now_ms() + a->failover_settle_ms;
    char got[GABI_MAX_NAME];
    int r;

    for (;;) {
        r = vf_driver(a, addr, got, sizeof(got));
        if (r < 0)
            return gabi_error_set(reterr, r, addr, "driver link: %s", strerror(-r));
        if (strcmp(got, want) == 0)
            return 0;
        if (agent_now_ms() >= deadline)
            break;
        usleep(5000);
    }
    return gabi_error_set(reterr, -EIO, addr, "driver is %s%s%s after %u ms, not %s",
                          got[0] ? "\"" : "", got[0] ? got : "none", got[0] ? "\"" : "",
                          a->failover_settle_ms, want[0] ? want : "none");
}

/* Write value to <sysfs>/REL/NAME; REL is "bus/pci/devices/ADDR" or "bus/pci/drivers/DRV". */
static int write_attr(struct agent *a, const char *rel, const char *x, const char *name,
                      const char *value, struct gabi_error *reterr)
{
    char path[1024];
    int r = sysfs_path(a, path, sizeof(path), "bus/pci/%s/%s/%s", rel, x, name);

    if (r < 0)
        return gabi_error_set(reterr, r, x, "sysfs path too long");
    agent_log(GABI_LOG_DEBUG, x, "failover: %s <- %.*s", path, (int)strcspn(value, "\n"), value);
    return sysfs_write(path, value, reterr);
}

static int check_override(struct agent *a, const char *addr, const char *want,
                          struct gabi_error *reterr)
{
    char path[1024], buf[GABI_MAX_NAME] = "";
    ssize_t n;
    int fd, r = sysfs_path(a, path, sizeof(path), "bus/pci/devices/%s/driver_override", addr);

    if (r < 0)
        return gabi_error_set(reterr, r, addr, "sysfs path too long");
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return gabi_error_set(reterr, -errno, path, "cannot read back: %s", strerror(errno));
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n < 0)
        return gabi_error_set(reterr, -EIO, path, "cannot read back");
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    if (strcmp(buf, "(null)") == 0)
        buf[0] = '\0';
    if (strcmp(buf, want) != 0)
        return gabi_error_set(reterr, -EIO, path, "reads \"%s\" after the write, not \"%s\"", buf,
                              want);
    return 0;
}

/* Give ADDR back to `orig` ("" none): override cleared, then orig bound. Every step is tried;
 * the first failure is returned. */
static int vf_restore(struct agent *a, const char *addr, const char *orig,
                      struct gabi_error *reterr)
{
    struct gabi_error e = {0};
    int r = 0, q;

    q = write_attr(a, "devices", addr, "driver_override", "\n", &e);
    if (q < 0 && r == 0) {
        r = q;
        *reterr = e;
    }
    if (orig[0]) {
        q = write_attr(a, "drivers", orig, "bind", addr, &e);
        if (q == 0)
            q = vf_wait_driver(a, addr, orig, &e);
        if (q < 0 && r == 0) {
            r = q;
            *reterr = e;
        }
    }
    return r;
}

/* Bind ADDR to vfio-pci; undone on failure. *orig receives its driver before. */
static int vf_bind(struct agent *a, const char *addr, char *orig, size_t size,
                   struct gabi_error *reterr)
{
    struct gabi_error undo = {0};
    int r;

    r = vf_driver(a, addr, orig, size);
    if (r < 0)
        return gabi_error_set(reterr, r, addr, "driver link: %s", strerror(-r));
    if (strcmp(orig, VFIO) == 0)
        return gabi_error_set(reterr, -ENODEV, addr, "already on vfio-pci");
    /* 1 */
    r = write_attr(a, "devices", addr, "driver_override", VFIO "\n", reterr);
    if (r == 0)
        r = check_override(a, addr, VFIO, reterr);
    if (r < 0)
        goto undo_override;
    /* 2 */
    if (orig[0]) {
        r = write_attr(a, "drivers", orig, "unbind", addr, reterr);
        if (r == 0)
            r = vf_wait_driver(a, addr, "", reterr);
        if (r < 0)
            goto undo_unbind;
    }
    /* 3 */
    r = write_attr(a, "drivers", VFIO, "bind", addr, reterr);
    if (r == 0)
        r = vf_wait_driver(a, addr, VFIO, reterr);
    if (r == 0)
        return 0;
    /* a bind that took after all is taken back */
    {
        char now[GABI_MAX_NAME];

        if (vf_driver(a, addr, now, sizeof(now)) == 0 && strcmp(now, VFIO) == 0)
            (void)write_attr(a, "drivers", VFIO, "unbind", addr, &undo);
    }
undo_unbind:
undo_override:
    if (vf_restore(a, addr, orig, &undo) < 0)
        agent_log(GABI_LOG_ERR, addr, "failover: undo after a failed bind: %s%s%s", undo.where,
                  undo.where[0] ? ": " : "", undo.message);
    return r == -ENOMEM ? r : -ENODEV; /* the reason, with the kernel's errno, is in reterr */
}

/* Unbind a VF we bound from vfio-pci and give it back to its driver. */
static int vf_unbind(struct agent *a, const char *addr, const char *orig, struct gabi_error *reterr)
{
    char now[GABI_MAX_NAME];
    int r = vf_driver(a, addr, now, sizeof(now));

    if (r == 0 && strcmp(now, VFIO) == 0) {
        r = write_attr(a, "drivers", VFIO, "unbind", addr, reterr);
        if (r == 0)
            r = vf_wait_driver(a, addr, "", reterr);
    }
    if (r < 0)
        return r;
    return vf_restore(a, addr, orig, reterr);
}

/* ---- parameters --------------------------------------------------------------------------- */

static int get_uint(json_t *params, const char *key, bool required, uint64_t min, uint64_t max,
                    uint64_t dflt, uint64_t *ret, struct gabi_error *reterr)
{
    json_t *v = json_object_get(params, key);
    char where[64];

    snprintf(where, sizeof(where), "params.%s", key);
    if (!v) {
        if (required)
            return gabi_error_set(reterr, -EINVAL, where, "missing");
        *ret = dflt;
        return 0;
    }
    if (!json_is_integer(v))
        return gabi_error_set(reterr, -EINVAL, where, "must be an integer, not %s",
                              gabi_rpc_json_type(v));
    if (json_integer_value(v) < (json_int_t)min || json_integer_value(v) > (json_int_t)max)
        return gabi_error_set(reterr, -EINVAL, where, "must be from %llu to %llu",
                              (unsigned long long)min, (unsigned long long)max);
    *ret = (uint64_t)json_integer_value(v);
    return 0;
}

static bool valid_name(const char *s)
{
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '_' || *c == '-'))
            return false;
    return s[0] != '.' && s[0] != '-';
}

static int get_vm(json_t *params, bool required, const char **ret, struct gabi_error *reterr)
{
    int r = gabi_rpc_param_string(params, "vm", required, AGENT_MAX_ID, ret, reterr);

    if (r == 0 && *ret && !valid_name(*ret))
        return gabi_error_set(reterr, -EINVAL, "params.vm",
                              "letters, digits, '.', '_' and '-', not starting with '.' or '-'");
    return r;
}

static bool valid_device(const char *s)
{
    if (strlen(s) != 9 || s[4] != ':')
        return false;
    for (int i = 0; i < 9; i++)
        if (i != 4 && !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* ---- methods ------------------------------------------------------------------------------ */

static int new_reservation_id(char buf[RESERVATION_ID])
{
    uint8_t rnd[8];

    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        return -errno;
    snprintf(buf, RESERVATION_ID, "rsv-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
             rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    return 0;
}

int failover_reserve(struct gabi_rpc_call *call, json_t *params, json_t **ret,
                     struct gabi_error *reterr, void *userdata)
{
    static const char *const keys[] = {"vm", "device", "count", "ttl_s", NULL};
    struct agent *a = userdata;
    _cleanup_(gabi_probe_freep) struct gabi_probe *p = NULL;
    const struct gabi_hostcaps *h;
    const char *vm, *device;
    char id[RESERVATION_ID];
    uint64_t count, ttl;
    size_t n_same = 0, n_free = 0;
    sqlite3_stmt *ins = NULL;
    json_t *addrs;
    int64_t now = (int64_t)time(NULL);
    int r, rc;

    (void)call;
    if ((r = gabi_rpc_param_only(params, keys, reterr)) < 0 ||
        (r = get_vm(params, true, &vm, reterr)) < 0 ||
        (r = gabi_rpc_param_string(params, "device", true, 16, &device, reterr)) < 0 ||
        (r = get_uint(params, "count", false, 1, MAX_COUNT, 1, &count, reterr)) < 0 ||
        (r = get_uint(params, "ttl_s", false, 1, MAX_TTL_S, a->failover_ttl_s, &ttl, reterr)) < 0)
        return r;
    if (!valid_device(device))
        return gabi_error_set(reterr, -EINVAL, "params.device",
                              "\"%s\" is not vendor:device in lower-case hex, such as 8086:154c",
                              device);
    if ((r = expire(a, reterr)) < 0 || (r = probe_pool(a, &p, reterr)) < 0)
        return r;
    if ((r = new_reservation_id(id)) < 0)
        return gabi_error_set(reterr, r, NULL, "getrandom: %s", strerror(-r));
    h = gabi_probe_hostcaps(p);
    /* one transaction: the VFs counted free are the VFs inserted (BEGIN IMMEDIATE takes the
     * write lock first, so another agent on this database waits), and the primary key
     * refuses a VF another reservation got meanwhile */
    if ((r = exec_sql(a, "BEGIN IMMEDIATE", reterr)) < 0)
        return r;
    rc = sqlite3_prepare_v2(a->failover_db,
                            "INSERT INTO failover_vfs (address, reservation, vm, device, pf, "
                            "driver, state, created, expires) "
                            "VALUES (?, ?, ?, ?, ?, ?, 'reserved', ?, ?)",
                            -1, &ins, NULL);
    if (rc != SQLITE_OK) {
        r = db_fail(a->failover_db, rc, "insert", reterr);
        goto rollback;
    }
    addrs = json_array();
    for (size_t i = 0; i < gabi_hostcaps_n_failover(h); i++) {
        const struct gabi_hostcaps_failover *f = gabi_hostcaps_failover(h, i);
        struct holder hold;
        int held;

        if (strcmp(f->device, device) != 0)
            continue;
        n_same++;
        held = find_holder(a, f->address, &hold, reterr);
        if (held < 0) {
            r = held;
            break;
        }
        if (!vf_free(f, held))
            continue;
        n_free++;
        if (json_array_size(addrs) == count)
            continue;
        sqlite3_reset(ins);
        sqlite3_bind_text(ins, 1, f->address, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 2, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 3, vm, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 4, device, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 5, f->pf, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 6, f->driver ? f->driver : "", -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 7, now);
        sqlite3_bind_int64(ins, 8, now + (int64_t)ttl);
        rc = sqlite3_step(ins);
        if (rc != SQLITE_DONE) {
            r = db_fail(a->failover_db, rc, "insert", reterr);
            break;
        }
        json_array_append_new(addrs, json_string(f->address));
    }
    sqlite3_finalize(ins);
    if (r == 0 && json_array_size(addrs) < count)
        r = gabi_error_set(reterr, -E2BIG, "params.count",
                           "no free VF of %s: %zu free of %zu (%llu wanted)", device, n_free,
                           n_same, (unsigned long long)count);
    if (r < 0) {
        json_decref(addrs);
        goto rollback;
    }
    if ((r = exec_sql(a, "COMMIT", reterr)) < 0) {
        json_decref(addrs);
        goto rollback;
    }
    agent_log(GABI_LOG_INFO, vm, "failover: reserved %zu VF(s) of %s as %s for %llu s",
              json_array_size(addrs), device, id, (unsigned long long)ttl);
    *ret = json_pack("{s:s, s:s, s:s, s:o, s:I}", "reservation", id, "vm", vm, "device", device,
                     "addresses", addrs, "expires", (json_int_t)(now + (int64_t)ttl));
    agent_event(a, "failover.reserved", json_pack("{s:s, s:s}", "reservation", id, "vm", vm));
    return 0;
rollback:
    (void)exec_sql(a, "ROLLBACK", NULL);
    return r;
}

/* Rows of {"reservation"} or {"vm"}: which one, as a WHERE clause and its value. */
static int get_selector(json_t *params, const char **ret_col, const char **ret_val,
                        struct gabi_error *reterr)
{
    static const char *const keys[] = {"vm", "reservation", NULL};
    const char *vm, *rsv;
    int r;

    if ((r = gabi_rpc_param_only(params, keys, reterr)) < 0 ||
        (r = get_vm(params, false, &vm, reterr)) < 0 ||
        (r = gabi_rpc_param_string(params, "reservation", false, RESERVATION_ID - 1, &rsv,
                                   reterr)) < 0)
        return r;
    if (!vm == !rsv)
        return gabi_error_set(reterr, -EINVAL, "params",
                              "give exactly one of \"vm\" and \"reservation\"");
    *ret_col = vm ? "vm" : "reservation";
    *ret_val = vm ? vm : rsv;
    return 0;
}

struct row {
    char address[GABI_MAX_NAME];
    char driver[GABI_MAX_NAME];
    char state[16];
};

/* The rows selected, at most MAX_COUNT * 4. */
#define MAX_ROWS (MAX_COUNT * 4)

static int select_rows(struct agent *a, const char *col, const char *val, struct row *rows,
                       size_t *ret_n, struct gabi_error *reterr)
{
    char sql[160];
    sqlite3_stmt *st;
    size_t n = 0;
    int rc;

    snprintf(sql, sizeof(sql),
             "SELECT address, driver, state FROM failover_vfs WHERE %s = ? ORDER BY address", col);
    rc = sqlite3_prepare_v2(a->failover_db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return db_fail(a->failover_db, rc, "select", reterr);
    sqlite3_bind_text(st, 1, val, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < MAX_ROWS) {
        gabi_strlcpy(rows[n].address, (const char *)sqlite3_column_text(st, 0),
                     sizeof(rows[n].address));
        gabi_strlcpy(rows[n].driver, (const char *)sqlite3_column_text(st, 1),
                     sizeof(rows[n].driver));
        gabi_strlcpy(rows[n].state, (const char *)sqlite3_column_text(st, 2),
                     sizeof(rows[n].state));
        n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return db_fail(a->failover_db, rc, "select", reterr);
    *ret_n = n;
    return 0;
}

static int set_state(struct agent *a, const char *address, const char *state,
                     struct gabi_error *reterr)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(a->failover_db,
                                state ? "UPDATE failover_vfs SET state = ?2 WHERE address = ?1"
                                      : "DELETE FROM failover_vfs WHERE address = ?1",
                                -1, &st, NULL);

    if (rc != SQLITE_OK)
        return db_fail(a->failover_db, rc, "update", reterr);
    sqlite3_bind_text(st, 1, address, -1, SQLITE_STATIC);
    if (state)
        sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : db_fail(a->failover_db, rc, "update", reterr);
}

int failover_bind(struct gabi_rpc_call *call, json_t *params, json_t **ret,
                  struct gabi_error *reterr, void *userdata)
{
    struct agent *a = userdata;
    static struct row rows[MAX_ROWS];
    bool mine[MAX_ROWS] = {false};
    const char *col, *val;
    size_t n;
    json_t *bound;
    int r;

    (void)call;
    if ((r = get_selector(params, &col, &val, reterr)) < 0 || (r = expire(a, reterr)) < 0 ||
        (r = select_rows(a, col, val, rows, &n, reterr)) < 0)
        return r;
    if (n == 0)
        return gabi_error_set(reterr, -ENOENT,
                              strcmp(col, "vm") ? "params.reservation" : "params.vm",
                              "no reservation of %s %s (expired or released?)", col, val);
    bound = json_array();
    for (size_t i = 0; i < n && r == 0; i++) {
        char orig[GABI_MAX_NAME];

        if (strcmp(rows[i].state, "bound") == 0) {
            json_array_append_new(bound, json_string(rows[i].address));
            continue;
        }
        r = vf_bind(a, rows[i].address, orig, sizeof(orig), reterr);
        if (r == 0 && strcmp(orig, rows[i].driver) != 0)
            agent_log(GABI_LOG_WARNING, rows[i].address,
                      "failover: was on \"%s\" at bind, \"%s\" at reserve; given back to \"%s\"",
                      orig, rows[i].driver, rows[i].driver);
        if (r == 0 && (r = set_state(a, rows[i].address, "bound", reterr)) < 0) {
            struct gabi_error e = {0};

            (void)vf_unbind(a, rows[i].address, rows[i].driver, &e);
        }
        if (r == 0) {
            json_array_append_new(bound, json_string(rows[i].address));
            mine[i] = true;
        }
    }
    if (r < 0) {
        /* the VFs this call bound go back too, last first: all of the reservation, or none */
        for (size_t i = n; i-- > 0;) {
            struct gabi_error e = {0};

            if (mine[i] && vf_unbind(a, rows[i].address, rows[i].driver, &e) == 0)
                (void)set_state(a, rows[i].address, "reserved", &e);
        }
        json_decref(bound);
        return r;
    }
    agent_log(GABI_LOG_INFO, val, "failover: %zu VF(s) on vfio-pci", n);
    *ret = json_pack("{s:s, s:o}", col, val, "bound", bound);
    return 0;
}

int failover_release(struct gabi_rpc_call *call, json_t *params, json_t **ret,
                     struct gabi_error *reterr, void *userdata)
{
    struct agent *a = userdata;
    static struct row rows[MAX_ROWS];
    const char *col, *val;
    json_t *released, *problems;
    size_t n;
    int r;

    (void)call;
    if ((r = get_selector(params, &col, &val, reterr)) < 0 || (r = expire(a, reterr)) < 0 ||
        (r = select_rows(a, col, val, rows, &n, reterr)) < 0)
        return r;
    released = json_array();
    problems = json_array();
    for (size_t i = 0; i < n; i++) {
        struct gabi_error e = {0};

        /* a VF not given back is still freed: it stays on vfio-pci, which the pool counts
         * busy, and the problem is reported */
        if (strcmp(rows[i].state, "bound") == 0 &&
            vf_unbind(a, rows[i].address, rows[i].driver, &e) < 0)
            json_array_append_new(problems, json_pack("{s:s, s:s, s:s}", "address", rows[i].address,
                                                      "where", e.where, "message", e.message));
        if ((r = set_state(a, rows[i].address, NULL, reterr)) < 0)
            break;
        json_array_append_new(released, json_string(rows[i].address));
    }
    if (r < 0) {
        json_decref(released);
        json_decref(problems);
        return r;
    }
    agent_log(GABI_LOG_INFO, val, "failover: released %zu VF(s)", json_array_size(released));
    *ret = json_pack("{s:s, s:o, s:o}", col, val, "released", released, "problems", problems);
    if (n)
        agent_event(a, "failover.released", json_pack("{s:s}", col, val));
    return 0;
}

int failover_list(struct gabi_rpc_call *call, json_t *params, json_t **ret,
                  struct gabi_error *reterr, void *userdata)
{
    static const char *const keys[] = {NULL};
    struct agent *a = userdata;
    _cleanup_(gabi_probe_freep) struct gabi_probe *p = NULL;
    const struct gabi_hostcaps *h;
    json_t *vfs;
    int r;

    (void)call;
    if ((r = gabi_rpc_param_only(params, keys, reterr)) < 0 || (r = expire(a, reterr)) < 0 ||
        (r = probe_pool(a, &p, reterr)) < 0)
        return r;
    h = gabi_probe_hostcaps(p);
    vfs = json_array();
    for (size_t i = 0; i < gabi_hostcaps_n_failover(h); i++) {
        const struct gabi_hostcaps_failover *f = gabi_hostcaps_failover(h, i);
        struct holder hold;
        int held = find_holder(a, f->address, &hold, reterr);
        json_t *o;

        if (held < 0) {
            json_decref(vfs);
            return held;
        }
        o = json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s}", "address", f->address, "pf", f->pf,
                      "device", f->device, "driver", f->driver, "mac", f->mac, "state",
                      held               ? hold.state
                      : vf_free(f, held) ? "free"
                                         : "busy");
        if (held) {
            json_object_set_new(o, "reservation", json_string(hold.reservation));
            json_object_set_new(o, "vm", json_string(hold.vm));
            if (strcmp(hold.state, "reserved") == 0)
                json_object_set_new(o, "expires", json_integer(hold.expires));
        }
        json_array_append_new(vfs, o);
    }
    *ret = json_pack("{s:o}", "vfs", vfs);
    return 0;
}

/* ---- hostcaps ----------------------------------------------------------------------------- */

int failover_hostcaps(struct agent *a, struct gabi_hostcaps **ret, struct gabi_error *reterr)
{
    char *text = gabi_hostcaps_to_json(a->caps), *out = NULL;
    json_t *doc = text ? json_loads(text, 0, NULL) : NULL, *f;
    size_t i;
    int r = 0;

    free(text);
    if (!doc)
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    /* a read-only database has no reservations to count: only vfio-pci says in use */
    if (a->failover_db && (r = expire(a, reterr)) < 0) {
        json_decref(doc);
        return r;
    }
    json_array_foreach (json_object_get(doc, "failover"), i, f) {
        const char *addr = json_string_value(json_object_get(f, "address"));
        char drv[GABI_MAX_NAME];
        struct holder hold;
        int held = addr && a->failover_db ? find_holder(a, addr, &hold, reterr) : 0;

        if (held < 0) {
            json_decref(doc);
            return held;
        }
        /* held by a reservation, or on vfio-pci now (some VM's): not free for another pin */
        if (held || (addr && vf_driver(a, addr, drv, sizeof(drv)) == 0 && strcmp(drv, VFIO) == 0))
            json_object_set_new(f, "in_use", json_true());
    }
    out = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!out)
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    r = gabi_hostcaps_parse(a->cat, "hostcaps", out, strlen(out), ret, reterr);
    free(out);
    return r;
}
