/*
 * keyring.c - the keyring stage: holds the pool of upstream API keys, sets
 * "Authorization: Bearer <key>" on every upstream attempt, and tracks each
 * key's health from the outcome of the attempts made with it.
 *
 *   on_attempt   pick an available key (round-robin or least_inflight);
 *                honour the retry stage's "keyring.want" = same|other;
 *                none available: 503 all_keys_unavailable + Retry-After,
 *                or (wait_for_key_ms) RETRY until the first key is back
 *   on_response  classify the outcome and update the key's state
 *   on_complete  release the pick (in-flight count, key-set reference)
 *   collect      refresh the per-key state and cooldown gauges
 *
 * The key set is swapped whole on reload-keys (keyset.c); a request keeps a
 * reference to the set it picked from, so it finishes on its key. Admin
 * actions and /health status are in admin.c, export/import in state.c,
 * probes of failed keys in probe.c, /metrics series in kr_metrics.c.
 *
 * Config: keys_file, strategy (round_robin | least_inflight),
 * failure_threshold, cooldown_base_s, cooldown_cap_s, max_cooldown_s,
 * wait_for_key_ms, probe_interval_s, probe_path. See README.md.
 */
#include "keyring.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a request holds in its local slot. */
struct kr_pick {
    struct keyring *kr;  /* the pool of the last pick (its upstream's) */
    struct keyset *set;  /* referenced; NULL before the first pick */
    long idx;            /* index in set, -1 none */
    uint64_t wait_start; /* when waiting for a key began (0 = not) */
    int heap;            /* calloc'd (a core without req_alloc): freed in
                            on_complete; else the request's, freed with it */
};

struct keyset *keyring_acquire(struct keyring *kr)
{
    pthread_mutex_lock(&kr->set_lock);
    struct keyset *s = kr->set;
    keyset_ref(s);
    pthread_mutex_unlock(&kr->set_lock);
    return s;
}

void keyring_publish(struct keyring *kr, struct keyset *s)
{
    pthread_mutex_lock(&kr->set_lock);
    struct keyset *old = kr->set;
    kr->set = s;
    pthread_mutex_unlock(&kr->set_lock);
    keyset_unref(old);
}

static void keyring_warn_file(struct keyring *kr, const struct keyfile *kf)
{
    const sluice_host *H = kr->host;
    if (kf->loose_mode)
        H->log(kr->self, SLUICE_LOG_WARN,
               "keys_file %s is readable by group or others: chmod 600 it",
               kr->keys_file);
    if (kf->duplicates)
        H->log(kr->self, SLUICE_LOG_WARN,
               "keys_file %s: %zu duplicate key(s) dropped", kr->keys_file,
               kf->duplicates);
}

int keyring_reload(struct keyring *kr, size_t *added, size_t *removed,
                   size_t *kept, char *err, size_t errlen)
{
    struct keyfile kf;
    pthread_mutex_lock(&kr->reload_lock);
    if (keyfile_read(kr->keys_file, &kf, err, errlen) != 0) {
        pthread_mutex_unlock(&kr->reload_lock);
        return -1;
    }
    keyring_warn_file(kr, &kf);
    struct keyset *old = keyring_acquire(kr);
    struct keyset *s = keyset_from_file(&kf, old, err, errlen);
    keyfile_free(&kf);
    if (!s) {
        keyset_unref(old);
        pthread_mutex_unlock(&kr->reload_lock);
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++)
        k += keyset_find(old, s->keys[i].secret) >= 0;
    if (added)
        *added = s->n - k;
    if (removed)
        *removed = old->n - k;
    if (kept)
        *kept = k;
    keyset_ref(s);
    keyring_publish(kr, s);
    kr_metrics_forget(kr, old, s); /* keys that left stop reporting */
    keyset_unref(s);
    keyset_unref(old);
    pthread_mutex_unlock(&kr->reload_lock);
    return 0;
}

size_t keyring_reset_failed(struct keyring *kr)
{
    struct keyset *s = keyring_acquire(kr);
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (atomic_load(&s->keys[i].state) != KEY_HEALTHY) {
            key_reset(&s->keys[i]);
            kr_shared_publish(kr, &s->keys[i]); /* every instance */
            n++;
        }
    }
    keyset_unref(s);
    return n;
}

/* ---- init / destroy ------------------------------------------------ */

static int cfg_seconds(const sluice_host *H, const sluice_json *cfg,
                       const char *key, double def, uint64_t *out_ms, char *err,
                       size_t errlen)
{
    double v;
    if (H->cfg_real(cfg, key, def, &v) != 0 || !isfinite(v) || v < 0 ||
        v > 86400.0 * 365) {
        snprintf(err, errlen, "%s: expected a number of seconds >= 0", key);
        return -1;
    }
    *out_ms = (uint64_t)llround(v * 1000.0);
    return 0;
}

/* Read cfg into kr; absent settings take tpl's (NULL: the defaults). */
static int keyring_config(struct keyring *kr, const sluice_json *cfg,
                          const struct keyring *tpl, char *err, size_t errlen)
{
    const sluice_host *H = kr->host;
    static const char *const known[] = {"keys_file",
                                        "strategy",
                                        "failure_threshold",
                                        "cooldown_base_s",
                                        "cooldown_cap_s",
                                        "max_cooldown_s",
                                        "wait_for_key_ms",
                                        "probe_interval_s",
                                        "probe_path",
                                        "shared_state",
                                        NULL};
    const char *s;
    int64_t n;
    for (void *it = H->json_iter(cfg); it; it = H->json_iter_next(cfg, it)) {
        const char *k = H->json_iter_key(it);
        const char *const *p = known;
        while (*p && strcmp(*p, k))
            p++;
        if (!*p) {
            snprintf(err, errlen, "unknown config key '%s'", k);
            return -1;
        }
    }
    if (H->cfg_str(cfg, "keys_file", tpl ? tpl->keys_file : "data/keys.txt",
                   &s) != 0 ||
        !*s) {
        snprintf(err, errlen, "keys_file: expected a file path (string)");
        return -1;
    }
    kr->keys_file = strdup(s);
    if (H->cfg_str(cfg, "strategy",
                   tpl && tpl->strategy == STRAT_LEAST_INFLIGHT
                       ? "least_inflight"
                       : "round_robin",
                   &s) != 0 ||
        (strcmp(s, "round_robin") && strcmp(s, "least_inflight"))) {
        snprintf(err, errlen,
                 "strategy: expected round_robin or "
                 "least_inflight");
        return -1;
    }
    kr->strategy =
        strcmp(s, "least_inflight") ? STRAT_ROUND_ROBIN : STRAT_LEAST_INFLIGHT;
    if (H->cfg_int(cfg, "failure_threshold",
                   tpl ? tpl->policy.failure_threshold : 3, &n) != 0 ||
        n < 1 || n > 1000) {
        snprintf(err, errlen, "failure_threshold: expected 1..1000");
        return -1;
    }
    kr->policy.failure_threshold = (uint32_t)n;
    if (cfg_seconds(H, cfg, "cooldown_base_s",
                    tpl ? tpl->policy.cooldown_base_ms / 1000.0 : 1,
                    &kr->policy.cooldown_base_ms, err, errlen) ||
        cfg_seconds(H, cfg, "cooldown_cap_s",
                    tpl ? tpl->policy.cooldown_max_ms / 1000.0 : 60,
                    &kr->policy.cooldown_max_ms, err, errlen) ||
        cfg_seconds(H, cfg, "max_cooldown_s",
                    tpl ? tpl->policy.max_cooldown_ms / 1000.0 : 300,
                    &kr->policy.max_cooldown_ms, err, errlen) ||
        cfg_seconds(H, cfg, "probe_interval_s",
                    tpl ? tpl->probe_interval_ms / 1000.0 : 0,
                    &kr->probe_interval_ms, err, errlen))
        return -1;
    if (kr->policy.cooldown_base_ms == 0)
        kr->policy.cooldown_base_ms = 1;
    if (kr->policy.cooldown_max_ms < kr->policy.cooldown_base_ms)
        kr->policy.cooldown_max_ms = kr->policy.cooldown_base_ms;
    if (H->cfg_int(cfg, "wait_for_key_ms",
                   tpl ? (int64_t)tpl->wait_for_key_ms : 0, &n) != 0 ||
        n < 0 || n > 3600000) {
        snprintf(err, errlen, "wait_for_key_ms: expected 0..3600000");
        return -1;
    }
    kr->wait_for_key_ms = (uint64_t)n;
    if (H->cfg_bool(cfg, "shared_state", tpl ? tpl->shared : 1, &kr->shared) !=
        0) {
        snprintf(err, errlen, "shared_state: expected true or false");
        return -1;
    }
    if (H->cfg_str(cfg, "probe_path", tpl ? tpl->probe_path : "/models", &s) !=
            0 ||
        s[0] != '/') {
        snprintf(err, errlen, "probe_path: expected a path starting with /");
        return -1;
    }
    kr->probe_path = strdup(s);
    if (!kr->keys_file || !kr->probe_path) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static void keyring_free(struct keyring *kr)
{
    if (!kr)
        return;
    for (size_t i = 0; i < kr->npeers; i++)
        keyring_free(kr->peers[i]);
    free(kr->peers);
    if (kr->set)
        kr_metrics_unregister(kr);
    keyset_unref(kr->set);
    pthread_mutex_destroy(&kr->set_lock);
    pthread_mutex_destroy(&kr->reload_lock);
    free(kr->upstream);
    free(kr->first_upstream);
    free(kr->keys_file);
    free(kr->probe_path);
    free(kr);
}

static struct keyring *pool_alloc(const sluice_host *host, sluice_stage *self,
                                  const char *upstream)
{
    struct keyring *kr = calloc(1, sizeof(*kr));
    if (!kr)
        return NULL;
    kr->host = host;
    kr->self = self;
    pthread_mutex_init(&kr->set_lock, NULL);
    pthread_mutex_init(&kr->reload_lock, NULL);
    kr->now = host->now_ms;
    kr->wall = host->wall_ms;
    kr->probe = SLUICE_HOST_HAS(host, http_probe) ? host->http_probe : NULL;
    kr->upstream = strdup(upstream);
    if (!kr->upstream) {
        keyring_free(kr);
        return NULL;
    }
    return kr;
}

/* The pool of one upstream: its settings (cfg over tpl), its keys file. */
static struct keyring *pool_new(const sluice_host *host, sluice_stage *self,
                                const char *upstream, const sluice_json *cfg,
                                const struct keyring *tpl, int probes,
                                char *err, size_t errlen)
{
    const sluice_host *H = host;
    struct keyfile kf;
    struct keyring *kr = pool_alloc(host, self, upstream);
    if (!kr) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (keyring_config(kr, cfg, tpl, err, errlen) != 0)
        goto fail;
    if (keyfile_read(kr->keys_file, &kf, err, errlen) != 0)
        goto fail;
    keyring_warn_file(kr, &kf);
    kr->set = keyset_from_file(&kf, NULL, err, errlen);
    keyfile_free(&kf);
    if (!kr->set)
        goto fail;
    kr_metrics_register(kr);
    if (kr_shared_start(kr, err, errlen) != 0)
        goto fail;
    /* every upstream's own probes (ABI 1.1 upstream_probe); an older core
     * probes only the first upstream */
    if (SLUICE_HOST_HAS(host, upstream_probe) && host->upstream_probe &&
        host->upstream_count && host->upstream_count(self) > 0)
        kr->probe_up = host->upstream_probe;
    if (!kr->probe_up && probes != 1)
        kr->probe = NULL;
    if (probes == 0 && !kr->probe_up && kr->probe_interval_ms)
        H->log(self, SLUICE_LOG_WARN,
               "upstream %s: this core probes the first upstream only; its "
               "failed keys come back on reset, reload or cooldown",
               upstream);
    if (kr->probe_interval_ms && !kr->probe && !kr->probe_up && probes == 1)
        H->log(self, SLUICE_LOG_WARN,
               "probe_interval_s is set but this "
               "core cannot probe: failed keys come "
               "back only on reset or reload");
    H->log(self, SLUICE_LOG_INFO, "upstream %s: %zu keys loaded from %s (%s)",
           upstream, kr->set->n, kr->keys_file,
           kr->strategy == STRAT_ROUND_ROBIN ? "round_robin"
                                             : "least_inflight");
    return kr;
fail:
    keyring_free(kr);
    return NULL;
}

static int pool_add(struct keyring *first, struct keyring *p)
{
    struct keyring **v =
        realloc(first->peers, (first->npeers + 1) * sizeof(*v));
    if (!v)
        return -1;
    first->peers = v;
    v[first->npeers++] = p;
    return 0;
}

struct keyring *keyring_pool_at(struct keyring *kr, size_t i)
{
    if (i == 0)
        return kr;
    return i - 1 < kr->npeers ? kr->peers[i - 1] : NULL;
}

struct keyring *keyring_pool_find(struct keyring *kr, const char *upstream)
{
    struct keyring *p;
    for (size_t i = 0; (p = keyring_pool_at(kr, i)); i++)
        if (!strcmp(p->upstream, upstream))
            return p;
    return NULL;
}

/* One pool per upstream (ABI 1.1): an upstream's `keys:` mapping over this
 * stage's config; `keys: false` = no key for it; no `keys:` = the stage's
 * own keys_file. An older core, or none listed: one pool, "default". */
static int keyring_pools(const sluice_host *host, sluice_stage *self,
                         const sluice_json *config, struct keyring **out,
                         char *err, size_t errlen)
{
    const sluice_host *H = host;
    size_t n =
        SLUICE_HOST_HAS(host, upstream_at) ? host->upstream_count(self) : 0;
    const char *first =
        n ? H->json_str(H->json_get(host->upstream_at(self, 0), "name"))
          : "default";
    struct keyring *tpl = pool_alloc(host, self, "template"), *kr = NULL;
    char why[512];
    *out = NULL;
    if (!tpl || keyring_config(tpl, config, NULL, err, errlen) != 0)
        goto fail;
    if (n == 0) {
        kr = pool_new(host, self, "default", config, NULL, 1, err, errlen);
        if (!kr)
            goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        const sluice_json *u = host->upstream_at(self, i);
        const char *name = H->json_str(H->json_get(u, "name"));
        const sluice_json *keys = H->json_get(u, "keys");
        struct keyring *p;
        if (H->json_type(keys) == SLUICE_JSON_BOOL)
            continue; /* keys: false */
        if (keys)
            p = pool_new(host, self, name, keys, tpl, i == 0, why, sizeof why);
        else
            p = pool_new(host, self, name, config, NULL, i == 0, why,
                         sizeof why);
        if (!p) {
            snprintf(err, errlen, "upstream %s: %s", name, why);
            goto fail;
        }
        if (!kr)
            kr = p;
        else if (pool_add(kr, p) != 0) {
            keyring_free(p);
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    if (!kr) {
        snprintf(err, errlen,
                 "no upstream uses keys (every one has keys: "
                 "false): drop the keyring stage");
        goto fail;
    }
    kr->first_upstream = strdup(first ? first : "default");
    if (!kr->first_upstream) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    keyring_free(tpl);
    *out = kr;
    return 0;
fail:
    keyring_free(tpl);
    keyring_free(kr);
    return -1;
}

static int keyring_init(const sluice_host *host, sluice_stage *self,
                        const sluice_json *config, void **instance, char *err,
                        size_t errlen)
{
    struct keyring *kr;
    if (keyring_pools(host, self, config, &kr, err, errlen) != 0)
        return -1;
    if (keyring_admin_register(kr) != 0) {
        snprintf(err, errlen, "cannot register the admin actions");
        keyring_free(kr);
        return -1;
    }
    *instance = kr;
    return 0;
}

static void keyring_destroy(void *instance)
{
    keyring_free(instance);
}

/* ---- request hooks -------------------------------------------------- */

static void pick_release(struct keyring *kr, struct kr_pick *pk)
{
    if (pk->set && pk->idx >= 0) {
        atomic_fetch_sub(&pk->set->keys[pk->idx].inflight, 1);
        kr_metrics_inflight(kr, &pk->set->keys[pk->idx], -1);
    }
    keyset_unref(pk->set);
    pk->set = NULL;
    pk->idx = -1;
}

static void pick_use(struct keyring *kr, struct kr_pick *pk, sluice_ctx *ctx)
{
    const sluice_host *H = kr->host;
    struct key *k = &pk->set->keys[pk->idx];
    atomic_fetch_add(&k->requests, 1);
    kr_metrics_attempt(kr, k);
    H->up_header_set(ctx, "Authorization", k->auth);
    H->attr_set(ctx, "key_id", k->name);
}

/* No key is available: 429 when every key cools after the upstream's
 * 429, else 503 (failed or absent keys); now, or wait (on the core's timer) for
 * the first cooling key when it comes back within wait_for_key_ms. */
static sluice_verdict keyring_none(struct keyring *kr, sluice_ctx *ctx,
                                   struct kr_pick *pk, struct keyset *s,
                                   uint64_t now)
{
    const sluice_host *H = kr->host;
    uint64_t back = keyset_next_back(s, now);
    uint64_t wait = back > now ? back - now : (back ? 1 : 0);
    char msg[160], ra[32];
    uint64_t ra_s = back ? (wait + 999) / 1000 : kr->probe_interval_ms / 1000;
    if (back && ra_s == 0)
        ra_s = 1;
    if (back)
        snprintf(msg, sizeof msg,
                 "every upstream key is unavailable; the "
                 "first one is back in %llu s",
                 (unsigned long long)ra_s);
    else
        snprintf(msg, sizeof msg,
                 "every upstream key is unavailable "
                 "(failed: the operator must reset or "
                 "replace them)");
    if (keyset_all_rate_limited(s, now)) {
        /* the upstream's own 429s: tell the client to wait, as OpenAI does
         * (SDKs honour Retry-After on a 429, and retry a 503 early) */
        snprintf(msg, sizeof msg,
                 "Rate limit reached: the upstream rate-limited every key; "
                 "retry in %llu s",
                 (unsigned long long)ra_s);
        H->respond_error(ctx, 429, "requests", "rate_limit_exceeded", NULL,
                         msg);
    } else
        H->respond_error(ctx, 503, "server_error", "all_keys_unavailable", NULL,
                         msg);
    const char *fb = H->attr_get(ctx, "route.can_fallback");
    if (fb && !strcmp(fb, "1")) {
        /* the router has another deployment: go there instead */
        H->attr_set(ctx, "route.advance", "all_keys_unavailable");
        H->retry_after_ms(ctx, 0);
        return SLUICE_RETRY;
    }
    if (kr->wait_for_key_ms && back) {
        if (!pk->wait_start)
            pk->wait_start = now;
        if (now + wait <= pk->wait_start + kr->wait_for_key_ms) {
            H->retry_after_ms(ctx, (uint32_t)(wait ? wait : 1));
            return SLUICE_RETRY; /* the 503 stays as the fallback */
        }
    }
    if (ra_s) {
        snprintf(ra, sizeof ra, "%llu", (unsigned long long)ra_s);
        H->resp_header_add(ctx, "Retry-After", ra);
    }
    return SLUICE_RESPOND;
}

/* The pool of the upstream this attempt goes to (attribute "upstream",
 * set by a router before this stage), NULL when it takes no key. */
static struct keyring *pool_of(struct keyring *kr, sluice_ctx *ctx)
{
    const sluice_host *H = kr->host;
    const char *up = H->attr_get(ctx, "upstream");
    if (!kr->npeers && (!up || !*up || !strcmp(up, kr->upstream)))
        return kr; /* one pool: the hot path */
    return keyring_pool_find(kr, up && *up ? up : kr->first_upstream);
}

static sluice_verdict keyring_on_attempt(void *instance, sluice_ctx *ctx)
{
    const sluice_host *H = ((struct keyring *)instance)->host;
    struct keyring *kr = pool_of(instance, ctx);
    struct kr_pick *pk = H->local_get(ctx);
    const char *want = H->attr_get(ctx, "keyring.want");
    int same = want && !strcmp(want, "same");
    int other = want && !strcmp(want, "other");

    if (want) /* (after which `want` is not to be read) */
        H->attr_set(ctx, "keyring.want", "");
    if (pk && pk->kr != kr) { /* another upstream now: another pool */
        pick_release(pk->kr, pk);
        pk->kr = kr;
        same = other = 0;
    }
    if (!kr) {
        H->attr_set(ctx, "key_id", "");
        return SLUICE_CONTINUE; /* an upstream with keys: false */
    }
    uint64_t now = kr->now();

    keyring_probe_maybe(kr);
    if (!pk) {
        int heap = !SLUICE_HOST_HAS(H, req_alloc);
        pk = heap ? calloc(1, sizeof(*pk)) : H->req_alloc(ctx, sizeof(*pk));
        if (!pk)
            return SLUICE_ERROR;
        pk->heap = heap;
        pk->idx = -1;
        pk->kr = kr;
        H->local_set(ctx, pk);
    }
    struct keyset *s = keyring_acquire(kr);
    if (same && pk->idx >= 0) {
        /* the same key, if it is still in the pool and available (a
         * reload in between: its record in the new set) */
        long j = pk->set == s ? pk->idx
                              : keyset_find(s, pk->set->keys[pk->idx].secret);
        if (j >= 0 && key_available(&s->keys[j], now)) {
            if (pk->set != s) {
                atomic_fetch_add(&s->keys[j].inflight, 1);
                kr_metrics_inflight(kr, &s->keys[j], 1);
                pick_release(kr, pk);
                keyset_ref(s);
                pk->set = s;
                pk->idx = j;
            }
            keyset_unref(s);
            pick_use(kr, pk, ctx);
            return SLUICE_CONTINUE;
        }
    }
    long avoid = -1;
    if (other && pk->idx >= 0)
        avoid = pk->set == s ? pk->idx
                             : keyset_find(s, pk->set->keys[pk->idx].secret);
    long i = keyset_pick(s, kr->strategy, avoid, now);
    pick_release(kr, pk);
    if (i < 0) {
        sluice_verdict v = keyring_none(kr, ctx, pk, s, now);
        keyset_unref(s);
        return v;
    }
    pk->set = s; /* our reference */
    pk->idx = i;
    pk->wait_start = 0;
    kr_metrics_inflight(kr, &s->keys[i], 1);
    pick_use(kr, pk, ctx);
    return SLUICE_CONTINUE;
}

/* ra_header_fn's argument: the host and the request. */
struct resp_arg {
    const sluice_host *host;
    sluice_ctx *ctx;
};

static const char *resp_header_get(void *arg, const char *name)
{
    const struct resp_arg *ra = arg;
    return ra->host->resp_header(ra->ctx, name);
}

static sluice_verdict keyring_on_response(void *instance, sluice_ctx *ctx)
{
    const sluice_host *H = ((struct keyring *)instance)->host;
    struct kr_pick *pk = H->local_get(ctx);
    size_t blen = 0;
    char why[96];
    (void)instance;
    if (!pk || pk->idx < 0 || !pk->kr)
        return SLUICE_CONTINUE;
    struct keyring *kr = pk->kr;
    struct key *k = &pk->set->keys[pk->idx];
    int status = H->resp_status(ctx);
    const char *body = H->resp_body(ctx, &blen);
    sluice_attempt_result res = H->attempt_result(ctx);
    /* a 2xx stream is judged on its headers, before the transfer ends
     * (result still NONE): the upstream took the key */
    if (res == SLUICE_ATTEMPT_NONE && status >= 200 && status < 300)
        res = SLUICE_ATTEMPT_HTTP;
    enum key_outcome o = classify_outcome(res, status, body, blen);
    uint64_t hint = RA_NONE;
    if (o == OUT_RATE)
        hint = ra_cooldown_ms(resp_header_get, &(struct resp_arg){H, ctx},
                              kr->wall());
    classify_describe(o, status, why, sizeof why);
    enum key_state before = key_state_at(k, kr->now());
    key_record(k, &kr->policy, o, hint, kr->now(), why);
    kr_metrics_outcome(kr, k, o);
    enum key_state after = key_state_at(k, kr->now());
    if (after != before || after == KEY_COOLING) /* a deadline may move */
        kr_shared_publish(kr, k);
    if (after != before && after != KEY_HEALTHY)
        H->log(kr->self, SLUICE_LOG_WARN, "key %s is now %s (%s)", k->name,
               key_state_name(after), why);
    else if (after != before)
        H->log(kr->self, SLUICE_LOG_INFO, "key %s is healthy again", k->name);
    return SLUICE_CONTINUE;
}

/* A committed stream was judged on its headers (OK); one that broke
 * afterwards (reset, timeout, cut mid-event) is that attempt's outcome too. */
static void keyring_stream_broke(struct keyring *kr, struct kr_pick *pk,
                                 sluice_ctx *ctx)
{
    const sluice_host *H = kr->host;
    sluice_attempt_result res = H->attempt_result(ctx);
    int status = H->resp_status(ctx);
    if (!pk->set || pk->idx < 0 || !H->req_stream(ctx) || status < 200 ||
        status >= 300 ||
        (res != SLUICE_ATTEMPT_RESET && res != SLUICE_ATTEMPT_TIMEOUT))
        return;
    struct key *k = &pk->set->keys[pk->idx];
    enum key_outcome o = classify_outcome(res, status, NULL, 0);
    key_record(k, &kr->policy, o, RA_NONE, kr->now(), "stream interrupted");
    kr_metrics_outcome(kr, k, o);
    if (key_state_at(k, kr->now()) != KEY_HEALTHY)
        kr_shared_publish(kr, k);
}

static void keyring_on_complete(void *instance, sluice_ctx *ctx)
{
    const sluice_host *H = ((struct keyring *)instance)->host;
    struct kr_pick *pk = H->local_get(ctx);
    (void)instance;
    if (!pk)
        return;
    keyring_stream_broke(pk->kr, pk, ctx);
    pick_release(pk->kr, pk);
    if (pk->heap)
        free(pk);
    H->local_set(ctx, NULL);
}

/* every route: who calls and which key it uses matters for all of them */
static const char *const keyring_routes[] = {"*", NULL};

static const sluice_plugin keyring_plugin = {
    .abi_major = SLUICE_ABI_MAJOR,
    .abi_minor = SLUICE_ABI_MINOR,
    .size = sizeof(sluice_plugin),
    .name = "keyring",
    .version = "0.2.0",
    .description = "upstream API key pool: selection, health, failover",
    .init = keyring_init,
    .destroy = keyring_destroy,
    .on_attempt = keyring_on_attempt,
    .on_response = keyring_on_response,
    .on_complete = keyring_on_complete,
    .status = keyring_status,
    .export_state = keyring_export_state,
    .import_state = keyring_import_state,
    .collect = kr_metrics_collect,
    .routes = keyring_routes,
};

SLUICE_PLUGIN_DEFINE(keyring_plugin)
