/*
 * sse.c - the sse stage: passes an upstream text/event-stream through to the
 * client as it arrives, and makes sure the streaming headers are set. (Thin
 * for now: event framing, heartbeats and idle timeouts come with the
 * streaming work.)
 */
#include "sluice.h"

#include <stdio.h>
#include <stdlib.h>

static const sluice_host *H;

static int sse_init(const sluice_host *host, sluice_stage *self,
                    const sluice_json *config, void **instance, char *err,
                    size_t errlen)
{
    (void)self;
    (void)config;
    (void)err;
    (void)errlen;
    H = host;
    *instance = NULL;
    return 0;
}

static void sse_destroy(void *instance)
{
    (void)instance;
}

static sluice_verdict sse_on_response(void *instance, sluice_ctx *ctx)
{
    (void)instance;
    if (H->req_stream(ctx) && H->resp_status(ctx) >= 200 &&
        H->resp_status(ctx) < 300) {
        H->resp_header_add(ctx, "Cache-Control", "no-cache");
        H->resp_header_add(ctx, "X-Accel-Buffering", "no");
    }
    return SLUICE_CONTINUE;
}

static sluice_verdict sse_on_chunk(void *instance, sluice_ctx *ctx,
                                   const char *data, size_t len)
{
    (void)instance;
    return H->chunk_forward(ctx, data, len) == 0 ? SLUICE_CONTINUE
                                                 : SLUICE_ERROR;
}

static const sluice_plugin sse_plugin = {
    .abi_major = SLUICE_ABI_MAJOR,
    .abi_minor = SLUICE_ABI_MINOR,
    .size = sizeof(sluice_plugin),
    .name = "sse",
    .version = "0.1.0",
    .description = "server-sent events pass-through",
    .init = sse_init,
    .destroy = sse_destroy,
    .on_response = sse_on_response,
    .on_chunk = sse_on_chunk,
};

SLUICE_PLUGIN_DEFINE(sse_plugin)
