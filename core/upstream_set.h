/*
 * upstream_set.h - the upstreams of one pipeline generation, ready for the
 * hot path: each upstream's base URL, path overrides and encoded query,
 * how its key is sent, its static headers and time budgets. Built from the
 * validated config (config_routes.c), immutable once built, freed with its
 * generation.
 */
#ifndef SLUICE_UPSTREAM_SET_H
#define SLUICE_UPSTREAM_SET_H

#include "buf.h"
#include "config.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stddef.h>

/* Workers that get a pre-parsed chat URL per upstream (more use text). */
#define UPSTREAM_URL_WORKERS 64

struct upstream_def {
    const char *name;        /* borrowed from json, like the next three */
    const char *base_url;    /* no trailing slash */
    const json_t *paths;     /* {route name: path with optional {model}} */
    char *query;             /* "k=v&k2=v2" percent-encoded, or NULL */
    const char *auth_header; /* NULL: "Authorization: Bearer <key>" */
    char **hdr_lines;        /* static "Name: value" lines */
    size_t nhdr;
    long timeout_ms, connect_timeout_ms;
    int has_tls;         /* ca_file/verify from its `upstreams:` entry */
    const char *ca_file; /* borrowed from json, or NULL */
    int verify;
    const json_t *forward; /* forward_headers (its own or upstream:'s), or
                              NULL: the default list; borrowed */
    const json_t *add;     /* add_headers likewise, or NULL; borrowed */
    char *chat_url;        /* its chat URL when it has no {model} (with its
                              query), or NULL; owned */
    CURLU *chat_curlu[UPSTREAM_URL_WORKERS]; /* chat_url parsed, per worker
                       id: made and used by that worker alone, freed with
                       the set (after every transfer of its generation) */
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
/* Append to b the URL of route `route` (api.c's name, e.g. "chat") with
 * default path `path` on u: base URL, the upstream's path for the route if
 * it has one (its {model} replaced by `model`, percent-encoded), then
 * "?<query>" when u has one. 0, or -1 out of memory. */
int upstream_def_url(const struct upstream_def *u, const char *route,
                     const char *path, const char *model, buf_t *b);
/* How u takes a header a stage set: "Authorization: Bearer <key>" goes
 * as <auth_header>: <key> to an upstream with its own auth_header; any
 * other header (or u NULL) as it is. Outputs point into the inputs. */
void upstream_def_auth(const struct upstream_def *u, const char *name,
                       const char *value, const char **out_name,
                       const char **out_value);
/* The header lines of a probe of u with `authorization` ("Bearer <key>",
 * or NULL): the key its way, its static headers, its add_headers. A new
 * libcurl list (holds the key: free with probe_headers_free), or NULL
 * when out of memory. */
struct curl_slist;
struct curl_slist *upstream_def_probe_headers(const struct upstream_def *u,
                                              const char *authorization);
/* The pre-parsed chat URL of u for worker `id` (made on first use by that
 * worker's thread), or NULL: use the text URL. libcurl then does not parse
 * the URL again for every transfer (CURLOPT_CURLU). */
CURLU *upstream_def_chat_curlu(const struct upstream_def *u, int id);
/* 1 when u sends chat to <base_url>/chat/completions with no query. */
int upstream_def_plain_chat(const struct upstream_def *u);

#endif
