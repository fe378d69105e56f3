/* SPDX-License-Identifier: MIT */
/*
 * The agent's state in SQLite (STATE_DIR/guestabid.db): one row per port. WAL with
 * synchronous=FULL, so that a row a reply confirmed survives a kill -9 or a power cut, and
 * every change is one transaction, so that a crash leaves either the old or the new state.
 */

#include <errno.h>
#include <stdio.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "agent.h"
#include <guestabi/util.h>

#define SCHEMA_VERSION 1

struct store {
    sqlite3 *db;
    char *path;
    bool readonly; /* the directory cannot be written: the ports are served, not changed */
};

/* SQLite's answer as -errno with the reason in reterr. */
static int db_error(struct store *st, int rc, const char *what, struct gabi_error *reterr)
{
    int code;

    switch (rc & 0xff) {
    case SQLITE_FULL:
        code = -ENOSPC;
        break;
    case SQLITE_READONLY:
    case SQLITE_PERM:
        code = -EROFS;
        break;
    case SQLITE_CONSTRAINT:
        code = -EEXIST;
        break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        code = -EBUSY;
        break;
    default:
        code = -EIO;
    }
    return gabi_error_set(reterr, code, st->path, "state database: %s: %s", what,
                          st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
}

static int exec(struct store *st, const char *what, const char *sql, struct gabi_error *reterr)
{
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);

    return rc == SQLITE_OK ? 0 : db_error(st, rc, what, reterr);
}

/* Run a statement that returns no rows, and finalize it. One statement outside BEGIN is its
 * own transaction: committed (and, with synchronous=FULL, on disk) when step returns DONE. */
static int step_done(struct store *st, sqlite3_stmt *stmt, const char *what,
                     struct gabi_error *reterr)
{
    int rc = sqlite3_step(stmt), r = rc == SQLITE_DONE ? 0 : db_error(st, rc, what, reterr);

    sqlite3_finalize(stmt);
    return r;
}

/* Schema 1 databases gain the ports' socket access (NULL: none) on their first open here. */
static int add_access_column(struct store *st, struct gabi_error *reterr)
{
    sqlite3_stmt *stmt = NULL;
    bool have = false;
    int rc = sqlite3_prepare_v2(
        st->db, "SELECT count(*) FROM pragma_table_info('ports') WHERE name = 'access'", -1, &stmt,
        NULL);

    if (rc == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW)
        have = sqlite3_column_int(stmt, 0) > 0;
    sqlite3_finalize(stmt);
    if (rc != SQLITE_OK)
        return db_error(st, rc, "set-up", reterr);
    return have ? 0 : exec(st, "set-up", "ALTER TABLE ports ADD COLUMN access TEXT", reterr);
}

/* The database opened for writing, in WAL mode, with its tables. */
static int open_rw(struct store *st, struct gabi_error *reterr)
{
    int r, rc = sqlite3_open_v2(st->path, &st->db,
                                SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                NULL);

    if (rc != SQLITE_OK)
        return db_error(st, rc, "open", reterr);
    sqlite3_busy_timeout(st->db, 2000);
    r = exec(st, "set-up",
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
             "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
             "INSERT OR IGNORE INTO meta VALUES ('schema', '1');"
             "CREATE TABLE IF NOT EXISTS ports ("
             " id TEXT PRIMARY KEY,"
             " class TEXT NOT NULL,"
             " socket TEXT NOT NULL UNIQUE,"
             " mode TEXT NOT NULL,"
             " backing TEXT NOT NULL,"
             " created INTEGER NOT NULL)",
             reterr);
    return r < 0 ? r : add_access_column(st, reterr);
}

/* A state directory that cannot be written: read the database as it is, when that is exact
 * (no write-ahead log left to replay, which a crash leaves and only a writer can apply). */
static int open_ro(struct store *st, struct gabi_error *reterr)
{
    char wal[PATH_MAX + 8], uri[3 * PATH_MAX + 32], *u = uri;
    struct stat sb;
    int rc;

    snprintf(wal, sizeof(wal), "%s-wal", st->path);
    if (stat(wal, &sb) == 0 && sb.st_size > 0)
        return gabi_error_set(reterr, -EROFS, st->path,
                              "state database: cannot be written, and its write-ahead log (%s) "
                              "must be replayed first: make the directory writable",
                              wal);
    u += sprintf(u, "file:");
    for (const char *c = st->path; *c && u < uri + sizeof(uri) - 16; c++)
        u += (*c == '%' || *c == '?' || *c == '#') ? sprintf(u, "%%%02X", (unsigned char)*c)
                                                   : sprintf(u, "%c", *c);
    sprintf(u, "?immutable=1");
    sqlite3_close(st->db);
    st->db = NULL;
    rc = sqlite3_open_v2(uri, &st->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(st->db, "SELECT count(*) FROM ports", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return db_error(st, rc, "open read-only", reterr);
    st->readonly = true;
    return 0;
}

int store_open(const char *dir, struct store **ret, struct gabi_error *reterr)
{
    struct store *st = calloc(1, sizeof(*st));
    struct gabi_error rw_err = {0}, ro_err = {0};
    int r;

    if (!st)
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    if (asprintf(&st->path, "%s/guestabid.db", dir) < 0) {
        free(st);
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    }
    r = open_rw(st, &rw_err);
    if (r < 0 && access(st->path, R_OK) == 0 && open_ro(st, &ro_err) == 0) {
        agent_log(GABI_LOG_WARNING, NULL,
                  "%s: %s; serving its ports read-only: port.add and port.del fail until the "
                  "agent is restarted on a writable directory",
                  st->path, rw_err.message);
        r = 0;
    } else if (r < 0) {
        /* the read-only attempt's reason when it got as far as one (a log to replay) */
        if (reterr)
            *reterr = ro_err.code == -EROFS ? ro_err : rw_err;
        r = reterr ? reterr->code : r;
        store_close(st);
        return r;
    }
    *ret = st;
    return 0;
}

bool store_readonly(const struct store *st)
{
    return st->readonly;
}

static int refuse_readonly(struct store *st, struct gabi_error *reterr)
{
    return gabi_error_set(reterr, -EROFS, st->path,
                          "state database is read-only (its directory cannot be written): ports "
                          "cannot be added or removed");
}

struct store *store_close(struct store *st)
{
    if (!st)
        return NULL;
    sqlite3_close(st->db);
    free(st->path);
    free(st);
    return NULL;
}

int store_insert(struct store *st, const struct port *p, struct gabi_error *reterr)
{
    sqlite3_stmt *stmt = NULL;
    int rc;

    if (st->readonly)
        return refuse_readonly(st, reterr);
    rc = sqlite3_prepare_v2(st->db,
                            "INSERT INTO ports (id, class, socket, mode, backing, created, access) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?)",
                            -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        return db_error(st, rc, "insert", reterr);
    sqlite3_bind_text(stmt, 1, p->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, gabi_class_name(p->cls), -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 3, p->socket, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 4, p->mode->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 5, p->backing_json, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 6, p->created);
    if (p->access.json)
        sqlite3_bind_text(stmt, 7, p->access.json, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(stmt, 7);
    return step_done(st, stmt, "insert", reterr);
}

int store_delete(struct store *st, const char *id, struct gabi_error *reterr)
{
    sqlite3_stmt *stmt = NULL;
    int rc;

    if (st->readonly)
        return refuse_readonly(st, reterr);
    rc = sqlite3_prepare_v2(st->db, "DELETE FROM ports WHERE id = ?", -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        return db_error(st, rc, "delete", reterr);
    sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
    return step_done(st, stmt, "delete", reterr);
}

int store_foreach(struct store *st, store_row_fn fn, void *userdata, struct gabi_error *reterr)
{
    sqlite3_stmt *stmt = NULL;
    int rc, r = 0;

    rc = sqlite3_prepare_v2(st->db,
                            "SELECT id, class, socket, mode, backing, created, access FROM ports "
                            "ORDER BY created, id",
                            -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        return db_error(st, rc, "select", reterr);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW && r == 0) {
        const char *col[5];

        for (int i = 0; i < 5; i++)
            col[i] = (const char *)sqlite3_column_text(stmt, i);
        if (!col[0] || !col[1] || !col[2] || !col[3] || !col[4])
            continue;
        r = fn(col[0], col[1], col[2], col[3], col[4], (const char *)sqlite3_column_text(stmt, 6),
               sqlite3_column_int64(stmt, 5), userdata);
    }
    if (r == 0 && rc != SQLITE_DONE && rc != SQLITE_ROW)
        r = db_error(st, rc, "select", reterr);
    sqlite3_finalize(stmt);
    return r;
}
