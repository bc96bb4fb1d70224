/*
 * state.h - the shared state layer: counters and small records with a TTL,
 * namespaced per stage, reached by stages through the host table
 * (state_* members of struct sluice_host, ABI 1.1).
 *
 * The view is always in memory (state.c) so no request waits on a disk or
 * a network; a backend keeps it durable (local: a SQLite file written by a
 * writer thread, state_sqlite.c) or shared (redis). Change notifications
 * run on the state thread, never inside the call that made the change.
 */
#ifndef SLUICE_STATE_H
#define SLUICE_STATE_H

#include "buf.h"
#include "sluice.h"

#include <stddef.h>
#include <stdint.h>

#define STATE_KEY_MAX    200   /* a stage's key, bytes */
#define STATE_RECORD_MAX 65536 /* a record's value, bytes */
#define STATE_FLUSH_MS   250   /* the writer's period (at most 1 s) */

/* `state:` in the pipeline file (config.c fills it). */
struct state_conf {
    char *backend;        /* "local" (default) | "redis" | "memory" */
    char *path;           /* local: the SQLite file, default data/state.db */
    int reset_on_corrupt; /* local: a corrupt file is renamed aside, a fresh
                             one made (WARNING) instead of refusing */
    char *url;            /* redis: redis://host:port/db */
    char *password_file;  /* redis: may be NULL */
    char *prefix;         /* redis: key prefix, default "sluice:" */
    long timeout_ms;      /* redis: slower than this = unavailable */
    int fail_closed;      /* on_unavailable: closed */
    int required;         /* refuse to start without the backend */
    char *instance;       /* this instance's name (default host:port/pid) */
};

/* Open the state layer for `sc` (NULL: in memory only, nothing persisted,
 * e.g. --check). Loads what the backend holds and starts the state
 * thread. Returns 0, or -1 with "state.path: <file>: ..." in err. */
int state_open(const struct state_conf *sc, const char *instance, char *err,
               size_t errlen);
/* Flush what is pending, stop the thread, close the backend, free it all.
 * Safe when not open. */
void state_close(void);
int state_is_open(void);
/* Write every pending change to the backend now (tests, shutdown). */
void state_flush(void);

/* The name this instance signs its changes with. */
const char *state_instance(void);

/* The SDK operations, on a stage's namespace (see sluice.h). */
int64_t state_incr(sluice_stage *stage, sluice_ctx *ctx, const char *key,
                   int64_t delta, uint64_t ttl_ms, sluice_state_fn done,
                   void *arg);
int state_put(sluice_stage *stage, const char *key, const char *data,
              size_t len, uint64_t ttl_ms);
int state_del(sluice_stage *stage, const char *key);
int state_get(sluice_stage *stage, const char *key, sluice_buf *out,
              int64_t *count, uint64_t *expires_ms);
int state_watch(sluice_stage *stage, const char *prefix, sluice_state_fn fn,
                void *arg);
int state_list(sluice_stage *stage, const char *prefix, sluice_state_fn fn,
               void *arg);
/* SLUICE_STATE_DEGRADED | SLUICE_STATE_CLOSED (sluice.h). */
int state_status(sluice_stage *stage);
/* End every watch and pending completion of `stage`; waits for a running
 * notification of it to return. Called before the stage's destroy(). */
void state_forget_stage(sluice_stage *stage);

/* For /health: 1 when the backend is reachable (always for local), and a
 * JSON object describing the layer appended to out. */
int state_healthy(void);
void state_status_json(buf_t *out);

/* ---- for backends (state_sqlite.c, state_redis.c) ------------------- */

/* One entry as the backend stores it. Full (namespaced) key. */
struct state_row {
    const char *key;
    int deleted; /* the key is gone: remove it */
    int is_counter;
    int64_t count;
    const char *data;
    size_t len;
    uint64_t expires_ms; /* wall; 0: none */
    uint64_t updated_ms; /* wall */
    const char *origin;
    int64_t delta; /* counters: increments since the last write */
    /* set by a shared backend for counters: the fleet-wide value, and
     * its place in the fleet's order of counter changes (0: unordered) */
    int has_fleet;
    int64_t fleet;
    uint64_t fleet_seq;
    /* counters after a reconnect: the backend may have lost the key (a
     * restarted Redis); if it has none, it takes `base` (the fleet value
     * this view last saw) before delta is added */
    int restore;
    int64_t base;
};

/* Load a row into the view (at open). No notification. */
int state_load_row(const struct state_row *r);
/* Ask the state thread to flush now (a backend that came back). */
void state_kick(void);

/* A durable or shared store behind the view. write() gets the changes
 * since the last call, on the state thread. */
struct state_backend {
    const char *name;
    unsigned flush_ms; /* how often the state thread writes (<= 1000) */
    int (*write)(struct state_backend *b, struct state_row *rows, size_t n,
                 char *err, size_t errlen);
    /* optional, each flush period: 0 when the backend is usable (it may
     * reconnect and resync here), -1 with a reason when a check or a
     * reconnect just failed, 1 when it is still away (nothing tried) */
    int (*tick)(struct state_backend *b, char *err, size_t errlen);
    void (*close)(struct state_backend *b);
};

/* A record changed by another instance (redis backend): into the view,
 * watchers told. Ignored when it is this instance's own echo, unless
 * accept_own (loading at start). */
struct state_wire;
void state_apply_remote(const struct state_wire *w, int accept_own);
/* A counter's fleet value another instance's write produced (redis
 * backend, w->count at w->seq): the view takes it unless it already has a
 * later one. No notification. */
void state_apply_counter(const struct state_wire *w);
/* A pull of the shared backend's records (redis: at start, on resync):
 * state_pull_begin numbers it; each record read goes through
 * state_pull_record (state_apply_remote that also marks it found); then
 * state_pull_sweep drops the records the pull did not find (deleted while
 * this instance was not listening), except those changed since the pull
 * began or waiting to be written. Counters are never swept. State thread
 * (or open) only. */
uint32_t state_pull_begin(uint64_t *since_wall);
void state_pull_record(const struct state_wire *w, int accept_own,
                       uint32_t gen);
void state_pull_sweep(uint32_t gen, uint64_t since_wall);
/* A counter's value read from the shared backend (a pull, at start or on
 * resync; seq: the fleet's counter order when the pull began): the view
 * takes it unless it already has a later one. No notification. */
void state_pull_counter(const char *key, int64_t count, uint64_t expires_ms,
                        uint64_t seq);
/* After a reconnect (the server may have lost everything): queue every
 * record this instance wrote for the backend again, every counter to be
 * restored to the view's value where the server has none (struct
 * state_row.restore), and forget the order of the counters' fleet values
 * (a restarted server numbers them anew). */
void state_requeue_own(void);

/* The redis backend: connects (and loads the shared records) now; when
 * Redis cannot be reached, *degraded is set and err says why (the caller
 * refuses to start when state.required). NULL only on a bad config. */
struct state_backend *state_redis_open(const struct state_conf *sc,
                                       const char *instance, int *degraded,
                                       char *err, size_t errlen);

/* Unit tests: state_open with backend "test" uses this one (owned by the
 * layer from then on: closed by state_close). */
extern struct state_backend *state_test_backend;

/* The local backend: opens (creates) the SQLite file, loads its rows. */
struct state_backend *state_sqlite_open(const char *path, int reset_on_corrupt,
                                        char *err, size_t errlen);

#endif
