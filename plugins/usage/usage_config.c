/*
 * usage_config.c - the usage stage's config: the currency (named once),
 * the price table per model and the budgets per client. Every number is
 * checked here, at init (so `sluice --check` reports a bad one with the
 * pipeline file's line), never on the request path.
 *
 *   currency: USD
 *   prices:  { <model>: {input_per_mtok, output_per_mtok,
 *                        cached_input_per_mtok} }
 *   budgets: { <client>: {budget_tokens_day, budget_tokens_month,
 *                         budget_cost_month} }
 *   retention_days: 400
 *
 * The model table's prices come first: the same three fields on an entry of
 * the pipeline's `routes:` (checked by the core with file:line, read here
 * through model_routes) price its model and aliases (a glob prices what it
 * matches). `prices:` here is the older place, for pipelines without
 * routes; a name priced in both places is an error.
 */
#include "usage.h"

#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int only_keys(const sluice_host *H, const sluice_json *obj,
                     const char *const *allowed, const char *where, char *err,
                     size_t errlen)
{
    for (void *it = H->json_iter(obj); it; it = H->json_iter_next(obj, it)) {
        const char *k = H->json_iter_key(it);
        size_t i = 0;
        while (allowed[i] && strcmp(allowed[i], k))
            i++;
        if (!allowed[i]) {
            snprintf(err, errlen, "%s: unknown field '%s'", where, k);
            return -1;
        }
    }
    return 0;
}

/* A non-negative finite number at obj[key]; *out stays `def` if absent. */
static int non_negative(const sluice_host *H, const sluice_json *obj,
                        const char *key, double def, double *out,
                        const char *where, char *err, size_t errlen)
{
    if (H->cfg_real(obj, key, def, out) != 0 || !isfinite(*out) ||
        (H->json_get(obj, key) && *out < 0)) {
        snprintf(err, errlen, "%s.%s must be a non-negative number", where,
                 key);
        return -1;
    }
    return 0;
}

static int load_prices(struct usage_cfg *c, const sluice_json *prices,
                       char *err, size_t errlen)
{
    const sluice_host *H = c->host;
    static const char *const keys[] = {"input_per_mtok", "output_per_mtok",
                                       "cached_input_per_mtok", NULL};
    size_t n = H->json_size(prices);
    struct usage_price *v =
        realloc(c->prices, (c->nprices + n + 1) * sizeof(*c->prices));
    if (!v)
        goto oom;
    c->prices = v;
    for (void *it = H->json_iter(prices); it;
         it = H->json_iter_next(prices, it)) {
        const char *model = H->json_iter_key(it);
        const sluice_json *p = H->json_iter_value(it);
        char where[300];
        snprintf(where, sizeof where, "prices.%.200s", model);
        if (H->json_type(p) != SLUICE_JSON_OBJECT) {
            snprintf(err, errlen,
                     "%s must be a map with input_per_mtok and "
                     "output_per_mtok",
                     where);
            return -1;
        }
        if (only_keys(H, p, keys, where, err, errlen) != 0)
            return -1;
        if (!H->json_get(p, "input_per_mtok") ||
            !H->json_get(p, "output_per_mtok")) {
            snprintf(err, errlen, "%s needs input_per_mtok and output_per_mtok",
                     where);
            return -1;
        }
        if (usage_price_find(c, model)) {
            snprintf(err, errlen,
                     "%s: the model table (routes:) already prices '%.100s'; "
                     "give its price in one place",
                     where, model);
            return -1;
        }
        struct usage_price *pr = &c->prices[c->nprices];
        memset(pr, 0, sizeof *pr);
        if (non_negative(H, p, "input_per_mtok", 0, &pr->input, where, err,
                         errlen) ||
            non_negative(H, p, "output_per_mtok", 0, &pr->output, where, err,
                         errlen) ||
            non_negative(H, p, "cached_input_per_mtok", -1, &pr->cached, where,
                         err, errlen))
            return -1;
        if (!(pr->model = strdup(model)))
            goto oom;
        c->nprices++;
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

static int load_budgets(struct usage_cfg *c, const sluice_json *budgets,
                        char *err, size_t errlen)
{
    const sluice_host *H = c->host;
    static const char *const keys[] = {
        "budget_tokens_day", "budget_tokens_month", "budget_cost_month", NULL};
    static const char *const tok[] = {"budget_tokens_day",
                                      "budget_tokens_month"};
    size_t n = H->json_size(budgets);
    c->budgets = calloc(n ? n : 1, sizeof(*c->budgets));
    if (!c->budgets)
        goto oom;
    for (void *it = H->json_iter(budgets); it;
         it = H->json_iter_next(budgets, it)) {
        const char *client = H->json_iter_key(it);
        const sluice_json *b = H->json_iter_value(it);
        char where[300];
        snprintf(where, sizeof where, "budgets.%.200s", client);
        if (H->json_type(b) != SLUICE_JSON_OBJECT || !H->json_size(b)) {
            snprintf(err, errlen,
                     "%s must be a map of budget_tokens_day, "
                     "budget_tokens_month and/or budget_cost_month",
                     where);
            return -1;
        }
        if (only_keys(H, b, keys, where, err, errlen) != 0)
            return -1;
        struct usage_budget *bu = &c->budgets[c->nbudgets];
        int64_t *dst[] = {&bu->tokens_day, &bu->tokens_month};
        for (int i = 0; i < 2; i++) {
            const sluice_json *v = H->json_get(b, tok[i]);
            double d = -1;
            if (v && (H->cfg_real(b, tok[i], -1, &d) != 0 || !isfinite(d) ||
                      d < 0 || d != floor(d) || d > 9e15)) {
                snprintf(err, errlen,
                         "%s.%s must be a non-negative whole number of "
                         "tokens",
                         where, tok[i]);
                return -1;
            }
            *dst[i] = v ? (int64_t)d : -1;
        }
        bu->cost_month = -1;
        if (H->json_get(b, "budget_cost_month") &&
            non_negative(H, b, "budget_cost_month", -1, &bu->cost_month, where,
                         err, errlen))
            return -1;
        if (bu->cost_month >= 0 && c->nprices == 0) {
            snprintf(err, errlen,
                     "%s.budget_cost_month needs prices (no model has a "
                     "price, so no cost is ever known)",
                     where);
            return -1;
        }
        for (const char *p = client; *p; p++)
            if (*p == '|' || (unsigned char)*p < 0x20) {
                snprintf(err, errlen,
                         "%s: a client name cannot hold '|' "
                         "or control characters",
                         where);
                return -1;
            }
        if (strlen(client) >= sizeof bu->client) {
            snprintf(err, errlen, "%s: the client name is too long", where);
            return -1;
        }
        snprintf(bu->client, sizeof bu->client, "%s", client);
        c->nbudgets++;
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* One name of a route (its model or an alias) priced as the route is. */
static int route_price_add(struct usage_cfg *c, const char *name,
                           const struct usage_price *p)
{
    struct usage_price *v =
        realloc(c->prices, (c->nprices + 1) * sizeof(*c->prices));
    if (!v)
        return -1;
    c->prices = v;
    v[c->nprices] = *p;
    v[c->nprices].glob = strpbrk(name, "*?[") != NULL;
    if (!(v[c->nprices].model = strdup(name)))
        return -1;
    c->nprices++;
    return 0;
}

/* The prices of the routes: (validated by the core at load). */
static int load_route_prices(struct usage_cfg *c, char *err, size_t errlen)
{
    const sluice_host *H = c->host;
    if (!SLUICE_HOST_HAS(H, model_routes))
        return 0;
    const sluice_json *routes = H->model_routes(c->self);
    for (size_t i = 0; i < H->json_size(routes); i++) {
        const sluice_json *r = H->json_at(routes, i);
        const sluice_json *in = H->json_get(r, "input_per_mtok");
        const sluice_json *out = H->json_get(r, "output_per_mtok");
        const sluice_json *k = H->json_get(r, "cached_input_per_mtok");
        if (!in || !out)
            continue;
        struct usage_price p = {.input = H->json_real(in),
                                .output = H->json_real(out),
                                .cached = k ? H->json_real(k) : -1};
        if (route_price_add(c, H->json_str(H->json_get(r, "model")), &p) != 0)
            goto oom;
        const sluice_json *al = H->json_get(r, "aliases");
        for (size_t j = 0; j < H->json_size(al); j++)
            if (route_price_add(c, H->json_str(H->json_at(al, j)), &p) != 0)
                goto oom;
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

int usage_config_load(struct usage_cfg *c, const sluice_json *cfg, char *err,
                      size_t errlen)
{
    const sluice_host *H = c->host;
    static const char *const keys[] = {"currency", "prices", "budgets",
                                       "retention_days", NULL};
    if (only_keys(H, cfg, keys, "usage", err, errlen) != 0)
        return -1;
    const char *cur;
    if (H->cfg_str(cfg, "currency", "USD", &cur) != 0 || !*cur ||
        strlen(cur) >= sizeof c->currency) {
        snprintf(err, errlen, "currency must be a short name, e.g. USD");
        return -1;
    }
    snprintf(c->currency, sizeof c->currency, "%s", cur);
    int64_t days;
    if (H->cfg_int(cfg, "retention_days", 400, &days) != 0 || days < 1 ||
        days > 3660) {
        snprintf(err, errlen,
                 "retention_days must be a whole number in "
                 "1..3660");
        return -1;
    }
    c->retention_ms = (uint64_t)days * 86400000u;
    const sluice_json *p = H->json_get(cfg, "prices");
    const sluice_json *b = H->json_get(cfg, "budgets");
    if (p && H->json_type(p) != SLUICE_JSON_OBJECT) {
        snprintf(err, errlen, "prices must be a map of model -> prices");
        return -1;
    }
    if (b && H->json_type(b) != SLUICE_JSON_OBJECT) {
        snprintf(err, errlen, "budgets must be a map of client -> budgets");
        return -1;
    }
    if (load_route_prices(c, err, errlen) != 0 ||
        load_prices(c, p, err, errlen) != 0 ||
        load_budgets(c, b, err, errlen) != 0)
        return -1;
    return 0;
}

void usage_config_free(struct usage_cfg *c)
{
    for (size_t i = 0; i < c->nprices; i++)
        free(c->prices[i].model);
    free(c->prices);
    free(c->budgets);
}

/* An exact name first, then the first glob that matches (route order, as
 * the routes resolve a model). */
const struct usage_price *usage_price_find(const struct usage_cfg *c,
                                           const char *model)
{
    for (size_t i = 0; model && i < c->nprices; i++)
        if (!c->prices[i].glob && !strcmp(c->prices[i].model, model))
            return &c->prices[i];
    for (size_t i = 0; model && i < c->nprices; i++)
        if (c->prices[i].glob && fnmatch(c->prices[i].model, model, 0) == 0)
            return &c->prices[i];
    return NULL;
}
