/*
 * api.h - the OpenAI endpoints sluice carries through the pipeline: one row
 * per endpoint saying its path, how its body is read (JSON, or multipart
 * with the model in a form field), whether and how it streams, and where it
 * goes upstream. Everything else in the core asks this table rather than
 * comparing paths, so a new endpoint is one row.
 *
 * Not here: the endpoints the core answers itself (routes.c).
 */
#ifndef SLUICE_API_H
#define SLUICE_API_H

#include <stdint.h>

enum api_body {
    API_BODY_JSON = 0,  /* application/json; parsed once */
    API_BODY_MULTIPART, /* multipart/form-data; forwarded untouched */
    API_BODY_RAW,       /* anything (passthrough): forwarded untouched */
};

enum api_stream {
    API_STREAM_NONE = 0, /* never streams: `stream` is not ours to read */
    API_STREAM_DATA,     /* chat / completions: data: events, [DONE] */
    API_STREAM_NAMED,    /* Responses: named events, no [DONE] */
};

struct api_route {
    const char *name;    /* the route's name for stages, metrics, logs */
    const char *path;    /* the client's path (also served without /v1) */
    const char *up_path; /* appended to the upstream base URL */
    enum api_body body;
    enum api_stream stream;
    uint32_t bit; /* 1u << index: stage route masks */
};

/* The row whose path is `path` (with or without the /v1 prefix), or NULL. */
const struct api_route *api_find(const char *path);
/* The row named `name`, or NULL. */
const struct api_route *api_by_name(const char *name);
/* The chat row (the route of a request that has no other). */
const struct api_route *api_chat(void);
/* The passthrough row: another /v1/ path, any method, sent upstream as it
 * came (top-level `passthrough: true`). Never returned by api_find. */
const struct api_route *api_passthrough(void);
/* Mask of every route. */
uint32_t api_all_mask(void);
/* Comma-separated names of every route (for operator error messages). */
const char *api_names(void);

#endif
