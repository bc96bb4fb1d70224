/*
 * test_reqbody.c - the chat body check at the door (core/reqbody.c), and
 * the two server limits issue 6 added to the config (request_timeout_s,
 * max_connections). The jansson defaults the check relies on (invalid
 * UTF-8 and \u0000 rejected) are asserted here, so a jansson upgrade that
 * changed them would be noticed.
 */
#include "config.h"
#include "reqbody.h"

#include <check.h>
#include <string.h>

static int check(const char *body, size_t len, const char **code,
                 const char **param)
{
    json_t *out = NULL;
    struct reqbody_error e;
    int rc = reqbody_parse(body, len, &out, &e);
    if (rc == 0) {
        ck_assert(json_is_object(out));
        json_decref(out);
        return 0;
    }
    ck_assert_ptr_null(out);
    ck_assert(e.message[0] != '\0');
    *code = e.code;
    *param = e.param;
    return -1;
}

#define OK(lit)                                                                \
    do {                                                                       \
        const char *c_, *p_;                                                   \
        ck_assert_msg(check(lit, sizeof(lit) - 1, &c_, &p_) == 0, "%s", lit);  \
    } while (0)
#define BAD(lit, want_code, want_param)                                        \
    do {                                                                       \
        const char *c_ = NULL, *p_ = NULL;                                     \
        ck_assert_msg(check(lit, sizeof(lit) - 1, &c_, &p_) == -1, "%s", lit); \
        ck_assert_str_eq(c_, want_code);                                       \
        if (want_param)                                                        \
            ck_assert_str_eq(p_, (const char *)want_param);                    \
        else                                                                   \
            ck_assert_ptr_null(p_);                                            \
    } while (0)

START_TEST(bodies_ok)
{
    OK("{\"model\":\"m\",\"messages\":[]}");
    OK("{}"); /* missing fields are the upstream's (or the context stage's) */
    OK("{\"model\":\"m\",\"stream\":false,\"max_tokens\":0}");
    OK("{\"model\":\"m\",\"stream\":null,\"max_tokens\":null}");
    OK("{\"model\":null}"); /* no model: default_model (README) */
    OK("{\"model\":\"h\xc3\xa9\",\"x\":\"\\u00e9\\ud83d\\ude00\"}");
    OK("{\"max_completion_tokens\":9007199254740991}");
}
END_TEST

START_TEST(bodies_bad)
{
    BAD("", "invalid_json", NULL);
    BAD("{", "invalid_json", NULL);
    BAD("[1]", "invalid_json", NULL);
    BAD("{\"model\":1}", "invalid_type", "model");
    BAD("{\"messages\":\"x\"}", "invalid_type", "messages");
    BAD("{\"stream\":\"yes\"}", "invalid_type", "stream");
    BAD("{\"max_tokens\":-1}", "invalid_type", "max_tokens");
    BAD("{\"max_tokens\":2.0}", "invalid_type", "max_tokens");
    BAD("{\"max_completion_tokens\":\"5\"}", "invalid_type",
        "max_completion_tokens");
    BAD("{\"a\":1,\"a\":2}", "invalid_json", NULL);
    /* jansson's defaults: invalid UTF-8 and NUL are rejected */
    BAD("{\"model\":\"\xff\"}", "invalid_json", NULL);
    BAD("{\"model\":\"\xc0\xaf\"}", "invalid_json", NULL);
    BAD("{\"model\":\"\xed\xa0\x80\"}", "invalid_json", NULL);
    BAD("{\"model\":\"\\ud800\"}", "invalid_json", NULL);
    BAD("{\"model\":\"a\\u0000\"}", "invalid_json", NULL);
    BAD("{\"model\":\"a\0\"}", "invalid_json", NULL);
    BAD("{}\0", "invalid_json", NULL);
    const char *c, *p;
    ck_assert_int_eq(check(NULL, 0, &c, &p), -1);
}
END_TEST

START_TEST(server_limits_config)
{
    struct config *cfg = NULL;
    char err[512];
    const char *y = "server: { request_timeout_s: 7, max_connections: 99 }\n"
                    "pipeline: []\n";
    ck_assert_msg(
        config_load_string(y, strlen(y), "t.yaml", &cfg, err, sizeof err) == 0,
        "%s", err);
    ck_assert_int_eq(cfg->request_timeout_ms, 7000);
    ck_assert_int_eq(cfg->max_client_connections, 99);
    config_free(cfg);
    y = "pipeline: []\n";
    ck_assert_int_eq(
        config_load_string(y, strlen(y), "t.yaml", &cfg, err, sizeof err), 0);
    ck_assert_int_eq(cfg->request_timeout_ms, 30000);
    ck_assert_int_eq(cfg->max_client_connections, 10000);
    config_free(cfg);
    const char *bad[] = {"server: { request_timeout_s: 0 }\npipeline: []\n",
                         "server: { request_timeout_s: x }\npipeline: []\n",
                         "server: { max_connections: 0 }\npipeline: []\n",
                         NULL};
    for (int i = 0; bad[i]; i++) {
        cfg = NULL;
        ck_assert_int_eq(config_load_string(bad[i], strlen(bad[i]), "t.yaml",
                                            &cfg, err, sizeof err),
                         -1);
        ck_assert_msg(strstr(err, "t.yaml:1: server."), "%s", err);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("reqbody");
    TCase *tc = tcase_create("reqbody");
    tcase_add_test(tc, bodies_ok);
    tcase_add_test(tc, bodies_bad);
    tcase_add_test(tc, server_limits_config);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
