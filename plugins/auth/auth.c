/*
 * auth.c - the auth stage: who may come in, and how often.
 *
 * on_request, in this order (the first failing check answers, the upstream
 * is never called):
 *   1. the client address (X-Forwarded-For only from trusted_proxies) must
 *      lie in `allow:` when that list is given               -> 403
 *   2. "Authorization: Bearer <key>" or "x-api-key: <key>" must name a
 *      client of clients_file                                -> 401
 *   3. the model must be in the client's models= list         -> 403
 *      (checked again before each upstream attempt, since a later stage
 *      may set the model, e.g. the context stage's default_model)
 *   4. the client's request bucket (rpm=) must have a token   -> 429
 *      and, with shared_limits (the default), the client's one-minute
 *      window in the core's shared state must have room (window.h): the
 *      limit then holds across a restart and across a fleet
 * then the client's name goes into the "client" attribute. The key is
 * hashed (SHA-256) and looked up among the stored digests: see
 * clients_find() for why that lookup is safe to time. The digest comes
 * from the worker's cache of the keys it saw last when it is there
 * (keycache.h): hashed once per worker, not per request.
 *
 * Token limits (tpm=) charge the "prompt_tokens_estimate" attribute that the
 * context stage sets in its on_request. auth runs first in the pipeline, so
 * that attribute does not exist yet in auth's on_request: the charge happens
 * in on_attempt, once per request (before the first upstream attempt), or
 * already in on_request when a context stage ran before auth. A request
 * without an estimate is not charged tokens.
 *
 * The client set is swapped whole on reload (POST /admin/plugins/auth/reload)
 * under a rwlock; a broken file keeps the running set. Each client's buckets
 * have their own mutex, held for a few arithmetic operations.
 */
#include "sluice.h"

#include "bucket.h"
#include "cidr.h"
#include "clients_file.h"
#include "keycache.h"
#include "sha256.h"
#include "window.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define AUTH_FILE_MAX  (4u << 20)
#define AUTH_MINUTE_MS 60000
#define AUTH_CIDR_MAX  1024

/* local slot value: tokens already charged. Only its address is used, the
 * same for every instance: it is a mark, not state. */
static char charged_mark;

/* Or the request's own state, in its memory (req_alloc, freed with the
 * request): the token charge, and the digest of the key presented with the
 * key it was computed from. on_headers and on_request both look the key
 * up, and its SHA-256 was most of the stage's cost: on_request compares the
 * key with this copy instead of hashing it again. The request holds the key
 * in its headers anyway; this copy dies with them. */
struct req_state {
    int charged;
    size_t klen;
    uint8_t digest[AUTH_SHA256_LEN];
    char key[]; /* klen bytes */
};

struct limiter {
    pthread_mutex_t mu;
    struct bucket req, tok;
};

struct client_set {
    struct client_defs defs;
    struct limiter *lim; /* one per defs.v[i] */
};

struct auth {
    const sluice_host *host; /* the table init got: no file-scope global */
    sluice_stage *self;
    char *clients_path;
    struct cidr *allow, *proxies;
    size_t nallow, nproxies;
    pthread_rwlock_t lock; /* guards `set` (the pointer, not the buckets) */
    struct client_set *set;
    pthread_mutex_t reload_mu;
    sluice_metric *m_rejections; /* by reason; NULL: no metrics */
    int shared_limits;           /* also count limits in the shared state */
};

/* ---- client sets --------------------------------------------------------- */

static void set_free(struct client_set *s)
{
    if (!s)
        return;
    for (size_t i = 0; s->lim && i < s->defs.n; i++)
        pthread_mutex_destroy(&s->lim[i].mu);
    free(s->lim);
    clients_defs_free(&s->defs);
    free(s);
}

static long set_find_name(const struct client_set *s, const char *name)
{
    return clients_find_name(&s->defs, name);
}

/* Buckets start full, or carry the level of the same-named client of `old`
 * (so a reload neither resets nor punishes anyone). */
static struct client_set *
set_new(const struct auth *a, struct client_defs *defs, struct client_set *old)
{
    struct client_set *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->lim = calloc(defs->n, sizeof(*s->lim));
    if (!s->lim) {
        free(s);
        return NULL;
    }
    s->defs = *defs; /* taken over: the caller's copy is emptied */
    defs->v = NULL;
    defs->by_hash = NULL;
    defs->by_name = NULL;
    defs->n = 0;
    uint64_t now = a->host->now_ms();
    for (size_t i = 0; i < s->defs.n; i++) {
        struct limiter *l = &s->lim[i];
        pthread_mutex_init(&l->mu, NULL);
        bucket_init(&l->req, s->defs.v[i].rpm, AUTH_MINUTE_MS, now);
        bucket_init(&l->tok, s->defs.v[i].tpm, AUTH_MINUTE_MS, now);
        long j = old ? set_find_name(old, s->defs.v[i].name) : -1;
        if (j < 0)
            continue;
        struct limiter *o = &old->lim[j];
        pthread_mutex_lock(&o->mu);
        if (l->req.cap && o->req.cap)
            bucket_set(&l->req, bucket_level_milli(&o->req, now), now);
        if (l->tok.cap && o->tok.cap)
            bucket_set(&l->tok, bucket_level_milli(&o->tok, now), now);
        pthread_mutex_unlock(&o->mu);
    }
    return s;
}

/* Read the whole clients file (init and reload only, never per request). */
static char *file_read(struct auth *a, const char *path, size_t *len, char *err,
                       size_t errlen)
{
    const sluice_host *H = a->host;
    struct stat st;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "clients_file %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fileno(f), &st) != 0 || st.st_size > (off_t)AUTH_FILE_MAX) {
        fclose(f);
        snprintf(err, errlen, "clients_file %s: larger than 4 MiB", path);
        return NULL;
    }
    if (st.st_mode & 077)
        H->log(a->self, SLUICE_LOG_WARN,
               "clients_file %s is readable by group or others: chmod 600 "
               "it",
               path);
    char *buf = malloc((size_t)st.st_size + 1);
    size_t n = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Read and parse the file into a new set (old: buckets to carry, or NULL). */
static struct client_set *set_load(struct auth *a, struct client_set *old,
                                   char *err, size_t errlen)
{
    size_t len = 0;
    struct client_defs defs = {NULL, 0, NULL, NULL};
    char *text = file_read(a, a->clients_path, &len, err, errlen);
    if (!text)
        return NULL;
    int rc = clients_parse(text, len, a->clients_path, &defs, err, errlen);
    /* the text holds keys: wipe it before it goes back to the allocator */
    memset(text, 0, len);
    __asm__ __volatile__("" : : "r"(text) : "memory");
    free(text);
    if (rc != 0)
        return NULL;
    struct client_set *s = set_new(a, &defs, old);
    if (!s) {
        clients_defs_free(&defs);
        snprintf(err, errlen, "out of memory");
    }
    return s;
}

/* ---- the client's address ---------------------------------------------- */

/* The address the request comes from: the peer, or, when the peer is a
 * trusted proxy, the first address of X-Forwarded-For that is not a
 * trusted proxy, counting from the right. -1 when it cannot be told. */
static int client_addr(struct auth *a, sluice_ctx *ctx, struct cidr *out)
{
    const sluice_host *H = a->host;
    if (cidr_addr_parse(H->req_peer(ctx), out) != 0)
        return -1;
    if (!a->nproxies || !cidr_list_contains(a->proxies, a->nproxies, out))
        return 0;
    const char *xff = H->req_header(ctx, "X-Forwarded-For");
    if (!xff)
        return 0;
    size_t end = strlen(xff);
    for (int hops = 0; hops < 64; hops++) {
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',')
            start--;
        char item[64];
        size_t s = start, e = end;
        while (s < e && (xff[s] == ' ' || xff[s] == '\t'))
            s++;
        while (e > s && (xff[e - 1] == ' ' || xff[e - 1] == '\t'))
            e--;
        if (e - s == 0 || e - s >= sizeof item)
            return -1;
        memcpy(item, xff + s, e - s);
        item[e - s] = '\0';
        if (cidr_addr_parse(item, out) != 0)
            return -1;
        if (!cidr_list_contains(a->proxies, a->nproxies, out) || start == 0)
            return 0;
        end = start - 1;
    }
    return -1;
}

/* ---- answers ----------------------------------------------------------- */

static void fmt_duration(char *out, size_t n, uint64_t ms)
{
    if (ms < 1000)
        snprintf(out, n, "%llums", (unsigned long long)ms);
    else if (ms < 60000)
        snprintf(out, n, "%llus", (unsigned long long)((ms + 999) / 1000));
    else
        snprintf(out, n, "%llum%llus", (unsigned long long)(ms / 60000),
                 (unsigned long long)((ms % 60000 + 999) / 1000));
}

static void limit_headers(const struct auth *a, sluice_ctx *ctx,
                          const char *kind, struct bucket *b, uint64_t now)
{
    const sluice_host *H = a->host;
    char name[64], val[32];
    if (!b->cap)
        return;
    snprintf(name, sizeof name, "x-ratelimit-limit-%s", kind);
    snprintf(val, sizeof val, "%lld", (long long)b->cap);
    H->resp_header_add(ctx, name, val);
    snprintf(name, sizeof name, "x-ratelimit-remaining-%s", kind);
    snprintf(val, sizeof val, "%lld", (long long)bucket_remaining(b, now));
    H->resp_header_add(ctx, name, val);
    snprintf(name, sizeof name, "x-ratelimit-reset-%s", kind);
    fmt_duration(val, sizeof val, bucket_reset_ms(b, now));
    H->resp_header_add(ctx, name, val);
}

/* 429 for client i; `kind` is "requests" or "tokens". Called with the
 * client's limiter locked. */
static sluice_verdict too_many(const struct auth *a, sluice_ctx *ctx,
                               const struct client_def *c, struct limiter *l,
                               const char *kind, uint64_t wait_ms, uint64_t now)
{
    const sluice_host *H = a->host;
    char msg[256], ra[32];
    if (wait_ms == UINT64_MAX) {
        snprintf(msg, sizeof msg,
                 "Request too large for client %s: the estimated prompt "
                 "tokens exceed its limit of %lld tokens per minute",
                 c->name, (long long)c->tpm);
        H->respond_error(ctx, 429, kind, "rate_limit_exceeded", NULL, msg);
    } else {
        snprintf(msg, sizeof msg,
                 "Rate limit reached for client %s on %s per minute: "
                 "limit %lld. Please try again in %llu ms.",
                 c->name, kind, (long long)(kind[0] == 'r' ? c->rpm : c->tpm),
                 (unsigned long long)wait_ms);
        H->respond_error(ctx, 429, kind, "rate_limit_exceeded", NULL, msg);
        snprintf(ra, sizeof ra, "%llu",
                 (unsigned long long)((wait_ms + 999) / 1000));
        H->resp_header_add(ctx, "Retry-After", ra);
    }
    limit_headers(a, ctx, "requests", &l->req, now);
    limit_headers(a, ctx, "tokens", &l->tok, now);
    return SLUICE_RESPOND;
}

/* The key the client presented, or NULL. */
static const char *presented_key(const struct auth *a, sluice_ctx *ctx)
{
    const sluice_host *H = a->host;
    const char *h = H->req_header(ctx, "Authorization");
    if (h) {
        while (*h == ' ')
            h++;
        if (strncasecmp(h, "Bearer ", 7))
            return NULL;
        h += 7;
        while (*h == ' ')
            h++;
        return *h ? h : NULL;
    }
    h = H->req_header(ctx, "x-api-key");
    return h && *h ? h : NULL;
}

/* ---- hooks ----------------------------------------------------------- */

/* The request's state, NULL when there is none (or only the mark). */
static struct req_state *req_state_get(const sluice_host *H, sluice_ctx *ctx)
{
    void *p = H->local_get(ctx);
    return p == &charged_mark ? NULL : p;
}

static int tokens_charged(const sluice_host *H, sluice_ctx *ctx)
{
    void *p = H->local_get(ctx);
    return p == &charged_mark || (p && ((struct req_state *)p)->charged);
}

static void tokens_mark_charged(const sluice_host *H, sluice_ctx *ctx)
{
    struct req_state *st = req_state_get(H, ctx);
    if (st)
        st->charged = 1;
    else
        H->local_set(ctx, &charged_mark);
}

/* The client index of the key presented (-1 when none or unknown), its
 * digest computed at most once per request. Called with the set
 * read-locked. */
static long key_find(struct auth *a, sluice_ctx *ctx,
                     const struct client_set *s, const char *key)
{
    const sluice_host *H = a->host;
    size_t klen = key ? strlen(key) : 0;
    if (!key || klen > CLIENT_KEY_MAX)
        return -1;
    uint8_t h[AUTH_SHA256_LEN];
    struct req_state *st = req_state_get(H, ctx);
    if (st && st->klen == klen && !memcmp(st->key, key, klen))
        return clients_find(&s->defs, st->digest);
    keycache_digest(key, klen, h);
    if (!st && !H->local_get(ctx) && SLUICE_HOST_HAS(H, req_alloc) &&
        (st = H->req_alloc(ctx, sizeof *st + klen)) != NULL) {
        st->klen = klen;
        memcpy(st->key, key, klen);
        memcpy(st->digest, h, sizeof h);
        H->local_set(ctx, st);
    }
    return clients_find(&s->defs, h);
}

/* Charge the token estimate (if any) once per request. Called with the set
 * read-locked. */
static sluice_verdict charge_tokens(struct auth *a, sluice_ctx *ctx,
                                    struct client_set *s, long i,
                                    const char **reason)
{
    const sluice_host *H = a->host;
    const char *est = H->attr_get(ctx, "prompt_tokens_estimate");
    if (!est || tokens_charged(H, ctx))
        return SLUICE_CONTINUE;
    tokens_mark_charged(H, ctx);
    struct limiter *l = &s->lim[i];
    if (!l->tok.cap)
        return SLUICE_CONTINUE;
    char *end;
    long long n = strtoll(est, &end, 10);
    if (end == est || n <= 0)
        return SLUICE_CONTINUE;
    uint64_t now = H->now_ms(), wait = 0;
    sluice_verdict v = SLUICE_CONTINUE;
    const struct client_def *c = &s->defs.v[i];
    pthread_mutex_lock(&l->mu);
    if (bucket_take(&l->tok, n, now, &wait) != 0 ||
        (a->shared_limits && n <= c->tpm &&
         window_take(H, a->self, ctx, c->name, "tokens", c->tpm, n,
                     H->wall_ms(), &wait) != 0)) {
        v = too_many(a, ctx, c, l, "tokens", wait, now);
        *reason = "rate_limited";
    }
    pthread_mutex_unlock(&l->mu);
    return v;
}

/* 1 (and the 403 set) when the client may not use the request's model. */
static int model_refused(const struct auth *a, sluice_ctx *ctx,
                         const struct client_def *c)
{
    const sluice_host *H = a->host;
    const char *model = H->req_model(ctx);
    if (client_model_allowed(c, model))
        return 0;
    char msg[400];
    snprintf(msg, sizeof msg,
             "client %s is not allowed to use the model '%.200s'", c->name,
             model);
    H->respond_error(ctx, 403, "invalid_request_error", "model_not_allowed",
                     "model", msg);
    return 1;
}

/* 1 when c's limits are counted in the shared state, the shared backend is
 * away and the operator chose to refuse then (state.on_unavailable:
 * closed) rather than judge on this instance's view alone. */
static int limits_unavailable(const struct auth *a, const struct client_def *c)
{
    const sluice_host *H = a->host;
    const int closed = SLUICE_STATE_DEGRADED | SLUICE_STATE_CLOSED;
    return a->shared_limits && (c->rpm > 0 || c->tpm > 0) &&
           SLUICE_HOST_HAS(H, state_status) &&
           (H->state_status(a->self) & closed) == closed;
}

/* On a refusal, *reason is its label on /metrics (counted by the caller,
 * outside the locks). */
/* The 401 for a missing or unknown key (never echoed whole). */
static sluice_verdict refuse_key(struct auth *a, sluice_ctx *ctx,
                                 const char *key, const char **reason)
{
    const sluice_host *H = a->host;
    char masked[32];
    H->log(a->self, SLUICE_LOG_INFO, "401 for %s from %s: %s", H->req_id(ctx),
           H->req_peer(ctx),
           key ? H->mask_secret(key, masked, sizeof masked) : "no key");
    H->respond_error(ctx, 401, "invalid_request_error", "invalid_api_key", NULL,
                     key ? "Incorrect API key provided."
                         : "You didn't provide an API key. Send it as "
                           "'Authorization: Bearer <key>' or "
                           "'x-api-key: <key>'.");
    *reason = "invalid_api_key";
    return SLUICE_RESPOND;
}

static sluice_verdict check_client(struct auth *a, sluice_ctx *ctx,
                                   struct client_set *s, const char **reason)
{
    const sluice_host *H = a->host;
    const char *key = presented_key(a, ctx);
    long i = key_find(a, ctx, s, key);
    if (i < 0)
        return refuse_key(a, ctx, key, reason);
    const struct client_def *c = &s->defs.v[i];
    /* no model yet: a later stage may set the default; on_attempt checks */
    if (*H->req_model(ctx) && model_refused(a, ctx, c)) {
        *reason = "model_not_allowed";
        return SLUICE_RESPOND;
    }
    if (limits_unavailable(a, c)) {
        H->respond_error(ctx, 503, "server_error", "rate_limits_unavailable",
                         NULL,
                         "Rate limits cannot be checked right now (the "
                         "shared state is unavailable). Please retry.");
        *reason = "state_unavailable";
        return SLUICE_RESPOND;
    }
    struct limiter *l = &s->lim[i];
    if (l->req.cap) {
        uint64_t now = H->now_ms(), wait = 0;
        sluice_verdict v = SLUICE_CONTINUE;
        pthread_mutex_lock(&l->mu);
        if (bucket_take(&l->req, 1, now, &wait) != 0 ||
            (a->shared_limits &&
             window_take(H, a->self, ctx, c->name, "requests", c->rpm, 1,
                         H->wall_ms(), &wait) != 0))
            v = too_many(a, ctx, c, l, "requests", wait, now);
        pthread_mutex_unlock(&l->mu);
        if (v != SLUICE_CONTINUE) {
            *reason = "rate_limited";
            return v;
        }
    }
    H->attr_set(ctx, "client", c->name);
    for (int b = 0; b < 3; b++) /* for the usage stage */
        if (c->budget[b][0])
            H->attr_set(ctx, client_budget_names[b], c->budget[b]);
    return charge_tokens(a, ctx, s, i, reason);
}

static void count_rejection(struct auth *a, const char *reason)
{
    if (a->m_rejections && reason)
        a->host->metric_add(a->m_rejections, (const char *const[]){reason}, 1);
}

static sluice_verdict auth_on_request(void *instance, sluice_ctx *ctx);

/* Before the body is read: the address and the key, nothing that needs
 * the body (model, token charge) and nothing that spends (the request
 * bucket): a stranger's body is never buffered or parsed. on_request
 * checks all again with the body. */
static sluice_verdict auth_on_headers(void *instance, sluice_ctx *ctx)
{
    struct auth *a = instance;
    const char *reason = NULL;
    if (a->nallow) {
        struct cidr addr;
        if (client_addr(a, ctx, &addr) != 0 ||
            !cidr_list_contains(a->allow, a->nallow, &addr))
            return auth_on_request(instance, ctx); /* the 403 */
    }
    const char *key = presented_key(a, ctx);
    pthread_rwlock_rdlock(&a->lock);
    long i = key_find(a, ctx, a->set, key);
    pthread_rwlock_unlock(&a->lock);
    if (i >= 0)
        return SLUICE_CONTINUE;
    sluice_verdict v = refuse_key(a, ctx, key, &reason);
    count_rejection(a, reason);
    return v;
}

static sluice_verdict auth_on_request(void *instance, sluice_ctx *ctx)
{
    struct auth *a = instance;
    const sluice_host *H = a->host;
    const char *reason = NULL;
    if (a->nallow) {
        struct cidr addr;
        if (client_addr(a, ctx, &addr) != 0 ||
            !cidr_list_contains(a->allow, a->nallow, &addr)) {
            H->log(a->self, SLUICE_LOG_INFO,
                   "403 for %s: address %s not in the allow list",
                   H->req_id(ctx), H->req_peer(ctx));
            H->respond_error(ctx, 403, "invalid_request_error",
                             "ip_not_allowed", NULL,
                             "requests from your address are not allowed");
            count_rejection(a, "ip_not_allowed");
            return SLUICE_RESPOND;
        }
    }
    pthread_rwlock_rdlock(&a->lock);
    sluice_verdict v = check_client(a, ctx, a->set, &reason);
    pthread_rwlock_unlock(&a->lock);
    count_rejection(a, reason);
    return v;
}

/* Before each upstream attempt: the model again (a later stage's
 * on_request may have set or changed it, e.g. the context stage's default
 * model), and the token charge once the estimate exists. */
static sluice_verdict auth_on_attempt(void *instance, sluice_ctx *ctx)
{
    struct auth *a = instance;
    const sluice_host *H = a->host;
    sluice_verdict v = SLUICE_CONTINUE;
    const char *reason = NULL;
    pthread_rwlock_rdlock(&a->lock);
    long i = set_find_name(a->set, H->attr_get(ctx, "client"));
    if (i >= 0 && model_refused(a, ctx, &a->set->defs.v[i])) {
        v = SLUICE_RESPOND;
        reason = "model_not_allowed";
    } else if (i >= 0) {
        v = charge_tokens(a, ctx, a->set, i, &reason);
    }
    pthread_rwlock_unlock(&a->lock);
    count_rejection(a, reason);
    return v;
}

static void auth_on_complete(void *instance, sluice_ctx *ctx)
{
    const struct auth *a = instance;
    /* the mark is static, the state in the request's memory: nothing to
     * free */
    a->host->local_set(ctx, NULL);
}

/* ---- admin, status, state ---------------------------------------------- */

static int auth_reload(void *instance, const char *method, const char *body,
                       size_t body_len, sluice_buf *out)
{
    struct auth *a = instance;
    const sluice_host *H = a->host;
    char err[512];
    (void)body;
    (void)body_len;
    if (strcmp(method, "POST")) {
        H->buf_printf(out, "{\"error\":{\"message\":\"use POST\",\"type\":"
                           "\"invalid_request_error\",\"param\":null,"
                           "\"code\":\"method_not_allowed\"}}");
        return 405;
    }
    pthread_mutex_lock(&a->reload_mu);
    pthread_rwlock_rdlock(&a->lock);
    struct client_set *s = set_load(a, a->set, err, sizeof err);
    pthread_rwlock_unlock(&a->lock);
    if (!s) {
        pthread_mutex_unlock(&a->reload_mu);
        H->log(a->self, SLUICE_LOG_ERROR,
               "reload failed, keeping the running clients: %s", err);
        H->buf_printf(out, "{\"reloaded\":false,\"error\":");
        H->buf_json_str(out, err);
        H->buf_printf(out, "}");
        return 400;
    }
    pthread_rwlock_wrlock(&a->lock);
    struct client_set *old = a->set;
    a->set = s;
    pthread_rwlock_unlock(&a->lock);
    pthread_mutex_unlock(&a->reload_mu);
    set_free(old);
    H->log(a->self, SLUICE_LOG_INFO, "reloaded %zu clients from %s", s->defs.n,
           a->clients_path);
    return H->buf_printf(out, "{\"reloaded\":true,\"clients\":%zu}",
                         s->defs.n) == 0
               ? 200
               : 500;
}

static int auth_status(void *instance, sluice_buf *out)
{
    struct auth *a = instance;
    const sluice_host *H = a->host;
    pthread_rwlock_rdlock(&a->lock);
    size_t n = a->set->defs.n;
    pthread_rwlock_unlock(&a->lock);
    return H->buf_printf(out,
                         "{\"clients\":%zu,\"allow\":%zu,"
                         "\"trusted_proxies\":%zu,\"healthy\":true}",
                         n, a->nallow, a->nproxies);
}

/* {"version":1,"clients":{"<name>":{"req":<milli>,"tok":<milli>}}}:
 * bucket levels in thousandths of a token, as of the export. */
static int auth_export_state(void *instance, sluice_buf *out)
{
    struct auth *a = instance;
    const sluice_host *H = a->host;
    uint64_t now = H->now_ms();
    int rc = H->buf_printf(out, "{\"version\":1,\"clients\":{");
    pthread_rwlock_rdlock(&a->lock);
    struct client_set *s = a->set;
    for (size_t i = 0, k = 0; i < s->defs.n; i++) {
        struct limiter *l = &s->lim[i];
        if (!l->req.cap && !l->tok.cap)
            continue;
        pthread_mutex_lock(&l->mu);
        long long rq = bucket_level_milli(&l->req, now),
                  tk = bucket_level_milli(&l->tok, now);
        pthread_mutex_unlock(&l->mu);
        rc |= H->buf_printf(out, k++ ? "," : "");
        rc |= H->buf_json_str(out, s->defs.v[i].name);
        rc |= H->buf_printf(out, ":{\"req\":%lld,\"tok\":%lld}", rq, tk);
    }
    pthread_rwlock_unlock(&a->lock);
    rc |= H->buf_printf(out, "}}");
    return rc ? -1 : 0;
}

static int auth_import_state(void *instance, const char *state, size_t len)
{
    struct auth *a = instance;
    const sluice_host *H = a->host;
    char err[128];
    sluice_json *doc = H->json_parse(state, len, err, sizeof err);
    if (!doc)
        return -1;
    if (H->json_int(H->json_get(doc, "version")) != 1) {
        H->json_free(doc);
        return -1;
    }
    const sluice_json *cl = H->json_get(doc, "clients");
    uint64_t now = H->now_ms();
    pthread_rwlock_rdlock(&a->lock);
    struct client_set *s = a->set;
    for (void *it = H->json_iter(cl); it; it = H->json_iter_next(cl, it)) {
        long i = set_find_name(s, H->json_iter_key(it));
        if (i < 0)
            continue; /* a client that is gone */
        const sluice_json *v = H->json_iter_value(it);
        struct limiter *l = &s->lim[i];
        pthread_mutex_lock(&l->mu);
        if (l->req.cap &&
            H->json_type(H->json_get(v, "req")) == SLUICE_JSON_INT)
            bucket_set(&l->req, H->json_int(H->json_get(v, "req")), now);
        if (l->tok.cap &&
            H->json_type(H->json_get(v, "tok")) == SLUICE_JSON_INT)
            bucket_set(&l->tok, H->json_int(H->json_get(v, "tok")), now);
        pthread_mutex_unlock(&l->mu);
    }
    pthread_rwlock_unlock(&a->lock);
    H->json_free(doc);
    return 0;
}

/* ---- init / destroy ------------------------------------------------------ */

/* cfg[key]: absent, or an array of CIDR strings. */
static int cidrs_read(const sluice_host *H, const sluice_json *cfg,
                      const char *key, struct cidr **out, size_t *n, char *err,
                      size_t errlen)
{
    const sluice_json *arr = H->json_get(cfg, key);
    *out = NULL;
    *n = 0;
    if (!arr || H->json_type(arr) == SLUICE_JSON_NULL)
        return 0;
    if (H->json_type(arr) != SLUICE_JSON_ARRAY ||
        H->json_size(arr) > AUTH_CIDR_MAX) {
        snprintf(err, errlen,
                 "%s: expected a list of CIDRs, e.g. "
                 "[\"10.0.0.0/8\", \"::1\"]",
                 key);
        return -1;
    }
    size_t cnt = H->json_size(arr);
    *out = calloc(cnt ? cnt : 1, sizeof(**out));
    if (!*out) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < cnt; i++) {
        const char *s = H->json_str(H->json_at(arr, i));
        if (!s || cidr_parse(s, &(*out)[i]) != 0) {
            snprintf(err, errlen,
                     "%s[%zu]: '%.64s' is not an IPv4/IPv6 "
                     "address or CIDR",
                     key, i, s ? s : "(not a string)");
            free(*out);
            *out = NULL;
            return -1;
        }
    }
    *n = cnt;
    return 0;
}

static void auth_free(struct auth *a)
{
    if (!a)
        return;
    set_free(a->set);
    free(a->allow);
    free(a->proxies);
    free(a->clients_path);
    pthread_rwlock_destroy(&a->lock);
    pthread_mutex_destroy(&a->reload_mu);
    free(a);
}

static int auth_init(const sluice_host *host, sluice_stage *self,
                     const sluice_json *config, void **instance, char *err,
                     size_t errlen)
{
    const sluice_host *H = host;
    const char *path;
    if (host->cfg_str(config, "clients_file", "data/clients.txt", &path)) {
        snprintf(err, errlen, "clients_file: expected a file path (string)");
        return -1;
    }
    for (void *it = H->json_iter(config); it;
         it = H->json_iter_next(config, it)) {
        const char *k = H->json_iter_key(it);
        if (strcmp(k, "clients_file") && strcmp(k, "allow") &&
            strcmp(k, "trusted_proxies") && strcmp(k, "shared_limits")) {
            snprintf(err, errlen,
                     "unknown option '%.64s' (expected "
                     "clients_file, allow, trusted_proxies, shared_limits)",
                     k);
            return -1;
        }
    }
    int shared;
    if (host->cfg_bool(config, "shared_limits", 1, &shared)) {
        snprintf(err, errlen, "shared_limits: expected true or false");
        return -1;
    }
    struct auth *a = calloc(1, sizeof(*a));
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    a->host = host;
    a->self = self;
    a->shared_limits = shared;
    pthread_rwlock_init(&a->lock, NULL);
    pthread_mutex_init(&a->reload_mu, NULL);
    a->clients_path = strdup(path);
    if (!a->clients_path ||
        cidrs_read(host, config, "allow", &a->allow, &a->nallow, err, errlen) ||
        cidrs_read(host, config, "trusted_proxies", &a->proxies, &a->nproxies,
                   err, errlen))
        goto fail;
    a->set = set_load(a, NULL, err, errlen);
    if (!a->set)
        goto fail;
    if (H->admin_register(self, "reload", "reload-clients", auth_reload)) {
        snprintf(err, errlen, "cannot register the reload action");
        goto fail;
    }
    H->log(self, SLUICE_LOG_INFO,
           "%zu clients loaded from %s; allow list: %zu ranges%s",
           a->set->defs.n, path, a->nallow, a->nallow ? "" : " (any address)");
    if (SLUICE_HOST_HAS(H, metric_observe) && H->metric_register &&
        H->metric_add)
        a->m_rejections = H->metric_register(
            self, SLUICE_METRIC_COUNTER, "sluice_auth_rejections_total",
            "Requests the auth stage refused, by reason (invalid_api_key, "
            "ip_not_allowed, model_not_allowed, rate_limited, "
            "state_unavailable), including "
            "refusals before an upstream attempt.",
            "reason", NULL, 0);
    *instance = a;
    return 0;
fail:
    auth_free(a);
    return -1;
}

static void auth_destroy(void *instance)
{
    auth_free(instance);
}

/* every route: who calls and which key it uses matters for all of them */
static const char *const auth_routes[] = {"*", NULL};

static const sluice_plugin auth_plugin = {
    .abi_major = SLUICE_ABI_MAJOR,
    .abi_minor = SLUICE_ABI_MINOR,
    .size = sizeof(sluice_plugin),
    .name = "auth",
    .version = "1.0.0",
    .description = "client keys, IP allow list, per-client rate limits",
    .init = auth_init,
    .destroy = auth_destroy,
    .on_request = auth_on_request,
    .on_attempt = auth_on_attempt,
    .on_complete = auth_on_complete,
    .status = auth_status,
    .export_state = auth_export_state,
    .import_state = auth_import_state,
    .routes = auth_routes,
    .on_headers = auth_on_headers,
};

SLUICE_PLUGIN_DEFINE(auth_plugin)
