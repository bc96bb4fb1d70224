/*
 * test_loop_faults.c - the core's failure paths that a healthy machine never
 * takes, forced through the SLUICE_FAULTS test hooks (core/fault.h) of the
 * real binary: no memory for a request's timers, an upstream socket the
 * event loop cannot watch (epoll_ctl ADD, MOD), and a stage's upstream
 * header longer than the core sends. Each request ends with a clear
 * OpenAI-shaped error, and the next request on the same server succeeds
 * (a failure costs one request, never the worker).
 */
#include "itest_util.h"

static void setup(void)
{
    h_tmpdir();
}

static void teardown(void)
{
    h_teardown();
    unsetenv("SLUICE_FAULTS");
}

/* Start sluice (inheriting SLUICE_FAULTS=faults) and the mock. */
static void start_with_faults(const char *faults, const char *keys)
{
    h_opts o;
    memset(&o, 0, sizeof o);
    o.keys = keys;
    setenv("SLUICE_FAULTS", faults, 1);
    h_start_all(&o);
}

/* With `faults` set, one request gets status/code; the mock saw `seen`
 * requests (-1: 0 or 1, the request may have been written before the
 * fault, and the mock may record it late); the next request succeeds. */
static void fault_then_ok(const char *faults, const char *body, long status,
                          const char *code, int seen)
{
    start_with_faults(faults, NULL);
    h_resp r;
    h_post_json(CHAT, body, &r);
    it_assert_error(&r, status, code, faults);
    h_resp_free(&r);
    if (seen >= 0)
        it_assert_mock_saw(seen, faults);
    /* the next request is served normally, and reaches the mock */
    h_post_json(CHAT, OK_BODY, &r);
    ck_assert_msg(r.status == 200, "%s: the next request: %ld %s", faults,
                  r.status, it_show(&r));
    h_resp_free(&r);
    int n = h_mock_request_count();
    ck_assert_msg(seen >= 0 ? n == seen + 1 : n == 1 || n == 2,
                  "%s: the mock saw %d", faults, n);
}

#define STREAM_BODY                                                            \
    "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":"                 \
    "[{\"role\":\"user\",\"content\":\"hi\"}]}"

START_TEST(test_timer_reserve_fails)
{
    fault_then_ok("timer_reserve:1", OK_BODY, 503, "server_overloaded", 0);
}
END_TEST

/* the socket was never watched: no request reached the mock */
START_TEST(test_epoll_add_fails)
{
    fault_then_ok("epoll_add:1", OK_BODY, 502, "upstream_error", 0);
}
END_TEST

START_TEST(test_epoll_mod_fails)
{
    fault_then_ok("epoll_mod:1", OK_BODY, 502, "upstream_error", -1);
}
END_TEST

/* before the stream was committed: a plain error answer */
START_TEST(test_epoll_mod_fails_stream)
{
    fault_then_ok("epoll_mod:1", STREAM_BODY, 502, "upstream_error", -1);
}
END_TEST

START_TEST(test_header_too_long)
{
    /* the keyring stage sends its key as Authorization: Bearer <key> */
    enum { N = 9000 };
    char *keys = malloc(N + 16);
    memset(keys, 'k', N);
    memcpy(keys, "sk-long-", 8);
    memcpy(keys + N, "\n", 2);
    start_with_faults("", keys);
    h_resp r;
    h_post_json(CHAT, OK_BODY, &r);
    it_assert_error(&r, 500, "upstream_header_too_long", "long header");
    ck_assert_msg(strstr(r.body, "Authorization") != NULL, "%s", it_show(&r));
    ck_assert_msg(strstr(r.body, "kkkkkkkk") == NULL,
                  "the key leaked into the answer");
    h_resp_free(&r);
    it_assert_mock_saw(0, "long header");
    free(keys);
}
END_TEST

int main(void)
{
#ifndef SLUICE_FAULT_HOOKS
    printf("SKIP: sluice was built without SLUICE_FAULT_HOOKS\n");
    return 77;
#endif
    Suite *s = suite_create("faults");
    TCase *tc = tcase_create("faults");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_timer_reserve_fails);
    tcase_add_test(tc, test_epoll_add_fails);
    tcase_add_test(tc, test_epoll_mod_fails);
    tcase_add_test(tc, test_epoll_mod_fails_stream);
    tcase_add_test(tc, test_header_too_long);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
