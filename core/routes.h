/*
 * routes.h - which route a request asked for, and the answers of every route
 * that is not a chat completion (health, models, metrics, docs, errors).
 */
#ifndef SLUICE_ROUTES_H
#define SLUICE_ROUTES_H

#include "request.h"

/* Classify the request path and method. */
void routes_match(struct sluice_ctx *ctx);
/* Answer a non-chat route (health, models, admin, errors) by setting ctx's
 * response. */
void routes_answer(struct sluice_ctx *ctx);

#endif
