/*
 * state.c - the in-memory view of the shared state and the state thread.
 *
 * The view is a hash table split in shards, each under its own mutex, so
 * workers touching different keys never contend. Every change marks its key
 * dirty; the state thread hands the dirty keys to the backend (batched, at
 * most STATE_FLUSH_MS apart, and at close), runs change notifications and
 * completions of calls made without a request, and drops expired entries.
 * Nothing here does I/O on the caller's thread.
 *
 * Lock order: watch_lock -> shard lock -> q_lock.
 */
#include "state.h"
#include "log.h"
#include "metrics.h"
#include "state_wire.h"
#include "pipeline.h"
#include "request.h"
#include "timer.h"
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

struct state_backend *state_test_backend;

static struct {
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
} S = {.q_lock = PTHREAD_MUTEX_INITIALIZER,
       .q_cond = PTHREAD_COND_INITIALIZER,
       .watch_lock = PTHREAD_MUTEX_INITIALIZER};

static uint64_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static struct shard *shard_of(uint64_t h)
{
    return &S.shards[(h >> 58) % NSHARDS];
}

/* ---- the hash table (caller holds the shard's lock) ------------------ */

static struct entry **slot_find(struct shard *sh, const char *key, uint64_t h)
{
    if (!sh->nb)
        return NULL;
    struct entry **p = &sh->b[h % sh->nb];
    while (*p && ((*p)->hash != h || strcmp((*p)->key, key)))
        p = &(*p)->next;
    return p;
}

static void shard_grow(struct shard *sh)
{
    size_t nb = sh->nb ? sh->nb * 2 : 64;
    struct entry **b = calloc(nb, sizeof(*b));
    if (!b)
        return; /* keep the longer chains */
    for (size_t i = 0; i < sh->nb; i++)
        for (struct entry *e = sh->b[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash % nb];
            b[e->hash % nb] = e;
        }
    free(sh->b);
    sh->b = b;
    sh->nb = nb;
}

static struct entry *entry_get(struct shard *sh, const char *key, uint64_t h)
{
    struct entry **p = slot_find(sh, key, h);
    return p ? *p : NULL;
}

static struct entry *entry_add(struct shard *sh, const char *key, uint64_t h)
{
    size_t kl = strlen(key);
    struct entry *e;
    if (sh->n + 1 > sh->nb * 2 || !sh->nb)
        shard_grow(sh);
    if (!sh->nb || !(e = calloc(1, sizeof(*e) + kl + 1)))
        return NULL;
    memcpy(e->key, key, kl + 1);
    e->hash = h;
    e->next = sh->b[h % sh->nb];
    sh->b[h % sh->nb] = e;
    sh->n++;
    return e;
}

static void entry_remove(struct shard *sh, struct entry *e)
{
    struct entry **p = slot_find(sh, e->key, e->hash);
    if (!p || *p != e)
        return;
    *p = e->next;
    sh->n--;
    free(e->data);
    free(e);
}

static int expired(const struct entry *e, uint64_t wall)
{
    return e->expires_ms && e->expires_ms <= wall;
}

/* ---- queues to the state thread ------------------------------------- */

/* Queue e's key for the backend (shard lock held). A key whose entry is
 * gone when the writer looks is written as deleted. */
static void mark_dirty_key(const char *key, int *flag)
{
    if (flag && *flag)
        return;
    if (!S.backend)
        return;
    char *k = strdup(key);
    if (!k)
        return;
    pthread_mutex_lock(&S.q_lock);
    if (S.dirty.n == S.dirty.cap) {
        size_t cap = S.dirty.cap ? S.dirty.cap * 2 : 256;
        char **v = realloc(S.dirty.v, cap * sizeof(*v));
        if (!v) {
            pthread_mutex_unlock(&S.q_lock);
            free(k);
            return;
        }
        S.dirty.v = v;
        S.dirty.cap = cap;
    }
    S.dirty.v[S.dirty.n++] = k;
    /* the first change after a quiet spell: the state thread may be in its
     * long idle sleep; wake it so the batch goes out within the period */
    if (S.dirty.n == 1)
        pthread_cond_signal(&S.q_cond);
    pthread_mutex_unlock(&S.q_lock);
    if (flag)
        *flag = 1;
}

static struct note *note_new(const char *key, int found, int64_t count,
                             const char *data, size_t len, uint64_t expires,
                             const char *origin)
{
    size_t kl = strlen(key);
    struct note *n = calloc(1, sizeof(*n) + kl + 1);
    if (!n)
        return NULL;
    memcpy(n->key, key, kl + 1);
    n->found = found;
    n->count = count;
    n->expires_ms = expires;
    snprintf(n->origin, sizeof n->origin, "%s", origin ? origin : "");
    if (data) {
        n->data = malloc(len + 1);
        if (!n->data) {
            free(n);
            return NULL;
        }
        memcpy(n->data, data, len);
        n->data[len] = '\0';
        n->len = len;
    }
    return n;
}

static void note_free(struct note *n)
{
    free(n->data);
    free(n);
}

/* Queue a change notification when someone watches (cheap otherwise). */
static void notify(sluice_stage *from, const char *key, int found,
                   const char *data, size_t len, uint64_t expires,
                   const char *origin)
{
    if (!__atomic_load_n(&S.watches, __ATOMIC_ACQUIRE))
        return;
    struct note *n = note_new(key, found, 0, data, len, expires, origin);
    if (!n)
        return;
    n->stage = from;
    pthread_mutex_lock(&S.q_lock);
    *S.notes_tail = n;
    S.notes_tail = &n->next;
    pthread_cond_signal(&S.q_cond);
    pthread_mutex_unlock(&S.q_lock);
}

/* ---- keys --------------------------------------------------------------- */

static int ns_key(sluice_stage *stage, const char *key, char *out, size_t n)
{
    size_t kl = key ? strlen(key) : 0;
    if (!S.open || !stage || !stage->name || !kl || kl > STATE_KEY_MAX)
        return -1;
    if ((size_t)snprintf(out, n, "%s:%s", stage->name, key) >= n)
        return -1;
    return 0;
}

/* ---- the SDK operations ------------------------------------------------ */

struct incr_done {
    sluice_ctx *ctx;
    sluice_state_fn done;
    void *arg;
    int64_t count;
    uint64_t expires_ms;
    int shared;
    char key[];
};

/* On the request's worker: deliver unless the request already ended. */
static void incr_deliver(void *p)
{
    struct incr_done *d = p;
    if (!d->ctx->completed) {
        sluice_state_value v = {.key = d->key,
                                .found = 1,
                                .count = d->count,
                                .expires_ms = d->expires_ms,
                                .origin = S.instance,
                                .shared = d->shared};
        d->done(d->arg, &v);
    }
    request_unref(d->ctx);
    free(d);
}

/* Deliver on ctx's worker; `held`: a reference on ctx is already held
 * (taken on that worker), else take one now (we are on it). */
static void incr_complete_shared(sluice_stage *stage, sluice_ctx *ctx,
                                 const char *key, int64_t count,
                                 uint64_t expires, sluice_state_fn done,
                                 void *arg, int held, int shared)
{
    if (ctx && ctx->w) {
        size_t kl = strlen(key);
        struct incr_done *d = malloc(sizeof(*d) + kl + 1);
        if (!held)
            ctx->refs++; /* on ctx's worker: hooks run there */
        if (!d || worker_post(ctx->w, incr_deliver, d) != 0) {
            /* cannot reach the worker: the reference stays (a leak, not
             * a use after free) */
            free(d);
            return;
        }
        *d = (struct incr_done){ctx, done, arg, count, expires, shared};
        memcpy(d->key, key, kl + 1);
        return;
    }
    struct note *n = note_new(key, 1, count, NULL, 0, expires, S.instance);
    if (!n)
        return;
    n->stage = stage;
    n->done = done;
    n->arg = arg;
    pthread_mutex_lock(&S.q_lock);
    *S.dones_tail = n;
    S.dones_tail = &n->next;
    pthread_cond_signal(&S.q_cond);
    pthread_mutex_unlock(&S.q_lock);
}

static void incr_complete(sluice_stage *stage, sluice_ctx *ctx, const char *key,
                          int64_t count, uint64_t expires, sluice_state_fn done,
                          void *arg)
{
    incr_complete_shared(stage, ctx, key, count, expires, done, arg, 0, 1);
}

/* A shared backend: the completion waits for the next write's answer. */
static void incr_pending(sluice_stage *stage, sluice_ctx *ctx, const char *fk,
                         const char *key, sluice_state_fn done, void *arg)
{
    struct pending *p = calloc(1, sizeof(*p));
    if (!p)
        return;
    *p = (struct pending){.stage = stage, .ctx = ctx, .done = done, .arg = arg};
    snprintf(p->fk, sizeof p->fk, "%s", fk);
    snprintf(p->key, sizeof p->key, "%s", key);
    if (ctx && ctx->w)
        ctx->refs++; /* on ctx's worker: hooks run there */
    pthread_mutex_lock(&S.q_lock);
    p->next = S.pending;
    S.pending = p;
    pthread_cond_signal(&S.q_cond); /* see state_busy_locked */
    pthread_mutex_unlock(&S.q_lock);
}

/* After a write (state thread): each completion gets the value the
 * backend answered (or, while it is away, this instance's view). */
static void pending_deliver(struct pending *list)
{
    for (struct pending *p = list, *next; p; p = next) {
        next = p->next;
        uint64_t h = hash_key(p->fk), exp = 0;
        struct shard *sh = shard_of(h);
        int64_t v = 0;
        pthread_mutex_lock(&sh->lock);
        struct entry *e = entry_get(sh, p->fk, h);
        if (e && e->is_counter) {
            v = e->count;
            exp = e->expires_ms;
        }
        pthread_mutex_unlock(&sh->lock);
        if (p->stage || p->ctx)
            incr_complete_shared(p->stage, p->ctx, p->key, v, exp, p->done,
                                 p->arg, 1, S.backend_ok);
        free(p);
    }
}
int64_t state_incr(sluice_stage *stage, sluice_ctx *ctx, const char *key,
                   int64_t delta, uint64_t ttl_ms, sluice_state_fn done,
                   void *arg)
{
    char fk[NS_MAX];
    if (ns_key(stage, key, fk, sizeof fk))
        return 0;
    uint64_t h = hash_key(fk), wall = time_wall_ms();
    struct shard *sh = shard_of(h);
    int64_t v = 0;
    uint64_t exp = 0;
    pthread_mutex_lock(&sh->lock);
    struct entry *e = entry_get(sh, fk, h);
    if (e && (expired(e, wall) || !e->is_counter)) {
        free(e->data);
        e->data = NULL;
        e->len = 0;
        e->count = 0;
        e->expires_ms = 0;
        e->is_counter = 0;
    }
    if (!e && delta)
        e = entry_add(sh, fk, h);
    if (e) {
        if (!e->is_counter) {
            e->is_counter = 1;
            e->count = 0;
            e->expires_ms = ttl_ms ? wall + ttl_ms : 0;
        }
        if (delta) {
            e->count += delta;
            e->unsent += delta;
            e->updated_ms = wall;
            snprintf(e->origin, sizeof e->origin, "%s", S.instance);
            mark_dirty_key(e->key, &e->dirty);
        }
        v = e->count;
        exp = e->expires_ms;
        if (!delta && done && S.backend && S.backend->tick)
            mark_dirty_key(e->key, &e->dirty); /* ask the backend */
    }
    pthread_mutex_unlock(&sh->lock);
    /* a shared backend: the fleet sees the change now, not a period later */
    if (delta && S.backend && S.backend->tick)
        state_kick();
    if (done && S.backend && S.backend->tick)
        incr_pending(stage, ctx, fk, key, done, arg);
    else if (done)
        incr_complete(stage, ctx, key, v, exp, done, arg);
    return v;
}

int state_put(sluice_stage *stage, const char *key, const char *data,
              size_t len, uint64_t ttl_ms)
{
    char fk[NS_MAX];
    if (ns_key(stage, key, fk, sizeof fk) || len > STATE_RECORD_MAX ||
        (!data && len))
        return -1;
    char *copy = malloc(len + 1);
    if (!copy)
        return -1;
    if (len)
        memcpy(copy, data, len);
    copy[len] = '\0';
    uint64_t h = hash_key(fk), wall = time_wall_ms();
    uint64_t exp = ttl_ms ? wall + ttl_ms : 0;
    struct shard *sh = shard_of(h);
    pthread_mutex_lock(&sh->lock);
    struct entry *e = entry_get(sh, fk, h);
    if (!e && !(e = entry_add(sh, fk, h))) {
        pthread_mutex_unlock(&sh->lock);
        free(copy);
        return -1;
    }
    free(e->data);
    e->data = copy;
    e->len = len;
    e->is_counter = 0;
    e->count = 0;
    e->expires_ms = exp;
    e->updated_ms = wall;
    snprintf(e->origin, sizeof e->origin, "%s", S.instance);
    mark_dirty_key(e->key, &e->dirty);
    pthread_mutex_unlock(&sh->lock);
    notify(stage, fk, 1, copy, len, exp, S.instance);
    return 0;
}

int state_del(sluice_stage *stage, const char *key)
{
    char fk[NS_MAX];
    if (ns_key(stage, key, fk, sizeof fk))
        return 0;
    uint64_t h = hash_key(fk), wall = time_wall_ms();
    struct shard *sh = shard_of(h);
    int had = 0, was_record = 0;
    pthread_mutex_lock(&sh->lock);
    struct entry *e = entry_get(sh, fk, h);
    if (e) {
        had = !expired(e, wall);
        was_record = !e->is_counter;
        int dirty = e->dirty;
        entry_remove(sh, e);
        mark_dirty_key(fk, dirty ? &dirty : NULL);
    }
    pthread_mutex_unlock(&sh->lock);
    if (had && was_record)
        notify(stage, fk, 0, NULL, 0, 0, S.instance);
    return had;
}

int state_get(sluice_stage *stage, const char *key, sluice_buf *out,
              int64_t *count, uint64_t *expires_ms)
{
    char fk[NS_MAX];
    if (ns_key(stage, key, fk, sizeof fk))
        return 0;
    uint64_t h = hash_key(fk), wall = time_wall_ms();
    struct shard *sh = shard_of(h);
    int found = 0;
    pthread_mutex_lock(&sh->lock);
    struct entry *e = entry_get(sh, fk, h);
    if (e && !expired(e, wall)) {
        found = 1;
        if (out && e->data)
            buf_append(out, e->data, e->len);
        if (count)
            *count = e->count;
        if (expires_ms)
            *expires_ms = e->expires_ms;
    }
    pthread_mutex_unlock(&sh->lock);
    return found;
}

/* Copy of the live entries under `prefix` (full key): records, and
 * counters too when asked. */
static struct note *entries_under(const char *prefix, int counters)
{
    size_t pl = strlen(prefix);
    uint64_t wall = time_wall_ms();
    struct note *list = NULL;
    for (int i = 0; i < NSHARDS; i++) {
        struct shard *sh = &S.shards[i];
        pthread_mutex_lock(&sh->lock);
        for (size_t b = 0; b < sh->nb; b++)
            for (struct entry *e = sh->b[b]; e; e = e->next) {
                if ((e->is_counter && !counters) || expired(e, wall) ||
                    strncmp(e->key, prefix, pl))
                    continue;
                struct note *n = note_new(e->key, 1, e->count, e->data, e->len,
                                          e->expires_ms, e->origin);
                if (n) {
                    n->next = list;
                    list = n;
                }
            }
        pthread_mutex_unlock(&sh->lock);
    }
    return list;
}

static void note_deliver(const struct note *n, size_t skip, sluice_state_fn fn,
                         void *arg)
{
    sluice_state_value v = {.key = n->key + skip,
                            .found = n->found,
                            .count = n->count,
                            .data = n->data,
                            .len = n->len,
                            .expires_ms = n->expires_ms,
                            .origin = n->origin,
                            .shared = 1};
    fn(arg, &v);
}

int state_watch(sluice_stage *stage, const char *prefix, sluice_state_fn fn,
                void *arg)
{
    char full[NS_MAX];
    if (!S.open || !stage || !stage->name || !fn ||
        (size_t)snprintf(full, sizeof full, "%s:%s", stage->name,
                         prefix ? prefix : "") >= sizeof full)
        return -1;
    size_t pl = strlen(full), skip = strlen(stage->name) + 1;
    struct watch *w = calloc(1, sizeof(*w) + pl + 1);
    if (!w)
        return -1;
    memcpy(w->prefix, full, pl + 1);
    w->plen = pl;
    w->stage = stage;
    w->fn = fn;
    w->arg = arg;
    pthread_mutex_lock(&S.watch_lock);
    w->next = S.watches;
    __atomic_store_n(&S.watches, w, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&S.watch_lock);
    for (struct note *n = entries_under(full, 0), *next; n; n = next) {
        next = n->next;
        note_deliver(n, skip, fn, arg);
        note_free(n);
    }
    return 0;
}

int state_list(sluice_stage *stage, const char *prefix, sluice_state_fn fn,
               void *arg)
{
    char full[NS_MAX];
    int count = 0;
    if (!S.open || !stage || !stage->name || !fn ||
        (size_t)snprintf(full, sizeof full, "%s:%s", stage->name,
                         prefix ? prefix : "") >= sizeof full)
        return 0;
    size_t skip = strlen(stage->name) + 1;
    for (struct note *n = entries_under(full, 1), *next; n; n = next) {
        next = n->next;
        note_deliver(n, skip, fn, arg);
        note_free(n);
        count++;
    }
    return count;
}

void state_forget_stage(sluice_stage *stage)
{
    pthread_mutex_lock(&S.watch_lock);
    struct watch **p = &S.watches;
    while (*p) {
        struct watch *w = *p;
        if (w->stage == stage) {
            *p = w->next;
            free(w);
        } else
            p = &w->next;
    }
    pthread_mutex_lock(&S.q_lock);
    for (struct note *n = S.dones; n; n = n->next)
        if (n->stage == stage)
            n->stage = NULL;
    for (struct pending *pd = S.pending; pd; pd = pd->next)
        if (pd->stage == stage && !pd->ctx)
            pd->stage = NULL;
    pthread_mutex_unlock(&S.q_lock);
    pthread_mutex_unlock(&S.watch_lock);
}

/* ---- loading ------------------------------------------------------------ */

int state_load_row(const struct state_row *r)
{
    uint64_t h = hash_key(r->key);
    struct shard *sh = shard_of(h);
    char *copy = NULL;
    if (r->data) {
        if (!(copy = malloc(r->len + 1)))
            return -1;
        memcpy(copy, r->data, r->len);
        copy[r->len] = '\0';
    }
    pthread_mutex_lock(&sh->lock);
    struct entry *e = entry_get(sh, r->key, h);
    if (!e && !(e = entry_add(sh, r->key, h))) {
        pthread_mutex_unlock(&sh->lock);
        free(copy);
        return -1;
    }
    free(e->data);
    e->data = copy;
    e->len = copy ? r->len : 0;
    e->is_counter = r->is_counter;
    e->count = r->count;
    e->expires_ms = r->expires_ms;
    e->updated_ms = r->updated_ms;
    snprintf(e->origin, sizeof e->origin, "%s", r->origin ? r->origin : "");
    pthread_mutex_unlock(&sh->lock);
    return 0;
}

void state_apply_remote(const struct state_wire *w, int accept_own)
{
    if (!accept_own && !strcmp(w->origin, S.instance))
        return; /* our own change, back from the backend */
    uint64_t h = hash_key(w->key), wall = time_wall_ms();
    struct shard *sh = shard_of(h);
    if (w->found && w->expires_ms && w->expires_ms <= wall)
        return;
    char *copy = NULL;
    if (w->found) {
        if (!(copy = malloc(w->len + 1)))
            return;
        memcpy(copy, w->data, w->len);
        copy[w->len] = '\0';
    }
    pthread_mutex_lock(&sh->lock);
    struct entry *e = entry_get(sh, w->key, h);
    if (!w->found) {
        int had = e && !e->is_counter;
        if (e)
            entry_remove(sh, e);
        pthread_mutex_unlock(&sh->lock);
        if (had)
            notify(NULL, w->key, 0, NULL, 0, 0, w->origin);
        return;
    }
    if (!e && !(e = entry_add(sh, w->key, h))) {
        pthread_mutex_unlock(&sh->lock);
        free(copy);
        return;
    }
    int same = !e->is_counter && e->data && e->len == w->len &&
               !memcmp(e->data, copy, w->len) && e->expires_ms == w->expires_ms;
    free(e->data);
    e->data = copy;
    e->len = w->len;
    e->is_counter = 0;
    e->count = 0;
    e->expires_ms = w->expires_ms;
    e->updated_ms = wall;
    snprintf(e->origin, sizeof e->origin, "%s", w->origin);
    pthread_mutex_unlock(&sh->lock);
    if (!same) /* a resync brings back much that did not change */
        notify(NULL, w->key, 1, w->data, w->len, w->expires_ms, w->origin);
}

void state_apply_counter(const struct state_wire *w)
{
    if (!strcmp(w->origin, S.instance))
        return; /* ours: the write's answer settles it */
    uint64_t h = hash_key(w->key), wall = time_wall_ms();
    struct shard *sh = shard_of(h);
    if (w->expires_ms && w->expires_ms <= wall)
        return;
    pthread_mutex_lock(&sh->lock);
    struct entry *e = entry_get(sh, w->key, h);
    if (e && (expired(e, wall) || !e->is_counter)) {
        free(e->data);
        e->data = NULL;
        e->len = 0;
        e->is_counter = 0;
    }
    if (!e && !(e = entry_add(sh, w->key, h))) {
        pthread_mutex_unlock(&sh->lock);
        return;
    }
    if (!e->is_counter) {
        e->is_counter = 1;
        e->unsent = e->inflight = 0;
        e->seq = 0;
        e->expires_ms = w->expires_ms;
    }
    /* an older value than the view's (messages and our own answers race)
     * is dropped; the view's increments not yet in Redis stay on top. If
     * w already holds our write in flight, it counts twice until that
     * write's answer (settle_row): briefly over, never under. */
    if (w->seq > e->seq) {
        e->seq = w->seq;
        e->count = w->count + e->inflight + e->unsent;
        e->updated_ms = wall;
        snprintf(e->origin, sizeof e->origin, "%s", w->origin);
    }
    pthread_mutex_unlock(&sh->lock);
}

void state_requeue_own(void)
{
    for (int i = 0; i < NSHARDS; i++) {
        struct shard *sh = &S.shards[i];
        pthread_mutex_lock(&sh->lock);
        for (size_t b = 0; b < sh->nb; b++)
            for (struct entry *e = sh->b[b]; e; e = e->next) {
                if (!e->is_counter && !strcmp(e->origin, S.instance))
                    mark_dirty_key(e->key, &e->dirty);
                if (e->is_counter) /* a restarted Redis numbers from 0 */
                    e->seq = 0;
            }
        pthread_mutex_unlock(&sh->lock);
    }
}

void state_kick(void)
{
    pthread_mutex_lock(&S.q_lock);
    S.flush_now = 1;
    pthread_cond_signal(&S.q_cond);
    pthread_mutex_unlock(&S.q_lock);
}

/* ---- the state thread ---------------------------------------------------- */

static void run_dones(void)
{
    pthread_mutex_lock(&S.watch_lock);
    pthread_mutex_lock(&S.q_lock);
    struct note *list = S.dones;
    S.dones = NULL;
    S.dones_tail = &S.dones;
    pthread_mutex_unlock(&S.q_lock);
    for (struct note *n = list, *next; n; n = next) {
        next = n->next;
        if (n->stage)
            note_deliver(n, 0, n->done, n->arg);
        note_free(n);
    }
    pthread_mutex_unlock(&S.watch_lock);
}

static void run_notes(void)
{
    pthread_mutex_lock(&S.q_lock);
    struct note *list = S.notes;
    S.notes = NULL;
    S.notes_tail = &S.notes;
    pthread_mutex_unlock(&S.q_lock);
    if (!list)
        return;
    pthread_mutex_lock(&S.watch_lock);
    for (struct note *n = list; n; n = n->next)
        for (struct watch *w = S.watches; w; w = w->next)
            if (w->stage != n->stage && !strncmp(n->key, w->prefix, w->plen))
                note_deliver(n, strlen(w->stage->name) + 1, w->fn, w->arg);
    pthread_mutex_unlock(&S.watch_lock);
    for (struct note *n = list, *next; n; n = next) {
        next = n->next;
        note_free(n);
    }
}

/* Drop expired entries (their rows go as deleted). */
static void sweep(void)
{
    uint64_t wall = time_wall_ms();
    for (int i = 0; i < NSHARDS; i++) {
        struct shard *sh = &S.shards[i];
        pthread_mutex_lock(&sh->lock);
        for (size_t b = 0; b < sh->nb; b++) {
            struct entry **p = &sh->b[b];
            while (*p) {
                struct entry *e = *p;
                if (!expired(e, wall)) {
                    p = &e->next;
                    continue;
                }
                *p = e->next;
                sh->n--;
                mark_dirty_key(e->key, e->dirty ? &e->dirty : NULL);
                free(e->data);
                free(e);
            }
        }
        pthread_mutex_unlock(&sh->lock);
    }
}

static void backend_metrics(void)
{
    if (S.m_up)
        metrics_set(S.m_up, NULL, S.backend_ok ? 1 : 0);
}

/* One WARNING when the backend goes, one INFO when it is back. */
static void backend_result(int rc, const char *err)
{
    if (rc != 0) {
        __atomic_add_fetch(&S.write_errors, 1, __ATOMIC_RELAXED);
        if (S.m_errors)
            metrics_add(S.m_errors, NULL, 1);
        if (S.backend_ok)
            log_msg(LOG_WARN, "state",
                    "%s backend %s unavailable: %s (requests go on with "
                    "this instance's view)",
                    S.backend_name, S.path, err);
        snprintf(S.last_error, sizeof S.last_error, "%s", err);
        __atomic_store_n(&S.backend_ok, 0, __ATOMIC_RELEASE);
    } else if (!S.backend_ok) {
        log_msg(LOG_INFO, "state", "%s backend %s is back", S.backend_name,
                S.path);
        __atomic_store_n(&S.backend_ok, 1, __ATOMIC_RELEASE);
    }
    backend_metrics();
}

/* After a write: a counter takes the fleet's value (plus what was added
 * meanwhile); a failed write puts its increments back and the key back in
 * the queue. */
static void settle_row(const struct state_row *r, int failed)
{
    uint64_t h = hash_key(r->key);
    struct shard *sh = shard_of(h);
    pthread_mutex_lock(&sh->lock);
    struct entry *e = entry_get(sh, r->key, h);
    if (e && e->is_counter) {
        if (failed)
            e->unsent += r->delta;
        else if (!r->fleet_seq || r->fleet_seq >= e->seq) {
            e->seq = r->fleet_seq;
            e->count = r->fleet + e->unsent;
        } else /* a later fleet value (it holds ours) came meanwhile */
            e->count -= e->inflight;
        e->inflight = 0;
    }
    if (failed)
        mark_dirty_key(r->key, e ? &e->dirty : NULL);
    pthread_mutex_unlock(&sh->lock);
}

/* Hand the dirty keys to the backend, as they are now. */
static void write_dirty(void)
{
    /* a shared backend that is away: the changes wait in the queue */
    if (S.backend && S.backend->tick && !S.backend_ok)
        return;
    pthread_mutex_lock(&S.q_lock);
    struct dirty d = S.dirty;
    S.dirty = (struct dirty){0};
    pthread_mutex_unlock(&S.q_lock);
    if (!d.n || !S.backend)
        goto out;
    struct state_row *rows = calloc(d.n, sizeof(*rows));
    char **datas = calloc(d.n, sizeof(*datas));
    if (!rows || !datas) {
        free(rows);
        free(datas);
        goto out; /* the changes stay in memory; the next change retries */
    }
    struct origin_buf {
        char s[64];
    } *origins = calloc(d.n, sizeof(*origins));
    if (!origins) {
        free(rows);
        free(datas);
        goto out;
    }
    for (size_t i = 0; i < d.n; i++) {
        uint64_t h = hash_key(d.v[i]);
        struct shard *sh = shard_of(h);
        struct state_row *r = &rows[i];
        r->key = d.v[i];
        pthread_mutex_lock(&sh->lock);
        struct entry *e = entry_get(sh, d.v[i], h);
        if (!e) {
            r->deleted = 1;
        } else {
            e->dirty = 0;
            r->is_counter = e->is_counter;
            r->count = e->count;
            r->delta = e->unsent;
            e->inflight = e->unsent;
            e->unsent = 0;
            r->expires_ms = e->expires_ms;
            r->updated_ms = e->updated_ms;
            memcpy(origins[i].s, e->origin, sizeof e->origin);
            r->origin = origins[i].s;
            if (e->data && (datas[i] = malloc(e->len + 1))) {
                memcpy(datas[i], e->data, e->len + 1);
                r->data = datas[i];
                r->len = e->len;
            }
        }
        pthread_mutex_unlock(&sh->lock);
    }
    char err[256] = "";
    int rc = S.backend->write(S.backend, rows, d.n, err, sizeof err);
    backend_result(rc, err);
    for (size_t i = 0; i < d.n; i++)
        if (rc != 0 || rows[i].has_fleet)
            settle_row(&rows[i], rc);
    for (size_t i = 0; i < d.n; i++)
        free(datas[i]);
    free(rows);
    free(datas);
    free(origins);
out:
    for (size_t i = 0; i < d.n; i++)
        free(d.v[i]);
    free(d.v);
}

/* Is there work for the next flush (q_lock held)? Dirty keys a shared
 * backend that is away cannot take do not count: they wait for the
 * reconnect, which the idle tick attempts. */
static int state_busy_locked(void)
{
    if (S.pending)
        return 1;
    return S.dirty.n && (!S.backend || !S.backend->tick || S.backend_ok);
}

static void *state_main(void *arg)
{
    (void)arg;
    unsigned period =
        S.backend && S.backend->flush_ms ? S.backend->flush_ms : STATE_FLUSH_MS;
    uint64_t last_flush = time_now_ms();
    uint64_t next_flush = last_flush + period;
    uint64_t next_sweep = time_now_ms() + SWEEP_MS;
    pthread_mutex_lock(&S.q_lock);
    for (;;) {
        for (;;) {
            /* busy: flush a period after the last one; idle: sleep up to
             * IDLE_MS (mark_dirty_key and incr_pending wake us early) */
            uint64_t until =
                state_busy_locked() ? next_flush : last_flush + IDLE_MS;
            if (S.stop || S.notes || S.dones || S.flush_now ||
                time_now_ms() >= until)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t wait = until - time_now_ms();
            ts.tv_sec += (time_t)(wait / 1000);
            ts.tv_nsec += (long)(wait % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&S.q_cond, &S.q_lock, &ts);
        }
        int stop = S.stop,
            flush = S.flush_now || stop || time_now_ms() >= next_flush;
        int gen = S.flush_gen;
        S.flush_now = 0;
        pthread_mutex_unlock(&S.q_lock);
        run_dones();
        run_notes();
        if (flush) {
            if (time_now_ms() >= next_sweep) {
                sweep();
                next_sweep = time_now_ms() + SWEEP_MS;
            }
            if (S.backend && S.backend->tick) {
                char err[256] = "";
                int rc = S.backend->tick(S.backend, err, sizeof err);
                if (rc < 0 || (rc == 0 && !S.backend_ok))
                    backend_result(rc, err);
            }
            pthread_mutex_lock(&S.q_lock);
            struct pending *pend = S.pending;
            S.pending = NULL;
            pthread_mutex_unlock(&S.q_lock);
            write_dirty();
            pending_deliver(pend);
            last_flush = time_now_ms();
            next_flush = last_flush + period;
        }
        pthread_mutex_lock(&S.q_lock);
        if (flush) {
            S.flushed_gen = gen;
            pthread_cond_broadcast(&S.q_cond);
        }
        if (stop)
            break;
    }
    pthread_mutex_unlock(&S.q_lock);
    return NULL;
}

void state_flush(void)
{
    if (!S.thread_started)
        return;
    pthread_mutex_lock(&S.q_lock);
    int gen = ++S.flush_gen;
    S.flush_now = 1;
    pthread_cond_broadcast(&S.q_cond);
    while (S.flushed_gen < gen && !S.stop)
        pthread_cond_wait(&S.q_cond, &S.q_lock);
    pthread_mutex_unlock(&S.q_lock);
}

/* ---- open / close ----------------------------------------------------------
 */

int state_is_open(void)
{
    return S.open;
}

const char *state_instance(void)
{
    return S.instance;
}

int state_open(const struct state_conf *sc, const char *instance, char *err,
               size_t errlen)
{
    const char *backend = sc && sc->backend ? sc->backend : "memory";
    if (S.open)
        state_close();
    for (int i = 0; i < NSHARDS; i++)
        pthread_mutex_init(&S.shards[i].lock, NULL);
    S.notes_tail = &S.notes;
    S.dones_tail = &S.dones;
    S.stop = S.flush_now = S.flush_gen = S.flushed_gen = 0;
    S.write_errors = 0;
    S.last_error[0] = '\0';
    S.backend_ok = 1;
    snprintf(S.instance, sizeof S.instance, "%s",
             instance && *instance ? instance : "sluice");
    snprintf(S.backend_name, sizeof S.backend_name, "%s", backend);
    S.path[0] = '\0';
    if (!strcmp(backend, "local")) {
        snprintf(S.path, sizeof S.path, "%s", sc->path);
        S.backend =
            state_sqlite_open(sc->path, sc->reset_on_corrupt, err, errlen);
        if (!S.backend)
            goto fail;
    } else if (!strcmp(backend, "test") && state_test_backend) {
        S.backend = state_test_backend; /* unit tests: a fake backend */
    } else if (!strcmp(backend, "redis")) {
        int degraded = 0;
        snprintf(S.path, sizeof S.path, "%s", sc->url);
        S.backend = state_redis_open(sc, S.instance, &degraded, err, errlen);
        if (!S.backend)
            goto fail;
        if (degraded) {
            if (sc->required)
                goto fail;
            log_msg(LOG_WARN, "state",
                    "starting degraded: %s (requests go on with this "
                    "instance's view; state.required: true refuses to "
                    "start instead)",
                    err);
            snprintf(S.last_error, sizeof S.last_error, "%s", err);
            S.backend_ok = 0;
        }
    } else if (strcmp(backend, "memory")) {
        snprintf(err, errlen, "state.backend: '%s' is not available", backend);
        goto fail;
    }
    if (!S.m_up) {
        char merr[128];
        S.m_up =
            metrics_register(SLUICE_METRIC_GAUGE, "sluice_state_backend_up",
                             "1 when the state backend (state.backend) "
                             "is usable, 0 while it is unavailable.",
                             NULL, NULL, 0, merr, sizeof merr);
        S.m_errors = metrics_register(
            SLUICE_METRIC_COUNTER, "sluice_state_backend_errors_total",
            "Failed writes to or checks of the state backend.", NULL, NULL, 0,
            merr, sizeof merr);
    }
    backend_metrics();
    S.open = 1;
    if (pthread_create(&S.thread, NULL, state_main, NULL) != 0) {
        snprintf(err, errlen, "state: cannot start the state thread");
        goto fail;
    }
    S.thread_started = 1;
    return 0;
fail:
    state_close();
    return -1;
}

void state_close(void)
{
    if (S.thread_started) {
        pthread_mutex_lock(&S.q_lock);
        S.stop = 1; /* the thread writes what is pending, then exits */
        pthread_cond_broadcast(&S.q_cond);
        pthread_mutex_unlock(&S.q_lock);
        pthread_join(S.thread, NULL);
        S.thread_started = 0;
    }
    S.open = 0;
    if (S.backend)
        S.backend->close(S.backend);
    S.backend = NULL;
    for (int i = 0; i < NSHARDS; i++) {
        struct shard *sh = &S.shards[i];
        for (size_t b = 0; b < sh->nb; b++)
            for (struct entry *e = sh->b[b], *next; e; e = next) {
                next = e->next;
                free(e->data);
                free(e);
            }
        free(sh->b);
        sh->b = NULL;
        sh->nb = sh->n = 0;
    }
    for (struct note *n = S.notes, *next; n; n = next) {
        next = n->next;
        note_free(n);
    }
    for (struct note *n = S.dones, *next; n; n = next) {
        next = n->next;
        note_free(n);
    }
    while (S.pending) { /* the workers are gone: nothing to deliver */
        struct pending *p = S.pending;
        S.pending = p->next;
        free(p);
    }
    S.notes = S.dones = NULL;
    S.notes_tail = &S.notes;
    S.dones_tail = &S.dones;
    for (size_t i = 0; i < S.dirty.n; i++)
        free(S.dirty.v[i]);
    free(S.dirty.v);
    S.dirty = (struct dirty){0};
    while (S.watches) {
        struct watch *w = S.watches;
        S.watches = w->next;
        free(w);
    }
}

/* ---- health ----------------------------------------------------------------
 */

int state_healthy(void)
{
    return !S.open || __atomic_load_n(&S.backend_ok, __ATOMIC_ACQUIRE);
}

void state_status_json(buf_t *out)
{
    size_t n = 0;
    for (int i = 0; i < NSHARDS; i++) {
        pthread_mutex_lock(&S.shards[i].lock);
        n += S.shards[i].n;
        pthread_mutex_unlock(&S.shards[i].lock);
    }
    buf_printf(out, "{\"backend\":");
    buf_json_str(out, S.open ? S.backend_name : "none");
    buf_printf(out, ",\"instance\":");
    buf_json_str(out, S.instance);
    buf_printf(out, ",\"up\":%s,\"entries\":%zu,\"write_errors\":%llu",
               state_healthy() ? "true" : "false", n, S.write_errors);
    if (S.path[0]) {
        buf_printf(out, ",\"path\":");
        buf_json_str(out, S.path);
    }
    if (!state_healthy()) {
        buf_printf(out, ",\"reason\":");
        buf_json_str(out, S.last_error);
    }
    buf_printf(out, "}");
}
