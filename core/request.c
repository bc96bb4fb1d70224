/*
 * request.c - creation, reference counting and destruction of the request
 * context, and the helpers that set what the client will get.
 */
#include "request.h"
#include "blockcache.h"
#include "h1client.h"
#include "bodycap.h"
#include "core_metrics.h"
#include "log.h"
#include "pipeline.h"
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Lower-case hex of v at p, no leading zeros; returns the end. */
static char *hex_put(char *p, uint64_t v)
{
    char tmp[16];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static void request_make_id(struct sluice_ctx *ctx, struct worker *w)
{
    const char *given =
        MHD_lookup_connection_value(ctx->conn, MHD_HEADER_KIND, "X-Request-Id");
    if (given) {
        size_t n = strlen(given);
        int ok = n > 0 && n < sizeof(ctx->id);
        for (size_t i = 0; ok && i < n; i++) {
            char c = given[i];
            ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
        }
        if (ok) {
            memcpy(ctx->id, given, n + 1);
            return;
        }
    }
    /* "req-<start ms, hex>-<worker>-<seq, hex>", without printf: this runs
     * for every request */
    char *p = ctx->id;
    memcpy(p, "req-", 4);
    p = hex_put(p + 4, ctx->t_start & 0xffffffffull);
    *p++ = '-';
    p = hex_put(p, (uint64_t)(unsigned)w->id); /* small: hex = decimal < 10 */
    *p++ = '-';
    p = hex_put(p, ++w->seq);
    *p = '\0';
}

/* inet_ntop's text for an IPv4 address ("10.0.0.1"), without its
 * sprintf: the access log asks for every request. out: 16 bytes. */
static void ipv4_text(const struct in_addr *a, char *out)
{
    const unsigned char *b = (const unsigned char *)&a->s_addr;
    char *p = out;
    for (int i = 0; i < 4; i++) {
        unsigned v = b[i];
        if (v >= 100)
            *p++ = (char)('0' + v / 100);
        if (v >= 10)
            *p++ = (char)('0' + v / 10 % 10);
        *p++ = (char)('0' + v % 10);
        *p++ = i < 3 ? '.' : '\0';
    }
}

/* The client's address as text, worked out on first use (most requests
 * never ask). Contexts built without a connection keep what was set. */
const char *request_peer(struct sluice_ctx *ctx)
{
    if (ctx->peer[0] || !ctx->conn)
        return ctx->peer;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(ctx->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return ctx->peer;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        ipv4_text(&((const struct sockaddr_in *)sa)->sin_addr, ctx->peer);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr,
                  ctx->peer, sizeof ctx->peer);
    return ctx->peer;
}

struct sluice_ctx *request_alloc(size_t nstages)
{
    /* one block: the context, then its arena's first room (only the
     * context is zeroed: the room is handed out as needed); a block the
     * thread's last requests gave back when there is one (blockcache.h) */
    size_t got;
    struct sluice_ctx *ctx =
        blockcache_get(sizeof(*ctx) + REQUEST_POOL_FIRST, &got);
    if (!ctx)
        return NULL;
    memset(ctx, 0, sizeof(*ctx));
    arena_init(&ctx->pool, ctx + 1, REQUEST_POOL_FIRST);
    ctx->attrs.arena = ctx->req_hdrs.arena = ctx->up_headers.arena =
        ctx->resp_headers.arena = ctx->out_headers.arena = &ctx->pool;
    if (nstages) {
        ctx->locals = arena_calloc(&ctx->pool, nstages * sizeof(void *));
        if (!ctx->locals) {
            blockcache_put(ctx, sizeof(*ctx) + REQUEST_POOL_FIRST);
            return NULL;
        }
    }
    return ctx;
}

struct sluice_ctx *request_new(struct worker *w, struct MHD_Connection *conn,
                               const char *method, const char *url)
{
    struct generation *gen = generation_pin();
    struct sluice_ctx *ctx = request_alloc(gen ? gen->nstages : 0);
    if (!ctx) {
        generation_unpin(gen);
        return NULL;
    }
    ctx->gen = gen;
    ctx->w = w;
    ctx->conn = conn;
    ctx->refs = 1;
    ctx->t_start = time_now_ms();
    ctx->t_start_us = time_now_us();
    ctx->cur_stage = -1;
    ctx->pending_stage = -1;
    ctx->chunk_stage = -1;
    size_t mlen = strnlen(method, sizeof ctx->method - 1);
    memcpy(ctx->method, method, mlen); /* calloc'd: stays terminated */
    ctx->url = arena_strdup(&ctx->pool, url);
    if (!ctx->url) {
        request_free(ctx);
        return NULL;
    }
    timer_init(&ctx->timer, NULL, ctx);
    timer_init(&ctx->dl_timer, NULL, ctx);
    ctx->sbuf_max = 64 * 1024;
    ctx->watch.kind = 0;
    ctx->watch.fd = -1;
    ctx->watch.owner = ctx;
    request_make_id(ctx, w);
    /* link into the worker's live list */
    ctx->next = w->live;
    if (w->live)
        w->live->prev = ctx;
    w->live = ctx;
    if (++w->active > w->peak_active)
        w->peak_active = w->active;
    core_metrics_request_start(ctx);
    return ctx;
}

const char *request_header(struct sluice_ctx *ctx, const char *name)
{
    if (!ctx->conn)
        return hdrs_get(&ctx->req_hdrs, name);
    return MHD_lookup_connection_value(ctx->conn, MHD_HEADER_KIND, name);
}

void request_unref(struct sluice_ctx *ctx)
{
    if (!ctx || --ctx->refs > 0)
        return;
    struct worker *w = ctx->w;
    if (ctx->prev)
        ctx->prev->next = ctx->next;
    else
        w->live = ctx->next;
    if (ctx->next)
        ctx->next->prev = ctx->prev;
    w->active--;
    worker_timer_del(w, &ctx->timer);
    worker_timer_del(w, &ctx->dl_timer);
    worker_unwatch_client(w, ctx);
    worker_forget_lost(w, ctx);
    h1_abort(ctx); /* never left open: a connection points back at ctx */
    request_free(ctx);
    if (!w->active)
        worker_trim_after_spike(w);
}

void request_free(struct sluice_ctx *ctx)
{
    generation_unpin(ctx->gen);
    json_decref(ctx->body);
    size_t body_len = ctx->body_in.len;
    buf_release(&ctx->body_in);
    bodycap_release(ctx->parse_charge, body_len);
    free(ctx->body_out);
    buf_release(&ctx->chain);
    buf_release(&ctx->resp_body);
    buf_release(&ctx->out_body);
    buf_release(&ctx->sbuf);
    hlist_free(&ctx->hdr_list);
    /* the URL, stage slots, attributes, header lists, content type and
     * the stages' req_alloc memory: all in the arena */
    arena_free(&ctx->pool);
    blockcache_put(ctx, sizeof(*ctx) + REQUEST_POOL_FIRST);
}

int request_set_response(struct sluice_ctx *ctx, int status, const char *ctype,
                         const char *body, size_t len)
{
    ctype = ctype ? ctype : "application/json";
    if (!ctx->out_ctype || strcmp(ctx->out_ctype, ctype)) {
        char *ct = arena_strdup(&ctx->pool, ctype);
        if (!ct)
            return -1;
        ctx->out_ctype = ct;
    }
    ctx->out_status = status;
    buf_reset(&ctx->out_body);
    return buf_append(&ctx->out_body, body ? body : "", body ? len : 0);
}

void error_json(buf_t *out, const char *type, const char *code,
                const char *param, const char *message)
{
    buf_puts(out, "{\"error\":{\"message\":");
    buf_json_str(out, message ? message : "");
    buf_puts(out, ",\"type\":");
    buf_json_str(out, type ? type : "server_error");
    buf_puts(out, ",\"param\":");
    buf_json_str(out, param);
    buf_puts(out, ",\"code\":");
    buf_json_str(out, code);
    buf_puts(out, "}}");
}

int request_set_error(struct sluice_ctx *ctx, int status, const char *type,
                      const char *code, const char *param, const char *message)
{
    buf_t b;
    snprintf(ctx->err_code, sizeof ctx->err_code, "%s", code ? code : "");
    buf_init(&b);
    error_json(&b, type, code, param, message);
    int rc = b.oom ? -1
                   : request_set_response(ctx, status, "application/json",
                                          b.data, b.len);
    buf_release(&b);
    return rc;
}

int request_fallbacks(const struct sluice_ctx *ctx)
{
    const char *fb = hdrs_get(&ctx->attrs, "fallbacks");
    return fb && *fb ? atoi(fb) : ctx->fallbacks;
}
