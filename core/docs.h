/*
 * docs.h - the API description and its viewers: GET /openapi.json (the
 * OpenAPI 3.1 document docs/openapi.json, embedded at build time), GET /docs
 * (Swagger UI) and GET /redoc (ReDoc). docs.enabled: false removes all three.
 */
#ifndef SLUICE_DOCS_H
#define SLUICE_DOCS_H

#include <stddef.h>

struct sluice_ctx;

/* The embedded document (generated from docs/openapi.json by CMake). */
extern const unsigned char openapi_json[];
extern const size_t openapi_json_len;

/* 1 unless the config says docs.enabled: false. */
int docs_enabled(void);
/* Answer ROUTE_OPENAPI, ROUTE_DOCS or ROUTE_REDOC. */
void docs_answer(struct sluice_ctx *ctx);

#endif
