/*
 * state_ops.c - the SDK's state operations (state_incr, state_put,
 * state_del, state_get, state_watch, state_list; sluice.h) on a stage's
 * namespace, and the delivery of state_incr's completions: on the
 * request's worker, after the shared backend answered when there is one.
 * They touch the view only; nothing here waits on the backend.
 */
#include "state_priv.h"
#include "log.h"
#include "pipeline.h"
#include "request.h"
#include "timer.h"
#include "worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- keys --------------------------------------------------------------- */

static int ns_key(sluice_stage *stage, const char *key, char *out, size_t n)
{
    size_t kl = key ? strlen(key) : 0;
    if (!state_g.open || !stage || !stage->name || !kl || kl > STATE_KEY_MAX)
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
                                .origin = state_g.instance,
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
        if (d) { /* whole before it is posted: the worker may run it now */
            *d = (struct incr_done){ctx, done, arg, count, expires, shared};
            memcpy(d->key, key, kl + 1);
        }
        if (!d || worker_post(ctx->w, incr_deliver, d) != 0) {
            /* cannot reach the worker: the reference stays (a leak, not
             * a use after free) */
            free(d);
        }
        return;
    }
    struct note *n =
        state_note_new(key, 1, count, NULL, 0, expires, state_g.instance);
    if (!n)
        return;
    n->shared = shared;
    n->stage = stage;
    n->done = done;
    n->arg = arg;
    pthread_mutex_lock(&state_g.q_lock);
    *state_g.dones_tail = n;
    state_g.dones_tail = &n->next;
    pthread_cond_signal(&state_g.q_cond);
    pthread_mutex_unlock(&state_g.q_lock);
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
    pthread_mutex_lock(&state_g.q_lock);
    p->next = state_g.pending;
    state_g.pending = p;
    pthread_cond_signal(&state_g.q_cond); /* see state_busy_locked */
    pthread_mutex_unlock(&state_g.q_lock);
}

/* After a write (state thread): each completion gets the value the
 * backend answered (or, while it is away, this instance's view). */
void state_pending_deliver(struct pending *list)
{
    for (struct pending *p = list, *next; p; p = next) {
        next = p->next;
        uint64_t h = state_hash(p->fk), exp = 0;
        struct shard *sh = state_shard(h);
        int64_t v = 0;
        pthread_mutex_lock(&sh->lock);
        struct entry *e = state_entry_get(sh, p->fk, h);
        if (e && e->is_counter) {
            v = e->count;
            exp = e->expires_ms;
        }
        pthread_mutex_unlock(&sh->lock);
        if (p->stage || p->ctx)
            incr_complete_shared(p->stage, p->ctx, p->key, v, exp, p->done,
                                 p->arg, 1, state_g.backend_ok);
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
    uint64_t h = state_hash(fk), wall = time_wall_ms();
    struct shard *sh = state_shard(h);
    int64_t v = 0;
    uint64_t exp = 0;
    pthread_mutex_lock(&sh->lock);
    struct entry *e = state_entry_get(sh, fk, h);
    if (e && (state_entry_expired(e, wall) || !e->is_counter)) {
        free(e->data);
        e->data = NULL;
        e->len = 0;
        e->count = 0;
        e->expires_ms = 0;
        e->is_counter = 0;
    }
    if (!e && delta)
        e = state_entry_add(sh, fk, h);
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
            snprintf(e->origin, sizeof e->origin, "%s", state_g.instance);
            state_mark_dirty(e->key, &e->dirty);
        }
        v = e->count;
        exp = e->expires_ms;
        if (!delta && done && state_g.backend && state_g.backend->tick)
            state_mark_dirty(e->key, &e->dirty); /* ask the backend */
    }
    pthread_mutex_unlock(&sh->lock);
    int shared = state_g.backend && state_g.backend->tick;
    if (done && shared)
        incr_pending(stage, ctx, fk, key, done, arg);
    else if (done)
        incr_complete(stage, ctx, key, v, exp, done, arg);
    /* a shared backend: the fleet sees the change now, not a period later;
     * and a completion waits for this write, not the next period's (kicked
     * after its pending entry is queued, or the write may miss it) */
    if ((delta || done) && shared)
        state_kick();
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
    uint64_t h = state_hash(fk), wall = time_wall_ms();
    uint64_t exp = ttl_ms ? wall + ttl_ms : 0;
    struct shard *sh = state_shard(h);
    pthread_mutex_lock(&sh->lock);
    struct entry *e = state_entry_get(sh, fk, h);
    if (!e && !(e = state_entry_add(sh, fk, h))) {
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
    snprintf(e->origin, sizeof e->origin, "%s", state_g.instance);
    state_mark_dirty(e->key, &e->dirty);
    pthread_mutex_unlock(&sh->lock);
    /* from the caller's bytes: once the lock is released, `copy` belongs to
     * the entry, and a put on another worker may free it at any time */
    state_notify(stage, fk, 1, data ? data : "", len, exp, state_g.instance);
    return 0;
}

int state_del(sluice_stage *stage, const char *key)
{
    char fk[NS_MAX];
    if (ns_key(stage, key, fk, sizeof fk))
        return 0;
    uint64_t h = state_hash(fk), wall = time_wall_ms();
    struct shard *sh = state_shard(h);
    int had = 0, was_record = 0;
    pthread_mutex_lock(&sh->lock);
    struct entry *e = state_entry_get(sh, fk, h);
    if (e) {
        had = !state_entry_expired(e, wall);
        was_record = !e->is_counter;
        int dirty = e->dirty;
        state_entry_remove(sh, e);
        state_mark_dirty(fk, dirty ? &dirty : NULL);
    }
    pthread_mutex_unlock(&sh->lock);
    if (had && was_record)
        state_notify(stage, fk, 0, NULL, 0, 0, state_g.instance);
    return had;
}

int state_get(sluice_stage *stage, const char *key, sluice_buf *out,
              int64_t *count, uint64_t *expires_ms)
{
    char fk[NS_MAX];
    if (ns_key(stage, key, fk, sizeof fk))
        return 0;
    uint64_t h = state_hash(fk), wall = time_wall_ms();
    struct shard *sh = state_shard(h);
    int found = 0;
    pthread_mutex_lock(&sh->lock);
    struct entry *e = state_entry_get(sh, fk, h);
    if (e && !state_entry_expired(e, wall)) {
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

int state_watch(sluice_stage *stage, const char *prefix, sluice_state_fn fn,
                void *arg)
{
    char full[NS_MAX];
    if (!state_g.open || !stage || !stage->name || !fn ||
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
    pthread_mutex_lock(&state_g.watch_lock);
    w->next = state_g.watches;
    __atomic_store_n(&state_g.watches, w, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&state_g.watch_lock);
    for (struct note *n = state_entries_under(full, 0), *next; n; n = next) {
        next = n->next;
        state_note_deliver(n, skip, fn, arg);
        state_note_free(n);
    }
    return 0;
}

int state_list(sluice_stage *stage, const char *prefix, sluice_state_fn fn,
               void *arg)
{
    char full[NS_MAX];
    int count = 0;
    if (!state_g.open || !stage || !stage->name || !fn ||
        (size_t)snprintf(full, sizeof full, "%s:%s", stage->name,
                         prefix ? prefix : "") >= sizeof full)
        return 0;
    size_t skip = strlen(stage->name) + 1;
    for (struct note *n = state_entries_under(full, 1), *next; n; n = next) {
        next = n->next;
        state_note_deliver(n, skip, fn, arg);
        state_note_free(n);
        count++;
    }
    return count;
}

void state_forget_stage(sluice_stage *stage)
{
    pthread_mutex_lock(&state_g.watch_lock);
    struct watch **p = &state_g.watches;
    while (*p) {
        struct watch *w = *p;
        if (w->stage == stage) {
            *p = w->next;
            free(w);
        } else
            p = &w->next;
    }
    pthread_mutex_lock(&state_g.q_lock);
    for (struct note *n = state_g.dones; n; n = n->next)
        if (n->stage == stage)
            n->stage = NULL;
    for (struct pending *pd = state_g.pending; pd; pd = pd->next)
        if (pd->stage == stage && !pd->ctx)
            pd->stage = NULL;
    pthread_mutex_unlock(&state_g.q_lock);
    pthread_mutex_unlock(&state_g.watch_lock);
}
