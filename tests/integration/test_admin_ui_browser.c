/*
 * test_admin_ui_browser.c - an operator opens /admin/ui in headless
 * Chromium (driven by puppeteer-core, tests/browser/admin_ui.mjs) against
 * the real sluice and the mock upstream, one of whose keys the mock makes
 * answer 401:
 *   - the page is served with a strict Content-Security-Policy and loads
 *     with no console error (the wrong-token step's own 401 aside)
 *   - a wrong token gives a clear message and is not kept
 *   - the keys table matches GET /admin/keys, the failed key shows failed;
 *     the usage table matches GET /admin/usage/clients, with a budget bar
 *   - ten chats sent while the page is open show in the charts (request
 *     rate, p50/p99 latency from /metrics)
 *   - "reset failed keys" (confirmed) clears it, and the mock then sees that
 *     key used again; "reload pipeline" (confirmed) shows the new generation
 *   - a screenshot lands in <build>/test-output/admin_ui/dashboard.png
 * The token never appears in a URL (the page's, or any request's path in
 * sluice's access log).
 */
#include "browser_util.h"
#include "harness.h"
#include "itest_util.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOKEN "ui-test-admin-token-0123456789abcdef"
#define KB    "sk-test-key-2"

static char auth_hdr[128];

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
    static char extra[700];
    snprintf(auth_hdr, sizeof auth_hdr, "Authorization: Bearer %s", TOKEN);
    snprintf(extra, sizeof extra, "admin:\n  token_file: \"%s\"\n",
             it_secret_file("admin.token", TOKEN "\n"));
    h_opts o = {.extra = extra,
                .pipeline = "  - plugin: usage\n"
                            "    config: { budgets: { unknown: "
                            "{ budget_tokens_day: 1000 } } }\n"
                            "  - plugin: keyring\n"
                            "    config: { keys_file: \"@KEYS_FILE@\" }\n"
                            "  - plugin: retry\n"
                            "    config: { base_ms: 20, max_ms: 100 }\n"
                            "  - plugin: sse\n"};
    h_start_all(&o);
}

static int chat_ok(void)
{
    h_resp r;
    h_post_json(CHAT, OK_BODY, &r);
    int ok = r.status == 200;
    h_resp_free(&r);
    return ok;
}

static json_t *admin_get(const char *path)
{
    const char *hdrs[] = {auth_hdr, NULL};
    h_resp r;
    h_request(h_sluice_port(), "GET", path, hdrs, NULL, 0, 10000, &r);
    ck_assert_int_eq(r.status, 200);
    json_t *doc = h_resp_json(&r);
    h_resp_free(&r);
    ck_assert_ptr_nonnull(doc);
    return doc;
}

/* How many requests the mock saw with key `key`. */
static int mock_saw_key(const char *key)
{
    char want[128];
    snprintf(want, sizeof want, "Bearer %s", key);
    json_t *reqs = h_mock_requests();
    ck_assert_ptr_nonnull(reqs);
    int n = 0;
    size_t i;
    json_t *rec;
    json_array_foreach(reqs, i, rec)
    {
        const char *a = h_rec_header(rec, "authorization");
        n += a && !strcmp(a, want);
    }
    json_decref(reqs);
    return n;
}

/* The page's keys table (rows of name/state/requests/failures) against
 * the admin API's document. */
static void assert_table_matches(json_t *shown, json_t *api)
{
    json_t *keys = json_object_get(api, "keys");
    ck_assert_uint_eq(json_array_size(shown), json_array_size(keys));
    for (size_t i = 0; i < json_array_size(keys); i++) {
        json_t *k = json_array_get(keys, i), *row = json_array_get(shown, i);
        const char *name = json_string_value(json_object_get(k, "name"));
        ck_assert_str_eq(json_string_value(json_object_get(row, "name")), name);
        ck_assert_str_eq(json_string_value(json_object_get(row, "state")),
                         json_string_value(json_object_get(k, "state")));
        ck_assert_int_eq(json_number_value(json_object_get(row, "requests")),
                         json_integer_value(json_object_get(k, "requests")));
        ck_assert_int_eq(json_number_value(json_object_get(row, "failures")),
                         json_integer_value(json_object_get(
                             json_object_get(k, "failures"), "total")));
        const char *le = json_string_value(json_object_get(k, "last_error"));
        ck_assert_str_eq(json_string_value(json_object_get(row, "last_error")),
                         le ? le : "");
    }
}

static const char *str_of(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

START_TEST(test_dashboard_in_chromium)
{
    bu_npm_ci_unless("tests/browser/node_modules/puppeteer-core/package.json");
    start();

    /* the page and its assets need no token; anything else does */
    h_resp r;
    ck_assert_int_eq(h_get("/admin/ui", &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "/admin/ui/app.js"));
    h_resp_free(&r);
    h_request(h_sluice_port(), "POST", "/admin/ui", NULL, "", 0, 10000, &r);
    ck_assert_int_eq(r.status, 405);
    h_resp_free(&r);
    ck_assert_int_eq(h_get("/admin/ui/../keys", &r), 0);
    ck_assert_int_ne(r.status, 200);
    h_resp_free(&r);

    /* key 2 answers 401 from now on: it ends up failed */
    ck_assert_int_eq(
        h_mock_script("{\"rules\":[{\"match\":{\"auth\":\"Bearer " KB "\"},"
                      "\"times\":0,\"status\":401}]}"),
        0);
    for (int i = 0; i < 4; i++)
        ck_assert(chat_ok());
    json_t *before = admin_get("/admin/keys");
    json_t *usage = admin_get("/admin/usage/clients");
    /* the server keeps the charts' history: the chats are in it, and it
     * needs the token */
    ck_assert_int_eq(h_get("/admin/ui/history", &r), 0);
    ck_assert_int_eq(r.status, 401);
    h_resp_free(&r);
    json_t *hist = admin_get("/admin/ui/history");
    long long seen = 0;
    size_t hi;
    json_t *pt;
    json_array_foreach(json_object_get(hist, "points"), hi, pt)
    {
        seen += json_integer_value(json_object_get(pt, "requests"));
        ck_assert(json_is_number(json_object_get(pt, "rate")));
    }
    ck_assert_int_eq(json_integer_value(json_object_get(hist, "slot_s")), 10);
    ck_assert_int_ge(seen, 4);
    json_decref(hist);

    char url[128], shot[1200];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/admin/ui", h_sluice_port());
    snprintf(shot, sizeof shot, "%s/dashboard.png", bu_output_dir("admin_ui"));
    unlink(shot);
    char *argv[] = {"/usr/bin/env",
                    "node",
                    "tests/browser/admin_ui.mjs",
                    "--url",
                    url,
                    "--token",
                    TOKEN,
                    "--shot",
                    shot,
                    "--chromium",
                    (char *)bu_chromium_bin(),
                    "--reset",
                    "--chats",
                    "10",
                    "--max-seconds",
                    "150",
                    NULL};
    char *out = NULL;
    int rc = h_run_capture(argv, 180000, &out);
    const char *line = out ? strstr(out, "{\"console_errors\"") : NULL;
    json_t *res = line ? json_loads(line, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
    ck_assert_msg(rc == 0 && res, "admin_ui.mjs exited %d:\n%.4000s", rc,
                  out ? out : "");

    /* served with the strict policy, no console error but the expected 401 */
    ck_assert_int_eq(json_integer_value(json_object_get(res, "status")), 200);
    const char *csp = str_of(res, "csp");
    ck_assert_msg(
        strstr(csp, "default-src 'none'") && strstr(csp, "script-src 'self'") &&
            strstr(csp, "connect-src 'self'") &&
            strstr(csp, "frame-ancestors 'none'") && !strstr(csp, "unsafe-"),
        "CSP: %s", csp);
    json_t *errs = json_object_get(res, "console_errors");
    size_t i;
    json_t *e;
    json_array_foreach(errs, i, e)
    {
        ck_assert_msg(!strcmp(str_of(e, "phase"), "wrong-token") &&
                          strstr(str_of(e, "text"), "401"),
                      "console error in phase %s: %s", str_of(e, "phase"),
                      str_of(e, "text"));
    }

    /* a wrong token: a clear message, nothing kept */
    ck_assert_msg(strstr(str_of(res, "wrong_token_message"), "refused") &&
                      strstr(str_of(res, "wrong_token_message"), "401"),
                  "message: %s", str_of(res, "wrong_token_message"));
    ck_assert(json_is_null(json_object_get(res, "token_kept_after_wrong")));
    ck_assert(json_is_true(json_object_get(res, "token_in_storage")));
    ck_assert_ptr_null(strstr(str_of(res, "url_after_login"), TOKEN));

    /* the table is /admin/keys; key 2 shows failed */
    json_t *keys = json_object_get(res, "keys");
    assert_table_matches(keys, before);
    ck_assert_str_eq(str_of(json_array_get(keys, 1), "state"), "failed");
    ck_assert_str_eq(str_of(json_array_get(keys, 0), "state"), "healthy");
    ck_assert_int_eq(h_get("/health", &r), 0);
    json_t *health = h_resp_json(&r);
    ck_assert_str_eq(str_of(res, "health"), str_of(health, "status"));
    json_decref(health);
    h_resp_free(&r);
    json_t *stages = json_object_get(res, "stages");
    ck_assert_str_eq(json_string_value(json_array_get(stages, 0)), "usage");
    ck_assert_str_eq(json_string_value(json_array_get(stages, 1)), "keyring");

    /* the usage table is /admin/usage/clients, with its budget bar */
    json_t *shown = json_array_get(json_object_get(res, "usage"), 0);
    json_t *uc = json_array_get(json_object_get(usage, "clients"), 0);
    ck_assert_ptr_nonnull(shown);
    ck_assert_str_eq(str_of(shown, "client"), "unknown");
    long long today = json_integer_value(
        json_object_get(json_object_get(uc, "today"), "tokens"));
    ck_assert_int_gt(today, 0);
    ck_assert_int_eq(json_number_value(json_object_get(shown, "tokens_today")),
                     today);
    ck_assert_int_eq(
        json_number_value(json_object_get(shown, "requests_today")), 4);
    ck_assert(json_number_value(json_object_get(shown, "meter")) ==
              today / 1000.0);
    json_decref(usage);
    json_decref(before);

    /* a page opened after the first chats drew them at once, from the
     * server's history (before any two scrapes of its own) */
    json_t *fr = json_object_get(res, "first_refresh");
    ck_assert_msg(
        json_integer_value(json_object_get(fr, "busy_points")) >= 1 &&
            json_integer_value(json_object_get(fr, "circles")) >= 1,
        "first refresh: %lld points, %lld with traffic, %lld drawn",
        (long long)json_integer_value(json_object_get(fr, "points")),
        (long long)json_integer_value(json_object_get(fr, "busy_points")),
        (long long)json_integer_value(json_object_get(fr, "circles")));

    /* ten chats while the page was open: the charts show them */
    ck_assert_msg(json_number_value(json_object_get(res, "now_rate")) > 0,
                  "request rate %g",
                  json_number_value(json_object_get(res, "now_rate")));
    ck_assert_msg(strstr(str_of(res, "now_latency"), " / ") &&
                      str_of(res, "now_latency")[0] >= '0' &&
                      str_of(res, "now_latency")[0] <= '9',
                  "latency: %s", str_of(res, "now_latency"));
    ck_assert_int_ge(json_integer_value(json_object_get(res, "rate_points")),
                     1);

    /* cancel did nothing; confirm reset it */
    ck_assert_str_eq(str_of(res, "after_cancel"), "");
    ck_assert_msg(strstr(str_of(res, "reset_result"), "HTTP 200") &&
                      strstr(str_of(res, "reset_result"), "1 key(s) reset"),
                  "reset: %s", str_of(res, "reset_result"));
    json_t *after = admin_get("/admin/keys");
    ck_assert_str_eq(
        str_of(json_array_get(json_object_get(after, "keys"), 1), "state"),
        "healthy");
    json_decref(after);

    /* the pipeline reloaded as a new generation */
    ck_assert_int_eq(
        json_integer_value(json_object_get(res, "generation_after")),
        json_integer_value(json_object_get(res, "generation_before")) + 1);
    ck_assert_msg(strstr(str_of(res, "reload_result"), "HTTP 200"),
                  "reload: %s", str_of(res, "reload_result"));
    json_decref(res);
    free(out);
    bu_assert_png(shot, 20000);
    fprintf(stderr, "admin_ui: screenshot at %s\n", shot);

    /* the token was in no request line sluice logged */
    char logpath[600];
    snprintf(logpath, sizeof logpath, "%s/sluice.log", h_tmpdir());
    char *log = bu_file_read(logpath);
    ck_assert_ptr_nonnull(log);
    ck_assert_ptr_nonnull(strstr(log, "/admin/ui"));
    ck_assert_msg(!strstr(log, TOKEN), "the admin token is in sluice's log");
    free(log);

    /* the reset key is used again */
    ck_assert_int_eq(h_mock_reset(), 0);
    for (int k = 0; k < 4; k++)
        ck_assert(chat_ok());
    ck_assert_int_ge(mock_saw_key(KB), 1);
}
END_TEST

int main(void)
{
    if (!bu_chromium_bin()) {
        printf("SKIP: chromium is not installed (scripts/deps.sh --test "
               "installs the Debian package chromium)\n");
        return 77;
    }
    Suite *s = suite_create("admin_ui_browser");
    TCase *tc = tcase_create("chromium");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_dashboard_in_chromium);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
