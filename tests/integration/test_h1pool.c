/*
 * test_h1pool.c - the connection pool of sluice's own HTTP/1.1 client
 * (core/h1client.c), through the real binary and the mock upstream, which
 * records the TCP connection each request came on (conn_id):
 *   - sequential requests share one upstream connection;
 *   - an answer with "Connection: close" is not followed by a reuse of its
 *     connection: the next request opens a new one, without the resend a
 *     reuse of a closed connection would cost (x-sluice-attempts stays 1);
 *   - a connection idle longer than upstream.keepalive_s is not reused;
 *   - upstream.client: curl keeps the same behaviour through libcurl.
 */
#include "itest_util.h"

#include <jansson.h>

static void setup(void)
{
    h_tmpdir();
}

static void teardown(void)
{
    h_teardown();
}

/* One chat request: 200 and one attempt. */
static void chat_ok(const char *what)
{
    h_resp r;
    h_post_json(CHAT, OK_BODY, &r);
    const char *a = h_resp_header(&r, "x-sluice-attempts");
    ck_assert_msg(r.status == 200, "%s: status %ld %s", what, r.status,
                  it_show(&r));
    ck_assert_msg(a && !strcmp(a, "1"), "%s: x-sluice-attempts %s", what,
                  a ? a : "(none)");
    h_resp_free(&r);
}

/* The conn_id of every request the mock saw, in order; returns how many. */
static int mock_conns(long long *ids, int max)
{
    json_t *reqs = h_mock_requests();
    int n = 0;
    for (size_t i = 0; i < json_array_size(reqs) && n < max; i++)
        ids[n++] = json_integer_value(
            json_object_get(json_array_get(reqs, i), "conn_id"));
    json_decref(reqs);
    return n;
}

static void start(const char *client, const char *keepalive)
{
    static char extra[128];
    h_opts o;
    memset(&o, 0, sizeof o);
    o.threads = 1; /* one worker: one pool */
    snprintf(extra, sizeof extra, "  client: %s\n%s", client,
             keepalive ? keepalive : "");
    o.upstream_extra = extra;
    h_start_all(&o);
}

static void reuse_and_connection_close(const char *client)
{
    long long c[4];
    start(client, NULL);
    chat_ok("first");
    chat_ok("second");
    /* the third answer says Connection: close */
    ck_assert_int_eq(h_mock_script("{\"rules\":[{\"times\":1,\"headers\":"
                                   "{\"Connection\":\"close\"}}]}"),
                     0);
    chat_ok("third (Connection: close)");
    chat_ok("fourth");
    ck_assert_int_eq(mock_conns(c, 4), 4);
    ck_assert_msg(c[0] == c[1],
                  "%s: the second request opened connection "
                  "%lld (first: %lld)",
                  client, c[1], c[0]);
    ck_assert_msg(c[2] == c[1], "%s: the third request opened a connection",
                  client);
    ck_assert_msg(c[3] != c[2],
                  "%s: the connection the upstream closed was reused", client);
}

START_TEST(builtin_reuses_and_honours_connection_close)
{
    reuse_and_connection_close("auto");
}
END_TEST

START_TEST(curl_reuses_and_honours_connection_close)
{
    reuse_and_connection_close("curl");
}
END_TEST

/* keepalive_s: 1 -> a connection idle for 2.2 s is retired, not reused. */
static void retired_after_keepalive(const char *client)
{
    long long c[3];
    start(client, "  keepalive_s: 1\n");
    chat_ok("first");
    chat_ok("second");
    usleep(2200 * 1000); /* idle past keepalive_s (rounded up: 1 s) */
    chat_ok("after the idle time");
    ck_assert_int_eq(mock_conns(c, 3), 3);
    ck_assert_msg(c[0] == c[1], "%s: no reuse within keepalive_s", client);
    ck_assert_msg(c[2] != c[1],
                  "%s: a connection idle past keepalive_s was reused", client);
}

START_TEST(builtin_retires_idle_connections)
{
    retired_after_keepalive("auto");
}
END_TEST

START_TEST(curl_retires_idle_connections)
{
    retired_after_keepalive("curl");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("h1pool");
    TCase *tc = tcase_create("h1pool");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, builtin_reuses_and_honours_connection_close);
    tcase_add_test(tc, curl_reuses_and_honours_connection_close);
    tcase_add_test(tc, builtin_retires_idle_connections);
    tcase_add_test(tc, curl_retires_idle_connections);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
