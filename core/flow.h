/*
 * flow.h - the life of a chat request: pipeline phases, upstream attempts,
 * retries on a timer, and the hand-over of the result (full or streamed) to
 * the HTTP layer.
 */
#ifndef SLUICE_FLOW_H
#define SLUICE_FLOW_H

#include "request.h"

/* The body is complete: parse it, run on_request, start the first attempt. */
void flow_begin(struct sluice_ctx *ctx);
/* req_resume (sluice.h) of a request whose on_request said PENDING: the
 * verdict is recorded and the rest of the pipeline runs from the worker's
 * loop. On ctx's worker only. 0, or -1 when it is not waiting. */
int flow_resume_request(struct sluice_ctx *ctx, sluice_verdict v);
/* Upstream events (upstream.c). */
void flow_attempt_headers(struct sluice_ctx *ctx); /* status + headers in */
/* Streamed body bytes of a committed or committing attempt; returns 0, or
 * -1 to abort the transfer, or 1 to ask for a pause (back-pressure). */
int flow_stream_bytes(struct sluice_ctx *ctx, const char *data, size_t len);
void flow_attempt_done(struct sluice_ctx *ctx);
/* The client went away (hang-up seen, or the server's completion callback):
 * abort the upstream transfer and stop timers. */
void flow_client_gone(struct sluice_ctx *ctx);
/* The shutdown grace is over: a stream still running ends with a
 * server_shutting_down error event, a request still waiting on the
 * upstream is answered 503 (Retry-After: 1). */
void flow_shutdown(struct sluice_ctx *ctx);
/* Wake a suspended connection so MHD calls us again. */
void flow_resume(struct sluice_ctx *ctx);
/* host: stream_configure (heartbeat, idle timeout, client buffer). */
int flow_stream_configure(struct sluice_ctx *ctx, uint32_t heartbeat_ms,
                          uint32_t idle_ms, size_t buffer_max);
/* Content reader of a streamed response (MHD). */
ssize_t flow_stream_read(void *cls, uint64_t pos, char *buf, size_t max);
void flow_stream_free(void *cls);
/* Append bytes for the client of a streamed response (end of the on_chunk
 * chain) and wake the connection if it waits for data. */
int flow_stream_write(struct sluice_ctx *ctx, const char *data, size_t len);

#endif
