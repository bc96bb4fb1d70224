/*
 * test_scrub.c - core/scrub.c: an attempt's credentials shortened out of a
 * body, every occurrence, nothing else touched.
 */
#include "scrub.h"

#include <check.h>
#include <string.h>

START_TEST(value_every_occurrence)
{
    char s[] = "key sk-abcdef123456 and again sk-abcdef123456.";
    size_t n = scrub_value(s, strlen(s), "sk-abcdef123456");
    ck_assert_str_eq(s, "key \xe2\x80\xa6"
                        "3456 and again \xe2\x80\xa6"
                        "3456.");
    ck_assert_uint_eq(n, strlen(s));
    /* short secrets are not scrubbed (ordinary words) */
    char t[] = "a short one";
    ck_assert_uint_eq(scrub_value(t, strlen(t), "short"), strlen(t));
    ck_assert_str_eq(t, "a short one");
}
END_TEST

START_TEST(credentials_from_headers)
{
    struct hdrs h = {0};
    hdrs_set(&h, "Authorization", "Bearer tok-0123456789");
    hdrs_set(&h, "x-api-key", "anthropic-key-99999");
    hdrs_set(&h, "Content-Type", "application/json-long-value");
    char s[] = "{\"m\":\"tok-0123456789 anthropic-key-99999 "
               "application/json-long-value Bearer\"}";
    size_t n = scrub_credentials(s, strlen(s), &h);
    ck_assert_str_eq(s, "{\"m\":\"\xe2\x80\xa6"
                        "6789 \xe2\x80\xa6"
                        "9999 application/json-long-value Bearer\"}");
    ck_assert_uint_eq(n, strlen(s));
    hdrs_free(&h);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("scrub");
    TCase *tc = tcase_create("scrub");
    tcase_add_test(tc, value_every_occurrence);
    tcase_add_test(tc, credentials_from_headers);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
