/*
 * usage_budget.c - where a client's budgets come from. The clients file is
 * the auth stage's: a client's line may carry budget_tokens_day=,
 * budget_tokens_month= and budget_cost_month=, which auth checks at load
 * (file:line) and hands on as request attributes of the same names. The
 * stage's own `budgets:` map is the other place (kept for pipelines
 * without those fields); a client with a budget in the clients file is
 * judged on that one alone.
 *
 * A stage cannot read another stage's file, so the clients-file budgets are
 * learned from the requests that carry them and remembered here (a bounded
 * table) for the gauge and GET /admin/usage/clients: a client shows its
 * clients-file budget there once it has sent a request. The table is also
 * kept in the state layer (records "lb|<client>", 32 days), so it survives
 * a restart (local backend) and is loaded by every instance that starts
 * (redis); a request without budget attributes forgets its client's entry.
 */
#include "usage.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEARNED_MAX 4096

static const char *const attr_names[3] = {
    "budget_tokens_day", "budget_tokens_month", "budget_cost_month"};

/* A budget attribute's value: -1 when absent, -2 when malformed. */
static double attr_num(const sluice_host *H, sluice_ctx *ctx, int i)
{
    const char *v = H->attr_get(ctx, attr_names[i]);
    char *end;
    if (!v || !*v)
        return -1;
    double d = strtod(v, &end);
    if (*end || !isfinite(d) || d < 0 || (i < 2 && (d != floor(d) || d > 9e15)))
        return -2;
    return d;
}

#define LEARNED_TTL_MS (32ull * 86400000ull)

/* Into the table (caller holds mu); 1 when it changed. */
static int learned_set(struct usage_cfg *c, const struct usage_budget *b)
{
    size_t i = 0;
    while (i < c->nlearned && strcmp(c->learned[i].client, b->client))
        i++;
    if (i < c->nlearned) {
        if (!memcmp(&c->learned[i], b, sizeof *b))
            return 0;
        c->learned[i] = *b; /* the file may have changed (reload-clients) */
        return 1;
    }
    if (c->nlearned >= LEARNED_MAX)
        return 0;
    struct usage_budget *v =
        realloc(c->learned, (c->nlearned + 1) * sizeof(*v));
    if (!v)
        return 0;
    c->learned = v;
    c->learned[c->nlearned++] = *b;
    return 1;
}

static void learn(struct usage_cfg *c, const struct usage_budget *b)
{
    pthread_mutex_lock(&c->mu);
    int changed = learned_set(c, b);
    pthread_mutex_unlock(&c->mu);
    if (!changed)
        return;
    char key[160], val[96];
    snprintf(key, sizeof key, "lb|%s", b->client);
    snprintf(val, sizeof val, "v1 %lld %lld %.9f", (long long)b->tokens_day,
             (long long)b->tokens_month, b->cost_month);
    c->host->state_put(c->self, key, val, strlen(val), LEARNED_TTL_MS);
}

/* The client no longer has budgets in the clients file. */
static void forget(struct usage_cfg *c, const char *client)
{
    int found = 0;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->nlearned; i++)
        if (!strcmp(c->learned[i].client, client)) {
            c->learned[i] = c->learned[--c->nlearned];
            found = 1;
            break;
        }
    pthread_mutex_unlock(&c->mu);
    if (found) {
        char key[160];
        snprintf(key, sizeof key, "lb|%s", client);
        c->host->state_del(c->self, key);
    }
}

static void load_one(void *arg, const sluice_state_value *v)
{
    struct usage_cfg *c = arg;
    struct usage_budget b;
    long long day, month;
    double cost;
    if (!v->found || !v->data || strncmp(v->key, "lb|", 3) ||
        sscanf(v->data, "v1 %lld %lld %lf", &day, &month, &cost) != 3)
        return;
    memset(&b, 0, sizeof b);
    snprintf(b.client, sizeof b.client, "%s", v->key + 3);
    b.tokens_day = day;
    b.tokens_month = month;
    b.cost_month = cost;
    learned_set(c, &b);
}

void usage_budgets_load(struct usage_cfg *c)
{
    pthread_mutex_lock(&c->mu);
    c->host->state_list(c->self, "lb|", load_one, c);
    pthread_mutex_unlock(&c->mu);
}

static const struct usage_budget *configured(const struct usage_cfg *c,
                                             const char *client)
{
    for (size_t i = 0; i < c->nbudgets; i++)
        if (!strcmp(c->budgets[i].client, client))
            return &c->budgets[i];
    return NULL;
}

int usage_budget_of(struct usage_cfg *c, sluice_ctx *ctx, const char *client,
                    struct usage_budget *out)
{
    const sluice_host *H = c->host;
    double v[3];
    int any = 0;
    for (int i = 0; i < 3; i++) {
        v[i] = attr_num(H, ctx, i);
        if (v[i] == -2) {
            H->log(c->self, SLUICE_LOG_WARN,
                   "request %s: attribute %s is not a non-negative number; "
                   "that budget is ignored",
                   H->req_id(ctx), attr_names[i]);
            v[i] = -1;
        }
        any |= v[i] >= 0;
    }
    memset(out, 0, sizeof *out);
    snprintf(out->client, sizeof out->client, "%s", client);
    if (any) {
        out->tokens_day = v[0] >= 0 ? (int64_t)v[0] : -1;
        out->tokens_month = v[1] >= 0 ? (int64_t)v[1] : -1;
        out->cost_month = v[2];
        learn(c, out);
        return 1;
    }
    forget(c, client);
    const struct usage_budget *b = configured(c, client);
    if (!b)
        return 0;
    *out = *b;
    return 1;
}

struct usage_budget *usage_budgets_all(struct usage_cfg *c, size_t *n)
{
    pthread_mutex_lock(&c->mu);
    size_t cap = c->nbudgets + c->nlearned;
    struct usage_budget *v = cap ? malloc(cap * sizeof(*v)) : NULL;
    *n = 0;
    if (v) {
        for (size_t i = 0; i < c->nbudgets; i++) {
            size_t j = 0;
            while (j < c->nlearned &&
                   strcmp(c->learned[j].client, c->budgets[i].client))
                j++;
            if (j == c->nlearned)
                v[(*n)++] = c->budgets[i];
        }
        if (c->nlearned)
            memcpy(v + *n, c->learned, c->nlearned * sizeof(*v));
        *n += c->nlearned;
    }
    pthread_mutex_unlock(&c->mu);
    return v;
}

int usage_budget_known(struct usage_cfg *c, const char *client,
                       struct usage_budget *out)
{
    int found = 0;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->nlearned && !found; i++)
        if (!strcmp(c->learned[i].client, client)) {
            *out = c->learned[i];
            found = 1;
        }
    pthread_mutex_unlock(&c->mu);
    const struct usage_budget *b = found ? NULL : configured(c, client);
    if (b) {
        *out = *b;
        found = 1;
    }
    return found;
}
