/*
 * keyset.c - an immutable, refcounted array of keys and the selection over
 * it. A reload builds a new set and swaps the keyring's pointer; requests
 * that picked from the old set hold a reference and finish on their key.
 *
 * Selection is lock-free: round-robin takes tickets from an atomic cursor
 * until one names an available key (then one ordered pass); least_inflight
 * scans all keys from the same rotating start and takes the one with the
 * fewest requests in flight.
 */
#include "keyring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct keyset *keyset_new(size_t n)
{
    struct keyset *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->keys = calloc(n ? n : 1, sizeof(*s->keys));
    if (!s->keys) {
        free(s);
        return NULL;
    }
    s->n = n;
    atomic_init(&s->refs, 1);
    return s;
}

void keyset_ref(struct keyset *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void keyset_unref(struct keyset *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < s->n; i++)
        key_fini(&s->keys[i]);
    free(s->keys);
    free(s);
}

long keyset_find(const struct keyset *s, const char *secret)
{
    for (size_t i = 0; s && i < s->n; i++)
        if (s->keys[i].secret && !strcmp(s->keys[i].secret, secret))
            return (long)i;
    return -1;
}

static long pick_round_robin(struct keyset *s, long avoid, uint64_t now)
{
    long fallback = -1;
    /* Each try takes a fresh ticket, so an unavailable key's turns are
     * spread over the others instead of all going to its neighbour. */
    for (size_t t = 0; t < s->n; t++) {
        size_t j = (size_t)(atomic_fetch_add_explicit(&s->cursor, 1,
                                                      memory_order_relaxed) %
                            s->n);
        if (!key_available(&s->keys[j], now))
            continue;
        if ((long)j != avoid)
            return (long)j;
        fallback = (long)j;
    }
    /* many keys out: one ordered pass finds any that is left */
    for (size_t j = 0; j < s->n; j++) {
        if (!key_available(&s->keys[j], now))
            continue;
        if ((long)j != avoid)
            return (long)j;
        fallback = (long)j;
    }
    return fallback;
}

static long pick_least_inflight(struct keyset *s, long avoid, uint64_t now)
{
    size_t start = (size_t)(atomic_fetch_add_explicit(&s->cursor, 1,
                                                      memory_order_relaxed) %
                            s->n);
    long best = -1, fallback = -1;
    int best_load = 0;
    for (size_t i = 0; i < s->n; i++) {
        size_t j = (start + i) % s->n;
        if (!key_available(&s->keys[j], now))
            continue;
        if ((long)j == avoid) {
            fallback = (long)j;
            continue;
        }
        int load =
            atomic_load_explicit(&s->keys[j].inflight, memory_order_relaxed);
        if (best < 0 || load < best_load) {
            best = (long)j;
            best_load = load;
        }
    }
    return best >= 0 ? best : fallback;
}

long keyset_pick(struct keyset *s, enum key_strategy strat, long avoid,
                 uint64_t now)
{
    if (!s || !s->n)
        return -1;
    long i = strat == STRAT_LEAST_INFLIGHT ? pick_least_inflight(s, avoid, now)
                                           : pick_round_robin(s, avoid, now);
    if (i >= 0)
        atomic_fetch_add_explicit(&s->keys[i].inflight, 1,
                                  memory_order_relaxed);
    return i;
}

int keyset_all_rate_limited(const struct keyset *s, uint64_t now)
{
    for (size_t i = 0; s && i < s->n; i++) {
        const struct key *k = &s->keys[i];
        if (key_state_at(k, now) != KEY_COOLING || !atomic_load(&k->cool_rate))
            return 0;
    }
    return s && s->n > 0;
}

uint64_t keyset_next_back(const struct keyset *s, uint64_t now)
{
    uint64_t best = 0;
    for (size_t i = 0; s && i < s->n; i++) {
        const struct key *k = &s->keys[i];
        if (atomic_load(&k->state) != KEY_COOLING)
            continue;
        uint64_t u = atomic_load(&k->cool_until);
        if (u <= now)
            return now;
        if (!best || u < best)
            best = u;
    }
    return best;
}

struct keyset *keyset_from_file(const struct keyfile *kf, struct keyset *old,
                                char *err, size_t errlen)
{
    struct keyset *s = keyset_new(kf->n);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < kf->n; i++) {
        if (key_init(&s->keys[i], kf->v[i].secret, kf->v[i].label) != 0) {
            s->n = i; /* free what was built */
            keyset_unref(s);
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        long o = keyset_find(old, kf->v[i].secret);
        if (o >= 0)
            key_carry(&s->keys[i], &old->keys[o]);
    }
    return s;
}
