/*
 * router.c - the router stage: sends each attempt of a request to one
 * deployment (upstream + model name sent upstream) of the route its model
 * belongs to, and walks the fallback chain when a deployment fails.
 *
 *   on_attempt   first attempt: find the route (the attribute
 *                "route_model" when the context stage chose a context
 *                fallback, else the client's model; none: 404
 *                model_not_found), plan the chain: a deployment picked by
 *                smooth weighted round-robin, the route's other
 *                deployments, then each `fallbacks:` model the same way.
 *                Later attempts: move one step on when "route.advance" is
 *                set. Sets "upstream" and "upstream_model" (read by the
 *                core's upstream client), "fallbacks",
 *                "route.can_fallback" (read by the keyring), and for a
 *                route with `retries:` "route.max_retries" and
 *                "route.max_key_switches" (read by the retry stage).
 *   on_response  classify the outcome; when its class is in the route's
 *                fallback_on and the chain has a next step, set
 *                "route.fallback" = class: the retry stage, once its budget
 *                for this deployment is spent (or when it would not retry
 *                at all), answers RETRY with "route.advance".
 *
 * A deployment that failed over (connect, timeout, 5xx, no usable key) is
 * skipped by the weighted choice for deployment_cooldown_s, so traffic
 * stops paying for a dead upstream and comes back by itself. Both the
 * round-robin positions and those cooldowns survive a hot reload
 * (route_state.c).
 *
 * Config: deployment_cooldown_s (default 5). The routes are the core's
 * `routes:` (host->model_routes); see README.md, "Upstreams and routes".
 */
#include "route_table.h"
#include "sluice.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RT_PLAN_MAX 16

struct router {
    const sluice_host *host; /* the table init got: no file-scope global */
    sluice_stage *self;
    struct rt_table t;
    uint64_t cooldown_ms;
    sluice_metric *m_fallbacks;  /* from_model, to_model, reason */
    sluice_metric *m_selections; /* model, upstream, upstream_model */
};

struct rt_target {
    uint16_t route, dep;
};

/* Per request (local slot). */
struct rt_req {
    struct rt_target plan[RT_PLAN_MAX];
    size_t n, step;
    size_t primary; /* the route the client's model belongs to */
    int fallbacks;
    int counted;         /* the current step's selection was counted */
    int armed;           /* route.fallback was set non-empty */
    int can_fb;          /* route.can_fallback as last set (0: unset) */
    int fallbacks_set;   /* the "fallbacks" attribute as last set */
    size_t budget_route; /* 1 + the route whose retries: the attributes
                            hold; 0: none set */
};

static void router_metrics(struct router *rt)
{
    const sluice_host *H = rt->host;
    if (!H->metric_register)
        return;
    rt->m_fallbacks = H->metric_register(
        rt->self, SLUICE_METRIC_COUNTER, "sluice_fallbacks_total",
        "Requests moved to another deployment or model, by the route they "
        "left, the route they went to and the failure class.",
        "from_model,to_model,reason", NULL, 0);
    rt->m_selections = H->metric_register(
        rt->self, SLUICE_METRIC_COUNTER, "sluice_route_selections_total",
        "Deployments chosen for an attempt, by route, upstream and model "
        "sent upstream (\"*\": the client's name passed through).",
        "model,upstream,upstream_model", NULL, 0);
}

static int router_init(const sluice_host *host, sluice_stage *self,
                       const sluice_json *config, void **instance, char *err,
                       size_t errlen)
{
    const sluice_host *H = host;
    double cd;
    for (void *it = H->json_iter(config); it;
         it = H->json_iter_next(config, it)) {
        if (strcmp(H->json_iter_key(it), "deployment_cooldown_s")) {
            snprintf(err, errlen,
                     "unknown config key '%.64s' (known: "
                     "deployment_cooldown_s)",
                     H->json_iter_key(it));
            return -1;
        }
    }
    if (!SLUICE_HOST_HAS(H, model_routes)) {
        snprintf(err, errlen,
                 "this core has no upstreams/routes (ABI 1.1 "
                 "or newer needed)");
        return -1;
    }
    if (H->cfg_real(config, "deployment_cooldown_s", 5, &cd) != 0 ||
        !isfinite(cd) || cd < 0 || cd > 3600) {
        snprintf(err, errlen,
                 "deployment_cooldown_s: expected seconds from 0 to 3600");
        return -1;
    }
    struct router *rt = calloc(1, sizeof *rt);
    if (!rt) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rt->host = host;
    rt->self = self;
    rt->cooldown_ms = (uint64_t)llround(cd * 1000);
    const sluice_json *routes = H->model_routes(self);
    if (rt_table_build(H, routes, &rt->t, err, errlen) != 0) {
        rt_table_free(&rt->t);
        free(rt);
        return -1;
    }
    if (!rt->t.n)
        H->log(self, SLUICE_LOG_WARN,
               "no routes: configured: every request goes to the first "
               "upstream with its model unchanged");
    router_metrics(rt);
    *instance = rt;
    return 0;
}

static void router_destroy(void *instance)
{
    struct router *rt = instance;
    rt_table_free(&rt->t);
    free(rt);
}

/* Append route ri's deployments: the weighted pick first, then the rest
 * in config order (a step already planned is not planned twice). */
static void plan_route(struct router *rt, struct rt_req *q, size_t ri,
                       uint64_t now)
{
    struct rt_route *r = &rt->t.v[ri];
    size_t first = rt_route_pick(r, now);
    for (size_t k = 0; k <= r->nd && q->n < RT_PLAN_MAX; k++) {
        size_t di = k == 0 ? first : k - 1;
        if (k > 0 && di == first)
            continue;
        int dup = 0;
        for (size_t j = 0; j < q->n; j++)
            dup |= q->plan[j].route == ri && q->plan[j].dep == di;
        if (!dup)
            q->plan[q->n++] = (struct rt_target){(uint16_t)ri, (uint16_t)di};
    }
}

static void count_fallback(struct router *rt, const char *from, const char *to,
                           const char *reason)
{
    const sluice_host *H = rt->host;
    if (rt->m_fallbacks)
        H->metric_add(rt->m_fallbacks, (const char *const[]){from, to, reason},
                      1);
}

static struct rt_req *request_plan(struct router *rt, sluice_ctx *ctx)
{
    const sluice_host *H = rt->host;
    const char *model = H->req_model(ctx);
    const char *want = H->attr_get(ctx, "route_model");
    const char *name = want && *want ? want : model;
    long ri = rt_table_find(&rt->t, name);
    char msg[256];

    if (ri < 0) {
        snprintf(msg, sizeof msg,
                 "The model '%.128s' does not exist or is not routed by "
                 "this gateway",
                 name);
        H->respond_error(ctx, 404, "invalid_request_error", "model_not_found",
                         "model", msg);
        return NULL;
    }
    struct rt_req *q = calloc(1, sizeof *q); /* can_fb 0: the attribute
                                                 is unset, i.e. "" */
    if (!q) {
        H->respond_error(ctx, 500, "server_error", "out_of_memory", NULL,
                         "out of memory");
        return NULL;
    }
    uint64_t now = H->now_ms();
    q->primary = (size_t)ri;
    plan_route(rt, q, (size_t)ri, now);
    for (size_t i = 0; i < rt->t.v[ri].nfallbacks; i++)
        plan_route(rt, q, rt->t.v[ri].fallbacks[i], now);
    if (want && *want && strcmp(want, model)) {
        /* the context stage moved an oversized request to a larger model */
        q->fallbacks = 1;
        long from = rt_table_find(&rt->t, model);
        count_fallback(rt, from >= 0 ? rt->t.v[from].name : "other",
                       rt->t.v[ri].name, "context_length_exceeded");
    }
    H->local_set(ctx, q);
    return q;
}

/* "route.advance" = class: the last deployment failed over. */
static void request_advance(struct router *rt, struct rt_req *q,
                            sluice_ctx *ctx, const char *why)
{
    const sluice_host *H = rt->host;
    unsigned c = rt_class_parse(why);
    struct rt_target cur = q->plan[q->step];
    struct rt_route *from = &rt->t.v[cur.route];
    if (c & (RC_CONNECT | RC_TIMEOUT | RC_5XX | RC_ALL_KEYS))
        atomic_store(&from->d[cur.dep].down_until,
                     H->now_ms() + rt->cooldown_ms);
    if (q->step + 1 >= q->n)
        return;
    q->step++;
    q->fallbacks++;
    q->counted = 0;
    struct rt_route *to = &rt->t.v[q->plan[q->step].route];
    count_fallback(rt, from->name, to->name, c ? why : "other");
    H->log(rt->self, SLUICE_LOG_INFO, "%s: %s on %s/%s, falling back to %s/%s",
           H->req_id(ctx), c ? why : "failure", from->d[cur.dep].upstream,
           from->name, to->d[q->plan[q->step].dep].upstream, to->name);
}

/* "route.max_retries" / "route.max_key_switches": the retry stage's budget
 * per deployment of route r (its `retries:`), or "" for the stage's own.
 * Set only when the route with a budget changes. */
static void budget_attrs(const sluice_host *H, sluice_ctx *ctx,
                         struct rt_req *q, const struct rt_route *r, size_t ri)
{
    size_t want = r->max_retries >= 0 || r->max_switches >= 0 ? ri + 1 : 0;
    const int v[2] = {want ? r->max_retries : -1, want ? r->max_switches : -1};
    static const char *const names[2] = {"route.max_retries",
                                         "route.max_key_switches"};
    char n[16];
    if (want == q->budget_route)
        return;
    for (int k = 0; k < 2; k++) {
        snprintf(n, sizeof n, "%d", v[k]);
        H->attr_set(ctx, names[k], v[k] >= 0 ? n : "");
    }
    q->budget_route = want;
}

static sluice_verdict router_on_attempt(void *instance, sluice_ctx *ctx)
{
    const sluice_host *H = ((struct router *)instance)->host;
    struct router *rt = instance;
    struct rt_req *q = H->local_get(ctx);
    char n[16];

    if (!rt->t.n)
        return SLUICE_CONTINUE;
    if (!q) {
        q = request_plan(rt, ctx);
        if (!q)
            return SLUICE_RESPOND;
    } else {
        const char *adv = H->attr_get(ctx, "route.advance");
        if (adv && *adv) {
            request_advance(rt, q, ctx, adv);
            H->attr_set(ctx, "route.advance", "");
        }
    }
    struct rt_target t = q->plan[q->step];
    struct rt_route *r = &rt->t.v[t.route];
    struct rt_deploy *d = &r->d[t.dep];
    const struct rt_route *p = &rt->t.v[q->primary];
    H->attr_set(ctx, "upstream", d->upstream);
    H->attr_set(ctx, "upstream_model", d->model ? d->model : H->req_model(ctx));
    /* the rest only when it changes: attributes are copied per set */
    if (q->armed) {
        H->attr_set(ctx, "route.fallback", "");
        q->armed = 0;
    }
    budget_attrs(H, ctx, q, r, t.route);
    int can = q->step + 1 < q->n && (p->fallback_on & RC_ALL_KEYS);
    if (can != q->can_fb) {
        H->attr_set(ctx, "route.can_fallback", can ? "1" : "");
        q->can_fb = can;
    }
    if (q->fallbacks != q->fallbacks_set) {
        snprintf(n, sizeof n, "%d", q->fallbacks);
        H->attr_set(ctx, "fallbacks", n);
        q->fallbacks_set = q->fallbacks;
    }
    if (!q->counted && rt->m_selections) {
        const char *lv[] = {r->name, d->upstream, d->model ? d->model : "*"};
        H->metric_add(rt->m_selections, lv, 1);
        q->counted = 1;
    }
    return SLUICE_CONTINUE;
}

static sluice_verdict router_on_response(void *instance, sluice_ctx *ctx)
{
    const sluice_host *H = ((struct router *)instance)->host;
    struct router *rt = instance;
    struct rt_req *q = H->local_get(ctx);
    size_t blen = 0;
    if (!q)
        return SLUICE_CONTINUE;
    int status = H->resp_status(ctx);
    sluice_attempt_result res = H->attempt_result(ctx);
    if (res == SLUICE_ATTEMPT_NONE && status >= 200 && status < 300)
        res = SLUICE_ATTEMPT_HTTP; /* a 2xx stream judged on its headers */
    const char *body = H->resp_body(ctx, &blen);
    unsigned c = rt_classify(res, status, body, blen);
    int go = c && (rt->t.v[q->primary].fallback_on & c) && q->step + 1 < q->n;
    if (go || q->armed)
        H->attr_set(ctx, "route.fallback", go ? rt_class_name(c) : "");
    q->armed = go;
    return SLUICE_CONTINUE;
}

/* Weighted round-robin positions and cooldowns survive a reload. */
static int router_export_state(void *instance, sluice_buf *out)
{
    const sluice_host *H = ((struct router *)instance)->host;
    struct router *rt = instance;
    return rt_state_export(H, &rt->t, H->now_ms(), out) < 0 ? -1 : 0;
}

static int router_import_state(void *instance, const char *state, size_t len)
{
    const sluice_host *H = ((struct router *)instance)->host;
    struct router *rt = instance;
    return rt_state_import(H, &rt->t, H->now_ms(), state, len);
}

static void router_on_complete(void *instance, sluice_ctx *ctx)
{
    const sluice_host *H = ((struct router *)instance)->host;
    (void)instance;
    free(H->local_get(ctx));
    H->local_set(ctx, NULL);
}

/* every route that names a model: chat, responses, embeddings, ... */
static const char *const router_routes[] = {"*", NULL};

static const sluice_plugin router_plugin = {
    .abi_major = SLUICE_ABI_MAJOR,
    .abi_minor = SLUICE_ABI_MINOR,
    .size = sizeof(sluice_plugin),
    .name = "router",
    .version = "0.1.0",
    .description = "model routes: weighted deployments and fallbacks",
    .init = router_init,
    .destroy = router_destroy,
    .on_attempt = router_on_attempt,
    .on_response = router_on_response,
    .on_complete = router_on_complete,
    .export_state = router_export_state,
    .import_state = router_import_state,
    .routes = router_routes,
};

SLUICE_PLUGIN_DEFINE(router_plugin)
