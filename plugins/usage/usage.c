/*
 * usage.c - the usage stage: charges every completed chat, Responses,
 * completions and embeddings request to its
 * client x model x UTC day (requests, prompt, completion and cached tokens,
 * cost from the price table), refuses a request that would start over one
 * of its client's budgets (429 insufficient_quota), and publishes the
 * ledger at GET /admin/usage.
 *
 * Place it after auth (which names the client) and context (whose prompt
 * estimate the budget check uses), before sse: for streams it sets the
 * attribute "usage_wanted", so the sse stage asks the upstream for the
 * final usage chunk (stream_options.include_usage) and drops that chunk
 * again when the client did not ask for it. When the upstream reports no
 * usage, the prompt estimate and the length of the generated text are
 * charged instead and the request is counted as estimated.
 */
#include "usage.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Per request, from on_request to on_complete. */
struct usage_req {
    char client[USAGE_NAME_MAX], model[USAGE_NAME_MAX];
    int stream;
    int64_t prompt_estimate; /* -1: none */
    int64_t content_chars;   /* of the streamed text (estimates) */
    int64_t reserved_tokens, reserved_cost_nano; /* by the budget check */
    uint64_t reserved_at;                        /* wall ms */
    int64_t est_tokens, est_cost_nano;           /* this request's estimate */
    /* while the shared state answers the reservation (reserve_done) */
    struct usage_cfg *cfg;
    sluice_ctx *ctx;
    struct usage_budget budget;
    int waiting;      /* answers still to come */
    int64_t after[3]; /* the windows after the increment */
};

/* 1 when two wall-clock times fall on different UTC days. */
static int other_day(uint64_t a_ms, uint64_t b_ms)
{
    return a_ms / 86400000u != b_ms / 86400000u;
}

static int is_chat(const sluice_host *H, sluice_ctx *ctx)
{
    const char *p = H->req_path(ctx);
    size_t n = strlen(p), k = sizeof "/chat/completions" - 1;
    return n >= k && !strcmp(p + n - k, "/chat/completions") &&
           !strcmp(H->req_method(ctx), "POST");
}

static int64_t attr_int(const sluice_host *H, sluice_ctx *ctx, const char *name)
{
    const char *v = H->attr_get(ctx, name);
    char *end;
    if (!v || !*v)
        return -1;
    long long n = strtoll(v, &end, 10);
    return *end || n < 0 ? -1 : (int64_t)n;
}

/* The output the request asks for at most (0 when it does not say). */
static int64_t requested_output(const sluice_host *H, sluice_ctx *ctx)
{
    const sluice_json *b = H->req_body(ctx);
    const sluice_json *v = H->json_get(b, "max_completion_tokens");
    if (H->json_type(v) != SLUICE_JSON_INT)
        v = H->json_get(b, "max_tokens");
    return H->json_type(v) == SLUICE_JSON_INT && H->json_int(v) > 0
               ? H->json_int(v)
               : 0;
}

static void fmt_int(char *out, size_t n, int64_t v)
{
    snprintf(out, n, "%" PRId64, v);
}

/* 429 insufficient_quota naming the budget, the usage and the reset. */
static sluice_verdict refuse(const sluice_host *H, sluice_ctx *ctx,
                             const char *client, const char *budget,
                             const char *used, const char *limit,
                             const char *need, int64_t reset_s,
                             uint64_t wall_ms)
{
    char msg[600], when[21], retry[24];
    usage_rfc3339(reset_s, when);
    snprintf(msg, sizeof msg,
             "client '%s' is over its %s budget: %s of %s used, this request "
             "needs about %s more; the budget resets at %s",
             client, budget, used, limit, need, when);
    int64_t wait = reset_s - (int64_t)(wall_ms / 1000);
    fmt_int(retry, sizeof retry, wait > 0 ? wait : 1);
    H->resp_header_add(ctx, "Retry-After", retry);
    H->respond_error(ctx, 429, "insufficient_quota", "insufficient_quota", NULL,
                     msg);
    return SLUICE_RESPOND;
}

/* Over one of b's budgets with `used` (tokens today, this month, cost
 * nano this month, without this request) plus the estimate? Then the 429
 * is set and RESPOND returned; else CONTINUE. */
static sluice_verdict over_budget(struct usage_cfg *c, sluice_ctx *ctx,
                                  struct usage_req *r,
                                  const struct usage_budget *b,
                                  const int64_t used_v[3], uint64_t now)
{
    const sluice_host *H = c->host;
    int64_t day = used_v[0], month = used_v[1], cost_nano = used_v[2];
    int64_t est = r->est_tokens, est_cost = r->est_cost_nano;
    char used[32], limit[32], need[32];
    fmt_int(need, sizeof need, est);
    if (b->tokens_day >= 0 &&
        (day >= b->tokens_day || day + est > b->tokens_day)) {
        fmt_int(used, sizeof used, day);
        fmt_int(limit, sizeof limit, b->tokens_day);
        return refuse(H, ctx, r->client,
                      "budget_tokens_day (tokens today, UTC)", used, limit,
                      need, usage_next_day_s(now), now);
    }
    if (b->tokens_month >= 0 &&
        (month >= b->tokens_month || month + est > b->tokens_month)) {
        fmt_int(used, sizeof used, month);
        fmt_int(limit, sizeof limit, b->tokens_month);
        return refuse(H, ctx, r->client,
                      "budget_tokens_month (tokens this month)", used, limit,
                      need, usage_next_month_s(now), now);
    }
    if (b->cost_month >= 0) {
        double spent = (double)cost_nano / 1e9;
        double after = (double)(cost_nano + est_cost) / 1e9;
        if (spent >= b->cost_month || after > b->cost_month) {
            snprintf(used, sizeof used, "%.6f %s", spent, c->currency);
            snprintf(limit, sizeof limit, "%.6f %s", b->cost_month,
                     c->currency);
            snprintf(need, sizeof need, "%.6f %s", (double)est_cost / 1e9,
                     c->currency);
            return refuse(H, ctx, r->client,
                          "budget_cost_month (cost this month)", used, limit,
                          need, usage_next_month_s(now), now);
        }
    }
    return SLUICE_CONTINUE;
}

/* What is left before this request, on whatever response it gets. */
static void remaining_headers(const sluice_host *H, sluice_ctx *ctx,
                              const struct usage_budget *b,
                              const int64_t used_v[3])
{
    char text[32];
    int64_t left = -1;
    if (b->tokens_day >= 0)
        left = b->tokens_day - used_v[0];
    if (b->tokens_month >= 0 &&
        (left < 0 || b->tokens_month - used_v[1] < left))
        left = b->tokens_month - used_v[1];
    if (left >= 0) {
        fmt_int(text, sizeof text, left);
        H->resp_header_add(ctx, "x-sluice-budget-remaining-tokens", text);
    }
    if (b->cost_month >= 0) {
        snprintf(text, sizeof text, "%.6f",
                 b->cost_month - (double)used_v[2] / 1e9);
        H->resp_header_add(ctx, "x-sluice-budget-remaining-cost", text);
    }
}

/* The answer of the shared state to the reservation (on the request's
 * worker): the windows after our increment, so with every reservation and
 * charge that reached the backend before ours. Over: give ours back and
 * refuse; the request waits for this (PENDING) until req_resume. */
static void reserve_done(void *arg, const sluice_state_value *v)
{
    struct usage_req *r = arg;
    struct usage_cfg *c = r->cfg;
    const sluice_host *H = c->host;
    int w = v->key[1] == 'd' ? 0 : v->key[1] == 'm' ? 1 : 2;
    r->after[w] = v->found ? v->count : 0;
    if (--r->waiting > 0)
        return;
    int64_t used_v[3] = {r->after[0] - r->reserved_tokens,
                         r->after[1] - r->reserved_tokens,
                         r->after[2] - r->reserved_cost_nano};
    if (over_budget(c, r->ctx, r, &r->budget, used_v, r->reserved_at) !=
        SLUICE_CONTINUE) {
        usage_ledger_reserve(c, r->ctx, r->client, r->reserved_at,
                             -r->reserved_tokens, -r->reserved_cost_nano);
        r->reserved_tokens = r->reserved_cost_nano = 0;
        H->req_resume(r->ctx, SLUICE_RESPOND);
        return;
    }
    remaining_headers(H, r->ctx, &r->budget, used_v);
    H->req_resume(r->ctx, SLUICE_CONTINUE);
}

/* The budget check: what is used plus this request's estimate. Against
 * this instance's view first (a client far over its budget costs no
 * round trip); then, on a core with asynchronous verdicts, against the
 * shared state itself: the estimate is reserved there and the verdict
 * waits for the backend's answer, so the instances of a fleet cannot
 * admit on views that lag each other. */
static sluice_verdict check_budget(struct usage_cfg *c, sluice_ctx *ctx,
                                   struct usage_req *r,
                                   const struct usage_budget *b)
{
    const sluice_host *H = c->host;
    const int closed = SLUICE_STATE_DEGRADED | SLUICE_STATE_CLOSED;
    if (SLUICE_HOST_HAS(H, state_status) &&
        (H->state_status(c->self) & closed) == closed) {
        /* state.on_unavailable: closed, and the shared state is away */
        H->resp_header_add(ctx, "Retry-After", "1");
        H->respond_error(ctx, 503, "server_error", "budgets_unavailable", NULL,
                         "Budgets cannot be checked right now (the shared "
                         "state is unavailable). Please retry.");
        return SLUICE_RESPOND;
    }
    uint64_t now = H->wall_ms();
    int64_t used_v[3];
    usage_ledger_used(c, r->client, now, &used_v[0], &used_v[1], &used_v[2]);
    int64_t out = requested_output(H, ctx);
    int64_t prompt = r->prompt_estimate > 0 ? r->prompt_estimate : 0;
    int64_t est_cost =
        usage_cost_nano(usage_price_find(c, r->model), prompt, out, 0);
    r->est_tokens = prompt + out;
    r->est_cost_nano = est_cost > 0 ? est_cost : 0;
    if (over_budget(c, ctx, r, b, used_v, now) != SLUICE_CONTINUE)
        return SLUICE_RESPOND;
    /* admitted: reserve the estimate until the real usage is known */
    r->reserved_tokens = r->est_tokens;
    r->reserved_cost_nano = r->est_cost_nano;
    r->reserved_at = now;
    if (SLUICE_HOST_HAS(H, req_resume)) {
        r->cfg = c;
        r->ctx = ctx;
        r->budget = *b;
        r->waiting = 3;
        usage_ledger_reserve_wait(c, ctx, r->client, now, r->reserved_tokens,
                                  r->reserved_cost_nano, reserve_done, r);
        return SLUICE_PENDING;
    }
    usage_ledger_reserve(c, ctx, r->client, now, r->reserved_tokens,
                         r->reserved_cost_nano);
    remaining_headers(H, ctx, b, used_v);
    return SLUICE_CONTINUE;
}

static sluice_verdict usage_on_request(void *instance, sluice_ctx *ctx)
{
    struct usage_cfg *c = instance;
    const sluice_host *H = c->host;
    if (!is_chat(H, ctx) || !H->req_body(ctx))
        return SLUICE_CONTINUE;
    struct usage_req *r = calloc(1, sizeof(*r));
    if (!r)
        return SLUICE_ERROR;
    usage_name_clean(H->attr_get(ctx, "client"), "unknown", r->client,
                     sizeof r->client);
    usage_name_clean(H->req_model(ctx), "unknown", r->model, sizeof r->model);
    r->stream = H->req_stream(ctx);
    r->prompt_estimate = attr_int(H, ctx, "prompt_tokens_estimate");
    H->local_set(ctx, r);
    if (r->stream)
        H->attr_set(ctx, "usage_wanted", "1");
    struct usage_budget b;
    return usage_budget_of(c, ctx, r->client, &b) ? check_budget(c, ctx, r, &b)
                                                  : SLUICE_CONTINUE;
}

static sluice_verdict usage_on_chunk(void *instance, sluice_ctx *ctx,
                                     const char *data, size_t len)
{
    const sluice_host *H = ((struct usage_cfg *)instance)->host;
    struct usage_req *r = H->local_get(ctx);
    if (r && data)
        r->content_chars += usage_content_chars(data, len);
    return H->chunk_forward(ctx, data, len) == 0 ? SLUICE_CONTINUE
                                                 : SLUICE_ERROR;
}

static void usage_on_complete(void *instance, sluice_ctx *ctx)
{
    struct usage_cfg *c = instance;
    const sluice_host *H = c->host;
    struct usage_req *r = H->local_get(ctx);
    if (!r)
        return;
    H->local_set(ctx, NULL);
    int status = H->resp_status(ctx);
    if (status < 200 || status > 299) { /* nothing was used */
        if (r->reserved_tokens || r->reserved_cost_nano)
            usage_ledger_reserve(c, ctx, r->client, r->reserved_at,
                                 -r->reserved_tokens, -r->reserved_cost_nano);
        free(r);
        return;
    }
    int64_t p = attr_int(H, ctx, "usage_prompt_tokens");
    int64_t k = attr_int(H, ctx, "usage_completion_tokens");
    int64_t cached = attr_int(H, ctx, "usage_cached_tokens");
    size_t blen = 0;
    const char *body = H->resp_body(ctx, &blen);
    if ((p < 0 || k < 0) && body && !r->stream &&
        usage_from_body(H, body, blen, &p, &k, &cached)) {
        char n[24]; /* the core's metrics and access line read these */
        fmt_int(n, sizeof n, p);
        H->attr_set(ctx, "usage_prompt_tokens", n);
        fmt_int(n, sizeof n, k);
        H->attr_set(ctx, "usage_completion_tokens", n);
    }
    struct usage_charge ch = {.client = r->client, .model = r->model};
    if (p >= 0 && k >= 0) {
        ch.prompt = p;
        ch.completion = k;
        ch.cached = cached > 0 ? cached : 0;
    } else { /* estimated: ~4 characters a token */
        int64_t chars = r->stream || !body ? r->content_chars
                                           : usage_content_chars(body, blen);
        ch.prompt = r->prompt_estimate > 0 ? r->prompt_estimate : 0;
        ch.completion = (chars + 3) / 4;
        ch.estimated = 1;
    }
    ch.cost_nano = usage_cost_nano(usage_price_find(c, r->model), ch.prompt,
                                   ch.completion, ch.cached);
    uint64_t now = H->wall_ms();
    if (r->reserved_at && other_day(r->reserved_at, now)) {
        /* admitted yesterday (UTC): give the reservation back there */
        usage_ledger_reserve(c, ctx, r->client, r->reserved_at,
                             -r->reserved_tokens, -r->reserved_cost_nano);
    } else {
        ch.reserved_tokens = r->reserved_tokens;
        ch.reserved_cost_nano = r->reserved_cost_nano;
    }
    usage_ledger_charge(c, ctx, now, &ch);
    free(r);
}

/* sluice_client_budget_used_ratio for the configured clients. */
static void usage_collect(void *instance)
{
    struct usage_cfg *c = instance;
    const sluice_host *H = c->host;
    uint64_t now = H->wall_ms();
    size_t n = 0;
    struct usage_budget *all = usage_budgets_all(c, &n);
    for (size_t i = 0; i < n; i++) {
        const struct usage_budget *b = &all[i];
        int64_t day, month, cost;
        usage_ledger_used(c, b->client, now, &day, &month, &cost);
        const char *l[2] = {b->client, NULL};
        if (b->tokens_day >= 0) {
            l[1] = "tokens_day";
            H->metric_set(c->m_ratio, l,
                          b->tokens_day ? (double)day / b->tokens_day : 1);
        }
        if (b->tokens_month >= 0) {
            l[1] = "tokens_month";
            H->metric_set(c->m_ratio, l,
                          b->tokens_month ? (double)month / b->tokens_month
                                          : 1);
        }
        if (b->cost_month >= 0) {
            l[1] = "cost_month";
            H->metric_set(c->m_ratio, l,
                          b->cost_month > 0 ? (double)cost / 1e9 / b->cost_month
                                            : 1);
        }
    }
    free(all);
}

static int usage_status(void *instance, sluice_buf *out)
{
    struct usage_cfg *c = instance;
    const sluice_host *H = c->host;
    H->buf_printf(out, "{\"currency\":");
    H->buf_json_str(out, c->currency);
    size_t nb = 0;
    free(usage_budgets_all(c, &nb));
    return H->buf_printf(out, ",\"priced_models\":%zu,\"budgets\":%zu}",
                         c->nprices, nb);
}

static void usage_destroy(void *instance)
{
    struct usage_cfg *c = instance;
    if (!c)
        return;
    usage_config_free(c);
    free(c->learned);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static int usage_init(const sluice_host *host, sluice_stage *self,
                      const sluice_json *config, void **instance, char *err,
                      size_t errlen)
{
    if (!SLUICE_HOST_HAS(host, req_query)) {
        snprintf(err, errlen,
                 "the usage stage needs a core of SDK ABI 1.1 or newer "
                 "(shared state and admin actions with the request)");
        return -1;
    }
    struct usage_cfg *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->host = host;
    c->self = self;
    pthread_mutex_init(&c->mu, NULL);
    if (usage_config_load(c, config, err, errlen) != 0)
        goto fail;
    usage_budgets_load(c);
    c->m_ratio = host->metric_register(
        self, SLUICE_METRIC_GAUGE, "sluice_client_budget_used_ratio",
        "Share of each configured client budget used (tokens_day: today, "
        "UTC; tokens_month, cost_month: this month); 1 or more: refused.",
        "client,budget", NULL, 0);
    if (!c->m_ratio ||
        host->admin_register_ctx(self, "usage", "usage", usage_report_answer) !=
            0 ||
        host->admin_register_ctx(self, "clients", "usage/clients",
                                 usage_clients_answer) != 0) {
        snprintf(err, errlen, "cannot register the metric or admin actions");
        goto fail;
    }
    *instance = c;
    return 0;
fail:
    usage_destroy(c);
    return -1;
}

/* the routes whose answers report token usage */
static const char *const usage_routes[] = {"chat", "responses", "completions",
                                           "embeddings", NULL};

static const sluice_plugin usage_plugin = {
    .abi_major = SLUICE_ABI_MAJOR,
    .abi_minor = SLUICE_ABI_MINOR,
    .size = sizeof(sluice_plugin),
    .name = "usage",
    .version = "0.1.0",
    .description = "per client x model x day usage and cost, budgets, "
                   "GET /admin/usage",
    .init = usage_init,
    .destroy = usage_destroy,
    .on_request = usage_on_request,
    .on_chunk = usage_on_chunk,
    .on_complete = usage_on_complete,
    .status = usage_status,
    .collect = usage_collect,
    .routes = usage_routes,
};

SLUICE_PLUGIN_DEFINE(usage_plugin)
