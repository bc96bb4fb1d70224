/*
 * upstream_set.c - a generation's upstreams from cfg->upstreams: the query
 * encoded and the header lines built once, so an attempt only picks one
 * and composes its URL (base + path, a {model} path with the model name
 * spliced in, + query). Not here: validation (config_routes.c), sending
 * (upstream.c).
 */
#include "upstream_set.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* "k=v&k2=v2" (percent-encoded) of the query mapping; NULL when empty. */
static int query_encode(const json_t *q, char **out)
{
    const char *k;
    json_t *v;
    buf_t b;
    size_t len;
    *out = NULL;
    if (!json_object_size(q))
        return 0;
    buf_init(&b);
    json_object_foreach((json_t *)q, k, v)
    {
        char *ek = curl_easy_escape(NULL, k, 0);
        char *ev = curl_easy_escape(NULL, json_string_value(v), 0);
        if (ek && ev) {
            buf_puts(&b, b.len ? "&" : "");
            buf_puts(&b, ek);
            buf_puts(&b, "=");
            buf_puts(&b, ev);
        }
        curl_free(ek);
        curl_free(ev);
        if (!ek || !ev) {
            buf_release(&b);
            return -1;
        }
    }
    if (b.oom) {
        buf_release(&b);
        return -1;
    }
    *out = buf_steal(&b, &len);
    return *out ? 0 : -1;
}

static int def_build(struct upstream_def *d, const json_t *e)
{
    const json_t *h = json_object_get(e, "headers");
    const char *k;
    json_t *v;

    d->name = json_string_value(json_object_get(e, "name"));
    d->base_url = json_string_value(json_object_get(e, "base_url"));
    d->paths = json_object_get(e, "paths");
    d->auth_header = json_string_value(json_object_get(e, "auth_header"));
    if (d->auth_header && !strcasecmp(d->auth_header, "authorization"))
        d->auth_header = NULL;
    d->timeout_ms = (long)json_integer_value(json_object_get(e, "timeout_ms"));
    d->connect_timeout_ms =
        (long)json_integer_value(json_object_get(e, "connect_timeout_ms"));
    d->has_tls = json_object_get(e, "verify") != NULL;
    d->ca_file = json_string_value(json_object_get(e, "ca_file"));
    d->verify = !json_is_false(json_object_get(e, "verify"));
    d->forward = json_object_get(e, "forward_headers");
    d->add = json_object_get(e, "add_headers");
    if (query_encode(json_object_get(e, "query"), &d->query) != 0)
        return -1;
    const char *chat = json_string_value(json_object_get(d->paths, "chat"));
    if (!chat || !strstr(chat, "{model}")) {
        buf_t b;
        size_t n;
        buf_init(&b);
        if (upstream_def_url(d, "chat", "/chat/completions", NULL, &b) != 0) {
            buf_release(&b);
            return -1;
        }
        d->chat_url = buf_steal(&b, &n);
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
        free(d->query);
        free(d->chat_url);
        for (size_t j = 0; j < UPSTREAM_URL_WORKERS; j++)
            curl_url_cleanup(d->chat_curlu[j]);
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

int upstream_def_plain_chat(const struct upstream_def *u)
{
    return !u->query && !json_object_get(u->paths, "chat");
}

int upstream_def_url(const struct upstream_def *u, const char *route,
                     const char *path, const char *model, buf_t *b)
{
    const char *own = json_string_value(json_object_get(u->paths, route));
    const char *tpl = own ? strstr(own, "{model}") : NULL;
    buf_puts(b, u->base_url);
    if (tpl) {
        char *em = curl_easy_escape(NULL, model ? model : "", 0);
        if (!em)
            return -1;
        buf_append(b, own, (size_t)(tpl - own));
        buf_puts(b, em);
        buf_puts(b, tpl + 7);
        curl_free(em);
    } else {
        buf_puts(b, own ? own : path);
    }
    if (u->query) {
        buf_puts(b, "?");
        buf_puts(b, u->query);
    }
    return b->oom ? -1 : 0;
}

void upstream_def_auth(const struct upstream_def *u, const char *name,
                       const char *value, const char **out_name,
                       const char **out_value)
{
    *out_name = name;
    *out_value = value;
    if (u && u->auth_header && !strcasecmp(name, "authorization")) {
        *out_name = u->auth_header;
        if (!strncasecmp(value, "Bearer ", 7))
            *out_value = value + 7;
    }
}

/* One "Name: value" line appended to *l; -1 out of memory. */
static int line_add(struct curl_slist **l, const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 3;
    char *line = malloc(n);
    struct curl_slist *t = NULL;
    if (line) {
        snprintf(line, n, "%s: %s", name, value);
        t = curl_slist_append(*l, line);
        memset(line, 0, n);
        free(line);
    }
    if (!t)
        return -1;
    *l = t;
    return 0;
}

struct curl_slist *upstream_def_probe_headers(const struct upstream_def *u,
                                              const char *authorization)
{
    struct curl_slist *l = NULL, *t;
    const char *name, *value, *k;
    json_t *v;
    if (authorization) {
        upstream_def_auth(u, "Authorization", authorization, &name, &value);
        if (line_add(&l, name, value) != 0)
            goto fail;
    } else if (line_add(&l, "X-Probe", "1") != 0) {
        goto fail;
    }
    for (size_t i = 0; i < u->nhdr; i++) {
        if (!(t = curl_slist_append(l, u->hdr_lines[i])))
            goto fail;
        l = t;
    }
    json_object_foreach((json_t *)u->add, k, v)
    {
        if (json_is_string(v) && line_add(&l, k, json_string_value(v)) != 0)
            goto fail;
    }
    return l;
fail:
    for (t = l; t; t = t->next)
        memset(t->data, 0, strlen(t->data));
    curl_slist_free_all(l);
    return NULL;
}

CURLU *upstream_def_chat_curlu(const struct upstream_def *cu, int id)
{
    /* the set is immutable but for this per-worker slot (a heap object) */
    struct upstream_def *u = (struct upstream_def *)cu;
    if (!u->chat_url || id < 0 || id >= UPSTREAM_URL_WORKERS)
        return NULL;
    if (!u->chat_curlu[id]) {
        CURLU *c = curl_url();
        if (c && curl_url_set(c, CURLUPART_URL, u->chat_url, 0) != CURLUE_OK) {
            curl_url_cleanup(c); /* the text URL reports the error */
            c = NULL;
        }
        u->chat_curlu[id] = c;
    }
    return u->chat_curlu[id];
}
