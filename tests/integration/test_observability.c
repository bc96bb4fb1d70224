/*
 * test_observability.c - what an operator sees: GET /metrics after real
 * traffic (checked by `promtool check metrics`), the access log line of a
 * request in the log file, the file reopened on SIGUSR1 after a rename,
 * GET /openapi.json checked against what the gateway actually answers on
 * every documented path, and the /docs and /redoc pages (on, pointed at
 * local assets, off).
 *
 * Every wait is a bounded poll; every test asserts on what the client got
 * and, where it matters, on what the mock upstream saw.
 */
#include "harness.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHAT_PATH   "/v1/chat/completions"
#define ADMIN_TOKEN "observability-admin-token-0123456789"
#define AUTH_ADMIN  "Authorization: Bearer " ADMIN_TOKEN

static const char CHAT_BODY[] =
    "{\"model\":\"qwen/qwen3-next-80b-a3b-instruct\","
    "\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}";
static const char STREAM_BODY[] =
    "{\"model\":\"qwen/qwen3-next-80b-a3b-instruct\",\"stream\":true,"
    "\"messages\":[{\"role\":\"user\",\"content\":\"stream please\"}]}";

#define ck_assert_has(hay, needle)                                             \
    ck_assert_msg(strstr((hay), (needle)) != NULL,                             \
                  "expected '%s' in:\n%.3000s", (needle), (hay))
#define ck_assert_hasnt(hay, needle)                                           \
    ck_assert_msg(strstr((hay), (needle)) == NULL,                             \
                  "did not expect '%s' in:\n%.3000s", (needle), (hay))

static void setup(void)
{
    h_tmpdir();
}

static void teardown(void)
{
    h_teardown();
}

/* "admin: token_file" YAML for a fresh token file in the temp dir. */
static const char *admin_yaml(void)
{
    static char yaml[512];
    char path[300];
    snprintf(path, sizeof path, "%s/admin.token", h_tmpdir());
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "%s\n", ADMIN_TOKEN);
    fclose(f);
    chmod(path, 0600);
    snprintf(yaml, sizeof yaml, "admin:\n  token_file: \"%s\"\n", path);
    return yaml;
}

static char *file_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *s = malloc(cap);
    size_t r;
    while ((r = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n < 1024)
            s = realloc(s, cap *= 2);
    }
    s[n] = '\0';
    fclose(f);
    return s;
}

/* Wait (at most ~5 s) until `path` contains `needle`; returns the text
 * (caller frees) or NULL. */
static char *file_wait_for(const char *path, const char *needle)
{
    for (int i = 0; i < 250; i++) {
        char *t = file_read(path);
        if (t && strstr(t, needle))
            return t;
        free(t);
        h_sleep_ms(20);
    }
    return NULL;
}

/* The JSON log line holding `needle` (caller decrefs). */
static json_t *log_line_with(const char *text, const char *needle)
{
    const char *hit = strstr(text, needle);
    ck_assert_msg(hit != NULL, "no log line with %s", needle);
    const char *start = hit;
    while (start > text && start[-1] != '\n')
        start--;
    const char *end = strchr(hit, '\n');
    ck_assert_ptr_nonnull(end);
    json_error_t je;
    json_t *j = json_loadb(start, (size_t)(end - start), 0, &je);
    ck_assert_msg(j != NULL, "log line is not JSON: %.*s", (int)(end - start),
                  start);
    return j;
}

/* The sum of the samples of `family` whose labels contain `labels`. */
static double sample_sum(const char *text, const char *family,
                         const char *labels)
{
    size_t n = strlen(family);
    double sum = 0;
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (!strncmp(p, family, n) && p[n] == '{') {
            char line[1024];
            snprintf(line, sizeof line, "%.*s", (int)len, p);
            char *sp = strrchr(line, ' ');
            if (strstr(line, labels) && sp)
                sum += strtod(sp + 1, NULL);
        }
        p = nl ? nl + 1 : NULL;
    }
    return sum;
}

/* A request is counted when the server's completion callback runs, which
 * may be just after the client got its last byte: scrape until `want`
 * requests matching `labels` are counted (bounded: ~5 s), then return that
 * scrape (caller frees). */
static char *scrape_settled(const char *labels, double want)
{
    char *m = NULL;
    for (int i = 0; i < 250; i++) {
        free(m);
        m = h_metrics_scrape();
        if (sample_sum(m, "sluice_requests_total", labels) >= want)
            return m;
        h_sleep_ms(20);
    }
    ck_abort_msg("metrics never counted %g requests with %s", want, labels);
    return m;
}

/* ---- /metrics ----------------------------------------------------------- */

START_TEST(test_metrics_after_traffic)
{
    h_start_all(NULL);
    long long prompt = 0, completion = 0;
    for (int i = 0; i < 2; i++) {
        h_resp r;
        h_post_json(CHAT_PATH, CHAT_BODY, &r);
        ck_assert_msg(r.status == 200, "chat %d: %ld %s", i, r.status, r.body);
        json_t *d = h_resp_json(&r);
        json_t *u = json_object_get(d, "usage");
        prompt += json_integer_value(json_object_get(u, "prompt_tokens"));
        completion +=
            json_integer_value(json_object_get(u, "completion_tokens"));
        json_decref(d);
        h_resp_free(&r);
    }
    ck_assert_int_gt(prompt, 0);
    h_stream s;
    h_stream_request(h_sluice_port(), "POST", CHAT_PATH, NULL, STREAM_BODY,
                     strlen(STREAM_BODY), 10000, 0, 0, &s);
    ck_assert_msg(s.resp.status == 200 && h_stream_has_done(&s), "stream: %ld",
                  s.resp.status);
    h_stream_free(&s);
    h_resp r;
    h_post_json(CHAT_PATH, "{not json", &r);
    ck_assert_int_eq(r.status, 400);
    h_resp_free(&r);
    ck_assert_int_eq(
        h_mock_script(
            "{\"rules\":[{\"match\":{\"path\":\"/v1/chat/completions\"},"
            "\"times\":1,\"status\":500,\"json\":{\"error\":{\"message\":"
            "\"boom\","
            "\"type\":\"server_error\",\"param\":null,\"code\":null}}}]}"),
        0);
    h_post_json(CHAT_PATH, CHAT_BODY, &r);
    ck_assert_int_eq(r.status, 500);
    h_resp_free(&r);
    h_get("/nope", &r);
    ck_assert_int_eq(r.status, 404);
    h_resp_free(&r);
    /* the mock saw exactly the four chat requests that were forwarded */
    ck_assert_int_eq(h_mock_request_count(), 4);

    free(scrape_settled("route=\"not_found\"", 1));
    char *m = scrape_settled("route=\"chat\"", 5);
#define M "qwen/qwen3-next-80b-a3b-instruct"
    ck_assert(h_metrics_sample(
                  m, "sluice_requests_total{route=\"chat\",model=\"" M
                     "\",stream=\"false\",code=\"200\",outcome=\"ok\"}") == 2);
    ck_assert(h_metrics_sample(
                  m, "sluice_requests_total{route=\"chat\",model=\"" M
                     "\",stream=\"true\",code=\"200\",outcome=\"ok\"}") == 1);
    ck_assert(h_metrics_sample(m,
                               "sluice_requests_total{route=\"chat\",model=\"" M
                               "\",stream=\"false\",code=\"500\","
                               "outcome=\"upstream_error\"}") == 1);
    ck_assert(h_metrics_sample(
                  m,
                  "sluice_requests_total{route=\"chat\",model=\"\","
                  "stream=\"false\",code=\"400\",outcome=\"rejected\"}") == 1);
    ck_assert(h_metrics_sample(
                  m,
                  "sluice_requests_total{route=\"not_found\",model=\"\","
                  "stream=\"false\",code=\"404\",outcome=\"rejected\"}") == 1);
    ck_assert(h_metrics_sample(m, "sluice_rejections_total{stage=\"core\","
                                  "code=\"invalid_json\"}") == 1);
    ck_assert(sample_sum(m, "sluice_upstream_attempts_total",
                         "result=\"http\",code=\"200\"") == 3);
    ck_assert(sample_sum(m, "sluice_upstream_attempts_total",
                         "result=\"http\",code=\"500\"") == 1);
    /* per upstream key: both keys served, named masked, never whole */
    ck_assert(sample_sum(m, "sluice_upstream_attempts_total", "key=\"sk-") ==
              4);
    ck_assert(h_metrics_sample(m, "sluice_usage_tokens_total{model=\"" M
                                  "\",client=\"unknown\",kind=\"prompt\"}") ==
              prompt);
    ck_assert(h_metrics_sample(m,
                               "sluice_usage_tokens_total{model=\"" M
                               "\",client=\"unknown\",kind=\"completion\"}") ==
              completion);
    ck_assert(h_metrics_sample(
                  m, "sluice_request_duration_seconds_count{route=\"chat\","
                     "stream=\"false\"}") == 4);
    ck_assert(h_metrics_sample(
                  m, "sluice_request_duration_seconds_bucket{route=\"chat\","
                     "stream=\"false\",le=\"+Inf\"}") == 4);
    ck_assert(
        h_metrics_sample(m, "sluice_upstream_duration_seconds_count{model=\"" M
                            "\",stream=\"false\"}") == 3);
    ck_assert(
        h_metrics_sample(m, "sluice_stream_first_byte_seconds_count{model=\"" M
                            "\"}") == 1);
    ck_assert(
        h_metrics_sample(
            m, "sluice_gateway_overhead_seconds_count{stream=\"true\"}") == 1);
    /* this scrape, and maybe the previous one still completing */
    double inflight = h_metrics_sample(m, "sluice_requests_in_flight");
    ck_assert_msg(inflight >= 1 && inflight <= 2, "in flight %g", inflight);
    ck_assert(h_metrics_sample(m, "sluice_pipeline_generation") == 1);
    ck_assert(h_metrics_sample(m, "sluice_build_info{version=\"" SLUICE_VERSION
                                  "\",abi=\"1.1\"}") == 1);
#undef M
    ck_assert_hasnt(m, H_FIRST_KEY); /* never a key */

    /* promtool's own check on this real scrape */
    char path[300];
    snprintf(path, sizeof path, "%s/scrape.txt", h_tmpdir());
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(m, f);
    fclose(f);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s'", path);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    char *out = NULL;
    int rc = h_run_capture(argv, 30000, &out);
    ck_assert_msg(rc == 0,
                  "promtool check metrics (exit %d; is the Debian "
                  "package prometheus installed?):\n%s",
                  rc, out ? out : "");
    free(out);
    free(m);
}
END_TEST

START_TEST(test_metrics_counters_survive_reload)
{
    h_opts o = {.extra = admin_yaml()};
    h_start_all(&o);
    h_resp r;
    h_post_json(CHAT_PATH, CHAT_BODY, &r);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    const char *hdrs[] = {AUTH_ADMIN, NULL};
    h_request(h_sluice_port(), "POST", "/admin/reload", hdrs, NULL, 0, 30000,
              &r);
    ck_assert_msg(r.status == 200, "reload: %ld %s", r.status, r.body);
    h_resp_free(&r);
    h_post_json(CHAT_PATH, CHAT_BODY, &r);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    char *m = scrape_settled("route=\"chat\"", 2);
    ck_assert(
        h_metrics_sample(m, "sluice_requests_total{route=\"chat\",model=\"qwen/"
                            "qwen3-next-80b-a3b-instruct\",stream=\"false\","
                            "code=\"200\",outcome=\"ok\"}") == 2);
    ck_assert(h_metrics_sample(m, "sluice_pipeline_generation") == 2);
    ck_assert(h_metrics_sample(m, "sluice_pipeline_reloads_total") == 1);
    ck_assert(h_metrics_sample(m, "sluice_pipeline_reload_failures_total") ==
              0);
    free(m);
}
END_TEST

/* With the context stage: its estimate feeds the core's token histograms
 * (attribute prompt_tokens_estimate), and its refusal counts as a
 * rejection by that stage, with the error code, upstream never called. */
START_TEST(test_metrics_with_context_stage)
{
    h_opts o = {
        .pipeline = "  - plugin: context\n"
                    "  - plugin: keyring\n"
                    "    config: { keys_file: \"@KEYS_FILE@\" }\n"
                    "  - plugin: sse\n",
        .models = "  - { id: \"llama3-8b-instruct\", context_length: 8000 }\n"};
    h_start_all(&o);
    h_resp r;
    const char small[] =
        "{\"model\":\"llama3-8b-instruct\",\"messages\":[{\"role\":"
        "\"user\",\"content\":\"hello there\"}]}";
    h_post_json(CHAT_PATH, small, &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    /* ~12000 tokens against an 8000-token model */
    size_t n = 6000 * 12 + 200;
    char *big = malloc(n), *p = big;
    p += sprintf(p, "{\"model\":\"llama3-8b-instruct\",\"messages\":[{\"role\":"
                    "\"user\",\"content\":\"");
    for (int i = 0; i < 6000; i++)
        p += sprintf(p, "hello world ");
    strcpy(p, "\"}]}");
    h_post_json(CHAT_PATH, big, &r);
    free(big);
    ck_assert_msg(r.status == 400, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    ck_assert_int_eq(h_mock_request_count(), 1);
    char *m = scrape_settled("route=\"chat\"", 2);
    ck_assert(h_metrics_sample(m, "sluice_rejections_total{stage=\"context\","
                                  "code=\"context_length_exceeded\"}") == 1);
    ck_assert(h_metrics_sample(
                  m, "sluice_requests_total{route=\"chat\",model=\"llama3-8b-"
                     "instruct\",stream=\"false\",code=\"400\","
                     "outcome=\"rejected\"}") == 1);
    ck_assert(h_metrics_sample(
                  m, "sluice_prompt_tokens_estimate_count{model=\"llama3-8b-"
                     "instruct\"}") == 2);
    ck_assert(h_metrics_sample(
                  m, "sluice_context_usage_ratio_count{model=\"llama3-8b-"
                     "instruct\"}") == 2);
    /* the refused one is over 1 (ratio > 1.5 lands only in +Inf) */
    ck_assert(h_metrics_sample(
                  m, "sluice_context_usage_ratio_bucket{model=\"llama3-8b-"
                     "instruct\",le=\"1\"}") == 1);
    ck_assert(
        h_metrics_sample(
            m, "sluice_context_refused_total{model=\"llama3-8b-instruct\"}") ==
        1);
    free(m);
}
END_TEST

/* ---- logs ------------------------------------------------------------------
 */

START_TEST(test_access_log_file_and_reopen)
{
    char extra[1024], logpath[300], rotated[310];
    snprintf(logpath, sizeof logpath, "%s/logs/app.log", h_tmpdir());
    snprintf(rotated, sizeof rotated, "%s.1", logpath);
    snprintf(extra, sizeof extra, "log:\n  file: \"%s\"\n  format: json\n",
             logpath);
    h_opts o = {.extra = extra};
    h_start_all(&o);

    const char *hdrs[] = {"X-Request-Id: obs-test-req-1", NULL};
    h_resp r;
    h_request(h_sluice_port(), "POST", CHAT_PATH, hdrs, CHAT_BODY,
              strlen(CHAT_BODY), 10000, &r);
    ck_assert_int_eq(r.status, 200);
    const char *rid = h_resp_header(&r, "x-request-id");
    ck_assert_msg(rid && !strcmp(rid, "obs-test-req-1"), "x-request-id %s",
                  rid ? rid : "(none)");
    json_t *d = h_resp_json(&r);
    long long pt = json_integer_value(
        json_object_get(json_object_get(d, "usage"), "prompt_tokens"));
    json_decref(d);
    h_resp_free(&r);

    char *text = file_wait_for(logpath, "obs-test-req-1");
    ck_assert_msg(text != NULL, "no access line in %s", logpath);
    json_t *j = log_line_with(text, "\"request_id\":\"obs-test-req-1\"");
    ck_assert_str_eq(json_string_value(json_object_get(j, "component")),
                     "access");
    ck_assert_str_eq(json_string_value(json_object_get(j, "level")), "INFO");
    ck_assert_str_eq(json_string_value(json_object_get(j, "route")), "chat");
    ck_assert_str_eq(json_string_value(json_object_get(j, "peer")),
                     "127.0.0.1");
    ck_assert_str_eq(json_string_value(json_object_get(j, "model")),
                     "qwen/qwen3-next-80b-a3b-instruct");
    ck_assert(json_is_false(json_object_get(j, "stream")));
    ck_assert_int_eq(json_integer_value(json_object_get(j, "status")), 200);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "attempts")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(j, "outcome")), "ok");
    ck_assert_int_eq(
        json_integer_value(json_object_get(j, "usage_prompt_tokens")), pt);
    ck_assert(json_is_integer(json_object_get(j, "usage_completion_tokens")));
    ck_assert(json_object_get(j, "prompt_tokens_estimate") != NULL);
    double up = json_number_value(json_object_get(j, "upstream_ms"));
    double total = json_number_value(json_object_get(j, "total_ms"));
    ck_assert_msg(up > 0 && total >= up, "upstream_ms %f total_ms %f", up,
                  total);
    const char *kid = json_string_value(json_object_get(j, "key_id"));
    ck_assert_msg(kid && *kid && !strstr(kid, H_FIRST_KEY), "key_id %s",
                  kid ? kid : "(null)");
    json_decref(j);
    ck_assert_hasnt(text, "sk-test-key-1"); /* no key whole, anywhere */
    ck_assert_hasnt(text, "sk-test-key-2");
    free(text);

    /* logrotate: rename, then SIGUSR1; new lines go to a new file */
    ck_assert_int_eq(rename(logpath, rotated), 0);
    ck_assert_int_eq(kill(h_sluice_pid(), SIGUSR1), 0);
    text = file_wait_for(logpath, "reopened");
    ck_assert_msg(text != NULL, "no new %s after SIGUSR1", logpath);
    free(text);
    const char *hdrs2[] = {"X-Request-Id: obs-test-req-2", NULL};
    h_request(h_sluice_port(), "POST", CHAT_PATH, hdrs2, CHAT_BODY,
              strlen(CHAT_BODY), 10000, &r);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    text = file_wait_for(logpath, "obs-test-req-2");
    ck_assert_msg(text != NULL, "second request not in the new file");
    ck_assert_hasnt(text, "obs-test-req-1");
    free(text);
    text = file_read(rotated);
    ck_assert_has(text, "obs-test-req-1");
    ck_assert_hasnt(text, "obs-test-req-2");
    free(text);
}
END_TEST

START_TEST(test_access_log_outcomes)
{
    char extra[1024], logpath[300];
    snprintf(logpath, sizeof logpath, "%s/app.log", h_tmpdir());
    snprintf(extra, sizeof extra, "log:\n  file: \"%s\"\n", logpath);
    h_opts o = {.extra = extra};
    h_start_all(&o);
    /* a stream the client abandons after its first event */
    ck_assert_int_eq(
        h_mock_script(
            "{\"rules\":[{\"match\":{\"path\":\"/v1/chat/completions\"},"
            "\"stream\":{\"chunks\":20,\"delay_ms\":100}}]}"),
        0);
    const char *hdrs[] = {"X-Request-Id: obs-abandon", NULL};
    h_stream s;
    h_stream_request(h_sluice_port(), "POST", CHAT_PATH, hdrs, STREAM_BODY,
                     strlen(STREAM_BODY), 10000, 0, 1, &s);
    ck_assert(s.aborted);
    h_stream_free(&s);
    char *text = file_wait_for(logpath, "obs-abandon");
    ck_assert_msg(text != NULL, "no access line for the abandoned stream");
    json_t *j = log_line_with(text, "\"request_id\":\"obs-abandon\"");
    ck_assert_str_eq(json_string_value(json_object_get(j, "outcome")),
                     "client_closed");
    ck_assert(json_is_true(json_object_get(j, "stream")));
    ck_assert(json_number_value(json_object_get(j, "first_byte_ms")) > 0);
    json_decref(j);
    free(text);
    /* the body is not JSON: rejected by the core */
    const char *hdrs2[] = {"X-Request-Id: obs-bad-json", NULL};
    h_resp r;
    h_request(h_sluice_port(), "POST", CHAT_PATH, hdrs2, "{", 1, 10000, &r);
    ck_assert_int_eq(r.status, 400);
    h_resp_free(&r);
    text = file_wait_for(logpath, "obs-bad-json");
    ck_assert_ptr_nonnull(text);
    j = log_line_with(text, "\"request_id\":\"obs-bad-json\"");
    ck_assert_str_eq(json_string_value(json_object_get(j, "outcome")),
                     "rejected");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "attempts")), 0);
    json_decref(j);
    free(text);
}
END_TEST

/* ---- OpenAPI against the gateway ----------------------------------------- */

/* A concrete path for a documented template. */
static void concrete(const char *tpl, char *out, size_t n)
{
    size_t k = 0;
    for (const char *p = tpl; *p && k + 1 < n;) {
        if (*p != '{') {
            out[k++] = *p++;
            continue;
        }
        const char *end = strchr(p, '}');
        ck_assert_ptr_nonnull(end);
        const char *v = !strncmp(p, "{model}", 7)    ? H_MODEL_ID
                        : !strncmp(p, "{stage}", 7)  ? "keyring"
                        : !strncmp(p, "{action}", 8) ? "keys"
                                                     : "x";
        k += (size_t)snprintf(out + k, n - k, "%s", v);
        p = end + 1;
    }
    out[k < n ? k : n - 1] = '\0';
}

START_TEST(test_openapi_matches_gateway)
{
    h_opts o = {.extra = admin_yaml()};
    h_start_all(&o);
    h_resp r;
    h_get("/openapi.json", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_has(h_resp_header(&r, "content-type"), "application/json");
    json_t *doc = h_resp_json(&r);
    h_resp_free(&r);
    ck_assert_ptr_nonnull(doc);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "openapi")),
                     "3.1.0");
    const char *tpl;
    json_t *item;
    int checked = 0;
    json_object_foreach(json_object_get(doc, "paths"), tpl, item)
    {
        const char *method;
        json_t *op;
        json_object_foreach(item, method, op)
        {
            if (!strcmp(method, "parameters"))
                continue;
            char path[512], upper[16];
            concrete(tpl, path, sizeof path);
            size_t i;
            for (i = 0; method[i] && i + 1 < sizeof upper; i++)
                upper[i] = (char)(method[i] - 32);
            upper[i] = '\0';
            int is_admin = !strncmp(path, "/admin", 6);
            const char *hdrs[] = {is_admin ? AUTH_ADMIN : "Accept: */*", NULL};
            int chat = strstr(path, "chat/completions") != NULL;
            const char *body = chat ? CHAT_BODY : NULL;
            h_request(h_sluice_port(), upper, path, hdrs, body,
                      body ? strlen(body) : 0, 30000, &r);
            char code[8];
            snprintf(code, sizeof code, "%ld", r.status);
            json_t *resps = json_object_get(op, "responses");
            ck_assert_msg(json_object_get(resps, code) != NULL,
                          "%s %s answered %ld, not a documented status; "
                          "body: %.300s",
                          upper, path, r.status, r.body ? r.body : "");
            /* a JSON answer where JSON is documented */
            json_t *content =
                json_object_get(json_object_get(resps, code), "content");
            if (json_object_get(content, "application/json") &&
                json_object_size(content) == 1) {
                json_t *j = h_resp_json(&r);
                ck_assert_msg(j != NULL, "%s %s: body is not JSON", upper,
                              path);
                json_decref(j);
            }
            ck_assert_msg(h_resp_header(&r, "x-request-id") != NULL,
                          "%s %s: no x-request-id", upper, path);
            h_resp_free(&r);
            checked++;
        }
    }
    ck_assert_int_ge(checked, 20);
    /* and an undocumented path is a documented-shape 404 */
    h_get("/v2/whatever", &r);
    ck_assert_int_eq(r.status, 404);
    json_t *e = h_resp_json(&r);
    h_assert_openai_error(e, "undocumented path");
    json_decref(e);
    h_resp_free(&r);
    json_decref(doc);
}
END_TEST

/* ---- /docs and /redoc ------------------------------------------------------
 */

START_TEST(test_docs_pages_default_cdn)
{
    h_start_all(NULL);
    h_resp r;
    h_get("/docs", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_has(h_resp_header(&r, "content-type"), "text/html");
    ck_assert_has(r.body, "swagger-ui-bundle.js");
    ck_assert_has(r.body, "swagger-ui.css");
    ck_assert_has(r.body, "url: \"/openapi.json\"");
    ck_assert_has(r.body, "https://");
    h_resp_free(&r);
    h_get("/redoc", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_has(h_resp_header(&r, "content-type"), "text/html");
    ck_assert_has(r.body, "redoc.standalone.js");
    ck_assert_has(r.body, "spec-url=\"/openapi.json\"");
    h_resp_free(&r);
}
END_TEST

START_TEST(test_docs_pages_local_assets)
{
    h_opts o = {.extra =
                    "docs:\n  assets_url: \"http://127.0.0.1:9/assets/\"\n"};
    h_start_all(&o);
    h_resp r;
    h_get("/docs", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_has(r.body,
                  "src=\"http://127.0.0.1:9/assets/swagger-ui-bundle.js\"");
    ck_assert_has(r.body, "href=\"http://127.0.0.1:9/assets/swagger-ui.css\"");
    ck_assert_hasnt(r.body, "https://");
    h_resp_free(&r);
    h_get("/redoc", &r);
    ck_assert_has(r.body,
                  "src=\"http://127.0.0.1:9/assets/redoc.standalone.js\"");
    h_resp_free(&r);
}
END_TEST

START_TEST(test_docs_disabled)
{
    h_opts o = {.extra = "docs:\n  enabled: false\n"};
    h_start_all(&o);
    const char *paths[] = {"/docs", "/redoc", "/openapi.json", NULL};
    for (size_t i = 0; paths[i]; i++) {
        h_resp r;
        h_get(paths[i], &r);
        ck_assert_msg(r.status == 404, "%s: %ld", paths[i], r.status);
        json_t *e = h_resp_json(&r);
        h_assert_openai_error(e, paths[i]);
        json_decref(e);
        h_resp_free(&r);
    }
    /* metrics stay on */
    free(h_metrics_scrape());
}
END_TEST

static Suite *obs_suite(void)
{
    Suite *s = suite_create("observability");
    TCase *tc = tcase_create("observability");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_metrics_after_traffic);
    tcase_add_test(tc, test_metrics_counters_survive_reload);
    tcase_add_test(tc, test_metrics_with_context_stage);
    tcase_add_test(tc, test_access_log_file_and_reopen);
    tcase_add_test(tc, test_access_log_outcomes);
    tcase_add_test(tc, test_openapi_matches_gateway);
    tcase_add_test(tc, test_docs_pages_default_cdn);
    tcase_add_test(tc, test_docs_pages_local_assets);
    tcase_add_test(tc, test_docs_disabled);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(obs_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
