/*
 * test_faults.c - the fault-injection cases of issue 19 through the real
 * sluice and the mock upstream: odd Retry-After values, an upstream error
 * that quotes the key, a stream cut inside an event, a stream that trickles
 * bytes but never finishes an event, a stream longer than max_stream_s.
 *
 * Each test asserts on what the client got and on what the mock saw. Time
 * appears only as the mock's own sleeps and as generous waiting limits.
 */
#include "itest_util.h"

#include <signal.h>

#define KA    "sk-faults-test-aaaa0001"
#define KB    "sk-faults-test-bbbb0002"
#define TOKEN "faults-test-admin-token-0123456789"

static const char STREAM_BODY[] =
    "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{\"role\":"
    "\"user\",\"content\":\"hi\"}]}";

static char auth_hdr[128];

static void setup(void)
{
    h_tmpdir();
}

static void teardown(void)
{
    h_teardown();
}

/* keyring (its config members given) + sse; admin token for /admin/keys. */
static void start(const char *keys, const char *kr_cfg, const char *sse_cfg,
                  const char *server_extra)
{
    static char pipeline[1024], extra[700];
    snprintf(auth_hdr, sizeof auth_hdr, "Authorization: Bearer %s", TOKEN);
    snprintf(extra, sizeof extra, "admin:\n  token_file: \"%s\"\n",
             it_secret_file("admin.token", TOKEN "\n"));
    snprintf(pipeline, sizeof pipeline,
             "  - plugin: keyring\n"
             "    config: { keys_file: \"@KEYS_FILE@\"%s%s }\n"
             "  - plugin: sse\n"
             "    config: %s\n",
             kr_cfg ? ", " : "", kr_cfg ? kr_cfg : "",
             sse_cfg ? sse_cfg : "{}");
    h_opts o = {0};
    o.keys = keys;
    o.pipeline = pipeline;
    o.extra = extra;
    o.server_extra = server_extra;
    h_start_all(&o);
}

/* GET /admin/keys, parsed (caller decrefs). */
static json_t *admin_keys(void)
{
    const char *hdrs[] = {auth_hdr, NULL};
    h_resp r;
    h_request(h_sluice_port(), "GET", "/admin/keys", hdrs, NULL, 0, 10000, &r);
    ck_assert_msg(r.status == 200, "/admin/keys: %ld %s", r.status,
                  it_show(&r));
    json_t *doc = h_resp_json(&r);
    h_resp_free(&r);
    ck_assert_ptr_nonnull(doc);
    return doc;
}

/* The entry of the key whose name ends in `tail` (borrowed from doc). */
static json_t *key_entry(json_t *doc, const char *tail)
{
    json_t *keys = json_object_get(doc, "keys");
    for (size_t i = 0; i < json_array_size(keys); i++) {
        json_t *k = json_array_get(keys, i);
        const char *n = json_string_value(json_object_get(k, "name"));
        if (n && strlen(n) >= 4 && !strcmp(n + strlen(n) - 4, tail))
            return k;
    }
    ck_abort_msg("no key ending in %s in /admin/keys", tail);
    return NULL;
}

/* The last event is an OpenAI error with this code; no [DONE]. */
static void assert_error_event(const h_stream *s, const char *code,
                               const char *what)
{
    ck_assert_msg(s->resp.curl_code == 0 && s->resp.status == 200,
                  "%s: curl %d, status %ld", what, s->resp.curl_code,
                  s->resp.status);
    ck_assert_msg(s->nevents > 0, "%s: no events: %s", what, it_show(&s->resp));
    const h_event *last = &s->events[s->nevents - 1];
    json_t *doc = last->data ? json_loads(last->data, 0, NULL) : NULL;
    ck_assert_msg(doc != NULL, "%s: the last event is not JSON: %s", what,
                  it_show(&s->resp));
    json_t *err = h_assert_openai_error(doc, what);
    const char *c = json_string_value(json_object_get(err, "code"));
    ck_assert_msg(c && !strcmp(c, code), "%s: code %s, expected %s; body:\n%s",
                  what, c ? c : "(null)", code, it_show(&s->resp));
    json_decref(doc);
    ck_assert_msg(!h_stream_has_done(s), "%s: [DONE] after an error", what);
}

static void stream(h_stream *s)
{
    h_stream_request(h_sluice_port(), "POST", CHAT, NULL, STREAM_BODY,
                     strlen(STREAM_BODY), 30000, 0, 0, s);
}

/* ---- 10: Retry-After 0 and overflow --------------------------------- */

/* One 429 for key A with this Retry-After; the request goes on with B. */
static void rate_limit_a(const char *retry_after)
{
    char rules[300];
    snprintf(rules, sizeof rules,
             "{\"rules\":[{\"match\":{\"auth\":\"Bearer " KA "\"},"
             "\"times\":1,\"status\":429,"
             "\"headers\":{\"Retry-After\":\"%s\"}}]}",
             retry_after);
    ck_assert_int_eq(h_mock_script(rules), 0);
    /* round robin: within two requests one goes to A */
    int seen_a = 0;
    for (int i = 0; i < 2 && !seen_a; i++) {
        h_resp r;
        h_post_json(CHAT, OK_BODY, &r);
        ck_assert_msg(r.status == 200 || r.status == 429, "status %ld: %s",
                      r.status, it_show(&r));
        h_resp_free(&r);
        json_t *reqs = h_mock_requests();
        for (size_t j = 0; j < json_array_size(reqs); j++) {
            const char *a =
                h_rec_header(json_array_get(reqs, j), "authorization");
            seen_a |= a && !strcmp(a, "Bearer " KA);
        }
        json_decref(reqs);
    }
    ck_assert_msg(seen_a, "key A was never tried");
}

START_TEST(retry_after_zero_is_usable_now_overflow_is_capped)
{
    start(KA "\n" KB "\n", "max_cooldown_s: 7", NULL, NULL);
    /* "0" and a past date: usable now (was: 1 s of exponential cooldown) */
    const char *now[] = {"0", "Sun, 06 Nov 1994 08:49:37 GMT"};
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(h_mock_reset(), 0);
        rate_limit_a(now[i]);
        json_t *doc = admin_keys();
        json_t *k = key_entry(doc, "0001");
        const char *st = json_string_value(json_object_get(k, "state"));
        ck_assert_msg(st && !strcmp(st, "healthy"),
                      "Retry-After: %s left key A %s", now[i], st);
        json_decref(doc);
    }
    /* too large to hold: the max_cooldown_s cap (was: 1 s) */
    ck_assert_int_eq(h_mock_reset(), 0);
    rate_limit_a("99999999999999999999");
    json_t *doc = admin_keys();
    json_t *k = key_entry(doc, "0001");
    const char *st = json_string_value(json_object_get(k, "state"));
    double cs = json_number_value(json_object_get(k, "cooldown_s"));
    ck_assert_msg(st && !strcmp(st, "cooling"), "state %s", st);
    ck_assert_msg(cs > 5.0 && cs <= 7.0,
                  "cooldown_s %.1f, expected the 7 s cap", cs);
    json_decref(doc);
}
END_TEST

/* ---- 8: an upstream error that quotes the key ------------------------ */

START_TEST(upstream_error_body_has_the_key_scrubbed)
{
    start(KA "\n", NULL, NULL, NULL);
    ck_assert_int_eq(
        h_mock_script("{\"rules\":[{\"times\":0,\"status\":401,\"body\":"
                      "\"{\\\"error\\\":{\\\"message\\\":\\\"Incorrect API "
                      "key provided: " KA ". Bearer " KA " is wrong.\\\","
                      "\\\"type\\\":\\\"invalid_request_error\\\"}}\"}]}"),
        0);
    h_resp r;
    h_post_json(CHAT, OK_BODY, &r);
    ck_assert_msg(r.status == 401, "status %ld: %s", r.status, it_show(&r));
    ck_assert_msg(r.body && !strstr(r.body, KA),
                  "the key reached the client: %s", it_show(&r));
    ck_assert_msg(it_count_str(r.body, "\xe2\x80\xa6"
                                       "0001") == 2,
                  "not shortened to its last four: %s", it_show(&r));
    json_t *doc = h_resp_json(&r);
    ck_assert_msg(doc, "no longer JSON: %s", it_show(&r));
    json_decref(doc);
    h_resp_free(&r);
    /* the mock did get the key: it was scrubbed on the way back */
    json_t *reqs = h_mock_requests();
    const char *a = h_rec_header(json_array_get(reqs, 0), "authorization");
    ck_assert_msg(a && !strcmp(a, "Bearer " KA), "mock saw %s", a ? a : "-");
    json_decref(reqs);
}
END_TEST

/* ---- 5: a stream cut inside an event --------------------------------- */

START_TEST(stream_cut_inside_an_event_is_interrupted)
{
    start(KA "\n", NULL, NULL, NULL);
    ck_assert_int_eq(
        h_mock_script_raw(
            json_pack("[ss]",
                      "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}"
                      "\n\n",
                      "data: {\"choices\":[{\"delta\":{\"cont"),
            20),
        0);
    h_stream s;
    stream(&s);
    ck_assert_msg(h_stream_data_events(&s) == 2, "events: %s",
                  it_show(&s.resp));
    assert_error_event(&s, "stream_interrupted", "cut inside an event");
    h_stream_free(&s);
    /* the mock ended its body cleanly: the cut is the upstream's, not ours */
    const char *o = h_mock_wait_outcome("complete", 3000);
    ck_assert_msg(!strcmp(o, "complete"), "mock outcome %s", o);
    /* metrics: the request's outcome and the key's failure */
    char *m = NULL;
    double v = -1, f = -1;
    for (int i = 0; i < 40 && v < 1; i++) {
        free(m);
        m = h_metrics_scrape();
        v = h_metrics_sample(
            m, "sluice_requests_total{route=\"chat\",model=\"gpt-4o-mini\","
               "stream=\"true\",code=\"200\",outcome=\"stream_interrupted\"}");
        h_sleep_ms(v < 1 ? 50 : 0);
    }
    ck_assert_msg(v == 1, "outcome metric %.0f:\n%s", v, m);
    for (const char *p = strstr(m, "sluice_key_failures_total{"); p;
         p = strstr(p + 1, "sluice_key_failures_total{")) {
        const char *eol = strchr(p, '\n');
        if (eol && memmem(p, (size_t)(eol - p), "reason=\"connect", 15))
            f = atof(memrchr(p, ' ', (size_t)(eol - p)));
    }
    ck_assert_msg(f == 1, "key failure (connect) %.0f:\n%s", f, m);
    free(m);
}
END_TEST

/* ---- 4: a stream that trickles bytes, never an event ----------------- */

START_TEST(trickling_stream_times_out_with_heartbeats)
{
    start(KA "\n", NULL, "{ heartbeat_s: 0.2, idle_timeout_s: 1 }", NULL);
    /* one whole event, then 40 pieces 150 ms apart that never end one:
     * 6 s of bytes, none of them an event */
    json_t *raw = json_array();
    json_array_append_new(
        raw, json_string("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}"
                         "\n\n"));
    json_array_append_new(raw, json_string("data: {\"x\":\""));
    for (int i = 0; i < 40; i++)
        json_array_append_new(raw, json_string("y"));
    ck_assert_int_eq(h_mock_script_raw(raw, 150), 0);
    h_stream s;
    stream(&s);
    assert_error_event(&s, "stream_timeout", "trickle");
    ck_assert_msg(h_stream_data_events(&s) == 2, "events: %s",
                  it_show(&s.resp));
    /* heartbeats flowed while no event did */
    ck_assert_msg(it_count_str(s.resp.body, ": keep-alive\n\n") >= 2,
                  "no heartbeats during the trickle: %s", it_show(&s.resp));
    h_stream_free(&s);
    /* sluice gave up on the upstream before it finished */
    const char *o = h_mock_wait_outcome("client_closed", 8000);
    ck_assert_msg(!strcmp(o, "client_closed"), "mock outcome %s", o);
}
END_TEST

/* ---- 4: server.max_stream_s ------------------------------------------ */

START_TEST(stream_longer_than_max_stream_s_is_ended)
{
    start(KA "\n", NULL, "{ heartbeat_s: 0, idle_timeout_s: 5 }",
          "  max_stream_s: 1\n");
    /* whole events every 200 ms for 6 s: never idle, just too long */
    ck_assert_int_eq(h_mock_script("{\"rules\":[{\"stream\":{\"chunks\":30,"
                                   "\"delay_ms\":200}}]}"),
                     0);
    h_stream s;
    stream(&s);
    assert_error_event(&s, "stream_timeout", "max_stream_s");
    size_t n = h_stream_data_events(&s);
    ck_assert_msg(n >= 2 && n < 30, "%zu events: %s", n, it_show(&s.resp));
    h_stream_free(&s);
    const char *o = h_mock_wait_outcome("client_closed", 8000);
    ck_assert_msg(!strcmp(o, "client_closed"), "mock outcome %s", o);
}
END_TEST

/* ---- 1: metric labels from a bounded set ----------------------------- */

#define CLIENT_KEY "sk-faults-client-0123456789"

START_TEST(metric_labels_never_take_the_clients_model)
{
    static char pipeline[1024];
    it_secret_file("clients.txt", CLIENT_KEY " alice\n");
    snprintf(pipeline, sizeof pipeline,
             "  - plugin: auth\n"
             "    config: { clients_file: \"@TMPDIR@/clients.txt\" }\n"
             "  - plugin: context\n"
             "    config: { on_unknown_model: %s, models: [ { id: "
             "\"gpt-4o-mini\", context_length: 128000 } ] }\n"
             "  - plugin: keyring\n"
             "    config: { keys_file: \"@KEYS_FILE@\" }\n"
             "  - plugin: sse\n",
             _i ? "reject" : "pass");
    h_opts o = {0};
    o.pipeline = pipeline;
    o.models = "  []\n"; /* as default.yaml: the table is the stage's */
    h_start_all(&o);
    const char *with_key[] = {"Authorization: Bearer " CLIENT_KEY, NULL};
    for (int i = 0; i < 12; i++) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"model\":\"attack-model-%d-zzzzzzzzzzzz\",\"messages\":"
                 "[{\"role\":\"user\",\"content\":\"hi\"}]}",
                 i);
        h_resp r;
        h_request(h_sluice_port(), "POST", CHAT, i % 2 ? with_key : NULL, body,
                  strlen(body), 10000, &r);
        long want = i % 2 ? (_i ? 404 : 200) : 401;
        ck_assert_msg(r.status == want, "status %ld, expected %ld: %s",
                      r.status, want, it_show(&r));
        h_resp_free(&r);
    }
    /* a configured model keeps its own label */
    h_resp r;
    h_request(h_sluice_port(), "POST", CHAT, with_key, OK_BODY, strlen(OK_BODY),
              10000, &r);
    ck_assert_msg(r.status == 200, "status %ld: %s", r.status, it_show(&r));
    h_resp_free(&r);
    char *m = NULL;
    for (int i = 0; i < 40; i++) {
        free(m);
        m = h_metrics_scrape();
        if (strstr(m, "model=\"gpt-4o-mini\""))
            break;
        h_sleep_ms(50);
    }
    const char *leak = strstr(m, "attack-model");
    ck_assert_msg(!leak, "a client's model name became a label: %.200s",
                  leak ? leak : "");
    ck_assert_msg(strstr(m, "model=\"gpt-4o-mini\""), "no configured model");
    ck_assert_msg(strstr(m, "model=\"other\""), "no \"other\" label");
    free(m);
    it_assert_mock_saw(_i ? 1 : 7, "labels");
}
END_TEST

/* ---- 2: authenticated from the headers, before the body is parsed ----- */

START_TEST(no_key_is_refused_before_the_body_is_read)
{
    static char pipeline[512];
    it_secret_file("clients.txt", CLIENT_KEY " alice\n");
    snprintf(pipeline, sizeof pipeline,
             "  - plugin: auth\n"
             "    config: { clients_file: \"@TMPDIR@/clients.txt\" }\n"
             "  - plugin: keyring\n"
             "    config: { keys_file: \"@KEYS_FILE@\" }\n");
    h_opts o = {0};
    o.pipeline = pipeline;
    h_start_all(&o);
    /* not JSON at all: without a key the answer is the 401, so the body
     * was never parsed (it used to be the 400 invalid_json) */
    static const char junk[] = "{{{{ this is not json";
    const char *with_key[] = {"Authorization: Bearer " CLIENT_KEY, NULL};
    h_resp r;
    h_request(h_sluice_port(), "POST", CHAT, NULL, junk, strlen(junk), 10000,
              &r);
    it_assert_error(&r, 401, "invalid_api_key", "no key, junk body");
    h_resp_free(&r);
    h_request(h_sluice_port(), "POST", CHAT, with_key, junk, strlen(junk),
              10000, &r);
    it_assert_error(&r, 400, "invalid_json", "key, junk body");
    h_resp_free(&r);
    /* a body far too complex for its size: 413 request_too_complex */
    size_t n = 60000;
    char *b = malloc(n * 3 + 64), *p = b;
    ck_assert_ptr_nonnull(b);
    p += sprintf(p, "{\"model\":\"gpt-4o-mini\",\"x\":[");
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s{}", i ? "," : "");
    p += sprintf(p, "]}");
    h_request(h_sluice_port(), "POST", CHAT, with_key, b, (size_t)(p - b),
              10000, &r);
    it_assert_error(&r, 413, "request_too_complex", "60,000 empty objects");
    h_resp_free(&r);
    free(b);
    it_assert_mock_saw(0, "before auth");
    it_assert_normal(with_key, "after the refusals");
}
END_TEST

/* ---- SIGTERM: streams finish within the grace, the rest end honestly --- */

static int send_stream(const char *word)
{
    char body[256], req[512];
    int blen = snprintf(body, sizeof body,
                        "{\"model\":\"gpt-4o-mini\",\"stream\":true,"
                        "\"messages\":[{\"role\":\"user\",\"content\":"
                        "\"%s\"}]}",
                        word);
    int len = snprintf(req, sizeof req,
                       "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                       "Content-Type: application/json\r\n"
                       "Content-Length: %d\r\n\r\n%s",
                       blen, body);
    int fd = it_connect(h_sluice_port());
    ck_assert_int_eq(send(fd, req, (size_t)len, MSG_NOSIGNAL), len);
    return fd;
}

START_TEST(sigterm_lets_streams_finish_then_ends_the_rest)
{
    start(KA "\n", NULL, "{ heartbeat_s: 0 }", "  shutdown_grace_s: 2\n");
    /* "short": 5 events 100 ms apart; "long": 100 events 100 ms apart */
    ck_assert_int_eq(
        h_mock_script("{\"rules\":["
                      "{\"match\":{\"body_contains\":\"short\"},"
                      "\"stream\":{\"chunks\":5,\"delay_ms\":100}},"
                      "{\"match\":{\"body_contains\":\"long\"},"
                      "\"stream\":{\"chunks\":100,\"delay_ms\":100}}]}"),
        0);
    int fs = send_stream("short"), fl = send_stream("long");
    while (h_mock_request_count() < 2)
        h_sleep_ms(20);
    h_sleep_ms(150);
    kill(h_sluice_pid(), SIGTERM);
    static char out_s[16384], out_l[65536];
    int eof_s, eof_l;
    it_read_all(fs, out_s, sizeof out_s, 10000, &eof_s);
    it_read_all(fl, out_l, sizeof out_l, 10000, &eof_l);
    close(fs);
    close(fl);
    /* the short one finished within the grace, whole */
    ck_assert_msg(strstr(out_s, "data: [DONE]") &&
                      !strstr(out_s, "server_shutting_down"),
                  "short stream: %.600s", out_s);
    /* the long one got the error event, then a clean end of the body */
    ck_assert_msg(strstr(out_l, "server_shutting_down"), "long stream: %.300s",
                  out_l + (strlen(out_l) > 300 ? strlen(out_l) - 300 : 0));
    ck_assert_msg(!strstr(out_l, "[DONE]"), "long stream finished?");
    ck_assert_msg(strstr(out_l, "\r\n0\r\n\r\n"),
                  "long stream: no clean end of the chunked body");
    ck_assert_msg(eof_l, "the connection stayed open");
}
END_TEST

/* ---- 6: libcurl's resend on a closed reused connection ---------------- */

START_TEST(resend_on_a_closed_reused_connection_is_an_attempt)
{
    h_opts o = {0};
    o.threads = 1; /* one worker, one connection pool: the reuse is sure */
    h_start_all(&o);
    h_resp r;
    h_post_json(CHAT, OK_BODY, &r); /* opens the pooled connection */
    ck_assert_msg(r.status == 200, "status %ld", r.status);
    h_resp_free(&r);
    ck_assert_int_eq(h_mock_reset(), 0);
    /* the upstream reads the next request, then closes without answering */
    ck_assert_int_eq(h_mock_script("{\"rules\":[{\"times\":1,"
                                   "\"close\":true}]}"),
                     0);
    h_post_json(CHAT, OK_BODY, &r);
    long st = r.status;
    const char *a = h_resp_header(&r, "x-sluice-attempts");
    int attempts = a ? atoi(a) : -1;
    h_resp_free(&r);
    int seen = h_mock_request_count();
    ck_assert_msg(seen == 2,
                  "the mock saw %d requests (expected the request "
                  "and libcurl's resend)",
                  seen);
    /* the resend is known: it counts as an attempt (was: 1) */
    ck_assert_msg(st == 200 && attempts == 2,
                  "status %ld, x-sluice-attempts %d (expected 200, 2)", st,
                  attempts);
    json_t *reqs = h_mock_requests();
    long long c0 =
        json_integer_value(json_object_get(json_array_get(reqs, 0), "conn_id"));
    long long c1 =
        json_integer_value(json_object_get(json_array_get(reqs, 1), "conn_id"));
    json_decref(reqs);
    ck_assert_msg(c0 != c1, "the resend came on the same connection");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("faults");
    TCase *tc = tcase_create("faults");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, retry_after_zero_is_usable_now_overflow_is_capped);
    tcase_add_test(tc, upstream_error_body_has_the_key_scrubbed);
    tcase_add_test(tc, stream_cut_inside_an_event_is_interrupted);
    tcase_add_test(tc, trickling_stream_times_out_with_heartbeats);
    tcase_add_test(tc, stream_longer_than_max_stream_s_is_ended);
    tcase_add_loop_test(tc, metric_labels_never_take_the_clients_model, 0, 2);
    tcase_add_test(tc, no_key_is_refused_before_the_body_is_read);
    tcase_add_test(tc, sigterm_lets_streams_finish_then_ends_the_rest);
    tcase_add_test(tc, resend_on_a_closed_reused_connection_is_an_attempt);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
