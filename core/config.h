/*
 * config.h - the pipeline file: YAML (libyaml) read into a validated
 * struct config, with ${VAR:-default} expansion in scalar values and the
 * seed's environment variables applied as overrides.
 *
 * Errors name the file, the line and the field:
 *   "pipelines/x.yaml:12: server.port: expected an integer 1..65535, got 'abc'"
 */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include "state.h"

#include <jansson.h>
#include <stddef.h>

/* One `pipeline:` entry. */
struct stage_conf {
    char *name;     /* `name:` or, when absent, the plugin name */
    char *plugin;   /* `plugin:` */
    char *path;     /* `path:`, or <plugins_dir>/<plugin>.so */
    json_t *config; /* `config:` as a JSON object ({} when absent); owned */
    json_t *routes; /* `routes:` (array of route names) or NULL; owned */
    int line;       /* line of the entry in the file (1-based) */
};

/* TLS settings of one upstream (https:// base URLs). Kept in their own
 * struct so each upstream of a list can carry its own. */
struct upstream_tls {
    char *ca_file; /* PEM bundle to verify the upstream's certificate
                      against; NULL: the system's CA store */
    int verify;    /* default 1; 0 only when the file says `verify: false`
                      (certificate and host name not checked: a WARNING at
                      start) */
};

/* Which client headers go upstream, and which the operator adds, for one
 * upstream (so each upstream of a list can carry its own). */
struct upstream_headers {
    json_t *forward; /* forward_headers: client header names passed on;
                        NULL: OpenAI-Organization, OpenAI-Project,
                        OpenAI-Beta */
    json_t *add;     /* add_headers: {name: value} on every request; NULL */
};

struct config {
    char *file; /* the path it was loaded from (or "<string>") */

    /* server: */
    char *host;                 /* default "0.0.0.0" */
    int port;                   /* default 8000 */
    int threads;                /* 0 = one per core */
    size_t max_body_bytes;      /* default 4 MiB */
    long request_timeout_ms;    /* request_timeout_s * 1000, default 30 s:
                                   headers and body must be in by then */
    int max_client_connections; /* max_connections, default 10000: client
                                   connections, shared among the workers */
    long max_stream_ms;         /* max_stream_s * 1000, default 1800 s: a
                                   committed stream's whole life */
    long shutdown_grace_ms;     /* shutdown_grace_s * 1000, default 10 s:
                                   SIGTERM lets requests finish this long */
    int passthrough;            /* top-level passthrough: other /v1/ paths
                                   go to the upstream unchanged (default 0:
                                   OpenAI's 404) */
    json_t *cors_origins;       /* server.cors.allow_origins (strings; "*"
                                   any); NULL: CORS off (the default) */
    char *cors_headers;         /* allow_headers joined by ", "; NULL:
                                   those the preflight asks for */
    long cors_max_age;          /* max_age seconds, default 600 */

    /* upstream: */
    char *base_url;  /* default "https://ai.megallm.io/v1", no trailing / */
    long timeout_ms; /* timeout_s * 1000, default 120 s */
    long connect_timeout_ms; /* default 10 s */
    long keepalive_ms;       /* keepalive_s * 1000, default 30 s: an idle pooled
                                connection is not reused after this (keep it
                                below the upstream's own keep-alive timeout) */
    int max_connections; /* pooled keep-alive connections per worker, default
                            256 */
    struct upstream_tls tls;         /* ca_file:, verify: */
    struct upstream_headers headers; /* forward_headers:, add_headers: */
    char *upstream_client; /* client: "auto" (default: sluice's own HTTP/1.1
                              client for http:// upstreams named by an IP
                              address or localhost, libcurl for the rest)
                              or "curl" (libcurl for every upstream) */

    /* admin: */
    char *admin_token_file;      /* may be NULL */
    char *admin_listen;          /* may be NULL ("host:port") */
    int admin_allow_config_path; /* POST /admin/reload may name a file */

    /* log: */
    char *log_level;  /* "INFO" default; LOG_LEVEL overrides */
    char *log_file;   /* may be NULL */
    char *log_format; /* "auto" | "json" | "text" */

    /* docs: */
    int docs_enabled;      /* /openapi.json, /docs, /redoc; default 1 */
    char *docs_assets_url; /* base URL of the Swagger UI / ReDoc files;
                              NULL: their CDN */

    char *plugins_dir; /* default "build/plugins" */

    struct stage_conf *stages;
    size_t nstages;

    struct state_conf state; /* `state:` (state.h); strings owned */

    json_t *models; /* `models:` array of objects, or NULL; owned */

    /* upstreams: the validated list (config_routes.c), never empty: the
     * legacy `upstream:` block is one entry named "default". Each entry
     * has name, base_url, timeout_ms, connect_timeout_ms and the optional
     * auth_header, headers, query, paths, keys as written; owned. */
    json_t *upstreams;
    int upstreams_listed; /* 1: from `upstreams:`, 0: the legacy form */
    /* routes: the validated list (deployments' weight filled in), or NULL
     * when the file has none; owned. */
    json_t *routes;
    json_t *root; /* the whole document as JSON; owned */
};

/* Load and validate `path`. On error returns -1 and writes
 * "<file>:<line>: <field>: <what is wrong>" to err. Caller frees *out with
 * config_free. Environment overrides are applied (see config.c). */
int config_load(const char *path, struct config **out, char *err,
                size_t errlen);
/* Same from a string; `name` is used in error messages. */
int config_load_string(const char *text, size_t len, const char *name,
                       struct config **out, char *err, size_t errlen);
void config_free(struct config *cfg);

/* Expand ${VAR} and ${VAR:-default} in `in`. Returns a malloc'd string or
 * NULL with err set (unterminated "${"). Exposed for tests. */
char *config_expand_env(const char *in, char *err, size_t errlen);

#endif
