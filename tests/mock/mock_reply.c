/* mock_reply.c - what the mock upstream answers with: OpenAI-shaped bodies
 * (chat.completion, model list, error) and helpers that queue a buffered
 * response on a libmicrohttpd connection. Streams live in mock_stream.c. */
#include "mock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MOCK_REPLY_PREFIX    "Hello from mock upstream. You said: "
#define MOCK_USER_TEXT_CHARS 40

/* Adds each header; a header the response already has is replaced. */
void mock_reply_add_headers(struct MHD_Response *resp, const json_t *headers)
{
    const char *key;
    json_t *val;

    json_object_foreach((json_t *)headers, key, val)
    {
        const char *old = MHD_get_response_header(resp, key);

        if (old) {
            char *copy = strdup(old);

            if (copy)
                MHD_del_response_header(resp, key, copy);
            free(copy);
        }
        MHD_add_response_header(resp, key, json_string_value(val));
    }
}

enum MHD_Result mock_reply_queue(struct MHD_Connection *conn, int status,
                                 const char *type, const char *body, size_t len,
                                 const json_t *extra_headers)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    resp = MHD_create_response_from_buffer(len, (void *)body,
                                           MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    if (type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (extra_headers)
        mock_reply_add_headers(resp, extra_headers);
    ret = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

enum MHD_Result mock_reply_json(struct MHD_Connection *conn, int status,
                                json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    enum MHD_Result ret;

    json_decref(body);
    if (!text)
        return MHD_NO;
    ret = mock_reply_queue(conn, status, "application/json", text, strlen(text),
                           NULL);
    free(text);
    return ret;
}

static const char *reply_error_type(int status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 429:
        return "rate_limit_error";
    default:
        return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

char *mock_reply_error_text(int status, const char *message)
{
    json_t *err =
        json_pack("{s:{s:s, s:s, s:n, s:n}}", "error", "message", message,
                  "type", reply_error_type(status), "param", "code");
    char *text = err ? json_dumps(err, JSON_COMPACT) : NULL;

    json_decref(err);
    return text;
}

enum MHD_Result mock_reply_error(struct MHD_Connection *conn, int status,
                                 const char *message,
                                 const json_t *extra_headers)
{
    char *text = mock_reply_error_text(status, message);
    enum MHD_Result ret;

    if (!text)
        return MHD_NO;
    ret = mock_reply_queue(conn, status, "application/json", text, strlen(text),
                           extra_headers);
    free(text);
    return ret;
}

/* Byte length of the first `chars` UTF-8 code points of s. */
static size_t reply_utf8_prefix(const char *s, size_t chars)
{
    size_t i = 0;

    while (s[i]) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (chars == 0)
                break;
            chars--;
        }
        i++;
    }
    return i;
}

/* Text of a message content: a string, or its text parts joined. */
static char *reply_content_text(const json_t *content)
{
    size_t i, len = 0;
    json_t *part;
    char *out;

    if (json_is_string(content))
        return strdup(json_string_value(content));
    json_array_foreach(content, i, part)
    {
        len += json_string_length(json_object_get(part, "text"));
    }
    out = malloc(len + 1);
    if (!out)
        return NULL;
    len = 0;
    json_array_foreach(content, i, part)
    {
        json_t *t = json_object_get(part, "text");

        memcpy(out + len, json_string_value(t) ? json_string_value(t) : "",
               json_string_length(t));
        len += json_string_length(t);
    }
    out[len] = '\0';
    return out;
}

char *mock_reply_user_text(const json_t *request)
{
    json_t *messages = json_object_get(request, "messages");
    char *text;

    for (size_t i = json_array_size(messages); i-- > 0;) {
        json_t *m = json_array_get(messages, i);
        json_t *role = json_object_get(m, "role");

        if (!json_is_string(role) ||
            strcmp(json_string_value(role), "user") != 0)
            continue;
        text = reply_content_text(json_object_get(m, "content"));
        if (text)
            text[reply_utf8_prefix(text, MOCK_USER_TEXT_CHARS)] = '\0';
        return text;
    }
    return strdup("");
}

char *mock_reply_escape(const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 3;
    char *out, *o;

    for (const char *p = s; *p; p++)
        n += (unsigned char)*p < 0x20 ? 6 : (*p == '"' || *p == '\\') + 1;
    out = malloc(n);
    if (!out)
        return NULL;
    o = out;
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20) {
            memcpy(o, "\\u00", 4);
            o[4] = hex[*p >> 4];
            o[5] = hex[*p & 15];
            o += 6;
            continue;
        }
        if (*p == '"' || *p == '\\')
            *o++ = '\\';
        *o++ = (char)*p;
    }
    *o++ = '"';
    *o = '\0';
    return out;
}

/* Formatted by hand: jansson's pack and dump cost more than the rest of a
 * plain completion together, and a benchmark's mock must stay cheap. */
char *mock_reply_completion(unsigned seq, const char *model,
                            const char *user_text, size_t body_len)
{
    char *model_js = mock_reply_escape(model);
    char *text_js = mock_reply_escape(user_text);
    long long prompt = body_len / 4 ? (long long)(body_len / 4) : 1;
    long long completion =
        (long long)(strlen(MOCK_REPLY_PREFIX) + strlen(user_text)) / 4;
    char *out = NULL;

    if (!model_js || !text_js)
        goto out;
    /* text_js starts with a quote the content string already opened */
    if (asprintf(&out,
                 "{\"id\":\"chatcmpl-mock-%u\",\"object\":\"chat.completion\","
                 "\"created\":%lld,\"model\":%s,\"choices\":[{\"index\":0,"
                 "\"message\":{\"role\":\"assistant\",\"content\":\"%s%s},"
                 "\"logprobs\":null,\"finish_reason\":\"stop\"}],"
                 "\"usage\":{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,"
                 "\"total_tokens\":%lld}}",
                 seq, (long long)time(NULL), model_js, MOCK_REPLY_PREFIX,
                 text_js + 1, prompt, completion, prompt + completion) < 0)
        out = NULL;
out:
    free(model_js);
    free(text_js);
    return out;
}

json_t *mock_reply_models(void)
{
    static const char *const ids[] = {"mock-model", "openai-gpt-oss-20b",
                                      "mock-model-large"};
    json_t *data = json_array();

    for (size_t i = 0; data && i < sizeof(ids) / sizeof(ids[0]); i++)
        json_array_append_new(data,
                              json_pack("{s:s, s:s, s:i, s:s}", "id", ids[i],
                                        "object", "model", "created",
                                        1700000000, "owned_by", "mock"));
    return json_pack("{s:s, s:o}", "object", "list", "data", data);
}
