/*
 * models_routed.c - see models_routed.h. A routed name's context_length:
 * the table's entry for the name, else the route's own context_length,
 * else the table's window of its first deployment's model, else absent.
 */
#include "models_routed.h"

#include <stdio.h>
#include <string.h>

#define MODELS_CREATED 1704067200 /* a fixed date: stable across restarts */

static int is_pattern(const char *name)
{
    return strpbrk(name, "*?[") != NULL;
}

static const json_t *table_find(const json_t *models, const char *id)
{
    size_t i;
    const json_t *m;
    json_array_foreach(models, i, m)
    {
        const char *mid = json_string_value(json_object_get(m, "id"));
        if (id && mid && !strcmp(mid, id))
            return m;
    }
    return NULL;
}

/* The route whose name or an alias is `name` (exactly), or NULL. */
static const json_t *route_find(const json_t *routes, const char *name)
{
    size_t i, j;
    const json_t *r, *a;
    json_array_foreach(routes, i, r)
    {
        const char *m = json_string_value(json_object_get(r, "model"));
        if (m && !strcmp(m, name))
            return r;
        json_array_foreach(json_object_get(r, "aliases"), j, a)
        {
            if (json_string_value(a) && !strcmp(json_string_value(a), name))
                return r;
        }
    }
    return NULL;
}

static const json_t *first_deployment(const json_t *r)
{
    return json_array_get(json_object_get(r, "deployments"), 0);
}

static const char *route_owner(const json_t *r)
{
    const char *up =
        json_string_value(json_object_get(first_deployment(r), "upstream"));
    return up ? up : "upstream";
}

/* A table entry as a model object: owned_by from its id's "vendor/" part
 * (else megallm) unless the config says, or its route's upstream. */
static json_t *table_object(const json_t *m, const json_t *r)
{
    json_t *o = json_deep_copy(m);
    const char *id = json_string_value(json_object_get(m, "id"));
    char owner[128] = "megallm";
    const char *slash = id ? strchr(id, '/') : NULL;
    if (!o)
        return NULL;
    if (slash && (size_t)(slash - id) < sizeof owner)
        snprintf(owner, sizeof owner, "%.*s", (int)(slash - id), id);
    json_object_set_new(o, "object", json_string("model"));
    if (!json_object_get(o, "created"))
        json_object_set_new(o, "created", json_integer(MODELS_CREATED));
    if (r)
        json_object_set_new(o, "owned_by", json_string(route_owner(r)));
    else if (!json_object_get(o, "owned_by"))
        json_object_set_new(o, "owned_by", json_string(owner));
    return o;
}

/* A routed name the table lacks. */
static json_t *routed_object(const json_t *models, const json_t *r,
                             const char *name)
{
    const json_t *cl = json_object_get(r, "context_length");
    json_int_t ctx = json_is_integer(cl) ? json_integer_value(cl) : 0;
    if (ctx <= 0) {
        const char *dm =
            json_string_value(json_object_get(first_deployment(r), "model"));
        const json_t *t = dm ? table_find(models, dm) : NULL;
        cl = json_object_get(t, "context_length");
        ctx = json_is_integer(cl) ? json_integer_value(cl) : 0;
    }
    json_t *o =
        json_pack("{s:s,s:s,s:I,s:s}", "id", name, "object", "model", "created",
                  (json_int_t)MODELS_CREATED, "owned_by", route_owner(r));
    if (o && ctx > 0)
        json_object_set_new(o, "context_length", json_integer(ctx));
    return o;
}

/* "route": {model, deployments: [{upstream, model, weight}], fallbacks} */
static json_t *route_object(const json_t *r)
{
    const json_t *name = json_object_get(r, "model"), *d;
    json_t *deps = json_array(), *fb = json_object_get(r, "fallbacks");
    size_t i;
    json_array_foreach(json_object_get(r, "deployments"), i, d)
    {
        const json_t *m = json_object_get(d, "model"),
                     *w = json_object_get(d, "weight");
        json_array_append_new(deps, json_pack("{s:O,s:O,s:f}", "upstream",
                                              json_object_get(d, "upstream"),
                                              "model", m ? m : name, "weight",
                                              w ? json_number_value(w) : 1.0));
    }
    return json_pack("{s:O,s:o,s:o}", "model", name, "deployments", deps,
                     "fallbacks", fb ? json_deep_copy(fb) : json_array());
}

json_t *models_routed_list(const json_t *models, const json_t *routes)
{
    json_t *data = json_array(), *a;
    const json_t *m, *r;
    size_t i, j;
    json_array_foreach(models, i, m)
    {
        const char *id = json_string_value(json_object_get(m, "id"));
        json_array_append_new(
            data, table_object(m, id ? route_find(routes, id) : NULL));
    }
    json_array_foreach(routes, i, r)
    {
        const json_t *al = json_object_get(r, "aliases");
        for (j = 0; j <= json_array_size(al); j++) {
            a = (json_t *)(j ? json_array_get(al, j - 1)
                             : json_object_get(r, "model"));
            const char *name = json_string_value(a);
            if (!name || is_pattern(name) || table_find(models, name))
                continue;
            json_array_append_new(data, routed_object(models, r, name));
        }
    }
    return json_pack("{s:s,s:o}", "object", "list", "data", data);
}

json_t *models_routed_one(const json_t *models, const json_t *routes,
                          const char *id, int info)
{
    const json_t *m = table_find(models, id);
    const json_t *r = is_pattern(id) ? NULL : route_find(routes, id);
    json_t *o = m   ? table_object(m, r)
                : r ? routed_object(models, r, id)
                    : NULL;
    if (o && info && r)
        json_object_set_new(o, "route", route_object(r));
    return o;
}
