/*
 * models.c - the model table of the context stage (see models.h).
 */
#include "models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The defaults (the MegaLLM catalogue as of issue 4). */
static const struct {
    const char *id;
    int64_t context_length;
} default_models[] = {
    {"qwen/qwen3-next-80b-a3b-instruct", 262000},
    {"moonshotai/kimi-k2-instruct-0905", 256000},
    {"deepseek-ai/deepseek-v3.1-terminus", 164000},
    {"llama3.3-70b-instruct", 131000},
    {"alibaba-qwen3-32b", 131000},
    {"openai-gpt-oss-120b", 128000},
    {"openai-gpt-oss-20b", 128000},
    {"deepseek-r1-distill-llama-70b", 128000},
    {"deepseek-ai/deepseek-v3.1", 128000},
    {"mistralai/mistral-nemotron", 128000},
    {"minimaxai/minimax-m2", 128000},
    {"llama3-8b-instruct", 8000},
    /* embedding models: the window of each input */
    {"text-embedding-3-small", 8192},
    {"text-embedding-3-large", 8192},
    {"text-embedding-ada-002", 8192},
};

static struct model *models_append(struct model_table *t, const char *id)
{
    struct model *v = realloc(t->v, (t->n + 1) * sizeof(*v));
    if (!v)
        return NULL;
    t->v = v;
    struct model *m = &v[t->n];
    memset(m, 0, sizeof *m);
    if (!(m->id = strdup(id)))
        return NULL;
    m->overhead = (struct chat_overhead){3, 1, 3};
    t->n++;
    return m;
}

int models_defaults(struct model_table *t)
{
    size_t n = sizeof default_models / sizeof default_models[0];
    for (size_t i = 0; i < n; i++) {
        struct model *m = models_append(t, default_models[i].id);
        if (!m)
            return -1;
        m->context_length = default_models[i].context_length;
    }
    return 0;
}

const struct model *models_find(const struct model_table *t, const char *id)
{
    for (size_t i = 0; id && i < t->n; i++)
        if (!strcmp(t->v[i].id, id))
            return &t->v[i];
    return NULL;
}

void models_free(struct model_table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].id);
        free(t->v[i].description);
        free(t->v[i].tokenizer);
        free(t->v[i].pattern);
    }
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

static int entry_check_keys(const sluice_host *H, const sluice_json *e,
                            size_t i, char *err, size_t errlen)
{
    static const char *const known[] = {
        "id",        "context_length", "max_output_tokens", "description",
        "tokenizer", "pattern",        "chat_overhead",     NULL};
    for (void *it = H->json_iter(e); it; it = H->json_iter_next(e, it)) {
        const char *k = H->json_iter_key(it);
        const char *const *p = known;
        while (*p && strcmp(*p, k))
            p++;
        if (!*p) {
            snprintf(err, errlen,
                     "models[%zu]: unknown key '%.64s' (known: id, "
                     "context_length, max_output_tokens, description, "
                     "tokenizer, pattern, chat_overhead)",
                     i, k);
            return -1;
        }
    }
    return 0;
}

static int entry_int(const sluice_host *H, const sluice_json *e,
                     const char *key, size_t i, int64_t *out, char *err,
                     size_t errlen)
{
    int64_t v;
    if (H->cfg_int(e, key, 0, &v) != 0 || (H->json_get(e, key) && v <= 0)) {
        snprintf(err, errlen, "models[%zu].%s: expected a positive integer", i,
                 key);
        return -1;
    }
    if (H->json_get(e, key))
        *out = v;
    return 0;
}

/* Replace *dst with a copy of the string field `key` when present. */
static int entry_str(const sluice_host *H, const sluice_json *e,
                     const char *key, size_t i, char **dst, char *err,
                     size_t errlen)
{
    const sluice_json *v = H->json_get(e, key);
    if (!v)
        return 0;
    if (H->json_type(v) != SLUICE_JSON_STRING || !H->json_strlen(v)) {
        snprintf(err, errlen, "models[%zu].%s: expected a non-empty string", i,
                 key);
        return -1;
    }
    char *s = strdup(H->json_str(v));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    free(*dst);
    *dst = s;
    return 0;
}

/* chat_overhead: {per_message, per_name, reply_priming}, each >= 0. */
static int entry_overhead(const sluice_host *H, const sluice_json *e, size_t i,
                          struct chat_overhead *o, char *err, size_t errlen)
{
    static const char *const keys[] = {"per_message", "per_name",
                                       "reply_priming"};
    int64_t *dst[] = {&o->per_message, &o->per_name, &o->reply_priming};
    const sluice_json *v = H->json_get(e, "chat_overhead");
    if (!v)
        return 0;
    if (H->json_type(v) != SLUICE_JSON_OBJECT)
        goto bad;
    for (void *it = H->json_iter(v); it; it = H->json_iter_next(v, it)) {
        const char *k = H->json_iter_key(it);
        const sluice_json *x = H->json_iter_value(it);
        size_t j = 0;
        while (j < 3 && strcmp(keys[j], k))
            j++;
        if (j == 3 || H->json_type(x) != SLUICE_JSON_INT ||
            H->json_int(x) < 0 || H->json_int(x) > 1000)
            goto bad;
        *dst[j] = H->json_int(x);
    }
    return 0;
bad:
    snprintf(err, errlen,
             "models[%zu].chat_overhead: expected {per_message, "
             "per_name, reply_priming} as integers from 0 to 1000",
             i);
    return -1;
}

static int models_entry(const sluice_host *H, struct model_table *t,
                        const sluice_json *e, size_t i, char *err,
                        size_t errlen)
{
    if (H->json_type(e) != SLUICE_JSON_OBJECT) {
        snprintf(err, errlen,
                 "models[%zu]: expected a mapping {id, "
                 "context_length, ...}",
                 i);
        return -1;
    }
    if (entry_check_keys(H, e, i, err, errlen) != 0)
        return -1;
    const char *id = H->json_str(H->json_get(e, "id"));
    if (!id || !*id) {
        snprintf(err, errlen, "models[%zu].id: expected a non-empty string", i);
        return -1;
    }
    int64_t ctx = 0, maxout = 0;
    if (entry_int(H, e, "context_length", i, &ctx, err, errlen) != 0 ||
        entry_int(H, e, "max_output_tokens", i, &maxout, err, errlen) != 0)
        return -1;
    const sluice_json *d = H->json_get(e, "description");
    if (d && H->json_type(d) != SLUICE_JSON_STRING) {
        snprintf(err, errlen, "models[%zu].description: expected a string", i);
        return -1;
    }
    struct model *m = (struct model *)models_find(t, id);
    if (!m) {
        if (!ctx) {
            snprintf(err, errlen,
                     "models[%zu] ('%.64s'): context_length is required for "
                     "a model not in the built-in table",
                     i, id);
            return -1;
        }
        if (!(m = models_append(t, id)))
            goto oom;
    }
    if (ctx)
        m->context_length = ctx;
    if (maxout)
        m->max_output_tokens = maxout;
    if (d) {
        char *s = strdup(H->json_str(d));
        if (!s)
            goto oom;
        free(m->description);
        m->description = s;
    }
    if (entry_str(H, e, "tokenizer", i, &m->tokenizer, err, errlen) != 0 ||
        entry_str(H, e, "pattern", i, &m->pattern, err, errlen) != 0 ||
        entry_overhead(H, e, i, &m->overhead, err, errlen) != 0)
        return -1;
    if (m->pattern && !m->tokenizer) {
        snprintf(err, errlen,
                 "models[%zu].pattern: only with a tokenizer "
                 "(a tiktoken rank file)",
                 i);
        return -1;
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

int models_configure(const sluice_host *H, struct model_table *t,
                     const sluice_json *list, char *err, size_t errlen)
{
    if (!list)
        return 0;
    if (H->json_type(list) != SLUICE_JSON_ARRAY) {
        snprintf(err, errlen,
                 "models: expected a list of {id, "
                 "context_length, max_output_tokens, "
                 "description}");
        return -1;
    }
    for (size_t i = 0; i < H->json_size(list); i++)
        if (models_entry(H, t, H->json_at(list, i), i, err, errlen) != 0)
            return -1;
    return 0;
}

int models_render_open(const sluice_host *H, const struct model *m,
                       int64_t created, const char *owned_by, sluice_buf *out)
{
    const char *slash = strchr(m->id, '/');
    int rc = H->buf_printf(out, "{\"id\":");
    rc |= H->buf_json_str(out, m->id);
    rc |= H->buf_printf(out,
                        ",\"object\":\"model\",\"created\":%lld,"
                        "\"owned_by\":",
                        (long long)created);
    char owner[128] = "megallm"; /* the organisation part of the id */
    if (owned_by)
        snprintf(owner, sizeof owner, "%s", owned_by);
    else if (slash && slash > m->id)
        snprintf(owner, sizeof owner, "%.*s", (int)(slash - m->id), m->id);
    rc |= H->buf_json_str(out, owner);
    rc |= H->buf_printf(out, ",\"context_length\":%lld",
                        (long long)m->context_length);
    if (m->max_output_tokens)
        rc |= H->buf_printf(out, ",\"max_output_tokens\":%lld",
                            (long long)m->max_output_tokens);
    if (m->description) {
        rc |= H->buf_printf(out, ",\"description\":");
        rc |= H->buf_json_str(out, m->description);
    }
    return rc ? -1 : 0;
}
