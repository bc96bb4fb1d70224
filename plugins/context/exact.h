/*
 * exact.h - the context stage's exact tokenizers: every model entry that
 * names a `tokenizer:` file gets it loaded at init, once per (file,
 * pattern) however many models share it, and read-only afterwards (request
 * threads count through it concurrently; tok.h).
 */
#ifndef SLUICE_CONTEXT_EXACT_H
#define SLUICE_CONTEXT_EXACT_H

#include "models.h"
#include "sluice.h"

#include <stddef.h>

struct exact_tok {
    char *path, *pattern;
    struct tok *tok;
};

struct exact_set {
    struct exact_tok *v;
    size_t n;
};

/* Load the tokenizers the table's models name and point each model's `tok`
 * at its own. 0, or -1 with err naming the model, the file and what is
 * wrong with it. */
int exact_load(const sluice_host *H, sluice_stage *self, struct exact_set *s,
               struct model_table *t, char *err, size_t errlen);
void exact_free(struct exact_set *s);

#endif
