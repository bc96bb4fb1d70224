/* mock_api.c - the mock upstream's answers for the OpenAI endpoints beside
 * chat: the Responses API (also the response object its stream ends with),
 * legacy completions, embeddings (float or base64, as the client asks),
 * moderations, speech (deterministic bytes), transcriptions and
 * translations (multipart), image generation and rerank. Shapes follow
 * OpenAI's API reference closely enough for the official SDKs to parse.
 * Streams live in mock_stream.c; the choice of endpoint in mock_serve.c. */
#include "mock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MOCK_EMBED_DIM 8

static long long api_tokens(size_t bytes)
{
    return bytes / 4 ? (long long)(bytes / 4) : 1;
}

/* The text a Responses request says: `input` as a string, else the last
 * text found in its items; the first 40 code points. Caller frees. */
static char *api_input_text(const json_t *req)
{
    const json_t *in = json_object_get(req, "input");
    json_t *fake = json_object(), *msgs = json_array(), *m;
    size_t i;
    char *text;

    if (json_is_string(in))
        json_array_append_new(
            msgs, json_pack("{s:s,s:O}", "role", "user", "content", in));
    json_array_foreach(in, i, m)
    {
        json_t *c = json_object_get(m, "content");
        if (c && json_is_string(json_object_get(m, "role")))
            json_array_append_new(
                msgs, json_pack("{s:s,s:O}", "role", "user", "content", c));
    }
    /* input_text parts read like chat's text parts */
    json_object_set_new(fake, "messages", msgs);
    text = mock_reply_user_text(fake);
    json_decref(fake);
    return text;
}

json_t *mock_api_message_item(unsigned seq, const char *text, bool done)
{
    char id[48];
    snprintf(id, sizeof id, "msg_mock_%u", seq);
    json_t *content = json_array();
    if (done)
        json_array_append_new(content, json_pack("{s:s,s:s,s:[],s:[]}", "type",
                                                 "output_text", "text", text,
                                                 "annotations", "logprobs"));
    return json_pack("{s:s,s:s,s:s,s:s,s:o}", "id", id, "type", "message",
                     "status", done ? "completed" : "in_progress", "role",
                     "assistant", "content", content);
}

json_t *mock_api_response_obj(unsigned seq, const char *model, const char *text,
                              size_t body_len, bool done)
{
    char id[48];
    long long in = api_tokens(body_len), out = api_tokens(strlen(text));
    snprintf(id, sizeof id, "resp_mock_%u", seq);
    json_t *r = json_pack(
        "{s:s,s:s,s:I,s:s,s:n,s:n,s:n,s:n,s:s,s:[],s:b,s:n,s:f,s:s,s:[],"
        "s:f,s:s,s:{s:{s:s}}}",
        "id", id, "object", "response", "created_at", (json_int_t)time(NULL),
        "status", done ? "completed" : "in_progress", "error",
        "incomplete_details", "instructions", "max_output_tokens", "model",
        model, "output", "parallel_tool_calls", 1, "previous_response_id",
        "temperature", 1.0, "tool_choice", "auto", "tools", "top_p", 1.0,
        "truncation", "disabled", "text", "format", "type", "text");
    if (!r)
        return NULL;
    if (done) {
        json_array_append_new(json_object_get(r, "output"),
                              mock_api_message_item(seq, text, true));
        json_object_set_new(
            r, "usage",
            json_pack("{s:I,s:{s:i},s:I,s:{s:i},s:I}", "input_tokens",
                      (json_int_t)in, "input_tokens_details", "cached_tokens",
                      0, "output_tokens", (json_int_t)out,
                      "output_tokens_details", "reasoning_tokens", 0,
                      "total_tokens", (json_int_t)(in + out)));
    } else {
        json_object_set_new(r, "usage", json_null());
    }
    return r;
}

static json_t *api_responses(unsigned seq, const char *model, const json_t *req,
                             size_t body_len)
{
    char *said = api_input_text(req);
    char *text = NULL;
    json_t *r = NULL;
    if (said &&
        asprintf(&text, "Hello from mock upstream. You said: %s", said) >= 0)
        r = mock_api_response_obj(seq, model, text, body_len, true);
    free(said);
    free(text);
    return r;
}

static json_t *api_completions(unsigned seq, const char *model,
                               const json_t *req, size_t body_len)
{
    const json_t *p = json_object_get(req, "prompt");
    char id[48], text[128];
    snprintf(id, sizeof id, "cmpl-mock-%u", seq);
    snprintf(text, sizeof text, " and the mock completes: %.40s",
             json_is_string(p) ? json_string_value(p) : "");
    long long in = api_tokens(body_len), out = api_tokens(strlen(text));
    return json_pack("{s:s,s:s,s:I,s:s,s:[{s:s,s:i,s:n,s:s}],"
                     "s:{s:I,s:I,s:I}}",
                     "id", id, "object", "text_completion", "created",
                     (json_int_t)time(NULL), "model", model, "choices", "text",
                     text, "index", 0, "logprobs", "finish_reason", "stop",
                     "usage", "prompt_tokens", (json_int_t)in,
                     "completion_tokens", (json_int_t)out, "total_tokens",
                     (json_int_t)(in + out));
}

static char *api_base64(const unsigned char *p, size_t n)
{
    static const char t[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(4 * ((n + 2) / 3) + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        *o++ = t[(v >> 18) & 63];
        *o++ = t[(v >> 12) & 63];
        *o++ = i + 1 < n ? t[(v >> 6) & 63] : '=';
        *o++ = i + 2 < n ? t[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

/* Input i's vector: (i + 1) / (k + 1) for k = 0..7, as floats or as the
 * base64 of their little-endian float32 bytes (what the SDKs ask for). */
static json_t *api_vector(size_t i, bool b64)
{
    float f[MOCK_EMBED_DIM];
    for (int k = 0; k < MOCK_EMBED_DIM; k++)
        f[k] = (float)(i + 1) / (float)(k + 1);
    if (b64) {
        char *s = api_base64((const unsigned char *)f, sizeof f);
        json_t *v = s ? json_string(s) : NULL;
        free(s);
        return v;
    }
    json_t *a = json_array();
    for (int k = 0; k < MOCK_EMBED_DIM; k++)
        json_array_append_new(a, json_real(f[k]));
    return a;
}

static size_t api_input_count(const json_t *in)
{
    if (!json_is_array(in))
        return 1;
    if (json_array_size(in) && json_is_integer(json_array_get(in, 0)))
        return 1; /* one token array */
    return json_array_size(in);
}

static json_t *api_embeddings(const char *model, const json_t *req,
                              size_t body_len)
{
    const char *fmt =
        json_string_value(json_object_get(req, "encoding_format"));
    bool b64 = fmt && !strcmp(fmt, "base64");
    size_t n = api_input_count(json_object_get(req, "input"));
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            data, json_pack("{s:s,s:I,s:o}", "object", "embedding", "index",
                            (json_int_t)i, "embedding", api_vector(i, b64)));
    long long t = api_tokens(body_len);
    return json_pack("{s:s,s:o,s:s,s:{s:I,s:I}}", "object", "list", "data",
                     data, "model", model, "usage", "prompt_tokens",
                     (json_int_t)t, "total_tokens", (json_int_t)t);
}

static json_t *api_moderations(unsigned seq, const char *model,
                               const json_t *req)
{
    static const char *const cats[] = {"hate", "harassment", "self-harm",
                                       "sexual", "violence"};
    const json_t *in = json_object_get(req, "input");
    size_t n = json_is_array(in) ? json_array_size(in) : 1;
    json_t *results = json_array();
    char id[48];
    snprintf(id, sizeof id, "modr-mock-%u", seq);
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_is_array(in) ? json_array_get(in, i) : in;
        bool flag = json_is_string(s) && strstr(json_string_value(s), "kill");
        json_t *c = json_object(), *sc = json_object(), *ty = json_object();
        for (size_t k = 0; k < 5; k++) {
            bool f = flag && !strcmp(cats[k], "violence");
            json_object_set_new(c, cats[k], json_boolean(f));
            json_object_set_new(sc, cats[k], json_real(f ? 0.9 : 0.01));
            json_object_set_new(ty, cats[k], json_pack("[s]", "text"));
        }
        json_array_append_new(results,
                              json_pack("{s:b,s:o,s:o,s:o}", "flagged", flag,
                                        "categories", c, "category_scores", sc,
                                        "category_applied_input_types", ty));
    }
    return json_pack("{s:s,s:s,s:o}", "id", id, "model", model, "results",
                     results);
}

static json_t *api_images(const json_t *req)
{
    const json_t *n = json_object_get(req, "n");
    const char *fmt =
        json_string_value(json_object_get(req, "response_format"));
    static const unsigned char png[] = {0x89, 'P',  'N',  'G',
                                        '\r', '\n', 0x1a, '\n'};
    json_t *data = json_array();
    for (json_int_t i = 0; i < (json_is_integer(n) ? json_integer_value(n) : 1);
         i++) {
        if (fmt && !strcmp(fmt, "url")) {
            char url[96];
            snprintf(url, sizeof url, "https://mock.invalid/img/%lld.png",
                     (long long)i);
            json_array_append_new(data, json_pack("{s:s}", "url", url));
            continue;
        }
        char *b = api_base64(png, sizeof png);
        json_array_append_new(data, json_pack("{s:s}", "b64_json", b ? b : ""));
        free(b);
    }
    return json_pack("{s:I,s:o}", "created", (json_int_t)time(NULL), "data",
                     data);
}

static json_t *api_rerank(unsigned seq, const char *model, const json_t *req)
{
    const json_t *docs = json_object_get(req, "documents");
    json_t *results = json_array();
    char id[48];
    snprintf(id, sizeof id, "rerank-mock-%u", seq);
    for (size_t i = 0; i < json_array_size(docs); i++)
        json_array_append_new(
            results, json_pack("{s:I,s:f}", "index", (json_int_t)i,
                               "relevance_score", 1.0 / (double)(i + 1)));
    return json_pack("{s:s,s:s,s:o,s:{s:I}}", "id", id, "model", model,
                     "results", results, "usage", "total_tokens",
                     (json_int_t)json_array_size(docs) * 10);
}

/* A form field of a multipart body, naively: the value after the part
 * headers naming it (test bodies only). Caller frees; NULL if absent. */
/* The delimiter of a multipart body: "\r\n" and its first line. */
static size_t api_delim(const char *body, size_t len, char *out, size_t n)
{
    const char *nl = body ? memmem(body, len, "\r\n", 2) : NULL;
    size_t l = nl ? (size_t)(nl - body) : 0;
    if (!l || l + 3 > n)
        return 0;
    memcpy(out, "\r\n", 2);
    memcpy(out + 2, body, l);
    out[l + 2] = '\0';
    return l + 2;
}

/* The value of the part whose headers contain `key` (test bodies only):
 * *vlen bytes at the returned pointer, NULL if absent. */
static const char *api_part(const char *body, size_t len, const char *key,
                            size_t *vlen)
{
    char delim[128];
    size_t dl = api_delim(body, len, delim, sizeof delim);
    const char *p = dl ? memmem(body, len, key, strlen(key)) : NULL;
    if (!p)
        return NULL;
    const char *v = memmem(p, len - (size_t)(p - body), "\r\n\r\n", 4);
    if (!v)
        return NULL;
    v += 4;
    const char *e = memmem(v, len - (size_t)(v - body), delim, dl);
    if (!e)
        return NULL;
    *vlen = (size_t)(e - v);
    return v;
}

char *mock_api_form_field(const char *body, size_t len, const char *name)
{
    char key[96];
    size_t n;
    snprintf(key, sizeof key, "name=\"%s\"", name);
    const char *v = api_part(body, len, key, &n);
    return v ? strndup(v, n) : NULL;
}

static json_t *api_transcription(const struct mock_req *req)
{
    size_t bytes = 0;
    char text[128];
    if (!api_part(req->body, req->body_len, "filename=\"", &bytes))
        bytes = 0;
    snprintf(text, sizeof text, "mock transcript of %zu bytes", bytes);
    return json_pack("{s:s}", "text", text);
}

/* Speech: deterministic bytes from the input, so a client can compare. */
static enum MHD_Result api_speech(struct MHD_Connection *conn,
                                  struct mock_req *req, const json_t *body,
                                  const json_t *headers)
{
    const char *in = json_string_value(json_object_get(body, "input"));
    size_t n = 1024 + (in ? strlen(in) : 0);
    unsigned char *b = malloc(n);
    if (!b)
        return MHD_NO;
    mock_api_speech_bytes(in ? in : "", b, n);
    mock_record_set_status(req->rec, 200);
    enum MHD_Result r =
        mock_reply_queue(conn, 200, "audio/mpeg", (const char *)b, n, headers);
    free(b);
    return r;
}

void mock_api_speech_bytes(const char *input, unsigned char *out, size_t n)
{
    size_t l = strlen(input);
    memcpy(out, "ID3", n < 3 ? n : 3);
    for (size_t i = 3; i < n; i++)
        out[i] = (unsigned char)((i * 7 + l + (l ? input[i % l] : 0)) & 0xff);
}

bool mock_api_is_multipart(const char *path)
{
    return !strcmp(path, "/audio/transcriptions") ||
           !strcmp(path, "/audio/translations");
}

bool mock_api_known(const char *path)
{
    static const char *const paths[] = {"/responses",
                                        "/completions",
                                        "/embeddings",
                                        "/moderations",
                                        "/audio/speech",
                                        "/audio/transcriptions",
                                        "/audio/translations",
                                        "/images/generations",
                                        "/rerank",
                                        NULL};
    for (const char *const *p = paths; *p; p++)
        if (!strcmp(path, *p))
            return true;
    return false;
}

enum MHD_Result mock_api_serve(struct MHD_Connection *conn,
                               struct mock_req *req, const char *path,
                               const json_t *body, const char *model,
                               int status, const json_t *headers)
{
    unsigned seq = mock_record_seq(req->rec);
    const char *m = model ? model : "mock-model";
    json_t *out = NULL;

    if (!strcmp(path, "/audio/speech"))
        return api_speech(conn, req, body, headers);
    if (!strcmp(path, "/responses"))
        out = api_responses(seq, m, body, req->body_len);
    else if (!strcmp(path, "/completions"))
        out = api_completions(seq, m, body, req->body_len);
    else if (!strcmp(path, "/embeddings"))
        out = api_embeddings(m, body, req->body_len);
    else if (!strcmp(path, "/moderations"))
        out = api_moderations(seq, model ? model : "omni-moderation-latest",
                              body);
    else if (mock_api_is_multipart(path))
        out = api_transcription(req);
    else if (!strcmp(path, "/images/generations"))
        out = api_images(body);
    else if (!strcmp(path, "/rerank"))
        out = api_rerank(seq, m, body);
    char *text = out ? json_dumps(out, JSON_COMPACT) : NULL;
    json_decref(out);
    if (!text)
        return MHD_NO;
    mock_record_set_status(req->rec, status);
    enum MHD_Result r = mock_reply_queue(conn, status, "application/json", text,
                                         strlen(text), headers);
    free(text);
    return r;
}
