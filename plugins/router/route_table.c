/*
 * route_table.c - the router's route table: built once at init from the
 * `routes:` list the core validated, looked up per request (exact names
 * and aliases, then globs), and the smooth weighted round-robin (nginx's:
 * each pick adds every weight to its deployment's current value, takes
 * the largest and subtracts the total from it) that spreads a route's
 * traffic by weight with no long runs on one deployment.
 */
#include "route_table.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const class_names[] = {"5xx",     "timeout",
                                          "connect", "all_keys_unavailable",
                                          "429",     "context_length_exceeded",
                                          "4xx"};
#define NCLASS (sizeof class_names / sizeof *class_names)

const char *rt_class_name(unsigned c)
{
    for (size_t i = 0; i < NCLASS; i++)
        if (c == 1u << i)
            return class_names[i];
    return "none";
}

unsigned rt_class_parse(const char *s)
{
    for (size_t i = 0; s && i < NCLASS; i++)
        if (!strcmp(s, class_names[i]))
            return 1u << i;
    return 0;
}

static int body_says_context(const char *body, size_t len)
{
    static const char *const needles[] = {"context_length_exceeded",
                                          "maximum context length",
                                          "context window", NULL};
    if (!body)
        return 0;
    for (size_t i = 0; needles[i]; i++) {
        size_t n = strlen(needles[i]);
        for (size_t j = 0; j + n <= len; j++)
            if (!memcmp(body + j, needles[i], n))
                return 1;
    }
    return 0;
}

unsigned rt_classify(sluice_attempt_result r, int status, const char *body,
                     size_t len)
{
    switch (r) {
    case SLUICE_ATTEMPT_TIMEOUT:
        return RC_TIMEOUT;
    case SLUICE_ATTEMPT_CONNECT:
    case SLUICE_ATTEMPT_RESET:
        return RC_CONNECT;
    case SLUICE_ATTEMPT_HTTP:
        if (status >= 500)
            return RC_5XX;
        if (status == 429)
            return RC_429;
        /* the deployment's key refused (or out of quota): the keys' class,
         * as when the keyring has none left, never "4xx" */
        if (status == 401 || status == 402 || status == 403)
            return RC_ALL_KEYS;
        if (status == 400 && body_says_context(body, len))
            return RC_CONTEXT;
        if (status >= 400)
            return RC_4XX;
        return RC_NONE;
    default:
        return RC_NONE;
    }
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int route_build(const sluice_host *H, const sluice_json *e,
                       struct rt_route *r, char *err, size_t errlen)
{
    const sluice_json *al = H->json_get(e, "aliases");
    const sluice_json *ds = H->json_get(e, "deployments");
    const sluice_json *fo = H->json_get(e, "fallback_on");

    pthread_mutex_init(&r->lock, NULL);
    r->name = dup_or_null(H->json_str(H->json_get(e, "model")));
    if (!r->name)
        goto oom;
    r->glob = strpbrk(r->name, "*?[") != NULL;
    r->naliases = H->json_size(al);
    r->aliases = calloc(r->naliases + 1, sizeof *r->aliases);
    r->nd = H->json_size(ds);
    r->d = calloc(r->nd + 1, sizeof *r->d);
    if (!r->aliases || !r->d)
        goto oom;
    for (size_t i = 0; i < r->naliases; i++)
        if (!(r->aliases[i] = dup_or_null(H->json_str(H->json_at(al, i)))))
            goto oom;
    for (size_t i = 0; i < r->nd; i++) {
        const sluice_json *d = H->json_at(ds, i);
        r->d[i].upstream = dup_or_null(H->json_str(H->json_get(d, "upstream")));
        r->d[i].model = dup_or_null(H->json_str(H->json_get(d, "model")));
        r->d[i].weight = H->json_real(H->json_get(d, "weight"));
        if (r->d[i].weight <= 0)
            r->d[i].weight = 1;
        atomic_init(&r->d[i].down_until, 0);
        if (!r->d[i].upstream)
            goto oom;
    }
    const sluice_json *rb = H->json_get(e, "retries");
    const sluice_json *mr = rb ? H->json_get(rb, "max_retries") : NULL;
    const sluice_json *ms = rb ? H->json_get(rb, "max_key_switches") : NULL;
    r->max_retries = mr ? (int)H->json_int(mr) : -1;
    r->max_switches = ms ? (int)H->json_int(ms) : -1;
    r->fallback_on = fo ? 0 : RC_DEFAULT;
    for (size_t i = 0; i < H->json_size(fo); i++)
        r->fallback_on |= rt_class_parse(H->json_str(H->json_at(fo, i)));
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* fallbacks name other routes: resolved to indexes once all are built. */
static int route_links(const sluice_host *H, struct rt_table *t,
                       const sluice_json *e, struct rt_route *r, char *err,
                       size_t errlen)
{
    const sluice_json *fb = H->json_get(e, "fallbacks");
    size_t n = H->json_size(fb);
    r->fallbacks = calloc(n + 1, sizeof *r->fallbacks);
    if (!r->fallbacks) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        long k = rt_table_find(t, H->json_str(H->json_at(fb, i)));
        if (k < 0) {
            snprintf(err, errlen,
                     "routes: fallback '%.64s' of '%.64s' is "
                     "not a route",
                     H->json_str(H->json_at(fb, i)), r->name);
            return -1;
        }
        r->fallbacks[r->nfallbacks++] = (size_t)k;
    }
    return 0;
}

int rt_table_build(const sluice_host *H, const sluice_json *routes,
                   struct rt_table *t, char *err, size_t errlen)
{
    size_t n = H->json_size(routes);
    memset(t, 0, sizeof *t);
    t->v = calloc(n + 1, sizeof *t->v);
    if (!t->v) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        t->n = i + 1;
        if (route_build(H, H->json_at(routes, i), &t->v[i], err, errlen))
            return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (route_links(H, t, H->json_at(routes, i), &t->v[i], err, errlen))
            return -1;
    return 0;
}

void rt_table_free(struct rt_table *t)
{
    for (size_t i = 0; t->v && i < t->n; i++) {
        struct rt_route *r = &t->v[i];
        free(r->name);
        for (size_t j = 0; r->aliases && j < r->naliases; j++)
            free(r->aliases[j]);
        free(r->aliases);
        for (size_t j = 0; r->d && j < r->nd; j++) {
            free(r->d[j].upstream);
            free(r->d[j].model);
        }
        free(r->d);
        free(r->fallbacks);
        pthread_mutex_destroy(&r->lock);
    }
    free(t->v);
    memset(t, 0, sizeof *t);
}

long rt_table_find(const struct rt_table *t, const char *model)
{
    if (!model)
        return -1;
    for (size_t i = 0; i < t->n; i++) {
        const struct rt_route *r = &t->v[i];
        if (!r->glob && !strcmp(r->name, model))
            return (long)i;
        for (size_t j = 0; j < r->naliases; j++)
            if (!strcmp(r->aliases[j], model))
                return (long)i;
    }
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i].glob && fnmatch(t->v[i].name, model, 0) == 0)
            return (long)i;
    return -1;
}

size_t rt_route_pick(struct rt_route *r, uint64_t now)
{
    size_t best = 0, up = 0;
    double total = 0;
    if (r->nd == 1)
        return 0;
    for (size_t i = 0; i < r->nd; i++)
        up += atomic_load_explicit(&r->d[i].down_until, memory_order_relaxed) <=
              now;
    pthread_mutex_lock(&r->lock);
    int found = 0;
    for (size_t i = 0; i < r->nd; i++) {
        struct rt_deploy *d = &r->d[i];
        if (up &&
            atomic_load_explicit(&d->down_until, memory_order_relaxed) > now)
            continue;
        d->current += d->weight;
        total += d->weight;
        if (!found || d->current > r->d[best].current) {
            best = i;
            found = 1;
        }
    }
    r->d[best].current -= total;
    pthread_mutex_unlock(&r->lock);
    return best;
}
