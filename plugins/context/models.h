/*
 * models.h - the context stage's model table: the built-in defaults,
 * overridden and extended by the stage's `models:` config, and its JSON
 * rendering of one model object (routed.c lists them). Read-only once
 * init has built it, so request threads share it without a lock.
 */
#ifndef SLUICE_CONTEXT_MODELS_H
#define SLUICE_CONTEXT_MODELS_H

#include "sluice.h"

#include <stddef.h>
#include <stdint.h>

struct tok;

/* Chat-format overhead in tokens around the counted texts. */
struct chat_overhead {
    int64_t per_message;   /* tokens_per_message (3) */
    int64_t per_name;      /* tokens_per_name (1) */
    int64_t reply_priming; /* <|start|>assistant<|message|> (3) */
};

struct model {
    char *id;
    int64_t context_length;
    int64_t max_output_tokens; /* 0: not stated */
    char *description;         /* NULL: none */
    char *tokenizer;           /* tokenizer file, NULL: estimate */
    char *pattern;             /* tiktoken split pattern name, or NULL */
    struct chat_overhead overhead;
    const struct tok *tok; /* loaded (tokenizers.c owns it), or NULL */
};

struct model_table {
    struct model *v;
    size_t n;
};

/* Fill an empty table with the built-in defaults. 0 or -1 (out of memory). */
int models_defaults(struct model_table *t);
/* Merge the `models:` config list into t: an entry whose id is in the table
 * overrides the fields it gives; a new id is appended (context_length then
 * required). Unknown keys are errors. 0, or -1 with err set. */
int models_configure(const sluice_host *H, struct model_table *t,
                     const sluice_json *list, char *err, size_t errlen);
const struct model *models_find(const struct model_table *t, const char *id);
void models_free(struct model_table *t);

/* {"id","object":"model","created","owned_by","context_length",...
 * without the closing brace (routed.c appends the route and closes it).
 * owned_by NULL: the organisation part of the id, else "megallm". */
int models_render_open(const sluice_host *H, const struct model *m,
                       int64_t created, const char *owned_by, sluice_buf *out);

#endif
