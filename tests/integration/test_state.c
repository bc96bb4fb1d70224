/*
 * test_state.c - the local state backend through the real binary: a crash
 * (kill -9) and a start again keep what the keyring learnt (a failed key
 * stays failed, a cooling key cools until its deadline) and what a client
 * used of its rate limit, a reset is kept too, and a corrupt or unusable state
 * file stops the start with a message naming the file (or, with
 * reset_on_corrupt, starts afresh with a WARNING).
 */
#include "harness.h"
#include "itest_util.h"

#include <check.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOKEN "state-admin-token-0123456789"
#define KA    "sk-state-test-aaaa0001"
#define KB    "sk-state-test-bbbb0002"
#define KC    "sk-state-test-cccc0003"

static const char BODY[] =
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\","
    "\"content\":\"hi\"}]}";

static char extra_yaml[1024];
static char auth_hdr[128];
static char pipeline[1024];
static h_opts opts;

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
    snprintf(auth_hdr, sizeof auth_hdr, "Authorization: Bearer %s", TOKEN);
    snprintf(extra_yaml, sizeof extra_yaml, "admin:\n  token_file: \"%s\"\n",
             it_secret_file("admin.token", TOKEN "\n"));
    snprintf(pipeline, sizeof pipeline,
             "  - plugin: keyring\n"
             "    config: { keys_file: \"@KEYS_FILE@\" }\n"
             "  - plugin: retry\n"
             "    config: { base_ms: 20, max_ms: 50 }\n"
             "  - plugin: sse\n");
    memset(&opts, 0, sizeof opts);
    opts.keys = KA "\n" KB "\n" KC "\n";
    opts.pipeline = pipeline;
    opts.extra = extra_yaml;
    h_start_all(&opts);
}

static long admin(const char *method, const char *path, char **body)
{
    const char *hdrs[] = {auth_hdr, NULL};
    h_resp r;
    h_request(h_sluice_port(), method, path, hdrs, NULL, 0, 10000, &r);
    long st = r.status;
    if (body)
        *body = strdup(r.body ? r.body : "");
    h_resp_free(&r);
    return st;
}

static void chat_ok(void)
{
    h_resp r;
    h_post_json(CHAT, BODY, &r);
    ck_assert_msg(r.status == 200, "status %ld: %s", r.status,
                  r.body ? r.body : "");
    h_resp_free(&r);
}

/* Rows of the state file whose key starts with prefix (what: "count(*)"),
 * or the sum of their counters ("sum(count)"), read as another process
 * would (-1: the file cannot be read). */
static int file_query(const char *what, const char *prefix)
{
    char path[600], sql[256];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int n = -1;
    snprintf(path, sizeof path, "%s/state.db", h_tmpdir());
    snprintf(sql, sizeof sql,
             "SELECT %s FROM state WHERE substr(key,1,%zu)='%s'", what,
             strlen(prefix), prefix);
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* Wait (bounded) until the writer has put `want` rows under prefix (or
 * counted that much, with what "sum(count)"). */
static void wait_file(const char *what, const char *prefix, int want)
{
    int n = -1;
    for (int i = 0; i < 250 && (n = file_query(what, prefix)) != want; i++)
        h_sleep_ms(20);
    ck_assert_msg(n == want, "%d rows under %s in the state file, want %d", n,
                  prefix, want);
}

/* The keys the mock saw since its last reset, as letters ("CCC"). */
static void mock_keys(char *out, size_t outlen)
{
    json_t *reqs = h_mock_requests();
    size_t i, n = 0;
    for (i = 0; i < json_array_size(reqs) && n + 1 < outlen; i++) {
        const char *a = h_rec_header(json_array_get(reqs, i), "authorization");
        out[n++] = a && strlen(a) > 21 ? (char)(a[21] - 'a' + 'A') : '?';
    }
    out[n] = '\0';
    json_decref(reqs);
}

START_TEST(kill9_keeps_failed_and_cooling_keys)
{
    start();
    ck_assert_int_eq(
        h_mock_script("{\"rules\":[{\"match\":{\"auth\":\"Bearer " KA "\"},"
                      "\"times\":1,\"status\":401},"
                      "{\"match\":{\"auth\":\"Bearer " KB "\"},"
                      "\"times\":1,\"status\":429,"
                      "\"headers\":{\"Retry-After\":\"60\"}}]}"),
        0);
    chat_ok(); /* A: 401, B: 429, C: 200 */
    char seen[64];
    mock_keys(seen, sizeof seen);
    ck_assert_str_eq(seen, "ABC");
    wait_file("count(*)", "keyring:health:", 2);

    h_kill9_sluice();
    h_start_sluice(&opts);
    ck_assert_int_eq(h_mock_reset(), 0);
    for (int i = 0; i < 4; i++)
        chat_ok();
    mock_keys(seen, sizeof seen);
    ck_assert_str_eq(seen, "CCCC"); /* A still failed, B still cooling */

    char *body;
    ck_assert_int_eq(admin("GET", "/admin/keys", &body), 200);
    ck_assert_msg(strstr(body, "\"state\":\"failed\""), "%s", body);
    ck_assert_msg(strstr(body, "\"state\":\"cooling\""), "%s", body);
    ck_assert_msg(strstr(body, "401: key rejected"), "%s", body);
    ck_assert_msg(strstr(body, "\"changed_by\":\"") &&
                      strstr(body, "\"changed_by\":null"),
                  "%s", body);
    ck_assert_msg(!strstr(body, KA) && !strstr(body, KB), "%s", body);
    free(body);

    /* a reset is kept across the next crash as well */
    ck_assert_int_eq(admin("POST", "/admin/reset-failed-keys", &body), 200);
    free(body);
    wait_file("count(*)", "keyring:health:", 0);
    h_kill9_sluice();
    h_start_sluice(&opts);
    ck_assert_int_eq(h_mock_reset(), 0);
    for (int i = 0; i < 3; i++)
        chat_ok();
    mock_keys(seen, sizeof seen);
    ck_assert_str_eq(seen, "ABC");
}
END_TEST

START_TEST(kill9_keeps_the_rate_limit_window)
{
    snprintf(auth_hdr, sizeof auth_hdr, "x-api-key: sk-client-state-000001");
    it_secret_file("clients.txt", "sk-client-state-000001 st rpm=3\n");
    memset(&opts, 0, sizeof opts);
    opts.pipeline = "  - plugin: auth\n"
                    "    config: { clients_file: \"@TMPDIR@/clients.txt\" }\n"
                    "  - plugin: keyring\n"
                    "    config: { keys_file: \"@KEYS_FILE@\" }\n"
                    "  - plugin: sse\n";
    h_start_all(&opts);
    const char *hdrs[] = {auth_hdr, NULL};
    h_resp r;
    for (int i = 0; i < 3; i++) {
        h_request(h_sluice_port(), "POST", CHAT, hdrs, BODY, strlen(BODY),
                  10000, &r);
        ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
        h_resp_free(&r);
    }
    wait_file("sum(count)", "auth:win:r:st:", 3);
    h_kill9_sluice();
    h_start_sluice(&opts);
    h_request(h_sluice_port(), "POST", CHAT, hdrs, BODY, strlen(BODY), 10000,
              &r);
    ck_assert_msg(r.status == 429, "after the restart: %ld %s", r.status,
                  r.body);
    ck_assert_ptr_nonnull(h_resp_header(&r, "retry-after"));
    h_resp_free(&r);
    ck_assert_int_eq(h_mock_request_count(), 3);
}
END_TEST

/* sluice --check (with the state file) is not the interest here: the real
 * start is. */
static char *start_output(const char *state_yaml)
{
    char cfg[600], *out = NULL;
    snprintf(cfg, sizeof cfg, "%s/bad.yaml", h_tmpdir());
    h_opts o = {0};
    o.pipeline = "  - plugin: sse\n";
    o.extra = state_yaml;
    ck_assert_int_eq(h_write_config(cfg, &o, 0), 0);
    const char *bin = getenv("SLUICE_BIN");
    ck_assert_ptr_nonnull(bin);
    char *argv[] = {(char *)bin, "-c", cfg, NULL};
    int rc = h_run_capture(argv, 10000, &out);
    ck_assert_msg(rc != 0 && rc < 128, "exit %d: %s", rc, out ? out : "");
    return out;
}

START_TEST(corrupt_or_unusable_file_is_a_clear_error)
{
    char path[600], yaml[800];
    snprintf(path, sizeof path, "%s/junk.db", h_tmpdir());
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 100; i++)
        fputs("not a database, not at all. ", f);
    fclose(f);
    snprintf(yaml, sizeof yaml, "state:\n  path: \"%s\"\n", path);
    char *out = start_output(yaml);
    ck_assert_msg(strstr(out, path) && strstr(out, "not a usable state file"),
                  "%s", out);
    free(out);

    /* a folder where the file should be */
    snprintf(path, sizeof path, "%s/adir", h_tmpdir());
    ck_assert_int_eq(mkdir(path, 0700), 0);
    snprintf(yaml, sizeof yaml, "state:\n  path: \"%s\"\n", path);
    out = start_output(yaml);
    ck_assert_msg(strstr(out, path) && strstr(out, "cannot open for writing"),
                  "%s", out);
    free(out);
}
END_TEST

START_TEST(reset_on_corrupt_starts_afresh_with_a_warning)
{
    char path[600], yaml[800];
    snprintf(path, sizeof path, "%s/junk.db", h_tmpdir());
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 100; i++)
        fputs("not a database, not at all. ", f);
    fclose(f);
    snprintf(yaml, sizeof yaml,
             "state:\n  path: \"%s\"\n  reset_on_corrupt: true\n", path);
    memset(&opts, 0, sizeof opts);
    opts.pipeline = "  - plugin: sse\n";
    opts.extra = yaml;
    h_start_all(&opts);
    h_resp r;
    h_get("/health", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(strstr(r.body, "\"backend\":\"local\""), "%s", r.body);
    h_resp_free(&r);
    char aside[700], logp[700], *log;
    snprintf(aside, sizeof aside, "%s.corrupt", path);
    struct stat sb;
    ck_assert_int_eq(stat(aside, &sb), 0);
    snprintf(logp, sizeof logp, "%s/sluice.log", h_tmpdir());
    char *argv[] = {"/bin/cat", logp, NULL};
    h_run_capture(argv, 5000, &log);
    ck_assert_msg(strstr(log, "WARN") && strstr(log, "reset_on_corrupt"), "%s",
                  log);
    free(log);
}
END_TEST

static Suite *state_suite(void)
{
    Suite *s = suite_create("state");
    TCase *tc = tcase_create("local");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, kill9_keeps_failed_and_cooling_keys);
    tcase_add_test(tc, kill9_keeps_the_rate_limit_window);
    tcase_add_test(tc, corrupt_or_unusable_file_is_a_clear_error);
    tcase_add_test(tc, reset_on_corrupt_starts_afresh_with_a_warning);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(state_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
