/*
 * usage_tokens.c - token counts from what the upstream sent: the "usage"
 * object of a plain response body (chat's and completions' names, the
 * Responses API's input/output_tokens, embeddings' prompt-only usage) (only
 * that small object is parsed, never the whole body), and, when the upstream
 * reports no usage, a measure of the generated text for an estimate.
 */
#include "usage.h"

#include <string.h>

static int64_t field_int(const sluice_host *H, const sluice_json *o,
                         const char *key)
{
    const sluice_json *v = H->json_get(o, key);
    return H->json_type(v) == SLUICE_JSON_INT ? H->json_int(v) : -1;
}

int usage_from_body(const sluice_host *H, const char *body, size_t len,
                    int64_t *prompt, int64_t *completion, int64_t *cached)
{
    static const char key[] = "\"usage\"";
    const char *last = NULL;
    *prompt = *completion = *cached = -1;
    for (const char *p = body; p && (size_t)(p - body) < len;) {
        p = memmem(p, len - (size_t)(p - body), key, sizeof key - 1);
        if (p)
            last = p++;
    }
    if (!last)
        return 0;
    /* the object after "usage": numbers and nested objects only */
    const char *end = body + len, *o = last + sizeof key - 1;
    while (o < end &&
           (*o == ' ' || *o == ':' || *o == '\n' || *o == '\t' || *o == '\r'))
        o++;
    if (o >= end || *o != '{')
        return 0;
    int depth = 0;
    const char *q = o;
    for (; q < end; q++) {
        if (*q == '{')
            depth++;
        else if (*q == '}' && --depth == 0)
            break;
        else if (*q == '"') { /* keys: skip to the closing quote */
            for (q++; q < end && *q != '"'; q++)
                if (*q == '\\')
                    q++;
        }
    }
    if (q >= end)
        return 0;
    sluice_json *u = H->json_parse(o, (size_t)(q - o + 1), NULL, 0);
    if (!u)
        return 0;
    *prompt = field_int(H, u, "prompt_tokens");
    *completion = field_int(H, u, "completion_tokens");
    *cached =
        field_int(H, H->json_get(u, "prompt_tokens_details"), "cached_tokens");
    if (*prompt < 0) { /* the Responses API's names */
        *prompt = field_int(H, u, "input_tokens");
        *completion = field_int(H, u, "output_tokens");
        *cached = field_int(H, H->json_get(u, "input_tokens_details"),
                            "cached_tokens");
    }
    if (*prompt >= 0 && *completion < 0 && field_int(H, u, "total_tokens") >= 0)
        *completion = 0; /* embeddings: nothing generated */
    H->json_free(u);
    return *prompt >= 0 && *completion >= 0;
}

int64_t usage_content_chars(const char *data, size_t len)
{
    static const char key[] = "\"content\":\"";
    const char *p = data, *end = data + len;
    int64_t n = 0;
    while (p < end) {
        const char *k = memmem(p, (size_t)(end - p), key, sizeof key - 1);
        if (!k)
            break;
        for (p = k + sizeof key - 1; p < end && *p != '"'; p++) {
            if (*p == '\\' && p + 1 < end)
                p++; /* an escape counts as one character */
            if ((*(const unsigned char *)p & 0xc0) != 0x80)
                n++; /* UTF-8 continuation bytes are not characters */
        }
    }
    return n;
}
