/*
 * state_priv.h - what the files of the state layer share (not for the rest
 * of the core: that is state.h): the view's entries and shards, the queues
 * to the state thread, and the layer's one global.
 *
 *   state.c        open/close, /health, metrics
 *   state_view.c   the in-memory view: hash table, dirty queue, notes
 *   state_ops.c    the SDK operations (state_incr, state_put, ...)
 *   state_apply.c  what a backend brings into the view (load, remote)
 *   state_thread.c the state thread: writes, notifications, the sweep
 *
 * Lock order: watch_lock -> shard lock -> q_lock.
 */
#ifndef SLUICE_STATE_PRIV_H
#define SLUICE_STATE_PRIV_H

#include "state.h"

#include <pthread.h>
#include <stdint.h>

#define NSHARDS  64
#define NS_MAX   (STATE_KEY_MAX + 96) /* "<stage>:<key>" */
#define SWEEP_MS 1000
/* With nothing to write or deliver, the state thread sleeps this long: an
 * idle gateway wakes at most once a second (the sweep, a Redis ping). */
#define IDLE_MS 1000

struct entry {
    struct entry *next;
    uint64_t hash;
    int is_counter;
    int dirty; /* its key is in the dirty queue */
    int64_t count;
    int64_t unsent;   /* counter increments not yet given to the backend */
    int64_t inflight; /* given to it, its answer not back yet */
    uint64_t seq;     /* of the fleet value the count is based on */
    uint32_t pulled;  /* the last pull that found it in the backend */
    int restore;      /* counter: the backend may have lost it (a restart):
                         the next write sets it to the view's value first,
                         unless it is there */
    char *data;
    size_t len;
    uint64_t expires_ms, updated_ms;
    char origin[64];
    char key[];
};

struct shard {
    pthread_mutex_t lock;
    struct entry **b;
    size_t nb, n;
};

/* A change notification or a completion waiting for the state thread. */
struct note {
    struct note *next;
    sluice_stage *stage; /* completions: the caller (NULL: dropped);
                            changes: the stage that made it (not told) */
    sluice_state_fn done;
    void *arg;
    int found;
    int64_t count;
    char *data;
    size_t len;
    uint64_t expires_ms;
    int shared; /* 0: this instance's view alone (the backend was away) */
    char origin[64];
    char key[]; /* full key for notes, the stage's key for completions */
};

struct watch {
    struct watch *next;
    sluice_stage *stage;
    sluice_state_fn fn;
    void *arg;
    size_t plen;
    char prefix[]; /* full: "<stage>:<prefix>" */
};

struct dirty {
    char **v;
    size_t n, cap;
};

/* A state_incr completion waiting for a shared backend's answer. */
struct pending {
    struct pending *next;
    sluice_stage *stage; /* NULL: forgotten (ctx NULL only) */
    sluice_ctx *ctx;     /* a reference is held */
    sluice_state_fn done;
    void *arg;
    char fk[NS_MAX];
    char key[STATE_KEY_MAX + 1];
};

/* The layer (state.c defines it). */
struct state_layer {
    int fail_closed; /* state.on_unavailable: closed */
    int open;
    struct shard shards[NSHARDS];
    struct state_backend *backend;
    char instance[64];
    char backend_name[16];
    char path[512];
    pthread_t thread;
    int thread_started;
    pthread_mutex_t q_lock;
    pthread_cond_t q_cond;
    int stop, flush_now, flush_gen, flushed_gen;
    struct note *notes, **notes_tail;
    struct note *dones, **dones_tail;
    struct pending *pending; /* completions for after the next write */
    struct dirty dirty;
    pthread_mutex_t watch_lock;
    struct watch *watches;
    unsigned long long write_errors;
    int backend_ok;
    char last_error[256];
    sluice_metric *m_up, *m_errors;
};
extern struct state_layer state_g;

static inline uint64_t state_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static inline struct shard *state_shard(uint64_t h)
{
    return &state_g.shards[(h >> 58) % NSHARDS];
}

static inline int state_entry_expired(const struct entry *e, uint64_t wall)
{
    return e->expires_ms && e->expires_ms <= wall;
}

/* state_view.c: the hash table (caller holds the shard's lock) */
struct entry *state_entry_get(struct shard *sh, const char *key, uint64_t h);
struct entry *state_entry_add(struct shard *sh, const char *key, uint64_t h);
void state_entry_remove(struct shard *sh, struct entry *e);
/* queue key for the backend; flag: the entry's `dirty` (NULL: none) */
void state_mark_dirty(const char *key, int *flag);
struct note *state_note_new(const char *key, int found, int64_t count,
                            const char *data, size_t len, uint64_t expires,
                            const char *origin);
void state_note_free(struct note *n);
void state_notify(sluice_stage *from, const char *key, int found,
                  const char *data, size_t len, uint64_t expires,
                  const char *origin);
/* copies of the live entries under a full-key prefix (caller frees) */
struct note *state_entries_under(const char *prefix, int counters);
void state_note_deliver(const struct note *n, size_t skip, sluice_state_fn fn,
                        void *arg);

/* state_thread.c: the thread (arg unused), and the up gauge set from
 * state_g.backend_ok */
void *state_thread_main(void *arg);
void state_backend_metrics(void);

/* state_ops.c: completions of state_incr after a shared write */
void state_pending_deliver(struct pending *list);

#endif
