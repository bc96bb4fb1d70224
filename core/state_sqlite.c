/*
 * state_sqlite.c - the local state backend: one SQLite file in WAL mode.
 * Opened and loaded once at start (on the main thread); afterwards only the
 * state thread writes to it, one transaction per batch of changes. A file
 * that is not a state database is an error naming the file, or, with
 * reset_on_corrupt, renamed aside (<file>.corrupt) and started afresh.
 */
#include "log.h"
#include "state.h"
#include "timer.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SCHEMA_VERSION 1

struct sqlite_backend {
    struct state_backend base;
    sqlite3 *db;
    sqlite3_stmt *upsert, *del;
};

static const char schema_sql[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value TEXT);"
    "CREATE TABLE IF NOT EXISTS state(key TEXT PRIMARY KEY,"
    " counter INTEGER NOT NULL, count INTEGER NOT NULL, data BLOB,"
    " expires_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
    " origin TEXT NOT NULL);"
    "INSERT OR IGNORE INTO meta VALUES('schema','1');";

static int sq_write(struct state_backend *b, struct state_row *rows, size_t n,
                    char *err, size_t errlen)
{
    struct sqlite_backend *s = (struct sqlite_backend *)b;
    char *msg = NULL;
    if (sqlite3_exec(s->db, "BEGIN", NULL, NULL, &msg) != SQLITE_OK)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        const struct state_row *r = &rows[i];
        sqlite3_stmt *st = r->deleted ? s->del : s->upsert;
        sqlite3_bind_text(st, 1, r->key, -1, SQLITE_STATIC);
        if (!r->deleted) {
            sqlite3_bind_int(st, 2, r->is_counter);
            sqlite3_bind_int64(st, 3, r->count);
            if (r->data)
                sqlite3_bind_blob(st, 4, r->data, (int)r->len, SQLITE_STATIC);
            else
                sqlite3_bind_null(st, 4);
            sqlite3_bind_int64(st, 5, (sqlite3_int64)r->expires_ms);
            sqlite3_bind_int64(st, 6, (sqlite3_int64)r->updated_ms);
            sqlite3_bind_text(st, 7, r->origin ? r->origin : "", -1,
                              SQLITE_STATIC);
        }
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc != SQLITE_DONE) {
            snprintf(err, errlen, "%s", sqlite3_errmsg(s->db));
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
    }
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, &msg) == SQLITE_OK)
        return 0;
fail:
    snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(s->db));
    sqlite3_free(msg);
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

static void sq_close(struct state_backend *b)
{
    struct sqlite_backend *s = (struct sqlite_backend *)b;
    if (!s)
        return;
    sqlite3_finalize(s->upsert);
    sqlite3_finalize(s->del);
    if (s->db) {
        /* fold the WAL back into the file at a clean stop */
        sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL,
                                  NULL);
        sqlite3_close(s->db);
    }
    free(s);
}

/* Load every live row into the view. */
static int sq_load(struct sqlite_backend *s, char *why, size_t whylen)
{
    sqlite3_stmt *st = NULL;
    uint64_t wall = time_wall_ms();
    int rc = sqlite3_prepare_v2(s->db,
                                "SELECT key,counter,count,data,expires_ms,"
                                "updated_ms,origin FROM state",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) {
        snprintf(why, whylen, "%s", sqlite3_errmsg(s->db));
        return -1;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct state_row r = {
            .key = (const char *)sqlite3_column_text(st, 0),
            .is_counter = sqlite3_column_int(st, 1),
            .count = sqlite3_column_int64(st, 2),
            .data = sqlite3_column_blob(st, 3),
            .len = (size_t)sqlite3_column_bytes(st, 3),
            .expires_ms = (uint64_t)sqlite3_column_int64(st, 4),
            .updated_ms = (uint64_t)sqlite3_column_int64(st, 5),
            .origin = (const char *)sqlite3_column_text(st, 6)};
        if (!r.key || (r.expires_ms && r.expires_ms <= wall))
            continue;
        if (!r.data && sqlite3_column_type(st, 3) == SQLITE_BLOB)
            r.data = "";
        if (state_load_row(&r) != 0) {
            snprintf(why, whylen, "out of memory");
            sqlite3_finalize(st);
            return -1;
        }
    }
    if (rc != SQLITE_DONE) {
        snprintf(why, whylen, "%s", sqlite3_errmsg(s->db));
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}

/* Open, check, create the schema, prepare and load. why: SQLite's reason.
 * Returns 0, -1 (unusable: maybe corrupt), -2 (cannot open or write). */
static int sq_try_open(struct sqlite_backend *s, const char *path, char *why,
                       size_t whylen)
{
    char *msg = NULL;
    int rc = sqlite3_open_v2(
        path, &s->db,
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(why, whylen, "%s",
                 s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        return -2;
    }
    sqlite3_busy_timeout(s->db, 2000);
    if ((rc = sqlite3_exec(s->db, schema_sql, NULL, NULL, &msg)) != SQLITE_OK) {
        snprintf(why, whylen, "%s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT ? -1 : -2;
    }
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO state VALUES(?1,?2,?3,?4,?5,?6,?7) "
                           "ON CONFLICT(key) DO UPDATE SET counter=?2,"
                           "count=?3,data=?4,expires_ms=?5,updated_ms=?6,"
                           "origin=?7",
                           -1, &s->upsert, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "DELETE FROM state WHERE key=?1", -1, &s->del,
                           NULL) != SQLITE_OK) {
        snprintf(why, whylen, "%s", sqlite3_errmsg(s->db));
        return -1;
    }
    /* the file must be writable now, not at the first flush */
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE; COMMIT;", NULL, NULL, &msg) !=
        SQLITE_OK) {
        snprintf(why, whylen, "%s", msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return -2;
    }
    return sq_load(s, why, whylen) == 0 ? 0 : -1;
}

static void sq_reset(struct sqlite_backend *s)
{
    sqlite3_finalize(s->upsert);
    sqlite3_finalize(s->del);
    sqlite3_close(s->db);
    s->upsert = s->del = NULL;
    s->db = NULL;
}

/* The folder of `path` (one level) is created when missing. */
static void parent_dir_make(const char *path)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return;
    *slash = '\0';
    if (mkdir(dir, 0750) == 0)
        log_msg(LOG_INFO, "state", "created %s for the state file", dir);
}

struct state_backend *state_sqlite_open(const char *path, int reset_on_corrupt,
                                        char *err, size_t errlen)
{
    struct sqlite_backend *s = calloc(1, sizeof(*s));
    char why[256] = "";
    if (!s) {
        snprintf(err, errlen, "state.path: %s: out of memory", path);
        return NULL;
    }
    s->base.name = "local";
    s->base.flush_ms = STATE_FLUSH_MS;
    s->base.write = sq_write;
    s->base.close = sq_close;
    parent_dir_make(path);
    int rc = sq_try_open(s, path, why, sizeof why);
    if (rc == -1 && reset_on_corrupt) {
        char aside[600];
        sq_reset(s);
        snprintf(aside, sizeof aside, "%s.corrupt", path);
        log_msg(LOG_WARN, "state",
                "%s is not a usable state file (%s): moved to %s, starting "
                "with empty state (state.reset_on_corrupt)",
                path, why, aside);
        if (rename(path, aside) != 0)
            unlink(path);
        char side[600];
        snprintf(side, sizeof side, "%s-wal", path);
        unlink(side);
        snprintf(side, sizeof side, "%s-shm", path);
        unlink(side);
        rc = sq_try_open(s, path, why, sizeof why);
    }
    if (rc == -1) {
        snprintf(err, errlen,
                 "state.path: %s: not a usable state file: %s (move it away, "
                 "or set state.reset_on_corrupt: true to start afresh)",
                 path, why);
        goto fail;
    }
    if (rc == -2) {
        snprintf(err, errlen, "state.path: %s: cannot open for writing: %s",
                 path, why);
        goto fail;
    }
    return &s->base;
fail:
    sq_reset(s);
    free(s);
    return NULL;
}
