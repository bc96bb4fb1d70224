/*
 * stage_harness.c - see stage_harness.h. Contexts are built the way
 * request_new() builds them, minus the connection and the worker.
 */
#include "stage_harness.h"
#include "state.h"
#include "metrics.h"

#include <stdlib.h>
#include <string.h>

int sh_state_open(const char *path)
{
    struct state_conf sc = {.backend = "local", .path = (char *)path};
    char err[512];
    if (state_open(path ? &sc : NULL, "stage-test", err, sizeof err) != 0) {
        fprintf(stderr, "sh_state_open: %s\n", err);
        return -1;
    }
    return 0;
}

struct generation *sh_gen_new(const char *config_json, char *err, size_t errlen)
{
    const sluice_plugin *descs[1] = {sluice_plugin_entry()};
    json_error_t je;
    json_t *cfg = json_loads(config_json ? config_json : "{}", 0, &je);
    if (!cfg) {
        snprintf(err, errlen, "bad test config: %s", je.text);
        return NULL;
    }
    const sluice_json *cfgs[1] = {(const sluice_json *)cfg};
    if (!state_is_open() && sh_state_open(NULL) != 0) {
        snprintf(err, errlen, "cannot open the state layer");
        json_decref(cfg);
        return NULL;
    }
    struct generation *g = generation_from_descs(descs, cfgs, 1, err, errlen);
    json_decref(cfg);
    return g;
}

void sh_gen_free(struct generation *g)
{
    generation_unpin(g);
}

struct sluice_ctx *sh_ctx_new(struct generation *g, const char *body_json,
                              const char *const *headers)
{
    struct sluice_ctx *ctx = calloc(1, sizeof(*ctx));
    ctx->gen = g;
    atomic_fetch_add(&g->refs, 1);
    ctx->locals = calloc(g->nstages ? g->nstages : 1, sizeof(void *));
    ctx->cur_stage = ctx->chunk_stage = -1;
    ctx->refs = 1;
    ctx->route = ROUTE_API;
    ctx->t_start = time_now_ms();
    ctx->deadline = ctx->t_start + 120000;
    ctx->sbuf_max = 64 * 1024;
    snprintf(ctx->method, sizeof ctx->method, "POST");
    ctx->url = strdup("/v1/chat/completions");
    snprintf(ctx->id, sizeof ctx->id, "req-test");
    snprintf(ctx->peer, sizeof ctx->peer, "127.0.0.1");
    timer_init(&ctx->timer, NULL, ctx);
    timer_init(&ctx->dl_timer, NULL, ctx);
    for (size_t i = 0; headers && headers[i] && headers[i + 1]; i += 2)
        hdrs_add(&ctx->req_hdrs, headers[i], headers[i + 1]);
    if (body_json) {
        buf_append(&ctx->body_in, body_json, strlen(body_json));
        ctx->body = json_loads(body_json, 0, NULL);
        ctx->stream = json_is_true(json_object_get(ctx->body, "stream"));
    }
    return ctx;
}

void sh_ctx_free(struct sluice_ctx *ctx)
{
    if (ctx)
        request_free(ctx);
}

void sh_ctx_upstream(struct sluice_ctx *ctx, sluice_attempt_result result,
                     int status, const char *const *headers, const char *body)
{
    ctx->result = result;
    ctx->status = status;
    ctx->attempt_t1 = time_now_ms();
    hdrs_clear(&ctx->resp_headers);
    for (size_t i = 0; headers && headers[i] && headers[i + 1]; i += 2)
        hdrs_add(&ctx->resp_headers, headers[i], headers[i + 1]);
    buf_reset(&ctx->resp_body);
    if (body)
        buf_append(&ctx->resp_body, body, strlen(body));
}

sluice_verdict sh_on_request(struct sluice_ctx *ctx)
{
    return pipeline_on_request(ctx);
}

sluice_verdict sh_on_attempt(struct sluice_ctx *ctx)
{
    ctx->attempt++;
    hdrs_clear(&ctx->up_headers);
    ctx->attempt_t0 = time_now_ms();
    ctx->result = SLUICE_ATTEMPT_NONE;
    ctx->status = 0;
    return pipeline_on_attempt(ctx);
}

sluice_verdict sh_on_response(struct sluice_ctx *ctx)
{
    return pipeline_on_response(ctx);
}

sluice_verdict sh_on_chunk(struct sluice_ctx *ctx, const char *data, size_t len)
{
    ctx->phase = PHASE_STREAMING;
    return pipeline_on_chunk(ctx, data, len);
}

void sh_on_complete(struct sluice_ctx *ctx)
{
    pipeline_on_complete(ctx);
}

const char *sh_up_header(struct sluice_ctx *ctx, const char *name)
{
    return hdrs_get(&ctx->up_headers, name);
}

const char *sh_out_header(struct sluice_ctx *ctx, const char *name)
{
    return hdrs_get(&ctx->out_headers, name);
}

int sh_out_status(struct sluice_ctx *ctx)
{
    return ctx->out_status;
}

const char *sh_out_body(struct sluice_ctx *ctx)
{
    return ctx->out_body.data ? ctx->out_body.data : "";
}

const char *sh_streamed(struct sluice_ctx *ctx, size_t *len)
{
    *len = ctx->sbuf.len - ctx->soff;
    return ctx->sbuf.data ? ctx->sbuf.data + ctx->soff : "";
}

char *sh_metrics_text(struct generation *g)
{
    for (size_t i = 0; g && i < g->nstages; i++) {
        const sluice_plugin *d = g->stages[i].desc;
        if (SLUICE_PLUGIN_HAS(d, collect) && d->collect)
            d->collect(g->stages[i].instance);
    }
    buf_t b;
    buf_init(&b);
    if (metrics_render(&b) != 0) {
        buf_release(&b);
        return strdup("");
    }
    char *s = strdup(b.data ? b.data : "");
    buf_release(&b);
    return s;
}

double sh_metric(struct generation *g, const char *sample)
{
    char *text = sh_metrics_text(g);
    size_t n = strlen(sample);
    double v = -1;
    for (const char *p = text; p && *p;) {
        if (!strncmp(p, sample, n) && p[n] == ' ') {
            v = strtod(p + n + 1, NULL);
            break;
        }
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    free(text);
    return v;
}
