/*
 * pipeline.c - generations of stages and the phase runner.
 *
 * Building: load each stage's library (plugin.c), then run each init with its
 * config. Any failure unwinds what was built (destroy in reverse, unload) and
 * reports file, line, stage and reason; the published generation is untouched.
 *
 * Publishing: one mutex guards the pointer to the current generation and its
 * refcount increment, held for a few instructions, never across I/O.
 */
#include "pipeline.h"
#include "flow.h"
#include "upstream_set.h"
#include "log.h"
#include "probe.h"
#include "state.h"
#include "request.h"
#include "timer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t gen_lock = PTHREAD_MUTEX_INITIALIZER;
static struct generation *gen_current;
static atomic_ullong gen_counter;
struct pipeline_stats pipeline_stats;

/* every generation not yet destroyed, for /admin/pipeline */
static pthread_mutex_t all_lock = PTHREAD_MUTEX_INITIALIZER;
static struct generation *gen_all;

/* the reaper: destroys generations whose last request ended */
static pthread_mutex_t reap_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reap_cond = PTHREAD_COND_INITIALIZER;
static struct generation *reap_list;
static int reap_running, reap_stop;
static pthread_t reap_thread;

static void stage_fini(struct sluice_stage *s)
{
    /* no probe callback may run into the instance once it is gone */
    probe_cancel_stage(s);
    state_forget_stage(s); /* nor a state notification or completion */
    if (s->initialised && s->desc->destroy)
        s->desc->destroy(s->instance);
    s->initialised = 0;
    for (size_t i = 0; i < s->nactions; i++) {
        free(s->actions[i].action);
        free(s->actions[i].alias);
    }
    free(s->actions);
    for (size_t i = 0; i < s->nroutes; i++)
        free(s->routes[i].path);
    free(s->routes);
    plugin_unload(s->lib);
    free(s->name);
    free(s->plugin);
}

static void registry_remove(struct generation *g)
{
    pthread_mutex_lock(&all_lock);
    for (struct generation **p = &gen_all; *p; p = &(*p)->all_next) {
        if (*p == g) {
            *p = g->all_next;
            break;
        }
    }
    pthread_mutex_unlock(&all_lock);
}

static void generation_destroy(struct generation *g)
{
    if (!g)
        return;
    registry_remove(g);
    /* reverse order: later stages may use what earlier ones set up */
    for (size_t i = g->nstages; i-- > 0;)
        stage_fini(&g->stages[i]);
    free(g->stages);
    free(g->file);
    upstream_set_free(g->ups);
    free(g);
}

static struct generation *generation_alloc(size_t n)
{
    struct generation *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->stages = calloc(n ? n : 1, sizeof(*g->stages));
    if (!g->stages) {
        free(g);
        return NULL;
    }
    g->nstages = n;
    atomic_init(&g->refs, 1);
    g->loaded_ms = time_wall_ms();
    pthread_mutex_lock(&all_lock);
    g->all_next = gen_all;
    gen_all = g;
    pthread_mutex_unlock(&all_lock);
    return g;
}

static int mask_add(uint32_t *mask, const char *name, char *err, size_t errlen)
{
    if (!strcmp(name, "*")) {
        *mask = api_all_mask();
        return 0;
    }
    const struct api_route *r = api_by_name(name);
    if (!r) {
        snprintf(err, errlen, "unknown route '%.60s' (known: *, %s)", name,
                 api_names());
        return -1;
    }
    *mask |= r->bit;
    return 0;
}

int pipeline_route_mask(const sluice_plugin *desc, const json_t *names,
                        uint32_t *mask, char *err, size_t errlen)
{
    *mask = 0;
    if (names) {
        size_t i;
        json_t *v;
        json_array_foreach(names, i, v)
        {
            if (!json_is_string(v) ||
                mask_add(mask, json_string_value(v), err, errlen) != 0)
                return -1;
        }
        return 0;
    }
    if (SLUICE_PLUGIN_HAS(desc, routes) && desc->routes) {
        for (const char *const *p = desc->routes; *p; p++)
            if (mask_add(mask, *p, err, errlen) != 0)
                return -1;
        return 0;
    }
    *mask = api_chat()->bit;
    return 0;
}

static int stage_init(struct sluice_stage *s, const sluice_json *config,
                      char *err, size_t errlen)
{
    char why[512] = "";
    const sluice_host *host =
        s->gen && s->gen->host ? s->gen->host : &host_table;
    if (s->desc->init(host, s, config, &s->instance, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s", why[0] ? why : "init failed");
        return -1;
    }
    s->initialised = 1;
    return 0;
}

struct generation *generation_build(const struct config *cfg, char *err,
                                    size_t errlen)
{
    struct generation *g = generation_alloc(cfg->nstages);
    char why[768];
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    g->file = strdup(cfg->file ? cfg->file : "");
    g->ups = upstream_set_new(cfg, why, sizeof why);
    if (!g->ups) {
        snprintf(err, errlen, "%s: upstreams: %s", g->file, why);
        generation_destroy(g);
        return NULL;
    }
    for (size_t i = 0; i < cfg->nstages; i++) {
        const struct stage_conf *sc = &cfg->stages[i];
        struct sluice_stage *s = &g->stages[i];
        s->gen = g;
        s->index = (int)i;
        s->line = sc->line;
        s->name = strdup(sc->name);
        s->plugin = strdup(sc->plugin);
        s->lib = plugin_load(sc->path, why, sizeof why);
        if (!s->lib)
            goto fail;
        s->desc = s->lib->desc;
        if (s->desc->name && strcmp(s->desc->name, sc->plugin) != 0)
            log_warn("%s:%d: stage '%s': plugin '%s' loaded %s, whose "
                     "descriptor says '%s'; the pipeline's names (plugin: "
                     "and name:) are what identify the stage (state over a "
                     "reload, metrics, admin paths)",
                     g->file, sc->line, sc->name, sc->plugin, sc->path,
                     s->desc->name);
        if (pipeline_route_mask(s->desc, sc->routes, &s->api_mask, why,
                                sizeof why) != 0)
            goto fail;
        if (stage_init(s, (const sluice_json *)sc->config, why, sizeof why) !=
            0)
            goto fail;
        continue;
    fail:
        snprintf(err, errlen, "%s:%d: stage '%s': %s", g->file, sc->line,
                 sc->name, why);
        generation_destroy(g);
        return NULL;
    }
    g->id = ++gen_counter;
    return g;
}

struct generation *generation_from_descs(const sluice_plugin *const *descs,
                                         const sluice_json *const *configs,
                                         size_t n, char *err, size_t errlen)
{
    return generation_from_descs_host(descs, configs, n, NULL, err, errlen);
}

struct generation *generation_from_descs_host(const sluice_plugin *const *descs,
                                              const sluice_json *const *configs,
                                              size_t n, const sluice_host *host,
                                              char *err, size_t errlen)
{
    struct generation *g = generation_alloc(n);
    if (!g)
        return NULL;
    g->host = host;
    g->file = strdup("<memory>");
    for (size_t i = 0; i < n; i++) {
        struct sluice_stage *s = &g->stages[i];
        s->gen = g;
        s->index = (int)i;
        s->desc = descs[i];
        s->name = strdup(descs[i]->name);
        s->plugin = strdup(descs[i]->name);
        if (pipeline_route_mask(s->desc, NULL, &s->api_mask, err, errlen) !=
                0 ||
            stage_init(s, configs ? configs[i] : NULL, err, errlen) != 0) {
            generation_destroy(g);
            return NULL;
        }
    }
    g->id = ++gen_counter;
    return g;
}

void generation_publish(struct generation *g)
{
    pthread_mutex_lock(&gen_lock);
    struct generation *old = gen_current;
    gen_current = g;
    pthread_mutex_unlock(&gen_lock);
    if (old)
        generation_unpin(old);
}

struct generation *generation_pin(void)
{
    pthread_mutex_lock(&gen_lock);
    struct generation *g = gen_current;
    if (g)
        atomic_fetch_add(&g->refs, 1);
    pthread_mutex_unlock(&gen_lock);
    return g;
}

void generation_unpin(struct generation *g)
{
    if (!g || atomic_fetch_sub(&g->refs, 1) != 1)
        return;
    pthread_mutex_lock(&reap_lock);
    if (reap_running) {
        g->reap_next = reap_list;
        reap_list = g;
        pthread_cond_signal(&reap_cond);
        pthread_mutex_unlock(&reap_lock);
        return;
    }
    pthread_mutex_unlock(&reap_lock);
    generation_destroy(g);
}

static void *reaper_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&reap_lock);
    for (;;) {
        while (!reap_list && !reap_stop)
            pthread_cond_wait(&reap_cond, &reap_lock);
        if (!reap_list && reap_stop)
            break;
        struct generation *g = reap_list;
        reap_list = g->reap_next;
        pthread_mutex_unlock(&reap_lock);
        log_msg(LOG_INFO, "core",
                "generation %llu retired: stages "
                "destroyed, libraries closed",
                (unsigned long long)g->id);
        generation_destroy(g);
        pthread_mutex_lock(&reap_lock);
    }
    pthread_mutex_unlock(&reap_lock);
    return NULL;
}

int generation_reaper_start(void)
{
    pthread_mutex_lock(&reap_lock);
    reap_stop = 0;
    int rc = pthread_create(&reap_thread, NULL, reaper_main, NULL);
    reap_running = rc == 0;
    pthread_mutex_unlock(&reap_lock);
    return rc == 0 ? 0 : -1;
}

void generation_reaper_stop(void)
{
    pthread_mutex_lock(&reap_lock);
    int running = reap_running;
    reap_stop = 1;
    pthread_cond_signal(&reap_cond);
    pthread_mutex_unlock(&reap_lock);
    if (running)
        pthread_join(reap_thread, NULL);
    pthread_mutex_lock(&reap_lock);
    reap_running = 0;
    pthread_mutex_unlock(&reap_lock);
}

void generation_report_live(buf_t *out)
{
    pthread_mutex_lock(&gen_lock);
    struct generation *cur = gen_current;
    pthread_mutex_lock(&all_lock);
    buf_puts(out, "[");
    int first = 1;
    for (struct generation *g = gen_all; g; g = g->all_next) {
        long refs = atomic_load(&g->refs) - (g == cur ? 1 : 0);
        buf_printf(out, "%s{\"id\":%llu,\"requests\":%ld,\"current\":%s}",
                   first ? "" : ",", (unsigned long long)g->id,
                   refs < 0 ? 0 : refs, g == cur ? "true" : "false");
        first = 0;
    }
    buf_puts(out, "]");
    pthread_mutex_unlock(&all_lock);
    pthread_mutex_unlock(&gen_lock);
}

int generation_migrate(struct generation *from, struct generation *to)
{
    int carried = 0;
    for (size_t i = 0; from && to && i < to->nstages; i++) {
        struct sluice_stage *t = &to->stages[i];
        struct sluice_stage *f = generation_find(from, t->name);
        if (!f || strcmp(f->plugin, t->plugin) ||
            !SLUICE_PLUGIN_HAS(f->desc, export_state) ||
            !SLUICE_PLUGIN_HAS(t->desc, import_state) ||
            !f->desc->export_state || !t->desc->import_state)
            continue;
        buf_t st;
        buf_init(&st);
        if (f->desc->export_state(f->instance, &st) != 0 || st.oom) {
            log_msg(LOG_WARN, t->name,
                    "export_state failed: state not "
                    "carried over");
        } else if (t->desc->import_state(t->instance, st.data ? st.data : "",
                                         st.len) != 0) {
            log_msg(LOG_WARN, t->name,
                    "import_state refused the state of "
                    "the previous generation");
        } else {
            carried++;
        }
        buf_release(&st);
    }
    return carried;
}

struct generation *generation_current(void)
{
    pthread_mutex_lock(&gen_lock);
    struct generation *g = gen_current;
    pthread_mutex_unlock(&gen_lock);
    return g;
}

void generation_retire_current(void)
{
    generation_publish(NULL);
}

struct sluice_stage *generation_find(struct generation *g, const char *name)
{
    for (size_t i = 0; g && i < g->nstages; i++)
        if (!strcmp(g->stages[i].name, name))
            return &g->stages[i];
    return NULL;
}

static int route_matches(const struct stage_route *r, const char *path)
{
    size_t n = strlen(r->path);
    if (!r->prefix)
        return !strcmp(path, r->path);
    return !strncmp(path, r->path, n) && path[n] == '/' && path[n + 1];
}

struct stage_route *generation_route(struct generation *g, const char *method,
                                     const char *path,
                                     struct sluice_stage **stage,
                                     int *method_ok)
{
    struct stage_route *found = NULL;
    *method_ok = 0;
    for (size_t i = 0; g && i < g->nstages; i++) {
        struct sluice_stage *s = &g->stages[i];
        for (size_t j = 0; j < s->nroutes; j++) {
            struct stage_route *r = &s->routes[j];
            if (!route_matches(r, path))
                continue;
            if (!strcmp(r->method, method) ||
                (!strcmp(method, "HEAD") && !strcmp(r->method, "GET"))) {
                *stage = s;
                *method_ok = 1;
                return r;
            }
            found = r;
            *stage = s;
        }
    }
    return found;
}

/* ---- runner ------------------------------------------------------------ */

typedef sluice_verdict (*hook_fn)(void *, sluice_ctx *);

/* What stage s's verdict v means for the phase: CONTINUE (go on), RETRY
 * (noted in *result), or the phase's end (RESPOND, ERROR, PENDING). */
static sluice_verdict fold_verdict(struct sluice_ctx *ctx,
                                   struct sluice_stage *s, size_t i,
                                   sluice_verdict v, size_t hook_off,
                                   int retry_ok, const char *phase,
                                   sluice_verdict *result)
{
    switch (v) {
    case SLUICE_CONTINUE:
        return SLUICE_CONTINUE;
    case SLUICE_PENDING:
        /* a request without a worker: only in the stage test host */
        if (hook_off == offsetof(sluice_plugin, on_request) &&
            (ctx->w || pipeline_pending_hook)) {
            ctx->pending_stage = (int)i;
            return SLUICE_PENDING;
        }
        log_msg(LOG_ERROR, s->name, "PENDING is not valid in %s", phase);
        goto error;
    case SLUICE_RETRY:
        if (retry_ok) {
            *result = SLUICE_RETRY;
            return SLUICE_CONTINUE;
        }
        log_msg(LOG_ERROR, s->name, "RETRY is not valid in %s", phase);
        goto error;
    case SLUICE_RESPOND:
        if (hook_off != offsetof(sluice_plugin, on_response))
            ctx->responder = s->name; /* refused before the upstream */
        if (!ctx->out_status) {
            log_msg(LOG_ERROR, s->name, "RESPOND without a response in %s",
                    phase);
            request_set_error(ctx, 500, "server_error", "stage_error", NULL,
                              "a gateway stage gave no response");
        }
        return SLUICE_RESPOND;
    case SLUICE_ERROR:
    default:
        break;
    }
error:
    if (!ctx->out_status)
        request_set_error(ctx, 500, "server_error", "stage_error", NULL,
                          "internal error in a gateway stage");
    return SLUICE_ERROR;
}

static sluice_verdict run_phase(struct sluice_ctx *ctx, size_t hook_off,
                                int retry_ok, const char *phase, size_t from)
{
    struct generation *g = ctx->gen;
    sluice_verdict result = SLUICE_CONTINUE;
    uint32_t bit = request_api(ctx)->bit;
    for (size_t i = from; g && i < g->nstages; i++) {
        struct sluice_stage *s = &g->stages[i];
        if (s->desc->size < hook_off + sizeof(hook_fn))
            continue; /* an older descriptor: no such hook */
        hook_fn fn = *(const hook_fn *)((const char *)s->desc + hook_off);
        if (!fn || !(s->api_mask & bit))
            continue;
        ctx->cur_stage = (int)i;
        sluice_verdict v = fn(s->instance, ctx);
        ctx->cur_stage = -1;
        v = fold_verdict(ctx, s, i, v, hook_off, retry_ok, phase, &result);
        if (v != SLUICE_CONTINUE)
            return v;
    }
    return result;
}

sluice_verdict pipeline_on_headers(struct sluice_ctx *ctx)
{
    return run_phase(ctx, offsetof(sluice_plugin, on_headers), 0, "on_headers",
                     0);
}

sluice_verdict pipeline_on_request(struct sluice_ctx *ctx)
{
    return run_phase(ctx, offsetof(sluice_plugin, on_request), 0, "on_request",
                     0);
}

int (*pipeline_pending_hook)(struct sluice_ctx *ctx, sluice_verdict v);

int pipeline_resume_set(struct sluice_ctx *ctx, sluice_verdict v)
{
    /* pending_stage may still be -1 here: without a worker (the stage
     * test host) a completion can run before on_request has returned */
    if (!ctx || ctx->resume_posted || ctx->completed)
        return -1;
    ctx->resume_posted = 1;
    ctx->resume_v = v;
    return 0;
}

sluice_verdict pipeline_on_request_resume(struct sluice_ctx *ctx)
{
    struct generation *g = ctx->gen;
    size_t i = (size_t)ctx->pending_stage;
    size_t off = offsetof(sluice_plugin, on_request);
    sluice_verdict result = SLUICE_CONTINUE;
    ctx->pending_stage = -1;
    ctx->resume_posted = 0; /* a later stage may say PENDING too */
    if (!g || i >= g->nstages)
        return SLUICE_ERROR;
    sluice_verdict v =
        ctx->resume_v == SLUICE_PENDING ? SLUICE_ERROR : ctx->resume_v;
    v = fold_verdict(ctx, &g->stages[i], i, v, off, 0, "req_resume", &result);
    if (v != SLUICE_CONTINUE)
        return v;
    return run_phase(ctx, off, 0, "on_request", i + 1);
}

sluice_verdict pipeline_on_attempt(struct sluice_ctx *ctx)
{
    return run_phase(ctx, offsetof(sluice_plugin, on_attempt), 1, "on_attempt",
                     0);
}

sluice_verdict pipeline_on_response(struct sluice_ctx *ctx)
{
    return run_phase(ctx, offsetof(sluice_plugin, on_response), 1,
                     "on_response", 0);
}

/* Call stage `from` or the next one with an on_chunk hook; past the last,
 * the bytes go to the client. */
static sluice_verdict chunk_from(struct sluice_ctx *ctx, size_t from,
                                 const char *data, size_t len)
{
    struct generation *g = ctx->gen;
    for (size_t i = from; g && i < g->nstages; i++) {
        struct sluice_stage *s = &g->stages[i];
        if (!s->desc->on_chunk || !(s->api_mask & request_api(ctx)->bit))
            continue;
        int saved_stage = ctx->cur_stage, saved_chunk = ctx->chunk_stage;
        ctx->cur_stage = (int)i;
        ctx->chunk_stage = (int)i;
        sluice_verdict v = s->desc->on_chunk(s->instance, ctx, data, len);
        ctx->cur_stage = saved_stage;
        ctx->chunk_stage = saved_chunk;
        return v == SLUICE_ERROR ? SLUICE_ERROR : SLUICE_CONTINUE;
    }
    return flow_stream_write(ctx, data, len) == 0 ? SLUICE_CONTINUE
                                                  : SLUICE_ERROR;
}

sluice_verdict pipeline_on_chunk(struct sluice_ctx *ctx, const char *data,
                                 size_t len)
{
    return chunk_from(ctx, 0, data, len);
}

int pipeline_chunk_forward(struct sluice_ctx *ctx, const char *data, size_t len)
{
    size_t next = ctx->chunk_stage < 0 ? 0 : (size_t)ctx->chunk_stage + 1;
    return chunk_from(ctx, next, data, len) == SLUICE_CONTINUE ? 0 : -1;
}

void pipeline_on_complete(struct sluice_ctx *ctx)
{
    struct generation *g = ctx->gen;
    if (ctx->completed)
        return;
    ctx->completed = 1;
    for (size_t i = 0; g && i < g->nstages; i++) {
        struct sluice_stage *s = &g->stages[i];
        if (!s->desc->on_complete || !(s->api_mask & request_api(ctx)->bit))
            continue;
        ctx->cur_stage = (int)i;
        s->desc->on_complete(s->instance, ctx);
        ctx->cur_stage = -1;
    }
}
