/*
 * state_apply.c - what a backend brings into the view: rows loaded at
 * start, records and counter values other instances wrote (redis), and
 * the requeue of this instance's own state after a reconnect. Runs on the
 * backend's threads (state thread, subscriber), never on a worker.
 */
#include "state_priv.h"
#include "log.h"
#include "timer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state_wire.h"

int state_load_row(const struct state_row *r)
{
    uint64_t h = state_hash(r->key);
    struct shard *sh = state_shard(h);
    char *copy = NULL;
    if (r->data) {
        if (!(copy = malloc(r->len + 1)))
            return -1;
        memcpy(copy, r->data, r->len);
        copy[r->len] = '\0';
    }
    pthread_mutex_lock(&sh->lock);
    struct entry *e = state_entry_get(sh, r->key, h);
    if (!e && !(e = state_entry_add(sh, r->key, h))) {
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

/* The pull now running (state_pull_begin): its number, 0 for none. */
static uint32_t pull_gen;

/* Mark the entry `key` as found by pull `gen`. */
static void mark_pulled(const char *key, uint32_t gen)
{
    uint64_t h = state_hash(key);
    struct shard *sh = state_shard(h);
    pthread_mutex_lock(&sh->lock);
    struct entry *e = state_entry_get(sh, key, h);
    if (e)
        e->pulled = gen;
    pthread_mutex_unlock(&sh->lock);
}

/* A record from the backend into the view (gen: the pull that read it, 0:
 * a message). */
static void apply_record(const struct state_wire *w, int accept_own,
                         uint32_t gen)
{
    if (!accept_own && !strcmp(w->origin, state_g.instance)) {
        if (gen) /* ours, as the view has it: still there */
            mark_pulled(w->key, gen);
        return; /* our own change, back from the backend */
    }
    uint64_t h = state_hash(w->key), wall = time_wall_ms();
    struct shard *sh = state_shard(h);
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
    struct entry *e = state_entry_get(sh, w->key, h);
    if (!w->found) {
        int had = e && !e->is_counter;
        if (e)
            state_entry_remove(sh, e);
        pthread_mutex_unlock(&sh->lock);
        if (had)
            state_notify(NULL, w->key, 0, NULL, 0, 0, w->origin);
        return;
    }
    if (!e && !(e = state_entry_add(sh, w->key, h))) {
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
    if (gen)
        e->pulled = gen;
    snprintf(e->origin, sizeof e->origin, "%s", w->origin);
    pthread_mutex_unlock(&sh->lock);
    if (!same) /* a resync brings back much that did not change */
        state_notify(NULL, w->key, 1, w->data, w->len, w->expires_ms,
                     w->origin);
}

void state_apply_remote(const struct state_wire *w, int accept_own)
{
    apply_record(w, accept_own, 0);
}

uint32_t state_pull_begin(uint64_t *since_wall)
{
    *since_wall = time_wall_ms();
    if (++pull_gen == 0)
        pull_gen = 1;
    return pull_gen;
}

void state_pull_record(const struct state_wire *w, int accept_own, uint32_t gen)
{
    apply_record(w, accept_own, gen);
}

void state_pull_sweep(uint32_t gen, uint64_t since_wall)
{
    struct gone {
        struct gone *next;
        char key[];
    } *list = NULL;
    for (int i = 0; i < NSHARDS; i++) {
        struct shard *sh = &state_g.shards[i];
        pthread_mutex_lock(&sh->lock);
        for (size_t b = 0; b < sh->nb; b++) {
            struct entry **p = &sh->b[b];
            while (*p) {
                struct entry *e = *p;
                /* kept: counters, records the pull found, changes waiting
                 * to be written, anything changed since the pull began */
                if (e->is_counter || e->pulled == gen || e->dirty ||
                    e->updated_ms >= since_wall) {
                    p = &e->next;
                    continue;
                }
                size_t kl = strlen(e->key);
                struct gone *g = malloc(sizeof(*g) + kl + 1);
                if (g) {
                    memcpy(g->key, e->key, kl + 1);
                    g->next = list;
                    list = g;
                }
                *p = e->next;
                sh->n--;
                free(e->data);
                free(e);
            }
        }
        pthread_mutex_unlock(&sh->lock);
    }
    for (struct gone *g = list, *next; g; g = next) {
        next = g->next;
        state_notify(NULL, g->key, 0, NULL, 0, 0, "");
        free(g);
    }
}

/* A counter's fleet value into the view: taken when it is later in the
 * fleet's order than the one the view holds (seq > e->seq; with
 * `or_same`, seq >= e->seq). The view's increments not yet in the backend
 * stay on top. No notification. */
static void counter_take(const char *key, int64_t count, uint64_t expires_ms,
                         uint64_t seq, const char *origin, int or_same)
{
    uint64_t h = state_hash(key), wall = time_wall_ms();
    struct shard *sh = state_shard(h);
    if (expires_ms && expires_ms <= wall)
        return;
    pthread_mutex_lock(&sh->lock);
    struct entry *e = state_entry_get(sh, key, h);
    if (e && (state_entry_expired(e, wall) || !e->is_counter)) {
        free(e->data);
        e->data = NULL;
        e->len = 0;
        e->is_counter = 0;
    }
    if (!e && !(e = state_entry_add(sh, key, h))) {
        pthread_mutex_unlock(&sh->lock);
        return;
    }
    int fresh = !e->is_counter;
    if (fresh) {
        e->is_counter = 1;
        e->unsent = e->inflight = 0;
        e->seq = 0;
        e->expires_ms = expires_ms;
    }
    /* an older value than the view's (messages and our own answers race)
     * is dropped. If the value already holds our write in flight, it
     * counts twice until that write's answer (settle_row): briefly over,
     * never under. */
    if (fresh || seq > e->seq || (or_same && seq == e->seq)) {
        e->seq = seq;
        e->count = count + e->inflight + e->unsent;
        e->updated_ms = wall;
        if (*origin) /* a pull does not know who changed it last */
            snprintf(e->origin, sizeof e->origin, "%s", origin);
    }
    pthread_mutex_unlock(&sh->lock);
}

void state_apply_counter(const struct state_wire *w)
{
    if (!strcmp(w->origin, state_g.instance))
        return; /* ours: the write's answer settles it */
    counter_take(w->key, w->count, w->expires_ms, w->seq, w->origin, 0);
}

void state_pull_counter(const char *key, int64_t count, uint64_t expires_ms,
                        uint64_t seq)
{
    counter_take(key, count, expires_ms, seq, "", 1);
}

void state_requeue_own(void)
{
    for (int i = 0; i < NSHARDS; i++) {
        struct shard *sh = &state_g.shards[i];
        pthread_mutex_lock(&sh->lock);
        for (size_t b = 0; b < sh->nb; b++)
            for (struct entry *e = sh->b[b]; e; e = e->next) {
                if (!e->is_counter && !strcmp(e->origin, state_g.instance))
                    state_mark_dirty(e->key, &e->dirty);
                if (e->is_counter) {
                    /* a restarted Redis lost it: the view's value goes
                     * back (if absent); and it numbers from 0 again */
                    e->restore = 1;
                    e->seq = 0;
                    state_mark_dirty(e->key, &e->dirty);
                }
            }
        pthread_mutex_unlock(&sh->lock);
    }
}
