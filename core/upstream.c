/*
 * upstream.c - one upstream attempt on libcurl's multi interface.
 *
 * Easy handles come from the worker's pool, so their connection caches and
 * option memory are reused; the multi handle keeps keep-alive connections
 * across requests (CURLMOPT_MAXCONNECTS). The request body is the client's
 * bytes untouched unless a stage changed the parsed body (a route's model
 * rewrite alone is spliced into those bytes).
 */
#include "upstream.h"
#include "core_metrics.h"
#include "flow.h"
#include "h1client.h"
#include "hlist.h"
#include "json_splice.h"
#include "log.h"
#include "pipeline.h"
#include "server.h"
#include "upstream_set.h"
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define UPSTREAM_MAX_BODY (64u * 1024u * 1024u)

void upstream_take_header(struct sluice_ctx *ctx, const char *name, size_t nlen,
                          const char *value, size_t vlen)
{
    hdrs_addn(&ctx->resp_headers, name, nlen, value, vlen);
}

void upstream_take_head(struct sluice_ctx *ctx, int status)
{
    ctx->status = status;
    ctx->headers_done = 1;
    flow_attempt_headers(ctx);
}

int upstream_take_body(struct sluice_ctx *ctx, const char *data, size_t len)
{
    if (ctx->stream && ctx->status >= 200 && ctx->status < 300)
        return flow_stream_bytes(ctx, data, len);
    if (ctx->resp_body.len + len > UPSTREAM_MAX_BODY)
        return -1;
    return buf_append(&ctx->resp_body, data, len) != 0 ? -1 : 0;
}

static size_t on_header(char *data, size_t size, size_t n, void *userp)
{
    struct sluice_ctx *ctx = userp;
    size_t len = size * n;
    if (len >= 5 && !strncmp(data, "HTTP/", 5)) {
        /* a new status line (after 100-continue or a redirect) */
        hdrs_clear(&ctx->resp_headers);
        const char *sp = memchr(data, ' ', len);
        ctx->status = sp ? atoi(sp + 1) : 0;
        ctx->headers_done = 0;
        if (ctx->status == 101) { /* never asked for: not HTTP any more */
            ctx->up_bad_reply = 1;
            return 0;
        }
        return len;
    }
    if (ctx->headers_done) /* a chunked body's trailers: not headers */
        return len;
    if (len <= 2 && (data[0] == '\r' || data[0] == '\n')) {
        if (ctx->status >= 200)
            upstream_take_head(ctx, ctx->status);
        return len;
    }
    const char *colon = memchr(data, ':', len);
    if (!colon)
        return len;
    const char *v = colon + 1, *end = data + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    upstream_take_header(ctx, data, (size_t)(colon - data), v,
                         (size_t)(end - v));
    return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *userp)
{
    struct sluice_ctx *ctx = userp;
    size_t len = size * n;
    int rc = upstream_take_body(ctx, data, len);
    if (rc == 1) { /* libcurl keeps these bytes and hands them again */
        ctx->up_paused = 1;
        return CURL_WRITEFUNC_PAUSE;
    }
    return rc == 0 ? len : 0;
}

/* "name: value" of a header appended to l; -2 (and *bad) when it does not
 * fit UPSTREAM_MAX_HEADER: cut short it would send a wrong credential or
 * value, so the attempt fails instead. */
static int add_line(struct hlist *l, const char *name, const char *value,
                    const char **bad)
{
    int rc = hlist_add_kv(l, name, value, UPSTREAM_MAX_HEADER);
    if (rc == -2)
        *bad = name;
    return rc;
}

/* A stage sets the key as "Authorization: Bearer <key>"; an upstream with
 * another auth_header (Azure's api-key) gets the bare key under that name. */
static void auth_style(const struct sluice_ctx *ctx, const struct hdr *h,
                       const char **name, const char **value)
{
    upstream_def_auth(ctx->up, h->name, h->value, name, value);
}

/* Client headers passed upstream as sent (unless a stage set them), when
 * upstream.forward_headers does not say otherwise: the provider's own
 * routing headers. The client's Authorization, x-api-key, Host and
 * hop-by-hop headers never are (config.c refuses them in the lists). */
static const char *const forwarded_headers[] = {
    "OpenAI-Organization", "OpenAI-Project", "OpenAI-Beta", NULL};

/* One header line unless a stage set that header: the stage's wins. */
static int add_unless_set(struct sluice_ctx *ctx, struct hlist *l,
                          const char *name, const char *value, const char **bad)
{
    if (!value || hdrs_get(&ctx->up_headers, name))
        return 0;
    return add_line(l, name, value, bad);
}

/* The client's forwarded headers and the operator's added ones: the
 * attempt's upstream's lists (an `upstreams:` entry's own, else
 * upstream:'s). A client header too long to forward is -3: the client's
 * error, not ours. */
static int add_config_headers(struct sluice_ctx *ctx, struct hlist *l,
                              const char **bad)
{
    const struct upstream_headers *uh = &ctx->w->srv->cfg->headers;
    const json_t *fwd = ctx->up ? ctx->up->forward : uh->forward;
    const json_t *add = ctx->up ? ctx->up->add : uh->add;
    size_t i;
    json_t *v;
    const char *k;
    int rc;
    if (!fwd) {
        for (const char *const *h = forwarded_headers; *h; h++)
            if ((rc = add_unless_set(ctx, l, *h, request_header(ctx, *h), bad)))
                return rc == -2 ? -3 : rc;
    }
    json_array_foreach(fwd, i, v)
    {
        const char *h = json_string_value(v);
        if ((rc = add_unless_set(ctx, l, h, request_header(ctx, h), bad)))
            return rc == -2 ? -3 : rc;
    }
    json_object_foreach((json_t *)add, k, v)
    {
        if ((rc = add_unless_set(ctx, l, k, json_string_value(v), bad)))
            return rc;
    }
    return 0;
}

/* The request headers of an attempt, into ctx->hdr_list (its memory reused
 * across attempts: no malloc per line). -1 when out of memory, -2 when a
 * header line does not fit (*bad names it), -3 when that header is one the
 * client sent (forwarded, or its Content-Type / Accept passed on). */
static int build_headers(struct sluice_ctx *ctx, const char **bad)
{
    struct hlist *l = &ctx->hdr_list;
    int rc;
    enum api_body kind = request_api(ctx)->body;
    const char *ct = "application/json", *accept = NULL;
    hlist_reset(l);
    if (kind != API_BODY_JSON) /* multipart (checked: has a boundary), raw */
        ct = request_header(ctx, "Content-Type");
    if (kind == API_BODY_RAW)
        accept = request_header(ctx, "Accept");
    int client_accept = accept != NULL; /* else ours */
    if (!accept)
        accept = ctx->stream            ? "text/event-stream"
                 : kind == API_BODY_RAW ? "*/*"
                                        : "application/json";
    if (ct && (rc = add_line(l, "Content-Type", ct, bad)))
        return rc == -2 && kind != API_BODY_JSON ? -3 : rc; /* the client's */
    if ((rc = add_line(l, "Accept", accept, bad)))
        return rc == -2 && client_accept ? -3 : rc;
    if (hlist_add_ref(l, "Expect:"))
        return -1;
    for (size_t i = 0; i < ctx->up_headers.n; i++) {
        const char *name, *value;
        auth_style(ctx, &ctx->up_headers.v[i], &name, &value);
        if ((rc = add_line(l, name, value, bad)))
            return rc;
    }
    /* pre-built by the config, which the request pins */
    for (size_t i = 0; ctx->up && i < ctx->up->nhdr; i++)
        if (hlist_add_ref(l, ctx->up->hdr_lines[i]))
            return -1;
    if ((rc = add_config_headers(ctx, l, bad)))
        return rc;
    if ((rc = add_line(l, "X-Request-Id", ctx->id, bad))) /* id: 40 B */
        return rc;
    ctx->slist = hlist_link(l);
    return l->oom ? -1 : 0;
}

static enum MHD_Result query_put(void *cls, enum MHD_ValueKind kind,
                                 const char *key, const char *value)
{
    buf_t *b = cls;
    (void)kind;
    char *k = curl_easy_escape(NULL, key, 0);
    char *v = value ? curl_easy_escape(NULL, value, 0) : NULL;
    buf_puts(b, b->len ? "&" : "?");
    buf_puts(b, k ? k : "");
    if (value) {
        buf_puts(b, "=");
        buf_puts(b, v ? v : "");
    }
    curl_free(k);
    curl_free(v);
    return MHD_YES;
}

/* The client's query string, re-encoded (MHD hands it decoded), "?"
 * first; empty when none. */
static void query_build(struct sluice_ctx *ctx, buf_t *q)
{
    if (ctx->conn)
        MHD_get_connection_values(ctx->conn, MHD_GET_ARGUMENT_KIND, query_put,
                                  q);
}

/* Chat to the first upstream's plain URL without a query: the worker's
 * pre-built URL serves it. */
static int url_is_plain_chat(const struct sluice_ctx *ctx, const buf_t *q)
{
    const struct upstream_def *up = ctx->up;
    return !q->len && request_api(ctx) == api_chat() &&
           (!up || (upstream_def_plain_chat(up) &&
                    !strcmp(up->base_url, ctx->w->srv->cfg->base_url)));
}

/* The URL in full into u: the route's path under the attempt's upstream
 * (its own path for the route, {model} filled in, and its query), then the
 * client's query q. 0, or -1 when out of memory. */
static int url_build(struct sluice_ctx *ctx, buf_t *q, buf_t *u)
{
    const struct upstream_def *up = ctx->up;
    const struct api_route *api = request_api(ctx);
    /* passthrough: the client's own path after /v1 */
    const char *path = api->up_path ? api->up_path : ctx->url + 3;
    if (up) {
        if (upstream_def_url(up, api->name, path, ctx->up_model, u) != 0)
            u->oom = 1;
        if (q->len && up->query) /* theirs after ours: "&" instead of "?" */
            q->data[0] = '&';
    } else {
        buf_puts(u, ctx->w->srv->cfg->base_url);
        buf_puts(u, path);
    }
    if (q->len)
        buf_append(u, q->data, q->len);
    return u->oom ? -1 : 0;
}

/* The upstream URL of this request for libcurl. Chat without a client
 * query uses a pre-parsed URL: the worker's for the first upstream's
 * plain one, else the upstream's for this worker. */
static int set_url(struct sluice_ctx *ctx, CURL *e)
{
    struct worker *w = ctx->w;
    buf_t q, u;
    buf_init(&q);
    buf_init(&u);
    query_build(ctx, &q);
    if (q.oom)
        goto fail;
    if (url_is_plain_chat(ctx, &q)) {
        if (w->chat_curlu)
            curl_easy_setopt(e, CURLOPT_CURLU, w->chat_curlu);
        else
            curl_easy_setopt(e, CURLOPT_URL, w->chat_url);
        buf_release(&q);
        return 0;
    }
    CURLU *cu = !q.len && request_api(ctx) == api_chat() && ctx->up
                    ? upstream_def_chat_curlu(ctx->up, w->id)
                    : NULL;
    if (cu) { /* another upstream's chat: its own pre-parsed URL */
        curl_easy_setopt(e, CURLOPT_CURLU, cu);
        buf_release(&q);
        return 0;
    }
    if (url_build(ctx, &q, &u) != 0)
        goto fail;
    buf_release(&q);
    curl_easy_setopt(e, CURLOPT_CURLU, NULL);
    curl_easy_setopt(e, CURLOPT_URL, u.data); /* libcurl copies it */
    buf_release(&u);
    return 0;
fail:
    buf_release(&q);
    buf_release(&u);
    return -1;
}

/* The client's bytes; with only the model rewritten, those bytes with the
 * new name spliced in (body_out); once a stage changed the tree, the tree
 * re-serialised. */
static int body_bytes(struct sluice_ctx *ctx, const char **p, size_t *len)
{
    if ((!ctx->body_dirty && !ctx->body_spliced) ||
        request_api(ctx)->body != API_BODY_JSON) {
        *p = ctx->body_in.data ? ctx->body_in.data : "";
        *len = ctx->body_in.len;
        return 0;
    }
    if (!ctx->body_dirty) {
        *p = ctx->body_out;
        *len = ctx->body_out_len;
        return 0;
    }
    ctx->body_spliced = 0;
    free(ctx->body_out);
    ctx->body_out = json_dumps(ctx->body, JSON_COMPACT);
    if (!ctx->body_out)
        return -1;
    ctx->body_out_len = strlen(ctx->body_out);
    *p = ctx->body_out;
    *len = ctx->body_out_len;
    return 0;
}

/* https:// only: the operator's CA bundle, and verification off only when
 * the config says `verify: false` (main.c warned at start). */
static void upstream_tls_options(CURL *e, const struct upstream_tls *tls)
{
    if (tls->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, tls->ca_file);
    if (!tls->verify) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
}

/* The body goes out with CURLOPT_POSTFIELDS: libcurl appends a body under
 * 64 KiB to the request's headers and sends both at once (a read callback
 * costs a second send(2) and a poll(2) a request). libcurl sends a request
 * again on a new connection when a reused one closed before any answer
 * (the upstream may have read, run and billed it), and does so silently;
 * the pre-request callback runs before every send of the attempt, so a
 * second call is that resend, made an attempt sluice knows: counted
 * (x-sluice-attempts, retries), logged, and refused once the attempt
 * budget is spent. */
int upstream_may_resend(struct sluice_ctx *ctx)
{
    if (ctx->attempts_sent >= ctx->attempt_cap) {
        log_msg(LOG_WARN, "core",
                "request %s: the upstream closed a reused connection; no "
                "attempt left to send it again",
                ctx->id);
        return -1;
    }
    ctx->attempts_sent++;
    log_msg(LOG_WARN, "core",
            "request %s: the upstream closed a reused connection before "
            "answering; the request is sent again on a new connection "
            "(attempt %d; the upstream may have run it)",
            ctx->id, ctx->attempts_sent);
    return 0;
}

static int before_send(void *arg, char *ip, char *local_ip, int port,
                       int local_port)
{
    struct sluice_ctx *ctx = arg;
    (void)ip, (void)local_ip, (void)port, (void)local_port;
    if (!ctx->up_sends++)
        return CURL_PREREQFUNC_OK; /* the attempt's own send */
    return upstream_may_resend(ctx) == 0 ? CURL_PREREQFUNC_OK
                                         : CURL_PREREQFUNC_ABORT;
}

/* The client's JSON bytes with `model` = want (its string spliced in,
 * the rest untouched) into body_out. 0, or -1 when the bytes cannot be
 * read that way (the caller re-serialises the tree). */
static int model_splice(struct sluice_ctx *ctx, const char *want)
{
    size_t off, vlen, n;
    buf_t b;
    if (request_api(ctx)->body != API_BODY_JSON ||
        json_member_span(ctx->body_in.data, ctx->body_in.len, "model", &off,
                         &vlen) != 1 ||
        ctx->body_in.data[off] != '"')
        return -1;
    buf_init(&b);
    if (json_splice_str(ctx->body_in.data, ctx->body_in.len, off, vlen, want,
                        &b) != 0) {
        buf_release(&b);
        return -1;
    }
    free(ctx->body_out);
    ctx->body_out = buf_steal(&b, &n);
    ctx->body_out_len = n;
    ctx->body_spliced = 1;
    return 0;
}

/* Where this attempt goes: the upstream named by the attribute "upstream"
 * (the first one when unset), the body's model rewritten to the attribute
 * "upstream_model" when it differs (JSON bodies only). A fallback = the
 * (upstream, model) pair changed since the previous attempt. 0, or -1 with
 * a response set. */
static int target_resolve(struct sluice_ctx *ctx)
{
    const struct upstream_set *ups = ctx->gen ? ctx->gen->ups : NULL;
    const char *name = hdrs_get(&ctx->attrs, "upstream");
    const char *want = hdrs_get(&ctx->attrs, "upstream_model");
    const struct upstream_def *prev = ctx->up;
    const char *cur;

    if (!ups)
        return 0;
    ctx->up = name && *name ? upstream_set_find(ups, name) : &ups->v[0];
    if (!ctx->up) {
        log_msg(LOG_ERROR, "upstream",
                "%s: a stage chose upstream '%.64s', "
                "which this pipeline does not have",
                ctx->id, name);
        request_set_error(ctx, 500, "server_error", "unknown_upstream", NULL,
                          "a gateway stage chose an unknown upstream");
        return -1;
    }
    cur = json_string_value(json_object_get(ctx->body, "model"));
    if (want && *want && json_is_object(ctx->body) &&
        (!cur || strcmp(cur, want))) {
        if (!ctx->model_in)
            ctx->model_in = arena_strdup(&ctx->pool, cur ? cur : "");
        json_t *m = json_object_get(ctx->body, "model");
        if (!ctx->model_in ||
            (json_is_string(m) ? json_string_set(m, want)
                               : json_object_set_new(ctx->body, "model",
                                                     json_string(want))) != 0) {
            request_set_error(ctx, 500, "server_error", "upstream_setup", NULL,
                              "could not start the upstream request");
            return -1;
        }
        if (ctx->body_dirty || model_splice(ctx, want) != 0)
            ctx->body_dirty = 1; /* re-serialised instead */
        cur = want;
    }
    if (!cur)
        cur = want ? want : "";
    if (ctx->attempts_sent &&
        (prev != ctx->up || strncmp(ctx->up_model, cur, sizeof ctx->up_model)))
        ctx->fallbacks++;
    snprintf(ctx->up_model, sizeof ctx->up_model, "%s", cur);
    return 0;
}

/* POST with the body; a passthrough request keeps its own method (GET and
 * HEAD without a body, DELETE and others with whatever body came). */
static void set_method(struct sluice_ctx *ctx, CURL *e, const char *body,
                       size_t blen)
{
    if (!strcmp(ctx->method, "GET")) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        return;
    }
    if (!strcmp(ctx->method, "HEAD")) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
        return;
    }
    ctx->up_body = body;
    ctx->up_body_len = blen;
    ctx->up_sends = 0;
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, before_send);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, ctx);
    if (strcmp(ctx->method, "POST"))
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, ctx->method);
}

/* The attempt's time budget: the request's deadline, or the upstream's
 * per-attempt timeout when shorter; 0 (none) for a stream, whose time the
 * flow watches itself. */
static long attempt_budget_ms(const struct sluice_ctx *ctx)
{
    if (ctx->stream)
        return 0;
    uint64_t now = time_now_ms();
    long left = ctx->deadline > now ? (long)(ctx->deadline - now) : 1;
    if (ctx->up && ctx->up->timeout_ms && ctx->up->timeout_ms < left)
        left = ctx->up->timeout_ms; /* one attempt's budget */
    return left;
}

static long connect_budget_ms(const struct sluice_ctx *ctx)
{
    return ctx->up ? ctx->up->connect_timeout_ms
                   : ctx->w->srv->cfg->connect_timeout_ms;
}

/* sluice's own HTTP/1.1 client takes the attempt when `upstream.client`
 * allows and the URL is http:// to an address (h1client.h). 1: started
 * there; 0: libcurl's; -1: out of memory. */
static int start_builtin(struct sluice_ctx *ctx, const char *body, size_t blen)
{
    const struct config *cfg = ctx->w->srv->cfg;
    const char *base = ctx->up ? ctx->up->base_url : cfg->base_url;
    const char *url, *target;
    struct h1dest d;
    buf_t q, u;
    int rc = -1;

    if (strncasecmp(base, "http://", 7) ||
        !strcmp(cfg->upstream_client, "curl"))
        return 0;
    buf_init(&q);
    buf_init(&u);
    query_build(ctx, &q);
    if (q.oom)
        goto done;
    if (url_is_plain_chat(ctx, &q))
        url = ctx->w->chat_url;
    else if (url_build(ctx, &q, &u) == 0)
        url = u.data;
    else
        goto done;
    rc = 0;
    if (!h1_dest_parse(url, &d, &target))
        goto done;
    ctx->up_body = body;
    ctx->up_body_len = blen;
    rc = h1_start(ctx, &d, target, attempt_budget_ms(ctx),
                  connect_budget_ms(ctx)) == 0
             ? 1
             : -1;
done:
    buf_release(&q);
    buf_release(&u);
    return rc;
}

/* libcurl takes the attempt. 0, or -1 when out of memory. */
static int start_curl(struct sluice_ctx *ctx, CURL *e, const char *body,
                      size_t blen)
{
    const struct config *cfg = ctx->w->srv->cfg;
    if (set_url(ctx, e) != 0)
        return -1;
    set_method(ctx, e, body, blen);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, ctx->slist);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, ctx);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, ctx);
    curl_easy_setopt(e, CURLOPT_PRIVATE, ctx);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, ctx->curl_err);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_budget_ms(ctx));
    /* retire a pooled connection before the upstream closes it idle (a
     * close racing a reused request is what makes libcurl resend) */
    curl_easy_setopt(e, CURLOPT_MAXAGE_CONN,
                     (long)((cfg->keepalive_ms + 999) / 1000));
    /* an upstreams: entry's own ca_file / verify, else upstream:'s */
    if (!strncasecmp(ctx->up ? ctx->up->base_url : cfg->base_url, "https://",
                     8)) {
        struct upstream_tls own = {0};
        if (ctx->up && ctx->up->has_tls)
            own = (struct upstream_tls){(char *)ctx->up->ca_file,
                                        ctx->up->verify};
        upstream_tls_options(e, ctx->up && ctx->up->has_tls ? &own : &cfg->tls);
    }
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, attempt_budget_ms(ctx));
    ctx->easy = e;
    if (curl_multi_add_handle(ctx->w->multi, e) != CURLM_OK) {
        ctx->easy = NULL;
        return -1;
    }
    return 0;
}

int upstream_start(struct sluice_ctx *ctx)
{
    struct worker *w = ctx->w;
    const char *body, *bad = NULL;
    size_t blen;
    CURL *e = NULL;
    int hrc = 0, rc;

    if (target_resolve(ctx) != 0)
        return -1;
    if ((hrc = build_headers(ctx, &bad)) != 0 ||
        body_bytes(ctx, &body, &blen) != 0)
        goto fail;
    ctx->curl_err[0] = '\0';
    ctx->status = 0;
    ctx->headers_done = 0;
    ctx->resp_decided = 0;
    ctx->retry_wanted = 0;
    ctx->tls_refused = 0;
    ctx->up_bad_reply = 0;
    ctx->result = SLUICE_ATTEMPT_NONE;
    hdrs_clear(&ctx->resp_headers);
    buf_reset(&ctx->resp_body);
    ctx->attempt_t0 = time_now_ms();
    ctx->attempt_t0_us = time_now_us();
    if ((rc = start_builtin(ctx, body, blen)) < 0)
        goto fail;
    if (rc == 0 &&
        (!(e = worker_easy_get(w)) || start_curl(ctx, e, body, blen)))
        goto fail;
    ctx->attempts_sent++;
    return 0;
fail:
    ctx->easy = NULL;
    if (e)
        worker_easy_put(w, e);
    ctx->slist = NULL; /* nodes in ctx->hdr_list, kept for reuse */
    if (hrc == -3) {   /* the client's header: named, never its value */
        char msg[200];
        snprintf(msg, sizeof msg,
                 "The value of the header %.64s is too long: at most %d "
                 "bytes.",
                 bad, UPSTREAM_MAX_HEADER - 3 - (int)strlen(bad));
        request_set_error(ctx, 400, "invalid_request_error", "header_too_long",
                          NULL, msg);
        return -1;
    }
    if (bad) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "the upstream header %.64s (set by a stage, forwarded or "
                 "added) is longer than %d bytes",
                 bad, UPSTREAM_MAX_HEADER);
        log_msg(LOG_WARN, "upstream", "request %s: %s", ctx->id, msg);
        request_set_error(ctx, 500, "server_error", "upstream_header_too_long",
                          NULL, msg);
        return -1;
    }
    log_msg(LOG_WARN, "upstream",
            "request %s: could not start the upstream "
            "request (out of memory)",
            ctx->id);
    request_set_error(ctx, 500, "server_error", "upstream_setup", NULL,
                      "could not start the upstream request");
    return -1;
}

static void transfer_release(struct sluice_ctx *ctx)
{
    CURL *e = ctx->easy;
    h1_abort(ctx); /* sluice's own client's, if any */
    if (!e)
        return;
    ctx->easy = NULL;
    curl_multi_remove_handle(ctx->w->multi, e);
    worker_easy_put(ctx->w, e);
    ctx->slist = NULL; /* nodes in ctx->hdr_list, kept for reuse */
    ctx->up_paused = 0;
}

static const char *result_word(sluice_attempt_result r)
{
    static const char *const w[] = {"none",    "http",  "timeout",
                                    "connect", "reset", "aborted"};
    return (unsigned)r < sizeof w / sizeof *w ? w[r] : "none";
}

/* One item of the access line's attempt chain:
 * {"upstream","model","key","status","result"}. No printf: once per
 * attempt. */
static void attempt_record(struct sluice_ctx *ctx)
{
    buf_t *b = &ctx->chain;
    const char *key = hdrs_get(&ctx->attrs, "key_id");
    int st = ctx->result == SLUICE_ATTEMPT_HTTP ? ctx->status : 0;
    char num[4] = {(char)('0' + st / 100 % 10), (char)('0' + st / 10 % 10),
                   (char)('0' + st % 10), 0};
    if (b->len > 4096) /* 24 attempts fit; never unbounded */
        return;
    buf_puts(b, b->len ? ",{\"upstream\":" : "{\"upstream\":");
    buf_json_str(b, ctx->up ? ctx->up->name : "default");
    buf_puts(b, ",\"model\":");
    buf_json_str(b, ctx->up_model);
    buf_puts(b, ",\"key\":");
    buf_json_str(b, key ? key : "");
    buf_puts(b, ",\"status\":");
    buf_puts(b, st ? num : "0");
    buf_puts(b, ",\"result\":\"");
    buf_puts(b, result_word(ctx->result));
    buf_puts(b, "\"}");
}

void upstream_abort(struct sluice_ctx *ctx)
{
    if ((ctx->easy || ctx->h1) && ctx->result == SLUICE_ATTEMPT_NONE) {
        ctx->result = SLUICE_ATTEMPT_ABORTED;
        ctx->attempt_t1 = time_now_ms();
        core_metrics_attempt_end(ctx);
        attempt_record(ctx);
    }
    transfer_release(ctx);
}

void upstream_resume(struct sluice_ctx *ctx)
{
    if (ctx->easy && ctx->up_paused) {
        ctx->up_paused = 0;
        curl_easy_pause(ctx->easy, CURLPAUSE_CONT);
    } else if (ctx->h1 && ctx->up_paused) {
        ctx->up_paused = 0;
        h1_resume(ctx);
    }
}

static sluice_attempt_result classify(CURLcode code)
{
    switch (code) {
    case CURLE_OK:
        return SLUICE_ATTEMPT_HTTP;
    case CURLE_OPERATION_TIMEDOUT:
        return SLUICE_ATTEMPT_TIMEOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CERTPROBLEM:
        return SLUICE_ATTEMPT_CONNECT;
    case CURLE_WRITE_ERROR:
        return SLUICE_ATTEMPT_ABORTED;
    default:
        return SLUICE_ATTEMPT_RESET;
    }
}

/* The attempt ended with libcurl's code (sluice's own client reports
 * the same codes): record it, release the transfer, tell the flow. */
static void attempt_end(struct sluice_ctx *ctx, CURLcode code)
{
    ctx->attempt_t1 = time_now_ms();
    ctx->result = classify(code);
    ctx->tls_refused = code == CURLE_PEER_FAILED_VERIFICATION ||
                       code == CURLE_SSL_CACERT_BADFILE ||
                       code == CURLE_SSL_ISSUER_ERROR;
    if (ctx->tls_refused) /* the operator's problem: say so at WARNING */
        log_msg(LOG_WARN, "upstream", "attempt %d of %s: %s", ctx->attempt,
                ctx->id,
                ctx->curl_err[0] ? ctx->curl_err : curl_easy_strerror(code));
    if (ctx->stream_failed)
        ctx->result = SLUICE_ATTEMPT_RESET; /* a stage refused the bytes */
    /* no status, a head the upstream cut short (libcurl reports CURLE_OK
     * for a close in the middle of it), a 101 */
    if (ctx->result == SLUICE_ATTEMPT_HTTP &&
        (ctx->status == 0 || !ctx->headers_done))
        ctx->result = SLUICE_ATTEMPT_RESET;
    if (ctx->up_bad_reply) {
        ctx->result = SLUICE_ATTEMPT_RESET;
        snprintf(ctx->curl_err, sizeof ctx->curl_err,
                 "the upstream switched protocols (101), which sluice never "
                 "asks for");
    }
    if (ctx->result != SLUICE_ATTEMPT_HTTP && ctx->status && !ctx->stream) {
        /* a status arrived but the body broke: still a broken attempt */
        ctx->result = code == CURLE_OPERATION_TIMEDOUT ? SLUICE_ATTEMPT_TIMEOUT
                                                       : SLUICE_ATTEMPT_RESET;
    }
    if (ctx->result != SLUICE_ATTEMPT_HTTP)
        log_msg(LOG_DEBUG, "upstream", "attempt %d of %s ended: %s",
                ctx->attempt, ctx->id,
                ctx->curl_err[0] ? ctx->curl_err : curl_easy_strerror(code));
    core_metrics_attempt_end(ctx);
    attempt_record(ctx);
    transfer_release(ctx);
    flow_attempt_done(ctx);
}

void upstream_done(CURL *easy, CURLcode code)
{
    struct sluice_ctx *ctx = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&ctx);
    if (!ctx || ctx->easy != easy)
        return;
    attempt_end(ctx, code);
}

void upstream_h1_done(struct sluice_ctx *ctx, CURLcode code)
{
    attempt_end(ctx, code);
}

void upstream_fail(struct sluice_ctx *ctx, const char *why)
{
    if (!ctx->easy && !ctx->h1)
        return;
    snprintf(ctx->curl_err, sizeof ctx->curl_err, "%s", why);
    log_msg(LOG_WARN, "upstream", "attempt %d of %s failed: %s", ctx->attempt,
            ctx->id, why);
    attempt_end(ctx, CURLE_RECV_ERROR);
}
