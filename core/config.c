/*
 * config.c - the pipeline file into a validated struct config.
 *
 * yaml_load() gives a JSON tree plus the line of every node; this file
 * checks it section by section (unknown keys are errors: a typo must not be
 * silently ignored), fills defaults, then applies the seed's environment
 * variables, which win over the file. Every message says where:
 *   "x.yaml:12: server.port: expected an integer 0..65535, got 'abc'"
 *   "environment variable PORT: expected an integer 0..65535, got 'abc'"
 * Values of fields whose path mentions a token, key, secret or password are
 * never echoed. Not here: ${VAR} expansion (config_expand.c), reading
 * stage configs (each stage's init does).
 */
#include "config.h"
#include "api.h"

#include "buf.h"
#include "config_priv.h"
#include "yaml_load.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CONFIG_MAX_FILE      (16u << 20)
#define CONFIG_MAX_TIMEOUT_S 86400.0
#define CONFIG_MAX_NAME      64

static const char *const top_keys[] = {
    "server", "upstream",    "upstreams",   "routes", "admin",
    "log",    "docs",        "plugins_dir", "models", "pipeline",
    "state",  "passthrough", NULL};

/* ---- messages ---------------------------------------------------------- */

static int path_is_secret(const char *path)
{
    static const char *const words[] = {"token", "key", "secret", "passw",
                                        NULL};

    for (size_t i = 0; words[i]; i++)
        if (strcasestr(path, words[i]))
            return 1;
    return 0;
}

static void origin_yaml(const struct loadctx *lc, const char *path,
                        struct origin *o)
{
    snprintf(o->where, sizeof o->where, "%s:%d: %s", lc->file,
             yaml_doc_line(lc->doc, path), path);
    o->secret = path_is_secret(path);
}

static void origin_env(const char *var, struct origin *o)
{
    snprintf(o->where, sizeof o->where, "environment variable %s", var);
    o->secret = 0; /* the override variables carry no secrets */
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "a mapping";
    case JSON_ARRAY:
        return "a list";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    default:
        return "null";
    }
}

/* A short, printable rendering of v for "got ..." */
static void describe(const json_t *v, int secret, char *out, size_t n)
{
    const char *s;
    size_t i, k = 0;

    if (json_is_integer(v) && !secret) {
        snprintf(out, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_real(v) && !secret) {
        snprintf(out, n, "%g", json_real_value(v));
    } else if (json_is_string(v) && !secret) {
        s = json_string_value(v);
        if (n < 8) {
            snprintf(out, n, "'...'");
            return;
        }
        out[k++] = '\'';
        for (i = 0; s[i] && k + 5 < n && i < 60; i++) {
            unsigned char c = (unsigned char)s[i];
            out[k++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
        }
        if (s[i])
            out[k++] = '.', out[k++] = '.', out[k++] = '.';
        out[k++] = '\'';
        out[k] = '\0';
    } else if (secret && (json_is_string(v) || json_is_number(v))) {
        snprintf(out, n, "%s (value hidden)", type_name(v));
    } else {
        snprintf(out, n, "%s", type_name(v));
    }
}

static int bad_value(const struct origin *o, const json_t *v,
                     const char *expected, char *err, size_t errlen)
{
    char got[96];

    describe(v, o->secret, got, sizeof got);
    snprintf(err, errlen, "%s: expected %s, got %s", o->where, expected, got);
    return -1;
}

static int fail_at(const struct loadctx *lc, const char *path, const char *msg)
{
    struct origin o;

    origin_yaml(lc, path, &o);
    snprintf(lc->err, lc->errlen, "%s: %s", o.where, msg);
    return -1;
}

static int oom(const char *file, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: out of memory", file);
    return -1;
}

/* ---- value validators: 0 ok, -1 with err set --------------------------- */

/* An integer, or a string holding one (a quoted "${PORT:-8000}"). */
static int json_to_ll(const json_t *v, long long *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_string(v))
        return yaml_parse_int(json_string_value(v), out);
    return -1;
}

static int json_to_double(const json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    if (json_is_string(v))
        return yaml_parse_real(json_string_value(v), out);
    return -1;
}

static int value_int(const struct origin *o, const json_t *v, long long lo,
                     long long hi, long long *out, char *err, size_t errlen)
{
    char what[80];
    long long x;

    if (!json_to_ll(v, &x) && x >= lo && x <= hi) {
        *out = x;
        return 0;
    }
    if (hi == LLONG_MAX && lo == 0)
        snprintf(what, sizeof what, "a non-negative integer");
    else if (hi == LLONG_MAX)
        snprintf(what, sizeof what, "an integer >= %lld", lo);
    else
        snprintf(what, sizeof what, "an integer %lld..%lld", lo, hi);
    return bad_value(o, v, what, err, errlen);
}

/* Seconds (integer or real, > 0) into milliseconds. */
static int value_ms(const struct origin *o, const json_t *v, long *out,
                    char *err, size_t errlen)
{
    double s;

    if (!json_to_double(v, &s) && s > 0 && s <= CONFIG_MAX_TIMEOUT_S &&
        llround(s * 1000.0) >= 1) {
        *out = (long)llround(s * 1000.0);
        return 0;
    }
    return bad_value(o, v, "a number of seconds > 0 (at most 86400)", err,
                     errlen);
}

static int replace_str(char **dst, const char *s)
{
    char *copy = strdup(s);

    if (!copy)
        return -1;
    free(*dst);
    *dst = copy;
    return 0;
}

/* A non-empty string into *dst (replacing it). */
static int value_str(const struct origin *o, const json_t *v, char **dst,
                     char *err, size_t errlen)
{
    if (!json_is_string(v) || !*json_string_value(v))
        return bad_value(o, v, "a non-empty string", err, errlen);
    if (replace_str(dst, json_string_value(v)))
        return oom(o->where, err, errlen);
    return 0;
}

/* [a-z0-9_-], 1..64 characters: plugin and stage names. */
static int name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > CONFIG_MAX_NAME)
        return 0;
    for (; *s; s++)
        if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) ||
              *s == '_' || *s == '-'))
            return 0;
    return 1;
}

static int value_name(const struct origin *o, const json_t *v, char **dst,
                      char *err, size_t errlen)
{
    if (!json_is_string(v) || !name_ok(json_string_value(v)))
        return bad_value(o, v, "a name of 1..64 characters [a-z0-9_-]", err,
                         errlen);
    if (replace_str(dst, json_string_value(v)))
        return oom(o->where, err, errlen);
    return 0;
}

static int value_base_url(const struct origin *o, const json_t *v, char **dst,
                          char *err, size_t errlen)
{
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    size_t scheme, n;
    char *copy;

    if (!s)
        goto bad;
    if (!strncasecmp(s, "http://", 7))
        scheme = 7;
    else if (!strncasecmp(s, "https://", 8))
        scheme = 8;
    else
        goto bad;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            goto bad;
    n = strlen(s);
    while (n > scheme && s[n - 1] == '/')
        n--;
    if (n == scheme || s[scheme] == '/')
        goto bad;
    copy = strndup(s, n);
    if (!copy)
        return oom(o->where, err, errlen);
    free(*dst);
    *dst = copy;
    return 0;
bad:
    return bad_value(o, v, "an http:// or https:// URL", err, errlen);
}

/* One of `choices` (any case); stores the canonical spelling. */
static int value_choice(const struct origin *o, const json_t *v,
                        const char *const *choices, char **dst, char *err,
                        size_t errlen)
{
    char what[128] = "one of ";
    size_t i;

    for (i = 0; choices[i] && json_is_string(v); i++) {
        if (strcasecmp(json_string_value(v), choices[i]))
            continue;
        if (replace_str(dst, choices[i]))
            return oom(o->where, err, errlen);
        return 0;
    }
    for (i = 0; choices[i]; i++) {
        strncat(what, choices[i], sizeof what - strlen(what) - 1);
        if (choices[i + 1])
            strncat(what, ", ", sizeof what - strlen(what) - 1);
    }
    return bad_value(o, v, what, err, errlen);
}

static int value_bool(const struct origin *o, const json_t *v, int *out,
                      char *err, size_t errlen)
{
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (json_is_string(v) && (!strcasecmp(json_string_value(v), "true") ||
                              !strcasecmp(json_string_value(v), "false"))) {
        *out = !strcasecmp(json_string_value(v), "true");
        return 0;
    }
    return bad_value(o, v, "true or false", err, errlen);
}

static const char *const log_levels[] = {"DEBUG", "INFO",  "WARNING",
                                         "WARN",  "ERROR", NULL};
static const char *const log_formats[] = {"auto", "json", "text", NULL};

/* "host:port", port 0..65535 ("[::1]:9001" works: the last ':' counts). */
static int value_listen(const struct origin *o, const json_t *v, char **dst,
                        char *err, size_t errlen)
{
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    const char *colon = s ? strrchr(s, ':') : NULL;
    long long port;

    if (!colon || colon == s || yaml_parse_int(colon + 1, &port) ||
        colon[1] == '-' || colon[1] == '+' || port > 65535)
        return bad_value(o, v, "a \"host:port\" address", err, errlen);
    return value_str(o, v, dst, err, errlen);
}

/* ---- sections ---------------------------------------------------------- */

static int check_keys(const struct loadctx *lc, const json_t *obj,
                      const char *path, const char *const *valid)
{
    const char *key;
    json_t *val;
    char msg[384], kpath[256];

    json_object_foreach((json_t *)obj, key, val)
    {
        size_t i;

        for (i = 0; valid[i] && strcmp(key, valid[i]); i++)
            ;
        if (valid[i])
            continue;
        snprintf(msg, sizeof msg,
                 "unknown %skey (valid keys:", *path ? "" : "top-level ");
        for (i = 0; valid[i]; i++) {
            strncat(msg, i ? ", " : " ", sizeof msg - strlen(msg) - 1);
            strncat(msg, valid[i], sizeof msg - strlen(msg) - 1);
        }
        strncat(msg, ")", sizeof msg - strlen(msg) - 1);
        snprintf(kpath, sizeof kpath, "%s%s%s", path, *path ? "." : "", key);
        return fail_at(lc, kpath, msg);
    }
    return 0;
}

/* root[name] as a mapping with only `valid` keys; *out NULL when absent. */
static int section_get(const struct loadctx *lc, const json_t *root,
                       const char *name, const char *const *valid,
                       const json_t **out)
{
    const json_t *s = json_object_get(root, name);
    struct origin o;

    *out = NULL;
    if (!s || json_is_null(s))
        return 0;
    if (!json_is_object(s)) {
        origin_yaml(lc, name, &o);
        return bad_value(&o, s, "a mapping", lc->err, lc->errlen);
    }
    *out = s;
    return check_keys(lc, s, name, valid);
}

/* obj[key] unless absent or null, with its origin. */
static const json_t *field(const struct loadctx *lc, const json_t *obj,
                           const char *section, const char *key,
                           struct origin *o)
{
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    char path[256];

    if (!v || json_is_null(v))
        return NULL;
    snprintf(path, sizeof path, "%s%s%s", section, *section ? "." : "", key);
    origin_yaml(lc, path, o);
    return v;
}

/* A list of non-empty strings (server.cors.*). */
static int value_str_list(const struct origin *o, const json_t *v, char *err,
                          size_t errlen)
{
    size_t i;
    const json_t *e;
    if (!json_is_array(v) || !json_array_size(v))
        return bad_value(o, v, "a list of strings", err, errlen);
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e) || !json_string_length(e))
            return bad_value(o, v, "a list of strings", err, errlen);
    }
    return 0;
}

/* server.cors: {allow_origins: [...], allow_headers: [...], max_age: s}:
 * off unless given; allow_origins is required. */
static int parse_cors(const struct loadctx *lc, const json_t *c,
                      const struct origin *co, struct config *cfg)
{
    static const char *const keys[] = {"allow_origins", "allow_headers",
                                       "max_age", NULL};
    const json_t *v;
    struct origin o;
    long long n;
    if (!json_is_object(c))
        return bad_value(co, c, "a mapping with allow_origins:", lc->err,
                         lc->errlen);
    if (check_keys(lc, c, "server.cors", keys))
        return -1;
    if (!(v = field(lc, c, "server.cors", "allow_origins", &o)))
        return fail_at(lc, "server.cors",
                       "missing 'allow_origins:' (the origins browsers may "
                       "call from, or \"*\")");
    if (value_str_list(&o, v, lc->err, lc->errlen))
        return -1;
    cfg->cors_origins = json_deep_copy(v);
    if ((v = field(lc, c, "server.cors", "allow_headers", &o))) {
        size_t i, hl;
        const json_t *e;
        buf_t h;
        if (value_str_list(&o, v, lc->err, lc->errlen))
            return -1;
        buf_init(&h);
        json_array_foreach(v, i, e)
        {
            buf_puts(&h, i ? ", " : "");
            buf_puts(&h, json_string_value(e));
        }
        if (!(cfg->cors_headers = buf_steal(&h, &hl)))
            return oom(lc->file, lc->err, lc->errlen);
    } /* else the preflight's Access-Control-Request-Headers are allowed
         (the SDKs send X-Stainless-* headers that vary by version) */
    if ((v = field(lc, c, "server.cors", "max_age", &o))) {
        if (value_int(&o, v, 0, 86400, &n, lc->err, lc->errlen))
            return -1;
        cfg->cors_max_age = (long)n;
    }
    return cfg->cors_origins ? 0 : oom(lc->file, lc->err, lc->errlen);
}

static int parse_server(const struct loadctx *lc, const json_t *root,
                        struct config *cfg)
{
    static const char *const keys[] = {"host",
                                       "port",
                                       "threads",
                                       "max_body_bytes",
                                       "request_timeout_s",
                                       "max_connections",
                                       "max_stream_s",
                                       "shutdown_grace_s",
                                       "cors",
                                       NULL};
    const json_t *s, *v;
    struct origin o;
    long long n;

    if (section_get(lc, root, "server", keys, &s))
        return -1;
    if ((v = field(lc, s, "server", "host", &o)) &&
        value_str(&o, v, &cfg->host, lc->err, lc->errlen))
        return -1;
    if ((v = field(lc, s, "server", "port", &o))) {
        if (value_int(&o, v, 0, 65535, &n, lc->err, lc->errlen))
            return -1;
        cfg->port = (int)n;
    }
    if ((v = field(lc, s, "server", "threads", &o))) {
        if (value_int(&o, v, 0, 256, &n, lc->err, lc->errlen))
            return -1;
        cfg->threads = (int)n;
    }
    if ((v = field(lc, s, "server", "max_body_bytes", &o))) {
        if (value_int(&o, v, 1024, 1LL << 30, &n, lc->err, lc->errlen))
            return -1;
        cfg->max_body_bytes = (size_t)n;
    }
    if ((v = field(lc, s, "server", "request_timeout_s", &o))) {
        if (value_int(&o, v, 1, 3600, &n, lc->err, lc->errlen))
            return -1;
        cfg->request_timeout_ms = (long)n * 1000;
    }
    if ((v = field(lc, s, "server", "max_connections", &o))) {
        if (value_int(&o, v, 1, 1000000, &n, lc->err, lc->errlen))
            return -1;
        cfg->max_client_connections = (int)n;
    }
    if ((v = field(lc, s, "server", "max_stream_s", &o)) &&
        value_ms(&o, v, &cfg->max_stream_ms, lc->err, lc->errlen))
        return -1;
    if ((v = field(lc, s, "server", "shutdown_grace_s", &o)) &&
        value_ms(&o, v, &cfg->shutdown_grace_ms, lc->err, lc->errlen))
        return -1;
    if ((v = field(lc, s, "server", "cors", &o)))
        return parse_cors(lc, v, &o, cfg);
    return 0;
}

/* ca_file: and verify: of one upstream mapping `s` (named `sect` in
 * errors). The CA file must be readable now: a typo is a config error, not
 * a 502 on the first request. */
int cfg_upstream_tls(const struct loadctx *lc, const json_t *s,
                     const char *sect, struct upstream_tls *tls)
{
    const json_t *v;
    struct origin o;
    FILE *f;

    if ((v = field(lc, s, sect, "verify", &o)) &&
        value_bool(&o, v, &tls->verify, lc->err, lc->errlen))
        return -1;
    if (!(v = field(lc, s, sect, "ca_file", &o)))
        return 0;
    if (value_str(&o, v, &tls->ca_file, lc->err, lc->errlen))
        return -1;
    f = fopen(tls->ca_file, "r");
    if (!f) {
        snprintf(lc->err, lc->errlen, "%s: cannot open '%s': %s", o.where,
                 tls->ca_file, strerror(errno));
        return -1;
    }
    fclose(f);
    return 0;
}

/* A header name sluice never takes from the client or the operator: the
 * credential is the keyring's, the framing and host are libcurl's. */
static int header_reserved(const char *name)
{
    static const char *const no[] = {"authorization",
                                     "x-api-key",
                                     "host",
                                     "content-length",
                                     "transfer-encoding",
                                     "connection",
                                     "upgrade",
                                     "keep-alive",
                                     "te",
                                     "trailer",
                                     "cookie",
                                     "proxy-authorization",
                                     "proxy-connection",
                                     "expect",
                                     NULL};
    for (const char *const *p = no; *p; p++)
        if (!strcasecmp(name, *p))
            return 1;
    return 0;
}

static int header_name_ok(const struct loadctx *lc, const char *path,
                          const char *name)
{
    char msg[200];
    if (!*name || strpbrk(name, ": \t\r\n")) {
        snprintf(msg, sizeof msg, "'%.60s' is not a header name", name);
        return fail_at(lc, path, msg);
    }
    if (header_reserved(name)) {
        snprintf(msg, sizeof msg,
                 "'%.60s' is never passed upstream (the key is the "
                 "keyring's, framing and host are sluice's)",
                 name);
        return fail_at(lc, path, msg);
    }
    return 0;
}

/* forward_headers: [names] and add_headers: {name: value} of one upstream
 * mapping `s` (named `sect` in errors). */
int cfg_upstream_headers(const struct loadctx *lc, const json_t *s,
                         const char *sect, struct upstream_headers *h)
{
    const json_t *v, *e;
    struct origin o;
    char path[128];
    size_t i;
    const char *k;
    snprintf(path, sizeof path, "%s.forward_headers", sect);
    if ((v = field(lc, s, sect, "forward_headers", &o))) {
        if (!json_is_array(v))
            return bad_value(&o, v, "a list of header names", lc->err,
                             lc->errlen);
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e))
                return bad_value(&o, v, "a list of header names", lc->err,
                                 lc->errlen);
            if (header_name_ok(lc, path, json_string_value(e)))
                return -1;
        }
        h->forward = json_deep_copy(v);
    }
    snprintf(path, sizeof path, "%s.add_headers", sect);
    if ((v = field(lc, s, sect, "add_headers", &o))) {
        if (!json_is_object(v))
            return bad_value(&o, v, "a mapping of header: value", lc->err,
                             lc->errlen);
        json_object_foreach((json_t *)v, k, e)
        {
            if (!json_is_string(e) || strpbrk(json_string_value(e), "\r\n"))
                return bad_value(&o, v, "a mapping of header: value", lc->err,
                                 lc->errlen);
            if (header_name_ok(lc, path, k))
                return -1;
        }
        h->add = json_deep_copy(v);
    }
    return 0;
}

static int parse_upstream(const struct loadctx *lc, const json_t *root,
                          struct config *cfg)
{
    static const char *const keys[] = {
        "base_url",        "timeout_s",   "connect_timeout_s",
        "max_connections", "ca_file",     "verify",
        "forward_headers", "add_headers", "keepalive_s",
        "client",          NULL};
    static const char *const clients[] = {"auto", "curl", NULL};
    const json_t *s, *v;
    struct origin o;
    long long n;

    if (section_get(lc, root, "upstream", keys, &s))
        return -1;
    if ((v = field(lc, s, "upstream", "base_url", &o)) &&
        value_base_url(&o, v, &cfg->base_url, lc->err, lc->errlen))
        return -1;
    if ((v = field(lc, s, "upstream", "timeout_s", &o)) &&
        value_ms(&o, v, &cfg->timeout_ms, lc->err, lc->errlen))
        return -1;
    if ((v = field(lc, s, "upstream", "connect_timeout_s", &o)) &&
        value_ms(&o, v, &cfg->connect_timeout_ms, lc->err, lc->errlen))
        return -1;
    if ((v = field(lc, s, "upstream", "max_connections", &o))) {
        if (value_int(&o, v, 1, 65536, &n, lc->err, lc->errlen))
            return -1;
        cfg->max_connections = (int)n;
    }
    if ((v = field(lc, s, "upstream", "keepalive_s", &o)) &&
        value_ms(&o, v, &cfg->keepalive_ms, lc->err, lc->errlen))
        return -1;
    if ((v = field(lc, s, "upstream", "client", &o)) &&
        value_choice(&o, v, clients, &cfg->upstream_client, lc->err,
                     lc->errlen))
        return -1;
    if (cfg_upstream_headers(lc, s, "upstream", &cfg->headers))
        return -1;
    return cfg_upstream_tls(lc, s, "upstream", &cfg->tls);
}

static int parse_admin(const struct loadctx *lc, const json_t *root,
                       struct config *cfg)
{
    static const char *const keys[] = {"token_file", "listen",
                                       "allow_config_path", NULL};
    const json_t *s, *v;
    struct origin o;

    if (section_get(lc, root, "admin", keys, &s))
        return -1;
    if ((v = field(lc, s, "admin", "allow_config_path", &o)) &&
        value_bool(&o, v, &cfg->admin_allow_config_path, lc->err, lc->errlen))
        return -1;
    if ((v = field(lc, s, "admin", "token_file", &o)) &&
        value_str(&o, v, &cfg->admin_token_file, lc->err, lc->errlen))
        return -1;
    if ((v = field(lc, s, "admin", "listen", &o)) &&
        value_listen(&o, v, &cfg->admin_listen, lc->err, lc->errlen))
        return -1;
    return 0;
}

static int parse_log(const struct loadctx *lc, const json_t *root,
                     struct config *cfg)
{
    static const char *const keys[] = {"level", "file", "format", NULL};
    const json_t *s, *v;
    struct origin o;

    if (section_get(lc, root, "log", keys, &s))
        return -1;
    if ((v = field(lc, s, "log", "level", &o)) &&
        value_choice(&o, v, log_levels, &cfg->log_level, lc->err, lc->errlen))
        return -1;
    if ((v = field(lc, s, "log", "file", &o)) &&
        value_str(&o, v, &cfg->log_file, lc->err, lc->errlen))
        return -1;
    if ((v = field(lc, s, "log", "format", &o)) &&
        value_choice(&o, v, log_formats, &cfg->log_format, lc->err, lc->errlen))
        return -1;
    return 0;
}

/* A base URL for the docs pages' assets: http(s)://... or an absolute
 * path, without characters that would break out of an HTML attribute. */
static int value_assets_url(const struct origin *o, const json_t *v, char **dst,
                            char *err, size_t errlen)
{
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    size_t n;

    if (!s || !(!strncasecmp(s, "http://", 7) ||
                !strncasecmp(s, "https://", 8) || s[0] == '/'))
        goto bad;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || strchr("\"'<>`\\", *p))
            goto bad;
    if (value_str(o, v, dst, err, errlen))
        return -1;
    n = strlen(*dst);
    while (n > 1 && (*dst)[n - 1] == '/')
        (*dst)[--n] = '\0';
    return 0;
bad:
    return bad_value(o, v,
                     "an http(s):// URL or an absolute path (the folder "
                     "holding swagger-ui-bundle.js, swagger-ui.css and "
                     "redoc.standalone.js)",
                     err, errlen);
}

static int parse_docs(const struct loadctx *lc, const json_t *root,
                      struct config *cfg)
{
    static const char *const keys[] = {"enabled", "assets_url", NULL};
    const json_t *s, *v;
    struct origin o;

    if (section_get(lc, root, "docs", keys, &s))
        return -1;
    if ((v = field(lc, s, "docs", "enabled", &o))) {
        const char *t = json_string_value(v); /* "${DOCS:-true}" */
        if (json_is_boolean(v))
            cfg->docs_enabled = json_is_true(v);
        else if (t && (!strcasecmp(t, "true") || !strcasecmp(t, "false")))
            cfg->docs_enabled = !strcasecmp(t, "true");
        else
            return bad_value(&o, v, "true or false", lc->err, lc->errlen);
    }
    if ((v = field(lc, s, "docs", "assets_url", &o)) &&
        value_assets_url(&o, v, &cfg->docs_assets_url, lc->err, lc->errlen))
        return -1;
    return 0;
}

static const char *const state_backends[] = {"local", "redis", "memory", NULL};
static const char *const state_unavailable[] = {"open", "closed", NULL};

/* A redis:// URL with a host; the rest is checked when connecting. */
static int value_redis_url(const struct origin *o, const json_t *v, char **dst,
                           char *err, size_t errlen)
{
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (!s || strncasecmp(s, "redis://", 8) || !s[8] || s[8] == '/' ||
        strpbrk(s, " \t\r\n"))
        return bad_value(o, v, "a redis://host:port/db URL", err, errlen);
    return value_str(o, v, dst, err, errlen);
}

static int parse_state(const struct loadctx *lc, const json_t *root,
                       struct config *cfg)
{
    static const char *const keys[] = {"backend",
                                       "path",
                                       "reset_on_corrupt",
                                       "url",
                                       "password_file",
                                       "prefix",
                                       "timeout_ms",
                                       "on_unavailable",
                                       "required",
                                       "instance",
                                       NULL};
    struct state_conf *sc = &cfg->state;
    const json_t *s, *v;
    struct origin o;
    long long n;
    char *choice = NULL;

    if (section_get(lc, root, "state", keys, &s))
        return -1;
    if ((v = field(lc, s, "state", "backend", &o)) &&
        value_choice(&o, v, state_backends, &sc->backend, lc->err, lc->errlen))
        return -1;
    if ((v = field(lc, s, "state", "path", &o)) &&
        value_str(&o, v, &sc->path, lc->err, lc->errlen))
        return -1;
    if ((v = field(lc, s, "state", "reset_on_corrupt", &o)) &&
        value_bool(&o, v, &sc->reset_on_corrupt, lc->err, lc->errlen))
        return -1;
    if ((v = field(lc, s, "state", "url", &o)) &&
        value_redis_url(&o, v, &sc->url, lc->err, lc->errlen))
        return -1;
    if ((v = field(lc, s, "state", "password_file", &o)) &&
        value_str(&o, v, &sc->password_file, lc->err, lc->errlen))
        return -1;
    if ((v = field(lc, s, "state", "prefix", &o)) &&
        value_str(&o, v, &sc->prefix, lc->err, lc->errlen))
        return -1;
    if ((v = field(lc, s, "state", "instance", &o)) &&
        value_str(&o, v, &sc->instance, lc->err, lc->errlen))
        return -1;
    if ((v = field(lc, s, "state", "timeout_ms", &o))) {
        if (value_int(&o, v, 1, 60000, &n, lc->err, lc->errlen))
            return -1;
        sc->timeout_ms = (long)n;
    }
    if ((v = field(lc, s, "state", "required", &o)) &&
        value_bool(&o, v, &sc->required, lc->err, lc->errlen))
        return -1;
    if ((v = field(lc, s, "state", "on_unavailable", &o))) {
        if (value_choice(&o, v, state_unavailable, &choice, lc->err,
                         lc->errlen))
            return -1;
        sc->fail_closed = !strcmp(choice, "closed");
        free(choice);
    }
    if (!strcmp(sc->backend, "redis") && !sc->url)
        return fail_at(lc, "state.url",
                       "required with backend: redis "
                       "(e.g. \"redis://127.0.0.1:6379/0\")");
    return 0;
}

/* passthrough: true|false (default false). */
static int parse_passthrough(const struct loadctx *lc, const json_t *root,
                             struct config *cfg)
{
    const json_t *v;
    struct origin o;
    if (!(v = field(lc, root, "", "passthrough", &o)))
        return 0;
    return value_bool(&o, v, &cfg->passthrough, lc->err, lc->errlen);
}

static int parse_plugins_dir(const struct loadctx *lc, const json_t *root,
                             struct config *cfg)
{
    const json_t *v;
    struct origin o;
    size_t n;

    if (!(v = field(lc, root, "", "plugins_dir", &o)))
        return 0;
    if (value_str(&o, v, &cfg->plugins_dir, lc->err, lc->errlen))
        return -1;
    n = strlen(cfg->plugins_dir);
    while (n > 1 && cfg->plugins_dir[n - 1] == '/')
        cfg->plugins_dir[--n] = '\0';
    return 0;
}

/* ---- models ------------------------------------------------------------ */

static int parse_model(const struct loadctx *lc, json_t *models, size_t i)
{
    json_t *m = json_array_get(models, i);
    const json_t *v;
    char path[64], msg[128];
    struct origin o;
    long long n;

    snprintf(path, sizeof path, "models[%zu]", i);
    origin_yaml(lc, path, &o);
    if (!json_is_object(m))
        return bad_value(&o, m,
                         "a mapping with id: and context_length:", lc->err,
                         lc->errlen);
    if (!(v = field(lc, m, path, "id", &o)))
        return fail_at(lc, path, "missing 'id:' (the model name)");
    if (!json_is_string(v) || !*json_string_value(v))
        return bad_value(&o, v, "a non-empty string", lc->err, lc->errlen);
    for (size_t j = 0; j < i; j++) {
        json_t *other = json_object_get(json_array_get(models, j), "id");

        if (!json_equal(other, (json_t *)v))
            continue;
        snprintf(path, sizeof path, "models[%zu].id", i);
        snprintf(msg, sizeof msg, "duplicate model id '%.64s' (models[%zu])",
                 json_string_value(v), j);
        return fail_at(lc, path, msg);
    }
    if (!(v = field(lc, m, path, "context_length", &o)))
        return fail_at(lc, path, "missing 'context_length:' (in tokens)");
    if (value_int(&o, v, 1, LLONG_MAX, &n, lc->err, lc->errlen))
        return -1;
    /* A quoted "128000" becomes a number: readers need not care. */
    if (json_object_set_new(m, "context_length", json_integer(n)))
        return oom(lc->file, lc->err, lc->errlen);
    return 0;
}

static int parse_models(const struct loadctx *lc, const json_t *root,
                        struct config *cfg)
{
    const json_t *v;
    struct origin o;

    if (!(v = field(lc, root, "", "models", &o)))
        return 0;
    if (!json_is_array(v))
        return bad_value(&o, v, "a list of {id, context_length}", lc->err,
                         lc->errlen);
    cfg->models = json_deep_copy(v);
    if (!cfg->models)
        return oom(lc->file, lc->err, lc->errlen);
    for (size_t i = 0; i < json_array_size(cfg->models); i++)
        if (parse_model(lc, cfg->models, i))
            return -1;
    return 0;
}

/* ---- pipeline ---------------------------------------------------------- */

static int stage_config(const struct loadctx *lc, const json_t *e,
                        const char *path, struct stage_conf *st)
{
    const json_t *v;
    struct origin o;

    v = field(lc, e, path, "config", &o);
    if (v && !json_is_object(v))
        return bad_value(&o, v, "a mapping", lc->err, lc->errlen);
    st->config = v ? json_deep_copy(v) : json_object();
    if (!st->config)
        return oom(lc->file, lc->err, lc->errlen);
    return 0;
}

static int stage_path(const struct loadctx *lc, const json_t *e,
                      const char *path, const char *plugins_dir,
                      struct stage_conf *st)
{
    const json_t *v;
    struct origin o;
    size_t n;

    if ((v = field(lc, e, path, "path", &o)))
        return value_str(&o, v, &st->path, lc->err, lc->errlen);
    n = strlen(plugins_dir) + strlen(st->plugin) + 5;
    st->path = malloc(n);
    if (!st->path)
        return oom(lc->file, lc->err, lc->errlen);
    snprintf(st->path, n, "%s/%s.so", plugins_dir, st->plugin);
    return 0;
}

/* `routes: [chat, embeddings]` (or ["*"]): the api.h routes the stage's
 * hooks see, overriding its descriptor. */
static int stage_routes(const struct loadctx *lc, const json_t *e,
                        const char *path, struct stage_conf *st)
{
    struct origin o;
    const json_t *v = field(lc, e, path, "routes", &o);
    size_t i;
    const json_t *r;
    if (!v)
        return 0;
    if (!json_is_array(v) || !json_array_size(v))
        return bad_value(&o, v, "a list of route names", lc->err, lc->errlen);
    json_array_foreach(v, i, r)
    {
        const char *n = json_string_value(r);
        if (!n || (strcmp(n, "*") && !api_by_name(n))) {
            char msg[400];
            snprintf(msg, sizeof msg,
                     "routes: unknown route '%.40s' (known: "
                     "*, %s)",
                     n ? n : "?", api_names());
            return fail_at(lc, path, msg);
        }
    }
    st->routes = json_deep_copy(v);
    return st->routes ? 0 : oom(lc->file, lc->err, lc->errlen);
}

static int parse_stage(const struct loadctx *lc, const json_t *e, size_t i,
                       const char *plugins_dir, struct stage_conf *st)
{
    static const char *const keys[] = {"plugin", "name",   "path",
                                       "config", "routes", NULL};
    const json_t *v;
    struct origin o;
    char path[64];

    snprintf(path, sizeof path, "pipeline[%zu]", i);
    st->line = yaml_doc_line(lc->doc, path);
    origin_yaml(lc, path, &o);
    if (!json_is_object(e))
        return bad_value(&o, e, "a mapping with plugin:", lc->err, lc->errlen);
    if (check_keys(lc, e, path, keys))
        return -1;
    if (!(v = field(lc, e, path, "plugin", &o)))
        return fail_at(lc, path, "missing 'plugin:' (the plugin to load)");
    if (value_name(&o, v, &st->plugin, lc->err, lc->errlen))
        return -1;
    if ((v = field(lc, e, path, "name", &o))) {
        if (value_name(&o, v, &st->name, lc->err, lc->errlen))
            return -1;
    } else if (replace_str(&st->name, st->plugin)) {
        return oom(lc->file, lc->err, lc->errlen);
    }
    if (stage_path(lc, e, path, plugins_dir, st))
        return -1;
    if (stage_routes(lc, e, path, st))
        return -1;
    return stage_config(lc, e, path, st);
}

static int check_unique_names(const struct loadctx *lc,
                              const struct config *cfg, size_t i)
{
    const struct stage_conf *st = &cfg->stages[i];
    char path[64], msg[192];
    const json_t *e;

    for (size_t j = 0; j < i; j++) {
        if (strcmp(cfg->stages[j].name, st->name))
            continue;
        e = json_array_get(json_object_get(lc->doc->root, "pipeline"), i);
        snprintf(path, sizeof path, "pipeline[%zu]%s", i,
                 json_object_get(e, "name") ? ".name" : "");
        snprintf(msg, sizeof msg,
                 "duplicate stage name '%s' (pipeline[%zu], line %d, has it "
                 "too; give one a different name:)",
                 st->name, j, cfg->stages[j].line);
        return fail_at(lc, path, msg);
    }
    return 0;
}

static int parse_pipeline(const struct loadctx *lc, const json_t *root,
                          struct config *cfg)
{
    const json_t *v;
    struct origin o;
    size_t n;

    if (!(v = field(lc, root, "", "pipeline", &o)))
        return 0;
    if (!json_is_array(v))
        return bad_value(&o, v, "a list of stages", lc->err, lc->errlen);
    n = json_array_size(v);
    if (n == 0)
        return 0;
    cfg->stages = calloc(n, sizeof *cfg->stages);
    if (!cfg->stages)
        return oom(lc->file, lc->err, lc->errlen);
    for (size_t i = 0; i < n; i++) {
        cfg->nstages = i + 1; /* so config_free sees a half-built stage */
        if (parse_stage(lc, json_array_get(v, i), i, cfg->plugins_dir,
                        &cfg->stages[i]) ||
            check_unique_names(lc, cfg, i))
            return -1;
    }
    return 0;
}

/* ---- environment ------------------------------------------------------- */

static const char *env_get(const char *name)
{
    const char *v = getenv(name);

    return v && *v ? v : NULL;
}

/* $var as a JSON string for the validators; NULL when unset or empty. */
static json_t *env_json(const char *var, struct origin *o)
{
    const char *s = env_get(var);

    if (!s)
        return NULL;
    origin_env(var, o);
    return json_string_nocheck(s);
}

static int env_int(const char *var, long long lo, long long hi, long long *out,
                   int *set, char *err, size_t errlen)
{
    struct origin o;
    json_t *v = env_json(var, &o);
    int rc;

    *set = v != NULL;
    if (!v)
        return 0;
    rc = value_int(&o, v, lo, hi, out, err, errlen);
    json_decref(v);
    return rc;
}

/* MEGALLM_MAX_RETRIES / MAX_KEY_RETRIES into every `retry` stage. */
static int env_retry_stages(struct config *cfg, const char *var,
                            const char *key, char *err, size_t errlen)
{
    long long n;
    int set;

    if (env_int(var, 0, LLONG_MAX, &n, &set, err, errlen))
        return -1;
    for (size_t i = 0; set && i < cfg->nstages; i++) {
        if (strcmp(cfg->stages[i].plugin, "retry"))
            continue;
        if (json_object_set_new(cfg->stages[i].config, key, json_integer(n)))
            return oom(var, err, errlen);
    }
    return 0;
}

static int env_str(const char *var, char **dst,
                   int (*check)(const struct origin *, const json_t *, char **,
                                char *, size_t),
                   char *err, size_t errlen)
{
    struct origin o;
    json_t *v = env_json(var, &o);
    int rc;

    if (!v)
        return 0;
    rc = check(&o, v, dst, err, errlen);
    json_decref(v);
    return rc;
}

static int value_log_level(const struct origin *o, const json_t *v, char **dst,
                           char *err, size_t errlen)
{
    return value_choice(o, v, log_levels, dst, err, errlen);
}

static int env_timeout(struct config *cfg, char *err, size_t errlen)
{
    struct origin o;
    json_t *v = env_json("MEGALLM_TIMEOUT", &o);
    int rc;

    if (!v)
        return 0;
    rc = value_ms(&o, v, &cfg->timeout_ms, err, errlen);
    json_decref(v);
    return rc;
}

static int config_apply_env(struct config *cfg, char *err, size_t errlen)
{
    long long port = 0;
    int set = 0;

    if (env_str("HOST", &cfg->host, value_str, err, errlen) ||
        env_int("PORT", 0, 65535, &port, &set, err, errlen) ||
        env_str("MEGALLM_BASE_URL", &cfg->base_url, value_base_url, err,
                errlen) ||
        env_timeout(cfg, err, errlen) ||
        env_str("LOG_LEVEL", &cfg->log_level, value_log_level, err, errlen) ||
        env_retry_stages(cfg, "MEGALLM_MAX_RETRIES", "max_retries", err,
                         errlen) ||
        env_retry_stages(cfg, "MAX_KEY_RETRIES", "max_key_switches", err,
                         errlen))
        return -1;
    if (set)
        cfg->port = (int)port;
    return 0;
}

/* ---- load / free ------------------------------------------------------- */

static int config_defaults(struct config *cfg, const char *file)
{
    cfg->port = 8000;
    cfg->threads = 0;
    cfg->max_body_bytes = 4u << 20;
    cfg->request_timeout_ms = 30000;
    cfg->max_client_connections = 10000;
    cfg->max_stream_ms = 1800000;
    cfg->shutdown_grace_ms = 10000;
    cfg->keepalive_ms = 30000;
    cfg->timeout_ms = 120000;
    cfg->connect_timeout_ms = 10000;
    cfg->max_connections = 256;
    cfg->cors_max_age = 600;
    cfg->tls.verify = 1;
    cfg->docs_enabled = 1;
    cfg->file = strdup(file);
    cfg->host = strdup("0.0.0.0");
    cfg->base_url = strdup("https://ai.megallm.io/v1");
    cfg->log_level = strdup("INFO");
    cfg->log_format = strdup("auto");
    cfg->upstream_client = strdup("auto");
    cfg->plugins_dir = strdup("build/plugins");
    cfg->state.backend = strdup("local");
    cfg->state.path = strdup("data/state.db");
    cfg->state.prefix = strdup("sluice:");
    cfg->state.timeout_ms = 100;
    return cfg->file && cfg->host && cfg->base_url && cfg->log_level &&
                   cfg->log_format && cfg->upstream_client &&
                   cfg->plugins_dir && cfg->state.backend && cfg->state.path &&
                   cfg->state.prefix
               ? 0
               : -1;
}

static int config_parse(const struct loadctx *lc, struct config *cfg)
{
    const json_t *root = lc->doc->root;
    struct origin o;

    if (!json_is_object(root)) {
        snprintf(o.where, sizeof o.where, "%s:%d", lc->file,
                 yaml_doc_line(lc->doc, ""));
        o.secret = 0;
        return bad_value(&o, root,
                         "a mapping at the top level (server:, "
                         "upstream:, pipeline:, ...)",
                         lc->err, lc->errlen);
    }
    if (check_keys(lc, root, "", top_keys) || parse_server(lc, root, cfg) ||
        parse_upstream(lc, root, cfg) || parse_admin(lc, root, cfg) ||
        parse_log(lc, root, cfg) || parse_docs(lc, root, cfg) ||
        parse_plugins_dir(lc, root, cfg) || parse_passthrough(lc, root, cfg) ||
        parse_models(lc, root, cfg) || parse_state(lc, root, cfg) ||
        parse_pipeline(lc, root, cfg))
        return -1;
    return 0;
}

int config_load_string(const char *text, size_t len, const char *name,
                       struct config **out, char *err, size_t errlen)
{
    struct config *cfg = calloc(1, sizeof *cfg);
    struct yaml_doc *doc = NULL;
    struct loadctx lc;

    *out = NULL;
    if (!cfg || config_defaults(cfg, name)) {
        oom(name, err, errlen);
        goto fail;
    }
    if (yaml_load(text, len, name, config_expand_env, &doc, err, errlen))
        goto fail;
    lc = (struct loadctx){doc, name, err, errlen};
    if (config_parse(&lc, cfg) || config_apply_env(cfg, err, errlen) ||
        config_parse_upstreams(&lc, doc->root, cfg) ||
        config_parse_routes(&lc, doc->root, cfg))
        goto fail;
    cfg->root = json_incref(doc->root);
    yaml_doc_free(doc);
    *out = cfg;
    return 0;
fail:
    yaml_doc_free(doc);
    config_free(cfg);
    return -1;
}

static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    buf_t b;
    char chunk[8192];
    size_t n;

    if (!f) {
        if (errno == ENOENT)
            snprintf(err, errlen, "%s: no such file", path);
        else
            snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    buf_init(&b);
    buf_append(&b, "", 0);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && !b.oom &&
           b.len <= CONFIG_MAX_FILE)
        buf_append(&b, chunk, n);
    if (ferror(f))
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
    else if (b.len > CONFIG_MAX_FILE)
        snprintf(err, errlen, "%s: larger than %u MiB", path,
                 CONFIG_MAX_FILE >> 20);
    else if (b.oom)
        oom(path, err, errlen);
    else {
        fclose(f);
        return buf_steal(&b, len);
    }
    fclose(f);
    buf_release(&b);
    return NULL;
}

int config_load(const char *path, struct config **out, char *err, size_t errlen)
{
    size_t len;
    char *text = read_file(path, &len, err, errlen);
    int rc;

    *out = NULL;
    if (!text)
        return -1;
    rc = config_load_string(text, len, path, out, err, errlen);
    free(text);
    return rc;
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->nstages; i++) {
        free(cfg->stages[i].name);
        free(cfg->stages[i].plugin);
        free(cfg->stages[i].path);
        json_decref(cfg->stages[i].config);
        json_decref(cfg->stages[i].routes);
    }
    free(cfg->stages);
    free(cfg->file);
    free(cfg->host);
    free(cfg->base_url);
    free(cfg->tls.ca_file);
    free(cfg->admin_token_file);
    free(cfg->admin_listen);
    free(cfg->log_level);
    free(cfg->log_file);
    free(cfg->log_format);
    free(cfg->upstream_client);
    free(cfg->docs_assets_url);
    free(cfg->plugins_dir);
    free(cfg->state.backend);
    free(cfg->state.path);
    free(cfg->state.url);
    free(cfg->state.password_file);
    free(cfg->state.prefix);
    free(cfg->state.instance);
    json_decref(cfg->models);
    json_decref(cfg->cors_origins);
    json_decref(cfg->headers.forward);
    json_decref(cfg->headers.add);
    free(cfg->cors_headers);
    json_decref(cfg->upstreams);
    json_decref(cfg->routes);
    json_decref(cfg->root);
    free(cfg);
}

/* ---- for the other validators (config_priv.h) -------------------------- */

void cfg_origin_yaml(const struct loadctx *lc, const char *path,
                     struct origin *o)
{
    origin_yaml(lc, path, o);
}

int cfg_bad_value(const struct origin *o, const json_t *v, const char *expected,
                  char *err, size_t errlen)
{
    return bad_value(o, v, expected, err, errlen);
}

int cfg_fail_at(const struct loadctx *lc, const char *path, const char *msg)
{
    return fail_at(lc, path, msg);
}

int cfg_oom(const char *file, char *err, size_t errlen)
{
    return oom(file, err, errlen);
}

int cfg_json_to_double(const json_t *v, double *out)
{
    return json_to_double(v, out);
}

int cfg_value_int(const struct origin *o, const json_t *v, long long lo,
                  long long hi, long long *out, char *err, size_t errlen)
{
    return value_int(o, v, lo, hi, out, err, errlen);
}

int cfg_value_ms(const struct origin *o, const json_t *v, long *out, char *err,
                 size_t errlen)
{
    return value_ms(o, v, out, err, errlen);
}

int cfg_value_name(const struct origin *o, const json_t *v, char **dst,
                   char *err, size_t errlen)
{
    return value_name(o, v, dst, err, errlen);
}

int cfg_value_base_url(const struct origin *o, const json_t *v, char **dst,
                       char *err, size_t errlen)
{
    return value_base_url(o, v, dst, err, errlen);
}

int cfg_check_keys(const struct loadctx *lc, const json_t *obj,
                   const char *path, const char *const *valid)
{
    return check_keys(lc, obj, path, valid);
}

const json_t *cfg_field(const struct loadctx *lc, const json_t *obj,
                        const char *section, const char *key, struct origin *o)
{
    return field(lc, obj, section, key, o);
}
