/*
 * upstream.h - one upstream attempt on the worker's libcurl multi handle:
 * build the request (pooled easy handle, keep-alive connection), collect the
 * status, headers and body, and report the end to the request flow.
 */
#ifndef SLUICE_UPSTREAM_H
#define SLUICE_UPSTREAM_H

#include "request.h"

/* The longest request header line a stage may have sent upstream, name,
 * ": " and value (a line that does not fit fails the attempt with a 500). */
#define UPSTREAM_MAX_HEADER 8192

/* Start the current attempt of ctx. Returns -1 (and sets an error
 * response) if the transfer could not be created. */
int upstream_start(struct sluice_ctx *ctx);
/* Stop the transfer of ctx, if any, and return its handle to the pool. */
void upstream_abort(struct sluice_ctx *ctx);
/* A transfer finished (called by the worker from curl_multi_info_read). */
void upstream_done(CURL *easy, CURLcode code);
/* Fail the current transfer of ctx as a broken attempt (502 to the client
 * unless a stage retries), logging `why` once. */
void upstream_fail(struct sluice_ctx *ctx, const char *why);
/* Resume a transfer paused by back-pressure. */
void upstream_resume(struct sluice_ctx *ctx);

/* What either HTTP client hands over for the current attempt of ctx: a
 * header of the final response, the end of its head (status), and body
 * bytes (0 taken, 1 pause: not taken, hand them again after
 * upstream_resume, -1 abort the transfer). */
void upstream_take_header(struct sluice_ctx *ctx, const char *name, size_t nlen,
                          const char *value, size_t vlen);
void upstream_take_head(struct sluice_ctx *ctx, int status);
int upstream_take_body(struct sluice_ctx *ctx, const char *data, size_t len);
/* A reused connection closed before any answer: may the request be sent
 * again on a new one? 0 yes (counted as an attempt and logged), -1 no. */
int upstream_may_resend(struct sluice_ctx *ctx);
/* sluice's own client's transfer of ctx ended with libcurl's code for the
 * same outcome (ctx->curl_err says why when not CURLE_OK). */
void upstream_h1_done(struct sluice_ctx *ctx, CURLcode code);

#endif
