/*
 * sluice.h - the one public header of the sluice plugin SDK (ABI 1.1).
 *
 * A stage is a shared object that exports one symbol, sluice_plugin_entry(),
 * returning a const descriptor (struct sluice_plugin). The core checks the
 * descriptor's version fields first, then calls init() with a host function
 * table (struct sluice_host) through which the stage reaches everything else:
 * the request, the upstream attempt, the response, JSON values, logs,
 * admin actions and (ABI 1.1) the shared state. Nothing of the core is visible
 * here: the request context and JSON values are opaque.
 *
 * Compatibility rules (see sdk/README.md):
 *   - abi_major must equal the core's; abi_minor may be older, never newer.
 *   - struct sluice_host and struct sluice_plugin carry their size and only
 *     ever grow at the end. A stage must check host->size (SLUICE_HOST_HAS)
 *     before calling a member added after ABI 1.0.
 *
 * Threading: hooks run concurrently on several worker threads. Stage state is
 * the stage's to guard. All hooks of one request run on one thread, one at a
 * time, so per-request data (sluice_host.local_set) needs no lock.
 *
 * Memory: strings and JSON values the host hands to a hook are borrowed for
 * that call unless stated otherwise. What the host allocates, the host frees;
 * what a stage allocates, the stage frees.
 */
#ifndef SLUICE_H
#define SLUICE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SLUICE_ABI_MAJOR 1
#define SLUICE_ABI_MINOR 1

#if defined(__GNUC__)
#define SLUICE_EXPORT       __attribute__((visibility("default")))
#define SLUICE_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SLUICE_EXPORT
#define SLUICE_PRINTF(a, b)
#endif

/* Opaque handles. */
typedef struct sluice_ctx sluice_ctx;     /* one client request */
typedef struct sluice_stage sluice_stage; /* the host's record of a stage */
typedef struct sluice_json sluice_json;   /* a JSON value */
typedef struct sluice_buf sluice_buf;     /* a host-owned growable buffer */

/* What a hook tells the pipeline runner to do next. */
typedef enum sluice_verdict {
    SLUICE_CONTINUE = 0, /* go on with the next stage / phase */
    SLUICE_RESPOND = 1,  /* the stage set the client response: stop here */
    SLUICE_RETRY = 2,    /* on_response: try the upstream again after the
                            delay set with retry_after_ms() (0 = now);
                            on_attempt: run on_attempt again after that
                            delay (e.g. wait for a key to come back) */
    SLUICE_ERROR = 3,    /* internal failure: the client gets a 500 unless
                            the stage already set an error response */
    SLUICE_PENDING = 4   /* ABI 1.1, on_request only: the verdict comes
                            later, through req_resume() (the stage waits
                            for something asynchronous, e.g. a state_incr
                            completion). Check SLUICE_HOST_HAS(host,
                            req_resume) first: an older core takes it for
                            ERROR. */
} sluice_verdict;

typedef enum sluice_log_level {
    SLUICE_LOG_DEBUG = 0,
    SLUICE_LOG_INFO = 1,
    SLUICE_LOG_WARN = 2,
    SLUICE_LOG_ERROR = 3
} sluice_log_level;

typedef enum sluice_json_type {
    SLUICE_JSON_INVALID = 0, /* NULL handle */
    SLUICE_JSON_NULL,
    SLUICE_JSON_BOOL,
    SLUICE_JSON_INT,
    SLUICE_JSON_REAL,
    SLUICE_JSON_STRING,
    SLUICE_JSON_ARRAY,
    SLUICE_JSON_OBJECT
} sluice_json_type;

/* Why an upstream attempt ended (sluice_host.attempt_result). */
typedef enum sluice_attempt_result {
    SLUICE_ATTEMPT_NONE = 0,    /* not finished yet */
    SLUICE_ATTEMPT_HTTP = 1,    /* an HTTP status was received */
    SLUICE_ATTEMPT_TIMEOUT = 2, /* no answer within the time budget */
    SLUICE_ATTEMPT_CONNECT = 3, /* connection refused / DNS / TLS */
    SLUICE_ATTEMPT_RESET = 4,   /* connection broke while receiving */
    SLUICE_ATTEMPT_ABORTED = 5  /* client went away */
} sluice_attempt_result;

/* An admin action a stage publishes: POST|GET /admin/plugins/<stage>/<name>.
 * The handler writes a JSON document to `out` and returns the HTTP status.
 * `body` is the request body (may be NULL), borrowed for the call. Admin
 * handlers run on a worker thread concurrently with request hooks. */
typedef int (*sluice_admin_fn)(void *instance, const char *method,
                               const char *body, size_t body_len,
                               sluice_buf *out);

/* A public route a stage serves (e.g. the context stage's GET /v1/models).
 * `path` is the full request path, borrowed. Writes the response body (JSON)
 * to out and returns the HTTP status. Runs on a worker thread: no blocking. */
typedef int (*sluice_route_fn)(void *instance, const char *method,
                               const char *path, sluice_buf *out);

/* A metric a stage (or the core) publishes on /metrics. */
typedef struct sluice_metric sluice_metric;

typedef enum sluice_metric_type {
    SLUICE_METRIC_COUNTER = 0,
    SLUICE_METRIC_GAUGE = 1,
    SLUICE_METRIC_HISTOGRAM = 2
} sluice_metric_type;

/* Completion of an asynchronous upstream probe (http_probe). status is the
 * HTTP status, or 0 when no answer came. Runs on a core thread. */
typedef void (*sluice_probe_fn)(void *arg, int status);
/* Completion of http_fetch (ABI 1.1): the status and the body. */
typedef void (*sluice_fetch_fn)(void *arg, int status, const char *body,
                                size_t len);

/* One entry of the shared state (ABI 1.1), as a completion or a change
 * notification sees it. Everything is borrowed for the callback. */
typedef struct sluice_state_value {
    const char *key;     /* the key as the stage named it (no namespace) */
    int found;           /* 0: absent, expired or deleted */
    int64_t count;       /* a counter's value (0 for a record) */
    const char *data;    /* a record's bytes, NUL-terminated (NULL: none) */
    size_t len;          /* bytes in data */
    uint64_t expires_ms; /* wall-clock ms when it expires; 0: never */
    const char *origin;  /* the instance that last changed it ("" unknown) */
    int shared;          /* 1: the backend's (fleet-wide) value; 0: this
                            instance's local view (backend unavailable) */
} sluice_state_value;

/* state_status flags (ABI 1.1): the shared backend cannot be reached (the
 * view is this instance's alone), and the operator's choice for that case
 * (state.on_unavailable: closed). */
#define SLUICE_STATE_DEGRADED 0x1
#define SLUICE_STATE_CLOSED   0x2

/* Completion of state_incr, or a change seen by state_watch. */
typedef void (*sluice_state_fn)(void *arg, const sluice_state_value *v);

/* An admin action that sees its request (ABI 1.1, admin_register_ctx): it
 * reads the request through the host (req_method, req_query, ...), writes
 * the body to `out` and returns the HTTP status, with *content_type set to
 * a static string when the body is not JSON (e.g. "text/csv"). It may
 * instead answer with respond_error() and return 0. A negative return is an
 * internal failure (the client then gets a 500). Runs on a worker thread
 * concurrently with request hooks. */
typedef int (*sluice_admin_ctx_fn)(void *instance, sluice_ctx *ctx,
                                   sluice_buf *out, const char **content_type);

/*
 * The host function table. Handed to init(); valid until destroy() returns.
 * Members are only ever appended. Check SLUICE_HOST_HAS(host, member) before
 * using one added after the ABI minor your stage was built against.
 */
typedef struct sluice_host {
    uint32_t size;      /* sizeof(struct sluice_host) in the core */
    uint32_t abi_major; /* the core's SLUICE_ABI_MAJOR */
    uint32_t abi_minor; /* the core's SLUICE_ABI_MINOR */
    uint32_t reserved;

    /* ==== ABI 1.0: every member from here down to http_probe. A member
     * added later carries a comment with its minor version; the guide's
     * host table (sdk/README.md) lists each member with its version, and
     * tests/scripts/sdk_guide.sh checks the two agree. */

    /* ---- logging and time ---------------------------------------- */
    /* Log a line attributed to `stage` (may be NULL). Never log secrets
     * whole: use mask_secret(). */
    void (*log)(sluice_stage *stage, sluice_log_level level, const char *fmt,
                ...) SLUICE_PRINTF(3, 4);
    /* Monotonic milliseconds and wall-clock milliseconds since the epoch. */
    uint64_t (*now_ms)(void);
    uint64_t (*wall_ms)(void);
    /* Write "sk-…abcd" (the last four characters) into out; returns out. */
    char *(*mask_secret)(const char *secret, char *out, size_t outlen);

    /* ---- the client request (valid in every hook) ---------------- */
    const char *(*req_method)(sluice_ctx *ctx);
    const char *(*req_path)(sluice_ctx *ctx);
    /* Case-insensitive lookup of a client request header; NULL if absent. */
    const char *(*req_header)(sluice_ctx *ctx, const char *name);
    /* The client's address as text ("127.0.0.1", "::1"). */
    const char *(*req_peer)(sluice_ctx *ctx);
    /* The parsed JSON body (NULL when the request has none). */
    const sluice_json *(*req_body)(sluice_ctx *ctx);
    /* The same body, writable: marks it changed, so the core re-serialises
     * it before the next upstream attempt. Only in on_request/on_attempt. */
    sluice_json *(*req_body_mut)(sluice_ctx *ctx);
    /* body.model ("" when absent) and body.stream (0/1). */
    const char *(*req_model)(sluice_ctx *ctx);
    int (*req_stream)(sluice_ctx *ctx);
    /* A unique id of this request (also sent as x-request-id). */
    const char *(*req_id)(sluice_ctx *ctx);

    /* ---- attributes shared between stages of one request ----------
     * Copied into the request's arena; the returned pointer stays valid
     * until the request ends (setting the attribute again may overwrite
     * its text in place: read it again after a set). Conventional names, read
     * by the core for metrics and the access log: "client" (client name, set by
     * auth), "prompt_tokens_estimate", "key_id" (masked key),
     * "usage_prompt_tokens" and "usage_completion_tokens" (decimal strings).
     * Since minor 1 the core's upstream client also reads "upstream" (the name
     * of the upstream this attempt goes to; unset: the first upstream; unknown:
     * a 500) and "upstream_model" (the model name sent upstream: the body's
     * "model" is rewritten when it differs), both set in on_attempt. */
    int (*attr_set)(sluice_ctx *ctx, const char *name, const char *value);
    const char *(*attr_get)(sluice_ctx *ctx, const char *name);

    /* ---- per-request data private to the calling stage ------------
     * One pointer slot per stage and request. The stage frees what it put
     * there, at the latest in on_complete (always called once). */
    void (*local_set)(sluice_ctx *ctx, void *data);
    void *(*local_get)(sluice_ctx *ctx);

    /* ---- the upstream attempt (on_attempt) ------------------------ */
    /* Set (replace) a header of the upstream request for this attempt,
     * e.g. "Authorization", "Bearer sk-...". The host copies both. */
    int (*up_header_set)(sluice_ctx *ctx, const char *name, const char *value);
    /* 1 for the first attempt, 2 for the second, ... */
    int (*attempt_no)(sluice_ctx *ctx);

    /* ---- the upstream response (on_response, on_chunk, on_complete) */
    sluice_attempt_result (*attempt_result)(sluice_ctx *ctx);
    /* HTTP status of the last attempt, 0 if none was received. */
    int (*resp_status)(sluice_ctx *ctx);
    /* Case-insensitive lookup of an upstream response header. */
    const char *(*resp_header)(sluice_ctx *ctx, const char *name);
    /* The buffered upstream body (non-streamed, or a streamed attempt that
     * failed before any byte reached the client); NULL otherwise. */
    const char *(*resp_body)(sluice_ctx *ctx, size_t *len);
    /* Milliseconds the last attempt took. */
    uint64_t (*attempt_ms)(sluice_ctx *ctx);

    /* ---- deciding (on_request, on_response) ----------------------- */
    /* Set the client response and make the verdict RESPOND meaningful.
     * The body is copied. */
    int (*respond)(sluice_ctx *ctx, int status, const char *content_type,
                   const char *body, size_t len);
    /* Set an OpenAI-shaped error response:
     * {"error":{"message":...,"type":...,"param":...,"code":...}}.
     * param and code may be NULL (JSON null). */
    int (*respond_error)(sluice_ctx *ctx, int status, const char *type,
                         const char *code, const char *param,
                         const char *message);
    /* Add a header to whatever response the client gets. */
    int (*resp_header_add)(sluice_ctx *ctx, const char *name,
                           const char *value);
    /* Delay of a RETRY verdict, in milliseconds. */
    void (*retry_after_ms)(sluice_ctx *ctx, uint32_t ms);

    /* ---- streaming (on_chunk) ------------------------------------- */
    /* Pass bytes to the next stage's on_chunk, or to the client when no
     * stage follows. A stage with on_chunk must forward what it wants the
     * client to see: bytes it does not forward are dropped. At the end of
     * the upstream stream (clean or not) on_chunk is called once more with
     * data == NULL and len == 0: flush what you hold, then forward the
     * NULL/0 end mark on. Returning SLUICE_ERROR from that last call says
     * the stream ended broken although the body ended cleanly (e.g. inside
     * an event): the client gets the stream_interrupted error event. */
    int (*chunk_forward)(sluice_ctx *ctx, const char *data, size_t len);

    /* ---- JSON values (body, config) -------------------------------
     * Accessors return SLUICE_JSON_INVALID / NULL / 0 on a wrong type, so
     * chains like json_get(json_get(b, "a"), "b") are safe. */
    sluice_json_type (*json_type)(const sluice_json *v);
    const sluice_json *(*json_get)(const sluice_json *obj, const char *key);
    size_t (*json_size)(const sluice_json *v); /* array/object size */
    const sluice_json *(*json_at)(const sluice_json *arr, size_t i);
    const char *(*json_str)(const sluice_json *v); /* NULL if not string */
    size_t (*json_strlen)(const sluice_json *v);
    int64_t (*json_int)(const sluice_json *v); /* 0 if not a number */
    double (*json_real)(const sluice_json *v); /* int or real */
    int (*json_bool)(const sluice_json *v);    /* 1 only for true */
    /* Object iteration: it = json_iter(obj); while (it) { key/value;
     * it = json_iter_next(obj, it); } */
    void *(*json_iter)(const sluice_json *obj);
    void *(*json_iter_next)(const sluice_json *obj, void *it);
    const char *(*json_iter_key)(void *it);
    const sluice_json *(*json_iter_value)(void *it);
    /* Mutation of a writable value (req_body_mut, or one from json_parse). */
    int (*json_set_str)(sluice_json *obj, const char *key, const char *val);
    int (*json_set_int)(sluice_json *obj, const char *key, int64_t val);
    int (*json_set_bool)(sluice_json *obj, const char *key, int val);
    /* Get obj[key] as an object, creating it (replacing a non-object). */
    sluice_json *(*json_set_object)(sluice_json *obj, const char *key);
    int (*json_del)(sluice_json *obj, const char *key);
    /* Parse text into a new value the caller frees with json_free. */
    sluice_json *(*json_parse)(const char *text, size_t len, char *err,
                               size_t errlen);
    void (*json_free)(sluice_json *v);
    /* Append compact JSON of v to out. */
    int (*json_dump)(const sluice_json *v, sluice_buf *out);

    /* ---- configuration helpers (init) ------------------------------
     * YAML scalars may arrive as strings ("${PORT:-8000}"): these accept a
     * number or a numeric string. They return 0 and the default when the
     * key is absent, 0 and the value when it is valid, -1 when present but
     * of the wrong type. */
    int (*cfg_int)(const sluice_json *cfg, const char *key, int64_t def,
                   int64_t *out);
    int (*cfg_real)(const sluice_json *cfg, const char *key, double def,
                    double *out);
    int (*cfg_bool)(const sluice_json *cfg, const char *key, int def, int *out);
    int (*cfg_str)(const sluice_json *cfg, const char *key, const char *def,
                   const char **out);

    /* ---- buffers --------------------------------------------------- */
    int (*buf_append)(sluice_buf *b, const char *data, size_t len);
    int (*buf_printf)(sluice_buf *b, const char *fmt, ...) SLUICE_PRINTF(2, 3);
    /* Append s as a JSON string literal, quotes included. */
    int (*buf_json_str)(sluice_buf *b, const char *s);

    /* ---- admin ------------------------------------------------------
     * Publish an action under /admin/plugins/<stage name>/<action>; also
     * reachable at /admin/<alias> when alias is not NULL. Call from init. */
    int (*admin_register)(sluice_stage *stage, const char *action,
                          const char *alias, sluice_admin_fn fn);

    /* ---- environment ------------------------------------------------- */
    /* The upstream base URL and total timeout in ms, as configured. */
    const char *(*upstream_base_url)(void);
    uint64_t (*upstream_timeout_ms)(void);
    /* Name this stage has in the pipeline. */
    const char *(*stage_name)(sluice_stage *stage);

    /* ---- public routes ------------------------------------------------
     * Serve `method` on `path` (exact), or on every path under it when path
     * ends in a slash and a star, e.g. "/v1/models/" "*". Stage routes take
     * precedence over the core's own. Call from init. */
    int (*route_register)(sluice_stage *stage, const char *method,
                          const char *path, sluice_route_fn fn);

    /* ---- streaming control (on_response of a 2xx stream) -------------
     * heartbeat_ms: when the upstream is silent that long, the core sends
     * an SSE comment line (": keep-alive") to the client; 0 = off.
     * idle_ms: an upstream silent that long is a failure: the stream ends
     * with an OpenAI-shaped error event; 0 = off.
     * buffer_max: bytes queued for a slow client before the upstream is
     * paused (back-pressure); 0 = the core's default (64 KiB). */
    int (*stream_configure)(sluice_ctx *ctx, uint32_t heartbeat_ms,
                            uint32_t idle_ms, size_t buffer_max);

    /* ---- metrics ------------------------------------------------------
     * Register (or find, when a metric of that name exists: metrics
     * survive reloads) a metric. label_names: comma-separated ("model,code")
     * or NULL. buckets: upper bounds for a histogram (ascending), else NULL.
     * Returns NULL on a name clash of another type or bad names. */
    sluice_metric *(*metric_register)(sluice_stage *stage,
                                      sluice_metric_type type, const char *name,
                                      const char *help, const char *label_names,
                                      const double *buckets, size_t nbuckets);
    /* label_values: one string per label name, in order (NULL if none).
     * add: counters and gauges; set: gauges; observe: histograms. */
    void (*metric_add)(sluice_metric *m, const char *const *label_values,
                       double v);
    void (*metric_set)(sluice_metric *m, const char *const *label_values,
                       double v);
    void (*metric_observe)(sluice_metric *m, const char *const *label_values,
                           double v);

    /* ---- upstream probe -----------------------------------------------
     * GET <base_url><path> with the given Authorization value, off the
     * request path; done(arg, status) runs on a core thread when it ends
     * (status 0: no answer). Returns 0 if queued; on -1 done never runs.
     * Before a stage's destroy() its outstanding probes are cancelled:
     * queued ones get done(arg, 0), a running one is aborted and waited
     * for. */
    int (*http_probe)(sluice_stage *stage, const char *path,
                      const char *authorization, sluice_probe_fn done,
                      void *arg);

    /* ---- shared state (ABI 1.1) ----------------------------------------
     * Counters and small records with a TTL, kept by the core's state
     * layer (the top-level `state:` block): in memory and a local file
     * (backend "local", survives a restart), or in Redis, shared by every
     * instance of a fleet (backend "redis"). Keys are the stage's own: the
     * core prefixes them with the stage's name, so two stages never clash
     * and a reloaded stage of the same name finds its state again. Keys:
     * 1..200 bytes, no NUL. Records: at most 64 KiB.
     *
     * Nothing here waits on a disk or a network: reads answer from this
     * instance's view (in memory), writes go to the backend in the
     * background. With the redis backend the view follows the fleet (a
     * change elsewhere arrives within milliseconds); while Redis is
     * unreachable the view is this instance's alone and catches up when it
     * is back. */

    /* Add delta to the counter `key` (created at 0; a counter created
     * with ttl_ms > 0 expires that long after its creation: a window).
     * Returns this instance's view of the value after the increment, at
     * once (fleet-wide: the last value the backend reported plus the
     * increments it has not confirmed yet). done (may be NULL) gets the
     * backend's value when it answers: on ctx's worker thread, while the
     * request is still alive; with ctx NULL on a core thread. done never
     * runs inside this call, and does not run for a stage destroyed
     * meanwhile. delta 0 reads the counter. */
    int64_t (*state_incr)(sluice_stage *stage, sluice_ctx *ctx, const char *key,
                          int64_t delta, uint64_t ttl_ms, sluice_state_fn done,
                          void *arg); /* ABI 1.1 */
    /* Set the record `key` to data[0..len) with a TTL (0: none), replacing
     * what was there (a counter too). Returns 0, or -1 on a bad key/size
     * or out of memory. */
    int (*state_put)(sluice_stage *stage, const char *key, const char *data,
                     size_t len, uint64_t ttl_ms); /* ABI 1.1 */
    /* Remove `key` (record or counter). Returns 1 if it existed, else 0. */
    int (*state_del)(sluice_stage *stage, const char *key); /* ABI 1.1 */
    /* Read `key` from this instance's view: returns 1 and appends a
     * record's bytes to out (may be NULL) and sets *count (may be NULL)
     * and *expires_ms (may be NULL, wall-clock, 0: no TTL); 0 when absent
     * or expired. */
    int (*state_get)(sluice_stage *stage, const char *key, sluice_buf *out,
                     int64_t *count, uint64_t *expires_ms); /* ABI 1.1 */
    /* Watch the records whose key starts with prefix ("" = all of this
     * stage's): fn first runs once per existing record, inside this call;
     * afterwards once per change made by someone else (another instance
     * of the fleet, or this stage's successor or predecessor across a
     * reload; not the changes this stage made itself), on a core thread.
     * Counter increments are not notified. Watches end before
     * the stage's destroy() (no fn runs during or after it). Call from
     * init. Returns 0 or -1. */
    int (*state_watch)(sluice_stage *stage, const char *prefix,
                       sluice_state_fn fn, void *arg); /* ABI 1.1 */
    /* Run fn once per live entry, counters and records, whose key starts
     * with prefix, in this instance's view, inside this call (e.g. for an
     * admin report). Returns how many. */
    int (*state_list)(sluice_stage *stage, const char *prefix,
                      sluice_state_fn fn, void *arg); /* ABI 1.1 */

    /* ---- the route (ABI 1.1) ------------------------------------------
     * Which OpenAI endpoint the request is for: "chat", "responses",
     * "completions", "embeddings", "moderations", "audio_speech",
     * "audio_transcriptions", "audio_translations", "images_generations",
     * "rerank" (see sdk/README.md). Hooks only run for the routes the
     * stage handles (sluice_plugin.routes). */
    const char *(*req_route)(sluice_ctx *ctx); /* ABI 1.1 */

    /* ---- admin actions with the request (ABI 1.1) ----------------------
     * Like admin_register, for a handler that needs the query string or
     * answers something other than JSON (e.g. text/csv). Call from init. */
    int (*admin_register_ctx)(sluice_stage *stage, const char *action,
                              const char *alias,
                              sluice_admin_ctx_fn fn); /* ABI 1.1 */
    /* The query argument `name` of the request URL, percent-decoded;
     * NULL when absent. Borrowed until the request ends. */
    const char *(*req_query)(sluice_ctx *ctx, const char *name); /* ABI 1.1 */
    /* ---- upstreams (ABI 1.1) --------------------------------------------
     * The upstreams of the stage's pipeline generation, in config order
     * (the legacy `upstream:` block is one upstream named "default").
     * upstream_at returns the validated entry as a JSON object with at
     * least "name" and "base_url", plus every other field the operator
     * wrote (e.g. "keys", a stage's per-upstream settings); borrowed,
     * valid until the stage's destroy(). NULL past the end. Which upstream
     * an attempt goes to is chosen through the attributes "upstream" and
     * "upstream_model" (see sdk/README.md). */
    size_t (*upstream_count)(sluice_stage *stage); /* ABI 1.1 */
    const sluice_json *(*upstream_at)(sluice_stage *stage,
                                      size_t i); /* ABI 1.1 */
    /* The validated `routes:` list of the generation (JSON array of
     * {model, aliases, deployments:[{upstream, model, weight}], fallbacks,
     * fallback_on, context_fallbacks, context_length}), or NULL when the
     * config has none. Borrowed, valid until destroy(). */
    const sluice_json *(*model_routes)(sluice_stage *stage); /* ABI 1.1 */

    /* ---- upstream fetch (ABI 1.1) ---------------------------------------
     * Like http_probe, but done() also gets the answer's body (at most
     * 4 MiB; NULL/0 when none came), borrowed for the call. For small
     * documents a stage reads at start (e.g. GET /models). */
    int (*http_fetch)(sluice_stage *stage, const char *path,
                      const char *authorization, sluice_fetch_fn done,
                      void *arg); /* ABI 1.1 */

    /* ---- probes per upstream (ABI 1.1) ----------------------------------
     * Like http_probe, but to the upstream named `upstream` of the stage's
     * generation: its base_url + path (+ its static query), its static
     * and added headers, and `authorization` ("Bearer <key>") sent the way
     * that upstream takes its key (an auth_header such as Azure's api-key
     * gets the bare key). -1 (done() never called) for an unknown
     * upstream or when the queue is full. */
    int (*upstream_probe)(sluice_stage *stage, const char *upstream,
                          const char *path, const char *authorization,
                          sluice_probe_fn done, void *arg); /* ABI 1.1 */

    /* ---- shared state's availability (ABI 1.1) --------------------------
     * SLUICE_STATE_DEGRADED while the shared backend (state.backend: redis)
     * cannot be reached: the view is this instance's alone, so counters
     * hold only what this instance counted since. SLUICE_STATE_CLOSED when
     * the operator set state.on_unavailable: closed: a stage enforcing
     * limits from the shared state then refuses (503) while degraded,
     * instead of judging on the local view. 0: the view is the backend's
     * (always so with the local backend). One atomic read; any thread. */
    int (*state_status)(sluice_stage *stage); /* ABI 1.1 */

    /* ---- request memory (ABI 1.1) ---------------------------------------
     * n zeroed bytes, aligned for any type, from the request's arena: valid
     * until the request ends (after every stage's on_complete), when the
     * host frees them all at once. Never free them yourself. For what lives
     * as long as the request (the struct behind local_set, strings kept
     * between hooks); not for a buffer per chunk of a long stream, which
     * would hold its memory until the end. NULL when n is 0 or memory is
     * out. From any hook that has the ctx. */
    void *(*req_alloc)(sluice_ctx *ctx, size_t n); /* ABI 1.1 */

    /* ---- asynchronous verdicts (ABI 1.1) ---------------------------------
     * The verdict of an on_request that returned SLUICE_PENDING: CONTINUE
     * (the next stage's on_request runs), RESPOND (after respond() or
     * respond_error()) or ERROR. Call it exactly once, on the request's
     * worker thread: from a completion the host delivers for this ctx
     * (state_incr's done with this ctx). The pipeline goes on after the
     * call returns, never inside it. A request whose client left, or whose
     * deadline passed (503 stage_timeout) while pending, is over: its
     * completions are no longer delivered, on_complete runs as always, and
     * the stage frees there what it kept. Returns 0, or -1 when the
     * request is not waiting for this stage. */
    int (*req_resume)(sluice_ctx *ctx, sluice_verdict verdict); /* ABI 1.1 */
} sluice_host;

#define SLUICE_HOST_HAS(host, member)                                          \
    ((host)->size >= offsetof(sluice_host, member) + sizeof((host)->member))

/* The plugin may ask the loader never to dlclose it (it registers callbacks
 * with other libraries, thread-local destructors, atexit handlers...). */
#define SLUICE_PLUGIN_NO_UNLOAD 0x1u

/*
 * The descriptor a plugin exports. The version fields come first: they
 * protect the rest. Hook pointers may be NULL (phase not used).
 */
typedef struct sluice_plugin {
    uint32_t abi_major; /* SLUICE_ABI_MAJOR the plugin was built with */
    uint32_t abi_minor; /* SLUICE_ABI_MINOR the plugin was built with */
    uint32_t size;      /* sizeof(struct sluice_plugin) as built */
    uint32_t flags;     /* SLUICE_PLUGIN_* */
    const char *name;   /* short name, [a-z0-9_-] */
    const char *version;
    const char *description;

    /* Validate `config` (a JSON object, possibly empty; borrowed) and build
     * the stage instance. On failure write a message to err and return
     * non-zero; nothing is kept. */
    int (*init)(const sluice_host *host, sluice_stage *self,
                const sluice_json *config, void **instance, char *err,
                size_t errlen);
    /* Free the instance. No hook of it runs after or during this call. */
    void (*destroy)(void *instance);

    /* Request phases, in order. See sdk/README.md for when each runs. */
    sluice_verdict (*on_request)(void *instance, sluice_ctx *ctx);
    sluice_verdict (*on_attempt)(void *instance, sluice_ctx *ctx);
    sluice_verdict (*on_response)(void *instance, sluice_ctx *ctx);
    sluice_verdict (*on_chunk)(void *instance, sluice_ctx *ctx,
                               const char *data, size_t len);
    void (*on_complete)(void *instance, sluice_ctx *ctx);

    /* Write a JSON object describing the stage's state (for /health).
     * "healthy": false in it makes /health say "degraded". */
    int (*status)(void *instance, sluice_buf *out);

    /* Hot reload: state handed from the running instance of a stage to its
     * successor of the same name. export_state writes a JSON document of
     * the stage's own design (include a version); import_state reads it
     * into a freshly initialised instance and may ignore what it does not
     * understand. Either may be NULL (state is then not carried). */
    int (*export_state)(void *instance, sluice_buf *out);
    int (*import_state)(void *instance, const char *state, size_t len);

    /* Called just before /metrics is rendered: set gauges that are cheaper
     * to compute on demand (e.g. cooldown seconds left). May be NULL. */
    void (*collect)(void *instance);

    /* The routes whose requests this stage's hooks see: a NULL-terminated
     * list of route names (sluice_host.req_route), or {"*", NULL} for
     * every route. NULL, or a descriptor older than ABI 1.1: "chat" only,
     * so a stage written for chat is never handed an audio upload. The
     * operator may override it per stage (`routes:` in the pipeline). */
    const char *const *routes; /* ABI 1.1 */

    /* Called once the request's headers are in, before its body is read
     * or parsed (req_body is NULL, req_model ""): the place to refuse a
     * request on its headers alone (a missing or wrong key), so that a
     * stranger's body costs no memory. RESPOND or ERROR: the body is
     * dropped unread (bounded) and the response sent; no other hook runs
     * but on_complete. May be NULL. */
    sluice_verdict (*on_headers)(void *instance, sluice_ctx *ctx); /* ABI 1.1 */
} sluice_plugin;

/* True when a descriptor (possibly built against an older header) has
 * `member`. The core checks this before reading members after on_complete. */
#define SLUICE_PLUGIN_HAS(desc, member)                                        \
    ((desc)->size >= offsetof(sluice_plugin, member) + sizeof((desc)->member))

/* The one exported symbol. */
#define SLUICE_PLUGIN_ENTRY_SYMBOL "sluice_plugin_entry"
typedef const sluice_plugin *(*sluice_plugin_entry_fn)(void);

/* Declare the entry point of a plugin:
 *   SLUICE_PLUGIN_DEFINE(my_descriptor)  */
#define SLUICE_PLUGIN_DEFINE(desc)                                             \
    SLUICE_EXPORT const sluice_plugin *sluice_plugin_entry(void);              \
    const sluice_plugin *sluice_plugin_entry(void)                             \
    {                                                                          \
        return &(desc);                                                        \
    }

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_H */
