/*
 * test_proxy.c - integration tests of the sluice core: the real binary and
 * the mock upstream on loopback. Every test asserts on what the client got
 * and on what the mock upstream saw.
 *
 * Each test starts its own mock and sluice (harness.c) in Check's forked
 * child; the checked teardown (or the harness's atexit handler when an
 * assertion ends the test early) kills and reaps them.
 */
#include "harness.h"

#include <check.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHAT_PATH "/v1/chat/completions"

/* Not compact on purpose, with UTF-8, so "unchanged" means byte for byte. */
static const char CHAT_BODY[] =
    "{ \"model\": \"qwen/qwen3-next-80b-a3b-instruct\",\n"
    "  \"messages\": [ {\"role\": \"system\", \"content\": \"be brief\"},\n"
    "                {\"role\": \"user\",   \"content\": \"h\xc3\xa9llo "
    "\\u00e9 w\xc3\xb6rld\"} ],\n"
    "  \"temperature\": 0.25 ,  \"max_tokens\" : 16 }";

static const char STREAM_BODY[] =
    "{\"model\": \"qwen/qwen3-next-80b-a3b-instruct\", \"stream\": true,"
    " \"messages\": [{\"role\": \"user\", \"content\": \"stream please\"}]}";

static const char PLAIN_SMALL[] = "{\"model\":\"gpt-4o-mini\",\"messages\":[{"
                                  "\"role\":\"user\",\"content\":\"hi\"}]}";

static void setup(void)
{
    h_tmpdir();
}

static void teardown(void)
{
    h_teardown();
}

/* Body text for messages: printable, bounded. */
static const char *show(const h_resp *r)
{
    static char buf[600];
    size_t n = r->body_len < 500 ? r->body_len : 500;
    memcpy(buf, r->body ? r->body : "", n);
    buf[n] = '\0';
    if (r->body_len > n)
        strcat(buf, "...");
    return buf;
}

static void assert_transfer_ok(const h_resp *r, const char *what)
{
    ck_assert_msg(r->curl_code == 0, "%s: transfer failed: %s (curl %d)", what,
                  r->error, r->curl_code);
}

/* The one record the mock holds (asserts there is exactly one). */
static json_t *only_record(json_t *reqs, const char *what)
{
    ck_assert_msg(reqs != NULL, "%s: GET /_mock/requests failed", what);
    ck_assert_msg(json_array_size(reqs) == 1,
                  "%s: mock saw %zu requests, expected 1", what,
                  json_array_size(reqs));
    return json_array_get(reqs, 0);
}

static void assert_error_response(const h_resp *r, long status,
                                  const char *type, const char *what)
{
    assert_transfer_ok(r, what);
    ck_assert_msg(r->status == status, "%s: status %ld, expected %ld; body: %s",
                  what, r->status, status, show(r));
    const char *ct = h_resp_header(r, "content-type");
    ck_assert_msg(ct && strncasecmp(ct, "application/json", 16) == 0,
                  "%s: content-type %s, expected application/json", what,
                  ct ? ct : "(none)");
    json_t *doc = h_resp_json(r);
    ck_assert_msg(doc != NULL, "%s: body is not JSON: %s", what, show(r));
    json_t *err = h_assert_openai_error(doc, what);
    if (type) {
        const char *t = json_string_value(json_object_get(err, "type"));
        ck_assert_msg(t && strcmp(t, type) == 0,
                      "%s: error.type \"%s\", expected \"%s\"", what,
                      t ? t : "(null)", type);
    }
    json_decref(doc);
}

/* ---- 1. plain completion ---------------------------------------------- */

START_TEST(test_plain_completion)
{
    h_start_all(NULL);
    /* The client's own key must not reach the upstream: the keyring's does. */
    const char *hdrs[] = {"Authorization: Bearer sk-client-must-not-pass",
                          NULL};
    h_resp r;
    h_request(h_sluice_port(), "POST", CHAT_PATH, hdrs, CHAT_BODY,
              strlen(CHAT_BODY), 10000, &r);
    assert_transfer_ok(&r, "plain completion");
    ck_assert_msg(r.status == 200, "status %ld, body %s", r.status, show(&r));
    const char *ct = h_resp_header(&r, "content-type");
    ck_assert_msg(ct && strncasecmp(ct, "application/json", 16) == 0,
                  "content-type %s", ct ? ct : "(none)");
    json_t *doc = h_resp_json(&r);
    ck_assert_msg(doc != NULL, "body is not JSON: %s", show(&r));
    json_t *choices = json_object_get(doc, "choices");
    ck_assert_msg(json_is_array(choices) && json_array_size(choices) >= 1,
                  "no choices in %s", show(&r));
    ck_assert_msg(
        json_is_string(json_object_get(
            json_object_get(json_array_get(choices, 0), "message"), "content")),
        "choices[0].message.content is not a string");
    json_decref(doc);
    h_resp_free(&r);

    json_t *reqs = h_mock_requests();
    json_t *rec = only_record(reqs, "plain completion");
    ck_assert_str_eq(h_rec_str(rec, "method"), "POST");
    ck_assert_str_eq(h_rec_str(rec, "path"), "/v1/chat/completions");
    const char *auth = h_rec_header(rec, "authorization");
    ck_assert_msg(auth && strcmp(auth, "Bearer " H_FIRST_KEY) == 0,
                  "mock saw authorization \"%s\", expected \"Bearer %s\"",
                  auth ? auth : "(none)", H_FIRST_KEY);
    const char *ct_up = h_rec_header(rec, "content-type");
    ck_assert_msg(ct_up && strncasecmp(ct_up, "application/json", 16) == 0,
                  "mock saw content-type \"%s\", expected application/json",
                  ct_up ? ct_up : "(none)");
    size_t blen = 0;
    const char *body = h_rec_body(rec, &blen);
    ck_assert_msg(body && blen == strlen(CHAT_BODY) &&
                      memcmp(body, CHAT_BODY, blen) == 0,
                  "mock saw a different body (%zu bytes, sent %zu):\n%s", blen,
                  strlen(CHAT_BODY), body ? body : "(none)");
    json_decref(reqs);
}
END_TEST

/* ---- 2. streamed completion, not buffered ------------------------------ */

START_TEST(test_streamed_completion)
{
    h_start_all(NULL);
    ck_assert_int_eq(
        h_mock_script(
            "{\"rules\":[{\"stream\":{\"chunks\":5,\"delay_ms\":200}}]}"),
        0);
    h_stream s;
    h_stream_request(h_sluice_port(), "POST", CHAT_PATH, NULL, STREAM_BODY,
                     strlen(STREAM_BODY), 20000, 0, 0, &s);
    assert_transfer_ok(&s.resp, "streamed completion");
    ck_assert_msg(s.resp.status == 200, "status %ld, body %s", s.resp.status,
                  show(&s.resp));
    const char *ct = h_resp_header(&s.resp, "content-type");
    ck_assert_msg(ct && strncasecmp(ct, "text/event-stream", 17) == 0,
                  "content-type %s, expected text/event-stream",
                  ct ? ct : "(none)");
    ck_assert_msg(h_stream_data_events(&s) == 5,
                  "%zu chunk events, expected 5; body:\n%s",
                  h_stream_data_events(&s), show(&s.resp));
    ck_assert_msg(h_stream_has_done(&s), "no final data: [DONE]; body:\n%s",
                  show(&s.resp));
    for (size_t i = 0; i < s.nevents; i++) {
        if (strcmp(s.events[i].data ? s.events[i].data : "", "[DONE]") == 0)
            continue;
        json_error_t e;
        json_t *ev =
            json_loads(s.events[i].data ? s.events[i].data : "", 0, &e);
        ck_assert_msg(json_is_object(ev), "event %zu is not a JSON object: %s",
                      i, s.events[i].data);
        json_decref(ev);
    }
    double first = s.events[0].t_ms, total = s.resp.total_ms;
    ck_assert_msg(first < total - 500,
                  "first event at %.0f ms, stream ended at %.0f ms: the "
                  "stream was buffered (%zu chunks received)",
                  first, total, s.nchunks);
    /* ...and the events arrive spread out as the mock sent them (200 ms
     * apart), not the first flushed and the rest held back. */
    double last_data = s.events[4].t_ms;
    ck_assert_msg(last_data - first >= 500,
                  "events 1..5 arrived within %.0f ms of each other: the "
                  "upstream sent them 200 ms apart",
                  last_data - first);
    h_stream_free(&s);

    /* the mock marks the record once its own completion callback ran,
     * a moment after the last byte left: wait for it (bounded) */
    json_t *reqs = NULL, *rec = NULL;
    for (int i = 0; i < 50; i++) {
        json_decref(reqs);
        reqs = h_mock_requests();
        rec = only_record(reqs, "streamed completion");
        if (strcmp(h_rec_str(rec, "outcome"), "in_progress"))
            break;
        h_sleep_ms(20);
    }
    ck_assert_str_eq(h_rec_str(rec, "path"), "/v1/chat/completions");
    ck_assert_str_eq(h_rec_str(rec, "outcome"), "complete");
    size_t blen = 0;
    const char *body = h_rec_body(rec, &blen);
    ck_assert_msg(body && blen == strlen(STREAM_BODY) &&
                      memcmp(body, STREAM_BODY, blen) == 0,
                  "mock saw a different body: %s", body ? body : "(none)");
    json_decref(reqs);
}
END_TEST

/* ---- 3. upstream 4xx / 5xx pass through ------------------------------- */

START_TEST(test_upstream_errors_pass_through)
{
    h_start_all(NULL);
    struct {
        int status;
        const char *body;
        const char *content_type; /* NULL: the mock's default for the body */
        const char *expect_ct;
    } cases[] = {
        {418,
         "{\"error\": {\"message\": \"I am a teapot\", \"type\": "
         "\"mock_error\", \"param\": null, \"code\": \"teapot\"}}",
         NULL, "application/json"},
        {429,
         "{\"error\":{\"message\":\"Rate limit reached\",\"type\":"
         "\"rate_limit_error\",\"param\":null,\"code\":\"rate_limit\"}}",
         NULL, "application/json"},
        {500,
         "{\"error\" : {\"message\":\"boom\",\"type\":\"server_error\"}}\n",
         "application/json; charset=utf-8", "application/json; charset=utf-8"},
        {503,
         "{\"error\":{\"message\":\"overloaded\",\"type\":\"overloaded\"}}",
         NULL, "application/json"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "upstream %d", cases[i].status);
        ck_assert_int_eq(h_mock_reset(), 0);
        json_t *headers =
            json_pack("{s:s, s:s}", "X-Mock-Case", what, "Retry-After", "7");
        if (cases[i].content_type)
            json_object_set_new(headers, "Content-Type",
                                json_string(cases[i].content_type));
        json_t *rules = json_pack("{s:[{s:i, s:s, s:o}]}", "rules", "status",
                                  cases[i].status, "body", cases[i].body,
                                  "headers", headers);
        char *rtext = json_dumps(rules, JSON_COMPACT);
        json_decref(rules);
        ck_assert_int_eq(h_mock_script(rtext), 0);
        free(rtext);

        h_resp r;
        h_post_json(CHAT_PATH, PLAIN_SMALL, &r);
        assert_transfer_ok(&r, what);
        ck_assert_msg(r.status == cases[i].status,
                      "%s: client got status %ld, body %s", what, r.status,
                      show(&r));
        ck_assert_msg(
            r.body_len == strlen(cases[i].body) &&
                memcmp(r.body, cases[i].body, r.body_len) == 0,
            "%s: body changed:\n  sent by mock: %s\n  client got:   %s", what,
            cases[i].body, show(&r));
        const char *ct = h_resp_header(&r, "content-type");
        ck_assert_msg(ct && strcasecmp(ct, cases[i].expect_ct) == 0,
                      "%s: content-type \"%s\", expected \"%s\"", what,
                      ct ? ct : "(none)", cases[i].expect_ct);
        h_resp_free(&r);

        json_t *reqs = h_mock_requests();
        json_t *rec = only_record(reqs, what);
        ck_assert_str_eq(h_rec_str(rec, "path"), "/v1/chat/completions");
        ck_assert_int_eq(json_integer_value(json_object_get(rec, "status")),
                         cases[i].status);
        json_decref(reqs);
    }

    /* A streamed request that the upstream refuses before any event gets
     * the upstream's answer too, not an event stream. */
    ck_assert_int_eq(h_mock_reset(), 0);
    const char *err429 = "{\"error\":{\"message\":\"slow down\",\"type\":"
                         "\"rate_limit_error\",\"param\":null,\"code\":null}}";
    json_t *rules =
        json_pack("{s:[{s:i, s:s}]}", "rules", "status", 429, "body", err429);
    char *rtext = json_dumps(rules, JSON_COMPACT);
    json_decref(rules);
    ck_assert_int_eq(h_mock_script(rtext), 0);
    free(rtext);
    h_stream s;
    h_stream_request(h_sluice_port(), "POST", CHAT_PATH, NULL, STREAM_BODY,
                     strlen(STREAM_BODY), 10000, 0, 0, &s);
    assert_transfer_ok(&s.resp, "streamed request, upstream 429");
    ck_assert_msg(s.resp.status == 429,
                  "streamed request, upstream 429: "
                  "client got %ld, body %s",
                  s.resp.status, show(&s.resp));
    ck_assert_msg(s.resp.body_len == strlen(err429) &&
                      memcmp(s.resp.body, err429, s.resp.body_len) == 0,
                  "streamed request, upstream 429: body changed: %s",
                  show(&s.resp));
    const char *ct = h_resp_header(&s.resp, "content-type");
    ck_assert_msg(ct && strcasecmp(ct, "application/json") == 0,
                  "streamed request, upstream 429: content-type \"%s\"",
                  ct ? ct : "(none)");
    h_stream_free(&s);
    ck_assert_int_eq(h_mock_request_count(), 1);
}
END_TEST

/* ---- 4. client disconnect aborts the upstream transfer ----------------- */

START_TEST(test_client_disconnect_aborts_upstream)
{
    h_start_all(NULL);
    ck_assert_int_eq(
        h_mock_script(
            "{\"rules\":[{\"stream\":{\"chunks\":50,\"delay_ms\":100}}]}"),
        0);
    h_stream s;
    h_stream_request(h_sluice_port(), "POST", CHAT_PATH, NULL, STREAM_BODY,
                     strlen(STREAM_BODY), 20000, 0, 2, &s);
    double t_abort = h_now_ms();
    ck_assert_msg(s.resp.status == 200, "status %ld, body %s", s.resp.status,
                  show(&s.resp));
    ck_assert_msg(
        s.aborted && s.nevents >= 2,
        "expected to abort after 2 events; got %zu events, curl %d %s",
        s.nevents, s.resp.curl_code, s.resp.error);
    h_stream_free(&s);

    /* The stream would take 5 s; the mock must see the hang-up within 3 s. */
    const char *outcome = NULL;
    char last[32] = "(no record)";
    long chunks_sent = -1;
    while (h_now_ms() - t_abort < 3000) {
        json_t *reqs = h_mock_requests();
        json_t *rec = json_array_get(reqs, 0);
        outcome = h_rec_str(rec, "outcome");
        if (outcome) {
            snprintf(last, sizeof last, "%s", outcome);
            chunks_sent =
                (long)json_integer_value(json_object_get(rec, "chunks_sent"));
        }
        int done = outcome && strcmp(outcome, "client_closed") == 0;
        json_decref(reqs);
        if (done)
            break;
        h_sleep_ms(50);
    }
    ck_assert_msg(strcmp(last, "client_closed") == 0,
                  "3 s after the client left, the mock's record says outcome "
                  "\"%s\" (chunks sent %ld): the upstream transfer was not "
                  "aborted",
                  last, chunks_sent);
    ck_assert_msg(chunks_sent < 50, "mock sent all %ld chunks", chunks_sent);

    /* sluice keeps serving. */
    h_resp r;
    h_post_json(CHAT_PATH, PLAIN_SMALL, &r);
    assert_transfer_ok(&r, "request after disconnect");
    ck_assert_msg(r.status == 200, "after a disconnect: status %ld, body %s",
                  r.status, show(&r));
    h_resp_free(&r);
    ck_assert_int_eq(h_mock_request_count(), 2);
}
END_TEST

/* ---- 5. malformed JSON -> 400, upstream never called ------------------ */

START_TEST(test_malformed_json)
{
    h_start_all(NULL);
    h_resp r;
    h_post_json(CHAT_PATH, "{\"model\": \"gpt-4o-mini\", \"messages\": [", &r);
    assert_error_response(&r, 400, "invalid_request_error", "malformed JSON");
    h_resp_free(&r);

    h_post_json(CHAT_PATH, "[]", &r);
    assert_error_response(&r, 400, "invalid_request_error", "JSON array body");
    h_resp_free(&r);

    h_post_json(CHAT_PATH, "not json at all", &r);
    assert_error_response(&r, 400, "invalid_request_error", "non-JSON body");
    h_resp_free(&r);

    h_post_json(CHAT_PATH, "", &r);
    assert_error_response(&r, 400, "invalid_request_error", "empty body");
    h_resp_free(&r);

    ck_assert_msg(h_mock_request_count() == 0,
                  "the mock saw %d requests for bodies sluice should refuse",
                  h_mock_request_count());

    /* A valid object without `messages` is the upstream's business. */
    h_post_json(CHAT_PATH, "{\"model\":\"gpt-4o-mini\"}", &r);
    assert_transfer_ok(&r, "object without messages");
    json_t *reqs = h_mock_requests();
    json_t *rec = only_record(reqs, "object without messages");
    json_t *st = json_object_get(rec, "status");
    ck_assert_msg(json_is_integer(st) && json_integer_value(st) == r.status,
                  "client got %ld, the mock answered %lld", r.status,
                  (long long)json_integer_value(st));
    json_decref(reqs);
    h_resp_free(&r);
}
END_TEST

/* ---- 6. body over server.max_body_bytes -> 413 ------------------------ */

static char *body_of_size(size_t size)
{
    const char *head = "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":"
                       "\"user\",\"content\":\"";
    const char *tail = "\"}]}";
    size_t fixed = strlen(head) + strlen(tail);
    ck_assert(size > fixed);
    char *b = malloc(size + 1);
    strcpy(b, head);
    memset(b + strlen(head), 'x', size - fixed);
    strcpy(b + size - strlen(tail), tail);
    return b;
}

START_TEST(test_body_too_large)
{
    h_opts o = {0};
    o.max_body_bytes = 1024;
    h_start_all(&o);

    char *big = body_of_size(4096);
    ck_assert_uint_eq(strlen(big), 4096);
    h_resp r;
    h_post_json(CHAT_PATH, big, &r);
    free(big);
    /* sluice may close the connection after answering early; the answer
     * must still have arrived. */
    ck_assert_msg(r.status == 413,
                  "4096-byte body with max_body_bytes 1024: "
                  "status %ld (curl %d %s), body %s",
                  r.status, r.curl_code, r.error, show(&r));
    json_t *doc = h_resp_json(&r);
    ck_assert_msg(doc != NULL, "413 body is not JSON: %s", show(&r));
    h_assert_openai_error(doc, "413");
    json_decref(doc);
    h_resp_free(&r);
    ck_assert_msg(h_mock_request_count() == 0,
                  "the mock saw %d requests for an oversized body",
                  h_mock_request_count());

    /* Just under the limit passes. */
    char *ok = body_of_size(1000);
    h_post_json(CHAT_PATH, ok, &r);
    free(ok);
    assert_transfer_ok(&r, "1000-byte body");
    ck_assert_msg(r.status == 200, "1000-byte body: status %ld, body %s",
                  r.status, show(&r));
    h_resp_free(&r);
    ck_assert_int_eq(h_mock_request_count(), 1);
}
END_TEST

/* ---- 7. unknown path, wrong method ------------------------------------- */

START_TEST(test_not_found_and_method)
{
    h_start_all(NULL);
    h_resp r;
    h_get("/v1/nothing-here", &r);
    assert_error_response(&r, 404, NULL, "GET /v1/nothing-here");
    h_resp_free(&r);

    h_post_json("/v2/chat/completions", PLAIN_SMALL, &r);
    assert_error_response(&r, 404, NULL, "POST /v2/chat/completions");
    h_resp_free(&r);

    h_get(CHAT_PATH, &r);
    assert_error_response(&r, 405, NULL, "GET /v1/chat/completions");
    const char *allow = h_resp_header(&r, "allow");
    ck_assert_msg(allow && strstr(allow, "POST"),
                  "405 for GET /v1/chat/completions: Allow \"%s\", expected "
                  "it to list POST",
                  allow ? allow : "(none)");
    h_resp_free(&r);

    h_request(h_sluice_port(), "DELETE", "/health", NULL, NULL, 0, 10000, &r);
    assert_error_response(&r, 405, NULL, "DELETE /health");
    allow = h_resp_header(&r, "allow");
    ck_assert_msg(allow && strstr(allow, "GET"),
                  "405 for DELETE /health: Allow \"%s\", expected it to list "
                  "GET",
                  allow ? allow : "(none)");
    h_resp_free(&r);

    ck_assert_int_eq(h_mock_request_count(), 0);
}
END_TEST

/* ---- 8. /health, /v1/models, /v1/models/{id}/info ---------------------- */

START_TEST(test_health_and_models)
{
    h_start_all(NULL);
    h_resp r;
    h_get("/health", &r);
    assert_transfer_ok(&r, "GET /health");
    ck_assert_msg(r.status == 200, "/health: %ld %s", r.status, show(&r));
    json_t *doc = h_resp_json(&r);
    ck_assert_msg(json_is_object(doc), "/health is not a JSON object: %s",
                  show(&r));
    ck_assert_msg(json_is_string(json_object_get(doc, "status")),
                  "/health: no status string: %s", show(&r));
    ck_assert_msg(json_is_string(json_object_get(doc, "version")),
                  "/health: no version string: %s", show(&r));
    ck_assert_msg(json_is_number(json_object_get(doc, "uptime_s")),
                  "/health: no numeric uptime_s: %s", show(&r));
    ck_assert_msg(json_is_integer(json_object_get(doc, "generation")),
                  "/health: no integer generation: %s", show(&r));
    json_t *stages = json_object_get(doc, "stages");
    ck_assert_msg(json_is_array(stages) && json_array_size(stages) == 2,
                  "/health: stages should list keyring and sse: %s", show(&r));
    const char *expect[] = {"keyring", "sse"};
    for (size_t i = 0; i < 2; i++) {
        json_t *st = json_array_get(stages, i);
        const char *name = json_string_value(json_object_get(st, "name"));
        ck_assert_msg(json_is_object(st) && name &&
                          strcmp(name, expect[i]) == 0,
                      "/health: stages[%zu].name should be %s: %s", i,
                      expect[i], show(&r));
    }
    json_decref(doc);
    h_resp_free(&r);

    h_get("/v1/models", &r);
    assert_transfer_ok(&r, "GET /v1/models");
    ck_assert_msg(r.status == 200, "/v1/models: %ld %s", r.status, show(&r));
    doc = h_resp_json(&r);
    ck_assert_msg(json_is_object(doc), "/v1/models: not JSON: %s", show(&r));
    const char *obj = json_string_value(json_object_get(doc, "object"));
    ck_assert_msg(obj && strcmp(obj, "list") == 0,
                  "/v1/models: object "
                  "should be \"list\": %s",
                  show(&r));
    json_t *data = json_object_get(doc, "data");
    ck_assert_msg(json_is_array(data) && json_array_size(data) == 2,
                  "/v1/models: data should hold the 2 configured models: %s",
                  show(&r));
    int seen_qwen = 0;
    size_t i;
    json_t *m;
    json_array_foreach(data, i, m)
    {
        const char *id = json_string_value(json_object_get(m, "id"));
        const char *o = json_string_value(json_object_get(m, "object"));
        ck_assert_msg(id && o && strcmp(o, "model") == 0 &&
                          json_is_integer(json_object_get(m, "created")) &&
                          json_is_string(json_object_get(m, "owned_by")) &&
                          json_is_integer(json_object_get(m, "context_length")),
                      "/v1/models: data[%zu] lacks id/object/created/owned_by/"
                      "context_length: %s",
                      i, show(&r));
        if (strcmp(id, H_MODEL_ID) == 0) {
            seen_qwen = 1;
            ck_assert_int_eq(
                json_integer_value(json_object_get(m, "context_length")),
                H_MODEL_CTX);
        } else {
            ck_assert_str_eq(id, "gpt-4o-mini");
        }
    }
    ck_assert_msg(seen_qwen, "/v1/models: %s missing", H_MODEL_ID);
    json_decref(doc);
    h_resp_free(&r);

    h_get("/v1/models/" H_MODEL_ID "/info", &r);
    assert_transfer_ok(&r, "model info");
    ck_assert_msg(r.status == 200, "/v1/models/%s/info: %ld %s", H_MODEL_ID,
                  r.status, show(&r));
    doc = h_resp_json(&r);
    ck_assert_msg(json_is_object(doc), "model info: not JSON: %s", show(&r));
    const char *id = json_string_value(json_object_get(doc, "id"));
    ck_assert_msg(id && strcmp(id, H_MODEL_ID) == 0, "model info id: %s",
                  show(&r));
    ck_assert_msg(json_integer_value(json_object_get(doc, "context_length")) ==
                      H_MODEL_CTX,
                  "model info context_length: %s", show(&r));
    json_decref(doc);
    h_resp_free(&r);

    h_get("/v1/models/no-such/model/info", &r);
    assert_error_response(&r, 404, NULL, "info of an unknown model");
    h_resp_free(&r);

    ck_assert_int_eq(h_mock_request_count(), 0);
}
END_TEST

/* ---- 9. upstream unreachable -> 502 quickly ---------------------------- */

START_TEST(test_upstream_unreachable)
{
    int closed = h_free_port();
    ck_assert_int_gt(closed, 0);
    char base[128];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/v1", closed);
    h_opts o = {0};
    o.base_url = base;
    h_start_sluice(&o);

    h_resp r;
    h_request(h_sluice_port(), "POST", CHAT_PATH, NULL, PLAIN_SMALL,
              strlen(PLAIN_SMALL), 10000, &r);
    assert_error_response(&r, 502, NULL, "upstream unreachable");
    json_t *doc = h_resp_json(&r);
    const char *type = json_string_value(
        json_object_get(json_object_get(doc, "error"), "type"));
    ck_assert_msg(
        type && (strstr(type, "upstream") || strstr(type, "api_error") ||
                 strstr(type, "server_error")),
        "502 error.type \"%s\" does not say upstream/api/server error",
        type ? type : "(null)");
    json_decref(doc);
    ck_assert_msg(r.total_ms < 5000, "502 took %.0f ms", r.total_ms);
    h_resp_free(&r);

    /* A streamed request fails the same way: no byte was sent yet. */
    h_stream s;
    h_stream_request(h_sluice_port(), "POST", CHAT_PATH, NULL, STREAM_BODY,
                     strlen(STREAM_BODY), 10000, 0, 0, &s);
    assert_error_response(&s.resp, 502, NULL, "stream, upstream unreachable");
    ck_assert_msg(s.resp.total_ms < 5000, "502 took %.0f ms", s.resp.total_ms);
    h_stream_free(&s);
}
END_TEST

/* ---- 10. sluice --check ---------------------------------------------- */

static int mentions_line(const char *out, const char *file, int line)
{
    char a[600], b[32];
    snprintf(a, sizeof a, "%s:%d", file, line);
    snprintf(b, sizeof b, "line %d", line);
    return strstr(out, a) || (strstr(out, file) && strstr(out, b));
}

START_TEST(test_check_mode)
{
    const char *dir = h_tmpdir();
    const char *bin = getenv("SLUICE_BIN");
    const char *plugins = getenv("PLUGINS_DIR");
    ck_assert_msg(bin && plugins, "SLUICE_BIN / PLUGINS_DIR not set");
    char keys[600], bad_path[600], bad_syntax[600], good[600], text[4096];
    snprintf(keys, sizeof keys, "%s/keys.txt", dir);
    FILE *f = fopen(keys, "w");
    ck_assert(f != NULL);
    fputs("sk-test-key-1\n", f);
    fclose(f);
    chmod(keys, 0600);

    /* A stage whose `path:` does not exist: the entry starts on line 10. */
    snprintf(bad_path, sizeof bad_path, "%s/bad_path.yaml", dir);
    snprintf(text, sizeof text,
             "# a stage that cannot be loaded\n"             /* 1 */
             "server:\n"                                     /* 2 */
             "  host: \"127.0.0.1\"\n"                       /* 3 */
             "  port: 8000\n"                                /* 4 */
             "upstream:\n"                                   /* 5 */
             "  base_url: \"http://127.0.0.1:9/v1\"\n"       /* 6 */
             "plugins_dir: \"%s\"\n"                         /* 7 */
             "pipeline:\n"                                   /* 8 */
             "  - plugin: keyring\n"                         /* 9 */
             "    config: { keys_file: \"%s\" }\n"           /* 10 */
             "  - plugin: ghost\n"                           /* 11 */
             "    path: /nonexistent/sluice-test/ghost.so\n" /* 12 */
             "  - plugin: sse\n",                            /* 13 */
             plugins, keys);
    f = fopen(bad_path, "w");
    ck_assert(f != NULL);
    fputs(text, f);
    fclose(f);

    char *out = NULL;
    char *argv1[] = {(char *)bin, "--check", "-c", bad_path, NULL};
    int rc = h_run_capture(argv1, 15000, &out);
    ck_assert_msg(rc != 0 && rc < 128,
                  "--check on a stage with a missing path: exit %d (expected "
                  "a non-zero exit, not a crash); output:\n%s",
                  rc, out);
    ck_assert_msg(mentions_line(out, "bad_path.yaml", 11) ||
                      mentions_line(out, "bad_path.yaml", 12),
                  "--check output should name bad_path.yaml and line 11 (or "
                  "12); got:\n%s",
                  out);
    ck_assert_msg(strstr(out, "ghost") != NULL,
                  "--check output should name the stage \"ghost\"; got:\n%s",
                  out);
    free(out);

    /* A YAML syntax error (a tab) on line 6. */
    snprintf(bad_syntax, sizeof bad_syntax, "%s/bad_syntax.yaml", dir);
    f = fopen(bad_syntax, "w");
    ck_assert(f != NULL);
    fputs("# bad syntax\n"
          "server:\n"
          "  host: \"127.0.0.1\"\n"
          "  port: 8000\n"
          "upstream:\n"
          "\ttimeout_s: 5\n",
          f);
    fclose(f);
    char *argv2[] = {(char *)bin, "--check", "-c", bad_syntax, NULL};
    rc = h_run_capture(argv2, 15000, &out);
    ck_assert_msg(rc != 0 && rc < 128,
                  "--check on a YAML syntax error: exit %d; output:\n%s", rc,
                  out);
    ck_assert_msg(mentions_line(out, "bad_syntax.yaml", 6),
                  "--check output should name bad_syntax.yaml and line 6; "
                  "got:\n%s",
                  out);
    free(out);

    /* A good file: exit 0, and nothing listens on its port. */
    int port = h_free_port();
    snprintf(good, sizeof good, "%s/good.yaml", dir);
    h_opts o = {0};
    o.base_url = "http://127.0.0.1:9/v1";
    ck_assert_int_eq(h_write_config(good, &o, port), 0);
    char *argv3[] = {(char *)bin, "--check", "-c", good, NULL};
    double t0 = h_now_ms();
    rc = h_run_capture(argv3, 15000, &out);
    double took = h_now_ms() - t0;
    ck_assert_msg(rc == 0, "--check on a good file: exit %d; output:\n%s", rc,
                  out);
    ck_assert_msg(took < 10000, "--check took %.0f ms", took);
    ck_assert_msg(strstr(out, "\"msg\":\"listening\"") == NULL,
                  "--check logged that it listens:\n%s", out);
    ck_assert_msg(!h_port_open(port),
                  "something listens on port %d after "
                  "--check",
                  port);
    free(out);
}
END_TEST

/* ---- 11. keep-alive reuse towards the upstream ------------------------ */

START_TEST(test_keepalive_reuse)
{
    h_opts o = {0};
    o.threads = 2;
    h_start_all(&o);
    ck_assert_int_eq(h_mock_reset(), 0);
    for (int i = 0; i < 20; i++) {
        h_resp r;
        h_post_json(CHAT_PATH, PLAIN_SMALL, &r);
        assert_transfer_ok(&r, "keep-alive request");
        ck_assert_msg(r.status == 200, "request %d: status %ld %s", i, r.status,
                      show(&r));
        h_resp_free(&r);
    }
    /* The GET that reads the counter opens one connection of its own. */
    long opened = h_mock_stat("connections_opened");
    ck_assert_msg(opened >= 0, "the mock reports no connections_opened");
    long by_sluice = opened - 1;
    ck_assert_msg(by_sluice >= 1 && by_sluice <= 4,
                  "20 sequential requests opened %ld upstream connections "
                  "(threads: 2; expected at most 4): no keep-alive reuse",
                  by_sluice);
    ck_assert_int_eq(h_mock_request_count(), 20);
}
END_TEST

/* ---- 12. concurrency smoke -------------------------------------------- */

#define CONC_THREADS    10
#define CONC_PER_THREAD 5

struct conc_result {
    long status;
    int curl_code;
    int ok;
    char why[400];
};

struct conc_arg {
    int idx;
    struct conc_result res[CONC_PER_THREAD];
};

static void *conc_worker(void *p)
{
    struct conc_arg *a = p;
    for (int j = 0; j < CONC_PER_THREAD; j++) {
        struct conc_result *res = &a->res[j];
        int stream = (a->idx + j) % 2;
        if (stream) {
            h_stream s;
            h_stream_request(h_sluice_port(), "POST", CHAT_PATH, NULL,
                             STREAM_BODY, strlen(STREAM_BODY), 30000, 0, 0, &s);
            res->status = s.resp.status;
            res->curl_code = s.resp.curl_code;
            res->ok = s.resp.curl_code == 0 && s.resp.status == 200 &&
                      h_stream_has_done(&s) && h_stream_data_events(&s) > 0;
            snprintf(res->why, sizeof res->why,
                     "stream: status %ld curl %d "
                     "(%s) events %zu done %d",
                     s.resp.status, s.resp.curl_code, s.resp.error, s.nevents,
                     h_stream_has_done(&s));
            h_stream_free(&s);
        } else {
            h_resp r;
            h_request(h_sluice_port(), "POST", CHAT_PATH, NULL, PLAIN_SMALL,
                      strlen(PLAIN_SMALL), 30000, &r);
            json_t *doc = h_resp_json(&r);
            res->status = r.status;
            res->curl_code = r.curl_code;
            res->ok = r.curl_code == 0 && r.status == 200 &&
                      json_is_array(json_object_get(doc, "choices"));
            snprintf(res->why, sizeof res->why,
                     "plain: status %ld curl %d (%s)", r.status, r.curl_code,
                     r.error);
            json_decref(doc);
            h_resp_free(&r);
        }
    }
    return NULL;
}

START_TEST(test_concurrency_smoke)
{
    h_start_all(NULL);
    static struct conc_arg args[CONC_THREADS];
    pthread_t th[CONC_THREADS];
    for (int i = 0; i < CONC_THREADS; i++) {
        memset(&args[i], 0, sizeof args[i]);
        args[i].idx = i;
        ck_assert_int_eq(pthread_create(&th[i], NULL, conc_worker, &args[i]),
                         0);
    }
    for (int i = 0; i < CONC_THREADS; i++)
        pthread_join(th[i], NULL);
    int failed = 0;
    char first[400] = "";
    for (int i = 0; i < CONC_THREADS; i++)
        for (int j = 0; j < CONC_PER_THREAD; j++)
            if (!args[i].res[j].ok) {
                if (!failed++)
                    snprintf(first, sizeof first, "%s", args[i].res[j].why);
            }
    ck_assert_msg(failed == 0, "%d of %d concurrent requests failed; first: %s",
                  failed, CONC_THREADS * CONC_PER_THREAD, first);
    int seen = h_mock_request_count();
    ck_assert_msg(seen == CONC_THREADS * CONC_PER_THREAD,
                  "the mock saw %d requests, expected %d", seen,
                  CONC_THREADS * CONC_PER_THREAD);
}
END_TEST

/* ------------------------------------------------------------------------ */

static void add(Suite *s, const char *name, const TTest *t, double timeout)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, timeout);
    tcase_add_test(tc, t);
    suite_add_tcase(s, tc);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    Suite *s = suite_create("integration/proxy");
    add(s, "plain_completion", test_plain_completion, 30);
    add(s, "streamed_completion", test_streamed_completion, 30);
    add(s, "upstream_errors", test_upstream_errors_pass_through, 30);
    add(s, "client_disconnect", test_client_disconnect_aborts_upstream, 40);
    add(s, "malformed_json", test_malformed_json, 30);
    add(s, "body_too_large", test_body_too_large, 30);
    add(s, "not_found_method", test_not_found_and_method, 30);
    add(s, "health_models", test_health_and_models, 30);
    add(s, "upstream_unreachable", test_upstream_unreachable, 30);
    add(s, "check_mode", test_check_mode, 60);
    add(s, "keepalive", test_keepalive_reuse, 40);
    add(s, "concurrency", test_concurrency_smoke, 90);

    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
