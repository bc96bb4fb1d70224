/*
 * stage_harness.h - drive one stage through the real host table without a
 * server: build a generation from the stage's descriptor and config, make
 * request contexts with a body and client headers, fake an upstream answer,
 * and read back what the stage did (upstream headers, client response,
 * streamed bytes, attributes, the /metrics exposition).
 */
#ifndef SLUICE_STAGE_HARNESS_H
#define SLUICE_STAGE_HARNESS_H

#include "pipeline.h"
#include "request.h"

/* The stage under test: its descriptor through its own entry point. */
const sluice_plugin *sluice_plugin_entry(void);

/* (Re)open the core's state layer (sluice_host.state_*) on the SQLite file
 * `path`, or in memory when NULL, dropping what the view held: a restart.
 * sh_gen_new opens it in memory when nothing did. 0 or -1. */
int sh_state_open(const char *path);

/* Build a one-stage generation; config_json may be NULL ({}). On failure
 * returns NULL with err set to init's message. */
struct generation *sh_gen_new(const char *config_json, char *err,
                              size_t errlen);
void sh_gen_free(struct generation *g);

/* A context for generation g with the given JSON body (may be NULL) and
 * NULL-terminated name/value pairs of client headers. */
struct sluice_ctx *sh_ctx_new(struct generation *g, const char *body_json,
                              const char *const *headers);
void sh_ctx_free(struct sluice_ctx *ctx);

/* Pretend an upstream attempt ended with `status` (0 = transport failure
 * `result`), NULL-terminated response header pairs and body. */
void sh_ctx_upstream(struct sluice_ctx *ctx, sluice_attempt_result result,
                     int status, const char *const *headers, const char *body);

/* Run one phase on the context (attempt_no is incremented by
 * sh_on_attempt, as the core does). */
sluice_verdict sh_on_request(struct sluice_ctx *ctx);
sluice_verdict sh_on_attempt(struct sluice_ctx *ctx);
sluice_verdict sh_on_response(struct sluice_ctx *ctx);
sluice_verdict sh_on_chunk(struct sluice_ctx *ctx, const char *data,
                           size_t len);
void sh_on_complete(struct sluice_ctx *ctx);

/* What the stage produced. */
const char *sh_up_header(struct sluice_ctx *ctx, const char *name);
const char *sh_out_header(struct sluice_ctx *ctx, const char *name);
int sh_out_status(struct sluice_ctx *ctx);
const char *sh_out_body(struct sluice_ctx *ctx);
const char *sh_streamed(struct sluice_ctx *ctx, size_t *len);

/* /metrics as the core renders it, after running the collect hook of
 * every stage of g (g may be NULL: no collect). Caller frees. */
char *sh_metrics_text(struct generation *g);
/* The value of one sample, e.g. `sluice_key_requests_total{key="a"}`
 * (exactly as rendered, labels in registration order), or -1 when the
 * exposition has no such line. Runs collect first, as a scrape does. */
double sh_metric(struct generation *g, const char *sample);

#endif
