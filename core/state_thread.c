/*
 * state_thread.c - the state thread: hands the dirty keys to the backend
 * (batched, one write per period, and at close), settles counters with
 * the values a shared backend answered, runs change notifications and
 * completions of calls made without a request, drops expired entries,
 * and turns the backend's health into one WARNING / one INFO and metrics.
 */
#include "state_priv.h"
#include "log.h"
#include "pipeline.h"
#include "timer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

void state_kick(void)
{
    /* asked already and not taken yet: that flush writes what the caller
     * changed before it got here (every counter increment kicks) */
    if (__atomic_load_n(&state_g.flush_now, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&state_g.q_lock);
    __atomic_store_n(&state_g.flush_now, 1, __ATOMIC_RELEASE);
    pthread_cond_signal(&state_g.q_cond);
    pthread_mutex_unlock(&state_g.q_lock);
}

/* ---- the state thread ---------------------------------------------------- */

static void run_dones(void)
{
    pthread_mutex_lock(&state_g.watch_lock);
    pthread_mutex_lock(&state_g.q_lock);
    struct note *list = state_g.dones;
    state_g.dones = NULL;
    state_g.dones_tail = &state_g.dones;
    pthread_mutex_unlock(&state_g.q_lock);
    for (struct note *n = list, *next; n; n = next) {
        next = n->next;
        if (n->stage)
            state_note_deliver(n, 0, n->done, n->arg);
        state_note_free(n);
    }
    pthread_mutex_unlock(&state_g.watch_lock);
}

static void run_notes(void)
{
    pthread_mutex_lock(&state_g.q_lock);
    struct note *list = state_g.notes;
    state_g.notes = NULL;
    state_g.notes_tail = &state_g.notes;
    pthread_mutex_unlock(&state_g.q_lock);
    if (!list)
        return;
    pthread_mutex_lock(&state_g.watch_lock);
    for (struct note *n = list; n; n = n->next)
        for (struct watch *w = state_g.watches; w; w = w->next)
            if (w->stage != n->stage && !strncmp(n->key, w->prefix, w->plen))
                state_note_deliver(n, strlen(w->stage->name) + 1, w->fn,
                                   w->arg);
    pthread_mutex_unlock(&state_g.watch_lock);
    for (struct note *n = list, *next; n; n = next) {
        next = n->next;
        state_note_free(n);
    }
}

/* Drop expired entries (their rows go as deleted). */
static void sweep(void)
{
    uint64_t wall = time_wall_ms();
    for (int i = 0; i < NSHARDS; i++) {
        struct shard *sh = &state_g.shards[i];
        pthread_mutex_lock(&sh->lock);
        for (size_t b = 0; b < sh->nb; b++) {
            struct entry **p = &sh->b[b];
            while (*p) {
                struct entry *e = *p;
                if (!state_entry_expired(e, wall)) {
                    p = &e->next;
                    continue;
                }
                *p = e->next;
                sh->n--;
                state_mark_dirty(e->key, e->dirty ? &e->dirty : NULL);
                free(e->data);
                free(e);
            }
        }
        pthread_mutex_unlock(&sh->lock);
    }
}

void state_backend_metrics(void)
{
    if (state_g.m_up)
        metrics_set(state_g.m_up, NULL, state_g.backend_ok ? 1 : 0);
}

/* One WARNING when the backend goes, one INFO when it is back. */
static void backend_result(int rc, const char *err)
{
    if (rc != 0) {
        __atomic_add_fetch(&state_g.write_errors, 1, __ATOMIC_RELAXED);
        if (state_g.m_errors)
            metrics_add(state_g.m_errors, NULL, 1);
        if (state_g.backend_ok)
            log_msg(LOG_WARN, "state",
                    "%s backend %s unavailable: %s (requests go on with "
                    "this instance's view)",
                    state_g.backend_name, state_g.path, err);
        snprintf(state_g.last_error, sizeof state_g.last_error, "%s", err);
        __atomic_store_n(&state_g.backend_ok, 0, __ATOMIC_RELEASE);
    } else if (!state_g.backend_ok) {
        log_msg(LOG_INFO, "state", "%s backend %s is back",
                state_g.backend_name, state_g.path);
        __atomic_store_n(&state_g.backend_ok, 1, __ATOMIC_RELEASE);
    }
    state_backend_metrics();
}

/* After a write: a counter takes the fleet's value (plus what was added
 * meanwhile); a failed write puts its increments back and the key back in
 * the queue. */
static void settle_row(const struct state_row *r, int failed)
{
    uint64_t h = state_hash(r->key);
    struct shard *sh = state_shard(h);
    pthread_mutex_lock(&sh->lock);
    struct entry *e = state_entry_get(sh, r->key, h);
    if (e && e->is_counter) {
        if (failed) {
            e->unsent += r->delta;
            e->restore |= r->restore;
        } else if (!r->fleet_seq || r->fleet_seq >= e->seq) {
            e->seq = r->fleet_seq;
            e->count = r->fleet + e->unsent;
        } else /* a later fleet value (it holds ours) came meanwhile */
            e->count -= e->inflight;
        e->inflight = 0;
    }
    if (failed)
        state_mark_dirty(r->key, e ? &e->dirty : NULL);
    pthread_mutex_unlock(&sh->lock);
}

/* Hand the dirty keys to the backend, as they are now. */
static void write_dirty(void)
{
    /* a shared backend that is away: the changes wait in the queue */
    if (state_g.backend && state_g.backend->tick && !state_g.backend_ok)
        return;
    pthread_mutex_lock(&state_g.q_lock);
    struct dirty d = state_g.dirty;
    state_g.dirty = (struct dirty){0};
    pthread_mutex_unlock(&state_g.q_lock);
    if (!d.n || !state_g.backend)
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
        uint64_t h = state_hash(d.v[i]);
        struct shard *sh = state_shard(h);
        struct state_row *r = &rows[i];
        r->key = d.v[i];
        pthread_mutex_lock(&sh->lock);
        struct entry *e = state_entry_get(sh, d.v[i], h);
        if (!e) {
            r->deleted = 1;
        } else {
            e->dirty = 0;
            r->is_counter = e->is_counter;
            r->count = e->count;
            r->delta = e->unsent;
            r->restore = e->restore;
            r->base = e->count - e->unsent;
            e->restore = 0;
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
    int rc =
        state_g.backend->write(state_g.backend, rows, d.n, err, sizeof err);
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
    if (state_g.pending)
        return 1;
    return state_g.dirty.n &&
           (!state_g.backend || !state_g.backend->tick || state_g.backend_ok);
}

void *state_thread_main(void *arg)
{
    (void)arg;
    unsigned period = state_g.backend && state_g.backend->flush_ms
                          ? state_g.backend->flush_ms
                          : STATE_FLUSH_MS;
    uint64_t last_flush = time_now_ms();
    uint64_t next_flush = last_flush + period;
    uint64_t next_sweep = time_now_ms() + SWEEP_MS;
    pthread_mutex_lock(&state_g.q_lock);
    for (;;) {
        for (;;) {
            /* busy: flush a period after the last one; idle: sleep up to
             * IDLE_MS (mark_dirty_key and incr_pending wake us early) */
            uint64_t until =
                state_busy_locked() ? next_flush : last_flush + IDLE_MS;
            if (state_g.stop || state_g.notes || state_g.dones ||
                __atomic_load_n(&state_g.flush_now, __ATOMIC_ACQUIRE) ||
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
            pthread_cond_timedwait(&state_g.q_cond, &state_g.q_lock, &ts);
        }
        int stop = state_g.stop,
            flush = __atomic_load_n(&state_g.flush_now, __ATOMIC_ACQUIRE) ||
                    stop || time_now_ms() >= next_flush;
        int gen = state_g.flush_gen;
        __atomic_store_n(&state_g.flush_now, 0, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&state_g.q_lock);
        run_dones();
        run_notes();
        if (flush) {
            if (time_now_ms() >= next_sweep) {
                sweep();
                next_sweep = time_now_ms() + SWEEP_MS;
            }
            if (state_g.backend && state_g.backend->tick) {
                char err[256] = "";
                int rc =
                    state_g.backend->tick(state_g.backend, err, sizeof err);
                if (rc < 0 || (rc == 0 && !state_g.backend_ok))
                    backend_result(rc, err);
            }
            pthread_mutex_lock(&state_g.q_lock);
            struct pending *pend = state_g.pending;
            state_g.pending = NULL;
            pthread_mutex_unlock(&state_g.q_lock);
            write_dirty();
            state_pending_deliver(pend);
            last_flush = time_now_ms();
            next_flush = last_flush + period;
        }
        pthread_mutex_lock(&state_g.q_lock);
        if (flush) {
            state_g.flushed_gen = gen;
            pthread_cond_broadcast(&state_g.q_cond);
        }
        if (stop)
            break;
    }
    pthread_mutex_unlock(&state_g.q_lock);
    return NULL;
}

void state_flush(void)
{
    if (!state_g.thread_started)
        return;
    pthread_mutex_lock(&state_g.q_lock);
    int gen = ++state_g.flush_gen;
    __atomic_store_n(&state_g.flush_now, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&state_g.q_cond);
    while (state_g.flushed_gen < gen && !state_g.stop)
        pthread_cond_wait(&state_g.q_cond, &state_g.q_lock);
    pthread_mutex_unlock(&state_g.q_lock);
}
