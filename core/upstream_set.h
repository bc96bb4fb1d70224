/*
 * upstream_set.h - the upstreams of one pipeline generation, ready for the
 * hot path: each upstream's chat URL (query parameters appended, a path
 * with {model} split around it), how its key is sent, its static headers
 * and time budgets. Built from the validated config (config_routes.c),
 * immutable once built, freed with its generation.
 */
#ifndef SLUICE_UPSTREAM_SET_H
#define SLUICE_UPSTREAM_SET_H

#include "config.h"

#include <jansson.h>
#include <stddef.h>

struct upstream_def {
    const char *name;         /* borrowed from json */
    char *url;                /* chat URL when the path has no {model} */
    char *url_pre, *url_post; /* around {model} (url_post has the query) */
    const char *auth_header;  /* NULL: "Authorization: Bearer <key>" */
    char **hdr_lines;         /* static "Name: value" lines */
    size_t nhdr;
    long timeout_ms, connect_timeout_ms;
};

struct upstream_set {
    struct upstream_def *v;
    size_t n;
    json_t *json;   /* cfg->upstreams (referenced): upstream_at() */
    json_t *routes; /* cfg->routes (referenced) or NULL: routes() */
};

/* Build the set of cfg; NULL with err set on failure (out of memory). */
struct upstream_set *upstream_set_new(const struct config *cfg, char *err,
                                      size_t errlen);
void upstream_set_free(struct upstream_set *s);
/* The upstream named `name`, or NULL. */
const struct upstream_def *upstream_set_find(const struct upstream_set *s,
                                             const char *name);
/* The chat URL of u for `model` into out (the model percent-encoded into a
 * {model} path). Returns out, or NULL when it does not fit. */
const char *upstream_def_url(const struct upstream_def *u, const char *model,
                             char *out, size_t outlen);

#endif
