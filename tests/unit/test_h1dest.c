/*
 * test_h1dest.c - core/h1client.c's h1_dest_parse: which upstream URLs
 * sluice's own HTTP client takes (http:// to an IPv4 or bracketed IPv6
 * address, or localhost, with an optional port) and which it leaves to
 * libcurl (https://, host names, user info, bad ports), with the address,
 * port, Host value and request target it derives.
 */
#include "h1client.h"

#include <arpa/inet.h>
#include <check.h>
#include <stdlib.h>
#include <string.h>

START_TEST(ipv4_with_port_and_path)
{
    struct h1dest d;
    const char *t = NULL;
    ck_assert_int_eq(
        h1_dest_parse("http://127.0.0.1:9100/v1/chat/completions", &d, &t), 1);
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)&d.addr;
    ck_assert_int_eq(s4->sin_family, AF_INET);
    ck_assert_int_eq(ntohs(s4->sin_port), 9100);
    ck_assert_uint_eq(s4->sin_addr.s_addr, htonl(0x7f000001));
    ck_assert_int_eq(d.alen, sizeof(struct sockaddr_in));
    ck_assert_str_eq(d.host, "127.0.0.1:9100");
    ck_assert_str_eq(t, "/v1/chat/completions");
}
END_TEST

START_TEST(default_port_scheme_case_and_query)
{
    struct h1dest d;
    const char *t = NULL;
    ck_assert_int_eq(h1_dest_parse("HTTP://10.1.2.3?api-version=1", &d, &t), 1);
    ck_assert_int_eq(d.port, 80);
    ck_assert_str_eq(d.host, "10.1.2.3");
    ck_assert_str_eq(t, "?api-version=1"); /* h1_start adds the "/" */
    ck_assert_int_eq(h1_dest_parse("http://10.1.2.3", &d, &t), 1);
    ck_assert_str_eq(t, "");
}
END_TEST

START_TEST(localhost_is_the_loopback_address)
{
    struct h1dest d;
    const char *t = NULL;
    ck_assert_int_eq(h1_dest_parse("http://LocalHost:8000/v1", &d, &t), 1);
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)&d.addr;
    ck_assert_uint_eq(s4->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    ck_assert_str_eq(d.host, "LocalHost:8000");
    ck_assert_str_eq(t, "/v1");
}
END_TEST

START_TEST(ipv6_in_brackets)
{
    struct h1dest d;
    const char *t = NULL;
    ck_assert_int_eq(h1_dest_parse("http://[::1]:8080/v1", &d, &t), 1);
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&d.addr;
    ck_assert_int_eq(s6->sin6_family, AF_INET6);
    ck_assert_int_eq(ntohs(s6->sin6_port), 8080);
    ck_assert_int_eq(s6->sin6_addr.s6_addr[15], 1);
    ck_assert_str_eq(d.host, "[::1]:8080");
    ck_assert_int_eq(h1_dest_parse("http://[::1]/v1", &d, &t), 1);
    ck_assert_int_eq(d.port, 80);
}
END_TEST

/* everything else stays with libcurl */
START_TEST(left_to_libcurl)
{
    static const char *const urls[] = {
        "https://127.0.0.1/v1",        /* TLS */
        "http://api.example.com/v1",   /* a name to resolve */
        "http://user:pw@127.0.0.1/v1", /* user info */
        "http://127.0.0.1:0/v1",       /* port out of range */
        "http://127.0.0.1:65536/v1",
        "http://127.0.0.1:80a/v1",
        "http://127.0.0.1:/v1", /* empty port */
        "http://[::1/v1",       /* no closing bracket */
        "http://[::1]x/v1",
        "http://[nothex]/v1",
        "http:///v1", /* no host */
        "http://256.1.1.1/v1",
        "ftp://127.0.0.1/",
        "",
    };
    for (size_t i = 0; i < sizeof urls / sizeof *urls; i++) {
        struct h1dest d;
        const char *t = NULL;
        ck_assert_msg(h1_dest_parse(urls[i], &d, &t) == 0, "took %s", urls[i]);
    }
}
END_TEST

START_TEST(long_authority_is_refused)
{
    char url[600] = "http://";
    memset(url + 7, '1', 400);
    strcpy(url + 407, "/v1");
    struct h1dest d;
    const char *t = NULL;
    ck_assert_int_eq(h1_dest_parse(url, &d, &t), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("h1dest");
    TCase *tc = tcase_create("h1dest");
    tcase_add_test(tc, ipv4_with_port_and_path);
    tcase_add_test(tc, default_port_scheme_case_and_query);
    tcase_add_test(tc, localhost_is_the_loopback_address);
    tcase_add_test(tc, ipv6_in_brackets);
    tcase_add_test(tc, left_to_libcurl);
    tcase_add_test(tc, long_authority_is_refused);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
