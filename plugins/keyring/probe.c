/*
 * probe.c - bringing failed keys back: when probe_interval_s is set, at
 * most once per interval a request (or /health, or GET /admin/keys) that
 * passes by starts a cheap probe (GET <upstream>/models by default) with
 * each failed key, through the host's http_probe, which runs it on a core
 * thread. A key whose probe answers 2xx is healthy again. Nothing here
 * blocks: the check is one atomic load, the start one compare-and-swap.
 */
#include "keyring.h"

#include <stdlib.h>

struct probe_job {
    struct keyring *kr;
    struct keyset *set; /* referenced until done */
    long idx;
};

static void probe_done(void *arg, int status)
{
    struct probe_job *job = arg;
    const sluice_host *H = job->kr->host;
    struct key *k = &job->set->keys[job->idx];
    if (status >= 200 && status < 300 && atomic_load(&k->state) == KEY_FAILED) {
        key_reset(k);
        kr_shared_publish(job->kr, k);
        H->log(job->kr->self, SLUICE_LOG_INFO,
               "key %s is healthy again (probe answered %d)", k->name, status);
    }
    atomic_store(&k->probing, 0);
    atomic_fetch_sub(&job->kr->probes_out, 1);
    keyset_unref(job->set);
    free(job);
}

void keyring_probe_maybe(struct keyring *kr)
{
    if ((!kr->probe && !kr->probe_up) || !kr->probe_interval_ms)
        return;
    uint64_t now = kr->now();
    uint_fast64_t due =
        atomic_load_explicit(&kr->next_probe_ms, memory_order_relaxed);
    if (now < due || !atomic_compare_exchange_strong(
                         &kr->next_probe_ms, &due, now + kr->probe_interval_ms))
        return;
    struct keyset *s = keyring_acquire(kr);
    for (size_t i = 0; i < s->n; i++) {
        struct key *k = &s->keys[i];
        int idle = 0;
        if (atomic_load(&k->state) != KEY_FAILED ||
            !atomic_compare_exchange_strong(&k->probing, &idle, 1))
            continue;
        struct probe_job *job = malloc(sizeof(*job));
        if (!job) {
            atomic_store(&k->probing, 0);
            break;
        }
        job->kr = kr;
        job->set = s;
        job->idx = (long)i;
        keyset_ref(s);
        atomic_fetch_add(&kr->probes_out, 1);
        int rc =
            kr->probe_up
                ? kr->probe_up(kr->self, kr->upstream, kr->probe_path, k->auth,
                               probe_done, job)
                : kr->probe(kr->self, kr->probe_path, k->auth, probe_done, job);
        if (rc != 0) {
            atomic_fetch_sub(&kr->probes_out, 1);
            atomic_store(&k->probing, 0);
            keyset_unref(s);
            free(job);
        }
    }
    keyset_unref(s);
}
