/*
 * test_stage_metrics.c - the bundled stages' own series on /metrics after
 * real traffic through context, keyring (two keys, the second rejected by
 * the mock upstream with 401), retry and sse: per-key requests, successes,
 * failures and states, the retry stage's key switch, the context stage's
 * usage ratio, the sse stage's events; no key whole anywhere in the scrape,
 * and `promtool check metrics` accepts it.
 */
#include "harness.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHAT_PATH "/v1/chat/completions"
#define KEY1      "sk-test-key-1"
#define KEY2      "sk-test-key-2"
#define M1                                                                     \
    "sk-\xe2\x80\xa6"                                                          \
    "ey-1" /* the keys masked: no labels */
#define M2                                                                     \
    "sk-\xe2\x80\xa6"                                                          \
    "ey-2"

static const char CHAT_BODY[] =
    "{\"model\":\"qwen/qwen3-next-80b-a3b-instruct\","
    "\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}";
static const char STREAM_BODY[] =
    "{\"model\":\"qwen/qwen3-next-80b-a3b-instruct\",\"stream\":true,"
    "\"messages\":[{\"role\":\"user\",\"content\":\"stream please\"}]}";

#define ck_assert_hasnt(hay, needle)                                           \
    ck_assert_msg(strstr((hay), (needle)) == NULL,                             \
                  "did not expect '%s' in:\n%.3000s", (needle), (hay))

static void setup(void)
{
    h_tmpdir();
}

static void teardown(void)
{
    h_teardown();
}

/* The keyring releases a request's key in on_complete, which may run just
 * after the client got its last byte: scrape until no key is in flight and
 * `want` requests were made with key 1 (bounded: ~5 s). */
static char *scrape_settled(double want)
{
    char *m = NULL;
    for (int i = 0; i < 250; i++) {
        free(m);
        m = h_metrics_scrape();
        if (h_metrics_sample(
                m, "sluice_key_in_flight{upstream=\"default\",key=\"" M1
                   "\"}") == 0 &&
            h_metrics_sample(
                m, "sluice_key_requests_total{upstream=\"default\",key=\"" M1
                   "\"}") == want)
            return m;
        h_sleep_ms(20);
    }
    ck_abort_msg("the keyring never settled at %g requests:\n%.4000s", want, m);
    return m;
}

static void promtool_check(const char *text)
{
    char path[300], cmd[400];
    snprintf(path, sizeof path, "%s/scrape.txt", h_tmpdir());
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s'", path);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    char *out = NULL;
    int rc = h_run_capture(argv, 30000, &out);
    ck_assert_msg(rc == 0,
                  "promtool check metrics (exit %d; is the Debian "
                  "package prometheus installed?):\n%s",
                  rc, out ? out : "");
    free(out);
}

START_TEST(test_stage_series_after_traffic)
{
    h_opts o = {.pipeline = "  - plugin: context\n"
                            "  - plugin: keyring\n"
                            "    config: { keys_file: \"@KEYS_FILE@\" }\n"
                            "  - plugin: retry\n"
                            "    config: { base_ms: 10, max_ms: 50 }\n"
                            "  - plugin: sse\n"};
    h_start_all(&o);
    ck_assert_int_eq(h_mock_script("{\"rules\":[{\"match\":{\"auth\":"
                                   "\"Bearer " KEY2 "\"},\"times\":0,"
                                   "\"status\":401}]}"),
                     0);
    const int nchat = 4;
    for (int i = 0; i < nchat; i++) {
        h_resp r;
        h_post_json(CHAT_PATH, CHAT_BODY, &r);
        ck_assert_msg(r.status == 200, "chat %d: %ld %s", i, r.status, r.body);
        h_resp_free(&r);
    }
    h_stream s;
    h_stream_request(h_sluice_port(), "POST", CHAT_PATH, NULL, STREAM_BODY,
                     strlen(STREAM_BODY), 10000, 0, 0, &s);
    ck_assert_msg(s.resp.status == 200 && h_stream_has_done(&s), "stream: %ld",
                  s.resp.status);
    size_t events = s.nevents;
    h_stream_free(&s);

    /* the mock saw key 2 once (then it failed), key 1 for every request */
    json_t *reqs = h_mock_requests();
    ck_assert_ptr_nonnull(reqs);
    size_t i, with1 = 0, with2 = 0;
    json_t *rec;
    json_array_foreach(reqs, i, rec)
    {
        const char *a = h_rec_header(rec, "authorization");
        with1 += a && !strcmp(a, "Bearer " KEY1);
        with2 += a && !strcmp(a, "Bearer " KEY2);
    }
    json_decref(reqs);
    ck_assert_uint_eq(with2, 1);
    ck_assert_uint_eq(with1, (size_t)nchat + 1);

    char *m = scrape_settled(nchat + 1);
    ck_assert(h_metrics_sample(
                  m, "sluice_key_requests_total{upstream=\"default\",key=\"" M2
                     "\"}") == 1);
    ck_assert(h_metrics_sample(
                  m, "sluice_key_successes_total{upstream=\"default\",key=\"" M1
                     "\"}") == nchat + 1);
    ck_assert(h_metrics_sample(
                  m, "sluice_key_successes_total{upstream=\"default\",key=\"" M2
                     "\"}") == -1);
    ck_assert(h_metrics_sample(
                  m, "sluice_key_failures_total{upstream=\"default\",key=\"" M2
                     "\",reason=\"auth\"}") == 1);
    ck_assert(h_metrics_sample(m,
                               "sluice_key_state{upstream=\"default\",key=\"" M1
                               "\",state=\"healthy\"}") == 1);
    ck_assert(h_metrics_sample(m,
                               "sluice_key_state{upstream=\"default\",key=\"" M1
                               "\",state=\"failed\"}") == 0);
    ck_assert(h_metrics_sample(m,
                               "sluice_key_state{upstream=\"default\",key=\"" M2
                               "\",state=\"failed\"}") == 1);
    ck_assert(h_metrics_sample(m,
                               "sluice_key_state{upstream=\"default\",key=\"" M2
                               "\",state=\"healthy\"}") == 0);
    ck_assert(h_metrics_sample(m,
                               "sluice_key_state{upstream=\"default\",key=\"" M2
                               "\",state=\"cooling\"}") == 0);
    ck_assert(h_metrics_sample(
                  m,
                  "sluice_key_cooldown_seconds{upstream=\"default\",key=\"" M2
                  "\"}") == 0);
    ck_assert(h_metrics_sample(
                  m, "sluice_key_in_flight{upstream=\"default\",key=\"" M2
                     "\"}") == 0);
    /* the retry stage switched keys once, gave up never */
    ck_assert(h_metrics_sample(
                  m, "sluice_retry_attempts_total{kind=\"key_switch\"}") == 1);
    ck_assert(h_metrics_sample(
                  m, "sluice_retry_attempts_total{kind=\"same_key\"}") == -1);
    ck_assert(h_metrics_sample(
                  m, "sluice_retry_give_ups_total{kind=\"key_switch\"}") == -1);
    /* the core's own count of the same retry agrees */
    ck_assert(
        h_metrics_sample(m, "sluice_retries_total{model=\"qwen/qwen3-next-80b-"
                            "a3b-instruct\"}") == 1);
    /* the context stage's ratio, once per request */
    ck_assert(h_metrics_sample(m,
                               "sluice_context_usage_ratio_count{model=\"qwen/"
                               "qwen3-next-80b-a3b-instruct\"}") == nchat + 1);
    /* the sse stage forwarded what the client received */
    ck_assert_msg(h_metrics_sample(m, "sluice_sse_events_total") ==
                      (double)events,
                  "sse events %g, client got %zu",
                  h_metrics_sample(m, "sluice_sse_events_total"), events);

    ck_assert_hasnt(m, KEY1);
    ck_assert_hasnt(m, KEY2);
    ck_assert_hasnt(m, "test-key");
    promtool_check(m);
    free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("stage_metrics");
    TCase *tc = tcase_create("stage_metrics");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_stage_series_after_traffic);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
