/*
 * core_metrics.h - the metrics the core publishes itself: requests by
 * route, model, status and outcome, in-flight requests, latency histograms,
 * upstream attempts, rejections, token figures taken from request
 * attributes and the upstream's usage, pipeline generation and reloads,
 * build info. Stages publish their own through the host table.
 */
#ifndef SLUICE_CORE_METRICS_H
#define SLUICE_CORE_METRICS_H

#include <stdint.h>

struct sluice_ctx;

/* Register the core's families (idempotent; families outlive reloads). */
void core_metrics_init(void);

/* A request started / an upstream attempt ended (upstream.c). */
void core_metrics_request_start(struct sluice_ctx *ctx);
void core_metrics_attempt_end(struct sluice_ctx *ctx);

/* The request's figures, computed once at completion. */
struct request_summary {
    const char *route;           /* "chat", "models", ... */
    const char *outcome;         /* "ok", "rejected", "upstream_error", ... */
    const char *model;           /* label value: known id, "other", or "" */
    const char *model_requested; /* body.model as sent ("" none) */
    const char *client;          /* attr "client" or "" */
    const char *key_id;          /* attr "key_id" (masked) or "" */
    int status; /* what the client got (499: nothing, it left) */
    double total_s, upstream_s, overhead_s;
    double ttfb_s;             /* streams: first byte queued; -1 otherwise */
    long long tokens_estimate; /* -1: unknown */
    long long usage_prompt, usage_completion; /* -1: unknown */
};

/* Fill `sum` for a request that is completing. `client_left` when the
 * connection ended before the response was fully sent. */
void core_metrics_summarise(struct sluice_ctx *ctx, int client_left,
                            struct request_summary *sum);
/* Record a completed request (in-flight goes down). */
void core_metrics_request_done(struct sluice_ctx *ctx,
                               const struct request_summary *sum);

/* Just before a scrape: refresh the values kept elsewhere (generation
 * serving new requests, reloads and reload failures from pipeline_stats,
 * dropped log lines). */
void core_metrics_collect(void);

#endif
