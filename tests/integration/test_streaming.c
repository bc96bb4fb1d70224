/*
 * test_streaming.c - streamed completions through the real sluice with the
 * sse stage, against the mock upstream on loopback: split events, drip-feed,
 * mid-stream cut, idle timeout, heartbeat comments, malformed framing,
 * client abort, a slow client behind a tiny buffer, usage injection.
 *
 * Every test asserts on what the client got and on what the mock saw. No
 * assertion depends on how fast this machine is: time only appears as lower
 * bounds the mock's own sleeps guarantee, and as generous waiting limits.
 */
#include "harness.h"

#include <check.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHAT_PATH "/v1/chat/completions"

static const char STREAM_BODY[] =
    "{\"model\": \"qwen/qwen3-next-80b-a3b-instruct\", \"stream\": true,"
    " \"messages\": [{\"role\": \"user\", \"content\": \"stream please\"}]}";

static const char STREAM_BODY_USAGE[] =
    "{\"model\": \"qwen/qwen3-next-80b-a3b-instruct\", \"stream\": true,"
    " \"stream_options\": {\"include_usage\": true},"
    " \"messages\": [{\"role\": \"user\", \"content\": \"usage please\"}]}";

static void setup(void)
{
    h_tmpdir();
}

static void teardown(void)
{
    h_teardown();
}

/* Start the mock and sluice with keyring + sse configured by sse_cfg (a
 * YAML flow mapping, e.g. "{ heartbeat_s: 0.2 }"). */
static void start_with_sse(const char *sse_cfg)
{
    char pipeline[1024];
    snprintf(pipeline, sizeof pipeline,
             "  - plugin: keyring\n"
             "    config: { keys_file: \"@KEYS_FILE@\" }\n"
             "  - plugin: sse\n"
             "    config: %s\n",
             sse_cfg ? sse_cfg : "{}");
    h_opts o = {.pipeline = pipeline};
    h_start_all(&o);
}

static const char *show(const h_resp *r)
{
    static char buf[1400];
    size_t n = r->body_len < 1300 ? r->body_len : 1300;
    memcpy(buf, r->body ? r->body : "", n);
    buf[n] = '\0';
    if (r->body_len > n)
        strcat(buf, "...");
    return buf;
}

static void stream(const char *body, h_stream *s)
{
    h_stream_request(h_sluice_port(), "POST", CHAT_PATH, NULL, body,
                     strlen(body), 30000, 0, 0, s);
}

/* The stream ended properly at the HTTP level (chunked terminator). */
static void assert_clean_end(const h_stream *s, const char *what)
{
    ck_assert_msg(s->resp.curl_code == 0,
                  "%s: the response did not end cleanly: curl %d %s; body:\n%s",
                  what, s->resp.curl_code, s->resp.error, show(&s->resp));
    ck_assert_msg(s->resp.status == 200, "%s: status %ld; body:\n%s", what,
                  s->resp.status, show(&s->resp));
}

/* The last event is an OpenAI-shaped error with this code, and no [DONE]
 * anywhere. */
static void assert_error_event(const h_stream *s, const char *code,
                               const char *what)
{
    ck_assert_msg(s->nevents > 0, "%s: no events; body:\n%s", what,
                  show(&s->resp));
    const h_event *last = &s->events[s->nevents - 1];
    json_error_t je;
    json_t *doc = last->data ? json_loads(last->data, 0, &je) : NULL;
    ck_assert_msg(doc != NULL, "%s: last event is not JSON: %s", what,
                  last->data ? last->data : "(no data)");
    json_t *err = h_assert_openai_error(doc, what);
    const char *c = json_string_value(json_object_get(err, "code"));
    ck_assert_msg(c && strcmp(c, code) == 0,
                  "%s: error code \"%s\", expected \"%s\"", what,
                  c ? c : "(null)", code);
    json_decref(doc);
    ck_assert_msg(!h_stream_has_done(s),
                  "%s: [DONE] after a failed stream; body:\n%s", what,
                  show(&s->resp));
    ck_assert_msg(!strstr(s->resp.body, "[DONE]"), "%s: [DONE] in body", what);
}

/* Content of data event i: choices[0].delta.content, or NULL. */
static char *event_content(const h_stream *s, size_t i)
{
    json_t *doc = json_loads(s->events[i].data, 0, NULL);
    const char *c = json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(doc, "choices"), 0),
                        "delta"),
        "content"));
    char *out = c ? strdup(c) : NULL;
    json_decref(doc);
    return out;
}

static void assert_tokens(const h_stream *s, size_t n, const char *what)
{
    ck_assert_msg(s->nevents >= n, "%s: %zu events, expected at least %zu",
                  what, s->nevents, n);
    for (size_t i = 0; i < n; i++) {
        char want[32];
        snprintf(want, sizeof want, "tok%zu ", i);
        char *got = event_content(s, i);
        ck_assert_msg(got && strcmp(got, want) == 0,
                      "%s: event %zu has content \"%s\", expected \"%s\"", what,
                      i, got ? got : "(none)", want);
        free(got);
    }
}

/* Wait (at most limit_ms) until the mock's only record has this outcome;
 * returns the last outcome seen (static buffer). */

/* ---- split events ------------------------------------------------------ */

START_TEST(test_split_events)
{
    start_with_sse(NULL);
    /* each string is one write of the mock, 30 ms apart: events cut inside
     * a line and inside a "\r\n"; several events in one write; all three
     * line ends; a comment between events. (A UTF-8 character cannot be
     * split here: the mock's script is JSON; the unit test covers it.) */
    json_t *raw = json_pack("[sssssss]", "data: {\"a\":", "1}\r",
                            "\n\r\ndata: x\rdata: y\r",
                            "\r: upstream keep-alive\n\ndata: \xe2\x82\xac",
                            "\n\ndata: p\n\ndata: q\n\n",
                            "event: e\nid: 9\ndata:z\n", "\ndata: [DONE]\n\n");
    ck_assert_ptr_nonnull(raw);
    json_t *rules = json_pack("{s:[{s:{s:o,s:i}}]}", "rules", "stream", "raw",
                              raw, "delay_ms", 30);
    char *txt = json_dumps(rules, 0);
    ck_assert_int_eq(h_mock_script(txt), 0);
    free(txt);
    json_decref(rules);

    h_stream s;
    stream(STREAM_BODY, &s);
    assert_clean_end(&s, "split events");
    const char *ct = h_resp_header(&s.resp, "content-type");
    ck_assert_msg(ct && !strcmp(ct, "text/event-stream"), "content-type %s",
                  ct ? ct : "(none)");
    const char *cc = h_resp_header(&s.resp, "cache-control");
    ck_assert_msg(cc && !strcmp(cc, "no-cache"), "cache-control %s",
                  cc ? cc : "(none)");
    const char *xa = h_resp_header(&s.resp, "x-accel-buffering");
    ck_assert_msg(xa && !strcmp(xa, "no"), "x-accel-buffering %s",
                  xa ? xa : "(none)");
    static const char want[] = "data: {\"a\":1}\n\n"
                               "data: x\ndata: y\n\n"
                               ": upstream keep-alive\n\n"
                               "data: \xe2\x82\xac\n\n"
                               "data: p\n\n"
                               "data: q\n\n"
                               "event: e\nid: 9\ndata: z\n\n"
                               "data: [DONE]\n\n";
    ck_assert_msg(s.resp.body_len == strlen(want) &&
                      !memcmp(s.resp.body, want, s.resp.body_len),
                  "client got:\n%s\nexpected:\n%s", show(&s.resp), want);
    h_stream_free(&s);
    /* the mock closes its record just after the last byte: wait for it */
    const char *o = h_mock_wait_outcome("complete", 3000);
    ck_assert_msg(!strcmp(o, "complete"), "mock outcome \"%s\"", o);
}
END_TEST

/* ---- drip-feed: events are not held back -------------------------------- */

START_TEST(test_drip_feed)
{
    start_with_sse(NULL);
    ck_assert_int_eq(
        h_mock_script(
            "{\"rules\":[{\"stream\":{\"chunks\":6,\"delay_ms\":100}}]}"),
        0);
    h_stream s;
    stream(STREAM_BODY, &s);
    assert_clean_end(&s, "drip-feed");
    ck_assert_int_eq(h_stream_data_events(&s), 6);
    ck_assert(h_stream_has_done(&s));
    assert_tokens(&s, 6, "drip-feed");
    /* the mock sleeps 100 ms before each of events 2..6 (and the tail): the
     * first event must reach the client well before the end (500 ms of
     * sleeps; 200 ms of slack for a busy machine), or sluice buffered */
    double first = s.events[0].t_ms, end = s.resp.total_ms;
    ck_assert_msg(end - first >= 300,
                  "first event at %.0f ms, stream ended at %.0f ms: the first "
                  "event was held back",
                  first, end);
    h_stream_free(&s);
}
END_TEST

/* ---- mid-stream cut ------------------------------------------------------ */

START_TEST(test_mid_stream_cut)
{
    start_with_sse(NULL);
    ck_assert_int_eq(h_mock_script("{\"rules\":[{\"stream\":{\"chunks\":10,"
                                   "\"delay_ms\":20,\"cut_after\":3}}]}"),
                     0);
    h_stream s;
    stream(STREAM_BODY, &s);
    assert_clean_end(&s, "mid-stream cut");
    ck_assert_msg(s.nevents == 4,
                  "%zu events (expected 3 + the error); "
                  "body:\n%s",
                  s.nevents, show(&s.resp));
    assert_tokens(&s, 3, "mid-stream cut");
    assert_error_event(&s, "stream_interrupted", "mid-stream cut");
    h_stream_free(&s);
    json_t *reqs = h_mock_requests();
    ck_assert_str_eq(h_rec_str(json_array_get(reqs, 0), "outcome"), "cut");
    json_decref(reqs);

    /* a stream that fails before its first byte is an ordinary error */
    ck_assert_int_eq(h_mock_reset(), 0);
    ck_assert_int_eq(
        h_mock_script("{\"rules\":[{\"times\":2,\"close\":true}]}"), 0);
    h_stream s2;
    stream(STREAM_BODY, &s2);
    ck_assert_msg(s2.resp.status >= 500, "status %ld; body:\n%s",
                  s2.resp.status, show(&s2.resp));
    const char *ct = h_resp_header(&s2.resp, "content-type");
    ck_assert_msg(ct && !strncmp(ct, "application/json", 16), "content-type %s",
                  ct ? ct : "(none)");
    json_t *doc = h_resp_json(&s2.resp);
    h_assert_openai_error(doc, "stream refused before the first byte");
    json_decref(doc);
    h_stream_free(&s2);
}
END_TEST

/* ---- idle timeout -------------------------------------------------------- */

START_TEST(test_idle_timeout)
{
    start_with_sse("{ heartbeat_s: 0, idle_timeout_s: 0.5 }");
    ck_assert_int_eq(h_mock_script("{\"rules\":[{\"stream\":{\"chunks\":5,"
                                   "\"stall_after\":2,\"stall_ms\":8000}}]}"),
                     0);
    h_stream s;
    stream(STREAM_BODY, &s);
    assert_clean_end(&s, "idle timeout");
    ck_assert_msg(s.nevents == 3,
                  "%zu events (expected 2 + the error); "
                  "body:\n%s",
                  s.nevents, show(&s.resp));
    assert_tokens(&s, 2, "idle timeout");
    assert_error_event(&s, "stream_timeout", "idle timeout");
    ck_assert_msg(s.resp.total_ms < 7000,
                  "the stream lasted %.0f ms: the idle timeout did not end it",
                  s.resp.total_ms);
    h_stream_free(&s);
    /* sluice gave up on the upstream: the mock saw its client leave */
    const char *o = h_mock_wait_outcome("client_closed", 5000);
    ck_assert_msg(!strcmp(o, "client_closed"), "mock outcome \"%s\"", o);
}
END_TEST

/* ---- heartbeat comments -------------------------------------------------- */

START_TEST(test_heartbeat)
{
    start_with_sse("{ heartbeat_s: 0.2, idle_timeout_s: 10 }");
    ck_assert_int_eq(h_mock_script("{\"rules\":[{\"stream\":{\"chunks\":4,"
                                   "\"stall_after\":2,\"stall_ms\":1500}}]}"),
                     0);
    h_stream s;
    stream(STREAM_BODY, &s);
    assert_clean_end(&s, "heartbeat");
    ck_assert_int_eq(h_stream_data_events(&s), 4);
    ck_assert(h_stream_has_done(&s));
    assert_tokens(&s, 4, "heartbeat");
    /* keep-alive comments sit between event 2 and event 3, whole */
    const char *body = s.resp.body;
    const char *e2 = strstr(body, "tok1 ");
    const char *e3 = strstr(body, "tok2 ");
    ck_assert(e2 && e3);
    size_t beats = 0;
    for (const char *p = strstr(body, ": keep-alive\n\n"); p;
         p = strstr(p + 1, ": keep-alive\n\n")) {
        ck_assert_msg(p > e2 && p < e3, "a keep-alive outside the stall");
        ck_assert_msg(p[-1] == '\n' && p[-2] == '\n',
                      "a keep-alive inside an event");
        beats++;
    }
    ck_assert_msg(beats >= 2,
                  "%zu keep-alive comments in a 1.5 s stall with "
                  "a 0.2 s heartbeat; body:\n%s",
                  beats, show(&s.resp));
    h_stream_free(&s);
}
END_TEST

/* ---- malformed framing ------------------------------------------------------
 */

START_TEST(test_malformed_framing)
{
    start_with_sse("{ max_event_bytes: 1024 }");
    ck_assert_int_eq(
        h_mock_script_raw(
            json_pack("[sss]", "data: {\"n\":1}\n\n",
                      "<html><body>502 Bad Gateway</body></html>\n\n",
                      "data: never\n\n"),
            50),
        0);
    h_stream s;
    stream(STREAM_BODY, &s);
    assert_clean_end(&s, "non-SSE bytes");
    ck_assert_msg(s.nevents == 2, "%zu events; body:\n%s", s.nevents,
                  show(&s.resp));
    ck_assert_str_eq(s.events[0].data, "{\"n\":1}");
    assert_error_event(&s, "stream_malformed", "non-SSE bytes");
    ck_assert(!strstr(s.resp.body, "never") && !strstr(s.resp.body, "html"));
    h_stream_free(&s);

    /* an event larger than max_event_bytes */
    ck_assert_int_eq(h_mock_reset(), 0);
    char big[3100];
    memcpy(big, "data: ", 6);
    memset(big + 6, 'x', 3000);
    strcpy(big + 3006, "\n\n");
    ck_assert_int_eq(h_mock_script_raw(json_pack("[sss]", "data: {\"n\":1}\n\n",
                                                 big, "data: [DONE]\n\n"),
                                       50),
                     0);
    stream(STREAM_BODY, &s);
    assert_clean_end(&s, "oversized event");
    ck_assert_msg(s.nevents == 2, "%zu events; body:\n%s", s.nevents,
                  show(&s.resp));
    assert_error_event(&s, "stream_malformed", "oversized event");
    ck_assert(!strstr(s.resp.body, "xxxx"));
    h_stream_free(&s);
}
END_TEST

/* ---- client abort ----------------------------------------------------------
 */

#define ADMIN_TOKEN "streaming-test-admin-token-0123456789"

/* Sum of the keyring's in-flight counts (GET /admin/keys), -1 on error. */
static long keys_inflight(void)
{
    const char *hdrs[] = {"Authorization: Bearer " ADMIN_TOKEN, NULL};
    h_resp r;
    h_request(h_sluice_port(), "GET", "/admin/keys", hdrs, NULL, 0, 10000, &r);
    json_t *doc = r.status == 200 ? h_resp_json(&r) : NULL;
    json_t *keys = json_object_get(doc, "keys");
    long n = json_is_array(keys) ? 0 : -1;
    for (size_t i = 0; n >= 0 && i < json_array_size(keys); i++)
        n += (long)json_integer_value(
            json_object_get(json_array_get(keys, i), "inflight"));
    json_decref(doc);
    h_resp_free(&r);
    return n;
}

START_TEST(test_client_abort)
{
    /* the admin API on, to read the keyring's in-flight counts */
    static char extra[600], pipeline[600];
    char tok[512];
    snprintf(tok, sizeof tok, "%s/admin.token", h_tmpdir());
    FILE *f = fopen(tok, "w");
    ck_assert_ptr_nonnull(f);
    fputs(ADMIN_TOKEN "\n", f);
    fclose(f);
    chmod(tok, 0600);
    snprintf(extra, sizeof extra, "admin:\n  token_file: \"%s\"\n", tok);
    snprintf(pipeline, sizeof pipeline,
             "  - plugin: keyring\n"
             "    config: { keys_file: \"@KEYS_FILE@\" }\n"
             "  - plugin: sse\n");
    h_opts opts = {.pipeline = pipeline, .extra = extra};
    h_start_all(&opts);
    ck_assert_int_eq(keys_inflight(), 0);
    ck_assert_int_eq(
        h_mock_script(
            "{\"rules\":[{\"stream\":{\"chunks\":100,\"delay_ms\":100}}]}"),
        0);
    h_stream s;
    h_stream_request(h_sluice_port(), "POST", CHAT_PATH, NULL, STREAM_BODY,
                     strlen(STREAM_BODY), 20000, 0, 3, &s);
    ck_assert_msg(s.aborted && s.nevents >= 3, "aborted %d, %zu events",
                  s.aborted, s.nevents);
    h_stream_free(&s);
    /* the stream had 10 s to go; the mock sees its client leave well
     * before that (the limit is generous, not the 1 s sluice aims at) */
    const char *o = h_mock_wait_outcome("client_closed", 4000);
    ck_assert_msg(!strcmp(o, "client_closed"), "mock outcome \"%s\"", o);
    json_t *reqs = h_mock_requests();
    json_int_t sent = json_integer_value(
        json_object_get(json_array_get(reqs, 0), "chunks_sent"));
    ck_assert_msg(sent < 60, "the mock sent %lld chunks", (long long)sent);
    json_decref(reqs);
    /* the key the stream held is free again (on_complete ran) */
    long inflight = -1;
    for (int i = 0; i < 60 && inflight != 0; i++) {
        inflight = keys_inflight();
        if (inflight)
            h_sleep_ms(50);
    }
    ck_assert_msg(inflight == 0, "keyring in-flight %ld after the abort",
                  inflight);
    /* and sluice still serves */
    stream(STREAM_BODY, &s);
    assert_clean_end(&s, "after an abort");
    h_stream_free(&s);
}
END_TEST

/* ---- slow client, tiny buffer
 * -------------------------------------------------- */

static long proc_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    long v = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':') {
            v = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* Append to a growing NUL-terminated body (write callbacks below). */
static int body_append(char **body, size_t *blen, size_t *bcap,
                       const char *data, size_t len)
{
    if (*blen + len + 1 > *bcap) {
        size_t cap = *bcap ? *bcap * 2 : 1 << 20;
        while (cap < *blen + len + 1)
            cap *= 2;
        char *p = realloc(*body, cap);
        if (!p)
            return -1;
        *body = p;
        *bcap = cap;
    }
    memcpy(*body + *blen, data, len);
    *blen += len;
    (*body)[*blen] = '\0';
    return 0;
}

struct slow {
    char *body;
    size_t len, cap;
    long calls;
    long rss_max;
    pid_t pid;
};

static size_t slow_write(char *data, size_t size, size_t n, void *ud)
{
    struct slow *s = ud;
    size_t len = size * n;
    if (body_append(&s->body, &s->len, &s->cap, data, len) != 0)
        return 0;
    if (++s->calls % 200 == 0) {
        long rss = proc_kb(s->pid, "VmRSS");
        if (rss > s->rss_max)
            s->rss_max = rss;
    }
    return len;
}

/* A small receive buffer, so back-pressure reaches sluice early. Not below
 * loopback's MSS (64 KB): with a smaller one Linux's receiver-side silly
 * window avoidance can hold back the window update until the sender's
 * zero-window probe (~200 ms per pause cycle), which stalled the slow-client
 * stream for minutes on a busy machine; no real client runs with that. */
static int small_rcvbuf(void *ud, curl_socket_t fd, curlsocktype purpose)
{
    int sz = 65536;
    (void)ud;
    (void)purpose;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    return CURL_SOCKOPT_OK;
}

START_TEST(test_slow_client_bounded)
{
    enum { N = 60000 }; /* ~14 MB of events */
    /* In a sanitizer build, freed memory sits in ASan's quarantine (256 MB
     * by default) and would count as growth: keep it small for this test.
     * A non-sanitized sluice ignores the variable. */
    char asan[512];
    const char *prev = getenv("ASAN_OPTIONS");
    snprintf(asan, sizeof asan, "%s%squarantine_size_mb=1", prev ? prev : "",
             prev && *prev ? ":" : "");
    setenv("ASAN_OPTIONS", asan, 1);
    start_with_sse(
        "{ buffer_bytes: 16384, heartbeat_s: 0, idle_timeout_s: 30 }");
    char rules[128];
    snprintf(rules, sizeof rules,
             "{\"rules\":[{\"stream\":{\"chunks\":%d,\"delay_ms\":0}}]}", N);
    ck_assert_int_eq(h_mock_script(rules), 0);
    pid_t pid = h_sluice_pid();
    long rss0 = proc_kb(pid, "VmRSS");
    ck_assert_msg(rss0 > 0, "cannot read VmRSS of sluice (pid %d)", (int)pid);

    struct slow sl = {.pid = pid, .rss_max = rss0};
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", h_sluice_port(),
             CHAT_PATH);
    struct curl_slist *hd =
        curl_slist_append(NULL, "Content-Type: application/json");
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, STREAM_BODY);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, slow_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &sl);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 4096L);
    curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, small_rcvbuf);
    /* a client reading 4 MB/s, far slower than the mock writes */
    curl_easy_setopt(e, CURLOPT_MAX_RECV_SPEED_LARGE, (curl_off_t)4000000);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 240000L);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    CURLcode rc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    curl_slist_free_all(hd);
    long hwm = proc_kb(pid, "VmHWM");

    ck_assert_msg(rc == CURLE_OK && status == 200, "curl %d, status %ld",
                  (int)rc, status);
    /* every event, in order: each one within a few hundred bytes of the
     * previous (a bounded window: sanitizer builds intercept strstr with a
     * strlen of the whole 14 MB each call) */
    char *p = sl.body, *end = sl.body + sl.len;
    for (int i = 0; i < N; i++) {
        char want[48];
        int wl = snprintf(want, sizeof want, "\"content\":\"tok%d \"", i);
        size_t win = (size_t)(end - p) < 4096 ? (size_t)(end - p) : 4096;
        char *q = memmem(p, win, want, (size_t)wl);
        ck_assert_msg(q, "event %d missing or out of order", i);
        p = q + wl;
    }
    ck_assert_msg(memmem(p, (size_t)(end - p), "data: [DONE]\n\n", 14),
                  "no [DONE] at the end");
    free(sl.body);
    /* what sluice holds for this client stays bounded: 14 MB went through;
     * without back-pressure most of it would sit in sluice's memory */
    fprintf(stderr,
            "slow client: sluice VmRSS %ld kB before, %ld kB max "
            "sampled, VmHWM %ld kB\n",
            rss0, sl.rss_max, hwm);
    ck_assert_msg(sl.rss_max - rss0 < 6 * 1024,
                  "sluice RSS grew from %ld kB to %ld kB while streaming to a "
                  "slow client",
                  rss0, sl.rss_max);
    ck_assert_msg(hwm < 0 || hwm - rss0 < 6 * 1024,
                  "sluice peak RSS %ld kB, %ld kB at the start", hwm, rss0);
    const char *o = h_mock_wait_outcome("complete", 3000);
    ck_assert_msg(!strcmp(o, "complete"), "mock outcome \"%s\"", o);
}
END_TEST

/* ---- a paused upstream is not an idle one
 * ------------------------------------ */

struct stall {
    char *body;
    size_t len, cap;
    int stalled;
};

/* Collects the body; once 64 KB are in, stops reading for 3 s. */
static size_t stall_write(char *data, size_t size, size_t n, void *ud)
{
    struct stall *s = ud;
    size_t len = size * n;
    if (body_append(&s->body, &s->len, &s->cap, data, len) != 0)
        return 0;
    if (!s->stalled && s->len >= 64 * 1024) {
        s->stalled = 1;
        h_sleep_ms(3000);
    }
    return len;
}

START_TEST(test_paused_is_not_idle)
{
    enum { N = 40000 }; /* ~9 MB: more than the kernel buffers between us */
    /* the idle limit well under the client's 3 s pause, yet long enough
     * that a starved mock on a busy machine is not taken for a silent one */
    start_with_sse("{ buffer_bytes: 4096, heartbeat_s: 0, "
                   "idle_timeout_s: 1 }");
    char rules[128];
    snprintf(rules, sizeof rules,
             "{\"rules\":[{\"stream\":{\"chunks\":%d,\"delay_ms\":0}}]}", N);
    ck_assert_int_eq(h_mock_script(rules), 0);
    struct stall st = {0};
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", h_sluice_port(),
             CHAT_PATH);
    struct curl_slist *hd =
        curl_slist_append(NULL, "Content-Type: application/json");
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, STREAM_BODY);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, stall_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &st);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 4096L);
    curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, small_rcvbuf);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    CURLcode rc = curl_easy_perform(e);
    curl_easy_cleanup(e);
    curl_slist_free_all(hd);
    ck_assert_msg(rc == CURLE_OK, "curl %d", (int)rc);
    ck_assert(st.stalled);
    /* the client stopped reading for longer than the idle limit; the
     * upstream was paused for it, not silent: the stream must finish */
    ck_assert_msg(!strstr(st.body, "stream_timeout"),
                  "the stream timed out while the client was not reading");
    char want[48];
    snprintf(want, sizeof want, "\"content\":\"tok%d \"", N - 1);
    ck_assert_msg(strstr(st.body + (st.len > 4096 ? st.len - 4096 : 0), want),
                  "the last event is missing");
    ck_assert(
        strstr(st.body + (st.len > 64 ? st.len - 64 : 0), "data: [DONE]\n\n"));
    free(st.body);
}
END_TEST

/* ---- usage injection
 * ------------------------------------------------------------ */

static int mock_body_include_usage(void)
{
    json_t *reqs = h_mock_requests();
    size_t len = 0;
    const char *b = h_rec_body(json_array_get(reqs, 0), &len);
    json_t *doc = b ? json_loadb(b, len, 0, NULL) : NULL;
    json_t *so = json_object_get(doc, "stream_options");
    int v =
        so == NULL ? -1 : json_is_true(json_object_get(so, "include_usage"));
    json_decref(doc);
    json_decref(reqs);
    return v; /* -1: no stream_options at all */
}

static int usage_events(const h_stream *s)
{
    int n = 0;
    for (size_t i = 0; i < s->nevents; i++) {
        json_t *doc = json_loads(s->events[i].data, 0, NULL);
        n += json_is_object(json_object_get(doc, "usage"));
        json_decref(doc);
    }
    return n;
}

START_TEST(test_usage_injection_on)
{
    start_with_sse("{ inject_usage: true }");
    ck_assert_int_eq(h_mock_script("{\"rules\":[{\"stream\":{\"chunks\":5}}]}"),
                     0);
    /* the client did not ask: the upstream is asked, the client sees none */
    h_stream s;
    stream(STREAM_BODY, &s);
    assert_clean_end(&s, "inject, not asked");
    ck_assert_int_eq(mock_body_include_usage(), 1);
    ck_assert_int_eq(h_stream_data_events(&s), 5);
    ck_assert(h_stream_has_done(&s));
    assert_tokens(&s, 5, "inject, not asked");
    ck_assert_msg(usage_events(&s) == 0,
                  "a usage chunk reached a client that "
                  "did not ask; body:\n%s",
                  show(&s.resp));
    h_stream_free(&s);

    /* the client asked: it gets the usage chunk */
    ck_assert_int_eq(h_mock_reset(), 0);
    ck_assert_int_eq(h_mock_script("{\"rules\":[{\"stream\":{\"chunks\":5}}]}"),
                     0);
    stream(STREAM_BODY_USAGE, &s);
    assert_clean_end(&s, "inject, asked");
    ck_assert_int_eq(mock_body_include_usage(), 1);
    ck_assert_int_eq(h_stream_data_events(&s), 6);
    ck_assert_int_eq(usage_events(&s), 1);
    h_stream_free(&s);
}
END_TEST

START_TEST(test_usage_injection_off)
{
    start_with_sse("{ inject_usage: false }");
    ck_assert_int_eq(h_mock_script("{\"rules\":[{\"stream\":{\"chunks\":5}}]}"),
                     0);
    h_stream s;
    stream(STREAM_BODY, &s);
    assert_clean_end(&s, "no inject, not asked");
    ck_assert_int_eq(mock_body_include_usage(), -1);
    /* the body went through byte for byte */
    json_t *reqs = h_mock_requests();
    size_t len = 0;
    const char *b = h_rec_body(json_array_get(reqs, 0), &len);
    ck_assert(b && len == strlen(STREAM_BODY) && !memcmp(b, STREAM_BODY, len));
    json_decref(reqs);
    ck_assert_int_eq(h_stream_data_events(&s), 5);
    ck_assert_int_eq(usage_events(&s), 0);
    h_stream_free(&s);

    ck_assert_int_eq(h_mock_reset(), 0);
    ck_assert_int_eq(h_mock_script("{\"rules\":[{\"stream\":{\"chunks\":5}}]}"),
                     0);
    stream(STREAM_BODY_USAGE, &s);
    assert_clean_end(&s, "no inject, asked");
    ck_assert_int_eq(mock_body_include_usage(), 1);
    ck_assert_int_eq(usage_events(&s), 1);
    h_stream_free(&s);
}
END_TEST

static Suite *streaming_suite(void)
{
    Suite *s = suite_create("streaming");
    TCase *tc = tcase_create("streams");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_split_events);
    tcase_add_test(tc, test_drip_feed);
    tcase_add_test(tc, test_mid_stream_cut);
    tcase_add_test(tc, test_idle_timeout);
    tcase_add_test(tc, test_heartbeat);
    tcase_add_test(tc, test_malformed_framing);
    tcase_add_test(tc, test_client_abort);
    tcase_add_test(tc, test_slow_client_bounded);
    tcase_add_test(tc, test_paused_is_not_idle);
    tcase_add_test(tc, test_usage_injection_on);
    tcase_add_test(tc, test_usage_injection_off);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    SRunner *sr = srunner_create(streaming_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
