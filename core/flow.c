/*
 * flow.c - the life of a chat completion request once its body is in:
 *
 *   parse once -> on_request -> [on_attempt -> upstream -> on_response]*
 *   -> full response, or a committed stream fed through the on_chunk chain
 *
 * Everything here runs on the request's worker thread. A RETRY verdict arms a
 * timer; nothing sleeps. While waiting, the client connection is suspended
 * and its socket watched for a reset, so a vanished client aborts its
 * upstream transfer once that is known (worker.c: a FIN alone is a
 * half-close, and served).
 */
#include "flow.h"
#include "bodycap.h"
#include "log.h"
#include "multipart.h"
#include "pipeline.h"
#include "reqbody.h"
#include "scrub.h"
#include "server.h"
#include "upstream.h"
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FLOW_MAX_ATTEMPTS 24 /* retries per deployment, then fallbacks */

static void attempt_next(struct sluice_ctx *ctx);
static void pending_wait(struct sluice_ctx *ctx);

void flow_resume(struct sluice_ctx *ctx)
{
    if (!ctx->suspended)
        return;
    /* the hang-up watch stays: see worker_watch_client */
    ctx->suspended = 0;
    MHD_resume_connection(ctx->conn);
    ctx->w->mhd_resumed = 1;
}

static void respond_ready(struct sluice_ctx *ctx)
{
    ctx->phase = PHASE_READY;
    worker_timer_del(ctx->w, &ctx->timer);
    worker_timer_del(ctx->w, &ctx->dl_timer);
    flow_resume(ctx);
}

/* 1 when ctype is application/json (or +json), parameters allowed. */
static int ctype_is_json(const char *ct)
{
    size_t n = strcspn(ct, ";");
    while (n && ct[n - 1] == ' ')
        n--;
    while (n && *ct == ' ')
        ct++, n--;
    return (n == 16 && !strncasecmp(ct, "application/json", 16)) ||
           (n > 5 && !strncasecmp(ct + n - 5, "+json", 5));
}

static int refuse_ctype(struct sluice_ctx *ctx, const char *ct,
                        const char *want)
{
    char msg[300];
    snprintf(msg, sizeof msg,
             "Unsupported Content-Type '%.100s' for %s: send %s.", ct, ctx->url,
             want);
    request_set_error(ctx, 415, "invalid_request_error",
                      "unsupported_media_type", NULL, msg);
    return -1;
}

/* A multipart upload: the JSON view stages see holds its small fields
 * (model, stream); the body itself goes upstream untouched. */
static int parse_multipart(struct sluice_ctx *ctx, const char *ct)
{
    char boundary[80], v[256];
    if (!ct || multipart_boundary(ct, boundary, sizeof boundary) != 0)
        return refuse_ctype(ctx, ct ? ct : "(none)",
                            "multipart/form-data with a boundary");
    ctx->body = json_object();
    if (!ctx->body)
        return -1;
    static const char *const fields[] = {"model", "stream"};
    for (size_t i = 0; i < 2; i++) {
        int rc = multipart_field(ctx->body_in.data, ctx->body_in.len, boundary,
                                 fields[i], v, sizeof v);
        if (rc < 0) {
            request_set_error(ctx, 400, "invalid_request_error",
                              "invalid_multipart", fields[i],
                              "could not read the multipart/form-data body");
            return -1;
        }
        if (rc == 0)
            continue;
        if (i == 0)
            json_object_set_new(ctx->body, "model", json_string(v));
        else if (!strcmp(v, "true"))
            json_object_set_new(ctx->body, "stream", json_true());
    }
    return 0;
}

static int parse_body(struct sluice_ctx *ctx)
{
    const struct api_route *api = request_api(ctx);
    const char *ct = request_header(ctx, "Content-Type");
    if (api->body == API_BODY_MULTIPART) {
        if (parse_multipart(ctx, ct) != 0)
            return -1;
    } else if (api->body == API_BODY_RAW) {
        /* passthrough: not ours to read; stages see an empty body */
        if (!(ctx->body = json_object()))
            return -1;
    } else {
        struct reqbody_error e;
        if (ct && !ctype_is_json(ct))
            return refuse_ctype(ctx, ct, "application/json");
        /* the tree may take so much per body byte, and all trees so much
         * together (bodycap.h) */
        size_t budget = bodycap_reserve(ctx->body_in.len), used = 0;
        if (!budget) {
            request_set_error(ctx, 503, "server_error", "server_overloaded",
                              NULL,
                              "too many large request bodies at once; "
                              "retry shortly");
            hdrs_set(&ctx->out_headers, "Retry-After", "1");
            return -1;
        }
        int rc = reqbody_parse_budget(ctx->body_in.data, ctx->body_in.len,
                                      budget, &used, &ctx->body, &e);
        ctx->parse_charge = rc == 0 ? (used < budget ? used : budget) : 0;
        bodycap_settle(budget, ctx->parse_charge);
        if (rc != 0) {
            int too = !strcmp(e.code, "request_too_complex");
            request_set_error(ctx, too ? 413 : 400, "invalid_request_error",
                              e.code, e.param, e.message);
            return -1;
        }
    }
    ctx->stream = api->stream != API_STREAM_NONE &&
                  json_is_true(json_object_get(ctx->body, "stream"));
    return 0;
}

void flow_begin(struct sluice_ctx *ctx)
{
    ctx->deadline = ctx->t_start + (uint64_t)ctx->w->srv->cfg->timeout_ms;
    ctx->attempt_cap = FLOW_MAX_ATTEMPTS;
    if (worker_timer_reserve(ctx->w) != 0) {
        log_msg(LOG_WARN, "core", "request %s: no memory for its timers",
                ctx->id);
        request_set_error(ctx, 503, "server_error", "server_overloaded", NULL,
                          "the gateway is out of memory; try again later");
        ctx->phase = PHASE_READY;
        return;
    }
    if (parse_body(ctx) != 0) {
        ctx->phase = PHASE_READY;
        return;
    }
    sluice_verdict v = pipeline_on_request(ctx);
    if (v == SLUICE_PENDING) {
        pending_wait(ctx);
        return;
    }
    if (v != SLUICE_CONTINUE) {
        ctx->phase = PHASE_READY;
        return;
    }
    attempt_next(ctx);
}

/* A stage took too long to give its verdict (see pending_wait). */
static void pending_fired(struct timer *t)
{
    struct sluice_ctx *ctx = t->arg;
    if (ctx->phase != PHASE_PENDING || ctx->client_gone)
        return;
    ctx->pending_stage = -1; /* a late req_resume is refused */
    log_msg(LOG_WARN, "core",
            "request %s: a stage's on_request gave no "
            "verdict within the request's time budget",
            ctx->id);
    request_set_error(ctx, 503, "server_error", "stage_timeout", NULL,
                      "a gateway stage did not answer in time; retry shortly");
    respond_ready(ctx);
}

/* on_request said PENDING: the connection is suspended (by http.c when
 * flow_begin returns, or already) until req_resume or the deadline. */
static void pending_wait(struct sluice_ctx *ctx)
{
    ctx->phase = PHASE_PENDING;
    ctx->timer.fn = pending_fired;
    worker_timer_add(ctx->w, &ctx->timer, ctx->deadline);
}

/* On the request's worker, posted by req_resume. */
static void resume_posted(void *arg)
{
    struct sluice_ctx *ctx = arg;
    if (ctx->phase == PHASE_PENDING && !ctx->client_gone && !ctx->completed &&
        ctx->pending_stage >= 0) {
        worker_timer_del(ctx->w, &ctx->timer);
        ctx->phase = PHASE_RECEIVING; /* stages see on_request's rules */
        sluice_verdict v = pipeline_on_request_resume(ctx);
        if (v == SLUICE_PENDING)
            pending_wait(ctx);
        else if (v != SLUICE_CONTINUE)
            respond_ready(ctx);
        else
            attempt_next(ctx);
    }
    request_unref(ctx);
}

int flow_resume_request(struct sluice_ctx *ctx, sluice_verdict v)
{
    if (!ctx->w || ctx->phase != PHASE_PENDING || ctx->pending_stage < 0 ||
        pipeline_resume_set(ctx, v) != 0)
        return -1;
    ctx->refs++; /* on ctx's worker (req_resume's rule) */
    if (worker_post(ctx->w, resume_posted, ctx) != 0) {
        ctx->refs--;
        ctx->resume_posted = 0;
        return -1;
    }
    return 0;
}

static void deadline_fired(struct timer *t)
{
    struct sluice_ctx *ctx = t->arg;
    if (ctx->phase != PHASE_UPSTREAM || (!ctx->easy && !ctx->h1))
        return;
    /* a stream that has not started within the budget */
    upstream_abort(ctx);
    ctx->result = SLUICE_ATTEMPT_TIMEOUT;
    flow_attempt_done(ctx);
}

static void backoff_fired(struct timer *t);
static void attempt_wait_fired(struct timer *t);

/* on_attempt said RETRY: run it again after the delay, within budget. */
static int attempt_wait(struct sluice_ctx *ctx)
{
    uint64_t at = time_now_ms() + ctx->retry_ms;
    if (at >= ctx->deadline) {
        if (!ctx->out_status)
            request_set_error(ctx, 503, "server_error", "no_upstream", NULL,
                              "no upstream attempt could be made in "
                              "time");
        return -1;
    }
    ctx->phase = PHASE_BACKOFF;
    ctx->timer.fn = attempt_wait_fired;
    worker_timer_add(ctx->w, &ctx->timer, at);
    return 0;
}

static void attempt_run(struct sluice_ctx *ctx)
{
    hdrs_clear(&ctx->up_headers);
    ctx->out_status = 0;
    ctx->retry_ms = 0;
    sluice_verdict v = pipeline_on_attempt(ctx);
    if (v == SLUICE_RETRY && attempt_wait(ctx) == 0)
        return;
    if (v != SLUICE_CONTINUE) {
        respond_ready(ctx);
        return;
    }
    if (upstream_start(ctx) != 0) {
        respond_ready(ctx);
        return;
    }
    ctx->phase = PHASE_UPSTREAM;
    if (ctx->stream) {
        ctx->dl_timer.fn = deadline_fired;
        worker_timer_add(ctx->w, &ctx->dl_timer, ctx->deadline);
    }
}

static void attempt_next(struct sluice_ctx *ctx)
{
    ctx->attempt++;
    attempt_run(ctx);
}

static void attempt_wait_fired(struct timer *t)
{
    struct sluice_ctx *ctx = t->arg;
    if (ctx->phase == PHASE_BACKOFF && !ctx->client_gone)
        attempt_run(ctx);
}

static void backoff_fired(struct timer *t)
{
    struct sluice_ctx *ctx = t->arg;
    if (ctx->phase == PHASE_BACKOFF && !ctx->client_gone)
        attempt_next(ctx);
}

static const char *const passed_headers[] = {"retry-after",
                                             "x-ratelimit-limit-requests",
                                             "x-ratelimit-limit-tokens",
                                             "x-ratelimit-remaining-requests",
                                             "x-ratelimit-remaining-tokens",
                                             "x-ratelimit-reset-requests",
                                             "x-ratelimit-reset-tokens",
                                             NULL};

/* What the client may quote to the provider: its rate-limit headers, every
 * openai-* header (processing time, organization, version) and its request
 * id, renamed x-upstream-request-id since x-request-id is sluice's own. */
static void pass_upstream_headers(struct sluice_ctx *ctx)
{
    for (size_t i = 0; i < ctx->resp_headers.n; i++) {
        const struct hdr *h = &ctx->resp_headers.v[i];
        if (!strncasecmp(h->name, "openai-", 7)) {
            hdrs_add(&ctx->out_headers, h->name, h->value);
            continue;
        }
        if (!strcasecmp(h->name, "x-request-id")) {
            hdrs_add(&ctx->out_headers, "x-upstream-request-id", h->value);
            continue;
        }
        for (const char *const *p = passed_headers; *p; p++)
            if (!strcasecmp(h->name, *p))
                hdrs_add(&ctx->out_headers, h->name, h->value);
    }
}

/* The client gets what the upstream said, or a gateway error. */
static void deliver_attempt(struct sluice_ctx *ctx)
{
    if (ctx->result == SLUICE_ATTEMPT_HTTP) {
        const char *ct = hdrs_get(&ctx->resp_headers, "content-type");
        /* an upstream error may quote the key it refused: not to the
         * client (README: secrets never reach responses) */
        if ((ctx->status < 200 || ctx->status >= 300) && ctx->resp_body.len)
            ctx->resp_body.len = scrub_credentials(
                ctx->resp_body.data, ctx->resp_body.len, &ctx->up_headers);
        request_set_response(ctx, ctx->status, ct ? ct : "application/json",
                             ctx->resp_body.data, ctx->resp_body.len);
        pass_upstream_headers(ctx);
        return;
    }
    switch (ctx->result) {
    case SLUICE_ATTEMPT_TIMEOUT:
        request_set_error(ctx, 504, "upstream_error", "upstream_timeout", NULL,
                          "the upstream did not answer in time");
        break;
    case SLUICE_ATTEMPT_CONNECT:
        if (ctx->tls_refused) {
            char msg[CURL_ERROR_SIZE + 128];
            snprintf(msg, sizeof msg,
                     "the upstream's TLS certificate was refused (%s); "
                     "check upstream.ca_file",
                     ctx->curl_err[0] ? ctx->curl_err : "certificate problem");
            request_set_error(ctx, 502, "upstream_error",
                              "upstream_certificate", NULL, msg);
        } else
            request_set_error(ctx, 502, "upstream_error",
                              "upstream_unreachable", NULL,
                              "could not connect to the upstream");
        break;
    default:
        request_set_error(ctx, 502, "upstream_error", "upstream_error", NULL,
                          "the upstream connection failed");
        break;
    }
}

static void stream_tick(struct timer *t);

/* Arm the heartbeat / idle / max_stream_s check for the earliest moment
 * one may be due. Idle time counts from the last complete event, so an
 * upstream trickling bytes that never finish one is as silent as one
 * sending nothing (and the client gets heartbeats meanwhile). */
static void stream_arm(struct sluice_ctx *ctx)
{
    uint64_t at = ctx->stream_end_ms ? ctx->stream_end_ms : UINT64_MAX;
    uint64_t beat = (ctx->last_out_ms > ctx->last_up_ms ? ctx->last_out_ms
                                                        : ctx->last_up_ms) +
                    ctx->heartbeat_ms;
    if (ctx->heartbeat_ms && beat < at)
        at = beat;
    if (ctx->idle_ms && ctx->last_up_ms + ctx->idle_ms < at)
        at = ctx->last_up_ms + ctx->idle_ms;
    if (at == UINT64_MAX || ctx->up_done || ctx->client_gone)
        return;
    ctx->dl_timer.fn = stream_tick;
    worker_timer_add(ctx->w, &ctx->dl_timer, at);
}

static void stream_finish(struct sluice_ctx *ctx);

static void stream_tick(struct timer *t)
{
    struct sluice_ctx *ctx = t->arg;
    uint64_t now = time_now_ms();
    if (ctx->up_done || ctx->client_gone || ctx->phase != PHASE_STREAMING)
        return;
    /* a transfer paused for a slow client is not a silent upstream */
    if (ctx->up_paused)
        ctx->last_up_ms = now;
    if (ctx->stream_end_ms && now >= ctx->stream_end_ms) {
        log_msg(LOG_WARN, "core", "stream %s: longer than max_stream_s (%ld s)",
                ctx->id, ctx->w->srv->cfg->max_stream_ms / 1000);
        upstream_abort(ctx);
        ctx->result = SLUICE_ATTEMPT_TIMEOUT;
        ctx->stream_too_long = 1;
        stream_finish(ctx);
        return;
    }
    if (ctx->idle_ms && now >= ctx->last_up_ms + ctx->idle_ms) {
        log_msg(LOG_WARN, "core", "stream %s: upstream silent for %u ms",
                ctx->id, ctx->idle_ms);
        upstream_abort(ctx);
        ctx->result = SLUICE_ATTEMPT_TIMEOUT;
        stream_finish(ctx);
        return;
    }
    uint64_t last =
        ctx->last_out_ms > ctx->last_up_ms ? ctx->last_out_ms : ctx->last_up_ms;
    if (ctx->heartbeat_ms && now >= last + ctx->heartbeat_ms &&
        ctx->sbuf.len == ctx->soff) {
        static const char beat[] = ": keep-alive\n\n";
        flow_stream_write(ctx, beat, sizeof beat - 1);
    }
    stream_arm(ctx);
}

int flow_stream_configure(struct sluice_ctx *ctx, uint32_t heartbeat_ms,
                          uint32_t idle_ms, size_t buffer_max)
{
    if (!ctx->stream)
        return -1;
    ctx->heartbeat_ms = heartbeat_ms;
    ctx->idle_ms = idle_ms;
    if (buffer_max)
        ctx->sbuf_max = buffer_max < 1024 ? 1024 : buffer_max;
    if (ctx->phase == PHASE_STREAMING)
        stream_arm(ctx);
    return 0;
}

static void stream_commit(struct sluice_ctx *ctx)
{
    worker_timer_del(ctx->w, &ctx->dl_timer);
    ctx->phase = PHASE_STREAMING;
    ctx->last_up_ms = ctx->last_out_ms = time_now_ms();
    long max = ctx->w->srv->cfg->max_stream_ms;
    ctx->stream_end_ms = max > 0 ? ctx->last_up_ms + (uint64_t)max : 0;
    pass_upstream_headers(ctx);
    stream_arm(ctx);
    flow_resume(ctx);
}

void flow_attempt_headers(struct sluice_ctx *ctx)
{
    if (!ctx->stream || ctx->status < 200 || ctx->status >= 300)
        return;
    /* a 2xx stream: decide before the first byte reaches the client */
    ctx->resp_decided = 1;
    sluice_verdict v = pipeline_on_response(ctx);
    if (v == SLUICE_CONTINUE) {
        stream_commit(ctx);
        return;
    }
    /* RETRY, RESPOND or ERROR: stop this transfer at its first byte */
    ctx->retry_wanted = v == SLUICE_RETRY ? 1 : 2;
}

int flow_stream_bytes(struct sluice_ctx *ctx, const char *data, size_t len)
{
    if (ctx->client_gone || ctx->retry_wanted || ctx->phase != PHASE_STREAMING)
        return -1;
    if (ctx->sbuf.len - ctx->soff >= ctx->sbuf_max)
        return 1; /* libcurl keeps these bytes and hands them again */
    /* what the chain writes now is upstream content (request_stream_write
     * counts it as life); what a stage holds back is not yet */
    ctx->feeding = 1;
    sluice_verdict v = pipeline_on_chunk(ctx, data, len);
    ctx->feeding = 0;
    if (v == SLUICE_CONTINUE)
        return 0;
    /* a stage refused the stream (malformed framing, ...): the transfer
     * is aborted and the client gets the error event (stream_finish) */
    ctx->stream_failed = 1;
    return -1;
}

/* The error event that ends a stream the upstream could not finish. */
static void stream_error_event(struct sluice_ctx *ctx)
{
    const char *code, *msg, *why;
    if (ctx->stream_failed) {
        code = "stream_malformed";
        why = "malformed";
        msg = "the upstream sent a malformed event stream";
    } else if (ctx->stream_too_long) {
        code = "stream_timeout";
        why = "max_stream";
        msg = "the stream took longer than the gateway allows "
              "(server.max_stream_s)";
    } else if (ctx->result == SLUICE_ATTEMPT_TIMEOUT) {
        code = "stream_timeout";
        why = "timeout";
        msg = "the upstream stream went silent and timed out before it "
              "finished";
    } else {
        code = "stream_interrupted";
        why = "interrupted";
        msg = "the upstream stream broke before it finished";
    }
    buf_t b;
    buf_init(&b);
    if (request_api(ctx)->stream == API_STREAM_NAMED) {
        /* the Responses API's own error event (no "error" wrapper) */
        buf_puts(&b, "event: error\ndata: {\"type\":\"error\",\"code\":");
        buf_json_str(&b, code);
        buf_puts(&b, ",\"message\":");
        buf_json_str(&b, msg);
        buf_printf(&b, ",\"param\":null,\"sequence_number\":%llu}\n\n",
                   (unsigned long long)ctx->stream_events);
    } else {
        buf_puts(&b, "data: ");
        error_json(&b, "upstream_error", code, NULL, msg);
        buf_puts(&b, "\n\n");
    }
    flow_stream_write(ctx, b.data, b.len);
    buf_release(&b);
    hdrs_set(&ctx->attrs, "stream_error", why);
    log_msg(LOG_WARN, "core", "stream %s %s: %s", ctx->id, why,
            ctx->stream_failed ? "a stage refused the upstream bytes"
            : ctx->curl_err[0] ? ctx->curl_err
                               : "upstream ended early");
}

static void stream_finish(struct sluice_ctx *ctx)
{
    if (ctx->up_done)
        return;
    worker_timer_del(ctx->w, &ctx->dl_timer);
    /* end mark through the chain: stages flush what they hold. A stage
     * that answers it with an error says the upstream's body ended clean
     * but broken (inside an event): an interrupted stream, not a success */
    if (pipeline_on_chunk(ctx, NULL, 0) != SLUICE_CONTINUE &&
        ctx->result == SLUICE_ATTEMPT_HTTP) {
        ctx->result = SLUICE_ATTEMPT_RESET;
        snprintf(ctx->curl_err, sizeof ctx->curl_err,
                 "the upstream stream ended inside an event");
    }
    if (ctx->stream_failed || (ctx->result != SLUICE_ATTEMPT_HTTP &&
                               ctx->result != SLUICE_ATTEMPT_ABORTED))
        stream_error_event(ctx);
    ctx->up_done = 1;
    flow_resume(ctx);
}

void flow_attempt_done(struct sluice_ctx *ctx)
{
    if (ctx->client_gone)
        return;
    worker_timer_del(ctx->w, &ctx->dl_timer);
    if (ctx->phase == PHASE_STREAMING) {
        stream_finish(ctx);
        return;
    }
    sluice_verdict v;
    if (ctx->retry_wanted)
        v = ctx->retry_wanted == 1 ? SLUICE_RETRY : SLUICE_RESPOND;
    else if (!ctx->resp_decided)
        v = pipeline_on_response(ctx);
    else
        v = SLUICE_CONTINUE;
    ctx->resp_decided = 1;

    if (v == SLUICE_RETRY) {
        uint64_t at = time_now_ms() + ctx->retry_ms;
        if (ctx->attempt < ctx->attempt_cap && at < ctx->deadline) {
            ctx->phase = PHASE_BACKOFF;
            ctx->timer.fn = backoff_fired;
            worker_timer_add(ctx->w, &ctx->timer, at);
            return;
        }
        v = SLUICE_CONTINUE; /* out of attempts or time: deliver the last */
    }
    if (v == SLUICE_CONTINUE || !ctx->out_status)
        deliver_attempt(ctx);
    respond_ready(ctx);
}

void flow_shutdown(struct sluice_ctx *ctx)
{
    if (ctx->client_gone || ctx->up_done || ctx->phase == PHASE_DONE ||
        ctx->phase == PHASE_READY || ctx->phase == PHASE_RECEIVING)
        return;
    if (ctx->phase == PHASE_STREAMING) {
        worker_timer_del(ctx->w, &ctx->dl_timer);
        upstream_abort(ctx);
        buf_t b;
        buf_init(&b);
        buf_puts(&b, "data: ");
        error_json(&b, "server_error", "server_shutting_down", NULL,
                   "the gateway is restarting and ended the stream before "
                   "it finished; retry the request");
        buf_puts(&b, "\n\n");
        flow_stream_write(ctx, b.data, b.len);
        buf_release(&b);
        hdrs_set(&ctx->attrs, "stream_error", "shutdown");
        ctx->result = SLUICE_ATTEMPT_ABORTED;
        ctx->up_done = 1;
        flow_resume(ctx);
        return;
    }
    /* waiting on the upstream or a back-off: answer now */
    upstream_abort(ctx);
    worker_timer_del(ctx->w, &ctx->timer);
    request_set_error(ctx, 503, "server_error", "server_shutting_down", NULL,
                      "the gateway is restarting; retry the request");
    hdrs_set(&ctx->out_headers, "Retry-After", "1");
    respond_ready(ctx);
}

void flow_client_gone(struct sluice_ctx *ctx)
{
    if (ctx->client_gone)
        return;
    ctx->client_gone = 1;
    upstream_abort(ctx);
    worker_timer_del(ctx->w, &ctx->timer);
    worker_timer_del(ctx->w, &ctx->dl_timer);
    worker_unwatch_client(ctx->w, ctx);
    if (ctx->suspended) {
        ctx->suspended = 0;
        MHD_resume_connection(ctx->conn);
        ctx->w->mhd_resumed = 1;
    }
}

/* The client took enough: let the upstream transfer go on. Idle time is
 * counted from here, not from the pause. */
static void stream_unpause(struct sluice_ctx *ctx)
{
    ctx->last_up_ms = time_now_ms();
    upstream_resume(ctx);
}

ssize_t flow_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct sluice_ctx *ctx = cls;
    size_t avail = ctx->sbuf.len - ctx->soff;
    (void)pos;
    if (avail) {
        size_t n = avail < max ? avail : max;
        memcpy(buf, ctx->sbuf.data + ctx->soff, n);
        ctx->soff += n;
        if (ctx->soff == ctx->sbuf.len) {
            ctx->soff = 0;
            buf_reset(&ctx->sbuf);
        }
        if (ctx->up_paused && ctx->sbuf.len - ctx->soff < ctx->sbuf_max / 2)
            stream_unpause(ctx);
        return (ssize_t)n;
    }
    if (ctx->client_gone)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (ctx->up_done)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (ctx->up_paused) {
        stream_unpause(ctx);
        if (ctx->sbuf.len - ctx->soff)
            return flow_stream_read(cls, pos, buf, max);
    }
    /* nothing yet: park the connection until the upstream sends more */
    ctx->suspended = 1;
    MHD_suspend_connection(ctx->conn);
    worker_watch_client(ctx->w, ctx);
    return 0;
}

void flow_stream_free(void *cls)
{
    request_unref(cls);
}

int flow_stream_write(struct sluice_ctx *ctx, const char *data, size_t len)
{
    if (!data || !len)
        return 0; /* the end mark of the on_chunk chain */
    /* Move what the client has not taken yet to the front once more was
     * taken than remains: a buffer that never drains to empty (the client
     * reads as fast as the upstream writes) would otherwise grow with the
     * whole stream, although what is pending stays under sbuf_max. */
    size_t pending = ctx->sbuf.len - ctx->soff;
    if (ctx->soff && ctx->soff >= pending) {
        memmove(ctx->sbuf.data, ctx->sbuf.data + ctx->soff, pending);
        ctx->sbuf.len = pending;
        ctx->sbuf.data[pending] = '\0';
        ctx->soff = 0;
    }
    if (buf_append(&ctx->sbuf, data, len) != 0)
        return -1;
    if (len > 6 && !memcmp(data, "event:", 6))
        ctx->stream_events++;
    ctx->last_out_ms = time_now_ms();
    if (ctx->feeding)
        ctx->last_up_ms = ctx->last_out_ms;
    if (!ctx->first_out_us)
        ctx->first_out_us = time_now_us();
    flow_resume(ctx);
    return 0;
}
