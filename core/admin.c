/*
 * admin.c - the admin API gate and dispatch. Every admin request needs
 * "Authorization: Bearer <token>" matching admin.token_file (compared in
 * constant time); without a configured token the admin API does not exist
 * (404). Stage actions are reached at /admin/plugins/<stage>/<action> or at
 * the alias the stage registered (/admin/<alias>). The dashboard's static
 * files (/admin/ui, admin_ui.c) are the one exception to the token.
 */
#include "admin.h"
#include "admin_ui.h"
#include "history.h"
#include "flow.h"
#include "log.h"
#include "pipeline.h"
#include "reload.h"
#include "request.h"
#include "server.h"
#include "worker.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int token_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++)
        diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return diff == 0;
}

static int admin_authorised(struct sluice_ctx *ctx)
{
    const char *h = MHD_lookup_connection_value(ctx->conn, MHD_HEADER_KIND,
                                                "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7))
        return 0;
    return token_equal(h + 7, server_main->admin_token);
}

static struct admin_action *find_action(struct generation *g, const char *path,
                                        struct sluice_stage **stage)
{
    for (size_t i = 0; g && i < g->nstages; i++) {
        struct sluice_stage *s = &g->stages[i];
        for (size_t j = 0; j < s->nactions; j++) {
            struct admin_action *a = &s->actions[j];
            char full[512];
            snprintf(full, sizeof full, "plugins/%s/%s", s->name, a->action);
            if (!strcmp(path, full) || (a->alias && !strcmp(path, a->alias))) {
                *stage = s;
                return a;
            }
        }
    }
    return NULL;
}

/* ---- POST /admin/reload: runs on its own thread, answers on the worker */

struct reload_job {
    struct sluice_ctx *ctx;
    char *path; /* NULL: the file sluice was started with */
    int status;
    buf_t out;
};

static void reload_job_done(void *arg)
{
    struct reload_job *job = arg;
    struct sluice_ctx *ctx = job->ctx;
    if (!ctx->client_gone && ctx->conn) {
        request_set_response(ctx, job->status, "application/json",
                             job->out.data ? job->out.data : "{}",
                             job->out.data ? job->out.len : 2);
        ctx->phase = PHASE_READY;
        flow_resume(ctx);
    }
    buf_release(&job->out);
    free(job->path);
    free(job);
    request_unref(ctx); /* the job's reference */
}

static atomic_int jobs_running;

static void *reload_job_main(void *arg)
{
    struct reload_job *job = arg;
    enum reload_status rs = reload_run(job->path, 0, &job->out);
    job->status = rs == RELOAD_OK ? 200 : rs == RELOAD_BUSY ? 409 : 422;
    if (worker_post(job->ctx->w, reload_job_done, job) != 0)
        log_error("reload: cannot hand the answer back to the worker");
    atomic_fetch_sub(&jobs_running, 1);
    return NULL;
}

void admin_wait_jobs(void)
{
    for (int i = 0; i < 500 && atomic_load(&jobs_running) > 0; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static int admin_reload(struct sluice_ctx *ctx)
{
    char *path = NULL;
    pthread_t t;
    if (ctx->body_in.len) {
        json_error_t je;
        json_t *b = json_loadb(ctx->body_in.data, ctx->body_in.len, 0, &je);
        json_t *c = json_object_get(b, "config");
        if (!json_is_object(b) || (c && !json_is_string(c))) {
            json_decref(b);
            return request_set_error(ctx, 400, "invalid_request_error",
                                     "invalid_json", NULL,
                                     "expected {\"config\": \"path\"} or "
                                     "an empty body");
        }
        if (c && !server_main->cfg->admin_allow_config_path) {
            json_decref(b);
            return request_set_error(ctx, 403, "invalid_request_error",
                                     "config_path_not_allowed", "config",
                                     "naming a pipeline file needs "
                                     "admin.allow_config_path: true");
        }
        path = c ? strdup(json_string_value(c)) : NULL;
        json_decref(b);
    }
    struct reload_job *job = calloc(1, sizeof(*job));
    if (!job) {
        free(path);
        return request_set_error(ctx, 500, "server_error", NULL, NULL,
                                 "out of memory");
    }
    job->ctx = ctx;
    job->path = path;
    buf_init(&job->out);
    ctx->refs++;
    ctx->phase = PHASE_UPSTREAM; /* waiting: http.c suspends the client */
    atomic_fetch_add(&jobs_running, 1);
    if (pthread_create(&t, NULL, reload_job_main, job) != 0) {
        atomic_fetch_sub(&jobs_running, 1);
        ctx->refs--;
        ctx->phase = PHASE_RECEIVING;
        free(job->path);
        free(job);
        return request_set_error(ctx, 500, "server_error", NULL, NULL,
                                 "cannot start the reload");
    }
    pthread_detach(t);
    return 0;
}

static int admin_builtin(struct sluice_ctx *ctx, int *handled)
{
    *handled = 1;
    if (!strcmp(ctx->aux, "reload")) {
        if (!strcmp(ctx->method, "POST"))
            return admin_reload(ctx);
        hdrs_add(&ctx->out_headers, "Allow", "POST");
    } else if (!strcmp(ctx->aux, "ui/history")) { /* the dashboard's charts */
        if (!strcmp(ctx->method, "GET")) {
            buf_t out;
            buf_init(&out);
            history_json(&out, time_wall_ms());
            request_set_response(ctx, 200, "application/json", out.data,
                                 out.len);
            buf_release(&out);
            return 0;
        }
        hdrs_add(&ctx->out_headers, "Allow", "GET");
    } else if (!strcmp(ctx->aux, "pipeline")) {
        if (!strcmp(ctx->method, "GET")) {
            buf_t out;
            buf_init(&out);
            reload_report(&out);
            request_set_response(ctx, 200, "application/json", out.data,
                                 out.len);
            buf_release(&out);
            return 0;
        }
        hdrs_add(&ctx->out_headers, "Allow", "GET");
    } else {
        *handled = 0;
        return 0;
    }
    return request_set_error(ctx, 405, "invalid_request_error",
                             "method_not_allowed", NULL,
                             "method not allowed on this admin path");
}

int admin_answer(struct sluice_ctx *ctx)
{
    int handled;
    char msg[300];
    if (!server_main->admin_token) {
        snprintf(msg, sizeof msg, "unknown path %.200s", ctx->url);
        return request_set_error(ctx, 404, "invalid_request_error", "not_found",
                                 NULL, msg);
    }
    if (admin_ui_path(ctx->aux)) { /* static files; the data needs the token */
        admin_ui_answer(ctx, ctx->aux);
        return 0;
    }
    if (!admin_authorised(ctx)) {
        hdrs_add(&ctx->out_headers, "WWW-Authenticate", "Bearer");
        return request_set_error(ctx, 401, "invalid_request_error",
                                 "invalid_admin_token", NULL,
                                 "admin endpoints need Authorization: Bearer "
                                 "<admin token>");
    }
    int rc = admin_builtin(ctx, &handled);
    if (handled)
        return rc;
    struct sluice_stage *s = NULL;
    struct admin_action *a = find_action(ctx->gen, ctx->aux, &s);
    if (!a) {
        snprintf(msg, sizeof msg, "unknown admin path %.200s", ctx->url);
        return request_set_error(ctx, 404, "invalid_request_error", "not_found",
                                 NULL, msg);
    }
    buf_t out;
    buf_init(&out);
    const char *ctype = NULL;
    int status;
    if (a->ctx_fn) {
        ctx->out_status = 0;
        status = a->ctx_fn(s->instance, ctx, &out, &ctype);
        if (status == 0 && ctx->out_status) { /* answered with respond_* */
            buf_release(&out);
            log_msg(LOG_INFO, "admin", "%s %s -> %d", ctx->method, ctx->url,
                    ctx->out_status);
            return 0;
        }
    } else {
        buf_t q;
        buf_init(&q);
        const char *body = ctx->body_in.data;
        size_t blen = ctx->body_in.len;
        const char *up = ctx->conn
                             ? MHD_lookup_connection_value(
                                   ctx->conn, MHD_GET_ARGUMENT_KIND, "upstream")
                             : NULL;
        if (!blen && up) { /* GET /admin/keys?upstream=x: {"upstream":"x"} */
            buf_puts(&q, "{\"upstream\":");
            buf_json_str(&q, up);
            buf_puts(&q, "}");
            body = q.data;
            blen = q.len;
        }
        status = a->fn(s->instance, ctx->method, body, blen, &out);
        buf_release(&q);
    }
    if (status < 100 || status > 599 || out.oom) {
        log_msg(LOG_ERROR, s->name, "admin action %s failed", a->action);
        buf_release(&out);
        return request_set_error(ctx, 500, "server_error", "admin_error", NULL,
                                 "the admin action failed");
    }
    log_msg(LOG_INFO, "admin", "%s %s -> %d", ctx->method, ctx->url, status);
    request_set_response(ctx, status, ctype ? ctype : "application/json",
                         out.data ? out.data : (ctype ? "" : "{}"),
                         out.data ? out.len : (ctype ? 0 : 2));
    buf_release(&out);
    return 0;
}
