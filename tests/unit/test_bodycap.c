/*
 * test_bodycap.c - core/bodycap.c and the parse budget of json_fast /
 * reqbody: per-request budget, the total cap, accounting back to zero.
 */
#include "bodycap.h"
#include "json_fast.h"
#include "reqbody.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(budget_stops_a_complex_body)
{
    /* 20,000 empty objects: ~60 KB of body, far more of tree */
    size_t n = 20000;
    char *b = malloc(n * 3 + 16), *p = b;
    ck_assert_ptr_nonnull(b);
    p += sprintf(p, "{\"x\":[");
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s{}", i ? "," : "");
    p += sprintf(p, "]}");
    size_t len = (size_t)(p - b), used = 0;
    json_t *out;
    struct reqbody_error e;
    ck_assert_int_eq(
        reqbody_parse_budget(b, len, len * BODYCAP_RATIO, &used, &out, &e), -1);
    ck_assert_str_eq(e.code, "request_too_complex");
    ck_assert_ptr_null(out);
    ck_assert_uint_gt(used, len * BODYCAP_RATIO);
    /* without a budget it parses, and says what it took */
    json_error_t je;
    json_t *v = json_fast_loadb_budget(b, len, 0, (size_t)-1, &used, &je);
    ck_assert_ptr_nonnull(v);
    ck_assert_uint_gt(used, len * BODYCAP_RATIO);
    json_decref(v);
    free(b);
    /* an ordinary chat body is well within it */
    static const char chat[] = "{\"model\":\"m\",\"messages\":[{\"role\":"
                               "\"user\",\"content\":\"Hello, "
                               "how are you today?\"}],\"max_tokens\":16}";
    ck_assert_int_eq(reqbody_parse_budget(chat, sizeof chat - 1,
                                          (sizeof chat - 1) * BODYCAP_RATIO,
                                          &used, &out, &e),
                     0);
    ck_assert_uint_lt(used, (sizeof chat - 1) * BODYCAP_RATIO);
    json_decref(out);
}
END_TEST

START_TEST(total_cap_and_release)
{
    size_t one = 16u << 20; /* 16 MiB bodies: each reserves the whole cap's
                              share of 24 x 8 MiB, capped at the total */
    size_t r1 = bodycap_reserve(one);
    ck_assert_uint_eq(r1, BODYCAP_TOTAL);
    ck_assert_uint_eq(bodycap_reserve(1024), 0); /* spent */
    bodycap_settle(r1, 1000);                    /* kept 1000 */
    size_t r2 = bodycap_reserve(1024);
    ck_assert_uint_eq(r2, 1024 * BODYCAP_RATIO + BODYCAP_SLACK);
    bodycap_settle(r2, 0);
    bodycap_release(1000, one); /* back to zero (and a trim) */
    ck_assert_uint_eq(bodycap_reserve(one), BODYCAP_TOTAL);
    bodycap_settle(BODYCAP_TOTAL, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("bodycap");
    TCase *tc = tcase_create("bodycap");
    tcase_add_test(tc, budget_stops_a_complex_body);
    tcase_add_test(tc, total_cap_and_release);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
