/*
 * http.c - the libmicrohttpd access handler and completion callback.
 *
 * MHD calls the access handler once with the headers, then with each piece
 * of the body, then with nothing once the body is complete; after a
 * suspended connection is resumed it calls it again, and that call queues
 * whatever response is ready. The context is released in the completion
 * callback (and, for streams, the content reader's free callback).
 */
#include "http.h"
#include "access_log.h"
#include "core_metrics.h"
#include "cors.h"
#include "flow.h"
#include "framing.h"
#include "guard.h"
#include "log.h"
#include "pipeline.h"
#include "routes.h"
#include "server.h"
#include "upstream_set.h"
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Per-connection memory pool of libmicrohttpd: request line, headers (each
 * also costs a record in the pool), read and write buffers. MHD zeroes it
 * for every request on a keep-alive connection, so smaller is cheaper;
 * 8 KiB refuses a request with 100 small headers (test_hardening), 12 KiB
 * holds it and any OpenAI client's headers (bodies stream through it). */
#define HTTP_CONN_MEMORY (12 * 1024)

/* A body over max_body_bytes is read and dropped, up to this much, and the
 * 413 sent when it ends: a client that writes its whole body before it
 * reads (most do) then reads the 413 instead of a reset. A larger one is
 * answered at once and the connection closed. */
#define HTTP_DRAIN_BYTES (16u << 20)

static void add_common_headers(struct sluice_ctx *ctx, struct MHD_Response *r)
{
    MHD_add_response_header(r, "x-request-id", ctx->id);
    cors_add_headers(ctx, r);
    if (ctx->route == ROUTE_API) {
        /* how many upstream requests this answer took (retries included):
         * on every answer of a pipeline route, 0 when a stage or the body
         * check answered before any */
        char n[BUF_INT_TEXT]; /* no snprintf: every answer */
        MHD_add_response_header(r, "x-sluice-attempts",
                                buf_int_text(n, ctx->attempts_sent));
        if (ctx->attempts_sent) {
            /* where the answer came from: the last attempt's upstream and
             * the model name sent there; how many times the request moved
             * to another deployment or model (the router's count when a
             * router ran: it also counts a context-window fallback) */
            MHD_add_response_header(r, "x-sluice-upstream",
                                    ctx->up ? ctx->up->name : "default");
            MHD_add_response_header(r, "x-sluice-model", ctx->up_model);
            MHD_add_response_header(r, "x-sluice-fallbacks",
                                    buf_int_text(n, request_fallbacks(ctx)));
        }
    }
    for (size_t i = 0; i < ctx->out_headers.n; i++) {
        /* the content type is set once, by the caller */
        if (strcasecmp(ctx->out_headers.v[i].name, "content-type") == 0)
            continue;
        MHD_add_response_header(r, ctx->out_headers.v[i].name,
                                ctx->out_headers.v[i].value);
    }
}

static enum MHD_Result queue_full(struct sluice_ctx *ctx)
{
    size_t len;
    if (!ctx->out_status)
        request_set_error(ctx, 500, "server_error", "no_response", NULL,
                          "the gateway produced no response");
    char *body = buf_steal(&ctx->out_body, &len);
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, body ? body : (void *)"",
        body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            ctx->out_ctype ? ctx->out_ctype
                                           : "application/json");
    if (ctx->close_after)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    add_common_headers(ctx, r);
    enum MHD_Result rc = MHD_queue_response(ctx->conn, ctx->out_status, r);
    MHD_destroy_response(r);
    ctx->phase = PHASE_DONE;
    return rc;
}

static enum MHD_Result queue_stream(struct sluice_ctx *ctx)
{
    /* MHD allocates the block with the response, per stream: 4 KiB holds
     * several chat events (a larger backlog just takes more reader calls)
     * and keeps 2,000 streams 24 MB lighter than 16 KiB did */
    struct MHD_Response *r = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, 4 * 1024, flow_stream_read, ctx, flow_stream_free);
    if (!r)
        return MHD_NO;
    ctx->refs++; /* dropped by flow_stream_free */
    /* a stage's choice (the sse stage sets text/event-stream), else the
     * upstream's */
    const char *ct = hdrs_get(&ctx->out_headers, "content-type");
    if (!ct)
        ct = hdrs_get(&ctx->resp_headers, "content-type");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            ct ? ct : "text/event-stream");
    if (!hdrs_get(&ctx->out_headers, "cache-control"))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    if (!hdrs_get(&ctx->out_headers, "x-accel-buffering"))
        MHD_add_response_header(r, "X-Accel-Buffering", "no");
    add_common_headers(ctx, r);
    ctx->stream_queued = 1;
    enum MHD_Result rc = MHD_queue_response(ctx->conn, ctx->status, r);
    MHD_destroy_response(r);
    return rc;
}

static void suspend_waiting(struct sluice_ctx *ctx)
{
    ctx->suspended = 1;
    MHD_suspend_connection(ctx->conn);
    worker_watch_client(ctx->w, ctx);
}

static enum MHD_Result body_too_large(struct sluice_ctx *ctx)
{
    char msg[160];
    snprintf(msg, sizeof msg, "the request body exceeds the limit of %zu bytes",
             ctx->w->srv->cfg->max_body_bytes);
    request_set_error(ctx, 413, "invalid_request_error", "request_too_large",
                      NULL, msg);
    return queue_full(ctx);
}

/* The declared body length, or 0 when none is declared. */
static unsigned long long content_length(struct sluice_ctx *ctx)
{
    const char *cl = MHD_lookup_connection_value(
        ctx->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return cl ? strtoull(cl, NULL, 10) : 0;
}

/* Ambiguous framing (framing.c): answered before any body byte is read,
 * and the connection closed, so no byte of it is taken for a request. */
static int bad_framing(struct sluice_ctx *ctx, const char *version)
{
    const char *code;
    char msg[200];
    int st = framing_check(ctx->conn, version, &code, msg, sizeof msg);
    if (!st)
        return 0;
    log_msg(LOG_WARN, "http", "request %s refused: %s", ctx->id, msg);
    request_set_error(ctx, st, "invalid_request_error", code, NULL, msg);
    ctx->close_after = 1;
    return 1;
}

static enum MHD_Result on_first_call(struct worker *w,
                                     struct MHD_Connection *conn,
                                     const char *url, const char *method,
                                     const char *version, void **con_cls)
{
    if (guard_is_cut(conn))
        return MHD_NO; /* refused or timed out: no request is served */
    struct sluice_ctx *ctx = request_new(w, conn, method, url);
    if (!ctx)
        return MHD_NO;
    *con_cls = ctx;
    guard_request_begin(conn, ctx);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_DAEMON);
    ctx->on_admin_port = w->admin_mhd && ci && ci->daemon == w->admin_mhd;
    routes_match(ctx);
    if (bad_framing(ctx, version))
        return queue_full(ctx);
    /* refused on its headers alone (no or a wrong key): the body is
     * dropped unread, never buffered or parsed */
    if (ctx->route == ROUTE_API &&
        pipeline_on_headers(ctx) != SLUICE_CONTINUE) {
        ctx->refused_early = 1;
        if (content_length(ctx) > HTTP_DRAIN_BYTES) {
            ctx->close_after = 1;
            return queue_full(ctx);
        }
        return MHD_YES;
    }
    size_t max = w->srv->cfg->max_body_bytes;
    unsigned long long cl = content_length(ctx);
    if (cl > max) {
        ctx->body_too_large = 1;
        if (cl - max > HTTP_DRAIN_BYTES) {
            ctx->close_after = 1;
            return body_too_large(ctx); /* too much to drain: now */
        }
    }
    return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn,
                                 const char *url, const char *method,
                                 const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    struct worker *w = cls;
    struct sluice_ctx *ctx = *con_cls;

    if (!ctx)
        return on_first_call(w, conn, url, method, version, con_cls);
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (ctx->phase == PHASE_DONE)
            return MHD_YES;
        if (ctx->refused_early) {
            ctx->drained += n;
            if (ctx->drained <= HTTP_DRAIN_BYTES)
                return MHD_YES;
            ctx->close_after = 1;
            return queue_full(ctx);
        }
        if (!ctx->body_too_large &&
            ctx->body_in.len + n > w->srv->cfg->max_body_bytes) {
            ctx->body_too_large = 1; /* chunked: found while reading */
            buf_release(&ctx->body_in);
        }
        if (ctx->body_too_large) {
            ctx->drained += n;
            if (ctx->drained <= HTTP_DRAIN_BYTES)
                return MHD_YES;
            ctx->close_after = 1;
            return body_too_large(ctx);
        }
        return buf_append(&ctx->body_in, upload, n) == 0 ? MHD_YES : MHD_NO;
    }
    if (ctx->client_gone)
        return MHD_NO;
    if (ctx->refused_early && ctx->phase == PHASE_RECEIVING)
        return queue_full(ctx); /* the body was dropped unread */
    if (ctx->body_too_large && ctx->phase == PHASE_RECEIVING)
        return body_too_large(ctx); /* the whole body was read and dropped */
    switch (ctx->phase) {
    case PHASE_RECEIVING:
        if (ctx->route != ROUTE_API) {
            routes_answer(ctx);
            if (ctx->phase == PHASE_UPSTREAM && !ctx->out_status) {
                suspend_waiting(ctx); /* answered later (admin reload) */
                return MHD_YES;
            }
            return queue_full(ctx);
        }
        flow_begin(ctx);
        if (ctx->phase == PHASE_READY)
            return queue_full(ctx);
        if (ctx->phase == PHASE_STREAMING)
            return queue_stream(ctx);
        suspend_waiting(ctx);
        return MHD_YES;
    case PHASE_READY:
        return queue_full(ctx);
    case PHASE_STREAMING:
        return ctx->stream_queued ? MHD_YES : queue_stream(ctx);
    case PHASE_DONE:
        return MHD_YES;
    default:
        /* woken while still waiting (spurious): park again */
        if (!ctx->suspended)
            suspend_waiting(ctx);
        return MHD_YES;
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct sluice_ctx *ctx = *con_cls;
    (void)cls;
    if (conn)
        guard_request_end(conn);
    if (!ctx)
        return;
    *con_cls = NULL;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK || !ctx->up_done)
        flow_client_gone(ctx); /* stops an upstream still running */
    ctx->suspended = 0;
    worker_unwatch_client(ctx->w, ctx);
    if (ctx->route == ROUTE_API && ctx->phase != PHASE_RECEIVING)
        pipeline_on_complete(ctx);
    struct request_summary sum;
    core_metrics_summarise(ctx, toe != MHD_REQUEST_TERMINATED_COMPLETED_OK,
                           &sum);
    core_metrics_request_done(ctx, &sum);
    access_log_write(ctx, &sum);
    ctx->conn = NULL;
    request_unref(ctx);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    (void)cls;
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_msg(LOG_DEBUG, "http", "%s", msg);
}

/*
 * Limits libmicrohttpd enforces itself (measured against 0.9.75, see
 * tests/integration/test_hardening.c):
 *   - MHD_OPTION_CONNECTION_MEMORY_LIMIT (HTTP_CONN_MEMORY, 12 KiB) holds
 *     the request line and all headers: more is answered 431 (headers) or
 *     414 (request line) and
 *     the connection closed, before the access handler runs;
 *   - MHD_OPTION_CONNECTION_LIMIT: at the limit MHD stops accepting, so
 *     new connections wait in the listen backlog; guard.c therefore
 *     refuses (503, close) beyond the worker's share of
 *     server.max_connections, and MHD's limit is only a backstop above it;
 *   - MHD_OPTION_CONNECTION_TIMEOUT: idle time only; guard.c adds the
 *     whole-request deadline.
 */
struct MHD_Daemon *http_daemon_start(struct worker *w, int listen_fd,
                                     unsigned int conn_limit, char *err,
                                     size_t errlen)
{
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL,
        NULL, on_access, w, MHD_OPTION_LISTEN_SOCKET, listen_fd,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, w,
        MHD_OPTION_NOTIFY_CONNECTION, guard_conn_notify, w,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)300,
        MHD_OPTION_CONNECTION_LIMIT, conn_limit, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_log, NULL, MHD_OPTION_END);
    if (!d)
        snprintf(err, errlen, "worker %d: cannot start the HTTP daemon", w->id);
    return d;
}
