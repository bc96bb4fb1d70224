/*
 * context.c - the context stage: owns the model table (GET /v1/models,
 * /v1/models/{id}, /v1/models/{id}/info), defaults the model of a request
 * that names none, estimates the prompt tokens of every chat request
 * (estimate.c, walk.c) and refuses, before any upstream call, a request
 * that cannot fit the model's context by more than the margin. The estimate
 * rides on as the attribute "prompt_tokens_estimate" and the response
 * header x-sluice-prompt-tokens-estimate. A model whose entry names its
 * `tokenizer:` is counted exactly (exact.c, tok_*.c; margin 0 then).
 *
 * Config (all optional): models, default_model, on_unknown_model
 * (pass|reject), estimate_margin, reserve_output_tokens, image_tokens.
 * See README.md next to this file.
 */
#include "sluice.h"

#include "exact.h"
#include "models.h"
#include "routed.h"
#include "tok.h"
#include "upstream_models.h"
#include "walk.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct context {
    const sluice_host *host; /* the table init got: no file-scope global */
    sluice_stage *self;
    struct model_table models;
    struct exact_set toks; /* the models' tokenizers, loaded at init */
    char *default_model;
    int reject_unknown;
    double margin;
    int64_t reserve_output;
    int64_t image_tokens;
    int64_t created;           /* "created" of the model objects (fixed) */
    sluice_metric *m_margin;   /* over the limit, inside the margin */
    sluice_metric *m_refused;  /* refused: over limit + margin */
    sluice_metric *m_ratio;    /* estimate over the model's context */
    const sluice_json *routes; /* the core's routes: (ABI 1.1), or NULL */
    int from_upstream;         /* models_from_upstream */
    const char *up_key_file;   /* its keys_file (borrowed from config) */
    struct upstream_models up;
};

static void context_free(struct context *c)
{
    if (!c)
        return;
    upstream_models_free(&c->up);
    models_free(&c->models);
    exact_free(&c->toks);
    free(c->default_model);
    free(c);
}

/* ---- config -------------------------------------------------------- */

static int config_check_keys(const sluice_host *H, const sluice_json *cfg,
                             char *err, size_t errlen)
{
    static const char *const known[] = {"models",
                                        "default_model",
                                        "on_unknown_model",
                                        "estimate_margin",
                                        "reserve_output_tokens",
                                        "image_tokens",
                                        "models_from_upstream",
                                        NULL};
    for (void *it = H->json_iter(cfg); it; it = H->json_iter_next(cfg, it)) {
        const char *k = H->json_iter_key(it);
        const char *const *p = known;
        while (*p && strcmp(*p, k))
            p++;
        if (!*p) {
            snprintf(err, errlen,
                     "unknown key '%.64s' (known: models, default_model, "
                     "on_unknown_model, estimate_margin, "
                     "reserve_output_tokens, image_tokens, "
                     "models_from_upstream)",
                     k);
            return -1;
        }
    }
    return 0;
}

static int config_load(struct context *c, const sluice_json *cfg, char *err,
                       size_t errlen)
{
    const sluice_host *H = c->host;
    const char *def, *unknown;
    if (config_check_keys(H, cfg, err, errlen) != 0)
        return -1;
    if (models_defaults(&c->models) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (models_configure(H, &c->models, H->json_get(cfg, "models"), err,
                         errlen) != 0)
        return -1;
    if (exact_load(H, c->self, &c->toks, &c->models, err, errlen) != 0)
        return -1;
    if (H->cfg_str(cfg, "default_model", "openai-gpt-oss-120b", &def) != 0 ||
        !*def) {
        snprintf(err, errlen, "default_model: expected a model id (string)");
        return -1;
    }
    if (!(c->default_model = strdup(def))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (H->cfg_str(cfg, "on_unknown_model", "pass", &unknown) != 0 ||
        (strcmp(unknown, "pass") && strcmp(unknown, "reject"))) {
        snprintf(err, errlen, "on_unknown_model: expected pass or reject");
        return -1;
    }
    c->reject_unknown = !strcmp(unknown, "reject");
    if (H->cfg_real(cfg, "estimate_margin", 0.10, &c->margin) != 0 ||
        c->margin < 0 || c->margin > 10) {
        snprintf(err, errlen,
                 "estimate_margin: expected a fraction >= 0 (0.10 = 10 %%)");
        return -1;
    }
    if (H->cfg_int(cfg, "reserve_output_tokens", 0, &c->reserve_output) != 0 ||
        c->reserve_output < 0) {
        snprintf(err, errlen,
                 "reserve_output_tokens: expected an integer >= 0");
        return -1;
    }
    if (H->cfg_int(cfg, "image_tokens", 765, &c->image_tokens) != 0 ||
        c->image_tokens < 0) {
        snprintf(err, errlen, "image_tokens: expected an integer >= 0");
        return -1;
    }
    /* models_from_upstream: true, or {keys_file: <file>} for a Bearer key */
    const sluice_json *fu = H->json_get(cfg, "models_from_upstream");
    if (H->json_type(fu) == SLUICE_JSON_OBJECT) {
        const sluice_json *kf = H->json_get(fu, "keys_file");
        if (H->json_size(fu) != 1 || !H->json_str(kf)) {
            snprintf(err, errlen,
                     "models_from_upstream: expected true, false or "
                     "{keys_file: <file>}");
            return -1;
        }
        c->from_upstream = 1;
        c->up_key_file = H->json_str(kf);
    } else if (H->cfg_bool(cfg, "models_from_upstream", 0, &c->from_upstream) !=
               0) {
        snprintf(err, errlen,
                 "models_from_upstream: expected true, false or "
                 "{keys_file: <file>}");
        return -1;
    }
    return 0;
}

/* ---- routes -------------------------------------------------------- */

static int route_error(const sluice_host *H, sluice_buf *out, int status,
                       const char *code, const char *param, const char *message)
{
    H->buf_printf(out, "{\"error\":{\"message\":");
    H->buf_json_str(out, message);
    H->buf_printf(out, ",\"type\":\"invalid_request_error\",\"param\":");
    if (param)
        H->buf_json_str(out, param);
    else
        H->buf_printf(out, "null");
    H->buf_printf(out, ",\"code\":");
    H->buf_json_str(out, code);
    H->buf_printf(out, "}}");
    return status;
}

static int route_models(void *instance, const char *method, const char *path,
                        sluice_buf *out)
{
    struct context *c = instance;
    const sluice_host *H = c->host;
    return routed_render_list(H, &c->models, c->routes, c->created,
                              upstream_models_extra(&c->up), out) == 0
               ? 200
               : 500;
}

/* /v1/models/{id} and /v1/models/{id}/info; ids may hold slashes, so the
 * whole rest is tried as an id first. */
static int route_model(void *instance, const char *method, const char *path,
                       sluice_buf *out)
{
    struct context *c = instance;
    const sluice_host *H = c->host;
    const char *prefix = "/v1/models/";
    char id[512];
    if (strncmp(path, prefix, strlen(prefix)) != 0)
        return route_error(H, out, 404, "not_found", NULL, "unknown path");
    snprintf(id, sizeof id, "%s", path + strlen(prefix));
    int rc =
        routed_render_one(H, &c->models, c->routes, id, 0, c->created, out);
    size_t n = strlen(id);
    if (rc == 1 && n > 5 && !strcmp(id + n - 5, "/info")) {
        id[n - 5] = '\0';
        rc =
            routed_render_one(H, &c->models, c->routes, id, 1, c->created, out);
    }
    if (rc == 1) {
        char msg[640];
        snprintf(msg, sizeof msg, "The model '%.500s' does not exist", id);
        return route_error(H, out, 404, "model_not_found", "model", msg);
    }
    return rc == 0 ? 200 : 500;
}

/* ---- the check ------------------------------------------------------- */

/* Requested output: max_completion_tokens, else max_tokens, else the
 * configured reserve. -1 (and a 400 set) on a wrong type. */
static int64_t output_tokens(struct context *c, sluice_ctx *ctx,
                             const sluice_json *body, const char *route,
                             const char **key)
{
    const sluice_host *H = c->host;
    *key = NULL;
    static const char *const chat_keys[] = {"max_completion_tokens",
                                            "max_tokens", NULL};
    static const char *const resp_keys[] = {"max_output_tokens", NULL};
    static const char *const cmpl_keys[] = {"max_tokens", NULL};
    const char *const *keys = chat_keys;
    int64_t def = c->reserve_output;
    if (!strcmp(route, "embeddings"))
        return 0; /* nothing is generated */
    if (!strcmp(route, "responses"))
        keys = resp_keys;
    else if (!strcmp(route, "completions"))
        keys = cmpl_keys, def = 16; /* the API's default max_tokens */
    for (size_t i = 0; keys[i]; i++) {
        const sluice_json *v = H->json_get(body, keys[i]);
        sluice_json_type t = H->json_type(v);
        if (t == SLUICE_JSON_INVALID || t == SLUICE_JSON_NULL)
            continue;
        if (t != SLUICE_JSON_INT || H->json_int(v) < 0) {
            char msg[160];
            snprintf(msg, sizeof msg,
                     "Invalid value for '%s': expected a non-negative "
                     "integer.",
                     keys[i]);
            H->respond_error(ctx, 400, "invalid_request_error", "invalid_value",
                             keys[i], msg);
            return -1;
        }
        *key = keys[i];
        return H->json_int(v);
    }
    return def;
}

/* "a (262000), b (256000)" of the models whose context holds `need`
 * tokens, largest first as the table lists them; at most `max` names. */
static void fitting_models(struct context *c, uint64_t need, int embed,
                           char *out, size_t outlen, size_t max)
{
    size_t used = 0, k = 0;
    out[0] = '\0';
    for (size_t i = 0; i < c->models.n && k < max; i++) {
        const struct model *m = &c->models.v[i];
        /* an embedding model is no answer to a chat prompt, nor back */
        if ((uint64_t)m->context_length < need ||
            !strstr(m->id, "embedding") != !embed)
            continue;
        int w = snprintf(out + used, outlen - used, "%s%s (%" PRId64 ")",
                         k ? ", " : "", m->id, m->context_length);
        if (w < 0 || (size_t)w >= outlen - used) {
            out[used] = '\0';
            break;
        }
        used += (size_t)w;
        k++;
    }
}

/* The request field that holds a route's prompt. */
static const char *route_field(const char *route)
{
    if (!strcmp(route, "chat"))
        return "messages";
    return !strcmp(route, "completions") ? "prompt" : "input";
}

/* out_key: the request field that set the output (NULL: the reserve). */
static sluice_verdict refuse(struct context *c, sluice_ctx *ctx,
                             const struct model *m, uint64_t prompt,
                             int64_t output, const char *out_key, int exact,
                             const char *route)
{
    const sluice_host *H = c->host;
    const char *field = route_field(route);
    char fits[1024], msg[2048];
    uint64_t need = prompt + (uint64_t)output;
    uint64_t over = need - (uint64_t)m->context_length;
    fitting_models(c, need, !strcmp(route, "embeddings"), fits, sizeof fits, 6);
    int n = snprintf(msg, sizeof msg,
                     "This request needs %s%" PRIu64 " tokens (prompt "
                     "%s%" PRIu64 " %s + %" PRId64 " for the output), "
                     "but model '%s' has a context of %" PRId64 " tokens: "
                     "%s%" PRIu64 " tokens (%.0f %%) too many.",
                     exact ? "" : "about ", need, exact ? "" : "~", prompt,
                     exact ? "counted" : "estimated", output, m->id,
                     m->context_length, exact ? "" : "about ", over,
                     100.0 * (double)over / (double)m->context_length);
    if (n < 0)
        n = 0;
    if ((size_t)n < sizeof msg && out_key && output > 0 &&
        prompt < (uint64_t)m->context_length)
        n += snprintf(msg + n, sizeof msg - (size_t)n,
                      " Lower %s to at most %" PRIu64 ", or", out_key,
                      (uint64_t)m->context_length - prompt);
    else if ((size_t)n < sizeof msg)
        n += snprintf(msg + n, sizeof msg - (size_t)n, " Shorten the %s, or",
                      field);
    if ((size_t)n < sizeof msg && fits[0])
        snprintf(msg + n, sizeof msg - (size_t)n,
                 " use a model with a larger context: %s.", fits);
    else if ((size_t)n < sizeof msg)
        snprintf(msg + n, sizeof msg - (size_t)n,
                 " split the input: no model in the table has a context "
                 "that large.");
    if (c->m_refused)
        H->metric_add(c->m_refused, (const char *const[]){m->id}, 1);
    H->log(c->self, SLUICE_LOG_INFO,
           "refused %s: ~%" PRIu64 " tokens for model %s (%" PRId64 ")",
           H->req_id(ctx), need, m->id, m->context_length);
    H->respond_error(ctx, 400, "invalid_request_error",
                     "context_length_exceeded", field, msg);
    return SLUICE_RESPOND;
}

static long count_exact(const void *tok, const char *text, size_t len)
{
    return tok_count(tok, text, len);
}

/* The model id of the request; sets the default when absent. NULL (and a
 * 400 set) when `model` is not a string. */
static const char *request_model(struct context *c, sluice_ctx *ctx,
                                 const sluice_json *body)
{
    const sluice_host *H = c->host;
    const sluice_json *v = H->json_get(body, "model");
    sluice_json_type t = H->json_type(v);
    if (t == SLUICE_JSON_STRING && H->json_strlen(v) > 0)
        return H->json_str(v);
    if (t != SLUICE_JSON_INVALID && t != SLUICE_JSON_NULL &&
        t != SLUICE_JSON_STRING) {
        H->respond_error(ctx, 400, "invalid_request_error", "invalid_type",
                         "model",
                         "Invalid type for 'model': expected a string.");
        return NULL;
    }
    sluice_json *mut = H->req_body_mut(ctx);
    if (!mut || H->json_set_str(mut, "model", c->default_model) != 0) {
        H->respond_error(ctx, 500, "server_error", NULL, NULL,
                         "could not set the default model");
        return NULL;
    }
    return c->default_model;
}

/* A request too large for `model`: the first of its route's
 * context_fallbacks whose window (this stage's table) holds `need` takes
 * it, through the attribute "route_model" the router reads. 1 if one
 * did. */
static int context_fallback(struct context *c, sluice_ctx *ctx,
                            const char *model, double need)
{
    const sluice_host *H = c->host;
    const sluice_json *r = routed_find(H, c->routes, model);
    const sluice_json *fb = H->json_get(r, "context_fallbacks");
    for (size_t i = 0; i < H->json_size(fb); i++) {
        const char *name = H->json_str(H->json_at(fb, i));
        const struct model *f = models_find(&c->models, name);
        if (!f || need > (double)f->context_length)
            continue;
        H->attr_set(ctx, "route_model", name);
        H->resp_header_add(ctx, "x-sluice-context-fallback", name);
        H->log(c->self, SLUICE_LOG_INFO,
               "%s: ~%.0f tokens do not fit %s: context fallback to %s",
               H->req_id(ctx), need, model, name);
        return 1;
    }
    return 0;
}

/* v in decimal at the end of out (n >= 21 bytes), as printf's PRIu64:
 * the estimate is written for every request. Returns where it starts. */
static const char *u64_text(char *out, size_t n, uint64_t v)
{
    char *p = out + n - 1;
    *p = '\0';
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}

static sluice_verdict context_on_request(void *instance, sluice_ctx *ctx)
{
    struct context *c = instance;
    const sluice_host *H = c->host;
    const sluice_json *body = H->req_body(ctx);
    struct walk w;
    char num[32];
    if (H->json_type(body) != SLUICE_JSON_OBJECT)
        return SLUICE_CONTINUE; /* not a chat body: not ours to judge */
    const char *model = request_model(c, ctx, body);
    if (!model)
        return SLUICE_RESPOND;
    body = H->req_body(ctx);
    const struct model *m = models_find(&c->models, model);
    /* the core's metric label for the model: an id of this table, never
     * the client's text (a bounded set of series) */
    H->attr_set(ctx, "model_label", m ? m->id : "other");
    struct walk_opts opts;
    if (m && m->tok)
        opts = (struct walk_opts){m->tok, count_exact,
                                  (uint64_t)m->overhead.per_message,
                                  (uint64_t)m->overhead.per_name,
                                  (uint64_t)m->overhead.reply_priming};
    const char *route = SLUICE_HOST_HAS(H, req_route) && H->req_route
                            ? H->req_route(ctx)
                            : "chat";
    int chat = !strcmp(route, "chat");
    int rc =
        chat ? walk_request_opts(H, body, m && m->tok ? &opts : NULL, &w)
             : walk_api_request(H, route, body, m && m->tok ? &opts : NULL, &w);
    if (rc != 0) {
        H->respond_error(ctx, 400, "invalid_request_error", w.code, w.field,
                         w.message);
        return SLUICE_RESPOND;
    }
    /* exact: the model's tokenizer counted every part of the prompt */
    int exact = m && m->tok && !w.approx;
    uint64_t prompt = walk_tokens(&w, (uint64_t)c->image_tokens);
    const char *est = u64_text(num, sizeof num, prompt);
    H->attr_set(ctx, "prompt_tokens_estimate", est);
    H->resp_header_add(ctx, "x-sluice-prompt-tokens-estimate", est);
    H->resp_header_add(ctx, "x-sluice-prompt-tokens-method",
                       exact ? "exact" : "estimate");

    if (m && c->m_ratio && m->context_length > 0)
        H->metric_observe(c->m_ratio, (const char *const[]){m->id},
                          (double)prompt / (double)m->context_length);
    if (!m) {
        if (!c->reject_unknown)
            return SLUICE_CONTINUE;
        char msg[400];
        snprintf(msg, sizeof msg,
                 "The model '%.200s' does not exist or you do not have "
                 "access to it (GET /v1/models lists the models).",
                 model);
        H->respond_error(ctx, 404, "invalid_request_error", "model_not_found",
                         "model", msg);
        return SLUICE_RESPOND;
    }
    const char *out_key;
    int64_t output = output_tokens(c, ctx, body, route, &out_key);
    if (output < 0)
        return SLUICE_RESPOND;
    /* embeddings: each input has the model's window to itself */
    uint64_t judged = !strcmp(route, "embeddings") ? w.max_item : prompt;
    double need = (double)judged + (double)output;
    double limit = (double)m->context_length;
    if (need > limit * (1.0 + (exact ? 0.0 : c->margin))) {
        if (context_fallback(c, ctx, m->id, need))
            return SLUICE_CONTINUE;
        return refuse(c, ctx, m, judged, output, out_key, exact, route);
    }
    if (need > limit && c->m_margin)
        H->metric_add(c->m_margin, (const char *const[]){m->id}, 1);
    return SLUICE_CONTINUE;
}

/* ---- lifecycle ------------------------------------------------------- */

/* Registered here, not by the core: the ratio needs this stage's model
 * table (the top-level `models:` is only the core's /v1/models fallback). */
static const double ratio_buckets[] = {0.05, 0.1,  0.25, 0.5, 0.75,
                                       0.9,  0.95, 1,    1.5};

static void context_metrics(struct context *c)
{
    const sluice_host *H = c->host;
    if (!SLUICE_HOST_HAS(H, metric_observe) || !H->metric_register ||
        !H->metric_add || !H->metric_observe)
        return;
    c->m_ratio = H->metric_register(
        c->self, SLUICE_METRIC_HISTOGRAM, "sluice_context_usage_ratio",
        "Prompt tokens (estimated, or counted by the model's tokenizer) "
        "over the model's context length (models of the context stage's "
        "table; refused requests included).",
        "model", ratio_buckets, sizeof ratio_buckets / sizeof *ratio_buckets);
    c->m_margin = H->metric_register(
        c->self, SLUICE_METRIC_COUNTER, "sluice_context_within_margin_total",
        "Requests estimated over the model's context but inside the "
        "estimate margin, passed on",
        "model", NULL, 0);
    c->m_refused = H->metric_register(
        c->self, SLUICE_METRIC_COUNTER, "sluice_context_refused_total",
        "Requests refused with context_length_exceeded", "model", NULL, 0);
}

static int context_init(const sluice_host *host, sluice_stage *self,
                        const sluice_json *config, void **instance, char *err,
                        size_t errlen)
{
    const sluice_host *H = host;
    struct context *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->host = host;
    c->self = self;
    c->routes = SLUICE_HOST_HAS(H, model_routes) ? H->model_routes(self) : NULL;
    /* stable across restarts and instances (clients cache model lists):
     * a fixed date, 2024-01-01T00:00:00Z, not the start time */
    c->created = 1704067200;
    if (config_load(c, config, err, errlen) != 0)
        goto fail;
    if (H->route_register(self, "GET", "/v1/models", route_models) != 0 ||
        H->route_register(self, "GET", "/models", route_models) != 0 ||
        H->route_register(self, "GET", "/v1/models/*", route_model) != 0) {
        snprintf(err, errlen, "could not register the /v1/models routes");
        goto fail;
    }
    context_metrics(c);
    if (!models_find(&c->models, c->default_model))
        H->log(self, SLUICE_LOG_WARN,
               "default_model %s is not in the model table: its requests "
               "are not checked",
               c->default_model);
    H->log(self, SLUICE_LOG_INFO,
           "%zu models, default %s, margin %.0f %%, unknown models %s",
           c->models.n, c->default_model, c->margin * 100,
           c->reject_unknown ? "rejected" : "passed on");
    if (c->from_upstream) {
        /* last: nothing may fail once the fetch is queued (the core
         * cancels it before destroy, not after a failed init) */
        c->up = (struct upstream_models){.H = H,
                                         .self = self,
                                         .table = &c->models,
                                         .routes = c->routes,
                                         .created = c->created};
        if (upstream_models_start(&c->up, c->up_key_file, err, errlen) != 0)
            goto fail;
    }
    *instance = c;
    return 0;
fail:
    context_free(c);
    return -1;
}

static void context_destroy(void *instance)
{
    context_free(instance);
}

static int context_status(void *instance, sluice_buf *out)
{
    struct context *c = instance;
    const sluice_host *H = c->host;
    int rc =
        H->buf_printf(out, "{\"models\":%zu,\"default_model\":", c->models.n);
    rc |= H->buf_json_str(out, c->default_model);
    rc |= H->buf_printf(out,
                        ",\"estimate_margin\":%g,\"tokenizers\":%zu,"
                        "\"healthy\":true}",
                        c->margin, c->toks.n);
    return rc ? -1 : 0;
}

/* the routes whose prompt it can count (walk_api.c) */
static const char *const context_routes[] = {"chat", "responses", "completions",
                                             "embeddings", NULL};

static const sluice_plugin context_plugin = {
    .abi_major = SLUICE_ABI_MAJOR,
    .abi_minor = SLUICE_ABI_MINOR,
    .size = sizeof(sluice_plugin),
    .name = "context",
    .version = "1.0.0",
    .description = "model table, prompt-token estimate, context-limit check",
    .init = context_init,
    .destroy = context_destroy,
    .on_request = context_on_request,
    .status = context_status,
    .routes = context_routes,
};

SLUICE_PLUGIN_DEFINE(context_plugin)
