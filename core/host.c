/*
 * host.c - the host function table (struct sluice_host) handed to stages:
 * the only door from a stage into the core. Each function is a thin, checked
 * wrapper over the request context or the JSON library; a NULL context or a
 * call in the wrong phase fails softly (NULL / -1), never crashes.
 */
#include "buf.h"
#include "flow.h"
#include "hdrs.h"
#include "json_api.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "probe.h"
#include "request.h"
#include "server.h"
#include "state.h"
#include "timer.h"
#include "upstream_set.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void h_log(sluice_stage *stage, sluice_log_level level, const char *fmt,
                  ...)
{
    va_list ap;
    int lv = level < SLUICE_LOG_DEBUG || level > SLUICE_LOG_ERROR ? LOG_INFO
                                                                  : (int)level;
    va_start(ap, fmt);
    log_vmsg(lv, stage ? stage->name : "plugin", fmt, ap);
    va_end(ap);
}

static char *h_mask_secret(const char *secret, char *out, size_t outlen)
{
    size_t n = secret ? strlen(secret) : 0;
    if (!out || !outlen)
        return out;
    if (n <= 8)
        snprintf(out, outlen, "%s", n ? "…" : "");
    else
        snprintf(out, outlen, "%.3s…%s", secret, secret + n - 4);
    return out;
}

static const char *h_req_method(sluice_ctx *ctx)
{
    return ctx ? ctx->method : NULL;
}

static const char *h_req_path(sluice_ctx *ctx)
{
    return ctx ? ctx->url : NULL;
}

static const char *h_req_header(sluice_ctx *ctx, const char *name)
{
    if (!ctx || !name)
        return NULL;
    return request_header(ctx, name);
}

static const char *h_req_peer(sluice_ctx *ctx)
{
    return ctx ? request_peer(ctx) : NULL;
}

static const sluice_json *h_req_body(sluice_ctx *ctx)
{
    return ctx ? (const sluice_json *)ctx->body : NULL;
}

static sluice_json *h_req_body_mut(sluice_ctx *ctx)
{
    /* a multipart body is forwarded as the client sent it: its JSON view
     * (model, stream) is read-only */
    if (!ctx || !ctx->body || ctx->phase > PHASE_UPSTREAM ||
        request_api(ctx)->body != API_BODY_JSON)
        return NULL;
    ctx->body_dirty = 1;
    return (sluice_json *)ctx->body;
}

static const char *h_req_route(sluice_ctx *ctx)
{
    return ctx ? request_api(ctx)->name : NULL;
}

static const char *h_req_model(sluice_ctx *ctx)
{
    if (ctx && ctx->model_in) /* the client's, not the one sent upstream */
        return ctx->model_in;
    if (!ctx || !ctx->body)
        return "";
    json_t *m = json_object_get(ctx->body, "model");
    return json_is_string(m) ? json_string_value(m) : "";
}

static int h_req_stream(sluice_ctx *ctx)
{
    return ctx ? ctx->stream : 0;
}

static const char *h_req_id(sluice_ctx *ctx)
{
    return ctx ? ctx->id : NULL;
}

static int h_attr_set(sluice_ctx *ctx, const char *name, const char *value)
{
    if (!ctx || !name || !value)
        return -1;
    return hdrs_set(&ctx->attrs, name, value);
}

static const char *h_attr_get(sluice_ctx *ctx, const char *name)
{
    return ctx && name ? hdrs_get(&ctx->attrs, name) : NULL;
}

static void h_local_set(sluice_ctx *ctx, void *data)
{
    if (ctx && ctx->locals && ctx->cur_stage >= 0)
        ctx->locals[ctx->cur_stage] = data;
}

static void *h_local_get(sluice_ctx *ctx)
{
    if (ctx && ctx->locals && ctx->cur_stage >= 0)
        return ctx->locals[ctx->cur_stage];
    return NULL;
}

static int h_up_header_set(sluice_ctx *ctx, const char *name, const char *value)
{
    if (!ctx || !name || !value || strpbrk(name, ":\r\n") ||
        strpbrk(value, "\r\n"))
        return -1;
    return hdrs_set(&ctx->up_headers, name, value);
}

static int h_attempt_no(sluice_ctx *ctx)
{
    return ctx ? ctx->attempt : 0;
}

static sluice_attempt_result h_attempt_result(sluice_ctx *ctx)
{
    return ctx ? ctx->result : SLUICE_ATTEMPT_NONE;
}

static int h_resp_status(sluice_ctx *ctx)
{
    return ctx ? ctx->status : 0;
}

static const char *h_resp_header(sluice_ctx *ctx, const char *name)
{
    return ctx && name ? hdrs_get(&ctx->resp_headers, name) : NULL;
}

static const char *h_resp_body(sluice_ctx *ctx, size_t *len)
{
    if (!ctx || ctx->phase == PHASE_STREAMING) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = ctx->resp_body.len;
    return ctx->resp_body.data ? ctx->resp_body.data : "";
}

static uint64_t h_attempt_ms(sluice_ctx *ctx)
{
    if (!ctx || !ctx->attempt_t0)
        return 0;
    uint64_t end =
        ctx->attempt_t1 >= ctx->attempt_t0 ? ctx->attempt_t1 : time_now_ms();
    return end - ctx->attempt_t0;
}

static int h_respond(sluice_ctx *ctx, int status, const char *content_type,
                     const char *body, size_t len)
{
    if (!ctx || status < 100 || status > 599 || ctx->phase >= PHASE_STREAMING)
        return -1;
    return request_set_response(ctx, status, content_type, body, len);
}

static int h_respond_error(sluice_ctx *ctx, int status, const char *type,
                           const char *code, const char *param,
                           const char *message)
{
    if (!ctx || status < 100 || status > 599 || ctx->phase >= PHASE_STREAMING)
        return -1;
    return request_set_error(ctx, status, type, code, param, message);
}

static int h_resp_header_add(sluice_ctx *ctx, const char *name,
                             const char *value)
{
    if (!ctx || !name || !value || strpbrk(name, ":\r\n") ||
        strpbrk(value, "\r\n") || ctx->stream_queued)
        return -1;
    return hdrs_add(&ctx->out_headers, name, value);
}

static void h_retry_after_ms(sluice_ctx *ctx, uint32_t ms)
{
    if (ctx)
        ctx->retry_ms = ms;
}

static int h_chunk_forward(sluice_ctx *ctx, const char *data, size_t len)
{
    if (!ctx || (!data && len))
        return -1;
    return pipeline_chunk_forward(ctx, data, len);
}

static int h_buf_append(sluice_buf *b, const char *data, size_t len)
{
    return b ? buf_append(b, data, len) : -1;
}

static int h_buf_printf(sluice_buf *b, const char *fmt, ...)
{
    va_list ap;
    if (!b)
        return -1;
    va_start(ap, fmt);
    int rc = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

static int h_buf_json_str(sluice_buf *b, const char *s)
{
    return b ? buf_json_str(b, s) : -1;
}

static int admin_add(sluice_stage *stage, const char *action, const char *alias,
                     sluice_admin_fn fn, sluice_admin_ctx_fn ctx_fn)
{
    if (!stage || !action || !*action || (!fn && !ctx_fn))
        return -1;
    for (const char *p = action; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
            return -1;
    struct admin_action *v =
        realloc(stage->actions, (stage->nactions + 1) * sizeof(*v));
    if (!v)
        return -1;
    stage->actions = v;
    struct admin_action *a = &v[stage->nactions];
    a->action = strdup(action);
    a->alias = alias ? strdup(alias) : NULL;
    a->fn = fn;
    a->ctx_fn = ctx_fn;
    if (!a->action || (alias && !a->alias)) {
        free(a->action);
        free(a->alias);
        return -1;
    }
    stage->nactions++;
    return 0;
}

static int h_admin_register(sluice_stage *stage, const char *action,
                            const char *alias, sluice_admin_fn fn)
{
    return fn ? admin_add(stage, action, alias, fn, NULL) : -1;
}

static int h_admin_register_ctx(sluice_stage *stage, const char *action,
                                const char *alias, sluice_admin_ctx_fn fn)
{
    return fn ? admin_add(stage, action, alias, NULL, fn) : -1;
}

static const char *h_req_query(sluice_ctx *ctx, const char *name)
{
    if (!ctx || !ctx->conn || !name)
        return NULL;
    return MHD_lookup_connection_value(ctx->conn, MHD_GET_ARGUMENT_KIND, name);
}

static const char *h_upstream_base_url(void)
{
    return server_main && server_main->cfg ? server_main->cfg->base_url : "";
}

static uint64_t h_upstream_timeout_ms(void)
{
    return server_main && server_main->cfg
               ? (uint64_t)server_main->cfg->timeout_ms
               : 120000;
}

static int h_route_register(sluice_stage *stage, const char *method,
                            const char *path, sluice_route_fn fn)
{
    if (!stage || !method || !path || path[0] != '/' || !fn ||
        strlen(method) >= sizeof(((struct stage_route *)0)->method))
        return -1;
    size_t n = strlen(path);
    int prefix = n >= 2 && !strcmp(path + n - 2, "/*");
    struct stage_route *v =
        realloc(stage->routes, (stage->nroutes + 1) * sizeof(*v));
    if (!v)
        return -1;
    stage->routes = v;
    struct stage_route *r = &v[stage->nroutes];
    snprintf(r->method, sizeof r->method, "%s", method);
    r->path = strndup(path, prefix ? n - 2 : n);
    r->prefix = prefix;
    r->fn = fn;
    if (!r->path)
        return -1;
    stage->nroutes++;
    return 0;
}

static int h_stream_configure(sluice_ctx *ctx, uint32_t heartbeat_ms,
                              uint32_t idle_ms, size_t buffer_max)
{
    return ctx ? flow_stream_configure(ctx, heartbeat_ms, idle_ms, buffer_max)
               : -1;
}

static const struct upstream_set *stage_ups(sluice_stage *stage)
{
    return stage && stage->gen ? stage->gen->ups : NULL;
}

static size_t h_upstream_count(sluice_stage *stage)
{
    const struct upstream_set *u = stage_ups(stage);
    return u ? u->n : 0;
}

static const sluice_json *h_upstream_at(sluice_stage *stage, size_t i)
{
    const struct upstream_set *u = stage_ups(stage);
    return u ? (const sluice_json *)json_array_get(u->json, i) : NULL;
}

static const sluice_json *h_model_routes(sluice_stage *stage)
{
    const struct upstream_set *u = stage_ups(stage);
    return u ? (const sluice_json *)u->routes : NULL;
}

static const char *h_stage_name(sluice_stage *stage)
{
    return stage ? stage->name : NULL;
}

static sluice_metric *h_metric_register(sluice_stage *stage,
                                        sluice_metric_type type,
                                        const char *name, const char *help,
                                        const char *label_names,
                                        const double *buckets, size_t nbuckets)
{
    char err[256];
    sluice_metric *m = metrics_register(type, name, help, label_names, buckets,
                                        nbuckets, err, sizeof err);
    if (!m)
        log_msg(LOG_ERROR, stage ? stage->name : "plugin",
                "metric_register: %s", err);
    return m;
}

/* <base_url><path> into url and the probe's time limit; -1 if unusable. */
static int probe_target(sluice_stage *stage, const char *path, char *url,
                        size_t n, long *timeout)
{
    if (!stage || !path || path[0] != '/' || !server_main ||
        !server_main->cfg || !server_main->cfg->base_url)
        return -1;
    if ((size_t)snprintf(url, n, "%s%s", server_main->cfg->base_url, path) >= n)
        return -1;
    *timeout = server_main->cfg->connect_timeout_ms * 2;
    if (*timeout > server_main->cfg->timeout_ms)
        *timeout = server_main->cfg->timeout_ms;
    return 0;
}

static int h_http_probe(sluice_stage *stage, const char *path,
                        const char *authorization, sluice_probe_fn done,
                        void *arg)
{
    char url[2048];
    long timeout;
    if (!done || probe_target(stage, path, url, sizeof url, &timeout) != 0)
        return -1;
    return probe_submit(stage, url, authorization, timeout, done, arg);
}

static void *h_req_alloc(sluice_ctx *ctx, size_t n)
{
    return ctx ? arena_calloc(&ctx->pool, n) : NULL;
}

static int h_http_fetch(sluice_stage *stage, const char *path,
                        const char *authorization, sluice_fetch_fn done,
                        void *arg)
{
    char url[2048];
    long timeout;
    if (!done || probe_target(stage, path, url, sizeof url, &timeout) != 0)
        return -1;
    return probe_submit_fetch(stage, url, authorization, timeout, done, arg);
}

/* GET <u's base_url><path>?<u's query> with the key sent u's way. */
static int h_req_resume(sluice_ctx *ctx, sluice_verdict v)
{
    if (!ctx)
        return -1;
    if (ctx->w)
        return flow_resume_request(ctx, v);
    return pipeline_pending_hook ? pipeline_pending_hook(ctx, v) : -1;
}

static int h_upstream_probe(sluice_stage *stage, const char *upstream,
                            const char *path, const char *authorization,
                            sluice_probe_fn done, void *arg)
{
    const struct upstream_def *u =
        upstream ? upstream_set_find(stage_ups(stage), upstream) : NULL;
    const struct config *cfg = server_main ? server_main->cfg : NULL;
    struct curl_slist *hdrs;
    buf_t url;
    long timeout;
    int rc = -1;
    if (!u || !done || !cfg || !path || path[0] != '/')
        return -1;
    buf_init(&url);
    if (upstream_def_url(u, "", path, NULL, &url) != 0) {
        buf_release(&url);
        return -1;
    }
    timeout = (u->connect_timeout_ms ? u->connect_timeout_ms
                                     : cfg->connect_timeout_ms) *
              2;
    if (u->timeout_ms && timeout > u->timeout_ms)
        timeout = u->timeout_ms;
    /* its own ca_file / verify, else upstream:'s */
    const char *ca = u->has_tls ? u->ca_file : cfg->tls.ca_file;
    int verify = u->has_tls ? u->verify : cfg->tls.verify;
    if ((hdrs = upstream_def_probe_headers(u, authorization)))
        rc = probe_submit_headers(stage, url.data, hdrs, ca, verify, timeout,
                                  done, arg);
    buf_release(&url);
    return rc;
}

const sluice_host host_table = {.size = sizeof(sluice_host),
                                .abi_major = SLUICE_ABI_MAJOR,
                                .abi_minor = SLUICE_ABI_MINOR,
                                .log = h_log,
                                .now_ms = time_now_ms,
                                .wall_ms = time_wall_ms,
                                .mask_secret = h_mask_secret,
                                .req_method = h_req_method,
                                .req_path = h_req_path,
                                .req_header = h_req_header,
                                .req_peer = h_req_peer,
                                .req_body = h_req_body,
                                .req_body_mut = h_req_body_mut,
                                .req_model = h_req_model,
                                .req_stream = h_req_stream,
                                .req_id = h_req_id,
                                .attr_set = h_attr_set,
                                .attr_get = h_attr_get,
                                .local_set = h_local_set,
                                .local_get = h_local_get,
                                .up_header_set = h_up_header_set,
                                .attempt_no = h_attempt_no,
                                .attempt_result = h_attempt_result,
                                .resp_status = h_resp_status,
                                .resp_header = h_resp_header,
                                .resp_body = h_resp_body,
                                .attempt_ms = h_attempt_ms,
                                .respond = h_respond,
                                .respond_error = h_respond_error,
                                .resp_header_add = h_resp_header_add,
                                .retry_after_ms = h_retry_after_ms,
                                .chunk_forward = h_chunk_forward,
                                .buf_append = h_buf_append,
                                .buf_printf = h_buf_printf,
                                .buf_json_str = h_buf_json_str,
                                .admin_register = h_admin_register,
                                .upstream_base_url = h_upstream_base_url,
                                .upstream_timeout_ms = h_upstream_timeout_ms,
                                .stage_name = h_stage_name,
                                .route_register = h_route_register,
                                .stream_configure = h_stream_configure,
                                .metric_register = h_metric_register,
                                .metric_add = metrics_add,
                                .metric_set = metrics_set,
                                .metric_observe = metrics_observe,
                                .http_probe = h_http_probe,
                                .state_incr = state_incr,
                                .state_put = state_put,
                                .state_del = state_del,
                                .state_get = state_get,
                                .state_watch = state_watch,
                                .state_list = state_list,
                                .req_route = h_req_route,
                                .admin_register_ctx = h_admin_register_ctx,
                                .req_query = h_req_query,
                                .upstream_count = h_upstream_count,
                                .upstream_at = h_upstream_at,
                                .model_routes = h_model_routes,
                                .http_fetch = h_http_fetch,
                                .upstream_probe = h_upstream_probe,
                                .state_status = state_status,
                                .req_alloc = h_req_alloc,
                                .req_resume = h_req_resume,
                                JSON_API_MEMBERS};
