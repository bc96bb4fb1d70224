/*
 * keystate.c - one upstream key and its health state machine:
 *
 *   healthy --401/403, 402, quota body--> failed   (until reset/reload/probe)
 *   healthy --429--> cooling (upstream time, capped; else exponential)
 *   healthy --N consecutive 5xx/timeouts/connection errors--> cooling
 *   cooling --time up--> healthy (read lazily: nothing has to run)
 *   any --2xx--> healthy
 *
 * Transitions take the key's mutex (they are rare next to reads); selection
 * reads `state` and `cool_until` with atomics and never locks. The clock is
 * an argument, so tests drive it.
 */
#include "keyring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *key_outcome_name(enum key_outcome o)
{
    static const char *const names[OUT__N] = {"none",    "ok",         "auth",
                                              "quota",   "rate_limit", "server",
                                              "timeout", "connection"};
    return o < OUT__N ? names[o] : "none";
}

const char *key_state_name(enum key_state s)
{
    switch (s) {
    case KEY_HEALTHY:
        return "healthy";
    case KEY_COOLING:
        return "cooling";
    default:
        return "failed";
    }
}

uint64_t key_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static void key_mask(const char *secret, char *out, size_t outlen)
{
    size_t n = strlen(secret);
    if (n <= 8) {
        snprintf(out, outlen, "…");
        return;
    }
    /* "sk-…abcd": a short prefix when it is a scheme, then the last four */
    const char *dash = strchr(secret, '-');
    size_t pre = dash && dash - secret < 4 ? (size_t)(dash - secret) + 1 : 0;
    snprintf(out, outlen, "%.*s…%s", (int)pre, secret, secret + n - 4);
}

int key_init(struct key *k, const char *secret, const char *label)
{
    memset(k, 0, sizeof(*k));
    size_t n = strlen(secret);
    k->secret = strdup(secret);
    k->auth = malloc(n + 8);
    if (!k->secret || !k->auth) {
        free(k->secret);
        free(k->auth);
        k->secret = k->auth = NULL;
        return -1;
    }
    snprintf(k->auth, n + 8, "Bearer %s", secret);
    if (label && *label)
        snprintf(k->name, sizeof k->name, "%s", label);
    else
        key_mask(secret, k->name, sizeof k->name);
    k->id_hash = key_hash(secret);
    pthread_mutex_init(&k->lock, NULL);
    atomic_init(&k->state, KEY_HEALTHY);
    return 0;
}

void key_fini(struct key *k)
{
    if (!k->secret)
        return;
    /* do not leave the secret lying in freed memory */
    memset(k->secret, 0, strlen(k->secret));
    memset(k->auth, 0, strlen(k->auth));
    free(k->secret);
    free(k->auth);
    k->secret = k->auth = NULL;
    pthread_mutex_destroy(&k->lock);
}

enum key_state key_state_at(const struct key *k, uint64_t now)
{
    int s = atomic_load_explicit(&k->state, memory_order_acquire);
    if (s == KEY_COOLING &&
        now >= atomic_load_explicit(&k->cool_until, memory_order_acquire))
        return KEY_HEALTHY;
    return (enum key_state)s;
}

int key_available(const struct key *k, uint64_t now)
{
    return key_state_at(k, now) == KEY_HEALTHY;
}

/* Cool until now + d, keeping a later deadline already set. Locked. */
static void key_cool(struct key *k, uint64_t now, uint64_t d, int rate)
{
    uint64_t until = now + d;
    int s = atomic_load(&k->state);
    if (s == KEY_FAILED)
        return; /* failed outranks cooling */
    if (s == KEY_COOLING && atomic_load(&k->cool_until) > until)
        until = atomic_load(&k->cool_until);
    atomic_store(&k->cool_until, until);
    atomic_store(&k->cool_rate, rate);
    atomic_store_explicit(&k->state, KEY_COOLING, memory_order_release);
}

static uint64_t key_backoff(struct key *k, const struct key_policy *p)
{
    uint64_t d = p->cooldown_base_ms;
    for (uint32_t i = 0; i < k->cool_streak && d < p->cooldown_max_ms; i++)
        d *= 2;
    if (d > p->cooldown_max_ms)
        d = p->cooldown_max_ms;
    if (k->cool_streak < 32)
        k->cool_streak++;
    return d;
}

void key_record(struct key *k, const struct key_policy *p, enum key_outcome o,
                uint64_t retry_hint_ms, uint64_t now, const char *why)
{
    if (o == OUT_NONE)
        return;
    if (o == OUT_OK)
        atomic_fetch_add(&k->successes, 1);
    else
        atomic_fetch_add(&k->failures[o], 1);

    /* fast path: a success on a healthy key with nothing to clear */
    if (o == OUT_OK && atomic_load(&k->state) == KEY_HEALTHY &&
        k->consecutive == 0 && k->cool_streak == 0)
        return;

    pthread_mutex_lock(&k->lock);
    if (o != OUT_OK && why)
        snprintf(k->last_error, sizeof k->last_error, "%s", why);
    switch (o) {
    case OUT_OK:
        k->consecutive = 0;
        k->cool_streak = 0;
        atomic_store(&k->state, KEY_HEALTHY);
        break;
    case OUT_AUTH:
    case OUT_QUOTA:
        k->consecutive = 0;
        atomic_store(&k->state, KEY_FAILED);
        break;
    case OUT_RATE:
        if (retry_hint_ms == RA_NONE) {
            key_cool(k, now, key_backoff(k, p), 1);
        } else if (retry_hint_ms) {
            uint64_t d = retry_hint_ms < p->max_cooldown_ms
                             ? retry_hint_ms
                             : p->max_cooldown_ms;
            key_cool(k, now, d, 1);
        } /* else "retry now": the upstream says the key is usable */
        break;
    case OUT_SERVER:
    case OUT_TIMEOUT:
    case OUT_CONN:
        if (++k->consecutive >= p->failure_threshold) {
            k->consecutive = 0;
            key_cool(k, now, key_backoff(k, p), 0);
        }
        break;
    default:
        break;
    }
    pthread_mutex_unlock(&k->lock);
}

void key_reset(struct key *k)
{
    pthread_mutex_lock(&k->lock);
    k->consecutive = 0;
    k->cool_streak = 0;
    atomic_store(&k->cool_until, 0);
    atomic_store(&k->state, KEY_HEALTHY);
    pthread_mutex_unlock(&k->lock);
}

void key_set_state(struct key *k, enum key_state s, uint64_t until)
{
    pthread_mutex_lock(&k->lock);
    atomic_store(&k->cool_until, until);
    atomic_store(&k->state, s);
    pthread_mutex_unlock(&k->lock);
}

void key_carry(struct key *k, struct key *from)
{
    pthread_mutex_lock(&from->lock);
    k->consecutive = from->consecutive;
    k->cool_streak = from->cool_streak;
    memcpy(k->last_error, from->last_error, sizeof k->last_error);
    atomic_store(&k->cool_until, atomic_load(&from->cool_until));
    atomic_store(&k->state, atomic_load(&from->state));
    pthread_mutex_unlock(&from->lock);
    atomic_store(&k->requests, atomic_load(&from->requests));
    atomic_store(&k->successes, atomic_load(&from->successes));
    for (int i = 0; i < OUT__N; i++)
        atomic_store(&k->failures[i], atomic_load(&from->failures[i]));
}

void key_last_error(struct key *k, char *out, size_t outlen)
{
    pthread_mutex_lock(&k->lock);
    snprintf(out, outlen, "%s", k->last_error);
    pthread_mutex_unlock(&k->lock);
}
