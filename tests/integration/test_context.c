/*
 * test_context.c - the context stage in the real binary, on loopback with
 * the mock upstream: a request over the context of llama3-8b-instruct is
 * refused with context_length_exceeded and never reaches the upstream; one
 * just under the limit goes through unchanged; a request without a model
 * gets the default; /v1/models and /v1/models/{id}[/info] answer from the
 * stage's table (slash ids, unknown id 404); the estimate header rides on
 * every answer.
 */
#include "harness.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CHAT_PATH "/v1/chat/completions"

static const char PIPELINE[] = "  - plugin: context\n"
                               "  - plugin: keyring\n"
                               "    config: { keys_file: \"@KEYS_FILE@\" }\n"
                               "  - plugin: sse\n";

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
    h_opts o = {0};
    o.pipeline = PIPELINE;
    h_start_all(&o);
}

static const char *show(const h_resp *r)
{
    static char buf[700];
    size_t n = r->body_len < 600 ? r->body_len : 600;
    memcpy(buf, r->body ? r->body : "", n);
    buf[n] = '\0';
    return buf;
}

/* {"model":...,"messages":[{"role":"user","content":"hello world x reps"}]}
 * (model NULL: no model key). Caller frees. */
static char *words_body(const char *model, size_t reps)
{
    char *b = malloc(reps * 12 + 256), *p = b;
    ck_assert_ptr_nonnull(b);
    if (model)
        p += sprintf(p, "{\"model\": \"%s\", ", model);
    else
        p += sprintf(p, "{");
    p += sprintf(p, "\"messages\": [{\"role\": \"user\", \"content\": \"");
    for (size_t i = 0; i < reps; i++)
        p += sprintf(p, "hello world ");
    strcpy(p, "\"}], \"temperature\": 0.5}");
    return b;
}

static long post(const char *body, h_resp *r)
{
    h_request(h_sluice_port(), "POST", CHAT_PATH, NULL, body, strlen(body),
              20000, r);
    ck_assert_msg(r->curl_code == 0, "transfer failed: %s", r->error);
    return r->status;
}

static long estimate_header(const h_resp *r)
{
    const char *v = h_resp_header(r, "x-sluice-prompt-tokens-estimate");
    ck_assert_msg(v != NULL, "no x-sluice-prompt-tokens-estimate header");
    const char *m = h_resp_header(r, "x-sluice-prompt-tokens-method");
    ck_assert_msg(m && !strcmp(m, "estimate"), "method header %s",
                  m ? m : "(none)");
    return atol(v);
}

/* The estimate sluice gives `reps` repetitions (a model it passes on
 * unchecked; the mock answers). */
static long probe(size_t reps)
{
    char *b = words_body("probe/unknown-model", reps);
    h_resp r;
    ck_assert_int_eq(post(b, &r), 200);
    long e = estimate_header(&r);
    h_resp_free(&r);
    free(b);
    return e;
}

START_TEST(over_limit_is_refused_before_upstream)
{
    start();
    char *b = words_body("llama3-8b-instruct", 6000); /* ~12000 tokens */
    h_resp r;
    ck_assert_int_eq(post(b, &r), 400);
    json_t *doc = h_resp_json(&r);
    ck_assert_msg(doc != NULL, "not JSON: %s", show(&r));
    json_t *e = h_assert_openai_error(doc, "over limit");
    ck_assert_str_eq(json_string_value(json_object_get(e, "code")),
                     "context_length_exceeded");
    ck_assert_str_eq(json_string_value(json_object_get(e, "param")),
                     "messages");
    ck_assert_str_eq(json_string_value(json_object_get(e, "type")),
                     "invalid_request_error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    ck_assert_msg(strstr(msg, "llama3-8b-instruct") && strstr(msg, "8000") &&
                      strstr(msg, "qwen/qwen3-next-80b-a3b-instruct"),
                  "message: %s", msg);
    long est = estimate_header(&r);
    ck_assert_int_gt(est, 8800);
    char num[32];
    snprintf(num, sizeof num, "%ld", est);
    ck_assert_msg(strstr(msg, num), "estimate %s not in: %s", num, msg);
    json_decref(doc);
    h_resp_free(&r);
    free(b);
    ck_assert_int_eq(h_mock_request_count(), 0);
}
END_TEST

START_TEST(just_under_limit_goes_through_unchanged)
{
    start();
    /* calibrate on two probes: the estimate is linear in the repetitions */
    long e1 = probe(100), e2 = probe(1100);
    ck_assert_int_gt(e2, e1);
    double per = (double)(e2 - e1) / 1000.0;
    size_t reps = (size_t)((8000.0 - (double)e1) / per) + 100 - 5;
    ck_assert_int_eq(h_mock_reset(), 0);

    char *b = words_body("llama3-8b-instruct", reps);
    h_resp r;
    ck_assert_msg(post(b, &r) == 200, "status %ld: %s", r.status, show(&r));
    long est = estimate_header(&r);
    ck_assert_msg(est > 7900 && est <= 8000, "estimate %ld", est);
    h_resp_free(&r);

    json_t *reqs = h_mock_requests();
    ck_assert_msg(reqs && json_array_size(reqs) == 1, "mock saw %zu",
                  reqs ? json_array_size(reqs) : 0);
    size_t len;
    const char *seen = h_rec_body(json_array_get(reqs, 0), &len);
    ck_assert_msg(seen && len == strlen(b) && !memcmp(seen, b, len),
                  "the upstream body differs from the client's");
    json_decref(reqs);
    free(b);
}
END_TEST

/* No model and "model": null both take default_model (README). */
START_TEST(default_model_is_set)
{
    start();
    char *absent = words_body(NULL, 3);
    char *null_model = malloc(strlen(absent) + 16);
    ck_assert_ptr_nonnull(null_model);
    sprintf(null_model, "{\"model\": null, %s", absent + 1);
    const char *bodies[] = {absent, null_model};
    for (size_t i = 0; i < 2; i++) {
        const char *b = bodies[i];
        h_mock_reset();
        h_resp r;
        ck_assert_msg(post(b, &r) == 200, "%s: status %ld: %s", b, r.status,
                      show(&r));
        estimate_header(&r);
        h_resp_free(&r);
        json_t *reqs = h_mock_requests();
        ck_assert_msg(reqs && json_array_size(reqs) == 1,
                      "mock saw no request");
        size_t len;
        const char *seen = h_rec_body(json_array_get(reqs, 0), &len);
        json_t *got = json_loadb(seen, len, 0, NULL);
        json_t *sent = json_loads(absent, 0, NULL);
        ck_assert_ptr_nonnull(got);
        ck_assert_str_eq(json_string_value(json_object_get(got, "model")),
                         "openai-gpt-oss-120b");
        json_object_del(got, "model");
        ck_assert_msg(json_equal(got, sent), "more than the model changed");
        json_decref(got);
        json_decref(sent);
        json_decref(reqs);
    }
    free(null_model);
    free(absent);
}
END_TEST

START_TEST(malformed_message_is_400)
{
    start();
    const char *b = "{\"model\":\"openai-gpt-oss-120b\",\"messages\":["
                    "{\"role\":\"user\",\"content\":\"a\"},"
                    "{\"role\":\"user\",\"content\":42}]}";
    h_resp r;
    ck_assert_int_eq(post(b, &r), 400);
    json_t *doc = h_resp_json(&r);
    json_t *e = h_assert_openai_error(doc, "malformed");
    ck_assert_str_eq(json_string_value(json_object_get(e, "param")),
                     "messages[1].content");
    json_decref(doc);
    h_resp_free(&r);
    ck_assert_int_eq(h_mock_request_count(), 0);
}
END_TEST

static json_t *get_json(const char *path, long status)
{
    h_resp r;
    h_get(path, &r);
    ck_assert_msg(r.curl_code == 0, "%s: %s", path, r.error);
    ck_assert_msg(r.status == status, "%s: status %ld: %s", path, r.status,
                  show(&r));
    json_t *doc = h_resp_json(&r);
    ck_assert_msg(doc != NULL, "%s: not JSON: %s", path, show(&r));
    h_resp_free(&r);
    return doc;
}

START_TEST(models_routes)
{
    start();
    json_t *list = get_json("/v1/models", 200);
    ck_assert_str_eq(json_string_value(json_object_get(list, "object")),
                     "list");
    json_t *data = json_object_get(list, "data");
    ck_assert_uint_eq(json_array_size(data), 15);
    size_t i;
    json_t *m;
    int seen_qwen = 0;
    json_array_foreach(data, i, m)
    {
        const char *id = json_string_value(json_object_get(m, "id"));
        ck_assert_ptr_nonnull(id);
        ck_assert_str_eq(json_string_value(json_object_get(m, "object")),
                         "model");
        ck_assert(json_is_integer(json_object_get(m, "created")));
        /* stable across restarts: a fixed date, not the start time */
        ck_assert_int_eq(json_integer_value(json_object_get(m, "created")),
                         1704067200);
        ck_assert(json_is_string(json_object_get(m, "owned_by")));
        ck_assert(json_is_integer(json_object_get(m, "context_length")));
        if (!strcmp(id, "qwen/qwen3-next-80b-a3b-instruct")) {
            /* the stage's table, not the core's top-level models: */
            ck_assert_int_eq(
                json_integer_value(json_object_get(m, "context_length")),
                262000);
            seen_qwen = 1;
        }
    }
    ck_assert(seen_qwen);
    json_decref(list);

    json_t *one =
        get_json("/v1/models/qwen/qwen3-next-80b-a3b-instruct/info", 200);
    ck_assert_str_eq(json_string_value(json_object_get(one, "id")),
                     "qwen/qwen3-next-80b-a3b-instruct");
    ck_assert_str_eq(json_string_value(json_object_get(one, "object")),
                     "model");
    ck_assert_int_eq(json_integer_value(json_object_get(one, "context_length")),
                     262000);
    json_decref(one);
    one = get_json("/v1/models/deepseek-ai/deepseek-v3.1-terminus", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(one, "context_length")),
                     164000);
    json_decref(one);
    one = get_json("/v1/models/llama3-8b-instruct/info", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(one, "context_length")),
                     8000);
    json_decref(one);

    json_t *nf = get_json("/v1/models/nope/not-a-model/info", 404);
    json_t *e = h_assert_openai_error(nf, "unknown model");
    ck_assert_str_eq(json_string_value(json_object_get(e, "code")),
                     "model_not_found");
    ck_assert_msg(strstr(json_string_value(json_object_get(e, "message")),
                         "nope/not-a-model"),
                  "message names the id");
    json_decref(nf);
    ck_assert_int_eq(h_mock_request_count(), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("integration-context");
    TCase *tc = tcase_create("context");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, over_limit_is_refused_before_upstream);
    tcase_add_test(tc, just_under_limit_goes_through_unchanged);
    tcase_add_test(tc, default_model_is_set);
    tcase_add_test(tc, malformed_message_is_400);
    tcase_add_test(tc, models_routes);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
