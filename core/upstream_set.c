/*
 * upstream_set.c - a generation's upstreams from cfg->upstreams: URLs
 * composed once (base_url + the chat path + ?query), header lines built
 * once, so an attempt only picks one and, for a {model} path, splices the
 * model name in. Not here: validation (config_routes.c), sending
 * (upstream.c).
 */
#include "upstream_set.h"
#include "buf.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Append "?k=v&k2=v2" (percent-encoded) for the query mapping. */
static int query_append(buf_t *b, const json_t *q)
{
    const char *k;
    json_t *v;
    int first = 1;
    json_object_foreach((json_t *)q, k, v)
    {
        char *ek = curl_easy_escape(NULL, k, 0);
        char *ev = curl_easy_escape(NULL, json_string_value(v), 0);
        if (ek && ev) {
            buf_puts(b, first ? "?" : "&");
            buf_puts(b, ek);
            buf_puts(b, "=");
            buf_puts(b, ev);
        }
        curl_free(ek);
        curl_free(ev);
        if (!ek || !ev)
            return -1;
        first = 0;
    }
    return b->oom ? -1 : 0;
}

static char *join(const char *a, size_t alen, const char *b, const json_t *q)
{
    buf_t out;
    buf_init(&out);
    buf_append(&out, a, alen);
    buf_puts(&out, b);
    if (q && query_append(&out, q) != 0) {
        buf_release(&out);
        return NULL;
    }
    if (out.oom) {
        buf_release(&out);
        return NULL;
    }
    size_t len;
    return buf_steal(&out, &len);
}

static int def_build(struct upstream_def *d, const json_t *e)
{
    const char *base = json_string_value(json_object_get(e, "base_url"));
    const char *path =
        json_string_value(json_object_get(json_object_get(e, "paths"), "chat"));
    const json_t *q = json_object_get(e, "query");
    const json_t *h = json_object_get(e, "headers");
    const char *tpl, *k;
    json_t *v;

    d->name = json_string_value(json_object_get(e, "name"));
    d->auth_header = json_string_value(json_object_get(e, "auth_header"));
    if (d->auth_header && !strcasecmp(d->auth_header, "authorization"))
        d->auth_header = NULL;
    d->timeout_ms = (long)json_integer_value(json_object_get(e, "timeout_ms"));
    d->connect_timeout_ms =
        (long)json_integer_value(json_object_get(e, "connect_timeout_ms"));
    if (!path)
        path = "/chat/completions";
    tpl = strstr(path, "{model}");
    if (tpl) {
        size_t bl = strlen(base), pl = (size_t)(tpl - path);
        d->url_pre = malloc(bl + pl + 1);
        if (d->url_pre) {
            memcpy(d->url_pre, base, bl);
            memcpy(d->url_pre + bl, path, pl);
            d->url_pre[bl + pl] = '\0';
        }
        d->url_post = join("", 0, tpl + 7, q);
        if (!d->url_pre || !d->url_post)
            return -1;
    } else {
        d->url = join(base, strlen(base), path, q);
        if (!d->url)
            return -1;
    }
    d->nhdr = json_object_size(h);
    d->hdr_lines = calloc(d->nhdr ? d->nhdr : 1, sizeof *d->hdr_lines);
    if (!d->hdr_lines)
        return -1;
    size_t i = 0;
    json_object_foreach((json_t *)h, k, v)
    {
        size_t n = strlen(k) + strlen(json_string_value(v)) + 3;
        d->hdr_lines[i] = malloc(n);
        if (!d->hdr_lines[i])
            return -1;
        snprintf(d->hdr_lines[i], n, "%s: %s", k, json_string_value(v));
        i++;
    }
    return 0;
}

struct upstream_set *upstream_set_new(const struct config *cfg, char *err,
                                      size_t errlen)
{
    struct upstream_set *s = calloc(1, sizeof *s);
    size_t n = json_array_size(cfg->upstreams);
    if (!s || n == 0)
        goto fail;
    s->v = calloc(n, sizeof *s->v);
    if (!s->v)
        goto fail;
    s->n = n;
    s->json = json_incref(cfg->upstreams);
    s->routes = json_incref(cfg->routes);
    for (size_t i = 0; i < n; i++)
        if (def_build(&s->v[i], json_array_get(cfg->upstreams, i)) != 0)
            goto fail;
    return s;
fail:
    snprintf(err, errlen, n ? "out of memory" : "no upstream configured");
    upstream_set_free(s);
    return NULL;
}

void upstream_set_free(struct upstream_set *s)
{
    if (!s)
        return;
    for (size_t i = 0; s->v && i < s->n; i++) {
        struct upstream_def *d = &s->v[i];
        free(d->url);
        free(d->url_pre);
        free(d->url_post);
        for (size_t j = 0; d->hdr_lines && j < d->nhdr; j++)
            free(d->hdr_lines[j]);
        free(d->hdr_lines);
    }
    free(s->v);
    json_decref(s->json);
    json_decref(s->routes);
    free(s);
}

const struct upstream_def *upstream_set_find(const struct upstream_set *s,
                                             const char *name)
{
    for (size_t i = 0; s && i < s->n; i++)
        if (!strcmp(s->v[i].name, name))
            return &s->v[i];
    return NULL;
}

const char *upstream_def_url(const struct upstream_def *u, const char *model,
                             char *out, size_t outlen)
{
    if (u->url)
        return u->url;
    char *em = curl_easy_escape(NULL, model ? model : "", 0);
    if (!em)
        return NULL;
    int n = snprintf(out, outlen, "%s%s%s", u->url_pre, em, u->url_post);
    curl_free(em);
    return n > 0 && (size_t)n < outlen ? out : NULL;
}
