/*
 * request.h - the request context (struct sluice_ctx): everything one client
 * request owns from its first header to its completion callback. Stages see
 * it only as an opaque pointer through the host table (host.c).
 *
 * Ownership: created by the HTTP layer (http.c) on a request's first call,
 * freed when both the server's completion callback and, for a streamed
 * response, the content reader's free callback have dropped their reference.
 * The pinned generation is released at that point, never while a hook of
 * that generation is on the stack.
 *
 * What lives exactly as long as the request (URL, stage slots, attributes,
 * header lists, content type, a stage's req_alloc) comes from the
 * request's arena (`pool`, arena.h), whose first room is the tail of the
 * context's own allocation: one free at the end releases it all.
 */
#ifndef SLUICE_REQUEST_H
#define SLUICE_REQUEST_H

#include "api.h"
#include "arena.h"
#include "buf.h"
#include "hdrs.h"
#include "hlist.h"
#include "sluice.h"
#include "timer.h"

#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <arpa/inet.h>
#include <stdint.h>

struct worker;
struct generation;
struct upstream_def;

enum route {
    ROUTE_NONE = 0,
    ROUTE_API,        /* an OpenAI endpoint through the pipeline (ctx->api) */
    ROUTE_MODELS,     /* GET /v1/models */
    ROUTE_MODEL_INFO, /* GET /v1/models/{id}/info */
    ROUTE_HEALTH,     /* GET /health */
    ROUTE_ADMIN,      /* /admin/... */
    ROUTE_STAGE,      /* a route a stage registered */
    ROUTE_METRICS,    /* GET /metrics */
    ROUTE_OPENAPI,    /* GET /openapi.json */
    ROUTE_DOCS,       /* GET /docs (Swagger UI) */
    ROUTE_REDOC,      /* GET /redoc (ReDoc) */
    ROUTE_PREFLIGHT,  /* OPTIONS, CORS preflight (server.cors) */
    ROUTE_NOT_FOUND,
    ROUTE_BAD_METHOD
};

enum req_phase {
    PHASE_RECEIVING = 0, /* reading the body */
    PHASE_PENDING,       /* an on_request said PENDING: waiting for its
                            req_resume (before any attempt) */
    PHASE_UPSTREAM,      /* an attempt is in flight */
    PHASE_BACKOFF,       /* waiting for the retry timer */
    PHASE_READY,         /* a full response is set, waiting to be queued */
    PHASE_STREAMING,     /* streamed response queued, bytes flowing */
    PHASE_DONE           /* response queued (or connection gone) */
};

/* A watched client socket: how a suspended request learns its client left. */
struct ev_src {
    int kind; /* EV_* in worker.h */
    int fd;
    void *owner;
    struct ev_src *next_dead; /* worker's list of sources to free */
    uint32_t events;          /* EPOLL* registered (upstream sockets) */
};

struct sluice_ctx {
    struct arena pool; /* request-lifetime memory, freed by request_free */
    struct worker *w;
    struct MHD_Connection *conn;
    struct generation *gen; /* pinned for the request's life */
    int refs;               /* completion callback + stream reader */
    char id[40];
    uint64_t t_start;  /* monotonic ms */
    uint64_t deadline; /* monotonic ms: upstream time budget */
    enum route route;
    enum req_phase phase;
    char method[12];
    char *url;       /* request path (pool) */
    const char *aux; /* ROUTE_MODEL_INFO: model id / ROUTE_ADMIN: sub-path */
    const struct api_route *api; /* ROUTE_API: which endpoint (api.h) */
    struct stage_route *sroute;  /* ROUTE_STAGE */
    struct sluice_stage *sstage;
    char peer[64];
    int on_admin_port;    /* arrived on admin.listen's socket */
    struct hdrs req_hdrs; /* client headers when there is no connection
                             (stage tests build contexts without one) */

    /* request body */
    buf_t body_in;
    int body_too_large;
    size_t drained;      /* body bytes dropped past max_body_bytes */
    int close_after;     /* answer with Connection: close */
    int refused_early;   /* a stage's on_headers answered: body dropped */
    size_t parse_charge; /* bytes of the parsed body held (bodycap.c) */
    json_t *body;        /* parsed once; owned */
    int body_dirty;
    char *body_out; /* re-serialised body when dirty, or the client's bytes
                       with the model spliced in (body_spliced); owned */
    size_t body_out_len;
    int body_spliced; /* body_out = client bytes + upstream_model */
    int stream;

    /* stages */
    void **locals; /* one slot per stage (pool) */
    int cur_stage; /* stage whose hook is running (-1 none) */
    int chunk_stage;
    struct hdrs attrs;
    int completed; /* on_complete ran */
    /* an on_request verdict to come (SLUICE_PENDING, req_resume) */
    int pending_stage;       /* whose; -1: none */
    int resume_posted;       /* req_resume was called */
    sluice_verdict resume_v; /* what it said */

    /* upstream attempt */
    int attempt;
    int attempt_cap;
    int attempts_sent;      /* upstream requests actually started */
    struct hdrs up_headers; /* set by stages, reset for each attempt */
    CURL *easy;
    struct h1conn *h1; /* or sluice's own client's connection (h1client.c) */
    struct curl_slist *slist; /* the attempt's headers: hdr_list's nodes */
    struct hlist hdr_list;
    const char *up_body; /* the attempt's body (borrowed: body_in, body_out
                            or the spliced bytes), libcurl's POSTFIELDS */
    size_t up_body_len;
    int up_sends; /* sends of this attempt by libcurl (upstream.c) */
    char curl_err[CURL_ERROR_SIZE];
    int tls_refused;  /* the attempt failed on the upstream's certificate */
    int up_bad_reply; /* libcurl: an answer that is not HTTP (101) */
    /* the worker could not watch this transfer's socket (worker.c): the
     * attempt is failed once libcurl's call returns */
    struct sluice_ctx *lost_next;
    CURL *lost_easy; /* the transfer concerned, NULL when not listed */
    int lost_errno;
    sluice_attempt_result result;
    int status;
    int headers_done;
    int resp_decided; /* on_response ran for the current attempt */
    int retry_wanted; /* on_response said RETRY on a 2xx stream */
    struct hdrs resp_headers;
    buf_t resp_body;
    uint64_t attempt_t0, attempt_t1;
    uint32_t retry_ms;
    /* where the attempt goes (upstream.c): chosen by a stage through the
     * attributes "upstream" and "upstream_model" */
    const struct upstream_def *up; /* current/last attempt's upstream;
                                      borrowed from the pinned generation */
    char up_model[160];    /* model name sent upstream ("" before any) */
    char *model_in;        /* the client's model once rewritten (pool) */
    int fallbacks;         /* attempts whose (upstream, model) changed */
    buf_t chain;           /* access log: the attempts, a JSON array body */
    struct timer timer;    /* retry back-off */
    struct timer dl_timer; /* deadline of a stream not yet committed;
                              after commit: heartbeat / idle checks */

    /* client response */
    int out_status;  /* 0 = none set */
    char *out_ctype; /* (pool) */
    buf_t out_body;
    struct hdrs out_headers;

    /* streaming */
    buf_t sbuf; /* bytes for the client not yet taken by MHD */
    size_t soff;
    size_t sbuf_max;
    int up_paused;
    int up_done;
    int suspended;
    int client_gone;
    struct ev_src watch;
    int watching;      /* 1: its own epoll registration, 2: the connection's
                          (guard_watch) */
    int stream_queued; /* the streamed response was handed to MHD */
    int stream_failed; /* the on_chunk chain refused upstream bytes */
    uint32_t heartbeat_ms, idle_ms; /* stream_configure; 0 = off */
    uint64_t last_up_ms;    /* last complete upstream event written (bytes
                               that never complete one do not count) */
    uint64_t stream_end_ms; /* server.max_stream_s after commit; 0 = off */
    int feeding;            /* upstream bytes are in the on_chunk chain */
    int stream_too_long;    /* ended by max_stream_s */
    uint64_t last_out_ms;   /* last byte queued for the client */
    uint64_t stream_events; /* named events queued (the sse stage hands
                               one per write): the next sequence_number
                               of a Responses stream */

    /* observability (core_metrics.c, access log) */
    uint64_t t_start_us;    /* monotonic µs */
    uint64_t attempt_t0_us; /* start of the current attempt */
    uint64_t up_us;         /* upstream time, summed over attempts */
    uint64_t first_out_us;  /* first streamed byte queued (0: none) */
    char err_code[48];      /* code of the last error response set */
    const char *responder;  /* stage that answered before upstream
                               (borrowed from the pinned generation) */

    struct sluice_ctx *prev, *next; /* worker's list of live requests */
};

/* Room of the arena inside the context's own allocation: what a plain
 * chat request through the bundled stages uses, measured (bench/NOTES.md). */
#define REQUEST_POOL_FIRST 2048

/* A zeroed context, not linked anywhere: its arena set up, its header lists
 * on it, `nstages` zeroed stage slots. NULL when out of memory. Freed by
 * request_free. request_new builds on it; stage tests use it alone. */
struct sluice_ctx *request_alloc(size_t nstages);
/* Allocate a context for a new request on worker w. */
struct sluice_ctx *request_new(struct worker *w, struct MHD_Connection *conn,
                               const char *method, const char *url);
/* The client's address as text ("" if unknown), computed on first use. */
const char *request_peer(struct sluice_ctx *ctx);
/* Case-insensitive lookup of a client request header (NULL if absent). */
const char *request_header(struct sluice_ctx *ctx, const char *name);
/* Drop a reference; at zero unlinks from the worker and frees. */
void request_unref(struct sluice_ctx *ctx);
/* Free the context and what it owns, unpin its generation. No worker
 * bookkeeping: for contexts built without a server (stage tests). */
void request_free(struct sluice_ctx *ctx);

/* The request's route (api.h): chat when it has none (contexts built
 * without a server, in stage tests). */
static inline const struct api_route *request_api(const struct sluice_ctx *c)
{
    return c->api ? c->api : api_chat();
}

/* Set the client response (copies body). */
int request_set_response(struct sluice_ctx *ctx, int status, const char *ctype,
                         const char *body, size_t len);
/* Set an OpenAI-shaped error response. */
int request_set_error(struct sluice_ctx *ctx, int status, const char *type,
                      const char *code, const char *param, const char *message);

/* How many times the request moved to another deployment or model: the
 * router's count (attribute "fallbacks", which includes a context-window
 * fallback made before any attempt), else the (upstream, model) changes
 * between attempts the core saw. */
int request_fallbacks(const struct sluice_ctx *ctx);

/* Render the OpenAI error JSON into out. */
void error_json(buf_t *out, const char *type, const char *code,
                const char *param, const char *message);

#endif
