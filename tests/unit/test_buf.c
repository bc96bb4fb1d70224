/*
 * test_buf.c - the growable buffer's text helpers that replace printf on
 * the request path: decimal numbers exactly as printf writes them, JSON
 * string escaping (quotes, backslashes, control bytes; UTF-8 and DEL left
 * as they are), literals appended with their compile-time length.
 */
#include "buf.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_int_text_as_printf)
{
    const long long v[] = {0,         1,         -1,       9,     10,
                           -10,       200,       499,      65535, -2147483648LL,
                           1LL << 40, LLONG_MAX, LLONG_MIN};
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        char want[32], out[BUF_INT_TEXT];
        snprintf(want, sizeof want, "%lld", v[i]);
        ck_assert_str_eq(buf_int_text(out, v[i]), want);
    }
    buf_t b;
    buf_init(&b);
    buf_append_ull(&b, 0);
    buf_lit(&b, ",");
    buf_append_ull(&b, ULLONG_MAX);
    ck_assert_str_eq(b.data, "0,18446744073709551615");
    buf_release(&b);
}
END_TEST

START_TEST(test_json_str)
{
    buf_t b;
    buf_init(&b);
    buf_json_str(&b, "plain");
    buf_json_str(&b, "a\"b\\c\nd\re\tf\x01g\x1fh\x7f");
    buf_json_str(&b, "caf\xc3\xa9");
    buf_json_str(&b, NULL);
    buf_json_str(&b, "");
    ck_assert_str_eq(b.data, "\"plain\""
                             "\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u001fh\x7f\""
                             "\"caf\xc3\xa9\""
                             "null"
                             "\"\"");
    buf_release(&b);
    /* a long string with escapes spread over it, growing the buffer */
    char s[5000];
    for (int i = 0; i < 4999; i++)
        s[i] = i % 97 == 0 ? '"' : (char)('a' + i % 26);
    s[4999] = '\0';
    buf_init(&b);
    buf_json_str(&b, s);
    size_t quotes = 0;
    for (int i = 0; i < 4999; i++)
        quotes += s[i] == '"';
    ck_assert_uint_eq(b.len, 4999 + quotes + 2);
    ck_assert_uint_eq(strlen(b.data), b.len);
    buf_release(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("buf");
    TCase *tc = tcase_create("buf");
    tcase_add_test(tc, test_int_text_as_printf);
    tcase_add_test(tc, test_json_str);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
