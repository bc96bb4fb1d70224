/*
 * walk_api.c - what the prompt of the other OpenAI routes costs in tokens:
 * the Responses API's `input` (a string or a list of items) with its
 * `instructions`, legacy completions' `prompt`, and embeddings' `input`
 * (strings or token arrays, each input its own window). Same counting as
 * walk.c (the model's tokenizer when there is one, else the estimate).
 */
#include "walk.h"

#include <stdio.h>
#include <string.h>

/* A token array ([1, 2, 3]): its length is its count. 1 when v is one. */
static int walk_token_array(const sluice_host *H, struct walk *w,
                            const sluice_json *v)
{
    size_t n = H->json_size(v);
    if (H->json_type(v) != SLUICE_JSON_ARRAY || n == 0 ||
        H->json_type(H->json_at(v, 0)) != SLUICE_JSON_INT)
        return 0;
    w->exact += n;
    return 1;
}

/* One input of a list: a string or a token array; its tokens. */
static int walk_one_input(const sluice_host *H, struct walk *w,
                          const sluice_json *v, const char *path, size_t i,
                          uint64_t *tokens)
{
    uint64_t before = walk_tokens(w, 0);
    if (H->json_type(v) == SLUICE_JSON_STRING)
        walk_bytes(w, H->json_str(v), H->json_strlen(v));
    else if (!walk_token_array(H, w, v))
        return walk_fail(w, H->json_type(v), "a string or an array of tokens",
                         "%s[%zu]", path, i);
    *tokens = walk_tokens(w, 0) - before;
    return 0;
}

/* prompt / input: a string, a token array, or a list of either. */
static int walk_inputs(const sluice_host *H, struct walk *w,
                       const sluice_json *v, const char *path)
{
    uint64_t t = 0;
    switch (H->json_type(v)) {
    case SLUICE_JSON_STRING:
        walk_bytes(w, H->json_str(v), H->json_strlen(v));
        w->max_item = walk_tokens(w, 0);
        return 0;
    case SLUICE_JSON_ARRAY:
        if (walk_token_array(H, w, v)) {
            w->max_item = w->exact;
            return 0;
        }
        for (size_t i = 0; i < H->json_size(v); i++) {
            if (walk_one_input(H, w, H->json_at(v, i), path, i, &t) != 0)
                return -1;
            if (t > w->max_item)
                w->max_item = t;
        }
        return 0;
    default:
        return walk_fail(w, H->json_type(v),
                         "a string or an array of strings or tokens", "%s",
                         path);
    }
}

/* One item of a Responses `input` list: a message ({role, content}), a
 * function call or its output, or another item type (counted as JSON). */
static int walk_item(const sluice_host *H, struct walk *w,
                     const sluice_json *it, size_t i)
{
    char path[64];
    snprintf(path, sizeof path, "input[%zu]", i);
    if (H->json_type(it) != SLUICE_JSON_OBJECT)
        return walk_fail(w, H->json_type(it), "an object", "%s", path);
    const sluice_json *content = H->json_get(it, "content");
    const char *type = H->json_str(H->json_get(it, "type"));
    w->overhead += w->opts ? w->opts->per_message : WALK_PER_MESSAGE;
    w->messages++;
    if (content) {
        snprintf(path, sizeof path, "input[%zu].content", i);
        return walk_content(H, w, content, path);
    }
    if (type && !strcmp(type, "function_call_output")) {
        const sluice_json *out = H->json_get(it, "output");
        if (H->json_type(out) == SLUICE_JSON_STRING)
            walk_bytes(w, H->json_str(out), H->json_strlen(out));
        else
            walk_json(H, w, out, 0);
        return 0;
    }
    if (type && !strcmp(type, "function_call")) {
        const sluice_json *a = H->json_get(it, "arguments");
        const sluice_json *n = H->json_get(it, "name");
        walk_bytes(w, H->json_str(a) ? H->json_str(a) : "", H->json_strlen(a));
        walk_bytes(w, H->json_str(n) ? H->json_str(n) : "", H->json_strlen(n));
        w->approx = 1;
        return 0;
    }
    walk_json(H, w, it, 0); /* item_reference, reasoning, ...: roughly */
    return 0;
}

static int walk_responses(const sluice_host *H, const sluice_json *body,
                          struct walk *w)
{
    const sluice_json *ins = H->json_get(body, "instructions");
    const sluice_json *in = H->json_get(body, "input");
    sluice_json_type it = H->json_type(ins), t = H->json_type(in);
    if (it == SLUICE_JSON_STRING) {
        walk_bytes(w, H->json_str(ins), H->json_strlen(ins));
        w->overhead += w->opts ? w->opts->per_message : WALK_PER_MESSAGE;
    } else if (it != SLUICE_JSON_INVALID && it != SLUICE_JSON_NULL) {
        return walk_fail(w, it, "a string", "instructions");
    }
    if (t == SLUICE_JSON_STRING) {
        walk_bytes(w, H->json_str(in), H->json_strlen(in));
        w->overhead += w->opts ? w->opts->per_message : WALK_PER_MESSAGE;
    } else if (t == SLUICE_JSON_ARRAY) {
        for (size_t i = 0; i < H->json_size(in); i++)
            if (walk_item(H, w, H->json_at(in, i), i) != 0)
                return -1;
    } else if (t != SLUICE_JSON_INVALID && t != SLUICE_JSON_NULL) {
        return walk_fail(w, t, "a string or an array of input items", "input");
    }
    const sluice_json *tools = H->json_get(body, "tools");
    if (H->json_type(tools) == SLUICE_JSON_ARRAY && H->json_size(tools)) {
        w->overhead += WALK_TOOLS_PREAMBLE;
        walk_json(H, w, tools, 0);
    }
    w->overhead += w->opts ? w->opts->reply_priming : WALK_REPLY_PRIMING;
    return 0;
}

int walk_api_request(const sluice_host *H, const char *route,
                     const sluice_json *body, const struct walk_opts *opts,
                     struct walk *w)
{
    memset(w, 0, sizeof *w);
    w->opts = opts;
    if (!strcmp(route, "responses"))
        return walk_responses(H, body, w);
    const char *key = !strcmp(route, "completions") ? "prompt" : "input";
    const sluice_json *v = H->json_get(body, key);
    if (!v) {
        if (!strcmp(key, "prompt"))
            return 0; /* the API's default prompt: one token */
        w->code = "missing_required_parameter";
        snprintf(w->field, sizeof w->field, "%s", key);
        snprintf(w->message, sizeof w->message,
                 "Missing required parameter: '%s'.", key);
        return -1;
    }
    return walk_inputs(H, w, v, key);
}
