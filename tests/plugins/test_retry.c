/*
 * test_retry.c - the retry stage, compiled with its own sources and driven
 * through the real host table (stage_harness.c): the back-off schedule
 * (exponential, capped, full-jitter bounds with pinned random draws), and
 * the decisions: same key after 5xx/timeouts/connection errors up to
 * max_retries, another key at once after 401/402/403/429 up to
 * max_key_switches, never after other client errors, and nothing after a
 * success or a client that left; retries and give-ups on /metrics.
 */
#include "backoff.h"
#include "stage_harness.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- schedule ----------------------------------------------------- */

START_TEST(cap_doubles_until_max)
{
    uint64_t want[] = {250, 500, 1000, 2000, 4000, 8000, 8000, 8000};
    for (unsigned n = 1; n <= 8; n++)
        ck_assert_uint_eq(backoff_cap_ms(250, 8000, n), want[n - 1]);
    ck_assert_uint_eq(backoff_cap_ms(300, 1000, 3), 1000);    /* 1200 capped */
    ck_assert_uint_eq(backoff_cap_ms(250, 8000, 1000), 8000); /* no overflow */
    ck_assert_uint_eq(backoff_cap_ms(0, 8000, 5), 0);
}
END_TEST

START_TEST(full_jitter_bounds)
{
    /* pinned draws: 0 gives 0, the largest draw stays within the cap */
    ck_assert_uint_eq(backoff_delay_ms(250, 8000, 3, 1, 0), 0);
    ck_assert_uint_eq(backoff_delay_ms(250, 8000, 3, 1, 1000), 1000);
    ck_assert_uint_eq(backoff_delay_ms(250, 8000, 3, 1, 1001), 0);
    ck_assert_uint_le(backoff_delay_ms(250, 8000, 3, 1, UINT64_MAX), 1000);
    /* no jitter: exactly the cap */
    ck_assert_uint_eq(backoff_delay_ms(250, 8000, 2, 0, 12345), 500);
    /* real draws: always in [0, cap], and they do spread over it */
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < 20000; i++) {
        uint64_t d = backoff_delay_ms(100, 8000, 4, 1, backoff_random());
        ck_assert_uint_le(d, 800);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    ck_assert_uint_le(lo, 20);
    ck_assert_uint_ge(hi, 780);
}
END_TEST

/* ---- the stage ----------------------------------------------------- */

static sluice_test_stage *gen(const char *cfg)
{
    char err[256] = "";
    sluice_test_stage *g = sh_gen_new(cfg, err, sizeof err);
    ck_assert_msg(g != NULL, "init failed: %s", err);
    return g;
}

/* One attempt ending as given; returns the verdict of on_response. */
static sluice_verdict attempt(sluice_test_req *c, sluice_attempt_result r,
                              int status)
{
    sluice_test_on_attempt(c);
    HOST.retry_after_ms(CTX(c), 12345); /* must be overwritten by a RETRY */
    sluice_test_upstream(c, r, status, NULL, "{\"error\":{}}");
    return sluice_test_on_response(c);
}

static const char *want(sluice_test_req *c)
{
    const char *w = sluice_test_attr(c, "keyring.want");
    return w ? w : "(unset)";
}

START_TEST(server_errors_retry_same_key_with_backoff)
{
    sluice_test_stage *g = gen("{\"max_retries\":3,\"base_ms\":100,"
                               "\"max_ms\":1000}");
    sluice_test_req *c = sh_ctx_new(g, "{}", NULL);
    uint64_t caps[] = {100, 200, 400};
    sluice_attempt_result rs[] = {SLUICE_ATTEMPT_HTTP, SLUICE_ATTEMPT_TIMEOUT,
                                  SLUICE_ATTEMPT_CONNECT};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(attempt(c, rs[i], i == 0 ? 502 : 0), SLUICE_RETRY);
        ck_assert_str_eq(want(c), "same");
        ck_assert_uint_le(sluice_test_retry_ms(c), caps[i]);
    }
    /* retries used up: the last answer goes to the client */
    ck_assert_int_eq(attempt(c, SLUICE_ATTEMPT_HTTP, 500), SLUICE_CONTINUE);
    sluice_test_on_complete(c);
    sluice_test_req_free(c);
    sluice_test_stage_free(g);
}
END_TEST

START_TEST(no_jitter_follows_the_schedule_exactly)
{
    sluice_test_stage *g = gen("{\"max_retries\":4,\"base_ms\":100,"
                               "\"max_ms\":300,\"jitter\":\"none\"}");
    sluice_test_req *c = sh_ctx_new(g, "{}", NULL);
    uint32_t exp[] = {100, 200, 300, 300};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(attempt(c, SLUICE_ATTEMPT_RESET, 0), SLUICE_RETRY);
        ck_assert_uint_eq(sluice_test_retry_ms(c), exp[i]);
    }
    ck_assert_int_eq(attempt(c, SLUICE_ATTEMPT_RESET, 0), SLUICE_CONTINUE);
    sluice_test_on_complete(c);
    sluice_test_req_free(c);
    sluice_test_stage_free(g);
}
END_TEST

START_TEST(key_errors_switch_at_once)
{
    sluice_test_stage *g = gen("{\"max_key_switches\":4}");
    sluice_test_req *c = sh_ctx_new(g, "{}", NULL);
    int st[] = {401, 403, 429, 402};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(attempt(c, SLUICE_ATTEMPT_HTTP, st[i]), SLUICE_RETRY);
        ck_assert_str_eq(want(c), "other");
        ck_assert_uint_eq(sluice_test_retry_ms(c), 0);
    }
    ck_assert_int_eq(attempt(c, SLUICE_ATTEMPT_HTTP, 429), SLUICE_CONTINUE);
    sluice_test_on_complete(c);
    sluice_test_req_free(c);
    sluice_test_stage_free(g);
}
END_TEST

START_TEST(budgets_are_separate)
{
    sluice_test_stage *g = gen("{\"max_retries\":1,\"max_key_switches\":1,"
                               "\"base_ms\":1}");
    sluice_test_req *c = sh_ctx_new(g, "{}", NULL);
    ck_assert_int_eq(attempt(c, SLUICE_ATTEMPT_HTTP, 500), SLUICE_RETRY);
    ck_assert_int_eq(attempt(c, SLUICE_ATTEMPT_HTTP, 429), SLUICE_RETRY);
    ck_assert_int_eq(attempt(c, SLUICE_ATTEMPT_HTTP, 500), SLUICE_CONTINUE);
    ck_assert_int_eq(attempt(c, SLUICE_ATTEMPT_HTTP, 401), SLUICE_CONTINUE);
    sluice_test_on_complete(c);
    sluice_test_req_free(c);
    sluice_test_stage_free(g);
}
END_TEST

START_TEST(client_errors_and_success_never_retry)
{
    sluice_test_stage *g = gen(NULL);
    int st[] = {200, 201, 400, 404, 405, 409, 413, 422};
    for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) {
        sluice_test_req *c = sh_ctx_new(g, "{}", NULL);
        ck_assert_int_eq(attempt(c, SLUICE_ATTEMPT_HTTP, st[i]),
                         SLUICE_CONTINUE);
        ck_assert_str_eq(want(c), "(unset)");
        sluice_test_on_complete(c);
        sluice_test_req_free(c);
    }
    sluice_test_req *c = sh_ctx_new(g, "{}", NULL);
    ck_assert_int_eq(attempt(c, SLUICE_ATTEMPT_ABORTED, 0), SLUICE_CONTINUE);
    sluice_test_on_complete(c);
    sluice_test_req_free(c);
    sluice_test_stage_free(g);
}
END_TEST

START_TEST(zero_retries_and_bad_config)
{
    sluice_test_stage *g = gen("{\"max_retries\":\"0\","
                               "\"max_key_switches\":0}");
    sluice_test_req *c = sh_ctx_new(g, "{}", NULL);
    ck_assert_int_eq(attempt(c, SLUICE_ATTEMPT_HTTP, 500), SLUICE_CONTINUE);
    ck_assert_int_eq(attempt(c, SLUICE_ATTEMPT_HTTP, 429), SLUICE_CONTINUE);
    sluice_test_on_complete(c);
    sluice_test_req_free(c);
    sluice_test_stage_free(g);
    char err[256] = "";
    ck_assert_ptr_null(sh_gen_new("{\"max_retries\":-1}", err, sizeof err));
    ck_assert_msg(strstr(err, "max_retries"), "%s", err);
    ck_assert_ptr_null(
        sh_gen_new("{\"base_ms\":500,\"max_ms\":100}", err, sizeof err));
    ck_assert_msg(strstr(err, "max_ms"), "%s", err);
    ck_assert_ptr_null(sh_gen_new("{\"jitter\":\"half\"}", err, sizeof err));
    ck_assert_ptr_null(sh_gen_new("{\"retries\":3}", err, sizeof err));
    ck_assert_msg(strstr(err, "retries"), "%s", err);
}
END_TEST

START_TEST(metrics_count_retries_and_give_ups_by_kind)
{
    sluice_test_stage *g =
        gen("{\"max_retries\":2,\"max_key_switches\":1,\"jitter\":\"none\"}");
    const char *rs = "sluice_retry_attempts_total{kind=\"same_key\"}";
    const char *rk = "sluice_retry_attempts_total{kind=\"key_switch\"}";
    const char *gs = "sluice_retry_give_ups_total{kind=\"same_key\"}";
    const char *gk = "sluice_retry_give_ups_total{kind=\"key_switch\"}";
    double rs0 = sluice_test_metric(g, rs), rk0 = sluice_test_metric(g, rk);
    double gs0 = sluice_test_metric(g, gs), gk0 = sluice_test_metric(g, gk);
    rs0 = rs0 < 0 ? 0 : rs0, rk0 = rk0 < 0 ? 0 : rk0;
    gs0 = gs0 < 0 ? 0 : gs0, gk0 = gk0 < 0 ? 0 : gk0;

    sluice_test_req *c = sh_ctx_new(g, "{}", NULL);
    ck_assert_int_eq(attempt(c, SLUICE_ATTEMPT_HTTP, 503), SLUICE_RETRY);
    ck_assert_int_eq(attempt(c, SLUICE_ATTEMPT_TIMEOUT, 0), SLUICE_RETRY);
    ck_assert_int_eq(attempt(c, SLUICE_ATTEMPT_HTTP, 429), SLUICE_RETRY);
    ck_assert_int_eq(attempt(c, SLUICE_ATTEMPT_HTTP, 401), SLUICE_CONTINUE);
    ck_assert_int_eq(attempt(c, SLUICE_ATTEMPT_HTTP, 500), SLUICE_CONTINUE);
    ck_assert_int_eq(attempt(c, SLUICE_ATTEMPT_HTTP, 400), SLUICE_CONTINUE);
    sluice_test_on_complete(c);
    sluice_test_req_free(c);

    ck_assert_double_eq(sluice_test_metric(g, rs) - rs0, 2);
    ck_assert_double_eq(sluice_test_metric(g, rk) - rk0, 1);
    ck_assert_double_eq(sluice_test_metric(g, gs) - gs0, 1);
    ck_assert_double_eq(sluice_test_metric(g, gk) - gk0, 1);
    sluice_test_stage_free(g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("retry");
    TCase *tc = tcase_create("retry");
    tcase_add_test(tc, cap_doubles_until_max);
    tcase_add_test(tc, full_jitter_bounds);
    tcase_add_test(tc, server_errors_retry_same_key_with_backoff);
    tcase_add_test(tc, no_jitter_follows_the_schedule_exactly);
    tcase_add_test(tc, key_errors_switch_at_once);
    tcase_add_test(tc, budgets_are_separate);
    tcase_add_test(tc, client_errors_and_success_never_retry);
    tcase_add_test(tc, zero_retries_and_bad_config);
    tcase_add_test(tc, metrics_count_retries_and_give_ups_by_kind);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
