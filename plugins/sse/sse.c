/*
 * sse.c - the sse stage: frames the upstream's text/event-stream into
 * events and hands each whole event, at once, to the later stages' on_chunk
 * and the client; sets the streaming response headers; arms the core's
 * keep-alive comments and idle timeout; asks the upstream for the usage
 * chunk when configured to, reads it into request attributes, and drops it
 * before a client that did not ask for it.
 *
 * Events are re-framed canonically ("event:", "id:", "retry:", one "data:"
 * per data line, "\n" line ends, a blank line) rather than forwarded as the
 * upstream's bytes: what reaches later stages and the client is exactly what
 * the parser understood, one event per on_chunk call with one kind of line
 * end, whatever mix of "\r", "\r\n" and "\n" the upstream used. Comment
 * lines between events are forwarded (they are the upstream's keep-alives);
 * a comment inside an event is dropped.
 *
 * Not here: the timers themselves and the error event that ends a broken
 * stream (the core writes both).
 */
#include "sluice.h"
#include "sse_parser.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SSE_DEFAULT_MAX_EVENT (1024 * 1024)

struct sse_cfg {
    const sluice_host *host; /* the table init got: no file-scope global */
    uint32_t heartbeat_ms;
    uint32_t idle_ms;
    size_t buffer_bytes;
    size_t max_event;
    int inject_usage;
    int strict;
    sluice_stage *self;
    /* /metrics (NULL when the host has none) */
    sluice_metric *m_events; /* events forwarded */
    sluice_metric *m_usage;  /* usage chunks seen, by action */
    sluice_metric *m_errors; /* streams broken, by code */
};

/* Per-request state (local slot), freed in on_complete. */
struct sse_req {
    struct sse_parser parser;
    sluice_ctx *ctx;
    struct sse_cfg *cfg;
    int client_asked_usage; /* stream_options.include_usage from the client */
    int injected;           /* we set it */
    int headers_set;
    int parser_ready;
    int forward_failed;
    char *out; /* canonical framing of one event */
    size_t out_len, out_cap;
};

/* ---- config ---------------------------------------------------------- */

static int sse_cfg_ms(const sluice_host *H, const sluice_json *config,
                      const char *key, double def, uint32_t *out, char *err,
                      size_t errlen)
{
    double v;
    if (H->cfg_real(config, key, def, &v) != 0 || v < 0 || v > 86400) {
        snprintf(err, errlen,
                 "%s must be a number of seconds in 0..86400 "
                 "(0 = off)",
                 key);
        return -1;
    }
    *out = (uint32_t)(v * 1000.0 + 0.5);
    return 0;
}

static int sse_cfg_parse(const sluice_json *config, struct sse_cfg *c,
                         char *err, size_t errlen)
{
    const sluice_host *H = c->host;
    static const char *const known[] = {"heartbeat_s",
                                        "idle_timeout_s",
                                        "buffer_bytes",
                                        "max_event_bytes",
                                        "inject_usage",
                                        "strict",
                                        NULL};
    int64_t buffer, max_event;
    if (config && H->json_type(config) == SLUICE_JSON_OBJECT) {
        for (void *it = H->json_iter(config); it;
             it = H->json_iter_next(config, it)) {
            const char *k = H->json_iter_key(it);
            const char *const *p = known;
            while (*p && strcmp(*p, k))
                p++;
            if (!*p) {
                snprintf(err, errlen,
                         "unknown option \"%s\" (known: "
                         "heartbeat_s, idle_timeout_s, buffer_bytes, "
                         "max_event_bytes, inject_usage, strict)",
                         k);
                return -1;
            }
        }
    }
    if (sse_cfg_ms(H, config, "heartbeat_s", 15, &c->heartbeat_ms, err,
                   errlen) != 0 ||
        sse_cfg_ms(H, config, "idle_timeout_s", 60, &c->idle_ms, err, errlen) !=
            0)
        return -1;
    if (H->cfg_int(config, "buffer_bytes", 64 * 1024, &buffer) != 0 ||
        buffer < 1024 || buffer > 64 * 1024 * 1024) {
        snprintf(err, errlen,
                 "buffer_bytes must be an integer in "
                 "1024..67108864");
        return -1;
    }
    if (H->cfg_int(config, "max_event_bytes", SSE_DEFAULT_MAX_EVENT,
                   &max_event) != 0 ||
        max_event < 1024 || max_event > 64 * 1024 * 1024) {
        snprintf(err, errlen,
                 "max_event_bytes must be an integer in "
                 "1024..67108864");
        return -1;
    }
    if (H->cfg_bool(config, "inject_usage", 0, &c->inject_usage) != 0) {
        snprintf(err, errlen, "inject_usage must be true or false");
        return -1;
    }
    if (H->cfg_bool(config, "strict", 1, &c->strict) != 0) {
        snprintf(err, errlen, "strict must be true or false");
        return -1;
    }
    c->buffer_bytes = (size_t)buffer;
    c->max_event = (size_t)max_event;
    return 0;
}

/* ---- metrics ---------------------------------------------------------- */

static void sse_metrics_register(struct sse_cfg *c)
{
    const sluice_host *H = c->host;
    c->m_events = H->metric_register(
        c->self, SLUICE_METRIC_COUNTER, "sluice_sse_events_total",
        "Stream events forwarded to the client (keep-alive comments and "
        "dropped usage chunks not included).",
        NULL, NULL, 0);
    c->m_usage = H->metric_register(
        c->self, SLUICE_METRIC_COUNTER, "sluice_sse_usage_chunks_total",
        "Usage chunks seen in streams: forwarded, or dropped (asked for by "
        "inject_usage, not by the client).",
        "action", NULL, 0);
    c->m_errors = H->metric_register(
        c->self, SLUICE_METRIC_COUNTER, "sluice_sse_stream_errors_total",
        "Upstream streams the stage could not pass on whole, by code "
        "(bad_content_type, event_too_large, unknown_field, out_of_memory, "
        "truncated).",
        "code", NULL, 0);
}

static void sse_count(const struct sse_cfg *c, sluice_metric *m,
                      const char *label)
{
    if (m)
        c->host->metric_add(m, label ? (const char *const[]){label} : NULL, 1);
}

static int sse_init(const sluice_host *host, sluice_stage *self,
                    const sluice_json *config, void **instance, char *err,
                    size_t errlen)
{
    struct sse_cfg *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->host = host;
    if (sse_cfg_parse(config, c, err, errlen) != 0) {
        free(c);
        return -1;
    }
    c->self = self;
    sse_metrics_register(c);
    *instance = c;
    return 0;
}

static void sse_destroy(void *instance)
{
    free(instance);
}

/* ---- per request ------------------------------------------------------ */

static struct sse_req *sse_req_get(struct sse_cfg *c, sluice_ctx *ctx)
{
    const sluice_host *H = c->host;
    struct sse_req *r = H->local_get(ctx);
    if (r)
        return r;
    r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->ctx = ctx;
    r->cfg = c;
    H->local_set(ctx, r);
    return r;
}

static void sse_on_complete(void *instance, sluice_ctx *ctx)
{
    const sluice_host *H = ((const struct sse_cfg *)instance)->host;
    (void)instance;
    struct sse_req *r = H->local_get(ctx);
    if (!r)
        return;
    sse_parser_free(&r->parser);
    free(r->out);
    free(r);
    H->local_set(ctx, NULL);
}

/* stream_options.include_usage: note whether the client asked; ask the
 * upstream anyway when inject_usage is on, or when an earlier stage set the
 * attribute "usage_wanted" (the usage stage, which charges what streams
 * used). The injected usage chunk is dropped again before the client. */
static sluice_verdict sse_on_request(void *instance, sluice_ctx *ctx)
{
    const sluice_host *H = ((const struct sse_cfg *)instance)->host;
    struct sse_cfg *c = instance;
    if (!H->req_stream(ctx))
        return SLUICE_CONTINUE;
    struct sse_req *r = sse_req_get(c, ctx);
    if (!r)
        return SLUICE_ERROR;
    const sluice_json *so = H->json_get(H->req_body(ctx), "stream_options");
    r->client_asked_usage = H->json_bool(H->json_get(so, "include_usage"));
    /* stream_options exists in chat and completions only (the Responses
     * API always ends with its usage) */
    const char *route = SLUICE_HOST_HAS(H, req_route) && H->req_route
                            ? H->req_route(ctx)
                            : "chat";
    if ((!c->inject_usage && !H->attr_get(ctx, "usage_wanted")) ||
        r->client_asked_usage ||
        (strcmp(route, "chat") && strcmp(route, "completions")))
        return SLUICE_CONTINUE;
    sluice_json *body = H->req_body_mut(ctx);
    sluice_json *mso = body ? H->json_set_object(body, "stream_options") : NULL;
    if (!mso || H->json_set_bool(mso, "include_usage", 1) != 0) {
        H->log(c->self, SLUICE_LOG_WARN,
               "request %s: could not set stream_options.include_usage",
               H->req_id(ctx));
        return SLUICE_CONTINUE;
    }
    r->injected = 1;
    return SLUICE_CONTINUE;
}

/* "text/event-stream", with parameters or not, any case. */
static int sse_is_event_stream(const char *ct)
{
    static const char want[] = "text/event-stream";
    while (*ct == ' ')
        ct++;
    for (size_t i = 0; i < sizeof want - 1; i++)
        if (!ct[i] || (ct[i] | 0x20) != want[i])
            return 0;
    char next = ct[sizeof want - 1];
    return next == '\0' || next == ';' || next == ' ';
}

static int sse_event_cb(void *arg, const struct sse_event *ev);
static int sse_comment_cb(void *arg, const char *text, size_t len);

/* A 2xx answer to a streamed request: the stream is about to be committed.
 * Set the headers, arm the core's timers, get the parser ready. */
static sluice_verdict sse_on_response(void *instance, sluice_ctx *ctx)
{
    const sluice_host *H = ((const struct sse_cfg *)instance)->host;
    struct sse_cfg *c = instance;
    int st = H->resp_status(ctx);
    if (!H->req_stream(ctx) || st < 200 || st >= 300)
        return SLUICE_CONTINUE;
    struct sse_req *r = sse_req_get(c, ctx);
    if (!r)
        return SLUICE_ERROR;
    const char *ct = H->resp_header(ctx, "content-type");
    if (ct && !sse_is_event_stream(ct)) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "the upstream answered a streamed request "
                 "with content type \"%.100s\", not text/event-stream",
                 ct);
        H->log(c->self, SLUICE_LOG_WARN, "request %s: %s", H->req_id(ctx), msg);
        sse_count(c, c->m_errors, "bad_content_type");
        H->respond_error(ctx, 502, "upstream_error", "bad_upstream_stream",
                         NULL, msg);
        return SLUICE_RESPOND;
    }
    if (!r->headers_set) {
        H->resp_header_add(ctx, "Content-Type", "text/event-stream");
        H->resp_header_add(ctx, "Cache-Control", "no-cache");
        H->resp_header_add(ctx, "X-Accel-Buffering", "no");
        r->headers_set = 1;
    }
    if (SLUICE_HOST_HAS(H, stream_configure) && H->stream_configure)
        H->stream_configure(ctx, c->heartbeat_ms, c->idle_ms, c->buffer_bytes);
    if (r->parser_ready)
        sse_parser_free(&r->parser);
    sse_parser_init(&r->parser, c->max_event, c->strict, sse_event_cb,
                    sse_comment_cb, r);
    r->parser_ready = 1;
    return SLUICE_CONTINUE;
}

/* ---- framing out ------------------------------------------------------ */

static int sse_out_put(struct sse_req *r, const char *s, size_t n)
{
    if (r->out_len + n > r->out_cap) {
        size_t cap = r->out_cap ? r->out_cap : 512;
        while (cap < r->out_len + n)
            cap *= 2;
        char *p = realloc(r->out, cap);
        if (!p)
            return -1;
        r->out = p;
        r->out_cap = cap;
    }
    memcpy(r->out + r->out_len, s, n);
    r->out_len += n;
    return 0;
}

/* "name: value\n", or "name:\n" for an empty value. */
static int sse_out_field(struct sse_req *r, const char *name, const char *v,
                         size_t n)
{
    int rc = sse_out_put(r, name, strlen(name));
    rc |= n ? sse_out_put(r, ": ", 2) : sse_out_put(r, ":", 1);
    rc |= sse_out_put(r, v, n);
    rc |= sse_out_put(r, "\n", 1);
    return rc ? -1 : 0;
}

static int sse_frame(struct sse_req *r, const struct sse_event *ev)
{
    char num[32];
    r->out_len = 0;
    if (ev->has_event &&
        sse_out_field(r, "event", ev->event, ev->event_len) != 0)
        return -1;
    if (ev->has_id && sse_out_field(r, "id", ev->id, ev->id_len) != 0)
        return -1;
    if (ev->has_retry) {
        int n =
            snprintf(num, sizeof num, "%llu", (unsigned long long)ev->retry);
        if (sse_out_field(r, "retry", num, (size_t)n) != 0)
            return -1;
    }
    if (ev->has_data) {
        const char *s = ev->data, *end = ev->data + ev->data_len;
        for (;;) {
            const char *nl = memchr(s, '\n', (size_t)(end - s));
            const char *e = nl ? nl : end;
            if (sse_out_field(r, "data", s, (size_t)(e - s)) != 0)
                return -1;
            if (!nl)
                break;
            s = nl + 1;
        }
    }
    return sse_out_put(r, "\n", 1);
}

/* ---- usage ------------------------------------------------------------ */

static void sse_attr_int(const sluice_host *H, sluice_ctx *ctx,
                         const char *name, const sluice_json *v)
{
    char num[32];
    if (H->json_type(v) != SLUICE_JSON_INT)
        return;
    snprintf(num, sizeof num, "%lld", (long long)H->json_int(v));
    H->attr_set(ctx, name, num);
}

/* A usage object into the usage_* attributes; `in` and `out` name its
 * prompt and completion counts (chat's or the Responses API's). */
static void sse_usage_attrs(const sluice_host *H, sluice_ctx *ctx,
                            const sluice_json *u, const char *in,
                            const char *out)
{
    sse_attr_int(H, ctx, "usage_prompt_tokens", H->json_get(u, in));
    sse_attr_int(H, ctx, "usage_completion_tokens", H->json_get(u, out));
    sse_attr_int(H, ctx, "usage_total_tokens", H->json_get(u, "total_tokens"));
    /* chat: prompt_tokens_details; Responses: input_tokens_details */
    const sluice_json *d = H->json_get(u, "prompt_tokens_details");
    if (!d)
        d = H->json_get(u, "input_tokens_details");
    if (H->json_get(d, "cached_tokens"))
        sse_attr_int(H, ctx, "usage_cached_tokens",
                     H->json_get(d, "cached_tokens"));
}

/* The Responses API's usage rides on response.completed (and .failed,
 * .incomplete): response.usage.{input,output,total}_tokens. */
static void sse_usage_responses(struct sse_req *r, const struct sse_event *ev)
{
    const sluice_host *H = r->cfg->host;
    sluice_json *doc = H->json_parse(ev->data, ev->data_len, NULL, 0);
    const sluice_json *u = H->json_get(H->json_get(doc, "response"), "usage");
    if (H->json_type(u) == SLUICE_JSON_OBJECT) {
        sse_usage_attrs(H, r->ctx, u, "input_tokens", "output_tokens");
        sse_count(r->cfg, r->cfg->m_usage, "forwarded");
    }
    if (doc)
        H->json_free(doc);
}

/* Read a usage object into attributes. Returns 1 when the event is a
 * usage-only chunk (no choices) the client did not ask for: drop it. */
static int sse_usage(struct sse_req *r, const struct sse_event *ev)
{
    const sluice_host *H = r->cfg->host;
    /* cheap test first: most chunks carry no token counts at all (with
     * include_usage they carry "usage":null) */
    static const char key[] = "\"prompt_tokens\"";
    static const char rkey[] = "\"input_tokens\"";
    if (ev->data_len < sizeof key)
        return 0;
    if (!memmem(ev->data, ev->data_len, key, sizeof key - 1)) {
        if (memmem(ev->data, ev->data_len, rkey, sizeof rkey - 1))
            sse_usage_responses(r, ev);
        return 0;
    }
    sluice_json *doc = H->json_parse(ev->data, ev->data_len, NULL, 0);
    if (!doc)
        return 0;
    const sluice_json *u = H->json_get(doc, "usage");
    int drop = 0;
    if (H->json_type(u) == SLUICE_JSON_OBJECT) {
        sse_usage_attrs(H, r->ctx, u, "prompt_tokens", "completion_tokens");
        const sluice_json *ch = H->json_get(doc, "choices");
        /* a usage chunk that also carries choices is forwarded whole: the
         * content matters more than hiding a field */
        drop = r->injected && !r->client_asked_usage &&
               (ch == NULL || H->json_size(ch) == 0);
        sse_count(r->cfg, r->cfg->m_usage, drop ? "dropped" : "forwarded");
    }
    H->json_free(doc);
    return drop;
}

static int sse_event_cb(void *arg, const struct sse_event *ev)
{
    struct sse_req *r = arg;
    const sluice_host *H = r->cfg->host;
    if (ev->has_data && sse_usage(r, ev))
        return 0;
    if (sse_frame(r, ev) != 0)
        return -2;
    if (H->chunk_forward(r->ctx, r->out, r->out_len) != 0) {
        r->forward_failed = 1;
        return -2;
    }
    sse_count(r->cfg, r->cfg->m_events, NULL);
    return 0;
}

static int sse_comment_cb(void *arg, const char *text, size_t len)
{
    struct sse_req *r = arg;
    const sluice_host *H = r->cfg->host;
    if (r->parser.pending)
        return 0; /* inside an event: keep the event whole */
    r->out_len = 0;
    if (sse_out_put(r, ":", 1) || sse_out_put(r, text, len) ||
        sse_out_put(r, "\n\n", 2))
        return -2;
    if (H->chunk_forward(r->ctx, r->out, r->out_len) != 0) {
        r->forward_failed = 1;
        return -2;
    }
    return 0;
}

static sluice_verdict sse_on_chunk(void *instance, sluice_ctx *ctx,
                                   const char *data, size_t len)
{
    const sluice_host *H = ((const struct sse_cfg *)instance)->host;
    struct sse_cfg *c = instance;
    struct sse_req *r = H->local_get(ctx);
    if (!r || !r->parser_ready) {
        /* no 2xx on_response seen (should not happen): pass through */
        return H->chunk_forward(ctx, data, len) == 0 ? SLUICE_CONTINUE
                                                     : SLUICE_ERROR;
    }
    if (!data) {
        int cut = sse_parser_end(&r->parser) && !r->parser.failed;
        if (cut) {
            sse_count(c, c->m_errors, "truncated");
            H->log(c->self, SLUICE_LOG_WARN,
                   "request %s: the upstream stream ended inside an event; "
                   "the incomplete event was dropped",
                   H->req_id(ctx));
        }
        H->chunk_forward(ctx, NULL, 0);
        /* a stream cut mid-event is broken, however cleanly the body
         * ended: the core ends it with the stream_interrupted event */
        return cut ? SLUICE_ERROR : SLUICE_CONTINUE;
    }
    int rc = sse_parser_feed(&r->parser, data, len);
    if (rc == 0)
        return SLUICE_CONTINUE;
    if (r->parser.failed) {
        sse_count(c, c->m_errors,
                  r->parser.code ? r->parser.code : "malformed");
        H->log(c->self, SLUICE_LOG_WARN,
               "request %s: malformed event stream from the upstream: %s",
               H->req_id(ctx), r->parser.err);
    } else if (!r->forward_failed)
        H->log(c->self, SLUICE_LOG_ERROR, "request %s: out of memory",
               H->req_id(ctx));
    return SLUICE_ERROR;
}

static int sse_status(void *instance, sluice_buf *out)
{
    const sluice_host *H = ((const struct sse_cfg *)instance)->host;
    struct sse_cfg *c = instance;
    return H->buf_printf(out,
                         "{\"heartbeat_ms\":%u,\"idle_timeout_ms\":%u,"
                         "\"buffer_bytes\":%zu,\"max_event_bytes\":%zu,"
                         "\"inject_usage\":%s,\"strict\":%s}",
                         c->heartbeat_ms, c->idle_ms, c->buffer_bytes,
                         c->max_event, c->inject_usage ? "true" : "false",
                         c->strict ? "true" : "false");
}

/* every route: it acts only on streamed requests, of any kind */
static const char *const sse_routes[] = {"*", NULL};

static const sluice_plugin sse_plugin = {
    .abi_major = SLUICE_ABI_MAJOR,
    .abi_minor = SLUICE_ABI_MINOR,
    .size = sizeof(sluice_plugin),
    .name = "sse",
    .version = "0.2.0",
    .description = "server-sent events framing, keep-alive, idle timeout "
                   "and usage",
    .init = sse_init,
    .destroy = sse_destroy,
    .on_request = sse_on_request,
    .on_response = sse_on_response,
    .on_chunk = sse_on_chunk,
    .on_complete = sse_on_complete,
    .status = sse_status,
    .routes = sse_routes,
};

SLUICE_PLUGIN_DEFINE(sse_plugin)
