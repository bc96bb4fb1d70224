/*
 * route_state.c - the router's state across a hot reload (export_state /
 * import_state): each deployment's smooth weighted round-robin position
 * and what is left of its cooldown, so a reload neither restarts the
 * spread nor sends traffic straight back to a deployment that just
 * failed. Matched by route name (the `model:` as written) and deployment
 * (upstream, model sent upstream); what the new config lacks is dropped,
 * what it adds starts fresh.
 *
 *   {"version":1,"routes":[{"model":"m","deployments":[
 *     {"upstream":"a","model":"x" | null,"current":1.5,"down_ms":1200}]}]}
 */
#include "route_table.h"

#include <math.h>
#include <string.h>

#define RT_DOWN_MAX_MS (3600u * 1000u) /* the longest cooldown there is */

int rt_state_export(const sluice_host *H, struct rt_table *t, uint64_t now,
                    sluice_buf *out)
{
    H->buf_printf(out, "{\"version\":1,\"routes\":[");
    for (size_t i = 0; i < t->n; i++) {
        struct rt_route *r = &t->v[i];
        H->buf_printf(out, "%s{\"model\":", i ? "," : "");
        H->buf_json_str(out, r->name);
        H->buf_printf(out, ",\"deployments\":[");
        pthread_mutex_lock(&r->lock);
        for (size_t j = 0; j < r->nd; j++) {
            struct rt_deploy *d = &r->d[j];
            uint64_t until = atomic_load(&d->down_until);
            H->buf_printf(out, "%s{\"upstream\":", j ? "," : "");
            H->buf_json_str(out, d->upstream);
            H->buf_printf(out, ",\"model\":");
            if (d->model)
                H->buf_json_str(out, d->model);
            else
                H->buf_printf(out, "null");
            H->buf_printf(out, ",\"current\":%.17g,\"down_ms\":%llu}",
                          d->current,
                          (unsigned long long)(until > now ? until - now : 0));
        }
        pthread_mutex_unlock(&r->lock);
        H->buf_printf(out, "]}");
    }
    return H->buf_printf(out, "]}");
}

static struct rt_route *route_named(struct rt_table *t, const char *name)
{
    for (size_t i = 0; name && i < t->n; i++)
        if (!strcmp(t->v[i].name, name))
            return &t->v[i];
    return NULL;
}

static struct rt_deploy *deploy_of(struct rt_route *r, const char *upstream,
                                   const char *model)
{
    for (size_t j = 0; upstream && j < r->nd; j++) {
        struct rt_deploy *d = &r->d[j];
        if (!strcmp(d->upstream, upstream) &&
            (d->model && model ? !strcmp(d->model, model)
                               : !d->model && !model))
            return d;
    }
    return NULL;
}

/* One route's deployments from the document's entry e. */
static void import_route(const sluice_host *H, struct rt_route *r,
                         const sluice_json *deps, uint64_t now)
{
    pthread_mutex_lock(&r->lock);
    for (size_t j = 0; j < H->json_size(deps); j++) {
        const sluice_json *e = H->json_at(deps, j);
        struct rt_deploy *d =
            deploy_of(r, H->json_str(H->json_get(e, "upstream")),
                      H->json_str(H->json_get(e, "model")));
        double cur = H->json_real(H->json_get(e, "current"));
        int64_t down = H->json_int(H->json_get(e, "down_ms"));
        if (!d)
            continue;
        /* a position is within a few total weights of 0; anything else is
         * not ours */
        if (isfinite(cur) && fabs(cur) < 1e12)
            d->current = cur;
        if (down > 0 && down <= (int64_t)RT_DOWN_MAX_MS)
            atomic_store(&d->down_until, now + (uint64_t)down);
    }
    pthread_mutex_unlock(&r->lock);
}

int rt_state_import(const sluice_host *H, struct rt_table *t, uint64_t now,
                    const char *state, size_t len)
{
    char err[128];
    sluice_json *doc = H->json_parse(state, len, err, sizeof err);
    if (!doc)
        return -1;
    if (H->json_int(H->json_get(doc, "version")) != 1) {
        H->json_free(doc);
        return 0; /* a later format: start fresh */
    }
    const sluice_json *routes = H->json_get(doc, "routes");
    for (size_t i = 0; i < H->json_size(routes); i++) {
        const sluice_json *e = H->json_at(routes, i);
        struct rt_route *r =
            route_named(t, H->json_str(H->json_get(e, "model")));
        if (r)
            import_route(H, r, H->json_get(e, "deployments"), now);
    }
    H->json_free(doc);
    return 0;
}
