/*
 * test_auth.c - integration tests of the auth stage and the admin API's
 * security on the real binary: every refused request is answered with an
 * OpenAI-shaped error, the mock upstream saw nothing, and a normal request
 * right after still succeeds. Also: what reaches the upstream is built by
 * the gateway (its key, not the client's; no client headers passed on).
 */
#include "itest_util.h"

#define ALPHA       "sk-client-alpha-7f3a9c"
#define BETA        "sk-client-beta-51de02"
#define GAMMA       "sk-client-gamma-c0ffee"
#define ADMIN_TOKEN "admin-token-9b1e6d4c2a7f8e30"

static const char CLIENTS[] =
    "# integration clients\n" ALPHA " alpha\n" BETA " beta rpm=2\n" GAMMA
    " gamma models=gpt-4o-mini\n";

static const char *const A_ALPHA[] = {"Authorization: Bearer " ALPHA, NULL};
static const char *const A_BETA[] = {"x-api-key: " BETA, NULL};

static void setup(void)
{
    h_tmpdir();
}

static void teardown(void)
{
    h_teardown();
}

/* Start mock + sluice with auth first; `auth_extra` goes into its config
 * map, `extra` is top-level YAML. */
static void start(const char *auth_extra, const char *extra,
                  const char *server_extra)
{
    char pipeline[1024];
    it_secret_file("clients.txt", CLIENTS);
    it_secret_file("admin.token", ADMIN_TOKEN "\n");
    snprintf(pipeline, sizeof pipeline,
             "  - plugin: auth\n"
             "    config: { clients_file: \"@TMPDIR@/clients.txt\"%s%s }\n"
             "  - plugin: keyring\n"
             "    config: { keys_file: \"@KEYS_FILE@\" }\n"
             "  - plugin: sse\n",
             auth_extra ? ", " : "", auth_extra ? auth_extra : "");
    h_opts o;
    memset(&o, 0, sizeof o);
    o.pipeline = pipeline;
    o.extra = extra;
    o.server_extra = server_extra;
    h_start_mock();
    h_start_sluice(&o);
}

static h_resp chat(const char *const *headers, const char *body)
{
    h_resp r;
    h_request(h_sluice_port(), "POST", CHAT, headers, body, strlen(body), 10000,
              &r);
    return r;
}

START_TEST(test_missing_and_wrong_keys)
{
    start(NULL, NULL, NULL);
    static const char *const none[] = {NULL};
    static const char *const wrong[] = {"Authorization: Bearer " ALPHA "x",
                                        NULL};
    static const char *const basic[] = {"Authorization: Basic " ALPHA, NULL};
    static const char *const empty[] = {"x-api-key:  ", NULL};
    const char *const *cases[] = {none, wrong, basic, empty};
    for (size_t i = 0; i < 4; i++) {
        h_resp r = chat(cases[i], OK_BODY);
        it_assert_error(&r, 401, "invalid_api_key", "bad key");
        ck_assert_msg(!strstr(r.body, ALPHA), "the key is echoed back");
        /* refused in on_request: no upstream request, and it says so */
        const char *att = h_resp_header(&r, "x-sluice-attempts");
        ck_assert_msg(att && !strcmp(att, "0"), "x-sluice-attempts: %s",
                      att ? att : "(absent)");
        h_resp_free(&r);
        it_assert_mock_saw(0, "bad key");
    }
    it_assert_normal(A_ALPHA, "after 401s");
    it_assert_normal(A_BETA, "x-api-key");
}
END_TEST

/* The upstream sees the keyring's key, never the client's Authorization,
 * x-api-key, cookies or hop-by-hop headers. */
START_TEST(test_nothing_of_the_client_forwarded)
{
    start(NULL, NULL, NULL);
    static const char *const hdrs[] = {"Authorization: Bearer " ALPHA,
                                       "x-api-key: " BETA,
                                       "Cookie: session=secret-cookie",
                                       "Proxy-Authorization: Basic eHl6",
                                       "X-Forwarded-For: 10.9.9.9",
                                       "TE: trailers",
                                       "Upgrade: h2c",
                                       "Connection: keep-alive, Upgrade",
                                       "X-Custom: 1",
                                       NULL};
    h_resp r = chat(hdrs, OK_BODY);
    ck_assert_msg(r.status == 200, "status %ld: %s", r.status, it_show(&r));
    h_resp_free(&r);
    json_t *reqs = h_mock_requests();
    ck_assert_uint_eq(json_array_size(reqs), 1);
    json_t *rec = json_array_get(reqs, 0);
    const char *auth = h_rec_header(rec, "authorization");
    ck_assert_msg(auth && !strcmp(auth, "Bearer " H_FIRST_KEY),
                  "upstream authorization: %s", auth ? auth : "(none)");
    static const char *const banned[] = {
        "x-api-key",       "cookie", "proxy-authorization",
        "x-forwarded-for", "te",     "upgrade",
        "x-custom",        NULL};
    for (int i = 0; banned[i]; i++)
        ck_assert_msg(h_rec_header(rec, banned[i]) == NULL,
                      "the upstream saw the client's %s", banned[i]);
    const char *conn = h_rec_header(rec, "connection");
    ck_assert_msg(!conn || !strcasestr(conn, "upgrade"),
                  "the upstream saw connection: %s", conn);
    char *dump = json_dumps(rec, 0);
    ck_assert_msg(!strstr(dump, ALPHA) && !strstr(dump, BETA),
                  "a client key reached the upstream");
    free(dump);
    json_decref(reqs);
}
END_TEST

START_TEST(test_model_not_allowed)
{
    start(NULL, NULL, NULL);
    static const char *const g[] = {"x-api-key: " GAMMA, NULL};
    h_resp r = chat(g, "{\"model\":\"qwen/qwen3-next-80b-a3b-instruct\","
                       "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
    it_assert_error(&r, 403, "model_not_allowed", "model outside the list");
    h_resp_free(&r);
    it_assert_mock_saw(0, "model_not_allowed");
    it_assert_normal(g, "allowed model");
}
END_TEST

/* A refusal decided in on_attempt (the model came from the context stage's
 * default, after auth's on_request) is counted as a rejection by auth, not
 * as an upstream error: nothing was sent upstream. */
START_TEST(test_model_not_allowed_after_default)
{
    char pipeline[1024];
    it_secret_file("clients.txt", CLIENTS);
    snprintf(pipeline, sizeof pipeline,
             "  - plugin: auth\n"
             "    config: { clients_file: \"@TMPDIR@/clients.txt\" }\n"
             "  - plugin: context\n"
             "  - plugin: keyring\n"
             "    config: { keys_file: \"@KEYS_FILE@\" }\n");
    h_opts o;
    memset(&o, 0, sizeof o);
    o.pipeline = pipeline;
    h_start_mock();
    h_start_sluice(&o);
    static const char *const g[] = {"x-api-key: " GAMMA, NULL};
    h_resp r = chat(g, "{\"messages\":[{\"role\":\"user\",\"content\":"
                       "\"x\"}]}");
    it_assert_error(&r, 403, "model_not_allowed", "defaulted model");
    h_resp_free(&r);
    it_assert_mock_saw(0, "model_not_allowed after the default");
    h_get("/metrics", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(strstr(r.body, "sluice_rejections_total{stage=\"auth\","
                                 "code=\"model_not_allowed\"} 1"),
                  "no auth rejection counted:\n%s", r.body);
    ck_assert_msg(strstr(r.body, "code=\"403\",outcome=\"rejected\"} 1"),
                  "the 403 is not counted as rejected:\n%s", r.body);
    h_resp_free(&r);
}
END_TEST

START_TEST(test_rate_limit)
{
    start(NULL, NULL, NULL);
    it_assert_normal(A_BETA, "beta 1");
    it_assert_normal(A_BETA, "beta 2");
    h_resp r = chat(A_BETA, OK_BODY);
    it_assert_error(&r, 429, "rate_limit_exceeded", "beta 3");
    const char *ra = h_resp_header(&r, "retry-after");
    ck_assert_msg(ra && atoi(ra) >= 1 && atoi(ra) <= 30, "Retry-After %s",
                  ra ? ra : "(none)");
    const char *lim = h_resp_header(&r, "x-ratelimit-limit-requests");
    const char *rem = h_resp_header(&r, "x-ratelimit-remaining-requests");
    const char *rst = h_resp_header(&r, "x-ratelimit-reset-requests");
    ck_assert_msg(lim && !strcmp(lim, "2"), "limit %s", lim ? lim : "-");
    ck_assert_msg(rem && !strcmp(rem, "0"), "remaining %s", rem ? rem : "-");
    ck_assert_msg(rst && strlen(rst) > 1, "reset %s", rst ? rst : "-");
    h_resp_free(&r);
    it_assert_mock_saw(2, "rate limit");
    it_assert_normal(A_ALPHA, "another client after a 429");
}
END_TEST

/* tpm= charges the context stage's estimate (context runs after auth, so
 * auth charges it in on_attempt, before the upstream is called). */
START_TEST(test_token_limit_with_context)
{
    it_secret_file("clients.txt", "sk-client-tokens-00001 tok tpm=40\n");
    h_opts o;
    memset(&o, 0, sizeof o);
    o.pipeline = "  - plugin: auth\n"
                 "    config: { clients_file: \"@TMPDIR@/clients.txt\" }\n"
                 "  - plugin: context\n"
                 "  - plugin: keyring\n"
                 "    config: { keys_file: \"@KEYS_FILE@\" }\n"
                 "  - plugin: sse\n";
    h_start_mock();
    h_start_sluice(&o);
    static const char *const k[] = {"x-api-key: sk-client-tokens-00001", NULL};
    static const char small[] =
        "{\"model\":\"openai-gpt-oss-20b\",\"messages\":[{\"role\":"
        "\"user\",\"content\":\"hi\"}]}";
    h_resp r = chat(k, small);
    ck_assert_msg(r.status == 200, "small: %ld %s", r.status, it_show(&r));
    h_resp_free(&r);
    /* far over the whole minute's budget: 429, no Retry-After */
    char big[2400];
    int n = snprintf(big, sizeof big,
                     "{\"model\":\"openai-gpt-oss-20b\",\"messages\":"
                     "[{\"role\":\"user\",\"content\":\"");
    for (int i = 0; i < 300; i++)
        n += snprintf(big + n, sizeof big - (size_t)n, "word ");
    snprintf(big + n, sizeof big - (size_t)n, "\"}]}");
    r = chat(k, big);
    it_assert_error(&r, 429, "rate_limit_exceeded", "over tpm");
    const char *lim = h_resp_header(&r, "x-ratelimit-limit-tokens");
    ck_assert_msg(lim && !strcmp(lim, "40"), "limit-tokens %s",
                  lim ? lim : "-");
    ck_assert_ptr_nonnull(h_resp_header(&r, "x-ratelimit-remaining-tokens"));
    ck_assert_ptr_nonnull(h_resp_header(&r, "x-ratelimit-reset-tokens"));
    json_t *doc = h_resp_json(&r);
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(doc, "error"), "type")),
                     "tokens");
    json_decref(doc);
    h_resp_free(&r);
    it_assert_mock_saw(1, "token limit");
}
END_TEST

START_TEST(test_allow_list)
{
    /* loopback is not allowed: only 10/8, via the trusted proxy 127.0.0.1 */
    start("allow: [\"10.0.0.0/8\", \"2001:db8::/32\"], "
          "trusted_proxies: [\"127.0.0.1/32\"]",
          NULL, NULL);
    h_resp r = chat(A_ALPHA, OK_BODY);
    it_assert_error(&r, 403, "ip_not_allowed", "loopback itself");
    h_resp_free(&r);
    static const char *const outside[] = {"Authorization: Bearer " ALPHA,
                                          "X-Forwarded-For: 10.1.1.1, 8.8.8.8",
                                          NULL};
    r = chat(outside, OK_BODY);
    it_assert_error(&r, 403, "ip_not_allowed", "forwarded from outside");
    h_resp_free(&r);
    /* 403 comes before the key check: no key, still 403 */
    static const char *const nokey[] = {"X-Forwarded-For: 8.8.8.8", NULL};
    r = chat(nokey, OK_BODY);
    it_assert_error(&r, 403, "ip_not_allowed", "outside without a key");
    h_resp_free(&r);
    it_assert_mock_saw(0, "allow list");
    static const char *const inside[] = {"Authorization: Bearer " ALPHA,
                                         "X-Forwarded-For: 8.8.8.8, 10.2.3.4",
                                         NULL};
    it_assert_normal(inside, "forwarded from 10/8");
}
END_TEST

START_TEST(test_untrusted_forwarded_for_ignored)
{
    start("allow: [\"10.0.0.0/8\"]", NULL, NULL); /* no trusted proxies */
    static const char *const spoof[] = {"Authorization: Bearer " ALPHA,
                                        "X-Forwarded-For: 10.1.1.1", NULL};
    h_resp r = chat(spoof, OK_BODY);
    it_assert_error(&r, 403, "ip_not_allowed", "spoofed X-Forwarded-For");
    h_resp_free(&r);
    it_assert_mock_saw(0, "spoofed X-Forwarded-For");
}
END_TEST

static h_resp admin(int port, const char *method, const char *path,
                    const char *token)
{
    char auth[256];
    const char *hdrs[] = {auth, NULL};
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    h_resp r;
    h_request(port, method, path, token ? hdrs : NULL, NULL, 0, 10000, &r);
    return r;
}

START_TEST(test_admin_off_without_token)
{
    start(NULL, NULL, NULL); /* no admin.token_file */
    h_resp r = admin(h_sluice_port(), "POST", "/admin/plugins/auth/reload",
                     ADMIN_TOKEN);
    it_assert_error(&r, 404, NULL, "admin without a token file");
    h_resp_free(&r);
    it_assert_normal(A_ALPHA, "after admin 404");
}
END_TEST

START_TEST(test_admin_reload)
{
    start(NULL, "admin:\n  token_file: \"@TMPDIR@/admin.token\"\n", NULL);
    int port = h_sluice_port();
    h_resp r = admin(port, "POST", "/admin/plugins/auth/reload", NULL);
    it_assert_error(&r, 401, "invalid_admin_token", "no admin token");
    h_resp_free(&r);
    r = admin(port, "POST", "/admin/plugins/auth/reload", ADMIN_TOKEN "0");
    it_assert_error(&r, 401, "invalid_admin_token", "wrong admin token");
    h_resp_free(&r);
    r = admin(port, "POST", "/admin/plugins/auth/reload", ALPHA);
    it_assert_error(&r, 401, "invalid_admin_token", "a client key");
    h_resp_free(&r);

    /* a broken file: 400, the running clients stay */
    it_secret_file("clients.txt", "sk-client-new-000001 newbie rpm=lots\n");
    r = admin(port, "POST", "/admin/plugins/auth/reload", ADMIN_TOKEN);
    ck_assert_msg(r.status == 400, "broken reload: %ld %s", r.status,
                  it_show(&r));
    ck_assert_msg(strstr(r.body, "clients.txt:1"), "no file:line: %s",
                  it_show(&r));
    ck_assert_msg(!strstr(r.body, "sk-client-new"), "key in the answer");
    h_resp_free(&r);
    it_assert_normal(A_ALPHA, "old set kept");

    /* a good one, through the alias */
    it_secret_file("clients.txt", "sk-client-new-000001 newbie\n");
    r = admin(port, "POST", "/admin/reload-clients", ADMIN_TOKEN);
    ck_assert_msg(r.status == 200, "reload: %ld %s", r.status, it_show(&r));
    h_resp_free(&r);
    r = chat(A_ALPHA, OK_BODY);
    it_assert_error(&r, 401, "invalid_api_key", "removed client");
    h_resp_free(&r);
    static const char *const nb[] = {"Authorization: Bearer "
                                     "sk-client-new-000001",
                                     NULL};
    it_assert_normal(nb, "new client");
    it_assert_mock_saw(2, "admin reload");
}
END_TEST

/* A pipeline reload hands the buckets to the new auth instance
 * (export_state/import_state): a client at its limit stays there. */
START_TEST(test_limits_survive_pipeline_reload)
{
    start(NULL, "admin:\n  token_file: \"@TMPDIR@/admin.token\"\n", NULL);
    it_assert_normal(A_BETA, "beta 1");
    it_assert_normal(A_BETA, "beta 2");
    h_resp r = admin(h_sluice_port(), "POST", "/admin/reload", ADMIN_TOKEN);
    ck_assert_msg(r.status == 200, "reload: %ld %s", r.status, it_show(&r));
    h_resp_free(&r);
    r = chat(A_BETA, OK_BODY);
    it_assert_error(&r, 429, "rate_limit_exceeded", "beta after reload");
    h_resp_free(&r);
    it_assert_mock_saw(2, "limits across a reload");
    it_assert_normal(A_ALPHA, "alpha after reload");
}
END_TEST

START_TEST(test_admin_listen)
{
    char extra[512];
    int aport = h_free_port();
    snprintf(extra, sizeof extra,
             "admin:\n  token_file: \"@TMPDIR@/admin.token\"\n"
             "  listen: \"127.0.0.1:%d\"\n",
             aport);
    start(NULL, extra, NULL);
    int port = h_sluice_port();
    /* the main port has no admin API */
    h_resp r = admin(port, "GET", "/admin/pipeline", ADMIN_TOKEN);
    it_assert_error(&r, 404, NULL, "admin on the main port");
    h_resp_free(&r);
    /* the admin port has it, /health and /metrics, and nothing else */
    r = admin(aport, "GET", "/admin/pipeline", ADMIN_TOKEN);
    ck_assert_msg(r.status == 200, "admin port: %ld %s", r.status, it_show(&r));
    h_resp_free(&r);
    r = admin(aport, "GET", "/admin/pipeline", "wrong-token-0123456789");
    it_assert_error(&r, 401, NULL, "admin port, wrong token");
    h_resp_free(&r);
    r = admin(aport, "GET", "/health", NULL);
    ck_assert_msg(r.status == 200, "admin port /health: %ld", r.status);
    h_resp_free(&r);
    /* and /metrics and the dashboard page, which reads both */
    r = admin(aport, "GET", "/metrics", NULL);
    ck_assert_msg(r.status == 200, "admin port /metrics: %ld", r.status);
    h_resp_free(&r);
    r = admin(aport, "GET", "/admin/ui", NULL);
    ck_assert_msg(r.status == 200, "admin port /admin/ui: %ld", r.status);
    h_resp_free(&r);
    r = admin(port, "GET", "/admin/ui", NULL);
    it_assert_error(&r, 404, NULL, "dashboard on the main port");
    h_resp_free(&r);
    h_request(aport, "POST", CHAT, A_ALPHA, OK_BODY, strlen(OK_BODY), 10000,
              &r);
    it_assert_error(&r, 404, NULL, "chat on the admin port");
    h_resp_free(&r);
    r = admin(aport, "GET", "/v1/models", NULL);
    it_assert_error(&r, 404, NULL, "models on the admin port");
    h_resp_free(&r);
    it_assert_mock_saw(0, "admin port");
    r = admin(aport, "POST", "/admin/plugins/auth/reload", ADMIN_TOKEN);
    ck_assert_msg(r.status == 200, "reload on the admin port: %ld %s", r.status,
                  it_show(&r));
    h_resp_free(&r);
    it_assert_normal(A_ALPHA, "main port after the admin calls");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("auth_integration");
    TCase *tc = tcase_create("auth");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_missing_and_wrong_keys);
    tcase_add_test(tc, test_nothing_of_the_client_forwarded);
    tcase_add_test(tc, test_model_not_allowed);
    tcase_add_test(tc, test_model_not_allowed_after_default);
    tcase_add_test(tc, test_rate_limit);
    tcase_add_test(tc, test_token_limit_with_context);
    tcase_add_test(tc, test_allow_list);
    tcase_add_test(tc, test_untrusted_forwarded_for_ignored);
    tcase_add_test(tc, test_admin_off_without_token);
    tcase_add_test(tc, test_admin_reload);
    tcase_add_test(tc, test_limits_survive_pipeline_reload);
    tcase_add_test(tc, test_admin_listen);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
