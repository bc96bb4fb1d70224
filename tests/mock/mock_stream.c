/* mock_stream.c - the mock upstream's streamed (SSE) responses: a
 * libmicrohttpd content reader that emits chat.completion.chunk events,
 * text_completion events, the Responses API's named events (each delta
 * split mid-UTF-8 across two writes), transcription events, or a rule's
 * raw byte strings, sleeps
 * between them on the connection's own thread, stalls, cuts the connection or
 * finishes with a usage chunk and [DONE]. Each reader call hands out one event,
 * so events leave one by one. Which shape a request gets is decided in
 * mock_serve.c. */
#include "mock.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STREAM_BLOCK 16384

struct stream {
    enum mock_stream_kind kind;
    struct mock_rec *rec;
    struct mock_rule *rule; /* keeps spec.raw alive */
    struct mock_stream_spec spec;
    unsigned seq;
    long long created;
    char *model_json; /* the model as a JSON string literal */
    char *model;
    bool include_usage;
    size_t body_len;
    int fd;
    int next;  /* index of the next event slot */
    bool done; /* the tail was queued: end after it drains */
    char *buf; /* pending bytes of the current event */
    size_t len;
    size_t off;
    size_t cap;
    size_t split; /* Responses delta: first write ends here (0: none) */
    char *text;   /* Responses: the text so far */
    size_t text_len;
    int rseq; /* Responses: next sequence_number */
};

static int stream_reserve(struct stream *s, size_t len)
{
    char *grown;

    if (len <= s->cap)
        return 0;
    grown = realloc(s->buf, len);
    if (!grown)
        return -1;
    s->buf = grown;
    s->cap = len;
    return 0;
}

/* Replaces the pending bytes with a printf result. */
static int stream_printf(struct stream *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int stream_printf(struct stream *s, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(s->buf, s->cap, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n >= s->cap) {
        if (stream_reserve(s, (size_t)n + 1))
            return -1;
        va_start(ap, fmt);
        vsnprintf(s->buf, s->cap, fmt, ap);
        va_end(ap);
    }
    s->len = (size_t)n;
    s->off = 0;
    return 0;
}

static int stream_set_raw(struct stream *s, size_t i)
{
    if (stream_reserve(s, s->spec.raw_len[i] + 1))
        return -1;
    memcpy(s->buf, s->spec.raw[i], s->spec.raw_len[i]);
    s->len = s->spec.raw_len[i];
    s->off = 0;
    return 0;
}

/* The Responses API's events before the first delta (slot -1). */
static int stream_resp_head(struct stream *s, const char *model)
{
    json_t *r = mock_api_response_obj(s->seq, model, "", s->body_len, false);
    json_t *item = mock_api_message_item(s->seq, "", false);
    char *rj = r ? json_dumps(r, JSON_COMPACT) : NULL;
    char *ij = item ? json_dumps(item, JSON_COMPACT) : NULL;
    int rc = -1;
    json_decref(r);
    json_decref(item);
    if (rj && ij)
        rc = stream_printf(
            s,
            "event: response.created\ndata: {\"type\":\"response.created\","
            "\"sequence_number\":0,\"response\":%s}\n\n"
            "event: response.in_progress\ndata: {\"type\":"
            "\"response.in_progress\",\"sequence_number\":1,\"response\":%s}"
            "\n\n"
            "event: response.output_item.added\ndata: {\"type\":"
            "\"response.output_item.added\",\"sequence_number\":2,"
            "\"output_index\":0,\"item\":%s}\n\n"
            "event: response.content_part.added\ndata: {\"type\":"
            "\"response.content_part.added\",\"sequence_number\":3,"
            "\"item_id\":\"msg_mock_%u\",\"output_index\":0,"
            "\"content_index\":0,\"part\":{\"type\":\"output_text\","
            "\"text\":\"\",\"annotations\":[],\"logprobs\":[]}}\n\n",
            rj, rj, ij, s->seq);
    free(rj);
    free(ij);
    s->rseq = 4;
    return rc;
}

/* One delta, "tok<i> é " (é is two bytes in UTF-8): handed out in two
 * writes split between those two bytes. */
static int stream_resp_delta(struct stream *s, int i)
{
    char piece[32];
    int n = snprintf(piece, sizeof piece, "tok%d \xc3\xa9 ", i);
    char *t = realloc(s->text, s->text_len + (size_t)n + 1);
    if (!t)
        return -1;
    s->text = t;
    memcpy(t + s->text_len, piece, (size_t)n + 1);
    s->text_len += (size_t)n;
    if (stream_printf(s,
                      "event: response.output_text.delta\ndata: {\"type\":"
                      "\"response.output_text.delta\",\"sequence_number\":%d,"
                      "\"item_id\":\"msg_mock_%u\",\"output_index\":0,"
                      "\"content_index\":0,\"delta\":\"%s\",\"logprobs\":[]}"
                      "\n\n",
                      s->rseq++, s->seq, piece))
        return -1;
    const char *c3 = memchr(s->buf, 0xc3, s->len);
    s->split = c3 ? (size_t)(c3 - s->buf) + 1 : 0;
    return 0;
}

/* The closing events, the last carrying the whole response and usage. */
static int stream_resp_tail(struct stream *s, const char *model)
{
    const char *text = s->text ? s->text : "";
    json_t *r = mock_api_response_obj(s->seq, model, text, s->body_len, true);
    json_t *item = mock_api_message_item(s->seq, text, true);
    json_t *tj = json_string(text);
    char *rj = r ? json_dumps(r, JSON_COMPACT) : NULL;
    char *ij = item ? json_dumps(item, JSON_COMPACT) : NULL;
    char *textj = tj ? json_dumps(tj, JSON_ENCODE_ANY) : NULL;
    int q = s->rseq, rc = -1;
    json_decref(r);
    json_decref(item);
    json_decref(tj);
    if (rj && ij && textj)
        rc = stream_printf(
            s,
            "event: response.output_text.done\ndata: {\"type\":"
            "\"response.output_text.done\",\"sequence_number\":%d,"
            "\"item_id\":\"msg_mock_%u\",\"output_index\":0,"
            "\"content_index\":0,\"text\":%s,\"logprobs\":[]}\n\n"
            "event: response.content_part.done\ndata: {\"type\":"
            "\"response.content_part.done\",\"sequence_number\":%d,"
            "\"item_id\":\"msg_mock_%u\",\"output_index\":0,"
            "\"content_index\":0,\"part\":{\"type\":\"output_text\","
            "\"text\":%s,\"annotations\":[],\"logprobs\":[]}}\n\n"
            "event: response.output_item.done\ndata: {\"type\":"
            "\"response.output_item.done\",\"sequence_number\":%d,"
            "\"output_index\":0,\"item\":%s}\n\n"
            "event: response.completed\ndata: {\"type\":"
            "\"response.completed\",\"sequence_number\":%d,\"response\":%s}"
            "\n\n",
            q, s->seq, textj, q + 1, s->seq, textj, q + 2, ij, q + 3, rj);
    free(rj);
    free(ij);
    free(textj);
    return rc;
}

static int stream_set_chunk(struct stream *s, int i)
{
    bool last = i == s->spec.chunks - 1;

    if (s->kind == MOCK_STREAM_RESPONSES)
        return stream_resp_delta(s, i);
    if (s->kind == MOCK_STREAM_TRANSCRIPT)
        return stream_printf(s,
                             "data: {\"type\":\"transcript.text.delta\","
                             "\"delta\":\"tok%d \"}\n\n",
                             i);
    if (s->kind == MOCK_STREAM_COMPLETIONS)
        return stream_printf(
            s,
            "data: {\"id\":\"cmpl-mock-%u\",\"object\":\"text_completion\","
            "\"created\":%lld,\"model\":%s,\"choices\":[{\"text\":"
            "\"tok%d \",\"index\":0,\"logprobs\":null,\"finish_reason\":"
            "%s}]}\n\n",
            s->seq, s->created, s->model_json, i, last ? "\"stop\"" : "null");
    return stream_printf(
        s,
        "data: {\"id\":\"chatcmpl-mock-%u\",\"object\":"
        "\"chat.completion.chunk\",\"created\":%lld,\"model\":%s,"
        "\"choices\":[{\"index\":0,\"delta\":{%s\"content\":\"tok%d \"},"
        "\"logprobs\":null,\"finish_reason\":%s}]}\n\n",
        s->seq, s->created, s->model_json,
        i == 0 ? "\"role\":\"assistant\"," : "", i, last ? "\"stop\"" : "null");
}

/* The usage chunk (when asked for) and [DONE], as one write. */
static int stream_set_tail(struct stream *s)
{
    long long prompt = s->body_len / 4 ? (long long)(s->body_len / 4) : 1;
    long long completion = s->spec.chunks;

    if (!s->include_usage)
        return stream_printf(s, "data: [DONE]\n\n");
    return stream_printf(
        s,
        "data: {\"id\":\"%s-mock-%u\",\"object\":"
        "\"%s\",\"created\":%lld,\"model\":%s,"
        "\"choices\":[],\"usage\":{\"prompt_tokens\":%lld,"
        "\"completion_tokens\":%lld,\"total_tokens\":%lld}}\n\n"
        "data: [DONE]\n\n",
        s->kind == MOCK_STREAM_COMPLETIONS ? "cmpl" : "chatcmpl", s->seq,
        s->kind == MOCK_STREAM_COMPLETIONS ? "text_completion"
                                           : "chat.completion.chunk",
        s->created, s->model_json, prompt, completion, prompt + completion);
}

/* Prepares the next event, sleeping first as the spec says. Returns 1 when
 * bytes are ready, 0 at a clean end, or an MHD_CONTENT_READER_END_* code. */
static ssize_t stream_advance(struct stream *s)
{
    int count = s->spec.raw ? (int)s->spec.n_raw : s->spec.chunks;
    int i = s->next;

    if (s->done)
        return 0;
    if (i > 0 && s->spec.delay_ms > 0 && mock_wait_ms(s->fd, s->spec.delay_ms))
        goto hung_up;
    if (i == s->spec.cut_after) {
        mock_record_mark(s->rec, MOCK_OUT_CUT);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (i == s->spec.stall_after && mock_wait_ms(s->fd, s->spec.stall_ms))
        goto hung_up;
    s->next++;
    if (i >= count) {
        s->done = true;
        if (s->spec.raw)
            return 0;
        if (s->kind == MOCK_STREAM_RESPONSES)
            return stream_resp_tail(s, s->model)
                       ? MHD_CONTENT_READER_END_WITH_ERROR
                       : 1;
        if (s->kind == MOCK_STREAM_TRANSCRIPT)
            return stream_printf(s,
                                 "data: {\"type\":\"transcript.text.done\","
                                 "\"text\":\"%d tokens\"}\n\n",
                                 s->spec.chunks)
                       ? MHD_CONTENT_READER_END_WITH_ERROR
                       : 1;
        return stream_set_tail(s) ? MHD_CONTENT_READER_END_WITH_ERROR : 1;
    }
    if (s->spec.raw ? stream_set_raw(s, (size_t)i) : stream_set_chunk(s, i))
        return MHD_CONTENT_READER_END_WITH_ERROR;
    mock_record_add_chunk(s->rec);
    return 1;
hung_up:
    mock_record_mark(s->rec, MOCK_OUT_CLIENT_CLOSED);
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    struct stream *s = cls;
    size_t n;

    (void)pos;
    if (s->split && s->off == s->split) {
        /* the second half of a split event, after a pause */
        s->split = 0;
        if (s->spec.delay_ms > 0 && mock_wait_ms(s->fd, s->spec.delay_ms)) {
            mock_record_mark(s->rec, MOCK_OUT_CLIENT_CLOSED);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    while (s->off >= s->len) {
        ssize_t r = stream_advance(s);

        if (r == 0)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (r < 0)
            return r;
    }
    size_t end = s->split > s->off ? s->split : s->len;
    n = end - s->off < max ? end - s->off : max;
    memcpy(out, s->buf + s->off, n);
    s->off += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    struct stream *s = cls;

    mock_record_unref(s->rec);
    mock_rule_unref(s->rule);
    free(s->model_json);
    free(s->model);
    free(s->text);
    free(s->buf);
    free(s);
}

struct MHD_Response *mock_stream_response(const struct mock_stream_args *a)
{
    struct stream *s = calloc(1, sizeof(*s));
    struct MHD_Response *resp = NULL;

    if (!s)
        goto fail;
    s->model_json = mock_reply_escape(a->model);
    s->model = strdup(a->model);
    if (!s->model_json || !s->model || stream_reserve(s, 512))
        goto fail;
    s->kind = a->kind;
    s->spec = a->spec;
    s->seq = a->seq;
    s->created = (long long)time(NULL);
    s->include_usage = a->include_usage;
    s->body_len = a->body_len;
    s->fd = a->fd;
    if (s->kind == MOCK_STREAM_RESPONSES && !s->spec.raw &&
        stream_resp_head(s, a->model))
        goto fail;
    resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK,
                                             stream_read, s, stream_free);
    if (!resp)
        goto fail;
    /* refs are taken only once stream_free is sure to run */
    s->rec = mock_record_ref(a->rec);
    s->rule = mock_rule_ref(a->rule);
    return resp;
fail:
    if (s) {
        free(s->model_json);
        free(s->model);
        free(s->text);
        free(s->buf);
    }
    free(s);
    return NULL;
}
