/*
 * keyring.h - internal header of the keyring stage (never installed, never
 * seen by the core): the key record and its state machine, the refcounted
 * key set, the keys-file parser, the Retry-After family parser, outcome
 * classification, and the stage instance. Each part lives in its own file;
 * the pure ones take the clock as an argument so tests can inject it.
 */
#ifndef KEYRING_H
#define KEYRING_H

#include "sluice.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* ---- key state (keystate.c) ----------------------------------------- */

enum key_state { KEY_HEALTHY = 0, KEY_COOLING = 1, KEY_FAILED = 2 };

/* Why an attempt ended, as far as the key is concerned (classify.c). */
enum key_outcome {
    OUT_NONE = 0, /* no effect on the key: client error, client gone */
    OUT_OK,       /* 2xx */
    OUT_AUTH,     /* 401/403: wrong or revoked key */
    OUT_QUOTA,    /* 402 or a body saying quota/balance is exhausted */
    OUT_RATE,     /* 429 */
    OUT_SERVER,   /* 5xx */
    OUT_TIMEOUT,  /* no answer in time */
    OUT_CONN,     /* connect / reset */
    OUT__N
};

const char *key_outcome_name(enum key_outcome o);
const char *key_state_name(enum key_state s);

struct key_policy {
    uint32_t failure_threshold; /* consecutive 5xx/timeouts before cooling */
    uint64_t cooldown_base_ms;  /* first exponential cooldown */
    uint64_t cooldown_max_ms;   /* cap of the exponential cooldown */
    uint64_t max_cooldown_ms;   /* cap of an upstream-given cooldown */
};

struct key {
    char *secret;     /* the key itself: never logged, never shown */
    char *auth;       /* "Bearer <secret>", built once */
    char name[64];    /* label, or the masked key ("sk-…abcd") */
    uint64_t id_hash; /* FNV-1a 64 of the secret: export/import matching */

    /* State: written under `lock`, read lock-free by selection. */
    pthread_mutex_t lock;
    atomic_int state;                /* enum key_state */
    atomic_uint_fast64_t cool_until; /* monotonic ms; meaningful if cooling */
    atomic_uint consecutive;         /* consecutive transient failures */
    atomic_uint cool_streak;         /* exponential cooldowns in a row */
    atomic_int cool_rate;            /* the cooldown is the upstream's 429 */
    char last_error[96];             /* short, never the key */

    atomic_int inflight;
    atomic_int probing; /* a probe with this key is outstanding */
    atomic_uint_fast64_t requests, successes;
    atomic_uint_fast64_t failures[OUT__N]; /* by outcome */
};

int key_init(struct key *k, const char *secret, const char *label);
void key_fini(struct key *k);
/* Usable at `now`: healthy, or cooling with its time up. */
int key_available(const struct key *k, uint64_t now);
/* Effective state at `now` (a cooling key whose time is up is healthy). */
enum key_state key_state_at(const struct key *k, uint64_t now);
/* Record an attempt's outcome (requests are counted at pick time).
 * retry_hint_ms: cooldown the upstream asked for (RA_NONE = none said: back
 * off exponentially; 0 = usable now: no cooldown). `why` is a short
 * text for last_error (no secrets). */
void key_record(struct key *k, const struct key_policy *p, enum key_outcome o,
                uint64_t retry_hint_ms, uint64_t now, const char *why);
/* Back to healthy (reset, successful probe). */
void key_reset(struct key *k);
/* Copy health and counters of `from` (same key, older set) into k. */
void key_carry(struct key *k, struct key *from);
/* Set state directly (import_state); until is monotonic. */
void key_set_state(struct key *k, enum key_state s, uint64_t until);
void key_last_error(struct key *k, char *out, size_t outlen);

uint64_t key_hash(const char *s);

/* ---- key set (keyset.c) --------------------------------------------- */

struct keyset {
    atomic_long refs;
    size_t n;
    struct key *keys;
    atomic_uint_fast64_t cursor; /* round-robin position */
};

struct keyset *keyset_new(size_t n); /* refs = 1, keys zeroed */
/* 1 when there are keys and every one is cooling after an upstream 429
 * (none failed, none merely absent): the client should wait, not fail. */
int keyset_all_rate_limited(const struct keyset *s, uint64_t now);
void keyset_ref(struct keyset *s);
void keyset_unref(struct keyset *s);
/* Index of a key with this secret, or -1. */
long keyset_find(const struct keyset *s, const char *secret);

enum key_strategy { STRAT_ROUND_ROBIN = 0, STRAT_LEAST_INFLIGHT = 1 };

/* Pick an available key at `now`, skipping `avoid` (index, -1 = none)
 * unless it is the only one available. Increments its inflight. Returns
 * the index or -1 when none is available. Lock-free. */
long keyset_pick(struct keyset *s, enum key_strategy strat, long avoid,
                 uint64_t now);
/* Earliest monotonic ms at which a cooling key comes back; 0 if none is
 * cooling (failed keys do not come back by themselves). */
uint64_t keyset_next_back(const struct keyset *s, uint64_t now);

/* ---- keys file (keyfile.c) ------------------------------------------ */

struct keyfile_entry {
    char *secret;
    char *label; /* may be NULL */
};

struct keyfile {
    struct keyfile_entry *v;
    size_t n;
    size_t duplicates; /* dropped */
    int loose_mode;    /* readable by group or others */
};

/* Parse keys text (one key a line, '#' comments, optional label). */
int keyfile_parse(const char *text, size_t len, struct keyfile *out, char *err,
                  size_t errlen);
/* Read and parse `path`; an empty file is an error. */
int keyfile_read(const char *path, struct keyfile *out, char *err,
                 size_t errlen);
void keyfile_free(struct keyfile *kf);
/* Build a key set from parsed entries, carrying health from `old` (may be
 * NULL) for keys present in both. */
struct keyset *keyset_from_file(const struct keyfile *kf, struct keyset *old,
                                char *err, size_t errlen);

/* ---- Retry-After family (retry_after.c) ----------------------------- */

/* Parse a duration: "1s", "6m0s", "250ms", "1.5s", "2h1m", or a bare
 * number of seconds ("2", "0.5"). Returns ms, or -1 if not a duration. */
int64_t ra_parse_duration(const char *s);
/* Parse an IMF-fixdate / RFC 850 / asctime HTTP-date into epoch ms, or -1. */
int64_t ra_parse_http_date(const char *s);
/* Cooldown the upstream asked for, in ms from now (0 = usable now, RA_NONE
 * = nothing said), from
 * retry-after-ms, Retry-After (seconds or HTTP-date, against wall_now_ms),
 * x-ratelimit-reset-requests, x-ratelimit-reset-tokens (the largest wins).
 * `get` looks a response header up (case-insensitive). */
typedef const char *(*ra_header_fn)(void *arg, const char *name);
#define RA_NONE UINT64_MAX
uint64_t ra_cooldown_ms(ra_header_fn get, void *arg, uint64_t wall_now_ms);

/* ---- outcome classification (classify.c) ---------------------------- */

enum key_outcome classify_outcome(sluice_attempt_result r, int status,
                                  const char *body, size_t body_len);
/* Short description for last_error, e.g. "429 rate limited". */
void classify_describe(enum key_outcome o, int status, char *out,
                       size_t outlen);

/* ---- the stage instance (keyring.c, admin.c, state.c, probe.c) -------- */

typedef uint64_t (*kr_clock_fn)(void);
typedef int (*kr_probe_fn)(sluice_stage *stage, const char *path,
                           const char *authorization, sluice_probe_fn done,
                           void *arg);
typedef int (*kr_probe_up_fn)(sluice_stage *stage, const char *upstream,
                              const char *path, const char *authorization,
                              sluice_probe_fn done, void *arg);

/* One key pool: the keys of one upstream. The stage instance is the first
 * pool; it holds the other upstreams' pools in `peers` (keyring.c). */
struct keyring {
    const sluice_host *host; /* the table init got: no file-scope global */
    sluice_stage *self;
    char *upstream; /* the upstream these keys are sent to */
    char *keys_file;
    enum key_strategy strategy;
    struct key_policy policy;
    uint64_t wait_for_key_ms;   /* 0: answer 503 at once */
    uint64_t probe_interval_ms; /* 0: no probes */
    char *probe_path;

    pthread_mutex_t set_lock;    /* guards `set` (the pointer, not the keys) */
    pthread_mutex_t reload_lock; /* one reload at a time */
    struct keyset *set;

    atomic_uint_fast64_t next_probe_ms;
    atomic_int probes_out;

    kr_clock_fn now;         /* monotonic ms: host->now_ms (tests inject) */
    kr_clock_fn wall;        /* wall-clock ms: host->wall_ms (tests inject) */
    kr_probe_fn probe;       /* H->http_probe, or NULL */
    kr_probe_up_fn probe_up; /* H->upstream_probe: to `upstream` itself */

    struct { /* kr_metrics.c; NULL when the host has none */
        sluice_metric *requests, *successes, *failures, *state, *cooldown,
            *inflight;
    } m;
    struct keyring *m_live_next; /* kr_metrics.c's list of live instances */
    int m_live;                  /* on that list */

    /* shared.c: health in the core's shared state (config shared_state) */
    int shared;
    int shared_replaying;  /* inside state_watch's replay at init */
    char reload_stamp[48]; /* the last fleet-wide reload-keys seen */

    /* the stage instance (first pool) only */
    struct keyring **peers; /* the other upstreams' pools */
    size_t npeers;
    char *first_upstream; /* where an attempt with no "upstream" goes */
};

/* Pool i of the stage instance kr (0: kr itself), NULL past the end. */
struct keyring *keyring_pool_at(struct keyring *kr, size_t i);
/* The pool named `upstream`, or NULL (an upstream with keys: false). */
struct keyring *keyring_pool_find(struct keyring *kr, const char *upstream);

/* The current set with a reference held (caller unrefs). */
struct keyset *keyring_acquire(struct keyring *kr);
/* Swap in a new set (takes the caller's reference); the old set is
 * unref'd. */
void keyring_publish(struct keyring *kr, struct keyset *s);
/* Re-read the keys file; on failure nothing changes and err says why.
 * added/removed/kept may be NULL. */
int keyring_reload(struct keyring *kr, size_t *added, size_t *removed,
                   size_t *kept, char *err, size_t errlen);
/* Reset every failed and cooling key; returns how many were reset. */
size_t keyring_reset_failed(struct keyring *kr);

/* admin.c */
int keyring_admin_register(struct keyring *kr);
int keyring_render_keys(struct keyring *kr, sluice_buf *out);
int keyring_status(void *instance, sluice_buf *out);

/* state.c */
int keyring_export_state(void *instance, sluice_buf *out);
int keyring_import_state(void *instance, const char *state, size_t len);

/* kr_metrics.c: per-key series on /metrics (all no-ops without metrics).
 * attempt: a key was used for an attempt; outcome: what the attempt said
 * about it; inflight: a request took (+1) or released (-1) it; forget:
 * zero the gauges of keys of `old` whose name is not in `cur`; collect:
 * the plugin's collect hook (state and cooldown gauges). */
void kr_metrics_register(struct keyring *kr);
void kr_metrics_attempt(struct keyring *kr, const struct key *k);
void kr_metrics_outcome(struct keyring *kr, const struct key *k,
                        enum key_outcome o);
void kr_metrics_inflight(struct keyring *kr, const struct key *k, int delta);
void kr_metrics_forget(struct keyring *kr, const struct keyset *old,
                       const struct keyset *cur);
void kr_metrics_collect(void *instance);
/* destroy: zero the gauges of this instance's keys no other live instance
 * holds (a pipeline reload dropped them). */
void kr_metrics_unregister(struct keyring *kr);

/* shared.c: key health shared through the core's state (ABI 1.1).
 * start: at init, watch (and apply) the pool's health records; publish:
 * after a key changed state; reload_all: ask every instance to reload its
 * keys file; changed_by: the instance that last changed k's health (into
 * out), or NULL. All no-ops when shared_state is off or the core has no
 * state API. */
int kr_shared_start(struct keyring *kr, char *err, size_t errlen);
void kr_shared_publish(struct keyring *kr, struct key *k);
void kr_shared_reload_all(struct keyring *kr);
const char *kr_shared_changed_by(struct keyring *kr, const struct key *k,
                                 char *out, size_t n);

/* probe.c: start probes of failed keys when due (never blocks). */
void keyring_probe_maybe(struct keyring *kr);

#endif
