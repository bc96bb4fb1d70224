/*
 * config_priv.h - what config.c shares with the other files that validate
 * parts of the pipeline file (config_routes.c): the location context and
 * the value validators. Every message names "file:line: field". Not for
 * anything outside config loading.
 */
#ifndef SLUICE_CONFIG_PRIV_H
#define SLUICE_CONFIG_PRIV_H

#include "config.h"
#include "yaml_load.h"

#include <jansson.h>
#include <stddef.h>

/* What the validators need to turn a path into "file:line: path". */
struct loadctx {
    const struct yaml_doc *doc;
    const char *file;
    char *err;
    size_t errlen;
};

/* Where a value came from, as messages print it. */
struct origin {
    char where[512];
    int secret; /* never echo the value */
};

void cfg_origin_yaml(const struct loadctx *lc, const char *path,
                     struct origin *o);
/* err = "<where>: expected <expected>, got <v>"; returns -1. */
int cfg_bad_value(const struct origin *o, const json_t *v, const char *expected,
                  char *err, size_t errlen);
/* err = "file:line: path: msg"; returns -1. */
int cfg_fail_at(const struct loadctx *lc, const char *path, const char *msg);
int cfg_oom(const char *file, char *err, size_t errlen);
int cfg_json_to_double(const json_t *v, double *out);
int cfg_value_int(const struct origin *o, const json_t *v, long long lo,
                  long long hi, long long *out, char *err, size_t errlen);
int cfg_value_ms(const struct origin *o, const json_t *v, long *out, char *err,
                 size_t errlen);
int cfg_value_name(const struct origin *o, const json_t *v, char **dst,
                   char *err, size_t errlen);
int cfg_value_base_url(const struct origin *o, const json_t *v, char **dst,
                       char *err, size_t errlen);
/* Unknown keys of obj (at `path`) are errors listing the valid ones. */
int cfg_check_keys(const struct loadctx *lc, const json_t *obj,
                   const char *path, const char *const *valid);
/* obj[key] unless absent or null, with its origin "section.key". */
const json_t *cfg_field(const struct loadctx *lc, const json_t *obj,
                        const char *section, const char *key, struct origin *o);

/* config_routes.c: `upstreams:` (or the legacy `upstream:` as one upstream
 * named "default") into cfg->upstreams, and `routes:` into cfg->routes. */
/* ca_file: and verify: of the upstream mapping s (named sect in errors)
 * into tls; the CA file must be readable. */
int cfg_upstream_tls(const struct loadctx *lc, const json_t *s,
                     const char *sect, struct upstream_tls *tls);
/* forward_headers: and add_headers: of the upstream mapping s (named sect
 * in errors) into h (owned copies, NULL when absent); reserved names and
 * bad values are errors at file:line. */
int cfg_upstream_headers(const struct loadctx *lc, const json_t *s,
                         const char *sect, struct upstream_headers *h);
int config_parse_upstreams(const struct loadctx *lc, const json_t *root,
                           struct config *cfg);
int config_parse_routes(const struct loadctx *lc, const json_t *root,
                        struct config *cfg);

#endif
