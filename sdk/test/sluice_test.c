/*
 * sluice_test.c - the stage test host (see sdk/sluice_test.h). Built into
 * libsluice_test.so together with the core library, whose symbols it keeps
 * private: a stage is driven by the gateway's own host table, pipeline
 * runner and metrics, on request contexts built the way request_new() builds
 * them, minus the connection and the worker.
 */
#include "sluice_test.h"

#include "config.h"
#include "flow.h"
#include "metrics.h"
#include "pipeline.h"
#include "plugin.h"
#include "request.h"
#include "state.h"
#include "timer.h"
#include "yaml_load.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SLUICE_TEST_API __attribute__((visibility("default")))

struct sluice_test_stage {
    struct generation *gen;
    struct plugin_lib *lib; /* NULL for a linked descriptor */
};

struct sluice_test_req {
    struct sluice_test_stage *st;
    struct sluice_ctx *ctx;
};

/* ---- the clock ------------------------------------------------------- */

static atomic_int clock_fake;
static _Atomic uint64_t clock_now, clock_wall;

static uint64_t test_now_ms(void)
{
    return atomic_load(&clock_fake) ? atomic_load(&clock_now) : time_now_ms();
}

static uint64_t test_wall_ms(void)
{
    return atomic_load(&clock_fake) ? atomic_load(&clock_wall) : time_wall_ms();
}

SLUICE_TEST_API void sluice_test_clock_set(uint64_t now_ms, uint64_t wall_ms)
{
    atomic_store(&clock_now, now_ms);
    atomic_store(&clock_wall, wall_ms);
    atomic_store(&clock_fake, 1);
}

SLUICE_TEST_API void sluice_test_clock_advance(uint64_t ms)
{
    atomic_fetch_add(&clock_now, ms);
    atomic_fetch_add(&clock_wall, ms);
}

SLUICE_TEST_API void sluice_test_clock_real(void)
{
    atomic_store(&clock_fake, 0);
}

/* state_status as a test set it (-1: the state layer's own answer). */
static atomic_int state_status_forced = -1;

static int test_state_status(sluice_stage *stage)
{
    int f = atomic_load(&state_status_forced);
    return f >= 0 ? f : state_status(stage);
}

SLUICE_TEST_API void sluice_test_state_status(int flags)
{
    atomic_store(&state_status_forced, flags);
}

/* The gateway's host table with the test clock in it. */
static sluice_host test_host;
static pthread_once_t test_host_once = PTHREAD_ONCE_INIT;

/* req_resume without a worker: the verdict for sluice_test_on_request,
 * which waits for it (a completion runs on the state thread here). */
static pthread_mutex_t resume_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t resume_cond = PTHREAD_COND_INITIALIZER;

static int test_resume(struct sluice_ctx *ctx, sluice_verdict v)
{
    pthread_mutex_lock(&resume_lock);
    int rc = pipeline_resume_set(ctx, v);
    pthread_cond_broadcast(&resume_cond);
    pthread_mutex_unlock(&resume_lock);
    return rc;
}

/* Wait (at most 10 s) for the verdict of a PENDING on_request. */
static int resume_wait(struct sluice_ctx *ctx)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&resume_lock);
    int rc = 0;
    while (!ctx->resume_posted && rc == 0)
        rc = pthread_cond_timedwait(&resume_cond, &resume_lock, &until);
    int got = ctx->resume_posted;
    pthread_mutex_unlock(&resume_lock);
    return got ? 0 : -1;
}

static void test_host_init(void)
{
    pipeline_pending_hook = test_resume;
    test_host = host_table;
    test_host.now_ms = test_now_ms;
    test_host.wall_ms = test_wall_ms;
    test_host.state_status = test_state_status;
}

SLUICE_TEST_API int sluice_test_state_open(const char *path)
{
    struct state_conf sc = {.backend = "local", .path = (char *)path};
    char err[512];
    if (state_open(path ? &sc : NULL, "stage-test", err, sizeof err) != 0) {
        fprintf(stderr, "sluice_test_state_open: %s\n", err);
        return -1;
    }
    return 0;
}

/* ---- stages ---------------------------------------------------------- */

/* The config text (YAML, so JSON too) as the loader would hand it. */
static json_t *config_parse(const char *text, char *err, size_t errlen)
{
    struct yaml_doc *doc = NULL;
    if (!text || !*text)
        return json_object();
    if (yaml_load(text, strlen(text), "config", config_expand_env, &doc, err,
                  errlen) != 0)
        return NULL;
    json_t *root = json_incref(doc->root);
    yaml_doc_free(doc);
    if (json_is_null(root)) {
        json_decref(root);
        return json_object();
    }
    if (!json_is_object(root)) {
        json_decref(root);
        snprintf(err, errlen, "config: not a mapping");
        return NULL;
    }
    return root;
}

static sluice_test_stage *stage_new(const sluice_plugin *desc,
                                    struct plugin_lib *lib, const char *config,
                                    char *err, size_t errlen)
{
    pthread_once(&test_host_once, test_host_init);
    sluice_test_stage *st = calloc(1, sizeof(*st));
    json_t *cfg = config_parse(config, err, errlen);
    if (!st || !cfg)
        goto fail;
    if (!state_is_open() && state_open(NULL, "stage-test", err, errlen) != 0)
        goto fail;
    const sluice_plugin *descs[1] = {desc};
    const sluice_json *cfgs[1] = {(const sluice_json *)cfg};
    st->gen =
        generation_from_descs_host(descs, cfgs, 1, &test_host, err, errlen);
    if (!st->gen)
        goto fail;
    json_decref(cfg);
    st->lib = lib;
    return st;
fail:
    json_decref(cfg);
    free(st);
    plugin_unload(lib);
    return NULL;
}

SLUICE_TEST_API sluice_test_stage *
sluice_test_stage_link(const sluice_plugin *desc, const char *config, char *err,
                       size_t errlen)
{
    if (!desc) {
        snprintf(err, errlen, "no descriptor");
        return NULL;
    }
    return stage_new(desc, NULL, config, err, errlen);
}

SLUICE_TEST_API sluice_test_stage *sluice_test_stage_load(const char *so_path,
                                                          const char *config,
                                                          char *err,
                                                          size_t errlen)
{
    struct plugin_lib *lib = plugin_load(so_path, err, errlen);
    if (!lib)
        return NULL;
    return stage_new(lib->desc, lib, config, err, errlen);
}

SLUICE_TEST_API void sluice_test_stage_free(sluice_test_stage *st)
{
    if (!st)
        return;
    generation_unpin(st->gen); /* destroy() runs here */
    plugin_unload(st->lib);
    free(st);
}

SLUICE_TEST_API void *sluice_test_stage_instance(sluice_test_stage *st)
{
    return st->gen->stages[0].instance;
}

SLUICE_TEST_API const sluice_host *sluice_test_host(sluice_test_stage *st)
{
    (void)st;
    pthread_once(&test_host_once, test_host_init);
    return &test_host;
}

SLUICE_TEST_API char *sluice_test_metrics_text(sluice_test_stage *st)
{
    for (size_t i = 0; st && i < st->gen->nstages; i++) {
        const sluice_plugin *d = st->gen->stages[i].desc;
        if (SLUICE_PLUGIN_HAS(d, collect) && d->collect)
            d->collect(st->gen->stages[i].instance);
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

SLUICE_TEST_API double sluice_test_metric(sluice_test_stage *st,
                                          const char *sample)
{
    char *text = sluice_test_metrics_text(st);
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

/* What a handler wrote to a host buffer, handed to the caller. */
static char *buf_take(buf_t *b)
{
    char *s = strdup(b->data ? b->data : "");
    buf_release(b);
    return s;
}

SLUICE_TEST_API int sluice_test_admin(sluice_test_stage *st, const char *action,
                                      const char *method, const char *body,
                                      char **out)
{
    struct sluice_stage *s = &st->gen->stages[0];
    for (size_t i = 0; i < s->nactions; i++) {
        if (strcmp(s->actions[i].action, action))
            continue;
        buf_t b;
        buf_init(&b);
        int status =
            s->actions[i].fn(s->instance, method, body, body ? strlen(body) : 0,
                             (sluice_buf *)&b);
        char *text = buf_take(&b);
        if (out)
            *out = text;
        else
            free(text);
        return status;
    }
    return -1;
}

SLUICE_TEST_API int sluice_test_route(sluice_test_stage *st, const char *method,
                                      const char *path, char **out)
{
    struct sluice_stage *s = NULL;
    int method_ok = 0;
    struct stage_route *r =
        generation_route(st->gen, method, path, &s, &method_ok);
    if (!r)
        return -1;
    if (!method_ok)
        return -2;
    buf_t b;
    buf_init(&b);
    int status = r->fn(s->instance, method, path, (sluice_buf *)&b);
    char *text = buf_take(&b);
    if (out)
        *out = text;
    else
        free(text);
    return status;
}

/* Run hook(instance, buffer) and hand the text over. */
static int buf_hook(sluice_test_stage *st,
                    int (*hook)(void *instance, sluice_buf *out), char **out)
{
    buf_t b;
    buf_init(&b);
    int rc = hook ? hook(st->gen->stages[0].instance, (sluice_buf *)&b) : -1;
    char *text = buf_take(&b);
    if (rc == 0 && out)
        *out = text;
    else
        free(text);
    return rc == 0 ? 0 : -1;
}

SLUICE_TEST_API int sluice_test_stage_status(sluice_test_stage *st, char **out)
{
    return buf_hook(st, st->gen->stages[0].desc->status, out);
}

SLUICE_TEST_API int sluice_test_export_state(sluice_test_stage *st, char **out)
{
    return buf_hook(st, st->gen->stages[0].desc->export_state, out);
}

SLUICE_TEST_API int sluice_test_import_state(sluice_test_stage *st,
                                             const char *state, size_t len)
{
    const sluice_plugin *d = st->gen->stages[0].desc;
    if (!d->import_state)
        return -1;
    return d->import_state(st->gen->stages[0].instance, state, len) == 0 ? 0
                                                                         : -1;
}

/* ---- requests -------------------------------------------------------- */

SLUICE_TEST_API sluice_test_req *sluice_test_req_new(sluice_test_stage *st,
                                                     const char *body_json)
{
    json_t *body =
        body_json ? json_loads(body_json, JSON_DECODE_ANY, NULL) : NULL;
    sluice_test_req *r = calloc(1, sizeof(*r));
    struct generation *g = st->gen;
    struct sluice_ctx *ctx = request_alloc(g->nstages);
    if (!r || !ctx)
        goto fail;
    ctx->gen = g;
    atomic_fetch_add(&g->refs, 1);
    ctx->url = arena_strdup(&ctx->pool, "/v1/chat/completions");
    if (!ctx->url) {
        request_free(ctx);
        ctx = NULL;
        goto fail;
    }
    ctx->cur_stage = ctx->chunk_stage = -1;
    ctx->refs = 1;
    ctx->route = ROUTE_API;
    ctx->t_start = time_now_ms();
    ctx->deadline = ctx->t_start + 120000;
    ctx->sbuf_max = 64 * 1024;
    snprintf(ctx->method, sizeof ctx->method, "POST");
    snprintf(ctx->id, sizeof ctx->id, "req-test");
    snprintf(ctx->peer, sizeof ctx->peer, "127.0.0.1");
    timer_init(&ctx->timer, NULL, ctx);
    timer_init(&ctx->dl_timer, NULL, ctx);
    if (body_json) {
        buf_append(&ctx->body_in, body_json, strlen(body_json));
        ctx->body = body;
        ctx->stream = json_is_true(json_object_get(body, "stream"));
    }
    r->st = st;
    r->ctx = ctx;
    return r;
fail:
    json_decref(body);
    if (ctx) {
        arena_free(&ctx->pool);
        free(ctx);
    }
    free(r);
    return NULL;
}

SLUICE_TEST_API int sluice_test_req_header(sluice_test_req *r, const char *name,
                                           const char *value)
{
    return hdrs_add(&r->ctx->req_hdrs, name, value);
}

SLUICE_TEST_API void sluice_test_req_peer(sluice_test_req *r, const char *addr)
{
    snprintf(r->ctx->peer, sizeof r->ctx->peer, "%s", addr ? addr : "");
}

SLUICE_TEST_API int sluice_test_req_route(sluice_test_req *r, const char *route)
{
    const struct api_route *a = api_by_name(route);
    char *url = a ? arena_strdup(&r->ctx->pool, a->path) : NULL;
    if (!url)
        return -1;
    r->ctx->url = url;
    r->ctx->api = a;
    return 0;
}

SLUICE_TEST_API sluice_ctx *sluice_test_req_ctx(sluice_test_req *r)
{
    return r->ctx;
}

SLUICE_TEST_API void sluice_test_req_free(sluice_test_req *r)
{
    if (!r)
        return;
    request_free(r->ctx);
    free(r);
}

/* ---- phases ---------------------------------------------------------- */

SLUICE_TEST_API sluice_verdict sluice_test_on_request(sluice_test_req *r)
{
    sluice_verdict v = pipeline_on_request(r->ctx);
    while (v == SLUICE_PENDING) {
        if (resume_wait(r->ctx) != 0) {
            fprintf(stderr, "sluice_test_on_request: a PENDING on_request "
                            "was not resumed within 10 s\n");
            return SLUICE_ERROR;
        }
        v = pipeline_on_request_resume(r->ctx);
    }
    return v;
}

SLUICE_TEST_API sluice_verdict sluice_test_on_attempt(sluice_test_req *r)
{
    struct sluice_ctx *ctx = r->ctx;
    ctx->attempt++;
    hdrs_clear(&ctx->up_headers);
    ctx->out_status = 0;
    ctx->retry_ms = 0;
    ctx->attempt_t0 = time_now_ms();
    ctx->result = SLUICE_ATTEMPT_NONE;
    ctx->status = 0;
    return pipeline_on_attempt(ctx);
}

SLUICE_TEST_API sluice_verdict sluice_test_on_attempt_again(sluice_test_req *r)
{
    r->ctx->out_status = 0;
    r->ctx->retry_ms = 0;
    return pipeline_on_attempt(r->ctx);
}

SLUICE_TEST_API void
sluice_test_upstream(sluice_test_req *r, sluice_attempt_result result,
                     int status, const char *const *headers, const char *body)
{
    struct sluice_ctx *ctx = r->ctx;
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

SLUICE_TEST_API sluice_verdict sluice_test_on_response(sluice_test_req *r)
{
    return pipeline_on_response(r->ctx);
}

SLUICE_TEST_API sluice_verdict sluice_test_on_chunk(sluice_test_req *r,
                                                    const char *data,
                                                    size_t len)
{
    r->ctx->phase = PHASE_STREAMING;
    return pipeline_on_chunk(r->ctx, data, len);
}

SLUICE_TEST_API void sluice_test_on_complete(sluice_test_req *r)
{
    pipeline_on_complete(r->ctx);
}

/* ---- read back ------------------------------------------------------- */

SLUICE_TEST_API int sluice_test_status(sluice_test_req *r)
{
    return r->ctx->out_status;
}

SLUICE_TEST_API const char *sluice_test_body(sluice_test_req *r)
{
    return r->ctx->out_body.data ? r->ctx->out_body.data : "";
}

SLUICE_TEST_API const char *sluice_test_header(sluice_test_req *r,
                                               const char *name)
{
    return hdrs_get(&r->ctx->out_headers, name);
}

SLUICE_TEST_API const char *sluice_test_header_at(sluice_test_req *r, size_t i,
                                                  const char **value)
{
    const struct hdrs *h = &r->ctx->out_headers;
    if (i >= h->n)
        return NULL;
    if (value)
        *value = h->v[i].value;
    return h->v[i].name;
}

SLUICE_TEST_API const char *sluice_test_attr(sluice_test_req *r,
                                             const char *name)
{
    return hdrs_get(&r->ctx->attrs, name);
}

SLUICE_TEST_API const char *sluice_test_up_header(sluice_test_req *r,
                                                  const char *name)
{
    return hdrs_get(&r->ctx->up_headers, name);
}

SLUICE_TEST_API uint32_t sluice_test_retry_ms(sluice_test_req *r)
{
    return r->ctx->retry_ms;
}

SLUICE_TEST_API const char *sluice_test_chunks(sluice_test_req *r, size_t *len)
{
    struct sluice_ctx *ctx = r->ctx;
    *len = ctx->sbuf.len - ctx->soff;
    return ctx->sbuf.data ? ctx->sbuf.data + ctx->soff : "";
}

SLUICE_TEST_API int sluice_test_body_changed(sluice_test_req *r)
{
    return r->ctx->body_dirty;
}

SLUICE_TEST_API char *sluice_test_body_json(sluice_test_req *r)
{
    return r->ctx->body ? json_dumps(r->ctx->body, JSON_COMPACT) : NULL;
}

SLUICE_TEST_API void sluice_test_stream_settings(sluice_test_req *r,
                                                 uint32_t *heartbeat_ms,
                                                 uint32_t *idle_ms,
                                                 size_t *buffer_max)
{
    if (heartbeat_ms)
        *heartbeat_ms = r->ctx->heartbeat_ms;
    if (idle_ms)
        *idle_ms = r->ctx->idle_ms;
    if (buffer_max)
        *buffer_max = r->ctx->sbuf_max;
}
