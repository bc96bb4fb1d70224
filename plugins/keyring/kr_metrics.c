/*
 * kr_metrics.c - the keyring's series on /metrics (sdk/README.md, "What the
 * bundled stages should publish"): per key, labelled by its pool's
 * upstream (a name from the config: bounded) and the key's name (its
 * label or "sk-…abcd", never the key), requests, successes, failures by
 * reason and in-flight attempts from the hooks; state and cooldown left
 * refreshed at scrape time (collect).
 *
 * Families are registered in init and live for the process (a reload gets
 * them back). Series are never removed: a key that leaves on reload-keys
 * gets its state and cooldown gauges set to 0 (keyring_reload calls
 * kr_metrics_forget; collect checks the set did not change under it), its
 * counters keep their totals, its in-flight gauge drains to 0 as its
 * requests end. The same for a key that leaves with a pipeline reload (a
 * new instance, another keys_file, or no keyring at all): when an instance
 * is destroyed, its keys that no other live instance holds are zeroed.
 * Every call is skipped when the host has no metrics.
 */
#include "keyring.h"

#include <stdlib.h>
#include <string.h>

static const char *const state_names[3] = {"healthy", "cooling", "failed"};

/* The instances alive in this process (a reload's new one is initialised
 * before the old one is destroyed). Touched in init and destroy only. */
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static struct keyring *live_head;

static sluice_metric *reg(struct keyring *kr, sluice_metric_type t,
                          const char *name, const char *help,
                          const char *labels)
{
    const sluice_host *H = kr->host;
    return H->metric_register(kr->self, t, name, help, labels, NULL, 0);
}

void kr_metrics_register(struct keyring *kr)
{
    const sluice_host *H = kr->host;
    const sluice_metric_type C = SLUICE_METRIC_COUNTER, G = SLUICE_METRIC_GAUGE;
    if (!SLUICE_HOST_HAS(H, metric_observe) || !H->metric_register ||
        !H->metric_add || !H->metric_set)
        return;
    kr->m.requests = reg(kr, C, "sluice_key_requests_total",
                         "Upstream attempts made with each key (label or "
                         "sk-...abcd).",
                         "upstream,key");
    kr->m.successes = reg(kr, C, "sluice_key_successes_total",
                          "Attempts with each key the upstream answered "
                          "with a 2xx.",
                          "upstream,key");
    kr->m.failures = reg(kr, C, "sluice_key_failures_total",
                         "Attempts with each key that count against it, by "
                         "reason (auth, quota, http_429, http_5xx, timeout, "
                         "connect).",
                         "upstream,key,reason");
    kr->m.state = reg(kr, G, "sluice_key_state",
                      "State of each key: 1 for the current state "
                      "(healthy, cooling, failed), 0 for the others.",
                      "upstream,key,state");
    kr->m.cooldown = reg(kr, G, "sluice_key_cooldown_seconds",
                         "Seconds until a cooling key is used again (0 "
                         "when not cooling).",
                         "upstream,key");
    kr->m.inflight =
        reg(kr, G, "sluice_key_in_flight",
            "Requests holding each key right now.", "upstream,key");
    if (!kr->m.state && !kr->m.cooldown)
        return;
    pthread_mutex_lock(&live_mu);
    kr->m_live_next = live_head;
    live_head = kr;
    kr->m_live = 1;
    pthread_mutex_unlock(&live_mu);
}

/* Reason label of an outcome that counts against a key; NULL otherwise. */
static const char *failure_reason(enum key_outcome o)
{
    switch (o) {
    case OUT_AUTH:
        return "auth";
    case OUT_QUOTA:
        return "quota";
    case OUT_RATE:
        return "http_429";
    case OUT_SERVER:
        return "http_5xx";
    case OUT_TIMEOUT:
        return "timeout";
    case OUT_CONN:
        return "connect";
    default:
        return NULL;
    }
}

void kr_metrics_attempt(struct keyring *kr, const struct key *k)
{
    const sluice_host *H = kr->host;
    if (kr->m.requests)
        H->metric_add(kr->m.requests,
                      (const char *const[]){kr->upstream, k->name}, 1);
}

void kr_metrics_outcome(struct keyring *kr, const struct key *k,
                        enum key_outcome o)
{
    const sluice_host *H = kr->host;
    if (o == OUT_OK && kr->m.successes) {
        H->metric_add(kr->m.successes,
                      (const char *const[]){kr->upstream, k->name}, 1);
        return;
    }
    const char *why = failure_reason(o);
    if (why && kr->m.failures)
        H->metric_add(kr->m.failures,
                      (const char *const[]){kr->upstream, k->name, why}, 1);
}

void kr_metrics_inflight(struct keyring *kr, const struct key *k, int delta)
{
    const sluice_host *H = kr->host;
    if (kr->m.inflight)
        H->metric_add(kr->m.inflight,
                      (const char *const[]){kr->upstream, k->name},
                      (double)delta);
}

static void key_gauges(struct keyring *kr, const char *name, int state,
                       double cooldown_s)
{
    const sluice_host *H = kr->host;
    if (kr->m.state)
        for (int i = 0; i < 3; i++)
            H->metric_set(
                kr->m.state,
                (const char *const[]){kr->upstream, name, state_names[i]},
                i == state ? 1 : 0);
    if (kr->m.cooldown)
        H->metric_set(kr->m.cooldown, (const char *const[]){kr->upstream, name},
                      cooldown_s);
}

static int set_has_name(const struct keyset *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->keys[i].name, name))
            return 1;
    return 0;
}

void kr_metrics_forget(struct keyring *kr, const struct keyset *old,
                       const struct keyset *cur)
{
    for (size_t i = 0; i < old->n; i++)
        if (!set_has_name(cur, old->keys[i].name))
            key_gauges(kr, old->keys[i].name, -1, 0);
}

static void collect_set(struct keyring *kr, const struct keyset *s,
                        uint64_t now)
{
    for (size_t i = 0; i < s->n; i++) {
        const struct key *k = &s->keys[i];
        enum key_state st = key_state_at(k, now);
        double left = 0;
        if (st == KEY_COOLING) {
            uint64_t until = atomic_load(&k->cool_until);
            left = until > now ? (double)(until - now) / 1000.0 : 0;
        }
        key_gauges(kr, k->name, (int)st, left);
    }
}

static void collect_pool(struct keyring *kr)
{
    if (!kr->m.state && !kr->m.cooldown)
        return;
    uint64_t now = kr->now();
    struct keyset *s = keyring_acquire(kr);
    collect_set(kr, s, now);
    /* a reload-keys between acquire and here may have zeroed keys that
     * left before we wrote them again: forget them once more */
    struct keyset *cur = keyring_acquire(kr);
    if (cur != s) {
        kr_metrics_forget(kr, s, cur);
        collect_set(kr, cur, now);
    }
    keyset_unref(cur);
    keyset_unref(s);
}

void kr_metrics_collect(void *instance)
{
    struct keyring *p;
    for (size_t i = 0; (p = keyring_pool_at(instance, i)); i++)
        collect_pool(p);
}

/* 1 when a live pool other than `self`, of the same upstream, holds a key
 * named `name` (the same series). Called with live_mu held. */
static int live_has_name(const struct keyring *self, const char *name)
{
    for (struct keyring *o = live_head; o; o = o->m_live_next) {
        if (o == self || strcmp(o->upstream, self->upstream))
            continue;
        struct keyset *s = keyring_acquire(o);
        int has = set_has_name(s, name);
        keyset_unref(s);
        if (has)
            return 1;
    }
    return 0;
}

void kr_metrics_unregister(struct keyring *kr)
{
    if (!kr->m_live)
        return;
    size_t n = kr->set ? kr->set->n : 0, nz = 0;
    const char **gone = calloc(n ? n : 1, sizeof *gone);
    pthread_mutex_lock(&live_mu);
    for (struct keyring **p = &live_head; *p; p = &(*p)->m_live_next)
        if (*p == kr) {
            *p = kr->m_live_next;
            break;
        }
    kr->m_live = 0;
    for (size_t i = 0; gone && i < n; i++)
        if (!live_has_name(kr, kr->set->keys[i].name))
            gone[nz++] = kr->set->keys[i].name;
    pthread_mutex_unlock(&live_mu);
    /* no lock held around the updates; the names live with kr->set */
    for (size_t i = 0; i < nz; i++)
        key_gauges(kr, gone[i], -1, 0);
    free(gone);
}
