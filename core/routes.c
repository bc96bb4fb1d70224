/*
 * routes.c - request routing and the endpoints the core answers itself:
 * /health, /v1/models, /v1/models/{id}[/info], /admin/..., and the OpenAI-
 * shaped 404 and 405 for everything else. The chat route goes to flow.c.
 *
 * Stage routes are matched first: when the pipeline has a context stage,
 * it owns the model table and serves /v1/models itself; the builtin answer
 * from the top-level `models:` list and the routes (models_routed.c) is
 * only the fallback for a pipeline without one.
 */
#include "routes.h"
#include "admin.h"
#include "core_metrics.h"
#include "cors.h"
#include "docs.h"
#include "log.h"
#include "metrics.h"
#include "models_routed.h"
#include "pipeline.h"
#include "server.h"
#include "state.h"
#include "timer.h"
#include "upstream_set.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int path_is(const char *url, const char *p)
{
    return !strcmp(url, p);
}

static void route_set(struct sluice_ctx *ctx, enum route r, const char *allowed)
{
    ctx->route = r;
    if (strcmp(ctx->method, allowed) &&
        !(r != ROUTE_API && !strcmp(ctx->method, "HEAD") &&
          !strcmp(allowed, "GET")))
        ctx->route = ROUTE_BAD_METHOD;
}

static int is_admin_path(const char *u)
{
    return !strncmp(u, "/admin/", 7) || path_is(u, "/admin");
}

/* admin.listen set: the admin API lives on its own port, which serves
 * nothing else but /health and /metrics (the dashboard at /admin/ui reads
 * both from its own origin). 1 when the path is not served here. */
static int wrong_port(const struct sluice_ctx *ctx, const char *u)
{
    if (!server_main || !server_main->cfg || !server_main->cfg->admin_listen)
        return 0;
    if (ctx->on_admin_port)
        return !is_admin_path(u) && !path_is(u, "/health") &&
               !path_is(u, "/healthz") && !path_is(u, "/metrics");
    return is_admin_path(u);
}

/* top-level passthrough: true, and an OpenAI path (/v1/...) on the main
 * port. */
static int passthrough_on(const struct sluice_ctx *ctx, const char *u)
{
    return server_main && server_main->cfg->passthrough &&
           !strncmp(u, "/v1/", 4) && u[4] && !ctx->on_admin_port;
}

void routes_match(struct sluice_ctx *ctx)
{
    const char *u = ctx->url;
    size_t n = strlen(u);
    while (n > 1 && u[n - 1] == '/')
        n--; /* tolerate a trailing slash */
    ctx->url[n] = '\0';
    ctx->route = ROUTE_NOT_FOUND;
    if (wrong_port(ctx, u))
        return;
    if (cors_is_preflight(ctx)) {
        ctx->route = ROUTE_PREFLIGHT;
        return;
    }
    int method_ok;
    ctx->sroute =
        generation_route(ctx->gen, ctx->method, u, &ctx->sstage, &method_ok);
    if (ctx->sroute) {
        ctx->route = method_ok ? ROUTE_STAGE : ROUTE_BAD_METHOD;
        return;
    }
    const struct api_route *api = api_find(u);
    if (api && strcmp(ctx->method, "POST") && passthrough_on(ctx, u))
        /* GET /v1/chat/completions (stored completions) and the like */
        ctx->route = ROUTE_API, ctx->api = api_passthrough();
    else if (api)
        route_set(ctx, ROUTE_API, "POST"), ctx->api = api;
    else if (path_is(u, "/v1/models") || path_is(u, "/models"))
        route_set(ctx, ROUTE_MODELS, "GET");
    else if (!strncmp(u, "/v1/models/", 11) && u[11])
        route_set(ctx, ROUTE_MODEL_INFO, "GET"), ctx->aux = u + 11;
    else if (path_is(u, "/health") || path_is(u, "/healthz"))
        route_set(ctx, ROUTE_HEALTH, "GET");
    else if (path_is(u, "/metrics"))
        route_set(ctx, ROUTE_METRICS, "GET");
    else if (docs_enabled() && path_is(u, "/openapi.json"))
        route_set(ctx, ROUTE_OPENAPI, "GET");
    else if (docs_enabled() && path_is(u, "/docs"))
        route_set(ctx, ROUTE_DOCS, "GET");
    else if (docs_enabled() && path_is(u, "/redoc"))
        route_set(ctx, ROUTE_REDOC, "GET");
    else if (is_admin_path(u))
        ctx->route = ROUTE_ADMIN, ctx->aux = u[6] ? u + 7 : "";
    else if (passthrough_on(ctx, u))
        /* files, batches, GET /v1/responses/{id}, ...: to the upstream */
        ctx->route = ROUTE_API, ctx->api = api_passthrough();
}

static const char *allowed_for(struct sluice_ctx *ctx, const char *url)
{
    if (ctx->sroute)
        return ctx->sroute->method;
    if (api_find(url))
        return "POST";
    return "GET, HEAD";
}

/* ---- /health ---------------------------------------------------------- */

static int stage_status_append(struct sluice_stage *s, buf_t *out, int *healthy)
{
    buf_t st;
    buf_init(&st);
    if (!SLUICE_PLUGIN_HAS(s->desc, status) || !s->desc->status ||
        s->desc->status(s->instance, &st) != 0 || st.oom)
        goto none;
    json_error_t je;
    json_t *v = json_loadb(st.data ? st.data : "", st.len, 0, &je);
    if (!json_is_object(v)) {
        json_decref(v);
        log_msg(LOG_WARN, s->name, "status() returned invalid JSON");
        goto none;
    }
    if (json_is_false(json_object_get(v, "healthy")))
        *healthy = 0;
    json_decref(v);
    buf_puts(out, ",\"status\":");
    buf_append(out, st.data, st.len);
none:
    buf_release(&st);
    return 0;
}

static void answer_health(struct sluice_ctx *ctx)
{
    struct generation *g = ctx->gen;
    buf_t b, stages;
    int healthy = 1;
    buf_init(&b);
    buf_init(&stages);
    for (size_t i = 0; g && i < g->nstages; i++) {
        struct sluice_stage *s = &g->stages[i];
        buf_puts(&stages, i ? ",{\"name\":" : "{\"name\":");
        buf_json_str(&stages, s->name);
        buf_puts(&stages, ",\"plugin\":");
        buf_json_str(&stages, s->plugin);
        buf_puts(&stages, ",\"version\":");
        buf_json_str(&stages, s->desc->version);
        stage_status_append(s, &stages, &healthy);
        buf_puts(&stages, "}");
    }
    uint64_t up = (time_now_ms() - server_main->start_ms) / 1000;
    /* a state backend that is away degrades the service, but requests
     * still flow on the local view: still 200 */
    int state_ok = state_healthy();
    buf_printf(&b,
               "{\"status\":\"%s\",\"version\":\"%s\",\"uptime_s\":%llu,"
               "\"generation\":%llu,\"workers\":%d,\"state\":",
               healthy && state_ok ? "ok" : "degraded", SLUICE_VERSION,
               (unsigned long long)up, (unsigned long long)(g ? g->id : 0),
               server_main->nworkers);
    state_status_json(&b);
    buf_printf(&b, ",\"stages\":[%s]}", stages.data ? stages.data : "");
    request_set_response(ctx, healthy ? 200 : 503, "application/json", b.data,
                         b.len);
    buf_release(&b);
    buf_release(&stages);
}

/* ---- /metrics -------------------------------------------------------- */

/* Stages refresh their on-demand gauges first (collect hook, when the
 * stage's descriptor is new enough to have it). */
static void stages_collect(struct generation *g)
{
    for (size_t i = 0; g && i < g->nstages; i++) {
        struct sluice_stage *s = &g->stages[i];
        if (s->desc->size >=
                offsetof(sluice_plugin, collect) + sizeof(s->desc->collect) &&
            s->desc->collect)
            s->desc->collect(s->instance);
    }
}

static void answer_metrics(struct sluice_ctx *ctx)
{
    buf_t b;
    stages_collect(ctx->gen);
    core_metrics_collect();
    buf_init(&b);
    buf_reserve(&b, 16 * 1024);
    if (metrics_render(&b) != 0) {
        buf_release(&b);
        request_set_error(ctx, 500, "server_error", NULL, NULL,
                          "out of memory");
        return;
    }
    request_set_response(ctx, 200, "text/plain; version=0.0.4; charset=utf-8",
                         NULL, 0);
    buf_release(&ctx->out_body);
    ctx->out_body = b; /* handed over: no copy of the whole page */
}

/* ---- /v1/models ---------------------------------------------------- */

static void respond_json(struct sluice_ctx *ctx, int status, json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT);
    if (s)
        request_set_response(ctx, status, "application/json", s, strlen(s));
    else
        request_set_error(ctx, 500, "server_error", NULL, NULL,
                          "out of memory");
    free(s);
    json_decref(v);
}

/* The generation's routes:, or NULL. */
static const json_t *gen_routes(const struct sluice_ctx *ctx)
{
    return ctx->gen && ctx->gen->ups ? ctx->gen->ups->routes : NULL;
}

static void answer_models(struct sluice_ctx *ctx)
{
    json_t *list =
        models_routed_list(server_main->cfg->models, gen_routes(ctx));
    if (!list) {
        request_set_error(ctx, 500, "server_error", NULL, NULL,
                          "out of memory");
        return;
    }
    respond_json(ctx, 200, list);
}

static void answer_model_info(struct sluice_ctx *ctx)
{
    char id[512];
    snprintf(id, sizeof id, "%s", ctx->aux);
    size_t n = strlen(id);
    int info = n > 5 && !strcmp(id + n - 5, "/info");
    if (info)
        id[n - 5] = '\0';
    json_t *o =
        models_routed_one(server_main->cfg->models, gen_routes(ctx), id, info);
    if (o) {
        respond_json(ctx, 200, o);
        return;
    }
    char msg[640];
    snprintf(msg, sizeof msg, "The model '%s' does not exist", id);
    request_set_error(ctx, 404, "invalid_request_error", "model_not_found",
                      "model", msg);
}

static void answer_stage_route(struct sluice_ctx *ctx)
{
    buf_t out;
    buf_init(&out);
    int status =
        ctx->sroute->fn(ctx->sstage->instance, ctx->method, ctx->url, &out);
    if (status < 100 || status > 599 || out.oom)
        request_set_error(ctx, 500, "server_error", "stage_error", NULL,
                          "a gateway stage failed to answer");
    else
        request_set_response(ctx, status, "application/json",
                             out.data ? out.data : "{}",
                             out.data ? out.len : 2);
    buf_release(&out);
}

void routes_answer(struct sluice_ctx *ctx)
{
    char msg[300];
    switch (ctx->route) {
    case ROUTE_HEALTH:
        answer_health(ctx);
        break;
    case ROUTE_MODELS:
        answer_models(ctx);
        break;
    case ROUTE_MODEL_INFO:
        answer_model_info(ctx);
        break;
    case ROUTE_ADMIN:
        admin_answer(ctx);
        break;
    case ROUTE_STAGE:
        answer_stage_route(ctx);
        break;
    case ROUTE_METRICS:
        answer_metrics(ctx);
        break;
    case ROUTE_OPENAPI:
    case ROUTE_DOCS:
    case ROUTE_REDOC:
        docs_answer(ctx);
        break;
    case ROUTE_PREFLIGHT:
        cors_answer_preflight(ctx);
        break;
    case ROUTE_BAD_METHOD:
        snprintf(msg, sizeof msg, "method %s is not allowed on %.200s",
                 ctx->method, ctx->url);
        request_set_error(ctx, 405, "invalid_request_error",
                          "method_not_allowed", NULL, msg);
        hdrs_add(&ctx->out_headers, "Allow", allowed_for(ctx, ctx->url));
        break;
    default:
        /* exactly OpenAI's answer, which SDKs and users recognise */
        snprintf(msg, sizeof msg, "Invalid URL (%s %.200s)", ctx->method,
                 ctx->url);
        request_set_error(ctx, 404, "invalid_request_error", NULL, NULL, msg);
        break;
    }
}
