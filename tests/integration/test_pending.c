/*
 * test_pending.c - asynchronous on_request verdicts (SLUICE_PENDING and
 * req_resume, sluice.h ABI 1.1) through the real binary, with the fixture
 * stage tests/fixtures/pending.c (its mode set per request by the x-pending
 * header): a verdict that comes from a state_incr completion lets the
 * request go upstream (CONTINUE) or answers it (RESPOND) without the
 * upstream; a second req_resume is refused; a stage that never answers
 * gets the client a 503 stage_timeout at the request's deadline; a client
 * that leaves while its request waits ends it (on_complete runs, sluice
 * stays healthy); PENDING outside on_request is a 500.
 */
#include "harness.h"
#include "itest_util.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN "pending-test-admin-token-0123456789"

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
    static char pipeline[512], extra[512];
    const char *fx =
        getenv("FIXTURES_DIR") ? getenv("FIXTURES_DIR") : "build/test-plugins";
    snprintf(pipeline, sizeof pipeline,
             "  - plugin: pending\n"
             "    path: \"%s/pending.so\"\n"
             "  - plugin: keyring\n"
             "    config: { keys_file: \"@KEYS_FILE@\" }\n"
             "  - plugin: sse\n",
             fx);
    snprintf(extra, sizeof extra, "admin:\n  token_file: \"%s\"\n",
             it_secret_file("admin.token", TOKEN "\n"));
    h_opts o = {.pipeline = pipeline, .extra = extra, .timeout_s = 2};
    h_start_all(&o);
}

static long chat_mode(const char *mode, long timeout_ms, h_resp *r)
{
    char hdr[64];
    snprintf(hdr, sizeof hdr, "x-pending: %s", mode);
    const char *hdrs[] = {hdr, NULL};
    h_request(h_sluice_port(), "POST", CHAT, hdrs, OK_BODY, strlen(OK_BODY),
              timeout_ms, r);
    return r->status;
}

static long completes(void)
{
    const char *hdrs[] = {"Authorization: Bearer " TOKEN, NULL};
    h_resp r;
    h_request(h_sluice_port(), "GET", "/admin/plugins/pending/count", hdrs,
              NULL, 0, 10000, &r);
    ck_assert_int_eq(r.status, 200);
    json_t *doc = h_resp_json(&r);
    long n = (long)json_integer_value(json_object_get(doc, "completes"));
    json_decref(doc);
    h_resp_free(&r);
    return n;
}

/* on_complete runs after the answer: wait (bounded) for the count */
static void completes_reach(long n)
{
    double until = h_now_ms() + 20000;
    long seen;
    while ((seen = completes()) < n && h_now_ms() < until)
        h_sleep_ms(20);
    ck_assert_msg(seen == n, "%ld on_complete calls, want %ld", seen, n);
}

START_TEST(verdict_after_the_wait)
{
    start();
    h_resp r;
    ck_assert_int_eq(chat_mode("continue", 10000, &r), 200);
    ck_assert_int_eq(h_mock_request_count(), 1);
    h_resp_free(&r);

    ck_assert_int_eq(chat_mode("respond", 10000, &r), 418);
    it_assert_error(&r, 418, "pending_said_no", "RESPOND after the wait");
    ck_assert_int_eq(h_mock_request_count(), 1); /* never sent upstream */
    h_resp_free(&r);

    ck_assert_int_eq(chat_mode("twice", 10000, &r), 200);
    ck_assert_str_eq(h_resp_header(&r, "x-pending-second"), "refused");
    ck_assert_int_eq(h_mock_request_count(), 2);
    h_resp_free(&r);

    /* no waiting stage: as before */
    ck_assert_int_eq(chat_mode("none", 10000, &r), 200);
    h_resp_free(&r);
    completes_reach(4);
}
END_TEST

START_TEST(no_verdict_ends_at_the_deadline)
{
    start();
    h_resp r;
    /* upstream.timeout_s: 2 is the request's time budget */
    ck_assert_int_eq(chat_mode("never", 20000, &r), 503);
    it_assert_error(&r, 503, "stage_timeout", "no verdict");
    h_resp_free(&r);
    ck_assert_int_eq(h_mock_request_count(), 0);

    /* a client that leaves while its request waits */
    chat_mode("never", 300, &r);
    ck_assert_int_eq(r.status, 0);
    h_resp_free(&r);
    completes_reach(2);

    /* PENDING where it is not valid */
    ck_assert_int_eq(chat_mode("attempt", 10000, &r), 500);
    it_assert_error(&r, 500, "stage_error", "PENDING in on_attempt");
    h_resp_free(&r);
    ck_assert_int_eq(h_mock_request_count(), 0);
    ck_assert_int_eq(chat_mode("continue", 10000, &r), 200);
    h_resp_free(&r);
    completes_reach(4);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pending");
    TCase *tc = tcase_create("pending");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, verdict_after_the_wait);
    tcase_add_test(tc, no_verdict_ends_at_the_deadline);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
