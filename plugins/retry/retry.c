/*
 * retry.c - the retry stage: decides, after each upstream attempt, whether
 * another try can fix it, and how.
 *
 *   5xx, timeout, connection error  -> the same key again, up to
 *                                      max_retries, after an exponential
 *                                      back-off with full jitter
 *   401, 402, 403, 429              -> another key at once, up to
 *                                      max_key_switches
 *   any other status                -> never retried: the client gets it
 *
 * With a router (ABI 1.1): when the router marked the failure as one to
 * fall back on (attribute "route.fallback" = its class) and this stage
 * would not retry, or its budget for the deployment is spent, it answers
 * RETRY at once with "route.advance" = that class: the router moves to
 * the next deployment and both budgets start again for it. A route's own
 * budget (its `retries:`) comes as the attributes "route.max_retries" and
 * "route.max_key_switches" and replaces this stage's for its deployments.
 *
 * It tells the keyring which through the request attribute "keyring.want"
 * ("same" | "other"), read by the keyring's next on_attempt; so this stage
 * must come AFTER keyring in the pipeline (keyring's on_response records
 * the outcome first). The core caps all attempts within the upstream
 * timeout and never retries a stream whose first byte reached the client.
 *
 * Config: max_retries (env MEGALLM_MAX_RETRIES, default 3),
 * max_key_switches (env MAX_KEY_RETRIES, default 3), base_ms (250),
 * max_ms (8000), jitter (full | none).
 */
#include "backoff.h"
#include "sluice.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct retry {
    const sluice_host *host; /* the table init got: no file-scope global */
    sluice_stage *self;
    unsigned max_retries;
    unsigned max_switches;
    uint64_t base_ms, max_ms;
    int jitter;
    uint64_t (*random)(void);  /* tests inject */
    sluice_metric *m_retries;  /* retries made, by kind; NULL: no metrics */
    sluice_metric *m_give_ups; /* failures not retried: budget spent */
};

/* Per request (local slot). */
struct retry_count {
    unsigned same;     /* same-key retries made */
    unsigned switches; /* key switches made */
};

enum retry_kind { RK_NONE = 0, RK_SAME, RK_SWITCH };

static enum retry_kind retry_classify(sluice_attempt_result r, int status)
{
    switch (r) {
    case SLUICE_ATTEMPT_TIMEOUT:
    case SLUICE_ATTEMPT_CONNECT:
    case SLUICE_ATTEMPT_RESET:
        return RK_SAME;
    case SLUICE_ATTEMPT_HTTP:
        if (status == 401 || status == 402 || status == 403 || status == 429)
            return RK_SWITCH;
        if (status >= 500 && status <= 599)
            return RK_SAME;
        return RK_NONE;
    default:
        return RK_NONE; /* client gone, or nothing happened */
    }
}

/* The kind label of /metrics. */
static const char *kind_label(enum retry_kind k)
{
    return k == RK_SAME ? "same_key" : "key_switch";
}

static void retry_count_metric(const struct retry *rt, sluice_metric *m,
                               enum retry_kind k)
{
    if (m)
        rt->host->metric_add(m, (const char *const[]){kind_label(k)}, 1);
}

static void retry_metrics(struct retry *rt)
{
    const sluice_host *H = rt->host;
    rt->m_retries = H->metric_register(
        rt->self, SLUICE_METRIC_COUNTER, "sluice_retry_attempts_total",
        "Retries the retry stage asked for, by kind (same_key: after a "
        "5xx, timeout or connection error; key_switch: after 401, 402, "
        "403 or 429).",
        "kind", NULL, 0);
    rt->m_give_ups = H->metric_register(
        rt->self, SLUICE_METRIC_COUNTER, "sluice_retry_give_ups_total",
        "Retryable failures passed on to the client because that kind's "
        "budget (max_retries, max_key_switches) was spent.",
        "kind", NULL, 0);
}

static int cfg_uint(const sluice_host *H, const sluice_json *cfg,
                    const char *key, int64_t def, int64_t max, int64_t *out,
                    char *err, size_t errlen)
{
    if (H->cfg_int(cfg, key, def, out) != 0 || *out < 0 || *out > max) {
        snprintf(err, errlen, "%s: expected an integer 0..%lld", key,
                 (long long)max);
        return -1;
    }
    return 0;
}

static int retry_init(const sluice_host *host, sluice_stage *self,
                      const sluice_json *config, void **instance, char *err,
                      size_t errlen)
{
    static const char *const known[] = {
        "max_retries", "max_key_switches", "base_ms", "max_ms", "jitter", NULL};
    int64_t mr, ms, base, max;
    const char *jit;
    const sluice_host *H = host;
    for (void *it = H->json_iter(config); it;
         it = H->json_iter_next(config, it)) {
        const char *k = H->json_iter_key(it);
        const char *const *p = known;
        while (*p && strcmp(*p, k))
            p++;
        if (!*p) {
            snprintf(err, errlen, "unknown config key '%s'", k);
            return -1;
        }
    }
    if (cfg_uint(H, config, "max_retries", 3, 15, &mr, err, errlen) ||
        cfg_uint(H, config, "max_key_switches", 3, 15, &ms, err, errlen) ||
        cfg_uint(H, config, "base_ms", 250, 600000, &base, err, errlen) ||
        cfg_uint(H, config, "max_ms", 8000, 600000, &max, err, errlen))
        return -1;
    if (H->cfg_str(config, "jitter", "full", &jit) != 0 ||
        (strcmp(jit, "full") && strcmp(jit, "none"))) {
        snprintf(err, errlen, "jitter: expected full or none");
        return -1;
    }
    if (max < base) {
        snprintf(err, errlen, "max_ms (%lld) is below base_ms (%lld)",
                 (long long)max, (long long)base);
        return -1;
    }
    struct retry *rt = calloc(1, sizeof(*rt));
    if (!rt) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rt->host = host;
    rt->self = self;
    rt->max_retries = (unsigned)mr;
    rt->max_switches = (unsigned)ms;
    rt->base_ms = (uint64_t)base;
    rt->max_ms = (uint64_t)max;
    rt->jitter = !strcmp(jit, "full");
    rt->random = backoff_random;
    retry_metrics(rt);
    *instance = rt;
    return 0;
}

static void retry_destroy(void *instance)
{
    free(instance);
}

/* This deployment is done with: on to the router's next one. */
static sluice_verdict retry_fallback(struct retry *rt, sluice_ctx *ctx,
                                     struct retry_count *rc, const char *why)
{
    const sluice_host *H = rt->host;
    if (rc)
        rc->same = rc->switches = 0;
    H->attr_set(ctx, "route.advance", why);
    H->attr_set(ctx, "keyring.want", "");
    H->retry_after_ms(ctx, 0);
    H->log(rt->self, SLUICE_LOG_DEBUG,
           "%s: attempt %d failed (%s), falling back", H->req_id(ctx),
           H->attempt_no(ctx), why);
    return SLUICE_RETRY;
}

/* The budget the router set for this deployment's route (attribute
 * `name`, a route's `retries:`), else the stage's own `def`. */
static unsigned route_budget(const sluice_host *H, sluice_ctx *ctx,
                             const char *name, unsigned def)
{
    const char *v = H->attr_get(ctx, name);
    if (!v || *v < '0' || *v > '9')
        return def;
    unsigned long n = strtoul(v, NULL, 10);
    return n > 15 ? 15 : (unsigned)n;
}

static sluice_verdict retry_on_response(void *instance, sluice_ctx *ctx)
{
    struct retry *rt = instance;
    const sluice_host *H = rt->host;
    int status = H->resp_status(ctx);
    enum retry_kind kind = retry_classify(H->attempt_result(ctx), status);
    const char *fb = H->attr_get(ctx, "route.fallback");
    if (fb && !*fb)
        fb = NULL;
    if (kind == RK_NONE)
        return fb ? retry_fallback(rt, ctx, H->local_get(ctx), fb)
                  : SLUICE_CONTINUE;
    struct retry_count *rc = H->local_get(ctx);
    if (!rc) {
        rc = calloc(1, sizeof(*rc));
        if (!rc)
            return SLUICE_CONTINUE; /* deliver what we have */
        H->local_set(ctx, rc);
    }
    if (kind == RK_SAME) {
        if (rc->same >=
            route_budget(H, ctx, "route.max_retries", rt->max_retries)) {
            if (fb)
                return retry_fallback(rt, ctx, rc, fb);
            retry_count_metric(rt, rt->m_give_ups, kind);
            return SLUICE_CONTINUE;
        }
        rc->same++;
        retry_count_metric(rt, rt->m_retries, kind);
        uint64_t d = backoff_delay_ms(rt->base_ms, rt->max_ms, rc->same,
                                      rt->jitter, rt->random());
        H->attr_set(ctx, "keyring.want", "same");
        H->retry_after_ms(ctx, (uint32_t)d);
        H->log(rt->self, SLUICE_LOG_DEBUG,
               "%s: attempt %d failed (%d), same key again in %llu ms",
               H->req_id(ctx), H->attempt_no(ctx), status,
               (unsigned long long)d);
        return SLUICE_RETRY;
    }
    if (rc->switches >=
        route_budget(H, ctx, "route.max_key_switches", rt->max_switches)) {
        if (fb)
            return retry_fallback(rt, ctx, rc, fb);
        retry_count_metric(rt, rt->m_give_ups, kind);
        return SLUICE_CONTINUE;
    }
    rc->switches++;
    retry_count_metric(rt, rt->m_retries, kind);
    H->attr_set(ctx, "keyring.want", "other");
    H->retry_after_ms(ctx, 0);
    H->log(rt->self, SLUICE_LOG_DEBUG, "%s: attempt %d got %d, switching key",
           H->req_id(ctx), H->attempt_no(ctx), status);
    return SLUICE_RETRY;
}

static void retry_on_complete(void *instance, sluice_ctx *ctx)
{
    const sluice_host *H = ((struct retry *)instance)->host;
    free(H->local_get(ctx));
    H->local_set(ctx, NULL);
}

/* every route: an upstream failure is retried the same way */
static const char *const retry_routes[] = {"*", NULL};

static const sluice_plugin retry_plugin = {
    .abi_major = SLUICE_ABI_MAJOR,
    .abi_minor = SLUICE_ABI_MINOR,
    .size = sizeof(sluice_plugin),
    .name = "retry",
    .version = "0.1.0",
    .description = "retries with back-off and key failover",
    .init = retry_init,
    .destroy = retry_destroy,
    .on_response = retry_on_response,
    .on_complete = retry_on_complete,
    .routes = retry_routes,
};

SLUICE_PLUGIN_DEFINE(retry_plugin)
