/*
 * core_metrics.c - the metrics the core records itself (see
 * core_metrics.h) and the per-request summary the access log shares.
 *
 * Cost: a completed chat request makes about ten series lookups (a hash of
 * its label values under a read lock) and as many atomic updates; nothing
 * is allocated once a label tuple has been seen. The upstream's `usage` is
 * read from the buffered body without parsing the whole document: only the
 * small object after the last "usage" key is parsed.
 */
#include "core_metrics.h"
#include "history.h"
#include "upstream_set.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "request.h"
#include "server.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double seconds_buckets[] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
static const double overhead_buckets[] = {0.00005, 0.0001, 0.00025, 0.0005,
                                          0.001,   0.0025, 0.005,   0.01,
                                          0.025,   0.05,   0.1};
static const double token_buckets[] = {
    16, 64, 256, 1024, 4096, 16384, 32768, 65536, 131072, 262144, 1048576};

#define NB(a) (sizeof(a) / sizeof *(a))

static struct {
    sluice_metric *requests, *in_flight, *duration, *upstream, *ttfb, *overhead,
        *attempts, *retries, *rejections, *usage, *estimate, *generation,
        *reloads, *reload_failures, *build, *start, *log_dropped;
    struct metric_series *in_flight_s, *log_dropped_s;
} cm;

static pthread_once_t cm_once = PTHREAD_ONCE_INIT;

static sluice_metric *reg(sluice_metric_type t, const char *name,
                          const char *help, const char *labels, const double *b,
                          size_t nb)
{
    char err[256];
    sluice_metric *m =
        metrics_register(t, name, help, labels, b, nb, err, sizeof err);
    if (!m)
        log_msg(LOG_ERROR, "metrics", "%s", err);
    return m;
}

static void cm_register(void)
{
    const sluice_metric_type C = SLUICE_METRIC_COUNTER, G = SLUICE_METRIC_GAUGE,
                             H = SLUICE_METRIC_HISTOGRAM;
    cm.requests = reg(C, "sluice_requests_total",
                      "Requests answered, by route, model, stream, status "
                      "code and outcome.",
                      "route,model,stream,code,outcome", NULL, 0);
    cm.in_flight = reg(G, "sluice_requests_in_flight",
                       "Requests being served right now.", NULL, NULL, 0);
    cm.duration = reg(H, "sluice_request_duration_seconds",
                      "Total request time, first byte in to completion.",
                      "route,stream", seconds_buckets, NB(seconds_buckets));
    cm.upstream = reg(H, "sluice_upstream_duration_seconds",
                      "Time spent in upstream attempts (all attempts of "
                      "a request, streams until their end).",
                      "model,stream", seconds_buckets, NB(seconds_buckets));
    cm.ttfb = reg(H, "sluice_stream_first_byte_seconds",
                  "Streams: time from the request to its first byte queued "
                  "for the client.",
                  "model", seconds_buckets, NB(seconds_buckets));
    cm.overhead = reg(H, "sluice_gateway_overhead_seconds",
                      "Chat requests: total time minus upstream time.",
                      "stream", overhead_buckets, NB(overhead_buckets));
    cm.attempts = reg(C, "sluice_upstream_attempts_total",
                      "Upstream attempts by upstream key (attribute key_id: "
                      "a label or sk-...abcd, never the key), how they "
                      "ended (http, timeout, connect, reset, aborted) and "
                      "HTTP status, by upstream (names from the config).",
                      "key,result,code,upstream", NULL, 0);
    cm.retries = reg(C, "sluice_retries_total",
                     "Upstream attempts beyond the first of a request.",
                     "model", NULL, 0);
    cm.rejections = reg(C, "sluice_rejections_total",
                        "Requests answered before any upstream attempt, by "
                        "the stage that answered (core: the gateway "
                        "itself) and error code.",
                        "stage,code", NULL, 0);
    cm.usage = reg(C, "sluice_usage_tokens_total",
                   "Tokens the upstream reported in usage, by model, "
                   "client and kind (prompt, completion).",
                   "model,client,kind", NULL, 0);
    cm.estimate = reg(H, "sluice_prompt_tokens_estimate",
                      "Estimated prompt tokens of chat requests (attribute "
                      "prompt_tokens_estimate).",
                      "model", token_buckets, NB(token_buckets));
    /* sluice_context_usage_ratio is the context stage's: it knows the
     * models' context lengths (the top-level models: is only a
     * fallback for /v1/models) */
    cm.generation = reg(G, "sluice_pipeline_generation",
                        "Id of the pipeline generation serving new "
                        "requests.",
                        NULL, NULL, 0);
    cm.reloads =
        reg(C, "sluice_pipeline_reloads_total",
            "Pipeline reloads that replaced the running one.", NULL, NULL, 0);
    cm.reload_failures = reg(C, "sluice_pipeline_reload_failures_total",
                             "Pipeline reloads that failed (the running "
                             "one was kept).",
                             NULL, NULL, 0);
    cm.build =
        reg(G, "sluice_build_info", "Build of the running gateway (always 1).",
            "version,abi", NULL, 0);
    cm.start = reg(G, "sluice_start_time_seconds",
                   "Start time of the process since the epoch.", NULL, NULL, 0);
    cm.log_dropped = reg(C, "sluice_log_lines_dropped_total",
                         "Log lines dropped because the log writer's "
                         "buffer was full.",
                         NULL, NULL, 0);
    cm.in_flight_s = metrics_series(cm.in_flight, NULL);
    cm.log_dropped_s = metrics_series(cm.log_dropped, NULL);

    char abi[32];
    snprintf(abi, sizeof abi, "%d.%d", SLUICE_ABI_MAJOR, SLUICE_ABI_MINOR);
    const char *bl[] = {SLUICE_VERSION, abi};
    metrics_set(cm.build, bl, 1);
    metrics_set(cm.start, NULL, (double)time_wall_ms() / 1000.0);
}

void core_metrics_init(void)
{
    pthread_once(&cm_once, cm_register);
}

void core_metrics_request_start(struct sluice_ctx *ctx)
{
    (void)ctx;
    core_metrics_init();
    metrics_series_add(cm.in_flight_s, 1);
}

static const char *result_name(sluice_attempt_result r)
{
    switch (r) {
    case SLUICE_ATTEMPT_HTTP:
        return "http";
    case SLUICE_ATTEMPT_TIMEOUT:
        return "timeout";
    case SLUICE_ATTEMPT_CONNECT:
        return "connect";
    case SLUICE_ATTEMPT_RESET:
        return "reset";
    case SLUICE_ATTEMPT_ABORTED:
        return "aborted";
    default:
        return "none";
    }
}

void core_metrics_attempt_end(struct sluice_ctx *ctx)
{
    uint64_t now = time_now_us();
    if (ctx->attempt_t0_us && now > ctx->attempt_t0_us)
        ctx->up_us += now - ctx->attempt_t0_us;
    ctx->attempt_t0_us = 0;
    /* status codes label every request: no snprintf (it cost more than
     * the lookup) */
    char code[BUF_INT_TEXT];
    const char *ct = buf_int_text(
        code, ctx->result == SLUICE_ATTEMPT_HTTP ? ctx->status : 0);
    /* key_id is set by the keyring in on_attempt for this attempt */
    const char *key = hdrs_get(&ctx->attrs, "key_id");
    const char *lv[] = {key ? key : "", result_name(ctx->result), ct,
                        ctx->up ? ctx->up->name : "default"};
    metrics_add(cm.attempts, lv, 1);
}

/* ---- the summary --------------------------------------------------------- */

static const char *route_name(enum route r)
{
    switch (r) {
    case ROUTE_API:
        return "chat";
    case ROUTE_MODELS:
        return "models";
    case ROUTE_MODEL_INFO:
        return "model_info";
    case ROUTE_HEALTH:
        return "health";
    case ROUTE_ADMIN:
        return "admin";
    case ROUTE_STAGE:
        return "stage";
    case ROUTE_METRICS:
        return "metrics";
    case ROUTE_OPENAPI:
        return "openapi";
    case ROUTE_DOCS:
        return "docs";
    case ROUTE_REDOC:
        return "redoc";
    case ROUTE_BAD_METHOD:
        return "bad_method";
    case ROUTE_PREFLIGHT:
        return "preflight";
    default:
        return "not_found";
    }
}

/* The model label: a bounded set, never the client's text as is (each new
 * value is a few dozen series). A stage that knows the model table (the
 * context stage) says it in the attribute "model_label" (an id of its
 * table, or "other"); else an id of the top-level `models:` list, or
 * "other". A request without a model, or not authenticated (an auth stage
 * is in the pipeline and did not name the client), gets "". */
static const char *model_label(const struct sluice_ctx *ctx)
{
    const char *m = hdrs_get(&ctx->attrs, "model_label");
    if (m)
        return m;
    m = ctx->model_in ? ctx->model_in /* the client's, not the one sent */
                      : json_string_value(json_object_get(ctx->body, "model"));
    if (!m || !*m ||
        (ctx->gen && generation_find(ctx->gen, "auth") &&
         !hdrs_get(&ctx->attrs, "client")))
        return ""; /* none asked, or not to be heard before auth */
    const json_t *models =
        server_main && server_main->cfg ? server_main->cfg->models : NULL;
    size_t i;
    json_t *e;
    json_array_foreach(models, i, e)
    {
        const char *id = json_string_value(json_object_get(e, "id"));
        if (m && id && !strcmp(id, m))
            return id;
    }
    return "other";
}

static long long attr_ll(struct sluice_ctx *ctx, const char *name)
{
    const char *v = hdrs_get(&ctx->attrs, name);
    char *end;
    if (!v || !*v)
        return -1;
    long long n = 0;
    size_t i = 0;
    for (; v[i] >= '0' && v[i] <= '9' && i < 18; i++) /* the usual form */
        n = n * 10 + (v[i] - '0');
    if (!v[i])
        return n;
    n = strtoll(v, &end, 10); /* anything else as it always was read */
    return *end || n < 0 ? -1 : n;
}

/* A non-negative integer value of "key" inside [p, end), or -1. */
static long long json_int_field(const char *p, const char *end, const char *key,
                                size_t klen)
{
    while ((p = memmem(p, (size_t)(end - p), key, klen)) != NULL) {
        p += klen;
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' ||
                           *p == '\r' || *p == ':'))
            p++;
        if (p >= end || *p < '0' || *p > '9')
            continue;
        long long v = 0;
        while (p < end && *p >= '0' && *p <= '9' && v < (1LL << 50))
            v = v * 10 + (*p++ - '0');
        return v;
    }
    return -1;
}

/* prompt_tokens / completion_tokens of the object after the last "usage"
 * key of a buffered body, without parsing the document: a JSON string
 * cannot hold the bytes "usage" followed by a quote (it would be \"), so
 * the last match is the key. The object ends at its first closing brace
 * at depth 0 (usage objects nest one level: *_tokens_details). */
static void usage_from_body(const char *body, size_t len, long long *prompt,
                            long long *completion)
{
    static const char key[] = "\"usage\"";
    const char *last = NULL, *p, *end = body + len;
    /* from the end, quote by quote: usage is near the end of an answer */
    for (const char *q = end; (q = memrchr(body, '"', (size_t)(q - body)));)
        if ((size_t)(end - q) >= sizeof key - 1 &&
            !memcmp(q, key, sizeof key - 1)) {
            last = q;
            break;
        }
    if (!last)
        return;
    p = last + sizeof key - 1;
    while (p < end &&
           (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t' || *p == ':'))
        p++;
    if (p >= end || *p != '{')
        return;
    const char *obj = p;
    int depth = 0;
    for (; p < end; p++) {
        if (*p == '{')
            depth++;
        else if (*p == '}' && --depth == 0)
            break;
    }
    if (p >= end)
        return;
    /* keys inside the *_details objects differ ("cached_tokens", ...) */
    *prompt = json_int_field(obj, p, "\"prompt_tokens\"", 15);
    *completion = json_int_field(obj, p, "\"completion_tokens\"", 19);
}

static int status_sent(const struct sluice_ctx *ctx)
{
    if (ctx->stream_queued)
        return ctx->status;
    return ctx->out_status;
}

static const char *outcome_of(struct sluice_ctx *ctx, int client_left,
                              int status)
{
    /* not ctx->client_gone: the completion callback sets it for every
     * request whose upstream is done, to stop a transfer still running */
    if (client_left)
        return "client_closed";
    if (ctx->route != ROUTE_API)
        return status < 400 ? "ok" : status < 500 ? "rejected" : "error";
    if (ctx->attempts_sent == 0) /* answered before any upstream call */
        return status < 400 ? "ok" : status < 500 ? "rejected" : "error";
    if (ctx->stream_queued && ctx->result != SLUICE_ATTEMPT_HTTP)
        return "stream_interrupted";
    if (ctx->result != SLUICE_ATTEMPT_HTTP || status >= 400)
        return "upstream_error";
    return "ok";
}

void core_metrics_summarise(struct sluice_ctx *ctx, int client_left,
                            struct request_summary *sum)
{
    uint64_t now = time_now_us();
    memset(sum, 0, sizeof *sum);
    sum->route = ctx->route == ROUTE_API ? request_api(ctx)->name
                                         : route_name(ctx->route);
    sum->status = status_sent(ctx);
    if (!sum->status)
        sum->status = 499; /* the client left before any response */
    sum->outcome = outcome_of(ctx, client_left, sum->status);
    sum->model = ctx->route == ROUTE_API ? model_label(ctx) : "";
    sum->model_requested =
        ctx->model_in ? ctx->model_in
                      : json_string_value(json_object_get(ctx->body, "model"));
    if (!sum->model_requested)
        sum->model_requested = "";
    sum->client = hdrs_get(&ctx->attrs, "client");
    sum->key_id = hdrs_get(&ctx->attrs, "key_id");
    if (!sum->client)
        sum->client = "";
    if (!sum->key_id)
        sum->key_id = "";
    sum->total_s = (double)(now - ctx->t_start_us) / 1e6;
    sum->upstream_s = (double)ctx->up_us / 1e6;
    sum->overhead_s =
        sum->total_s > sum->upstream_s ? sum->total_s - sum->upstream_s : 0;
    sum->ttfb_s = ctx->first_out_us && ctx->first_out_us > ctx->t_start_us
                      ? (double)(ctx->first_out_us - ctx->t_start_us) / 1e6
                      : -1;
    sum->tokens_estimate = attr_ll(ctx, "prompt_tokens_estimate");
    sum->usage_prompt = attr_ll(ctx, "usage_prompt_tokens");
    sum->usage_completion = attr_ll(ctx, "usage_completion_tokens");
    if (ctx->route == ROUTE_API && !ctx->stream &&
        ctx->result == SLUICE_ATTEMPT_HTTP && ctx->status >= 200 &&
        ctx->status < 300 && ctx->resp_body.len &&
        (sum->usage_prompt < 0 || sum->usage_completion < 0)) {
        long long p = -1, c = -1;
        usage_from_body(ctx->resp_body.data, ctx->resp_body.len, &p, &c);
        if (sum->usage_prompt < 0)
            sum->usage_prompt = p;
        if (sum->usage_completion < 0)
            sum->usage_completion = c;
    }
}

/* 1 when a route label is client API traffic (what the dashboard's
 * charts show; ui/app.js has the same list). */
static int api_traffic(const char *route)
{
    static const char *const not_api[] = {"admin",     "health",     "metrics",
                                          "openapi",   "docs",       "redoc",
                                          "not_found", "bad_method", NULL};
    for (size_t i = 0; not_api[i]; i++)
        if (!strcmp(route, not_api[i]))
            return 0;
    return 1;
}

void core_metrics_request_done(struct sluice_ctx *ctx,
                               const struct request_summary *sum)
{
    char code[BUF_INT_TEXT];
    const char *stream = ctx->stream ? "true" : "false";
    const char *ct = buf_int_text(code, sum->status);
    metrics_series_add(cm.in_flight_s, -1);
    const char *rl[] = {sum->route, sum->model, stream, ct, sum->outcome};
    metrics_add(cm.requests, rl, 1);
    const char *dl[] = {sum->route, stream};
    metrics_observe(cm.duration, dl, sum->total_s);
    if (api_traffic(sum->route))
        history_record(time_wall_ms(), sum->total_s,
                       !strcmp(sum->outcome, "error") ||
                           !strcmp(sum->outcome, "upstream_error") ||
                           !strcmp(sum->outcome, "stream_interrupted"));
    if (ctx->route != ROUTE_API)
        return;
    if (!strcmp(sum->outcome, "rejected")) {
        const char *jl[] = {ctx->responder ? ctx->responder : "core",
                            ctx->err_code};
        metrics_add(cm.rejections, jl, 1);
    }
    const char *ml[] = {sum->model};
    if (sum->tokens_estimate >= 0)
        metrics_observe(cm.estimate, ml, (double)sum->tokens_estimate);
    if (ctx->attempts_sent == 0)
        return;
    const char *ul[] = {sum->model, stream};
    metrics_observe(cm.upstream, ul, sum->upstream_s);
    const char *ol[] = {stream};
    metrics_observe(cm.overhead, ol, sum->overhead_s);
    if (sum->ttfb_s >= 0)
        metrics_observe(cm.ttfb, ml, sum->ttfb_s);
    if (ctx->attempts_sent > 1)
        metrics_add(cm.retries, ml, (double)(ctx->attempts_sent - 1));
    const char *client = *sum->client ? sum->client : "unknown";
    if (sum->usage_prompt > 0) {
        const char *kl[] = {sum->model, client, "prompt"};
        metrics_add(cm.usage, kl, (double)sum->usage_prompt);
    }
    if (sum->usage_completion > 0) {
        const char *kl[] = {sum->model, client, "completion"};
        metrics_add(cm.usage, kl, (double)sum->usage_completion);
    }
}

void core_metrics_collect(void)
{
    core_metrics_init();
    struct generation *g = generation_pin();
    metrics_set(cm.generation, NULL, g ? (double)g->id : 0);
    generation_unpin(g);
    metrics_series_store(metrics_series(cm.reloads, NULL),
                         (double)atomic_load(&pipeline_stats.reloads));
    metrics_series_store(metrics_series(cm.reload_failures, NULL),
                         (double)atomic_load(&pipeline_stats.reload_failures));
    metrics_series_store(cm.log_dropped_s, (double)log_dropped_lines());
}
