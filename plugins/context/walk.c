/*
 * walk.c - the request walker (see walk.h).
 */
#include "walk.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char *type_name(sluice_json_type t)
{
    switch (t) {
    case SLUICE_JSON_NULL:
        return "null";
    case SLUICE_JSON_BOOL:
        return "a boolean";
    case SLUICE_JSON_INT:
        return "an integer";
    case SLUICE_JSON_REAL:
        return "a number";
    case SLUICE_JSON_STRING:
        return "a string";
    case SLUICE_JSON_ARRAY:
        return "an array";
    case SLUICE_JSON_OBJECT:
        return "an object";
    default:
        return "nothing";
    }
}

/* Record a type error on `field` (printf-style path), expecting `want`. */
int walk_fail(struct walk *w, const sluice_json_type got, const char *want,
              const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->field, sizeof w->field, fmt, ap);
    va_end(ap);
    w->code = "invalid_type";
    snprintf(w->message, sizeof w->message,
             "Invalid type for '%s': expected %s, but got %s instead.",
             w->field, want, type_name(got));
    return -1;
}

/* dst = <a, at most amax bytes>[<*i>]<b>, cut to fit n like snprintf, and
 * without printf: these paths are made for every message and part but
 * only read when a field is wrong (~700 instructions each with printf). */
static void path_put(char *dst, size_t n, const char *a, size_t amax,
                     const size_t *i, const char *b)
{
    char num[24], *q = num + sizeof num;
    size_t len = 0, k;
    if (!n)
        return;
    for (k = 0; a[k] && k < amax && len + 1 < n; k++)
        dst[len++] = a[k];
    if (i) {
        size_t v = *i;
        *--q = ']';
        do {
            *--q = (char)('0' + v % 10);
            v /= 10;
        } while (v);
        *--q = '[';
        for (; q < num + sizeof num && len + 1 < n; q++)
            dst[len++] = *q;
    }
    for (k = 0; b[k] && len + 1 < n; k++)
        dst[len++] = b[k];
    dst[len] = '\0';
}

/* One text: counted by the model's tokenizer when there is one. */
void walk_bytes(struct walk *w, const char *s, size_t n)
{
    if (w->opts && w->opts->tok) {
        long c = w->opts->count(w->opts->tok, s, n);
        if (c >= 0) {
            w->exact += (uint64_t)c;
            return;
        }
        w->approx = 1; /* out of memory: estimate this one */
    }
    est_scan(s, n, &w->counts);
}

static void walk_text(const sluice_host *H, struct walk *w,
                      const sluice_json *s)
{
    walk_bytes(w, H->json_str(s), H->json_strlen(s));
}

/* A JSON value as it would be serialised (tool parameters, arguments given
 * as objects): keys and strings scanned, punctuation charged roughly. */
void walk_json(const sluice_host *H, struct walk *w, const sluice_json *v,
               int depth)
{
    if (depth > WALK_MAX_DEPTH)
        return;
    w->approx = 1; /* the serialisation the model sees is not known */
    switch (H->json_type(v)) {
    case SLUICE_JSON_STRING:
        walk_text(H, w, v);
        w->overhead += 1;
        break;
    case SLUICE_JSON_ARRAY:
        w->overhead += 1 + H->json_size(v);
        for (size_t i = 0; i < H->json_size(v); i++)
            walk_json(H, w, H->json_at(v, i), depth + 1);
        break;
    case SLUICE_JSON_OBJECT:
        w->overhead += 1;
        for (void *it = H->json_iter(v); it; it = H->json_iter_next(v, it)) {
            const char *k = H->json_iter_key(it);
            walk_bytes(w, k, strlen(k));
            w->overhead += 2; /* ": and , */
            walk_json(H, w, H->json_iter_value(it), depth + 1);
        }
        break;
    default:
        w->overhead += 1;
        break;
    }
}

/* An optional string field: absent or null is fine. */
static int walk_opt_str(const sluice_host *H, struct walk *w,
                        const sluice_json *obj, const char *key,
                        const char *path, const sluice_json **out)
{
    const sluice_json *v = H->json_get(obj, key);
    sluice_json_type t = H->json_type(v);
    *out = NULL;
    if (t == SLUICE_JSON_INVALID || t == SLUICE_JSON_NULL)
        return 0;
    if (t != SLUICE_JSON_STRING)
        return walk_fail(w, t, "a string", "%s.%s", path, key);
    *out = v;
    return 0;
}

static int walk_part(const sluice_host *H, struct walk *w, const sluice_json *p,
                     const char *path)
{
    sluice_json_type t = H->json_type(p);
    if (t != SLUICE_JSON_OBJECT)
        return walk_fail(w, t, "an object", "%s", path);
    const sluice_json *type = H->json_get(p, "type");
    const char *ty = H->json_str(type);
    if (!ty)
        return walk_fail(w, H->json_type(type), "a string", "%s.type", path);
    const sluice_json *s;
    if (!strcmp(ty, "text") || !strcmp(ty, "input_text") ||
        !strcmp(ty, "output_text") || !strcmp(ty, "refusal")) {
        const char *key = !strcmp(ty, "refusal") ? "refusal" : "text";
        s = H->json_get(p, key);
        if (H->json_type(s) != SLUICE_JSON_STRING)
            return walk_fail(w, H->json_type(s), "a string", "%s.%s", path,
                             key);
        walk_text(H, w, s);
    } else if (!strcmp(ty, "image_url") || !strcmp(ty, "input_image") ||
               !strcmp(ty, "image") || !strcmp(ty, "input_audio") ||
               !strcmp(ty, "audio")) {
        w->images++;
        w->approx = 1;
    }
    /* other part types (file, ...): not counted, passed on */
    return 0;
}

int walk_content(const sluice_host *H, struct walk *w, const sluice_json *c,
                 const char *path)
{
    char sub[96];
    switch (H->json_type(c)) {
    case SLUICE_JSON_INVALID:
    case SLUICE_JSON_NULL:
        return 0;
    case SLUICE_JSON_STRING:
        walk_text(H, w, c);
        return 0;
    case SLUICE_JSON_ARRAY:
        for (size_t j = 0; j < H->json_size(c); j++) {
            path_put(sub, sizeof sub, path, 64, &j, "");
            if (walk_part(H, w, H->json_at(c, j), sub) != 0)
                return -1;
        }
        return 0;
    default:
        return walk_fail(w, H->json_type(c),
                         "one of a string or an array of content parts", "%s",
                         path);
    }
}

/* {name, arguments} of a tool call or legacy function_call. */
static int walk_call(const sluice_host *H, struct walk *w,
                     const sluice_json *fn, const char *path)
{
    sluice_json_type t = H->json_type(fn);
    if (t != SLUICE_JSON_OBJECT)
        return walk_fail(w, t, "an object", "%s", path);
    const sluice_json *name, *args = H->json_get(fn, "arguments");
    if (walk_opt_str(H, w, fn, "name", path, &name) != 0)
        return -1;
    if (name)
        walk_text(H, w, name);
    if (H->json_type(args) == SLUICE_JSON_STRING)
        walk_text(H, w, args);
    else if (H->json_type(args) == SLUICE_JSON_OBJECT)
        walk_json(H, w, args, 0); /* lenient: some clients send objects */
    else if (args && H->json_type(args) != SLUICE_JSON_NULL)
        return walk_fail(w, H->json_type(args), "a string", "%s.arguments",
                         path);
    w->overhead += WALK_PER_TOOL_CALL;
    w->approx = 1;
    return 0;
}

static int walk_tool_calls(const sluice_host *H, struct walk *w,
                           const sluice_json *calls, const char *path)
{
    sluice_json_type t = H->json_type(calls);
    char sub[96];
    if (t == SLUICE_JSON_INVALID || t == SLUICE_JSON_NULL)
        return 0;
    if (t != SLUICE_JSON_ARRAY)
        return walk_fail(w, t, "an array", "%s", path);
    if (H->json_size(calls))
        w->approx = 1;
    for (size_t j = 0; j < H->json_size(calls); j++) {
        const sluice_json *c = H->json_at(calls, j);
        path_put(sub, sizeof sub, path, 64, &j, "");
        if (H->json_type(c) != SLUICE_JSON_OBJECT)
            return walk_fail(w, H->json_type(c), "an object", "%s", sub);
        const sluice_json *fn = H->json_get(c, "function");
        if (!fn) /* a custom tool call: {custom: {name, input}} */
            continue;
        path_put(sub, sizeof sub, path, 64, &j, ".function");
        if (walk_call(H, w, fn, sub) != 0)
            return -1;
    }
    return 0;
}

static int walk_role(const sluice_host *H, struct walk *w, const sluice_json *m,
                     const char *path)
{
    static const char *const known[] = {
        "system", "user", "assistant", "tool", "function", "developer", NULL};
    const sluice_json *role = H->json_get(m, "role");
    const char *r = H->json_str(role);
    if (!r)
        return walk_fail(w, H->json_type(role), "a string", "%s.role", path);
    for (const char *const *k = known; *k && !(w->opts && w->opts->tok); k++)
        if (!strcmp(r, *k)) {
            w->overhead += WALK_ROLE;
            return 0;
        }
    walk_text(H, w, role);
    return 0;
}

/* A message's optional members: name, refusal, tool_calls, function_call. */
static int walk_message_rest(const sluice_host *H, struct walk *w,
                             const sluice_json *m, const char *path)
{
    char sub[96];
    const sluice_json *name;
    if (walk_opt_str(H, w, m, "name", path, &name) != 0)
        return -1;
    if (name) {
        walk_text(H, w, name);
        w->overhead += w->opts ? w->opts->per_name : WALK_PER_NAME;
    }
    const sluice_json *refusal;
    if (walk_opt_str(H, w, m, "refusal", path, &refusal) != 0)
        return -1;
    if (refusal)
        walk_text(H, w, refusal);
    path_put(sub, sizeof sub, path, SIZE_MAX, NULL, ".tool_calls");
    if (walk_tool_calls(H, w, H->json_get(m, "tool_calls"), sub) != 0)
        return -1;
    const sluice_json *fc = H->json_get(m, "function_call");
    if (fc && H->json_type(fc) != SLUICE_JSON_NULL) {
        path_put(sub, sizeof sub, path, SIZE_MAX, NULL, ".function_call");
        if (walk_call(H, w, fc, sub) != 0)
            return -1;
    }
    return 0;
}

static int walk_message(const sluice_host *H, struct walk *w,
                        const sluice_json *m, size_t i)
{
    char path[48], sub[96];
    path_put(path, sizeof path, "messages", SIZE_MAX, &i, "");
    if (H->json_type(m) != SLUICE_JSON_OBJECT)
        return walk_fail(w, H->json_type(m), "an object", "%s", path);
    if (walk_role(H, w, m, path) != 0)
        return -1;
    path_put(sub, sizeof sub, path, SIZE_MAX, NULL, ".content");
    const sluice_json *content = H->json_get(m, "content");
    if (walk_content(H, w, content, sub) != 0)
        return -1;
    /* role and content and nothing else (most messages): none of the
     * optional members can be there, no need to look each one up */
    if ((!content || H->json_size(m) != 2) &&
        walk_message_rest(H, w, m, path) != 0)
        return -1;
    w->overhead += w->opts ? w->opts->per_message : WALK_PER_MESSAGE;
    w->messages++;
    return 0;
}

/* One definition: {type, function: {name, description, parameters}} for
 * `tools`, {name, description, parameters} for `functions`. */
static int walk_def(const sluice_host *H, struct walk *w, const sluice_json *d,
                    const char *path)
{
    sluice_json_type t = H->json_type(d);
    if (t != SLUICE_JSON_OBJECT)
        return walk_fail(w, t, "an object", "%s", path);
    const sluice_json *name, *desc;
    if (walk_opt_str(H, w, d, "name", path, &name) != 0 ||
        walk_opt_str(H, w, d, "description", path, &desc) != 0)
        return -1;
    if (name)
        walk_text(H, w, name);
    if (desc)
        walk_text(H, w, desc);
    const sluice_json *params = H->json_get(d, "parameters");
    if (params)
        walk_json(H, w, params, 0);
    w->overhead += WALK_PER_TOOL_DEF;
    w->approx = 1;
    return 0;
}

static int walk_defs(const sluice_host *H, struct walk *w,
                     const sluice_json *body, const char *key)
{
    const sluice_json *defs = H->json_get(body, key);
    sluice_json_type t = H->json_type(defs);
    char path[64];
    if (t == SLUICE_JSON_INVALID || t == SLUICE_JSON_NULL)
        return 0;
    if (t != SLUICE_JSON_ARRAY)
        return walk_fail(w, t, "an array", "%s", key);
    if (H->json_size(defs))
        w->overhead += WALK_TOOLS_PREAMBLE;
    for (size_t i = 0; i < H->json_size(defs); i++) {
        const sluice_json *d = H->json_at(defs, i);
        path_put(path, sizeof path, key, SIZE_MAX, &i, "");
        if (!strcmp(key, "tools")) {
            if (H->json_type(d) != SLUICE_JSON_OBJECT)
                return walk_fail(w, H->json_type(d), "an object", "%s", path);
            const sluice_json *fn = H->json_get(d, "function");
            if (!fn) { /* another tool type: count what it says */
                walk_json(H, w, d, 0);
                continue;
            }
            d = fn;
            path_put(path, sizeof path, key, SIZE_MAX, &i, ".function");
        }
        if (walk_def(H, w, d, path) != 0)
            return -1;
    }
    return 0;
}

int walk_request(const sluice_host *H, const sluice_json *body, struct walk *w)
{
    return walk_request_opts(H, body, NULL, w);
}

int walk_request_opts(const sluice_host *H, const sluice_json *body,
                      const struct walk_opts *opts, struct walk *w)
{
    memset(w, 0, sizeof *w);
    w->opts = opts;
    const sluice_json *msgs = H->json_get(body, "messages");
    sluice_json_type t = H->json_type(msgs);
    if (t == SLUICE_JSON_INVALID) {
        w->code = "missing_required_parameter";
        snprintf(w->field, sizeof w->field, "messages");
        snprintf(w->message, sizeof w->message,
                 "Missing required parameter: 'messages'.");
        return -1;
    }
    if (t != SLUICE_JSON_ARRAY)
        return walk_fail(w, t, "an array", "messages");
    for (size_t i = 0; i < H->json_size(msgs); i++)
        if (walk_message(H, w, H->json_at(msgs, i), i) != 0)
            return -1;
    if (walk_defs(H, w, body, "tools") != 0 ||
        walk_defs(H, w, body, "functions") != 0)
        return -1;
    w->overhead += opts ? opts->reply_priming : WALK_REPLY_PRIMING;
    return 0;
}

uint64_t walk_tokens(const struct walk *w, uint64_t image_tokens)
{
    double t = est_weigh(&w->counts);
    uint64_t text = t > 0 ? (uint64_t)ceil(t) : 0;
    text += w->exact;
    return text + w->overhead + w->images * image_tokens;
}
