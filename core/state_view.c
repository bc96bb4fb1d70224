/*
 * state_view.c - the in-memory view of the shared state: a hash table split
 * in shards, each under its own mutex, so workers touching different keys
 * never contend; the queue of keys changed since the last write (the state
 * thread drains it) and the queue of change notifications. No I/O here.
 */
#include "state_priv.h"
#include "log.h"
#include "timer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

struct entry *state_entry_get(struct shard *sh, const char *key, uint64_t h)
{
    struct entry **p = slot_find(sh, key, h);
    return p ? *p : NULL;
}

struct entry *state_entry_add(struct shard *sh, const char *key, uint64_t h)
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

void state_entry_remove(struct shard *sh, struct entry *e)
{
    struct entry **p = slot_find(sh, e->key, e->hash);
    if (!p || *p != e)
        return;
    *p = e->next;
    sh->n--;
    free(e->data);
    free(e);
}

/* ---- queues to the state thread ------------------------------------- */

/* Queue e's key for the backend (shard lock held). A key whose entry is
 * gone when the writer looks is written as deleted. */
void state_mark_dirty(const char *key, int *flag)
{
    if (flag && *flag)
        return;
    if (!state_g.backend)
        return;
    char *k = strdup(key);
    if (!k)
        return;
    pthread_mutex_lock(&state_g.q_lock);
    if (state_g.dirty.n == state_g.dirty.cap) {
        size_t cap = state_g.dirty.cap ? state_g.dirty.cap * 2 : 256;
        char **v = realloc(state_g.dirty.v, cap * sizeof(*v));
        if (!v) {
            pthread_mutex_unlock(&state_g.q_lock);
            free(k);
            return;
        }
        state_g.dirty.v = v;
        state_g.dirty.cap = cap;
    }
    state_g.dirty.v[state_g.dirty.n++] = k;
    /* the first change after a quiet spell: the state thread may be in its
     * long idle sleep; wake it so the batch goes out within the period */
    if (state_g.dirty.n == 1)
        pthread_cond_signal(&state_g.q_cond);
    pthread_mutex_unlock(&state_g.q_lock);
    if (flag)
        *flag = 1;
}

struct note *state_note_new(const char *key, int found, int64_t count,
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
    n->shared = 1;
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

void state_note_free(struct note *n)
{
    free(n->data);
    free(n);
}

/* Queue a change notification when someone watches (cheap otherwise). */
void state_notify(sluice_stage *from, const char *key, int found,
                  const char *data, size_t len, uint64_t expires,
                  const char *origin)
{
    if (!__atomic_load_n(&state_g.watches, __ATOMIC_ACQUIRE))
        return;
    struct note *n = state_note_new(key, found, 0, data, len, expires, origin);
    if (!n)
        return;
    n->stage = from;
    /* a stage's own change while the backend is away has not reached the
     * fleet; a remote one (from NULL) came from it */
    n->shared = from ? state_healthy() : 1;
    pthread_mutex_lock(&state_g.q_lock);
    *state_g.notes_tail = n;
    state_g.notes_tail = &n->next;
    pthread_cond_signal(&state_g.q_cond);
    pthread_mutex_unlock(&state_g.q_lock);
}

/* Copy of the live entries under `prefix` (full key): records, and
 * counters too when asked. */
struct note *state_entries_under(const char *prefix, int counters)
{
    size_t pl = strlen(prefix);
    uint64_t wall = time_wall_ms();
    struct note *list = NULL;
    int shared = state_healthy();
    for (int i = 0; i < NSHARDS; i++) {
        struct shard *sh = &state_g.shards[i];
        pthread_mutex_lock(&sh->lock);
        for (size_t b = 0; b < sh->nb; b++)
            for (struct entry *e = sh->b[b]; e; e = e->next) {
                if ((e->is_counter && !counters) ||
                    state_entry_expired(e, wall) || strncmp(e->key, prefix, pl))
                    continue;
                struct note *n =
                    state_note_new(e->key, 1, e->count, e->data, e->len,
                                   e->expires_ms, e->origin);
                if (n) {
                    n->shared = shared;
                    n->next = list;
                    list = n;
                }
            }
        pthread_mutex_unlock(&sh->lock);
    }
    return list;
}

void state_note_deliver(const struct note *n, size_t skip, sluice_state_fn fn,
                        void *arg)
{
    sluice_state_value v = {.key = n->key + skip,
                            .found = n->found,
                            .count = n->count,
                            .data = n->data,
                            .len = n->len,
                            .expires_ms = n->expires_ms,
                            .origin = n->origin,
                            .shared = n->shared};
    fn(arg, &v);
}
