/*
 * walk.h - walk a chat-completions request body and gather what its prompt
 * costs in tokens: the text of every message (string content, text parts,
 * refusals), names, tool calls and legacy function calls, tool and function
 * definitions, and the chat format's fixed overhead; image and audio parts
 * are counted, to be charged a fixed allowance by the caller.
 *
 * It also validates the shapes it reads: a field of the wrong type stops the
 * walk with its path ("messages[2].content") and a message for a 400. Fields
 * it does not know are ignored. Never allocates.
 */
#ifndef SLUICE_CONTEXT_WALK_H
#define SLUICE_CONTEXT_WALK_H

#include "estimate.h"
#include "sluice.h"

/* Chat-format overhead in tokens (o200k_base, see tests/data/README.md). */
#define WALK_REPLY_PRIMING 3 /* <|start|>assistant<|message|> */
#define WALK_PER_MESSAGE   3 /* tokens_per_message */
#define WALK_PER_NAME      1 /* tokens_per_name */
#define WALK_ROLE          1 /* a known role is one token */
/* Not fitted (the shared data has no tools): rough per-item costs. */
#define WALK_PER_TOOL_CALL  3
#define WALK_PER_TOOL_DEF   8
#define WALK_TOOLS_PREAMBLE 10

#define WALK_MAX_DEPTH 64 /* JSON nesting walked in tool parameters */

/* How to count: with the model's own tokenizer (exact text counts) and its
 * chat format's overhead.  NULL opts: estimate, o200k overhead above.  The
 * tokenizer is reached through `count` (tok_count in the stage), so the
 * walker does not link the tokenizer library. */
struct walk_opts {
    const void *tok; /* NULL: estimate the texts */
    long (*count)(const void *tok, const char *text, size_t len); /* -1 */
    uint64_t per_message, per_name, reply_priming;
};

struct walk {
    const struct walk_opts *opts;
    uint64_t exact;    /* tokens of the texts counted by opts->tok */
    int approx;        /* parts only estimated even with a tokenizer:
                          images/audio, tools, tool calls, JSON values */
    est_counts counts; /* features of all the text */
    uint64_t overhead; /* fixed tokens (format, JSON punctuation) */
    uint64_t images;   /* image and audio parts */
    uint64_t messages;
    const char *code;  /* on error: "invalid_type" or
                          "missing_required_parameter" */
    char field[96];    /* on error: the offending field */
    char message[256]; /* on error: what is wrong with it */
    uint64_t max_item; /* embeddings: tokens of the largest input */
};

/* Walk body (a JSON object). 0 ok, -1 when a field has the wrong type
 * (w->field, w->message set). w is zeroed first. */
int walk_request(const sluice_host *H, const sluice_json *body, struct walk *w);
/* The same, counting as opts says (NULL: as walk_request). */
int walk_request_opts(const sluice_host *H, const sluice_json *body,
                      const struct walk_opts *opts, struct walk *w);

/* Prompt tokens of a walked request (exact text counts when walked with a
 * tokenizer, else the estimate), images charged at image_tokens each. */
uint64_t walk_tokens(const struct walk *w, uint64_t image_tokens);

/* Walk the prompt of another route (walk_api.c): "responses" (input and
 * instructions), "completions" (prompt), "embeddings" (input; each input's
 * tokens also checked into w->max_item). Token arrays count their length.
 * Same contract as walk_request_opts. */
int walk_api_request(const sluice_host *H, const char *route,
                     const sluice_json *body, const struct walk_opts *opts,
                     struct walk *w);

/* Pieces walk_api.c shares with walk.c. */
void walk_bytes(struct walk *w, const char *s, size_t n);
void walk_json(const sluice_host *H, struct walk *w, const sluice_json *v,
               int depth);
int walk_content(const sluice_host *H, struct walk *w, const sluice_json *c,
                 const char *path);
int walk_fail(struct walk *w, sluice_json_type got, const char *want,
              const char *fmt, ...) SLUICE_PRINTF(4, 5);

#endif
