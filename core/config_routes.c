/*
 * config_routes.c - the `upstreams:` and `routes:` sections of the pipeline
 * file, validated into cfg->upstreams and cfg->routes (JSON the generation
 * keeps and stages read through the SDK).
 *
 *   upstreams: [{name, base_url, timeout_s, connect_timeout_s, auth_header,
 *                headers: {..}, query: {..}, paths: {chat: ".../{model}/..."},
 *                keys: {keys_file, strategy, ...} | false}]
 *   routes:    [{model, aliases, context_length, deployments: [{upstream,
 *                model, weight}], fallbacks, fallback_on, context_fallbacks,
 *                retries {max_retries, max_key_switches},
 *                input_per_mtok, output_per_mtok, cached_input_per_mtok}]
 *
 * Without `upstreams:` the legacy `upstream:` block (and its environment
 * overrides) is one upstream named "default". Refused here, with file:line:
 * duplicate upstream or model names, an unknown upstream in a route, an
 * empty deployment list, a weight <= 0, a fallback to an unknown model or a
 * fallback cycle, a glob that shadows an exact name listed after it, a keys
 * file that cannot be read. Choosing among them is a stage's job (router).
 */
#include "api.h"
#include "config_priv.h"

#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const fallback_classes[] = {
    "5xx",     "timeout",
    "connect", "all_keys_unavailable",
    "429",     "context_length_exceeded",
    "4xx",     NULL};

/* ---- upstreams ---------------------------------------------------------- */

static int set_or_oom(const struct loadctx *lc, json_t *obj, const char *key,
                      json_t *v)
{
    if (!v || json_object_set_new(obj, key, v))
        return cfg_oom(lc->file, lc->err, lc->errlen);
    return 0;
}

/* A mapping of scalar values (headers:, query:) copied as strings. */
static int string_map(const struct loadctx *lc, const json_t *v,
                      const char *path, int header_names, json_t **out)
{
    struct origin o;
    const char *k;
    json_t *x;

    cfg_origin_yaml(lc, path, &o);
    if (!json_is_object(v))
        return cfg_bad_value(&o, v, "a mapping of names to values", lc->err,
                             lc->errlen);
    *out = json_object();
    if (!*out)
        return cfg_oom(lc->file, lc->err, lc->errlen);
    json_object_foreach((json_t *)v, k, x)
    {
        char kp[320], num[64];
        const char *s = json_string_value(x);
        snprintf(kp, sizeof kp, "%s.%s", path, k);
        if (json_is_integer(x) || json_is_real(x)) {
            snprintf(num, sizeof num, "%g", json_number_value(x));
            s = num;
        }
        if (!s || strpbrk(s, "\r\n") ||
            (header_names && (!*k || strpbrk(k, " :\t\r\n"))))
            return cfg_fail_at(lc, kp,
                               header_names ? "expected a header name and a "
                                              "one-line value"
                                            : "expected a one-line value");
        if (set_or_oom(lc, *out, k, json_string(s)))
            return -1;
    }
    return 0;
}

static int upstream_paths(const struct loadctx *lc, const json_t *v,
                          const char *path, json_t **out)
{
    static const char *const names[] = {
        "chat",        "completions", "embeddings", "responses",
        "moderations", "models",      NULL};
    const char *k;
    json_t *x;

    if (string_map(lc, v, path, 0, out))
        return -1;
    if (cfg_check_keys(lc, *out, path, names))
        return -1;
    json_object_foreach(*out, k, x)
    {
        char kp[320];
        snprintf(kp, sizeof kp, "%s.%s", path, k);
        if (json_string_value(x)[0] != '/')
            return cfg_fail_at(lc, kp, "expected a path starting with /");
    }
    return 0;
}

static int upstream_keys(const struct loadctx *lc, const json_t *v,
                         const char *path, json_t *e)
{
    struct origin o;
    const json_t *kf;

    cfg_origin_yaml(lc, path, &o);
    if (json_is_false(v))
        return set_or_oom(lc, e, "keys", json_false());
    if (!json_is_object(v))
        return cfg_bad_value(&o, v,
                             "a mapping of the key pool's settings "
                             "(keys_file:, strategy:, ...) or false",
                             lc->err, lc->errlen);
    kf = json_object_get(v, "keys_file");
    if (kf) {
        char kp[320];
        FILE *f;
        snprintf(kp, sizeof kp, "%s.keys_file", path);
        if (!json_is_string(kf) || !*json_string_value(kf))
            return cfg_fail_at(lc, kp, "expected a file path");
        f = fopen(json_string_value(kf), "r");
        if (!f) {
            char msg[512];
            snprintf(msg, sizeof msg, "cannot read keys file '%.300s'",
                     json_string_value(kf));
            return cfg_fail_at(lc, kp, msg);
        }
        fclose(f);
    }
    return set_or_oom(lc, e, "keys", json_deep_copy(v));
}

/* forward_headers / add_headers: the entry's own, else upstream:'s, each
 * list on its own; stored in e only when set. */
static int upstream_entry_headers(const struct loadctx *lc, const json_t *u,
                                  const char *path, const struct config *cfg,
                                  json_t *e)
{
    struct upstream_headers h = {NULL, NULL};
    int rc = cfg_upstream_headers(lc, u, path, &h);
    json_t *fwd = h.forward ? h.forward : json_incref(cfg->headers.forward);
    json_t *add = h.add ? h.add : json_incref(cfg->headers.add);
    if (!rc && fwd)
        rc = set_or_oom(lc, e, "forward_headers", json_incref(fwd));
    if (!rc && add)
        rc = set_or_oom(lc, e, "add_headers", json_incref(add));
    json_decref(fwd);
    json_decref(add);
    return rc;
}

static int upstream_entry(const struct loadctx *lc, const json_t *u, size_t i,
                          const struct config *cfg, json_t *list)
{
    static const char *const keys[] = {
        "name",        "base_url", "timeout_s", "connect_timeout_s",
        "auth_header", "headers",  "query",     "paths",
        "keys",        "ca_file",  "verify",    "forward_headers",
        "add_headers", NULL};
    char path[64], msg[256];
    struct origin o;
    const json_t *v;
    char *s = NULL;
    long ms;
    json_t *e = json_object(), *m;

    if (!e)
        return cfg_oom(lc->file, lc->err, lc->errlen);
    if (json_array_append_new(list, e))
        return cfg_oom(lc->file, lc->err, lc->errlen);
    snprintf(path, sizeof path, "upstreams[%zu]", i);
    cfg_origin_yaml(lc, path, &o);
    if (!json_is_object(u))
        return cfg_bad_value(
            &o, u, "a mapping with name: and base_url:", lc->err, lc->errlen);
    if (cfg_check_keys(lc, u, path, keys))
        return -1;
    if (!(v = cfg_field(lc, u, path, "name", &o)))
        return cfg_fail_at(lc, path, "missing 'name:'");
    if (cfg_value_name(&o, v, &s, lc->err, lc->errlen))
        return -1;
    for (size_t j = 0; j < i; j++) {
        const char *other =
            json_string_value(json_object_get(json_array_get(list, j), "name"));
        if (other && !strcmp(other, s)) {
            snprintf(msg, sizeof msg,
                     "duplicate upstream name '%s' (upstreams[%zu] has it)", s,
                     j);
            free(s);
            snprintf(path, sizeof path, "upstreams[%zu].name", i);
            return cfg_fail_at(lc, path, msg);
        }
    }
    if (set_or_oom(lc, e, "name", json_string(s)))
        goto fail;
    free(s);
    s = NULL;
    if (!(v = cfg_field(lc, u, path, "base_url", &o)))
        return cfg_fail_at(lc, path, "missing 'base_url:'");
    if (cfg_value_base_url(&o, v, &s, lc->err, lc->errlen) ||
        set_or_oom(lc, e, "base_url", json_string(s)))
        goto fail;
    free(s);
    s = NULL;
    ms = cfg->timeout_ms;
    if ((v = cfg_field(lc, u, path, "timeout_s", &o)) &&
        cfg_value_ms(&o, v, &ms, lc->err, lc->errlen))
        return -1;
    if (set_or_oom(lc, e, "timeout_ms", json_integer(ms)))
        return -1;
    ms = cfg->connect_timeout_ms;
    if ((v = cfg_field(lc, u, path, "connect_timeout_s", &o)) &&
        cfg_value_ms(&o, v, &ms, lc->err, lc->errlen))
        return -1;
    if (set_or_oom(lc, e, "connect_timeout_ms", json_integer(ms)))
        return -1;
    if ((v = cfg_field(lc, u, path, "auth_header", &o))) {
        const char *h = json_string_value(v);
        if (!h || !*h || strpbrk(h, " :\t\r\n"))
            return cfg_bad_value(&o, v, "a header name (e.g. api-key)", lc->err,
                                 lc->errlen);
        if (set_or_oom(lc, e, "auth_header", json_string(h)))
            return -1;
    }
    if ((v = cfg_field(lc, u, path, "headers", &o))) {
        snprintf(path, sizeof path, "upstreams[%zu].headers", i);
        if (string_map(lc, v, path, 1, &m) || set_or_oom(lc, e, "headers", m))
            return -1;
    }
    snprintf(path, sizeof path, "upstreams[%zu]", i);
    if ((v = cfg_field(lc, u, path, "query", &o))) {
        snprintf(path, sizeof path, "upstreams[%zu].query", i);
        if (string_map(lc, v, path, 0, &m) || set_or_oom(lc, e, "query", m))
            return -1;
    }
    snprintf(path, sizeof path, "upstreams[%zu]", i);
    if ((v = cfg_field(lc, u, path, "paths", &o))) {
        snprintf(path, sizeof path, "upstreams[%zu].paths", i);
        if (upstream_paths(lc, v, path, &m) || set_or_oom(lc, e, "paths", m))
            return -1;
    }
    snprintf(path, sizeof path, "upstreams[%zu]", i);
    /* TLS: its own ca_file / verify, else upstream:'s */
    struct upstream_tls tls = {NULL, cfg->tls.verify};
    if (cfg_upstream_tls(lc, u, path, &tls)) {
        free(tls.ca_file);
        return -1;
    }
    const char *ca = tls.ca_file ? tls.ca_file : cfg->tls.ca_file;
    int tls_bad = (ca && set_or_oom(lc, e, "ca_file", json_string(ca))) ||
                  set_or_oom(lc, e, "verify", json_boolean(tls.verify));
    free(tls.ca_file);
    if (tls_bad || upstream_entry_headers(lc, u, path, cfg, e))
        return -1;
    if ((v = cfg_field(lc, u, path, "keys", &o))) {
        snprintf(path, sizeof path, "upstreams[%zu].keys", i);
        if (upstream_keys(lc, v, path, e))
            return -1;
    }
    return 0;
fail:
    free(s);
    return -1;
}

static int upstreams_legacy(const struct loadctx *lc, struct config *cfg)
{
    json_t *e =
        json_pack("{s:s,s:s,s:I,s:I}", "name", "default", "base_url",
                  cfg->base_url, "timeout_ms", (json_int_t)cfg->timeout_ms,
                  "connect_timeout_ms", (json_int_t)cfg->connect_timeout_ms);
    cfg->upstreams = json_array();
    if (!e || !cfg->upstreams || json_array_append_new(cfg->upstreams, e))
        return cfg_oom(lc->file, lc->err, lc->errlen);
    if ((cfg->headers.forward &&
         set_or_oom(lc, e, "forward_headers",
                    json_incref(cfg->headers.forward))) ||
        (cfg->headers.add &&
         set_or_oom(lc, e, "add_headers", json_incref(cfg->headers.add))))
        return -1;
    cfg->upstreams_listed = 0;
    return 0;
}

int config_parse_upstreams(const struct loadctx *lc, const json_t *root,
                           struct config *cfg)
{
    struct origin o;
    const json_t *v = cfg_field(lc, root, "", "upstreams", &o);
    char *first;

    if (!v)
        return upstreams_legacy(lc, cfg);
    if (!json_is_array(v) || json_array_size(v) == 0)
        return cfg_bad_value(&o, v, "a non-empty list of upstreams", lc->err,
                             lc->errlen);
    if (json_object_get(json_object_get(root, "upstream"), "base_url"))
        return cfg_fail_at(lc, "upstream.base_url",
                           "with upstreams: each upstream names its own "
                           "base_url (keep upstream: for timeout_s, "
                           "connect_timeout_s, max_connections)");
    cfg->upstreams = json_array();
    if (!cfg->upstreams)
        return cfg_oom(lc->file, lc->err, lc->errlen);
    cfg->upstreams_listed = 1;
    for (size_t i = 0; i < json_array_size(v); i++)
        if (upstream_entry(lc, json_array_get(v, i), i, cfg, cfg->upstreams))
            return -1;
    /* probes and the SDK's upstream_base_url() see the first upstream */
    first = strdup(json_string_value(
        json_object_get(json_array_get(cfg->upstreams, 0), "base_url")));
    if (!first)
        return cfg_oom(lc->file, lc->err, lc->errlen);
    free(cfg->base_url);
    cfg->base_url = first;
    return 0;
}

/* ---- routes ------------------------------------------------------------- */

static int is_glob(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

static int upstream_known(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < json_array_size(cfg->upstreams); i++)
        if (!strcmp(name, json_string_value(json_object_get(
                              json_array_get(cfg->upstreams, i), "name"))))
            return 1;
    return 0;
}

/* A list of non-empty strings at path (aliases, fallbacks, ...). */
static int string_list(const struct loadctx *lc, const json_t *v,
                       const char *path, const char *what)
{
    struct origin o;
    size_t j;
    json_t *x;

    cfg_origin_yaml(lc, path, &o);
    if (!json_is_array(v))
        return cfg_bad_value(&o, v, what, lc->err, lc->errlen);
    json_array_foreach(v, j, x)
    {
        if (!json_is_string(x) || !*json_string_value(x)) {
            char p[320];
            snprintf(p, sizeof p, "%s[%zu]", path, j);
            cfg_origin_yaml(lc, p, &o);
            return cfg_bad_value(&o, x, "a non-empty string", lc->err,
                                 lc->errlen);
        }
    }
    return 0;
}

static int deployment(const struct loadctx *lc, const struct config *cfg,
                      json_t *d, const char *path)
{
    static const char *const keys[] = {"upstream", "model", "weight", NULL};
    struct origin o;
    const json_t *v;
    double w = 1;
    char msg[256];

    cfg_origin_yaml(lc, path, &o);
    if (!json_is_object(d))
        return cfg_bad_value(&o, d, "a mapping with upstream:", lc->err,
                             lc->errlen);
    if (cfg_check_keys(lc, d, path, keys))
        return -1;
    if (!(v = cfg_field(lc, d, path, "upstream", &o)))
        return cfg_fail_at(lc, path, "missing 'upstream:'");
    if (!json_is_string(v))
        return cfg_bad_value(&o, v, "an upstream name", lc->err, lc->errlen);
    if (!upstream_known(cfg, json_string_value(v))) {
        snprintf(msg, sizeof msg, "unknown upstream '%.64s'",
                 json_string_value(v));
        char p[320];
        snprintf(p, sizeof p, "%s.upstream", path);
        return cfg_fail_at(lc, p, msg);
    }
    if ((v = cfg_field(lc, d, path, "model", &o)) &&
        (!json_is_string(v) || !*json_string_value(v)))
        return cfg_bad_value(&o, v, "a model name", lc->err, lc->errlen);
    if ((v = cfg_field(lc, d, path, "weight", &o)) &&
        (cfg_json_to_double(v, &w) || !(w > 0) || w > 1e6))
        return cfg_bad_value(&o, v, "a weight > 0 (at most 1000000)", lc->err,
                             lc->errlen);
    return set_or_oom(lc, d, "weight", json_real(w));
}

/* The names a route answers to: its model and its aliases. */
static size_t route_names(const json_t *r, const char **out, size_t max)
{
    size_t n = 0, j;
    json_t *a;

    out[n++] = json_string_value(json_object_get(r, "model"));
    json_array_foreach(json_object_get(r, "aliases"), j, a)
    {
        if (n < max)
            out[n++] = json_string_value(a);
    }
    return n;
}

static int route_prices(const struct loadctx *lc, json_t *r, const char *path);
static int route_retries(const struct loadctx *lc, json_t *r, const char *path);

static int route_entry(const struct loadctx *lc, const struct config *cfg,
                       json_t *r, size_t i)
{
    static const char *const keys[] = {"model",
                                       "aliases",
                                       "deployments",
                                       "fallbacks",
                                       "fallback_on",
                                       "context_length",
                                       "context_fallbacks",
                                       "input_per_mtok",
                                       "output_per_mtok",
                                       "cached_input_per_mtok",
                                       "retries",
                                       NULL};
    char path[64], p[128];
    struct origin o;
    const json_t *v;
    size_t j;
    json_t *x;
    long long n;

    snprintf(path, sizeof path, "routes[%zu]", i);
    cfg_origin_yaml(lc, path, &o);
    if (!json_is_object(r))
        return cfg_bad_value(&o, r,
                             "a mapping with model: and deployments:", lc->err,
                             lc->errlen);
    if (cfg_check_keys(lc, r, path, keys))
        return -1;
    if (!(v = cfg_field(lc, r, path, "model", &o)))
        return cfg_fail_at(lc, path,
                           "missing 'model:' (the name clients send)");
    if (!json_is_string(v) || !*json_string_value(v))
        return cfg_bad_value(&o, v, "a model name or glob", lc->err,
                             lc->errlen);
    snprintf(p, sizeof p, "%s.aliases", path);
    if ((v = cfg_field(lc, r, path, "aliases", &o)) &&
        string_list(lc, v, p, "a list of model names"))
        return -1;
    json_array_foreach(json_object_get(r, "aliases"), j, x)
    {
        if (is_glob(json_string_value(x))) {
            snprintf(p, sizeof p, "%s.aliases[%zu]", path, j);
            return cfg_fail_at(lc, p, "an alias is an exact name, not a glob");
        }
    }
    if ((v = cfg_field(lc, r, path, "context_length", &o))) {
        if (cfg_value_int(&o, v, 1, LLONG_MAX, &n, lc->err, lc->errlen) ||
            set_or_oom(lc, r, "context_length", json_integer(n)))
            return -1;
    }
    if (route_prices(lc, r, path) || route_retries(lc, r, path))
        return -1;
    if (!(v = cfg_field(lc, r, path, "deployments", &o)))
        return cfg_fail_at(lc, path, "missing 'deployments:'");
    if (!json_is_array(v) || json_array_size(v) == 0)
        return cfg_bad_value(&o, v, "a non-empty list of deployments", lc->err,
                             lc->errlen);
    json_array_foreach(v, j, x)
    {
        snprintf(p, sizeof p, "%s.deployments[%zu]", path, j);
        if (deployment(lc, cfg, x, p))
            return -1;
    }
    static const char *const lists[] = {"fallbacks", "context_fallbacks",
                                        "fallback_on"};
    for (int k = 0; k < 3; k++) {
        snprintf(p, sizeof p, "%s.%s", path, lists[k]);
        if ((v = cfg_field(lc, r, path, lists[k], &o)) &&
            string_list(lc, v, p, "a list of names"))
            return -1;
    }
    json_array_foreach(json_object_get(r, "fallback_on"), j, x)
    {
        const char *c = json_string_value(x);
        size_t k = 0;
        while (fallback_classes[k] && strcmp(fallback_classes[k], c))
            k++;
        if (!fallback_classes[k]) {
            snprintf(p, sizeof p, "%s.fallback_on[%zu]", path, j);
            return cfg_fail_at(lc, p,
                               "unknown class (known: 5xx, timeout, connect, "
                               "all_keys_unavailable, 429, "
                               "context_length_exceeded, 4xx)");
        }
    }
    return 0;
}

/* retries: {max_retries, max_key_switches}: the retry stage's budget for
 * each deployment of this route (over the stage's own), integers 0..15. */
static int route_retries(const struct loadctx *lc, json_t *r, const char *path)
{
    static const char *const keys[] = {"max_retries", "max_key_switches", NULL};
    struct origin o;
    json_t *v = (json_t *)cfg_field(lc, r, path, "retries", &o);
    char p[128];
    long long n;
    if (!v)
        return 0;
    if (!json_is_object(v))
        return cfg_bad_value(&o, v,
                             "a mapping of max_retries, max_key_switches",
                             lc->err, lc->errlen);
    snprintf(p, sizeof p, "%s.retries", path);
    if (cfg_check_keys(lc, v, p, keys))
        return -1;
    for (int k = 0; keys[k]; k++) {
        const json_t *x = cfg_field(lc, v, p, keys[k], &o);
        if (x && (cfg_value_int(&o, x, 0, 15, &n, lc->err, lc->errlen) ||
                  set_or_oom(lc, v, keys[k], json_integer(n))))
            return -1;
    }
    return 0;
}

/* The model table's prices (per million tokens, in the usage stage's
 * currency): input and output together, cached input optional; each a
 * finite number >= 0, kept as a JSON real for the stages. */
static int route_prices(const struct loadctx *lc, json_t *r, const char *path)
{
    static const char *const names[] = {"input_per_mtok", "output_per_mtok",
                                        "cached_input_per_mtok"};
    struct origin o;
    int given = 0;
    for (int k = 0; k < 3; k++) {
        const json_t *v = cfg_field(lc, r, path, names[k], &o);
        double d;
        if (!v)
            continue;
        given |= 1 << k;
        if (cfg_json_to_double(v, &d) != 0 || !(d >= 0) || d > 1e12)
            return cfg_bad_value(&o, v,
                                 "a price per million tokens (a number >= 0)",
                                 lc->err, lc->errlen);
        if (set_or_oom(lc, r, names[k], json_real(d)))
            return -1;
    }
    if (given && (given & 3) != 3) {
        char p[128];
        snprintf(p, sizeof p, "%s.%s", path, names[(given & 1) ? 1 : 0]);
        return cfg_fail_at(lc, p,
                           "a priced model needs both input_per_mtok and "
                           "output_per_mtok");
    }
    return 0;
}

/* Index of the route an exact name (model or alias) belongs to, or -1. */
static long route_by_name(const json_t *routes, const char *name)
{
    size_t i;
    json_t *r;
    json_array_foreach(routes, i, r)
    {
        const char *names[64];
        size_t n = route_names(r, names, 64);
        for (size_t k = 0; k < n; k++)
            if (!is_glob(names[k]) && !strcmp(names[k], name))
                return (long)i;
    }
    return -1;
}

static int route_names_unique(const struct loadctx *lc, const json_t *routes,
                              size_t i)
{
    const char *mine[64], *theirs[64];
    json_t *r = json_array_get(routes, i);
    size_t n = route_names(r, mine, 64);
    char p[128], msg[256];

    for (size_t k = 0; k < n; k++) {
        for (size_t j = 0; j <= i; j++) {
            size_t m = route_names(json_array_get(routes, j), theirs, 64);
            for (size_t l = 0; l < m; l++) {
                if ((j == i && l >= k) || strcmp(mine[k], theirs[l]))
                    continue;
                if (k == 0)
                    snprintf(p, sizeof p, "routes[%zu].model", i);
                else
                    snprintf(p, sizeof p, "routes[%zu].aliases[%zu]", i, k - 1);
                snprintf(msg, sizeof msg,
                         "duplicate model name '%.64s' (routes[%zu] has it)",
                         mine[k], j);
                return cfg_fail_at(lc, p, msg);
            }
        }
    }
    return 0;
}

/* A glob listed before an exact name it matches would take its traffic. */
static int route_glob_shadow(const struct loadctx *lc, const json_t *routes,
                             size_t i)
{
    const char *g =
        json_string_value(json_object_get(json_array_get(routes, i), "model"));
    const char *names[64];
    char p[64], msg[320];

    if (!is_glob(g))
        return 0;
    for (size_t j = i + 1; j < json_array_size(routes); j++) {
        const json_t *r = json_array_get(routes, j);
        size_t n = route_names(r, names, 64);
        for (size_t k = 0; k < n; k++) {
            if (is_glob(names[k]) || fnmatch(g, names[k], 0) != 0)
                continue;
            snprintf(p, sizeof p, "routes[%zu].model", i);
            snprintf(msg, sizeof msg,
                     "the glob '%.64s' shadows '%.64s' listed after it "
                     "(routes[%zu]): list exact names first",
                     g, names[k], j);
            return cfg_fail_at(lc, p, msg);
        }
    }
    return 0;
}

/* fallbacks / context_fallbacks name routes by an exact name. */
static int route_refs(const struct loadctx *lc, const json_t *routes, size_t i)
{
    static const char *const lists[] = {"fallbacks", "context_fallbacks"};
    json_t *r = json_array_get(routes, i), *x;
    char p[128], msg[256];
    size_t j;

    for (int k = 0; k < 2; k++) {
        json_array_foreach(json_object_get(r, lists[k]), j, x)
        {
            if (route_by_name(routes, json_string_value(x)) >= 0)
                continue;
            snprintf(p, sizeof p, "routes[%zu].%s[%zu]", i, lists[k], j);
            snprintf(msg, sizeof msg,
                     "unknown model '%.64s' (a fallback names another "
                     "route's model or alias)",
                     json_string_value(x));
            return cfg_fail_at(lc, p, msg);
        }
    }
    return 0;
}

/* Depth-first walk of the fallbacks graph: a route met again on the
 * current path is a cycle. state: 0 new, 1 on the path, 2 done. */
static long fallback_cycle(const json_t *routes, size_t i, char *state,
                           size_t *via)
{
    size_t j;
    json_t *x;

    state[i] = 1;
    json_array_foreach(json_object_get(json_array_get(routes, i), "fallbacks"),
                       j, x)
    {
        long t = route_by_name(routes, json_string_value(x));
        if (t < 0 || state[t] == 2)
            continue;
        if (state[t] == 1) {
            *via = j;
            return (long)i;
        }
        long c = fallback_cycle(routes, (size_t)t, state, via);
        if (c >= 0)
            return c;
    }
    state[i] = 2;
    return -1;
}

static int route_cycles(const struct loadctx *lc, const json_t *routes)
{
    size_t n = json_array_size(routes), via = 0;
    char *state = calloc(n ? n : 1, 1);
    char p[128], msg[256];

    if (!state)
        return cfg_oom(lc->file, lc->err, lc->errlen);
    for (size_t i = 0; i < n; i++) {
        long c = state[i] ? -1 : fallback_cycle(routes, i, state, &via);
        if (c < 0)
            continue;
        json_t *r = json_array_get(routes, (size_t)c);
        snprintf(p, sizeof p, "routes[%ld].fallbacks[%zu]", c, via);
        snprintf(msg, sizeof msg,
                 "fallback cycle: '%.64s' falls back to '%.64s', which leads "
                 "back to it",
                 json_string_value(json_object_get(r, "model")),
                 json_string_value(
                     json_array_get(json_object_get(r, "fallbacks"), via)));
        free(state);
        return cfg_fail_at(lc, p, msg);
    }
    free(state);
    return 0;
}

int config_parse_routes(const struct loadctx *lc, const json_t *root,
                        struct config *cfg)
{
    struct origin o;
    const json_t *v = cfg_field(lc, root, "", "routes", &o);

    if (!v)
        return 0;
    if (!json_is_array(v))
        return cfg_bad_value(&o, v, "a list of routes", lc->err, lc->errlen);
    cfg->routes = json_deep_copy(v);
    if (!cfg->routes)
        return cfg_oom(lc->file, lc->err, lc->errlen);
    for (size_t i = 0; i < json_array_size(cfg->routes); i++)
        if (route_entry(lc, cfg, json_array_get(cfg->routes, i), i) ||
            route_names_unique(lc, cfg->routes, i))
            return -1;
    for (size_t i = 0; i < json_array_size(cfg->routes); i++)
        if (route_glob_shadow(lc, cfg->routes, i) ||
            route_refs(lc, cfg->routes, i))
            return -1;
    return route_cycles(lc, cfg->routes);
}
