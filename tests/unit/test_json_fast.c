/*
 * test_json_fast.c - the fast body parser (core/json_fast.c) against
 * jansson's json_loadb: for every input, both accept and build equal trees,
 * or both refuse. Inputs: hand-written edge cases, every line of the test
 * data files (real chat bodies in many scripts), every prefix of some of
 * them, and single-byte mutations of them.
 */
#include "json_fast.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MUTATIONS_PER_DOC 24
#define MAX_LINES         200

static int checked;

/* Both parsers on the same bytes; fails the test on any disagreement. */
static void same(const char *buf, size_t len, size_t flags)
{
    json_error_t e1, e2;
    json_t *a = json_loadb(buf, len, flags, &e1);
    json_t *b = json_fast_loadb(buf, len, flags, &e2);
    checked++;
    if (!a || !b) {
        ck_assert_msg(!a && !b,
                      "disagree on %.*s%s: jansson %s (%s), fast %s (%s)",
                      (int)(len > 200 ? 200 : len), buf, len > 200 ? "..." : "",
                      a ? "accepts" : "refuses", a ? "" : e1.text,
                      b ? "accepts" : "refuses", b ? "" : e2.text);
        ck_assert(e2.text[0] != '\0');
    } else {
        ck_assert_msg(json_equal(a, b), "different trees for %.*s",
                      (int)(len > 200 ? 200 : len), buf);
        /* same key order too: dumps are identical */
        char *da = json_dumps(a, JSON_COMPACT),
             *db = json_dumps(b, JSON_COMPACT);
        ck_assert_str_eq(da, db);
        free(da);
        free(db);
    }
    json_decref(a);
    json_decref(b);
}

static void same_s(const char *s)
{
    same(s, strlen(s), JSON_REJECT_DUPLICATES);
    same(s, strlen(s), 0);
}

START_TEST(test_edge_cases)
{
    static const char *const cases[] = {
        "{}",
        "[]",
        " \t\r\n{ } \n",
        "[1,2,3]",
        "{\"a\":1}",
        "{\"a\":{}}",
        "[[],[[]],{}]",
        "{\"model\":\"gpt\",\"stream\":true,\"n\":null}",
        "[true,false,null]",
        "[tru]",
        "[nul]",
        "[falsey]",
        "[True]",
        /* numbers */
        "[0]",
        "[-0]",
        "[01]",
        "[-]",
        "[1.]",
        "[.5]",
        "[1.5]",
        "[-1.5e3]",
        "[1e]",
        "[1e+]",
        "[1E-2]",
        "[2e308]",
        "[-2e308]",
        "[1e-400]",
        "[123456789012345678]",
        "[1234567890123456789]",
        "[9223372036854775807]",
        "[9223372036854775808]",
        "[-9223372036854775808]",
        "[-9223372036854775809]",
        "[99999999999999999999999999]",
        "[0.1,0.2,3.14159265358979]",
        "[1 2]",
        "[1,]",
        "[,1]",
        "[+1]",
        "[0x10]",
        "[1.0e+10]",
        /* strings and escapes */
        "[\"\"]",
        "[\"a\\\"b\"]",
        "[\"\\\\\\/\\b\\f\\n\\r\\t\"]",
        "[\"\\u0041\\u00e9\\u20ac\"]",
        "[\"\\ud83d\\ude00\"]",
        "[\"\\ud83d\"]",
        "[\"\\ude00\"]",
        "[\"\\ud83dx\"]",
        "[\"\\ud83d\\u0041\"]",
        "[\"\\u0000\"]",
        "[\"\\u00\"]",
        "[\"\\uZZZZ\"]",
        "[\"\\x\"]",
        "[\"\\\"]",
        "[\"abc]",
        "[\"a\tb\"]",
        "[\"a\nb\"]",
        "[\"\x7f\"]",
        "[\"caf\xc3\xa9\"]",
        "[\"\xe2\x82\xac \xf0\x9f\x98\x80\"]",
        "[\"\xc3\"]",
        "[\"\xc0\xaf\"]",
        "[\"\xe0\x80\xaf\"]",
        "[\"\xed\xa0\x80\"]",
        "[\"\xf4\x90\x80\x80\"]",
        "[\"\xf5\x80\x80\x80\"]",
        "[\"\xff\"]",
        "[\"\x80\"]",
        "[\"\xe2\x82\"]",
        "[\"a\\u00e9\\n\xc3\xa9\"]",
        /* objects */
        "{\"a\":1,\"a\":2}",
        "{\"a\":1,\"b\":2,\"a\":3}",
        "{\"a\" : 1 }",
        "{\"a\"1}",
        "{\"a\":}",
        "{\"a\":1,}",
        "{,}",
        "{1:2}",
        "{\"a\":1",
        "{\"\\u0061\":1,\"a\":2}",
        /* duplicates: unescaped keys compared among themselves, escaped
         * ones and the ninth on through jansson */
        "{\"a\":1,\"\\u0061\":2}",
        "{\"a\":1,\"\\u0062\":2,\"b\":3}",
        "{\"ab\":1,\"a\":2,\"abc\":3,\"\":4}",
        "{\"\":0,\"\":1}",
        "{\"a\":{\"a\":1},\"b\":{\"a\":2}}",
        "{\"a\":{\"a\":1},\"a\":2}",
        "{\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,"
        "\"k8\":8,\"k9\":9,\"k10\":10}",
        "{\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,"
        "\"k8\":8,\"k1\":9}",
        "{\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,"
        "\"k8\":8,\"k9\":9,\"k2\":10}",
        "{\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,"
        "\"k8\":8,\"k9\":9,\"k10\":10,\"k9\":11}",
        "{\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,"
        "\"k7\":8}",
        "{\"k\\n\":{\"k\\n\":[\"v\\n\"]}}",
        "{\"\":0}",
        "{\"a\":[1,{\"b\":[2,{\"c\":3}]}]}",
        /* top level and trailing bytes */
        "",
        " ",
        "1",
        "\"s\"",
        "null",
        "{} {}",
        "{}x",
        "[] ]",
        "{}\n\n",
        "[",
        "{",
        "]",
        "}",
        "{\"a\":1}}",
        "[1]]",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        same_s(cases[i]);
    /* an embedded NUL byte, inside and after a value */
    same("[\"a\0b\"]", 7, 0);
    same("{}\0", 3, 0);
    same("[1,\0]", 5, 0);
}
END_TEST

START_TEST(test_depth)
{
    size_t n = JSON_PARSER_MAX_DEPTH + 2;
    char *s = malloc(2 * n + 2);
    ck_assert_ptr_nonnull(s);
    for (size_t depth = JSON_PARSER_MAX_DEPTH - 1;
         depth <= JSON_PARSER_MAX_DEPTH + 1; depth++) {
        memset(s, '[', depth);
        memset(s + depth, ']', depth);
        same(s, 2 * depth, 0);
        /* the same with a scalar at the bottom */
        memset(s, '[', depth);
        s[depth] = '1';
        memset(s + depth + 1, ']', depth);
        same(s, 2 * depth + 1, 0);
    }
    free(s);
}
END_TEST

/* Each line of a test data file, whole, then its fields as documents. */
static char **read_lines(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    char **v = calloc(MAX_LINES, sizeof *v);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    *n = 0;
    ck_assert_msg(f != NULL, "cannot open %s", path);
    while (*n < MAX_LINES && (len = getline(&line, &cap, f)) > 0) {
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        v[(*n)++] = strdup(line);
    }
    free(line);
    fclose(f);
    return v;
}

static void free_lines(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void corpus(const char *path, size_t prefix_docs)
{
    size_t n;
    char **lines = read_lines(path, &n);
    unsigned seed = 12345;
    ck_assert_uint_gt(n, 0);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(lines[i]);
        same(lines[i], len, JSON_REJECT_DUPLICATES);
        /* the chat body inside, if any, re-serialised by jansson */
        json_t *doc = json_loads(lines[i], 0, NULL);
        json_t *req = json_object_get(doc, "request");
        if (req) {
            char *body = json_dumps(req, JSON_COMPACT);
            same(body, strlen(body), JSON_REJECT_DUPLICATES);
            char *pretty = json_dumps(req, JSON_INDENT(2) | JSON_ENSURE_ASCII);
            same(pretty, strlen(pretty), JSON_REJECT_DUPLICATES);
            free(body);
            free(pretty);
        }
        json_decref(doc);
        if (i < prefix_docs) /* truncations: every point early on */
            for (size_t k = 0; k < len; k += k < 1500 ? 1 : 37)
                same(lines[i], k, 0);
        char *m = malloc(len + 1);
        for (int r = 0; r < MUTATIONS_PER_DOC && len; r++) {
            memcpy(m, lines[i], len + 1);
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % len;
            static const char bytes[] = "\"\\{}[],:0 -eu\x01\x80\xc3\xff";
            seed = seed * 1103515245u + 12345u;
            m[at] = bytes[(seed >> 8) % (sizeof bytes - 1)];
            same(m, len, JSON_REJECT_DUPLICATES);
        }
        free(m);
    }
    free_lines(lines, n);
}

START_TEST(test_chat_cases)
{
    corpus("tests/data/chat-token-cases.jsonl", 3);
}
END_TEST

START_TEST(test_token_corpus)
{
    corpus("tests/data/token-corpus.jsonl", 1);
}
END_TEST

START_TEST(test_error_position)
{
    json_error_t e;
    const char *s = "{\"a\":1,\n \"b\":x}";
    ck_assert_ptr_null(json_fast_loadb(s, strlen(s), 0, &e));
    ck_assert_int_eq(e.line, 2);
    ck_assert_int_eq(e.column, 5);
    ck_assert_int_eq(e.position, 13);
    ck_assert_ptr_null(json_fast_loadb(NULL, 0, 0, &e));
    ck_assert_ptr_null(json_fast_loadb("[", 1, 0, NULL));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("json_fast");
    TCase *tc = tcase_create("same_as_jansson");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_edge_cases);
    tcase_add_test(tc, test_depth);
    tcase_add_test(tc, test_chat_cases);
    tcase_add_test(tc, test_token_corpus);
    tcase_add_test(tc, test_error_position);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    printf("json_fast: %d inputs compared with jansson\n", checked);
    return failed ? 1 : 0;
}
