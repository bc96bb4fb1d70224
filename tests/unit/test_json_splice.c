/*
 * test_json_splice.c - core/json_splice.c: the top-level "model" found in
 * real bodies whatever comes before it (nested "model" members, strings
 * that contain "model": text, escaped quotes and backslashes, a key
 * written with escapes, whitespace everywhere), and the spliced text
 * parsing to exactly the original tree with only model changed, for new
 * names that need escaping (quotes, backslashes, control bytes, UTF-8,
 * "</script>", an empty name). Texts the scanner cannot read say so.
 */
#include "json_splice.h"

#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const char *const bodies[] = {
    "{\"model\":\"gpt-oss\",\"messages\":[]}",
    " \n{ \"model\" :\t\"gpt-oss\" ,\"messages\":[] }\n",
    "{\"messages\":[{\"role\":\"user\",\"content\":\"{\\\"model\\\":\\\"x\\\"}"
    "\"}],\"model\":\"gpt-oss\"}",
    "{\"metadata\":{\"model\":\"nested\",\"a\":[1,{\"model\":2}]},"
    "\"model\":\"gpt-oss\",\"stream\":false}",
    "{\"mod\\u0065l\":\"gpt-oss\",\"n\":1}",
    "{\"models\":\"no\",\"mode\":\"no\",\"model\":\"gpt-oss\"}",
    "{\"a\":\"back\\\\\",\"b\":\"\\\"quoted\\\" ]}\",\"model\":\"gpt-oss\"}",
    "{\"x\":-1.5e+3,\"y\":true,\"z\":null,\"w\":[],\"model\":\"gpt-oss\"}",
    "{\"model\":\"caf\\u00e9 \\\"q\\\" \\\\ \\/\",\"messages\":[]}",
    "{\"\\u006d\\u006f\\u0064\\u0065\\u006c\":\"gpt-oss\"}",
    "{\"\\u00e9model\":1,\"model\":\"gpt-oss\"}",
};

static const char *const names[] = {"openai/gpt-oss-120b",
                                    "llama3.1:8b",
                                    "with \"quotes\" and \\ back",
                                    "tab\tnew\nline\x01",
                                    "caf\xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x98\x80",
                                    "</script>",
                                    "",
                                    "u\\u0000 literal"};

START_TEST(splice_keeps_everything_but_model)
{
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        const char *b = bodies[i];
        size_t len = strlen(b), off, vlen;
        json_t *orig = json_loadb(b, len, JSON_REJECT_DUPLICATES, NULL);
        ck_assert_msg(orig, "body %zu is not JSON", i);
        ck_assert_msg(json_member_span(b, len, "model", &off, &vlen) == 1,
                      "model not found in body %zu", i);
        ck_assert_int_eq(b[off], '"');
        ck_assert_int_eq(b[off + vlen - 1], '"');
        for (size_t j = 0; j < sizeof names / sizeof *names; j++) {
            buf_t out;
            buf_init(&out);
            ck_assert_int_eq(json_splice_str(b, len, off, vlen, names[j], &out),
                             0);
            json_error_t e;
            json_t *got =
                json_loadb(out.data, out.len, JSON_REJECT_DUPLICATES, &e);
            ck_assert_msg(got, "body %zu name %zu: %s in %.*s", i, j, e.text,
                          (int)out.len, out.data);
            json_t *want = json_deep_copy(orig);
            json_object_set_new(want, "model", json_string(names[j]));
            ck_assert_msg(json_equal(got, want), "body %zu name %zu: %.*s", i,
                          j, (int)out.len, out.data);
            /* the rest byte for byte */
            ck_assert_int_eq(memcmp(out.data, b, off), 0);
            size_t tail = len - off - vlen;
            ck_assert_int_eq(
                memcmp(out.data + out.len - tail, b + off + vlen, tail), 0);
            json_decref(got);
            json_decref(want);
            buf_release(&out);
        }
        json_decref(orig);
    }
}
END_TEST

START_TEST(absent_and_unreadable)
{
    size_t off = 99, vlen = 99;
    const char *absent[] = {"{}", " { } ", "{\"m\":{\"model\":\"x\"}}",
                            "{\"modelx\":\"x\",\"xmodel\":1}",
                            "{\"mode\\u006c\\u0073\":\"x\"}"};
    for (size_t i = 0; i < sizeof absent / sizeof *absent; i++)
        ck_assert_msg(json_member_span(absent[i], strlen(absent[i]), "model",
                                       &off, &vlen) == 0,
                      "%s", absent[i]);
    const char *bad[] = {"",
                         "[\"model\",\"x\"]",
                         "{\"model\"",
                         "{\"model\":",
                         "{\"model\":\"x",
                         "{\"model\":\"x\"",
                         "{\"a\":1 \"model\":\"x\"}",
                         "{\"mod\\u00",
                         "{model:\"x\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(json_member_span(bad[i], strlen(bad[i]), "model", &off,
                                       &vlen) == -1,
                      "%s", bad[i]);
    /* a length that cuts the text short is honoured */
    const char *b = "{\"model\":\"gpt\"}";
    ck_assert_int_eq(json_member_span(b, 10, "model", &off, &vlen), -1);
    /* a non-string value is found; the caller checks its first byte */
    ck_assert_int_eq(
        json_member_span("{\"model\":12}", 12, "model", &off, &vlen), 1);
    ck_assert_int_eq(off, 9);
    ck_assert_int_eq(vlen, 2);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("json_splice");
    TCase *tc = tcase_create("json_splice");
    tcase_add_test(tc, splice_keeps_everything_but_model);
    tcase_add_test(tc, absent_and_unreadable);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
