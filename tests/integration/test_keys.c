/*
 * test_keys.c - multi-key high availability end to end: the real sluice
 * (keyring, retry, sse) and the mock upstream on loopback. Every test
 * asserts on what the client got and on the Authorization headers the mock
 * recorded, in the order it recorded them.
 *
 *   - revoked, throttled and flaky keys together: no client error while
 *     one key works, and /admin/keys says which key is in which state
 *   - an empty keys file: sluice refuses to start and says why
 *   - three keys, nine requests: each key three times, in turn
 *   - 429 + Retry-After: 2 moves the attempt to another key, keeps the key
 *     out for two seconds, then it is back
 *   - 401 isolates a key until POST /admin/reset-failed-keys
 *   - 500, 500, 200 succeeds on the third attempt, same key, gaps following
 *     the back-off schedule
 *   - every key 401: 503 all_keys_unavailable, fast; /health degraded
 *   - wait_for_key_ms: the request waits (timer) for the key to come back
 *   - keys file rewritten and reloaded under concurrent load: no request lost
 *   - a broken keys file on reload changes nothing
 *   - a stream is retried before its first byte, never after
 *   - a failed key comes back after a successful probe (core/probe.c)
 *   - a pipeline reload keeps key health (export/import_state)
 */
#include "harness.h"
#include "itest_util.h"

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHAT  "/v1/chat/completions"
#define TOKEN "keys-test-admin-token-0123456789"
#define KA    "sk-keys-test-aaaa0001"
#define KB    "sk-keys-test-bbbb0002"
#define KC    "sk-keys-test-cccc0003"
#define KD    "sk-keys-test-dddd0004"
#define KE    "sk-keys-test-eeee0005"

static const char BODY[] =
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\","
    "\"content\":\"hi\"}]}";
static const char STREAM_BODY[] =
    "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{\"role\":"
    "\"user\",\"content\":\"hi\"}]}";

static char extra_yaml[1024];
static char auth_hdr[128];

static void setup(void)
{
    h_tmpdir();
}

static void teardown(void)
{
    h_teardown();
}

static const char *write_token(void)
{
    snprintf(auth_hdr, sizeof auth_hdr, "Authorization: Bearer %s", TOKEN);
    return it_secret_file("admin.token", TOKEN "\n");
}

/* Start with keyring + retry + sse; keyring/retry config members given. */
static void start(const char *keys, const char *kr_cfg, const char *rt_cfg)
{
    static char pipeline[1024];
    snprintf(extra_yaml, sizeof extra_yaml, "admin:\n  token_file: \"%s\"\n",
             write_token());
    snprintf(pipeline, sizeof pipeline,
             "  - plugin: keyring\n"
             "    config: { keys_file: \"@KEYS_FILE@\"%s%s }\n"
             "  - plugin: retry\n"
             "    config: { %s }\n"
             "  - plugin: sse\n",
             kr_cfg ? ", " : "", kr_cfg ? kr_cfg : "",
             rt_cfg ? rt_cfg : "base_ms: 50, max_ms: 200");
    h_opts o = {0};
    o.keys = keys;
    o.pipeline = pipeline;
    o.extra = extra_yaml;
    h_start_all(&o);
}

static void write_keys(const char *text)
{
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.new", h_keys_path());
    FILE *f = fopen(tmp, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    chmod(tmp, 0600);
    ck_assert_int_eq(rename(tmp, h_keys_path()), 0); /* atomic, as a deploy */
}

static long admin(const char *method, const char *path, char **body)
{
    const char *hdrs[] = {auth_hdr, NULL};
    h_resp r;
    h_request(h_sluice_port(), method, path, hdrs, NULL, 0, 10000, &r);
    long st = r.status;
    if (body)
        *body = strdup(r.body ? r.body : "");
    h_resp_free(&r);
    return st;
}

/* One chat request; asserts 200 unless want != 200. Returns attempts. */
static int chat(long want)
{
    h_resp r;
    h_post_json(CHAT, BODY, &r);
    ck_assert_msg(r.status == want, "status %ld, expected %ld: %s", r.status,
                  want, r.body ? r.body : "");
    const char *a = h_resp_header(&r, "x-sluice-attempts");
    int n = a ? atoi(a) : -1;
    h_resp_free(&r);
    return n;
}

/* The Authorization headers the mock saw, in order, as key letters
 * ("ABCA..."): each key's 14th character is its letter. */
static void mock_keys(char *out, size_t outlen)
{
    json_t *reqs = h_mock_requests();
    ck_assert_ptr_nonnull(reqs);
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(reqs) && n + 1 < outlen; i++) {
        const char *a = h_rec_header(json_array_get(reqs, i), "authorization");
        char c = '?';
        if (a && strlen(a) == strlen("Bearer " KA) &&
            !strncmp(a, "Bearer sk-keys-test-", 20))
            c = (char)(a[20] - 'a' + 'A');
        out[n++] = c;
    }
    out[n] = '\0';
    json_decref(reqs);
}

static size_t count_char(const char *s, char c)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

/* ---- the whole point ----------------------------------------------- */

START_TEST(mixed_pool_serves_while_one_key_works)
{
    start(KA "\n" KB "\n" KC "  team-c\n", NULL, NULL);
    ck_assert_int_eq(
        h_mock_script("{\"rules\":["
                      "{\"match\":{\"auth\":\"Bearer " KA "\"},\"times\":0,"
                      "\"status\":401},"
                      "{\"match\":{\"auth\":\"Bearer " KB "\"},\"times\":0,"
                      "\"status\":429,\"headers\":{\"Retry-After\":\"60\"}},"
                      "{\"match\":{\"auth\":\"Bearer " KC "\"},\"times\":1,"
                      "\"status\":500}]}"),
        0);
    /* revoked, throttled, flaky: the client never sees an error */
    ck_assert_int_eq(chat(200), 4); /* A 401, B 429, C 500, C 200 */
    for (int i = 0; i < 9; i++)
        ck_assert_int_eq(chat(200), 1);
    char seen[64];
    mock_keys(seen, sizeof seen);
    ck_assert_str_eq(seen, "ABCCCCCCCCCCC");
    /* and the operator sees exactly which key is in which state */
    char *body;
    ck_assert_int_eq(admin("GET", "/admin/keys", &body), 200);
    json_t *doc = json_loads(body, 0, NULL);
    json_t *keys = json_object_get(doc, "keys");
    const char *want[][2] = {
        {"sk-…0001", "failed"}, {"sk-…0002", "cooling"}, {"team-c", "healthy"}};
    for (size_t i = 0; i < 3; i++) {
        json_t *k = json_array_get(keys, i);
        ck_assert_str_eq(json_string_value(json_object_get(k, "name")),
                         want[i][0]);
        ck_assert_str_eq(json_string_value(json_object_get(k, "state")),
                         want[i][1]);
    }
    ck_assert_int_eq(json_integer_value(
                         json_object_get(json_array_get(keys, 2), "successes")),
                     10);
    json_decref(doc);
    free(body);
    h_resp r;
    h_get("/health", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(strstr(r.body, "\"healthy\":1,\"cooling\":1,\"failed\":1"),
                  "%s", r.body);
    h_resp_free(&r);
}
END_TEST

/* ---- start-up ------------------------------------------------------ */

START_TEST(empty_keys_file_refuses_to_start)
{
    char cfg[512];
    snprintf(cfg, sizeof cfg, "%s/empty-keys.yaml", h_tmpdir());
    h_opts o = {0};
    o.keys = "# no keys yet\n\n";
    o.base_url = "http://127.0.0.1:9/v1";
    ck_assert_int_eq(h_write_config(cfg, &o, h_free_port()), 0);
    const char *bin = getenv("SLUICE_BIN");
    ck_assert_ptr_nonnull(bin);
    char *argv[] = {(char *)bin, "-c", cfg, NULL};
    char *out = NULL;
    int rc = h_run_capture(argv, 10000, &out);
    ck_assert_msg(rc != 0 && rc < 128, "exit %d; output:\n%s", rc, out);
    ck_assert_msg(strstr(out, "holds no keys") && strstr(out, "keyring"),
                  "the reason is not given:\n%s", out);
    free(out);
}
END_TEST

/* ---- round robin -------------------------------------------------- */

START_TEST(three_keys_nine_requests_in_turn)
{
    start(KA "\n" KB "\n" KC "\n", NULL, NULL);
    for (int i = 0; i < 9; i++)
        ck_assert_int_eq(chat(200), 1);
    char seen[64];
    mock_keys(seen, sizeof seen);
    ck_assert_str_eq(seen, "ABCABCABC");
}
END_TEST

/* ---- 429 + Retry-After ---------------------------------------------- */

START_TEST(rate_limit_moves_to_another_key_for_two_seconds)
{
    start(KA "\n" KB "\n" KC "\n", NULL, NULL);
    ck_assert_int_eq(
        h_mock_script("{\"rules\":[{\"match\":{\"auth\":\"Bearer " KA "\"},"
                      "\"times\":1,\"status\":429,"
                      "\"headers\":{\"Retry-After\":\"2\"}}]}"),
        0);
    ck_assert_int_eq(chat(200), 2); /* 429 on A, then B at once */
    double t429 = h_now_ms();
    char seen[64];
    mock_keys(seen, sizeof seen);
    ck_assert_str_eq(seen, "AB");

    char *body;
    ck_assert_int_eq(admin("GET", "/admin/keys", &body), 200);
    ck_assert_msg(strstr(body, "\"state\":\"cooling\""), "%s", body);
    ck_assert_msg(strstr(body, "429: rate limited"), "%s", body);
    ck_assert_msg(!strstr(body, KA), "a key appears whole: %s", body);
    free(body);

    /* within the two seconds A is never used */
    int n = 0;
    while (h_now_ms() < t429 + 1500 && n < 20) {
        ck_assert_int_eq(chat(200), 1);
        n++;
    }
    json_t *reqs = h_mock_requests();
    json_t *first = json_array_get(reqs, 0);
    /* the cooldown starts when sluice got the 429, after the mock began
     * answering it: measuring from t_start is the conservative side */
    long long t0 = json_integer_value(json_object_get(first, "t_start_ms"));
    for (size_t i = 2; i < json_array_size(reqs); i++) {
        json_t *rec = json_array_get(reqs, i);
        long long ts = json_integer_value(json_object_get(rec, "t_start_ms"));
        const char *a = h_rec_header(rec, "authorization");
        if (ts < t0 + 2000)
            ck_assert_msg(strcmp(a, "Bearer " KA) != 0,
                          "key A used %lld ms after its 429 (Retry-After: 2)",
                          ts - t0);
    }
    json_decref(reqs);

    /* then it is back */
    while (h_now_ms() < t429 + 2300)
        h_sleep_ms(50);
    ck_assert_int_eq(h_mock_reset(), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(chat(200), 1);
    mock_keys(seen, sizeof seen);
    ck_assert_msg(count_char(seen, 'A') == 1, "after the cooldown: %s", seen);
}
END_TEST

/* ---- 401 until reset ---------------------------------------------------- */

START_TEST(unauthorized_key_isolated_until_reset)
{
    start(KA "\n" KB "\n" KC "\n", NULL, NULL);
    ck_assert_int_eq(
        h_mock_script("{\"rules\":[{\"match\":{\"auth\":\"Bearer " KB "\"},"
                      "\"times\":0,\"status\":401}]}"),
        0);
    for (int i = 0; i < 9; i++)
        chat(200);
    char seen[64];
    mock_keys(seen, sizeof seen);
    ck_assert_msg(count_char(seen, 'B') == 1, "B used again: %s", seen);
    ck_assert_uint_eq(strlen(seen), 10); /* nine answers + one failover */

    char *body;
    ck_assert_int_eq(admin("GET", "/admin/keys", &body), 200);
    json_t *doc = json_loads(body, 0, NULL);
    ck_assert_msg(doc != NULL, "%s", body);
    json_t *kb = json_array_get(json_object_get(doc, "keys"), 1);
    ck_assert_str_eq(json_string_value(json_object_get(kb, "name")),
                     "sk-…0002");
    ck_assert_str_eq(json_string_value(json_object_get(kb, "state")), "failed");
    ck_assert_str_eq(json_string_value(json_object_get(kb, "last_error")),
                     "401: key rejected");
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_object_get(kb, "failures"), "auth")),
                     1);
    ck_assert_msg(!strstr(body, KB), "a key appears whole: %s", body);
    json_decref(doc);
    free(body);

    /* the admin API wants its token */
    h_resp r;
    h_request(h_sluice_port(), "POST", "/admin/reset-failed-keys", NULL, NULL,
              0, 10000, &r);
    ck_assert_int_eq(r.status, 401);
    h_resp_free(&r);

    ck_assert_int_eq(admin("POST", "/admin/reset-failed-keys", &body), 200);
    ck_assert_str_eq(body, "{\"reset\":1}");
    free(body);
    ck_assert_int_eq(h_mock_reset(), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(chat(200), 1);
    mock_keys(seen, sizeof seen);
    ck_assert_msg(count_char(seen, 'B') == 1, "after reset: %s", seen);
}
END_TEST

/* ---- 500, 500, 200 -------------------------------------------------- */

START_TEST(server_errors_then_success_on_the_third_attempt)
{
    start(KA "\n" KB "\n" KC "\n", "failure_threshold: 5",
          "max_retries: 3, base_ms: 200, max_ms: 2000, jitter: none");
    ck_assert_int_eq(h_mock_script("{\"rules\":[{\"times\":2,"
                                   "\"status\":500}]}"),
                     0);
    h_resp r;
    h_post_json(CHAT, BODY, &r);
    ck_assert_msg(r.status == 200, "status %ld: %s", r.status, r.body);
    ck_assert_str_eq(h_resp_header(&r, "x-sluice-attempts"), "3");
    ck_assert_msg(strstr(r.body, "choices"), "%s", r.body);
    h_resp_free(&r);

    json_t *reqs = h_mock_requests();
    ck_assert_uint_eq(json_array_size(reqs), 3);
    long long want_gap[] = {200, 400};
    for (size_t i = 0; i < 3; i++) {
        json_t *rec = json_array_get(reqs, i);
        ck_assert_str_eq(h_rec_header(rec, "authorization"), "Bearer " KA);
        ck_assert_int_eq(json_integer_value(json_object_get(rec, "status")),
                         i < 2 ? 500 : 200);
        if (i == 0)
            continue;
        json_t *prev = json_array_get(reqs, i - 1);
        long long gap = json_integer_value(json_object_get(rec, "t_start_ms")) -
                        json_integer_value(json_object_get(prev, "t_start_ms"));
        /* from the previous attempt's start: sluice got its answer, and
         * armed the timer, after that (the mock stamps t_end in a callback
         * that may run later still); a timer never fires early, and the
         * slack above is for a busy box */
        ck_assert_msg(gap >= want_gap[i - 1] && gap <= want_gap[i - 1] + 1500,
                      "gap before attempt %zu: %lld ms, schedule %lld ms",
                      i + 1, gap, want_gap[i - 1]);
    }
    json_decref(reqs);
}
END_TEST

START_TEST(client_errors_are_not_retried)
{
    start(KA "\n" KB "\n", NULL, NULL);
    ck_assert_int_eq(h_mock_script("{\"rules\":[{\"times\":1,\"status\":422,"
                                   "\"json\":{\"error\":{\"message\":\"bad\","
                                   "\"type\":\"invalid_request_error\","
                                   "\"param\":null,\"code\":\"x\"}}}]}"),
                     0);
    h_resp r;
    h_post_json(CHAT, BODY, &r);
    ck_assert_int_eq(r.status, 422);
    ck_assert_str_eq(h_resp_header(&r, "x-sluice-attempts"), "1");
    ck_assert_msg(strstr(r.body, "\"message\":\"bad\""), "%s", r.body);
    h_resp_free(&r);
    ck_assert_int_eq(h_mock_request_count(), 1);
}
END_TEST

/* ---- every key 401 -------------------------------------------------- */

START_TEST(every_key_unauthorized_ends_in_503_fast)
{
    start(KA "\n" KB "\n" KC "\n", NULL, NULL);
    ck_assert_int_eq(h_mock_script("{\"rules\":[{\"times\":0,"
                                   "\"status\":401}]}"),
                     0);
    h_resp r;
    h_post_json(CHAT, BODY, &r);
    ck_assert_msg(r.status == 503, "status %ld: %s", r.status, r.body);
    json_t *doc = h_resp_json(&r);
    json_t *err = h_assert_openai_error(doc, "all keys 401");
    ck_assert_str_eq(json_string_value(json_object_get(err, "code")),
                     "all_keys_unavailable");
    json_decref(doc);
    ck_assert_str_eq(h_resp_header(&r, "x-sluice-attempts"), "3");
    ck_assert_msg(r.total_ms < 5000, "took %.0f ms", r.total_ms);
    ck_assert_msg(!strstr(r.body, "sk-keys-test"), "%s", r.body);
    h_resp_free(&r);
    char seen[64];
    mock_keys(seen, sizeof seen);
    ck_assert_str_eq(seen, "ABC");

    /* the next request does not touch the upstream at all */
    h_post_json(CHAT, BODY, &r);
    ck_assert_int_eq(r.status, 503);
    ck_assert_str_eq(h_resp_header(&r, "x-sluice-attempts"), "0");
    h_resp_free(&r);
    ck_assert_int_eq(h_mock_request_count(), 3);

    h_get("/health", &r);
    ck_assert_int_eq(r.status, 503);
    ck_assert_msg(strstr(r.body, "\"degraded\"") &&
                      strstr(r.body, "\"failed\":3") &&
                      strstr(r.body, "\"total\":3"),
                  "%s", r.body);
    h_resp_free(&r);
}
END_TEST

START_TEST(wait_for_key_holds_the_request_until_a_key_is_back)
{
    start(KA "\n", "wait_for_key_ms: 5000", NULL);
    ck_assert_int_eq(h_mock_script("{\"rules\":[{\"times\":1,\"status\":429,"
                                   "\"headers\":{\"Retry-After\":\"1\"}}]}"),
                     0);
    h_resp r;
    h_post_json(CHAT, BODY, &r);
    ck_assert_msg(r.status == 200, "status %ld: %s", r.status, r.body);
    ck_assert_str_eq(h_resp_header(&r, "x-sluice-attempts"), "2");
    ck_assert_ptr_null(h_resp_header(&r, "Retry-After"));
    h_resp_free(&r);
    json_t *reqs = h_mock_requests();
    ck_assert_uint_eq(json_array_size(reqs), 2);
    long long gap = json_integer_value(json_object_get(json_array_get(reqs, 1),
                                                       "t_start_ms")) -
                    json_integer_value(
                        json_object_get(json_array_get(reqs, 0), "t_start_ms"));
    ck_assert_msg(gap >= 1000, "the key was used again after %lld ms", gap);
    json_decref(reqs);
}
END_TEST

/* ---- reload ---------------------------------------------------------- */

struct load {
    atomic_int stop, ok, failed;
    char last_error[256];
};

static void *load_main(void *arg)
{
    struct load *L = arg;
    for (int i = 0; i < 100000 && !atomic_load(&L->stop); i++) {
        h_resp r;
        h_post_json(CHAT, BODY, &r);
        int ok = r.status == 200 && r.body && strstr(r.body, "choices");
        if (!ok)
            snprintf(L->last_error, sizeof L->last_error,
                     "status %ld curl %d: %.150s", r.status, r.curl_code,
                     r.body ? r.body : "");
        h_resp_free(&r);
        atomic_fetch_add(ok ? &L->ok : &L->failed, 1);
    }
    return NULL;
}

START_TEST(keys_file_reloaded_under_load_loses_nothing)
{
    start(KA "\n" KB "\n" KC "\n", NULL, NULL);
    static const char *const files[] = {
        KB "\n" KC "\n" KD "\n", KA "\n" KB "\n" KC "\n" KD "\n" KE "\n",
        KC "\n" KE "  team-e\n", KA "\n" KD "\n"};
    struct load L = {0};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, load_main, &L);
    for (int i = 0; i < 12; i++) {
        write_keys(files[i % 4]);
        char *body;
        long st = admin("POST", "/admin/reload-keys", &body);
        ck_assert_msg(st == 200, "reload %d: %ld %s", i, st, body);
        free(body);
        h_sleep_ms(60);
    }
    write_keys(KD "\n" KE "\n");
    ck_assert_int_eq(admin("POST", "/admin/reload-keys", NULL), 200);
    h_sleep_ms(100);
    atomic_store(&L.stop, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    ck_assert_msg(atomic_load(&L.failed) == 0, "%d of %d requests failed: %s",
                  atomic_load(&L.failed),
                  atomic_load(&L.ok) + atomic_load(&L.failed), L.last_error);
    ck_assert_int_gt(atomic_load(&L.ok), 20);
    char *seen = malloc(200000);
    mock_keys(seen, 200000);
    ck_assert_msg(!strchr(seen, '?'), "an unknown key reached the upstream");
    ck_assert_uint_eq(strlen(seen), (size_t)atomic_load(&L.ok));
    free(seen);

    /* after the last reload only D and E are used, in turn */
    ck_assert_int_eq(h_mock_reset(), 0);
    for (int i = 0; i < 4; i++)
        chat(200);
    char last[16];
    mock_keys(last, sizeof last);
    ck_assert_msg(count_char(last, 'D') == 2 && count_char(last, 'E') == 2,
                  "%s", last);
    char *body;
    ck_assert_int_eq(admin("GET", "/admin/keys", &body), 200);
    ck_assert_msg(strstr(body, "sk-…0004") && strstr(body, "sk-…0005") &&
                      !strstr(body, "sk-…0001"),
                  "%s", body);
    free(body);
}
END_TEST

START_TEST(broken_keys_file_on_reload_changes_nothing)
{
    start(KA "\n" KB "\n" KC "\n", NULL, NULL);
    char *body;
    write_keys("# emptied by mistake\n\n");
    ck_assert_int_eq(admin("POST", "/admin/reload-keys", &body), 422);
    ck_assert_msg(strstr(body, "holds no keys"), "%s", body);
    free(body);
    ck_assert_int_eq(unlink(h_keys_path()), 0);
    ck_assert_int_eq(admin("POST", "/admin/reload-keys", &body), 422);
    ck_assert_msg(strstr(body, "No such file"), "%s", body);
    free(body);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(chat(200), 1);
    char seen[64];
    mock_keys(seen, sizeof seen);
    ck_assert_str_eq(seen, "ABCABC");
    ck_assert_int_eq(admin("GET", "/admin/keys", &body), 200);
    json_t *doc = json_loads(body, 0, NULL);
    ck_assert_uint_eq(json_array_size(json_object_get(doc, "keys")), 3);
    json_decref(doc);
    free(body);
}
END_TEST

/* ---- streams -------------------------------------------------------- */

START_TEST(stream_retried_before_first_byte_not_after)
{
    start(KA "\n" KB "\n", NULL, NULL);
    ck_assert_int_eq(h_mock_script("{\"rules\":[{\"times\":1,"
                                   "\"status\":503}]}"),
                     0);
    h_stream s;
    h_stream_request(h_sluice_port(), "POST", CHAT, NULL, STREAM_BODY,
                     strlen(STREAM_BODY), 20000, 0, 0, &s);
    ck_assert_int_eq(s.resp.status, 200);
    ck_assert_msg(h_stream_has_done(&s), "%s", s.resp.body);
    ck_assert_str_eq(h_resp_header(&s.resp, "x-sluice-attempts"), "2");
    h_stream_free(&s);
    ck_assert_int_eq(h_mock_request_count(), 2);

    /* cut mid-stream: the client saw bytes, so no second attempt */
    ck_assert_int_eq(h_mock_reset(), 0);
    ck_assert_int_eq(h_mock_script("{\"rules\":[{\"times\":1,\"stream\":"
                                   "{\"chunks\":5,\"cut_after\":2}}]}"),
                     0);
    h_stream_request(h_sluice_port(), "POST", CHAT, NULL, STREAM_BODY,
                     strlen(STREAM_BODY), 20000, 0, 0, &s);
    ck_assert_int_eq(s.resp.status, 200);
    ck_assert_msg(strstr(s.resp.body, "stream_interrupted"), "%s", s.resp.body);
    h_stream_free(&s);
    ck_assert_int_eq(h_mock_request_count(), 1);
}
END_TEST

/* ---- probes and pipeline reload ------------------------------------- */

/* The state of the key named `name` in GET /admin/keys ("" if absent). */
static void key_state(const char *name, char *out, size_t outlen)
{
    char *body;
    out[0] = '\0';
    ck_assert_int_eq(admin("GET", "/admin/keys", &body), 200);
    json_t *doc = json_loads(body, 0, NULL);
    json_t *keys = json_object_get(doc, "keys");
    for (size_t i = 0; i < json_array_size(keys); i++) {
        json_t *k = json_array_get(keys, i);
        if (!strcmp(json_string_value(json_object_get(k, "name")), name))
            snprintf(out, outlen, "%s",
                     json_string_value(json_object_get(k, "state")));
    }
    json_decref(doc);
    free(body);
}

START_TEST(failed_key_comes_back_after_a_probe)
{
    start(KA "\n" KB "\n", "probe_interval_s: 1", NULL);
    ck_assert_int_eq(
        h_mock_script("{\"rules\":[{\"match\":{\"auth\":\"Bearer " KB "\","
                      "\"method\":\"POST\"},\"times\":1,\"status\":401}]}"),
        0);
    chat(200); /* A */
    chat(200); /* B: 401, then A */
    char st[32];
    key_state("sk-…0002", st, sizeof st);
    ck_assert_str_eq(st, "failed");
    /* /health passing by starts the probe once the interval is up */
    double until = h_now_ms() + 10000;
    while (h_now_ms() < until) {
        h_resp r;
        h_get("/health", &r);
        h_resp_free(&r);
        key_state("sk-…0002", st, sizeof st);
        if (!strcmp(st, "healthy"))
            break;
        h_sleep_ms(100);
    }
    ck_assert_str_eq(st, "healthy");
    json_t *reqs = h_mock_requests();
    int probes = 0;
    for (size_t i = 0; i < json_array_size(reqs); i++) {
        json_t *rec = json_array_get(reqs, i);
        if (!strcmp(h_rec_str(rec, "method"), "GET")) {
            ck_assert_str_eq(h_rec_str(rec, "path"), "/v1/models");
            ck_assert_str_eq(h_rec_header(rec, "authorization"), "Bearer " KB);
            probes++;
        }
    }
    json_decref(reqs);
    ck_assert_int_ge(probes, 1);
}
END_TEST

START_TEST(pipeline_reload_keeps_key_health)
{
    start(KA "\n" KB "\n" KC "\n", NULL, NULL);
    ck_assert_int_eq(
        h_mock_script("{\"rules\":[{\"match\":{\"auth\":\"Bearer " KA "\"},"
                      "\"times\":1,\"status\":403},"
                      "{\"match\":{\"auth\":\"Bearer " KB "\"},"
                      "\"times\":1,\"status\":429,"
                      "\"headers\":{\"Retry-After\":\"60\"}}]}"),
        0);
    chat(200); /* A 403 -> B 429 -> C */
    char *body;
    ck_assert_int_eq(admin("POST", "/admin/reload", &body), 200);
    free(body);
    char st[32];
    key_state("sk-…0001", st, sizeof st);
    ck_assert_str_eq(st, "failed");
    key_state("sk-…0002", st, sizeof st);
    ck_assert_str_eq(st, "cooling");
    key_state("sk-…0003", st, sizeof st);
    ck_assert_str_eq(st, "healthy");
    ck_assert_int_eq(h_mock_reset(), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(chat(200), 1);
    char seen[16];
    mock_keys(seen, sizeof seen);
    ck_assert_str_eq(seen, "CCC");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("keys");
    TCase *tc = tcase_create("keys");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, mixed_pool_serves_while_one_key_works);
    tcase_add_test(tc, empty_keys_file_refuses_to_start);
    tcase_add_test(tc, three_keys_nine_requests_in_turn);
    tcase_add_test(tc, rate_limit_moves_to_another_key_for_two_seconds);
    tcase_add_test(tc, unauthorized_key_isolated_until_reset);
    tcase_add_test(tc, server_errors_then_success_on_the_third_attempt);
    tcase_add_test(tc, client_errors_are_not_retried);
    tcase_add_test(tc, every_key_unauthorized_ends_in_503_fast);
    tcase_add_test(tc, wait_for_key_holds_the_request_until_a_key_is_back);
    tcase_add_test(tc, keys_file_reloaded_under_load_loses_nothing);
    tcase_add_test(tc, broken_keys_file_on_reload_changes_nothing);
    tcase_add_test(tc, stream_retried_before_first_byte_not_after);
    tcase_add_test(tc, failed_key_comes_back_after_a_probe);
    tcase_add_test(tc, pipeline_reload_keeps_key_health);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
