/*
 * state.c - the state layer's life: opening the backend named by `state:`
 * (local SQLite file, Redis, memory), starting and stopping the state
 * thread, and what /health says about it. The view, the operations and
 * the thread are in the other state_*.c files (state_priv.h lists them).
 */
#include "state_priv.h"
#include "log.h"
#include "timer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

struct state_backend *state_test_backend;

struct state_layer state_g = {.q_lock = PTHREAD_MUTEX_INITIALIZER,
                              .q_cond = PTHREAD_COND_INITIALIZER,
                              .watch_lock = PTHREAD_MUTEX_INITIALIZER};

/* ---- open / close ----------------------------------------------------------
 */

int state_is_open(void)
{
    return state_g.open;
}

const char *state_instance(void)
{
    return state_g.instance;
}

int state_open(const struct state_conf *sc, const char *instance, char *err,
               size_t errlen)
{
    const char *backend = sc && sc->backend ? sc->backend : "memory";
    if (state_g.open)
        state_close();
    for (int i = 0; i < NSHARDS; i++)
        pthread_mutex_init(&state_g.shards[i].lock, NULL);
    state_g.notes_tail = &state_g.notes;
    state_g.dones_tail = &state_g.dones;
    state_g.stop = state_g.flush_now = state_g.flush_gen = state_g.flushed_gen =
        0;
    state_g.write_errors = 0;
    state_g.last_error[0] = '\0';
    state_g.backend_ok = 1;
    state_g.fail_closed = sc && sc->fail_closed;
    snprintf(state_g.instance, sizeof state_g.instance, "%s",
             instance && *instance ? instance : "sluice");
    snprintf(state_g.backend_name, sizeof state_g.backend_name, "%s", backend);
    state_g.path[0] = '\0';
    if (!strcmp(backend, "local")) {
        snprintf(state_g.path, sizeof state_g.path, "%s", sc->path);
        state_g.backend =
            state_sqlite_open(sc->path, sc->reset_on_corrupt, err, errlen);
        if (!state_g.backend)
            goto fail;
    } else if (!strcmp(backend, "test") && state_test_backend) {
        state_g.backend = state_test_backend; /* unit tests: a fake backend */
    } else if (!strcmp(backend, "redis")) {
        int degraded = 0;
        snprintf(state_g.path, sizeof state_g.path, "%s", sc->url);
        state_g.backend =
            state_redis_open(sc, state_g.instance, &degraded, err, errlen);
        if (!state_g.backend)
            goto fail;
        if (degraded) {
            if (sc->required)
                goto fail;
            log_msg(LOG_WARN, "state",
                    "starting degraded: %s (requests go on with this "
                    "instance's view; state.required: true refuses to "
                    "start instead)",
                    err);
            snprintf(state_g.last_error, sizeof state_g.last_error, "%s", err);
            state_g.backend_ok = 0;
        }
    } else if (strcmp(backend, "memory")) {
        snprintf(err, errlen, "state.backend: '%s' is not available", backend);
        goto fail;
    }
    if (!state_g.m_up) {
        char merr[128];
        state_g.m_up =
            metrics_register(SLUICE_METRIC_GAUGE, "sluice_state_backend_up",
                             "1 when the state backend (state.backend) "
                             "is usable, 0 while it is unavailable.",
                             NULL, NULL, 0, merr, sizeof merr);
        state_g.m_errors = metrics_register(
            SLUICE_METRIC_COUNTER, "sluice_state_backend_errors_total",
            "Failed writes to or checks of the state backend.", NULL, NULL, 0,
            merr, sizeof merr);
    }
    state_backend_metrics();
    state_g.open = 1;
    if (pthread_create(&state_g.thread, NULL, state_thread_main, NULL) != 0) {
        snprintf(err, errlen, "state: cannot start the state thread");
        goto fail;
    }
    state_g.thread_started = 1;
    return 0;
fail:
    state_close();
    return -1;
}

void state_close(void)
{
    if (state_g.thread_started) {
        pthread_mutex_lock(&state_g.q_lock);
        state_g.stop = 1; /* the thread writes what is pending, then exits */
        pthread_cond_broadcast(&state_g.q_cond);
        pthread_mutex_unlock(&state_g.q_lock);
        pthread_join(state_g.thread, NULL);
        state_g.thread_started = 0;
    }
    state_g.open = 0;
    if (state_g.backend)
        state_g.backend->close(state_g.backend);
    state_g.backend = NULL;
    for (int i = 0; i < NSHARDS; i++) {
        struct shard *sh = &state_g.shards[i];
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
    for (struct note *n = state_g.notes, *next; n; n = next) {
        next = n->next;
        state_note_free(n);
    }
    for (struct note *n = state_g.dones, *next; n; n = next) {
        next = n->next;
        state_note_free(n);
    }
    while (state_g.pending) { /* the workers are gone: nothing to deliver */
        struct pending *p = state_g.pending;
        state_g.pending = p->next;
        free(p);
    }
    state_g.notes = state_g.dones = NULL;
    state_g.notes_tail = &state_g.notes;
    state_g.dones_tail = &state_g.dones;
    for (size_t i = 0; i < state_g.dirty.n; i++)
        free(state_g.dirty.v[i]);
    free(state_g.dirty.v);
    state_g.dirty = (struct dirty){0};
    while (state_g.watches) {
        struct watch *w = state_g.watches;
        state_g.watches = w->next;
        free(w);
    }
}

/* ---- health ----------------------------------------------------------------
 */

int state_status(sluice_stage *stage)
{
    (void)stage; /* one layer for every stage */
    return (state_healthy() ? 0 : SLUICE_STATE_DEGRADED) |
           (state_g.fail_closed ? SLUICE_STATE_CLOSED : 0);
}

int state_healthy(void)
{
    return !state_g.open ||
           __atomic_load_n(&state_g.backend_ok, __ATOMIC_ACQUIRE);
}

void state_status_json(buf_t *out)
{
    size_t n = 0;
    for (int i = 0; i < NSHARDS; i++) {
        pthread_mutex_lock(&state_g.shards[i].lock);
        n += state_g.shards[i].n;
        pthread_mutex_unlock(&state_g.shards[i].lock);
    }
    buf_printf(out, "{\"backend\":");
    buf_json_str(out, state_g.open ? state_g.backend_name : "none");
    buf_printf(out, ",\"instance\":");
    buf_json_str(out, state_g.instance);
    buf_printf(out, ",\"on_unavailable\":\"%s\"",
               state_g.fail_closed ? "closed" : "open");
    buf_printf(out, ",\"up\":%s,\"entries\":%zu,\"write_errors\":%llu",
               state_healthy() ? "true" : "false", n, state_g.write_errors);
    if (state_g.path[0]) {
        buf_printf(out, ",\"path\":");
        buf_json_str(out, state_g.path);
    }
    if (!state_healthy()) {
        buf_printf(out, ",\"reason\":");
        buf_json_str(out, state_g.last_error);
    }
    buf_printf(out, "}");
}
