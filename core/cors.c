/*
 * cors.c - CORS answers (see cors.h). Origins match exactly (scheme, host
 * and port, as browsers send them) or "*" matches any; the allowed origin
 * is echoed, never "*", so credentials-bearing requests work, and Vary:
 * Origin keeps caches from mixing answers.
 */
#include "cors.h"
#include "server.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Response headers a browser script may read (OpenAI's own among them). */
#define CORS_EXPOSE                                                            \
    "x-request-id, x-upstream-request-id, x-sluice-attempts, retry-after, "    \
    "openai-processing-ms, openai-version, openai-organization, "              \
    "x-ratelimit-limit-requests, x-ratelimit-remaining-requests, "             \
    "x-ratelimit-reset-requests, x-ratelimit-limit-tokens, "                   \
    "x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens"

static const struct config *cors_cfg(void)
{
    return server_main ? server_main->cfg : NULL;
}

/* The request's Origin when the configuration allows it, else NULL. */
static const char *allowed_origin(struct sluice_ctx *ctx)
{
    const struct config *cfg = cors_cfg();
    const char *origin = request_header(ctx, "Origin");
    size_t i;
    json_t *o;
    if (!cfg || !cfg->cors_origins || !origin || !*origin)
        return NULL;
    json_array_foreach(cfg->cors_origins, i, o)
    {
        const char *v = json_string_value(o);
        if (!strcmp(v, "*") || !strcasecmp(v, origin))
            return origin;
    }
    return NULL;
}

int cors_is_preflight(struct sluice_ctx *ctx)
{
    const struct config *cfg = cors_cfg();
    return cfg && cfg->cors_origins && !strcmp(ctx->method, "OPTIONS") &&
           request_header(ctx, "Access-Control-Request-Method");
}

void cors_answer_preflight(struct sluice_ctx *ctx)
{
    const struct config *cfg = cors_cfg();
    request_set_response(ctx, 204, "text/plain", "", 0);
    if (!allowed_origin(ctx))
        return; /* no CORS headers: the browser refuses */
    const char *hdrs = cfg->cors_headers;
    if (!hdrs)
        hdrs = request_header(ctx, "Access-Control-Request-Headers");
    char age[24];
    snprintf(age, sizeof age, "%ld", cfg->cors_max_age);
    hdrs_add(&ctx->out_headers, "Access-Control-Allow-Methods",
             "GET, POST, OPTIONS");
    if (hdrs && *hdrs)
        hdrs_add(&ctx->out_headers, "Access-Control-Allow-Headers", hdrs);
    hdrs_add(&ctx->out_headers, "Access-Control-Max-Age", age);
}

void cors_add_headers(struct sluice_ctx *ctx, struct MHD_Response *r)
{
    const struct config *cfg = cors_cfg();
    if (!cfg || !cfg->cors_origins)
        return;
    MHD_add_response_header(r, "Vary", "Origin");
    const char *origin = allowed_origin(ctx);
    if (!origin)
        return;
    MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
    if (strcmp(ctx->method, "OPTIONS"))
        MHD_add_response_header(r, "Access-Control-Expose-Headers",
                                CORS_EXPOSE);
}
