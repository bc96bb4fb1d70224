/*
 * admin.c - the admin API gate and dispatch. Every admin request needs
 * "Authorization: Bearer <token>" matching admin.token_file (compared in
 * constant time); without a configured token the admin API does not exist
 * (404). Stage actions are reached at /admin/plugins/<stage>/<action> or at
 * the alias the stage registered (/admin/<alias>).
 */
#include "log.h"
#include "pipeline.h"
#include "request.h"
#include "server.h"

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

static struct admin_action *find_action(struct generation *g,
                                        const char *path,
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

int admin_answer(struct sluice_ctx *ctx)
{
    char msg[300];
    if (!server_main->admin_token) {
        snprintf(msg, sizeof msg, "unknown path %.200s", ctx->url);
        return request_set_error(ctx, 404, "invalid_request_error",
                                 "not_found", NULL, msg);
    }
    if (!admin_authorised(ctx)) {
        hdrs_add(&ctx->out_headers, "WWW-Authenticate", "Bearer");
        return request_set_error(ctx, 401, "invalid_request_error",
                                 "invalid_admin_token", NULL,
                                 "admin endpoints need Authorization: Bearer "
                                 "<admin token>");
    }
    struct sluice_stage *s = NULL;
    struct admin_action *a = find_action(ctx->gen, ctx->aux, &s);
    if (!a) {
        snprintf(msg, sizeof msg, "unknown admin path %.200s", ctx->url);
        return request_set_error(ctx, 404, "invalid_request_error",
                                 "not_found", NULL, msg);
    }
    buf_t out;
    buf_init(&out);
    int status = a->fn(s->instance, ctx->method, ctx->body_in.data,
                       ctx->body_in.len, &out);
    if (status < 100 || status > 599 || out.oom) {
        log_msg(LOG_ERROR, s->name, "admin action %s failed", a->action);
        buf_release(&out);
        return request_set_error(ctx, 500, "server_error", "admin_error",
                                 NULL, "the admin action failed");
    }
    log_msg(LOG_INFO, "admin", "%s %s -> %d", ctx->method, ctx->url, status);
    request_set_response(ctx, status, "application/json",
                         out.data ? out.data : "{}", out.data ? out.len : 2);
    buf_release(&out);
    return 0;
}
