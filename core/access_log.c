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
#include "worker.h"

#include <string.h>

/* Appenders without printf or strlen: this runs once per request. A
 * field's key comes as the literal ,"name": and its length (FIELD). */
#define FIELD(name) ",\"" name "\":", sizeof(",\"" name "\":") - 1

static void field_str(buf_t *b, const char *key, size_t klen, const char *v)
{
    buf_append(b, key, klen);
    buf_json_str(b, v ? v : "");
}

static void field_ll(buf_t *b, const char *key, size_t klen, long long v)
{
    buf_append(b, key, klen);
    if (v >= 0)
        buf_append_ull(b, (unsigned long long)v);
    else
        buf_lit(b, "null");
}

/* Seconds as milliseconds with three decimals ("12.345"). */
static void field_ms(buf_t *b, const char *key, size_t klen, double s)
{
    unsigned long long us = s > 0 ? (unsigned long long)(s * 1e6 + 0.5) : 0;
    char frac[4] = {'.', (char)('0' + us / 100 % 10),
                    (char)('0' + us / 10 % 10), (char)('0' + us % 10)};
    buf_append(b, key, klen);
    buf_append_ull(b, us / 1000);
    buf_append(b, frac, sizeof frac);
}

/* Append to a 1024-byte message, cutting what does not fit. */
static void msg_put(char *msg, size_t *n, const char *s, size_t len)
{
    size_t room = 1023 - *n;
    if (len > room)
        len = room;
    memcpy(msg + *n, s, len);
    *n += len;
}

void access_log_write(struct sluice_ctx *ctx, const struct request_summary *sum)
{
    int level = ctx->route == ROUTE_HEALTH || ctx->route == ROUTE_METRICS
                    ? LOG_DEBUG
                    : LOG_INFO;
    if (level < log_get_level())
        return;
    /* the worker's buffer, reused (a typical line: ~700 bytes) */
    buf_t own, *line = ctx->w ? &ctx->w->access_line : &own;
    if (line == &own)
        buf_init(&own);
    buf_reset(line);
    buf_reserve(line, 1024);
    buf_t b = *line;
    field_str(&b, FIELD("request_id"), ctx->id);
    field_str(&b, FIELD("route"), sum->route);
    field_str(&b, FIELD("method"), ctx->method);
    field_str(&b, FIELD("path"), ctx->url);
    field_str(&b, FIELD("peer"), request_peer(ctx));
    field_str(&b, FIELD("client"), sum->client);
    if (ctx->route == ROUTE_API) {
        field_str(&b, FIELD("model"), sum->model_requested);
        if (ctx->stream)
            buf_lit(&b, ",\"stream\":true");
        else
            buf_lit(&b, ",\"stream\":false");
    }
    field_ll(&b, FIELD("status"), sum->status);
    /* upstream requests sent: the same count as x-sluice-attempts */
    field_ll(&b, FIELD("attempts"), ctx->attempts_sent);
    if (ctx->chain.len) {
        /* the attempt chain: upstream, model, key label, status, result */
        buf_lit(&b, ",\"chain\":[");
        buf_append(&b, ctx->chain.data, ctx->chain.len);
        buf_lit(&b, "]");
        field_ll(&b, FIELD("fallbacks"), request_fallbacks(ctx));
    }
    field_str(&b, FIELD("key_id"), sum->key_id);
    field_ms(&b, FIELD("upstream_ms"), sum->upstream_s);
    field_ms(&b, FIELD("total_ms"), sum->total_s);
    if (sum->ttfb_s >= 0)
        field_ms(&b, FIELD("first_byte_ms"), sum->ttfb_s);
    field_ll(&b, FIELD("prompt_tokens_estimate"), sum->tokens_estimate);
    field_ll(&b, FIELD("usage_prompt_tokens"), sum->usage_prompt);
    field_ll(&b, FIELD("usage_completion_tokens"), sum->usage_completion);
    field_str(&b, FIELD("outcome"), sum->outcome);
    if (!b.oom) {
        /* the message "METHOD PATH STATUS", without printf (cut at the
         * log's message size, as its printf would) */
        char msg[1024], num[BUF_INT_TEXT];
        size_t n = 0;
        const char *st = buf_int_text(num, sum->status);
        msg_put(msg, &n, ctx->method, strlen(ctx->method));
        msg_put(msg, &n, " ", 1);
        msg_put(msg, &n, ctx->url, strlen(ctx->url));
        msg_put(msg, &n, " ", 1);
        msg_put(msg, &n, st, strlen(st));
        msg[n] = '\0';
        log_fields_msg(level, "access", b.data, msg);
    }
    if (line == &own || b.cap > 16384 || b.oom) /* not kept: odd, or huge */
        buf_release(&b);
    *line = b;
}
