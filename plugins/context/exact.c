/*
 * exact.c - load the tokenizers of the model table (see exact.h).
 */
#include "exact.h"
#include "tok.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

static struct tok *exact_find(const struct exact_set *s, const char *path,
                              const char *pattern)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i].path, path) && same(s->v[i].pattern, pattern))
            return s->v[i].tok;
    return NULL;
}

static int exact_add(struct exact_set *s, const char *path, const char *pattern,
                     struct tok *tok)
{
    struct exact_tok *v = realloc(s->v, (s->n + 1) * sizeof(*v));
    if (!v)
        return -1;
    s->v = v;
    v[s->n].path = strdup(path);
    v[s->n].pattern = pattern ? strdup(pattern) : NULL;
    v[s->n].tok = tok;
    s->n++;
    if (!v[s->n - 1].path || (pattern && !v[s->n - 1].pattern))
        return -1;
    return 0;
}

int exact_load(const sluice_host *H, sluice_stage *self, struct exact_set *s,
               struct model_table *t, char *err, size_t errlen)
{
    for (size_t i = 0; i < t->n; i++) {
        struct model *m = &t->v[i];
        if (!m->tokenizer)
            continue;
        struct tok *tok = exact_find(s, m->tokenizer, m->pattern);
        if (!tok) {
            char why[512];
            uint64_t t0 = H->wall_ms();
            if (tok_load(m->tokenizer, m->pattern, &tok, why, sizeof(why)) !=
                0) {
                snprintf(err, errlen, "model '%.100s': %s", m->id, why);
                return -1;
            }
            if (exact_add(s, m->tokenizer, m->pattern, tok) != 0) {
                tok_free(tok);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            H->log(self, SLUICE_LOG_INFO,
                   "tokenizer %s%s%s: %s, %u tokens, %.1f MB, loaded in "
                   "%llu ms",
                   m->tokenizer, m->pattern ? " pattern " : "",
                   m->pattern ? m->pattern : "", tok_kind_name(tok),
                   tok_vocab_size(tok), (double)tok_memory(tok) / 1048576.0,
                   (unsigned long long)(H->wall_ms() - t0));
        }
        m->tok = tok;
    }
    return 0;
}

void exact_free(struct exact_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].path);
        free(s->v[i].pattern);
        tok_free(s->v[i].tok);
    }
    free(s->v);
    s->v = NULL;
    s->n = 0;
}
