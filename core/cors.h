/*
 * cors.h - Cross-Origin Resource Sharing for browser clients (the openai
 * SDK with dangerouslyAllowBrowser, the AI SDK in a page): off unless the
 * operator lists origins in server.cors. An allowed origin gets its
 * preflight answered and Access-Control-Allow-Origin on every answer; any
 * other origin gets no CORS header at all (the browser then refuses).
 */
#ifndef SLUICE_CORS_H
#define SLUICE_CORS_H

#include "request.h"

/* 1 when this request is a CORS preflight sluice answers (server.cors set,
 * OPTIONS with Access-Control-Request-Method). */
int cors_is_preflight(struct sluice_ctx *ctx);
/* Answer a preflight: 204, with the CORS headers when the origin is
 * allowed, without them otherwise. */
void cors_answer_preflight(struct sluice_ctx *ctx);
/* Add Access-Control-Allow-Origin (and what goes with it) to a response
 * for an allowed Origin; nothing otherwise. */
void cors_add_headers(struct sluice_ctx *ctx, struct MHD_Response *r);

#endif
