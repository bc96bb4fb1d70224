/*
 * test_api.c - the OpenAI endpoints beside chat through the real binary
 * and the mock upstream: the Responses API plain and streamed (named
 * events split mid-UTF-8, no [DONE]; failover before the first byte, the
 * API's own error event after it), completions and embeddings plain and
 * streamed, moderations, speech bytes, a multipart transcription, images,
 * rerank; per-API over-window refusals; 415 for a wrong Content-Type;
 * OpenAI's 404; client headers and query forwarded, the upstream's
 * request id and openai-* headers passed back.
 */
#include "itest_util.h"

static const char PIPELINE[] = "  - plugin: context\n"
                               "  - plugin: keyring\n"
                               "    config: { keys_file: \"@KEYS_FILE@\" }\n"
                               "  - plugin: retry\n"
                               "  - plugin: sse\n";

static void setup(void)
{
    h_tmpdir();
}

static void teardown(void)
{
    h_teardown();
}

static void start(void)
{
    h_opts o = {0};
    o.pipeline = PIPELINE;
    h_start_all(&o);
}

/* The last record the mock kept (caller decrefs the array it returns). */
static json_t *last_rec(json_t **all)
{
    *all = h_mock_requests();
    ck_assert_msg(json_array_size(*all) > 0, "the mock saw no request");
    return json_array_get(*all, json_array_size(*all) - 1);
}

static json_t *post_ok(const char *path, const char *body, h_resp *r)
{
    h_request(h_sluice_port(), "POST", path, NULL, body, strlen(body), 20000,
              r);
    ck_assert_msg(r->curl_code == 0, "%s: %s", path, r->error);
    ck_assert_msg(r->status == 200, "%s: %ld %s", path, r->status, it_show(r));
    json_t *doc = h_resp_json(r);
    ck_assert_msg(doc != NULL, "%s: not JSON: %s", path, it_show(r));
    return doc;
}

static void assert_upstream(const char *path, const char *body)
{
    json_t *all, *rec = last_rec(&all);
    ck_assert_str_eq(h_rec_str(rec, "path"), path);
    const char *auth = h_rec_header(rec, "authorization");
    ck_assert_msg(auth && !strncmp(auth, "Bearer sk-test-key-", 19),
                  "%s: upstream Authorization %s", path, auth ? auth : "-");
    size_t len;
    const char *b = h_rec_body(rec, &len);
    ck_assert_msg(b && len == strlen(body) && !memcmp(b, body, len),
                  "%s: the body was not forwarded unchanged", path);
    json_decref(all);
}

/* ---- plain answers of each endpoint ------------------------------------ */

START_TEST(test_plain_endpoints)
{
    start();
    h_resp r;
    static const char resp[] =
        "{\"model\":\"gpt-4o-mini\",\"input\":\"say hi\","
        "\"instructions\":\"be brief\"}";
    json_t *d = post_ok("/v1/responses", resp, &r);
    ck_assert_str_eq(json_string_value(json_object_get(d, "object")),
                     "response");
    ck_assert_str_eq(json_string_value(json_object_get(d, "status")),
                     "completed");
    ck_assert_msg(h_resp_header(&r, "x-sluice-prompt-tokens-estimate"),
                  "the context stage counted no Responses prompt");
    assert_upstream("/v1/responses", resp);
    json_decref(d);
    h_resp_free(&r);

    static const char emb[] = "{\"model\":\"text-embedding-3-small\","
                              "\"input\":[\"a\",\"b\",[1,2,3]]}";
    d = post_ok("/v1/embeddings", emb, &r);
    ck_assert_int_eq(json_array_size(json_object_get(d, "data")), 3);
    assert_upstream("/v1/embeddings", emb);
    json_decref(d);
    h_resp_free(&r);

    static const char cmpl[] =
        "{\"model\":\"gpt-4o-mini\",\"prompt\":\"def f():\",\"max_tokens\":5}";
    d = post_ok("/v1/completions", cmpl, &r);
    ck_assert_str_eq(json_string_value(json_object_get(d, "object")),
                     "text_completion");
    assert_upstream("/v1/completions", cmpl);
    json_decref(d);
    h_resp_free(&r);

    static const char mod[] = "{\"input\":[\"hello\",\"kill it\"]}";
    d = post_ok("/v1/moderations", mod, &r);
    json_t *res = json_object_get(d, "results");
    ck_assert(json_is_true(json_object_get(json_array_get(res, 1), "flagged")));
    assert_upstream("/v1/moderations", mod);
    json_decref(d);
    h_resp_free(&r);

    static const char img[] = "{\"prompt\":\"a cat\",\"n\":2}";
    d = post_ok("/v1/images/generations", img, &r);
    ck_assert_int_eq(json_array_size(json_object_get(d, "data")), 2);
    assert_upstream("/v1/images/generations", img);
    json_decref(d);
    h_resp_free(&r);

    static const char rr[] =
        "{\"model\":\"rerank-v1\",\"query\":\"q\",\"documents\":[\"a\",\"b\"]}";
    d = post_ok("/v1/rerank", rr, &r);
    ck_assert_int_eq(json_array_size(json_object_get(d, "results")), 2);
    assert_upstream("/v1/rerank", rr);
    json_decref(d);
    h_resp_free(&r);
}
END_TEST

/* ---- speech: a binary answer, byte for byte ---------------------------- */

START_TEST(test_speech_bytes)
{
    start();
    static const char body[] =
        "{\"model\":\"tts-1\",\"input\":\"hello there\",\"voice\":\"alloy\"}";
    h_resp via, direct;
    h_request(h_sluice_port(), "POST", "/v1/audio/speech", NULL, body,
              strlen(body), 20000, &via);
    ck_assert_msg(via.status == 200, "speech: %ld %s", via.status,
                  it_show(&via));
    const char *ct = h_resp_header(&via, "content-type");
    ck_assert_msg(ct && !strcmp(ct, "audio/mpeg"), "content type %s",
                  ct ? ct : "-");
    h_request(h_mock_port(), "POST", "/v1/audio/speech", NULL, body,
              strlen(body), 20000, &direct);
    ck_assert_uint_eq(via.body_len, direct.body_len);
    ck_assert_msg(!memcmp(via.body, direct.body, via.body_len),
                  "the audio bytes changed on the way");
    h_resp_free(&via);
    h_resp_free(&direct);
}
END_TEST

/* ---- multipart: the model from the form, the body untouched ------------ */

START_TEST(test_transcription_multipart)
{
    start();
    static const char body[] =
        "--b0undary\r\n"
        "Content-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
        "Content-Type: audio/wav\r\n\r\n"
        "RIFF\x01\x02\x03\r\n-- not a delimiter\r\n"
        "--b0undary\r\n"
        "Content-Disposition: form-data; name=\"model\"\r\n\r\n"
        "whisper-1\r\n"
        "--b0undary--\r\n";
    const char *hdr[] = {"Content-Type: multipart/form-data; boundary=b0undary",
                         NULL};
    h_resp r;
    h_request(h_sluice_port(), "POST", "/v1/audio/transcriptions", hdr, body,
              sizeof body - 1, 20000, &r);
    ck_assert_msg(r.status == 200, "transcription: %ld %s", r.status,
                  it_show(&r));
    json_t *d = h_resp_json(&r);
    ck_assert_str_eq(json_string_value(json_object_get(d, "text")),
                     "mock transcript of 27 bytes");
    json_decref(d);
    h_resp_free(&r);
    json_t *all, *rec = last_rec(&all);
    ck_assert_str_eq(h_rec_header(rec, "content-type"),
                     "multipart/form-data; boundary=b0undary");
    size_t len;
    const char *b = h_rec_body(rec, &len);
    ck_assert_msg(b && len == sizeof body - 1 && !memcmp(b, body, len),
                  "the upload was not forwarded unchanged");
    json_decref(all);

    /* the model is what routing and metrics see */
    char *m = h_metrics_scrape();
    ck_assert_msg(strstr(m, "route=\"audio_transcriptions\""),
                  "no audio_transcriptions route in /metrics");
    free(m);

    /* stream=true in the form: the transcription's own events, framed by
     * the sse stage, no [DONE] */
    static const char sbody[] =
        "--b0undary\r\n"
        "Content-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
        "Content-Type: audio/wav\r\n\r\nRIFF\r\n"
        "--b0undary\r\n"
        "Content-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
        "--b0undary\r\n"
        "Content-Disposition: form-data; name=\"stream\"\r\n\r\ntrue\r\n"
        "--b0undary--\r\n";
    h_stream s;
    h_stream_request(h_sluice_port(), "POST", "/v1/audio/transcriptions", hdr,
                     sbody, sizeof sbody - 1, 20000, 0, 0, &s);
    ck_assert_msg(s.resp.status == 200, "stream: %ld %s", s.resp.status,
                  s.resp.body);
    ck_assert_str_eq(h_resp_header(&s.resp, "content-type"),
                     "text/event-stream");
    ck_assert_uint_eq(s.nevents, 6);
    ck_assert(strstr(s.events[5].data, "transcript.text.done"));
    ck_assert(!h_stream_has_done(&s));
    h_stream_free(&s);

    /* a JSON body on a multipart route: 415, never forwarded */
    int before = h_mock_request_count();
    h_post_json("/v1/audio/translations", "{\"model\":\"whisper-1\"}", &r);
    it_assert_error(&r, 415, "unsupported_media_type", "JSON translation");
    h_resp_free(&r);
    ck_assert_int_eq(h_mock_request_count(), before);
}
END_TEST

/* ---- streams ---------------------------------------------------------- */

static void stream_post(const char *path, const char *body, h_stream *s)
{
    h_stream_request(h_sluice_port(), "POST", path, NULL, body, strlen(body),
                     20000, 0, 0, s);
    ck_assert_msg(s->resp.curl_code == 0, "%s: %s", path, s->resp.error);
    ck_assert_msg(s->resp.status == 200, "%s: %ld %s", path, s->resp.status,
                  s->resp.body);
}

START_TEST(test_responses_stream)
{
    start();
    ck_assert_int_eq(h_mock_script("{\"rules\":[{\"match\":{\"path\":"
                                   "\"/responses\"},\"stream\":{\"chunks\":4,"
                                   "\"delay_ms\":20}}]}"),
                     0);
    h_stream s;
    stream_post("/v1/responses",
                "{\"model\":\"gpt-4o-mini\",\"input\":\"hi\",\"stream\":true}",
                &s);
    ck_assert_msg(!h_stream_has_done(&s), "a Responses stream sent [DONE]");
    ck_assert_uint_eq(s.nevents, 4 + 4 + 4);
    ck_assert_str_eq(s.events[0].name, "response.created");
    ck_assert_str_eq(s.events[4].name, "response.output_text.delta");
    ck_assert_str_eq(s.events[s.nevents - 1].name, "response.completed");
    /* the deltas arrived split mid-character and left whole */
    char text[128] = "";
    for (size_t i = 0; i < s.nevents; i++) {
        if (strcmp(s.events[i].name, "response.output_text.delta"))
            continue;
        json_t *e = json_loads(s.events[i].data, 0, NULL);
        ck_assert_msg(e, "delta %zu is not JSON: %s", i, s.events[i].data);
        strcat(text, json_string_value(json_object_get(e, "delta")));
        json_decref(e);
    }
    ck_assert_str_eq(text, "tok0 \xc3\xa9 tok1 \xc3\xa9 tok2 \xc3\xa9 "
                           "tok3 \xc3\xa9 ");
    h_stream_free(&s);

    /* legacy completions stream like chat: data events and [DONE] */
    stream_post("/v1/completions",
                "{\"model\":\"gpt-4o-mini\",\"prompt\":\"x\",\"stream\":true}",
                &s);
    ck_assert_msg(h_stream_has_done(&s), "completions stream without [DONE]");
    ck_assert_uint_eq(h_stream_data_events(&s), 5);
    h_stream_free(&s);
}
END_TEST

START_TEST(test_responses_stream_failover_and_error)
{
    start();
    /* a 500 before the first byte: the retry stage tries again */
    ck_assert_int_eq(h_mock_script("{\"rules\":[{\"match\":{\"path\":"
                                   "\"/responses\"},\"status\":500}]}"),
                     0);
    h_stream s;
    stream_post("/v1/responses",
                "{\"model\":\"gpt-4o-mini\",\"input\":\"hi\",\"stream\":true}",
                &s);
    ck_assert_str_eq(s.events[s.nevents - 1].name, "response.completed");
    ck_assert_int_eq(h_mock_request_count(), 2);
    h_stream_free(&s);

    /* cut after two deltas: the Responses API's own error event ends it */
    ck_assert_int_eq(h_mock_script("{\"rules\":[{\"match\":{\"path\":"
                                   "\"/responses\"},\"stream\":{\"chunks\":4,"
                                   "\"cut_after\":2}}]}"),
                     0);
    stream_post("/v1/responses",
                "{\"model\":\"gpt-4o-mini\",\"input\":\"hi\",\"stream\":true}",
                &s);
    h_event *last = &s.events[s.nevents - 1];
    ck_assert_msg(last->name && !strcmp(last->name, "error"),
                  "last event %s, expected error", last->name);
    json_t *e = json_loads(last->data, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(e, "type")), "error");
    ck_assert_str_eq(json_string_value(json_object_get(e, "code")),
                     "stream_interrupted");
    ck_assert(json_is_string(json_object_get(e, "message")));
    ck_assert_int_eq(json_integer_value(json_object_get(e, "sequence_number")),
                     6); /* 4 opening events + 2 deltas came before */
    ck_assert_msg(!json_object_get(e, "error"), "chat's error shape");
    json_decref(e);
    ck_assert_msg(!h_stream_has_done(&s), "[DONE] after a Responses error");
    h_stream_free(&s);
}
END_TEST

/* ---- over the window, per API ------------------------------------------ */

static char *big(const char *fmt, const char *model, size_t reps)
{
    char *words = malloc(reps * 12 + 1), *p = words;
    for (size_t i = 0; i < reps; i++)
        p += sprintf(p, "hello world ");
    *p = '\0';
    char *out = malloc(reps * 12 + 512);
    sprintf(out, fmt, model, words);
    free(words);
    return out;
}

static void refused(const char *path, char *body, const char *param)
{
    h_resp r;
    h_post_json(path, body, &r);
    it_assert_error(&r, 400, "context_length_exceeded", path);
    json_t *d = h_resp_json(&r);
    const char *p = json_string_value(
        json_object_get(json_object_get(d, "error"), "param"));
    ck_assert_msg(p && !strcmp(p, param), "%s: param %s, expected %s", path,
                  p ? p : "null", param);
    json_decref(d);
    h_resp_free(&r);
    free(body);
}

START_TEST(test_over_window_per_api)
{
    start();
    /* llama3-8b-instruct has 8,000 tokens; "hello world " is 2 */
    refused(
        "/v1/responses",
        big("{\"model\":\"%s\",\"input\":\"%s\"}", "llama3-8b-instruct", 5000),
        "input");
    refused("/v1/completions",
            big("{\"model\":\"%s\",\"prompt\":[\"%s\"]}", "llama3-8b-instruct",
                5000),
            "prompt");
    refused("/v1/embeddings",
            big("{\"model\":\"%s\",\"input\":[\"short\",\"%s\"]}",
                "text-embedding-3-small", 5000),
            "input");
    /* a token array counts its length (over the estimate's 10 % margin) */
    char *tok = malloc(9500 * 2 + 128), *p = tok;
    p += sprintf(p, "{\"model\":\"text-embedding-3-small\",\"input\":[[");
    for (int i = 0; i < 9500; i++)
        p += sprintf(p, i ? ",1" : "1");
    strcpy(p, "]]}");
    refused("/v1/embeddings", tok, "input");
    ck_assert_int_eq(h_mock_request_count(), 0);

    /* many inputs, each within the window: not refused */
    char *ok = malloc(4 * 3000 * 12 + 256);
    p = ok + sprintf(ok, "{\"model\":\"text-embedding-3-small\",\"input\":[");
    for (int k = 0; k < 4; k++) {
        p += sprintf(p, k ? ",\"" : "\"");
        for (int i = 0; i < 3000; i++)
            p += sprintf(p, "hello world ");
        p += sprintf(p, "\"");
    }
    strcpy(p, "]}");
    h_resp r;
    json_t *d = post_ok("/v1/embeddings", ok, &r);
    json_decref(d);
    h_resp_free(&r);
    free(ok);
}
END_TEST

/* ---- content type, unknown paths -------------------------------------- */

START_TEST(test_415_and_404)
{
    start();
    const char *hdr[] = {"Content-Type: text/plain", NULL};
    h_resp r;
    static const char body[] = "{\"model\":\"m\",\"input\":\"x\"}";
    h_request(h_sluice_port(), "POST", "/v1/embeddings", hdr, body,
              strlen(body), 10000, &r);
    it_assert_error(&r, 415, "unsupported_media_type", "text/plain");
    h_resp_free(&r);
    const char *hj[] = {"Content-Type: application/json; charset=utf-8", NULL};
    h_request(h_sluice_port(), "POST", "/v1/embeddings", hj, body, strlen(body),
              10000, &r);
    ck_assert_msg(r.status == 200, "json; charset: %ld", r.status);
    h_resp_free(&r);

    h_post_json("/v1/xyz", "{}", &r);
    ck_assert_int_eq(r.status, 404);
    ck_assert_str_eq(r.body, "{\"error\":{\"message\":\"Invalid URL (POST "
                             "/v1/xyz)\",\"type\":\"invalid_request_error\","
                             "\"param\":null,\"code\":null}}");
    h_resp_free(&r);
    ck_assert_int_eq(h_mock_request_count(), 1);
}
END_TEST

/* ---- headers and query ------------------------------------------------- */

START_TEST(test_headers_and_query)
{
    start();
    ck_assert_int_eq(
        h_mock_script("{\"rules\":[{\"match\":{\"path\":\"/responses\"},"
                      "\"headers\":{\"x-request-id\":\"req_up_42\","
                      "\"openai-organization\":\"org-mock\","
                      "\"openai-processing-ms\":\"12\"}}]}"),
        0);
    const char *hdr[] = {"OpenAI-Organization: org-client",
                         "OpenAI-Project: proj_1",
                         "OpenAI-Beta: assistants=v2",
                         "Authorization: Bearer client-secret",
                         "x-api-key: client-secret-2",
                         "Connection: keep-alive",
                         NULL};
    static const char body[] = "{\"model\":\"gpt-4o-mini\",\"input\":\"x\"}";
    h_resp r;
    h_request(h_sluice_port(), "POST",
              "/v1/responses?api-version=2024-10-21&x=a%20b", hdr, body,
              strlen(body), 10000, &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, it_show(&r));
    ck_assert_str_eq(h_resp_header(&r, "x-upstream-request-id"), "req_up_42");
    ck_assert_str_eq(h_resp_header(&r, "openai-organization"), "org-mock");
    ck_assert_str_eq(h_resp_header(&r, "openai-processing-ms"), "12");
    ck_assert_msg(strcmp(h_resp_header(&r, "x-request-id"), "req_up_42"),
                  "x-request-id should stay sluice's own");
    h_resp_free(&r);

    json_t *all, *rec = last_rec(&all);
    ck_assert_str_eq(h_rec_str(rec, "path"), "/v1/responses");
    json_t *q = json_object_get(rec, "query");
    ck_assert_str_eq(json_string_value(json_object_get(q, "api-version")),
                     "2024-10-21");
    ck_assert_str_eq(json_string_value(json_object_get(q, "x")), "a b");
    ck_assert_str_eq(h_rec_header(rec, "openai-organization"), "org-client");
    ck_assert_str_eq(h_rec_header(rec, "openai-project"), "proj_1");
    ck_assert_str_eq(h_rec_header(rec, "openai-beta"), "assistants=v2");
    ck_assert_msg(!strstr(h_rec_header(rec, "authorization"), "client-secret"),
                  "the client's Authorization reached the upstream");
    ck_assert_msg(!h_rec_header(rec, "x-api-key"),
                  "the client's x-api-key reached the upstream");
    json_decref(all);
}
END_TEST

/* the operator's lists: which client headers go on, which are added */
START_TEST(test_headers_operator_lists)
{
    h_opts o = {0};
    o.pipeline = PIPELINE;
    o.upstream_extra = "  forward_headers: [OpenAI-Beta, X-Trace-Id]\n"
                       "  add_headers: { X-Gateway: sluice }\n";
    h_start_all(&o);
    const char *hdr[] = {"OpenAI-Organization: org-client",
                         "OpenAI-Beta: assistants=v2", "X-Trace-Id: t-1",
                         "X-Gateway: from-client", NULL};
    static const char body[] = "{\"model\":\"gpt-4o-mini\",\"input\":\"x\"}";
    h_resp r;
    h_request(h_sluice_port(), "POST", "/v1/responses", hdr, body, strlen(body),
              10000, &r);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    json_t *all, *rec = last_rec(&all);
    ck_assert_ptr_null(h_rec_header(rec, "openai-organization"));
    ck_assert_str_eq(h_rec_header(rec, "openai-beta"), "assistants=v2");
    ck_assert_str_eq(h_rec_header(rec, "x-trace-id"), "t-1");
    ck_assert_str_eq(h_rec_header(rec, "x-gateway"), "sluice");
    json_decref(all);
}
END_TEST

/* ---- the auth stage's tpm charges the same per-API counts -------------- */

START_TEST(test_tpm_per_api)
{
    it_secret_file("clients.txt", "sk-client-tokens-00001 tok tpm=100\n");
    h_opts o = {0};
    o.pipeline = "  - plugin: auth\n"
                 "    config: { clients_file: \"@TMPDIR@/clients.txt\" }\n"
                 "  - plugin: context\n"
                 "  - plugin: keyring\n"
                 "    config: { keys_file: \"@KEYS_FILE@\" }\n"
                 "  - plugin: sse\n";
    h_start_all(&o);
    const char *k[] = {"x-api-key: sk-client-tokens-00001", NULL};
    h_resp r;
    /* 150 tokens of a token array: over the minute's 100 at once */
    char emb[1024], *p = emb;
    p += sprintf(p, "{\"model\":\"text-embedding-3-small\",\"input\":[[");
    for (int i = 0; i < 150; i++)
        p += sprintf(p, i ? ",7" : "7");
    strcpy(p, "]]}");
    h_request(h_sluice_port(), "POST", "/v1/embeddings", k, emb, strlen(emb),
              10000, &r);
    it_assert_error(&r, 429, "rate_limit_exceeded", "embeddings over tpm");
    h_resp_free(&r);
    /* a Responses input of ~300 words, likewise */
    char big[4096];
    int n =
        snprintf(big, sizeof big, "{\"model\":\"gpt-4o-mini\",\"input\":\"");
    for (int i = 0; i < 300; i++)
        n += snprintf(big + n, sizeof big - (size_t)n, "word ");
    snprintf(big + n, sizeof big - (size_t)n, "\"}");
    h_request(h_sluice_port(), "POST", "/v1/responses", k, big, strlen(big),
              10000, &r);
    it_assert_error(&r, 429, "rate_limit_exceeded", "responses over tpm");
    h_resp_free(&r);
    /* a small one is charged and passes */
    static const char small[] = "{\"model\":\"gpt-4o-mini\",\"input\":\"hi\"}";
    h_request(h_sluice_port(), "POST", "/v1/responses", k, small, strlen(small),
              10000, &r);
    ck_assert_msg(r.status == 200, "small: %ld %s", r.status, it_show(&r));
    h_resp_free(&r);
    ck_assert_int_eq(h_mock_request_count(), 1);
}
END_TEST

/* ---- passthrough ------------------------------------------------------- */

START_TEST(test_passthrough)
{
    h_opts o = {0};
    o.pipeline = PIPELINE;
    o.extra = "passthrough: true\n";
    h_start_all(&o);
    ck_assert_int_eq(
        h_mock_script(
            "{\"rules\":[{\"match\":{\"path\":\"/files\",\"method\":"
            "\"GET\"},\"json\":{\"object\":\"list\",\"data\":[]},"
            "\"times\":0},"
            "{\"match\":{\"path\":\"/files\",\"method\":\"POST\"},"
            "\"status\":201,\"json\":{\"id\":\"file-1\"}},"
            "{\"match\":{\"path\":\"/files/file-1\",\"method\":"
            "\"DELETE\"},\"json\":{\"deleted\":true}},"
            "{\"match\":{\"path\":\"/chat/completions/cc-1\",\"method\":"
            "\"GET\"},\"json\":{\"id\":\"cc-1\"}}]}"),
        0);
    h_resp r;
    h_request(h_sluice_port(), "GET", "/v1/files?purpose=batch", NULL, NULL, 0,
              10000, &r);
    ck_assert_msg(r.status == 200, "GET /v1/files: %ld %s", r.status,
                  it_show(&r));
    ck_assert_str_eq(r.body, "{\"object\":\"list\",\"data\":[]}");
    h_resp_free(&r);
    json_t *all, *rec = last_rec(&all);
    ck_assert_str_eq(h_rec_str(rec, "method"), "GET");
    ck_assert_str_eq(h_rec_str(rec, "path"), "/v1/files");
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(rec, "query"), "purpose")),
                     "batch");
    ck_assert(!strncmp(h_rec_header(rec, "authorization"),
                       "Bearer sk-test-key-", 19));
    json_decref(all);

    static const char up[] = "--zz\r\nContent-Disposition: form-data; "
                             "name=\"purpose\"\r\n\r\nbatch\r\n--zz--\r\n";
    const char *ct[] = {"Content-Type: multipart/form-data; boundary=zz", NULL};
    h_request(h_sluice_port(), "POST", "/v1/files", ct, up, sizeof up - 1,
              10000, &r);
    ck_assert_int_eq(r.status, 201);
    h_resp_free(&r);
    rec = last_rec(&all);
    size_t len;
    const char *b = h_rec_body(rec, &len);
    ck_assert(b && len == sizeof up - 1 && !memcmp(b, up, len));
    ck_assert_str_eq(h_rec_header(rec, "content-type"),
                     "multipart/form-data; boundary=zz");
    json_decref(all);

    h_request(h_sluice_port(), "DELETE", "/v1/files/file-1", NULL, NULL, 0,
              10000, &r);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    h_request(h_sluice_port(), "GET", "/v1/chat/completions/cc-1", NULL, NULL,
              0, 10000, &r);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    rec = last_rec(&all);
    ck_assert_str_eq(h_rec_str(rec, "method"), "GET");
    json_decref(all);

    /* a client Accept too long to pass on is the client's 400 */
    static char acc[8300];
    int n = snprintf(acc, sizeof acc, "Accept: ");
    memset(acc + n, 'q', sizeof acc - n - 1);
    const char *ah[] = {acc, NULL};
    int before = h_mock_request_count();
    h_request(h_sluice_port(), "GET", "/v1/files", ah, NULL, 0, 10000, &r);
    ck_assert_msg(r.status == 400, "%ld %s", r.status, it_show(&r));
    ck_assert_msg(strstr(r.body, "\"header_too_long\"") &&
                      strstr(r.body, "header Accept ") &&
                      !strstr(r.body, "qqqq"),
                  "%s", r.body);
    h_resp_free(&r);
    ck_assert_int_eq(h_mock_request_count(), before);

    /* sluice's own routes stay sluice's */
    before = h_mock_request_count();
    h_get("/v1/models", &r);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    ck_assert_int_eq(h_mock_request_count(), before);

    char *m = h_metrics_scrape();
    ck_assert_msg(strstr(m, "route=\"passthrough\""),
                  "passthrough not counted in /metrics");
    free(m);
}
END_TEST

/* ---- models_from_upstream ---------------------------------------------- */

/* GET /v1/models until its body holds `needle` (bounded); the body. */
static char *models_until(const char *needle)
{
    for (int i = 0; i < 200; i++) {
        h_resp r;
        h_get("/v1/models", &r);
        ck_assert_int_eq(r.status, 200);
        char *b = strdup(r.body);
        h_resp_free(&r);
        if (strstr(b, needle))
            return b;
        free(b);
        h_sleep_ms(25);
    }
    ck_abort_msg("/v1/models never listed %s", needle);
    return NULL;
}

START_TEST(test_models_from_upstream)
{
    h_opts o = {0};
    o.pipeline = "  - plugin: context\n"
                 "    config: { models_from_upstream: { keys_file: "
                 "\"@KEYS_FILE@\" } }\n"
                 "  - plugin: keyring\n"
                 "    config: { keys_file: \"@KEYS_FILE@\" }\n"
                 "  - plugin: sse\n";
    h_start_all(&o);
    char *b = models_until("\"mock-model-large\"");
    json_t *d = json_loads(b, 0, NULL);
    free(b);
    size_t i, seen_20b = 0;
    json_t *m;
    json_array_foreach(json_object_get(d, "data"), i, m)
    {
        const char *id = json_string_value(json_object_get(m, "id"));
        /* the table's entry wins: listed once, with its context_length */
        if (!strcmp(id, "openai-gpt-oss-20b")) {
            seen_20b++;
            ck_assert_int_eq(
                json_integer_value(json_object_get(m, "context_length")),
                128000);
        }
        ck_assert_int_eq(json_integer_value(json_object_get(m, "created")),
                         1704067200);
    }
    ck_assert_uint_eq(seen_20b, 1);
    json_decref(d);
    json_t *all, *rec = last_rec(&all);
    ck_assert_str_eq(h_rec_str(rec, "path"), "/v1/models");
    ck_assert_str_eq(h_rec_header(rec, "authorization"), "Bearer " H_FIRST_KEY);
    json_decref(all);
}
END_TEST

/* an upstream that fails: a WARNING, and the table alone */
START_TEST(test_models_from_upstream_fails)
{
    h_opts o = {0};
    o.pipeline = "  - plugin: context\n"
                 "    config: { models_from_upstream: true }\n"
                 "  - plugin: keyring\n"
                 "    config: { keys_file: \"@KEYS_FILE@\" }\n";
    h_start_mock();
    ck_assert_int_eq(h_mock_script("{\"rules\":[{\"match\":{\"path\":"
                                   "\"/models\"},\"status\":500}]}"),
                     0);
    h_start_sluice(&o);
    char *log = h_log_wait("models_from_upstream: GET /models did "
                           "not answer a model list",
                           "\"WARNING\"", 10000);
    ck_assert_msg(log != NULL, "no WARNING about the failed upstream list");
    free(log);
    h_resp r;
    h_get("/v1/models", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_null(strstr(r.body, "mock-model"));
    h_resp_free(&r);
}
END_TEST

/* ---- CORS -------------------------------------------------------------- */

START_TEST(test_cors)
{
    h_opts o = {0};
    o.pipeline = PIPELINE;
    o.server_extra = "  cors: { allow_origins: [\"http://app.example\"], "
                     "max_age: 300 }\n";
    h_start_all(&o);
    const char *pre_ok[] = {"Origin: http://app.example",
                            "Access-Control-Request-Method: POST",
                            "Access-Control-Request-Headers: authorization, "
                            "content-type, x-stainless-os",
                            NULL};
    h_resp r;
    h_request(h_sluice_port(), "OPTIONS", "/v1/responses", pre_ok, NULL, 0,
              10000, &r);
    ck_assert_int_eq(r.status, 204);
    ck_assert_str_eq(h_resp_header(&r, "access-control-allow-origin"),
                     "http://app.example");
    ck_assert_str_eq(h_resp_header(&r, "access-control-allow-headers"),
                     "authorization, content-type, x-stainless-os");
    ck_assert_str_eq(h_resp_header(&r, "access-control-max-age"), "300");
    ck_assert(
        strstr(h_resp_header(&r, "access-control-allow-methods"), "POST"));
    h_resp_free(&r);

    const char *pre_bad[] = {"Origin: http://evil.example",
                             "Access-Control-Request-Method: POST", NULL};
    h_request(h_sluice_port(), "OPTIONS", "/v1/responses", pre_bad, NULL, 0,
              10000, &r);
    ck_assert_int_eq(r.status, 204);
    ck_assert_ptr_null(h_resp_header(&r, "access-control-allow-origin"));
    ck_assert_ptr_null(h_resp_header(&r, "access-control-allow-headers"));
    h_resp_free(&r);

    static const char body[] = "{\"model\":\"gpt-4o-mini\",\"input\":\"x\"}";
    const char *ok[] = {"Origin: http://app.example", NULL};
    h_request(h_sluice_port(), "POST", "/v1/responses", ok, body, strlen(body),
              10000, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(h_resp_header(&r, "access-control-allow-origin"),
                     "http://app.example");
    ck_assert(strstr(h_resp_header(&r, "access-control-expose-headers"),
                     "x-request-id"));
    h_resp_free(&r);
    const char *bad[] = {"Origin: http://evil.example", NULL};
    h_request(h_sluice_port(), "POST", "/v1/responses", bad, body, strlen(body),
              10000, &r);
    ck_assert_ptr_null(h_resp_header(&r, "access-control-allow-origin"));
    h_resp_free(&r);
    ck_assert_int_eq(h_mock_request_count(), 2); /* preflights never go up */
}
END_TEST

START_TEST(test_cors_off_by_default)
{
    start();
    const char *pre[] = {"Origin: http://app.example",
                         "Access-Control-Request-Method: POST", NULL};
    h_resp r;
    h_request(h_sluice_port(), "OPTIONS", "/v1/responses", pre, NULL, 0, 10000,
              &r);
    ck_assert_int_eq(r.status, 405);
    ck_assert_ptr_null(h_resp_header(&r, "access-control-allow-origin"));
    h_resp_free(&r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("integration-api");
    TCase *tc = tcase_create("api");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_plain_endpoints);
    tcase_add_test(tc, test_speech_bytes);
    tcase_add_test(tc, test_transcription_multipart);
    tcase_add_test(tc, test_responses_stream);
    tcase_add_test(tc, test_responses_stream_failover_and_error);
    tcase_add_test(tc, test_over_window_per_api);
    tcase_add_test(tc, test_415_and_404);
    tcase_add_test(tc, test_headers_and_query);
    tcase_add_test(tc, test_headers_operator_lists);
    tcase_add_test(tc, test_cors);
    tcase_add_test(tc, test_passthrough);
    tcase_add_test(tc, test_models_from_upstream);
    tcase_add_test(tc, test_models_from_upstream_fails);
    tcase_add_test(tc, test_tpm_per_api);
    tcase_add_test(tc, test_cors_off_by_default);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
