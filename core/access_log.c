/*
 * access_log.c - one log line per request at its completion ("access"
 * component, INFO; DEBUG for /health and /metrics, which probes and
 * scrapers call all day). Fields: request id, route, method, path, client,
 * model, stream, status, attempts, key id (already masked by the stage
 * that set it), upstream/total/first-byte times in ms, estimated and
 * reported tokens, outcome. Never a key or token: the key id is a masked
 * form, and the logger scrubs anything key-shaped that slips through.
 */
#include "access_log.h"
#include "buf.h"
#include "log.h"
#include "request.h"

static void field_str(buf_t *b, const char *name, const char *v)
{
    buf_printf(b, ",\"%s\":", name);
    buf_json_str(b, v ? v : "");
}

static void field_ll(buf_t *b, const char *name, long long v)
{
    if (v >= 0)
        buf_printf(b, ",\"%s\":%lld", name, v);
    else
        buf_printf(b, ",\"%s\":null", name);
}

void access_log_write(struct sluice_ctx *ctx,
                      const struct request_summary *sum)
{
    int level = ctx->route == ROUTE_HEALTH || ctx->route == ROUTE_METRICS
                    ? LOG_DEBUG
                    : LOG_INFO;
    if (level < log_get_level())
        return;
    buf_t b;
    buf_init(&b);
    field_str(&b, "request_id", ctx->id);
    field_str(&b, "route", sum->route);
    field_str(&b, "method", ctx->method);
    field_str(&b, "path", ctx->url);
    field_str(&b, "peer", ctx->peer);
    field_str(&b, "client", sum->client);
    if (ctx->route == ROUTE_CHAT) {
        field_str(&b, "model", ctx->model ? ctx->model : "");
        buf_printf(&b, ",\"stream\":%s", ctx->stream ? "true" : "false");
    }
    buf_printf(&b, ",\"status\":%d,\"attempts\":%d", sum->status,
               ctx->attempt);
    field_str(&b, "key_id", sum->key_id);
    buf_printf(&b, ",\"upstream_ms\":%.3f,\"total_ms\":%.3f",
               sum->upstream_s * 1e3, sum->total_s * 1e3);
    if (sum->ttfb_s >= 0)
        buf_printf(&b, ",\"first_byte_ms\":%.3f", sum->ttfb_s * 1e3);
    field_ll(&b, "prompt_tokens_estimate", sum->tokens_estimate);
    field_ll(&b, "usage_prompt_tokens", sum->usage_prompt);
    field_ll(&b, "usage_completion_tokens", sum->usage_completion);
    field_str(&b, "outcome", sum->outcome);
    if (!b.oom)
        log_fields(level, "access", b.data, "%s %s %d", ctx->method,
                   ctx->url, sum->status);
    buf_release(&b);
}
