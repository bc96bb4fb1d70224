/*
 * test_grafana.c - docs/grafana/sluice.json against the real sluice: after
 * traffic that exercises every stage (auth, context, usage, keyring, retry,
 * sse; a plain and a streamed chat, a key failing with 401, a refused
 * client),
 * every metric name any panel query uses is declared in a real /metrics
 * scrape (histogram queries through their _bucket series), and every query
 * is valid PromQL (promtool check rules on a rules file made of them, the
 * Grafana interval macros replaced by 5m).
 */
#include "harness.h"
#include "itest_util.h"

#include <check.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALPHA "sk-client-alpha-a1b2c3d4"
#define KB    "sk-test-key-2"

static const char *const A_ALPHA[] = {"Authorization: Bearer " ALPHA, NULL};
static const char *const A_WRONG[] = {"Authorization: Bearer sk-wrong-000000",
                                      NULL};

static void setup(void)
{
    h_tmpdir();
}

static void teardown(void)
{
    h_teardown();
}

/* Every panel's targets[].expr, nested rows included, appended to exprs. */
static void collect_exprs(json_t *panels, json_t *exprs)
{
    size_t i, j;
    json_t *p, *t;
    json_array_foreach(panels, i, p)
    {
        json_array_foreach(json_object_get(p, "targets"), j, t)
        {
            json_t *e = json_object_get(t, "expr");
            ck_assert_msg(json_is_string(e) && json_string_length(e) > 0,
                          "panel \"%s\" has a target without expr",
                          json_string_value(json_object_get(p, "title")));
            json_array_append(exprs, e);
        }
        collect_exprs(json_object_get(p, "panels"), exprs);
    }
}

/* 1 when scrape declares the family `name` (# TYPE name ...), or `name` is
 * a histogram's _bucket/_sum/_count series of a declared histogram. */
static int declared(const char *scrape, const char *name)
{
    char want[200];
    snprintf(want, sizeof want, "# TYPE %s ", name);
    if (strstr(scrape, want))
        return 1;
    static const char *const sfx[] = {"_bucket", "_sum", "_count", NULL};
    size_t n = strlen(name);
    for (size_t i = 0; sfx[i]; i++) {
        size_t k = strlen(sfx[i]);
        if (n > k && !strcmp(name + n - k, sfx[i])) {
            snprintf(want, sizeof want, "# TYPE %.*s histogram\n", (int)(n - k),
                     name);
            return strstr(scrape, want) != NULL;
        }
    }
    return 0;
}

START_TEST(test_dashboard_metrics_exist)
{
    it_secret_file("clients.txt", ALPHA " alpha\n");
    h_opts o = {.pipeline =
                    "  - plugin: auth\n"
                    "    config: { clients_file: \"@TMPDIR@/clients.txt\" }\n"
                    "  - plugin: context\n"
                    "  - plugin: usage\n"
                    "    config: { budgets: { alpha: "
                    "{ budget_tokens_day: 100000 } } }\n"
                    "  - plugin: keyring\n"
                    "    config: { keys_file: \"@KEYS_FILE@\" }\n"
                    "  - plugin: retry\n"
                    "    config: { base_ms: 20, max_ms: 100 }\n"
                    "  - plugin: sse\n"};
    h_start_all(&o);
    ck_assert_int_eq(
        h_mock_script("{\"rules\":[{\"match\":{\"auth\":\"Bearer " KB "\"},"
                      "\"times\":0,\"status\":401}]}"),
        0);
    static const char stream_body[] =
        "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{\"role\":"
        "\"user\",\"content\":\"hi\"}]}";
    h_resp r;
    for (int i = 0; i < 3; i++) {
        h_request(h_sluice_port(), "POST", CHAT, A_ALPHA, OK_BODY,
                  strlen(OK_BODY), 10000, &r);
        ck_assert_int_eq(r.status, 200);
        h_resp_free(&r);
    }
    h_request(h_sluice_port(), "POST", CHAT, A_ALPHA, stream_body,
              strlen(stream_body), 10000, &r);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    h_request(h_sluice_port(), "POST", CHAT, A_WRONG, OK_BODY, strlen(OK_BODY),
              10000, &r);
    ck_assert_int_eq(r.status, 401);
    h_resp_free(&r);
    char *scrape = h_metrics_scrape();
    /* the traffic happened: a key failed, a retry ran, a client was refused */
    ck_assert_ptr_nonnull(strstr(scrape, "sluice_key_failures_total{"));
    ck_assert_ptr_nonnull(strstr(scrape, "sluice_retry_attempts_total{"));
    ck_assert_ptr_nonnull(strstr(scrape, "sluice_auth_rejections_total{"));
    ck_assert_ptr_nonnull(strstr(scrape, "sluice_client_budget_used_ratio{"));

    json_error_t je;
    json_t *dash = json_load_file("docs/grafana/sluice.json", 0, &je);
    ck_assert_msg(dash, "docs/grafana/sluice.json:%d: %s", je.line, je.text);
    json_t *exprs = json_array();
    collect_exprs(json_object_get(dash, "panels"), exprs);
    ck_assert_uint_ge(json_array_size(exprs), 20);

    /* each metric name in each query is in the scrape */
    size_t i, names = 0;
    json_t *e;
    char rules[400];
    snprintf(rules, sizeof rules, "%s/rules.yml", h_tmpdir());
    FILE *rf = fopen(rules, "w");
    ck_assert_ptr_nonnull(rf);
    fputs("groups:\n  - name: grafana\n    rules:\n", rf);
    json_array_foreach(exprs, i, e)
    {
        const char *x = json_string_value(e);
        for (const char *p = strstr(x, "sluice_"); p;
             p = strstr(p + 1, "sluice_")) {
            if (p > x && (isalnum((unsigned char)p[-1]) || p[-1] == '_'))
                continue;
            size_t n = 0;
            while (isalnum((unsigned char)p[n]) || p[n] == '_')
                n++;
            char name[160];
            snprintf(name, sizeof name, "%.*s", (int)n, p);
            ck_assert_msg(declared(scrape, name),
                          "docs/grafana/sluice.json queries %s, which the "
                          "/metrics scrape does not have (query: %s)",
                          name, x);
            names++;
        }
        /* the query as a recording rule, Grafana's macros made concrete */
        fprintf(rf, "      - record: grafana:q%zu\n        expr: '", i);
        for (const char *p = x; *p; p++) {
            if (!strncmp(p, "$__rate_interval", 16))
                fputs("5m", rf), p += 15;
            else if (!strncmp(p, "$__interval", 11))
                fputs("5m", rf), p += 10;
            else if (*p == '\'')
                fputs("''", rf);
            else
                fputc(*p, rf);
        }
        fputs("'\n", rf);
    }
    fclose(rf);
    ck_assert_uint_ge(names, json_array_size(exprs));

    char cmd[600];
    snprintf(cmd, sizeof cmd, "promtool check rules '%s'", rules);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    char *out = NULL;
    int rc = h_run_capture(argv, 30000, &out);
    ck_assert_msg(rc == 0,
                  "promtool check rules on the dashboard's queries (exit %d; "
                  "is the Debian package prometheus installed?):\n%s",
                  rc, out ? out : "");
    free(out);
    json_decref(exprs);
    json_decref(dash);
    free(scrape);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("grafana");
    TCase *tc = tcase_create("dashboard");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_dashboard_metrics_exist);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
