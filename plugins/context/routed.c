/*
 * routed.c - /v1/models over the model table and the core's routes:
 * routed names with their owner and context window, and a route's
 * deployments and fallbacks for /v1/models/{id}/info. See routed.h.
 */
#include "routed.h"

#include <string.h>

static int is_pattern(const char *name)
{
    return strpbrk(name, "*?[") != NULL;
}

const sluice_json *routed_find(const sluice_host *H, const sluice_json *routes,
                               const char *name)
{
    for (size_t i = 0; name && i < H->json_size(routes); i++) {
        const sluice_json *r = H->json_at(routes, i);
        const char *m = H->json_str(H->json_get(r, "model"));
        if (m && !strcmp(m, name))
            return r;
        const sluice_json *al = H->json_get(r, "aliases");
        for (size_t j = 0; j < H->json_size(al); j++) {
            const char *a = H->json_str(H->json_at(al, j));
            if (a && !strcmp(a, name))
                return r;
        }
    }
    return NULL;
}

/* The upstream of r's first deployment. */
static const char *route_owner(const sluice_host *H, const sluice_json *r)
{
    const sluice_json *d = H->json_at(H->json_get(r, "deployments"), 0);
    const char *up = H->json_str(H->json_get(d, "upstream"));
    return up ? up : "upstream";
}

/* The window of a routed name the table lacks: the route's own
 * context_length, else the table's entry of its first deployment's
 * model; 0 when unknown. */
static int64_t route_context(const sluice_host *H, const struct model_table *t,
                             const sluice_json *r)
{
    const sluice_json *cl = H->json_get(r, "context_length");
    if (H->json_type(cl) == SLUICE_JSON_INT && H->json_int(cl) > 0)
        return H->json_int(cl);
    const sluice_json *d = H->json_at(H->json_get(r, "deployments"), 0);
    const struct model *m =
        models_find(t, H->json_str(H->json_get(d, "model")));
    return m ? m->context_length : 0;
}

/* ,"route":{"model","deployments":[{upstream,model,weight}],"fallbacks"} */
static int render_route(const sluice_host *H, const sluice_json *r,
                        sluice_buf *out)
{
    int rc = H->buf_printf(out, ",\"route\":{\"model\":");
    rc |= H->buf_json_str(out, H->json_str(H->json_get(r, "model")));
    rc |= H->buf_printf(out, ",\"deployments\":[");
    const sluice_json *ds = H->json_get(r, "deployments");
    for (size_t i = 0; i < H->json_size(ds); i++) {
        const sluice_json *d = H->json_at(ds, i);
        const char *m = H->json_str(H->json_get(d, "model"));
        const sluice_json *w = H->json_get(d, "weight");
        rc |= H->buf_printf(out, "%s{\"upstream\":", i ? "," : "");
        rc |= H->buf_json_str(out, H->json_str(H->json_get(d, "upstream")));
        rc |= H->buf_printf(out, ",\"model\":");
        rc |=
            H->buf_json_str(out, m ? m : H->json_str(H->json_get(r, "model")));
        rc |= H->buf_printf(out, ",\"weight\":%g}", w ? H->json_real(w) : 1.0);
    }
    rc |= H->buf_printf(out, "],\"fallbacks\":[");
    const sluice_json *fb = H->json_get(r, "fallbacks");
    for (size_t i = 0; i < H->json_size(fb); i++) {
        if (i)
            rc |= H->buf_append(out, ",", 1);
        rc |= H->buf_json_str(out, H->json_str(H->json_at(fb, i)));
    }
    rc |= H->buf_printf(out, "]}");
    return rc;
}

/* A routed name the table lacks, without the closing brace. */
static int render_routed(const sluice_host *H, const struct model_table *t,
                         const sluice_json *r, const char *name,
                         int64_t created, sluice_buf *out)
{
    int rc = H->buf_printf(out, "{\"id\":");
    rc |= H->buf_json_str(out, name);
    rc |= H->buf_printf(out,
                        ",\"object\":\"model\",\"created\":%lld,"
                        "\"owned_by\":",
                        (long long)created);
    rc |= H->buf_json_str(out, route_owner(H, r));
    int64_t ctx = route_context(H, t, r);
    if (ctx > 0)
        rc |= H->buf_printf(out, ",\"context_length\":%lld", (long long)ctx);
    return rc;
}

/* Each routed name the table lacks, as ",{...}" ("{...}" while *first);
 * *first is 0 once one is written. */
static int render_routed_names(const sluice_host *H,
                               const struct model_table *t,
                               const sluice_json *routes, int64_t created,
                               int *first, sluice_buf *out)
{
    int rc = 0;
    for (size_t i = 0; i < H->json_size(routes); i++) {
        const sluice_json *r = H->json_at(routes, i);
        const sluice_json *al = H->json_get(r, "aliases");
        for (size_t j = 0; j <= H->json_size(al); j++) {
            const char *name = H->json_str(j ? H->json_at(al, j - 1)
                                             : H->json_get(r, "model"));
            if (!name || is_pattern(name) || models_find(t, name))
                continue;
            if (!*first)
                rc |= H->buf_append(out, ",", 1);
            *first = 0;
            rc |= render_routed(H, t, r, name, created, out);
            rc |= H->buf_append(out, "}", 1);
        }
    }
    return rc;
}

int routed_render_list(const sluice_host *H, const struct model_table *t,
                       const sluice_json *routes, int64_t created,
                       const char *extra, sluice_buf *out)
{
    int rc = H->buf_printf(out, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < t->n; i++) {
        const sluice_json *r = routed_find(H, routes, t->v[i].id);
        if (i)
            rc |= H->buf_append(out, ",", 1);
        rc |= models_render_open(H, &t->v[i], created,
                                 r ? route_owner(H, r) : NULL, out);
        rc |= H->buf_append(out, "}", 1);
    }
    int first = t->n == 0;
    rc |= render_routed_names(H, t, routes, created, &first, out);
    if (extra && *extra) /* ",{...},{...}": the upstream's other models */
        rc |= H->buf_append(out, first ? extra + 1 : extra,
                            strlen(extra) - (first ? 1 : 0));
    rc |= H->buf_printf(out, "]}");
    return rc ? -1 : 0;
}

int routed_render_one(const sluice_host *H, const struct model_table *t,
                      const sluice_json *routes, const char *id, int info,
                      int64_t created, sluice_buf *out)
{
    const struct model *m = models_find(t, id);
    const sluice_json *r = is_pattern(id) ? NULL : routed_find(H, routes, id);
    int rc;
    if (m)
        rc = models_render_open(H, m, created, r ? route_owner(H, r) : NULL,
                                out);
    else if (r)
        rc = render_routed(H, t, r, id, created, out);
    else
        return 1;
    if (info && r)
        rc |= render_route(H, r, out);
    rc |= H->buf_append(out, "}", 1);
    return rc ? -1 : 0;
}
