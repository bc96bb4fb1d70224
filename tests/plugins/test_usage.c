/*
 * test_usage.c - the usage stage without a server: UTC dates, usage from a
 * response body, the text measure behind estimates, exact costs, config
 * errors, and budgets through the real host table (charged on complete,
 * refused on the next request with the reset time; requests in flight
 * reserve their estimate and settle it when done).
 */
#include "stage_harness.h"
#include "usage.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_dates)
{
    ck_assert_int_eq(usage_day_parse("1970-01-02"), 1);
    ck_assert_int_ge(usage_day_parse("2028-02-29"), 0);
    static const char *const bad[] = {"2026-02-29",  "2026-02-30", "2026-13-01",
                                      "2026-00-10",  "2026-1-01",  "2026-01-1",
                                      "1969-12-31",  "2026/01/01", "",
                                      "2026-01-01x", NULL};
    for (size_t i = 0; bad[i]; i++)
        ck_assert_msg(usage_day_parse(bad[i]) == -1, "accepted %s", bad[i]);
    ck_assert_int_eq(
        usage_day_parse("2026-12-31") - usage_day_parse("2026-01-01"), 364);
    /* 2026-12-31T23:59:59Z */
    uint64_t ms = 1798761599000ull;
    char day[11], month[8], t[21];
    usage_day_of(ms, day);
    usage_month_of(ms, month);
    ck_assert_str_eq(day, "2026-12-31");
    ck_assert_str_eq(month, "2026-12");
    usage_rfc3339(usage_next_day_s(ms), t);
    ck_assert_str_eq(t, "2027-01-01T00:00:00Z");
    usage_rfc3339(usage_next_month_s(ms), t);
    ck_assert_str_eq(t, "2027-01-01T00:00:00Z");
    usage_rfc3339(usage_next_month_s(1796270770000ull), t); /* 2026-12-03 */
    ck_assert_str_eq(t, "2027-01-01T00:00:00Z");
}
END_TEST

START_TEST(test_usage_from_body)
{
    char err[256];
    sluice_test_stage *g = sh_gen_new(NULL, err, sizeof err);
    const sluice_host *H = sluice_test_host(g);
    ck_assert_ptr_nonnull(g);
    static const char body[] =
        "{\"choices\":[{\"message\":{\"content\":\"say \\\"usage\\\": {}\"}}],"
        "\"usage\" : {\"prompt_tokens\":120,\"completion_tokens\":30,"
        "\"prompt_tokens_details\":{\"cached_tokens\":100},"
        "\"total_tokens\":150}}";
    int64_t p, c, k;
    ck_assert_int_eq(usage_from_body(H, body, strlen(body), &p, &c, &k), 1);
    ck_assert_int_eq(p, 120);
    ck_assert_int_eq(c, 30);
    ck_assert_int_eq(k, 100);
    static const char none[] = "{\"choices\":[],\"usage\":null}";
    ck_assert_int_eq(usage_from_body(H, none, strlen(none), &p, &c, &k), 0);
    static const char cut[] = "{\"usage\":{\"prompt_tokens\":1";
    ck_assert_int_eq(usage_from_body(H, cut, strlen(cut), &p, &c, &k), 0);
    /* escapes count once, UTF-8 by characters */
    static const char txt[] = "{\"content\":\"a\\\"b\xc3\xa9\"}";
    ck_assert_int_eq(usage_content_chars(txt, strlen(txt)), 4);
    static const char tail[] = "\"content\":\"ab\\";
    ck_assert_int_eq(usage_content_chars(tail, strlen(tail)), 3);
    sluice_test_stage_free(g);
}
END_TEST

START_TEST(test_cost_exact)
{
    struct usage_price p = {
        .model = "m", .input = 0.15, .output = 0.6, .cached = 0.075};
    ck_assert_int_eq(usage_cost_nano(&p, 1000000, 0, 0), 150000000);
    ck_assert_int_eq(usage_cost_nano(&p, 1000000, 1000000, 1000000),
                     75000000 + 600000000);
    p.cached = -1; /* cached at the input price */
    ck_assert_int_eq(usage_cost_nano(&p, 100, 0, 50), 15000);
    ck_assert_int_eq(usage_cost_nano(NULL, 1, 1, 0), -1);
}
END_TEST

START_TEST(test_config_errors)
{
    static const struct {
        const char *cfg, *says;
    } cases[] = {
        {"{\"budgets\":{\"a\":{\"budget_tokens_day\":-1}}}",
         "budgets.a.budget_tokens_day must be a non-negative whole number"},
        {"{\"budgets\":{\"a\":{\"budget_tokens_day\":\"x\"}}}",
         "budgets.a.budget_tokens_day"},
        {"{\"budgets\":{\"a\":{}}}", "budgets.a must be a map"},
        {"{\"budgets\":{\"a|b\":{\"budget_tokens_day\":1}}}", "'|'"},
        {"{\"prices\":{\"m\":{\"input_per_mtok\":1,\"output_per_mtok\":"
         "\"1e999\"}}}",
         "prices.m.output_per_mtok must be a non-negative number"},
        {"{\"prices\":{\"m\":{\"input_per_mtok\":1,\"output_per_mtok\":1,"
         "\"cached_input_per_mtok\":-0.5}}}",
         "prices.m.cached_input_per_mtok"},
        {"{\"prices\":[1]}", "prices must be a map"},
        {"{\"currency\":\"\"}", "currency"},
        {"{\"retention_days\":0}", "retention_days"},
        {"{\"budget\":{}}", "unknown field 'budget'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[300] = "";
        sluice_test_stage *g = sh_gen_new(cases[i].cfg, err, sizeof err);
        ck_assert_msg(g == NULL, "accepted %s", cases[i].cfg);
        ck_assert_msg(strstr(err, cases[i].says), "%s: %s", cases[i].cfg, err);
    }
}
END_TEST

static const char CHAT_BODY[] =
    "{\"model\":\"m\",\"max_tokens\":10,\"messages\":[{\"role\":\"user\","
    "\"content\":\"hi\"}]}";

static sluice_test_req *chat_ctx(sluice_test_stage *g, const char *client)
{
    sluice_test_req *r = sh_ctx_new(g, CHAT_BODY, NULL);
    ck_assert_ptr_nonnull(r);
    HOST.attr_set(CTX(r), "client", client);
    HOST.attr_set(CTX(r), "prompt_tokens_estimate", "5");
    return r;
}

START_TEST(test_budget_cycle)
{
    char err[300];
    sluice_test_stage *g = sh_gen_new(
        "{\"currency\":\"EUR\",\"prices\":{\"m\":{\"input_per_mtok\":1000,"
        "\"output_per_mtok\":2000}},\"budgets\":{\"alice\":"
        "{\"budget_tokens_day\":40,\"budget_cost_month\":1}}}",
        err, sizeof err);
    ck_assert_msg(g != NULL, "%s", err);
    sluice_test_req *ctx = chat_ctx(g, "alice");
    ck_assert_int_eq(sluice_test_on_request(ctx), SLUICE_CONTINUE);
    ck_assert_str_eq(
        sluice_test_header(ctx, "x-sluice-budget-remaining-tokens"), "40");
    ck_assert_str_eq(sluice_test_header(ctx, "x-sluice-budget-remaining-cost"),
                     "1.000000");
    sluice_test_upstream(ctx, SLUICE_ATTEMPT_HTTP, 200, NULL,
                         "{\"usage\":{\"prompt_tokens\":20,"
                         "\"completion_tokens\":15}}");
    sluice_test_on_complete(ctx);
    sluice_test_req_free(ctx);
    /* 35 used + 5 estimated + 10 asked = 50 > 40 */
    ctx = chat_ctx(g, "alice");
    ck_assert_int_eq(sluice_test_on_request(ctx), SLUICE_RESPOND);
    ck_assert_int_eq(sluice_test_status(ctx), 429);
    const char *b = sluice_test_body(ctx);
    ck_assert_msg(
        strstr(b, "\"code\":\"insufficient_quota\"") &&
            strstr(b, "budget_tokens_day") && strstr(b, "35 of 40 used") &&
            strstr(b, "needs about 15 more") && strstr(b, "T00:00:00Z"),
        "%s", b);
    ck_assert_ptr_nonnull(sluice_test_header(ctx, "Retry-After"));
    sluice_test_on_complete(ctx); /* refused: nothing charged */
    sluice_test_req_free(ctx);
    ck_assert(sluice_test_metric(
                  g, "sluice_client_budget_used_ratio{client=\"alice\","
                     "budget=\"tokens_day\"}") == 35.0 / 40);
    /* 20 * 1000 + 15 * 2000 per million = 0.05 EUR of 1 */
    ck_assert(sluice_test_metric(
                  g, "sluice_client_budget_used_ratio{client=\"alice\","
                     "budget=\"cost_month\"}") == 0.05);
    /* another client has no budget and no header; an upstream failure
     * charges nothing */
    ctx = chat_ctx(g, "bob");
    ck_assert_int_eq(sluice_test_on_request(ctx), SLUICE_CONTINUE);
    ck_assert_ptr_null(
        sluice_test_header(ctx, "x-sluice-budget-remaining-tokens"));
    sluice_test_upstream(ctx, SLUICE_ATTEMPT_HTTP, 502, NULL, "{}");
    sluice_test_on_complete(ctx);
    sluice_test_req_free(ctx);
    int64_t d, m, c;
    usage_ledger_used(sluice_test_stage_instance(g), "bob", HOST.wall_ms(), &d,
                      &m, &c);
    ck_assert_int_eq(d + m + c, 0);
    sluice_test_stage_free(g);
}
END_TEST

/* Requests in flight see each other: each reserves its estimate (5 of
 * prompt + 10 asked = 15) when admitted, and settles when done. */
START_TEST(test_reservations)
{
    char err[300];
    sluice_test_stage *g =
        sh_gen_new("{\"budgets\":{\"alice\":{\"budget_tokens_day\":40}}}", err,
                   sizeof err);
    ck_assert_msg(g != NULL, "%s", err);
    void *inst = sluice_test_stage_instance(g);
    sluice_test_req *a = chat_ctx(g, "alice"), *b = chat_ctx(g, "alice");
    sluice_test_req *c = chat_ctx(g, "alice");
    ck_assert_int_eq(sluice_test_on_request(a), SLUICE_CONTINUE);
    ck_assert_int_eq(sluice_test_on_request(b), SLUICE_CONTINUE);
    ck_assert_str_eq(sluice_test_header(b, "x-sluice-budget-remaining-tokens"),
                     "25");
    /* 15 + 15 reserved, 15 more would pass 40: refused with none done */
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_RESPOND);
    ck_assert_int_eq(sluice_test_status(c), 429);
    sluice_test_on_complete(c);
    sluice_test_req_free(c);
    int64_t d, m, cost;
    usage_ledger_used(inst, "alice", HOST.wall_ms(), &d, &m, &cost);
    ck_assert_int_eq(d, 30);
    ck_assert_int_eq(m, 30);
    /* a used 20, b failed upstream: 20 left in the windows */
    sluice_test_upstream(a, SLUICE_ATTEMPT_HTTP, 200, NULL,
                         "{\"usage\":{\"prompt_tokens\":12,"
                         "\"completion_tokens\":8}}");
    sluice_test_on_complete(a);
    sluice_test_upstream(b, SLUICE_ATTEMPT_HTTP, 503, NULL, "{}");
    sluice_test_on_complete(b);
    sluice_test_req_free(a);
    sluice_test_req_free(b);
    usage_ledger_used(inst, "alice", HOST.wall_ms(), &d, &m, &cost);
    ck_assert_int_eq(d, 20);
    ck_assert_int_eq(m, 20);
    sluice_test_stage_free(g);
}
END_TEST

/* Budgets from the clients file reach the stage as the attributes auth
 * sets (budget_*); they replace the stage's own entry for that client and
 * are remembered for the gauge. A malformed one is ignored. */
START_TEST(test_budget_from_clients_file)
{
    char err[300];
    sluice_test_stage *g =
        sh_gen_new("{\"budgets\":{\"alice\":{\"budget_tokens_day\":1000}}}",
                   err, sizeof err);
    ck_assert_msg(g != NULL, "%s", err);
    sluice_test_req *ctx = chat_ctx(g, "alice");
    HOST.attr_set(CTX(ctx), "budget_tokens_day", "40");
    ck_assert_int_eq(sluice_test_on_request(ctx), SLUICE_CONTINUE);
    ck_assert_str_eq(
        sluice_test_header(ctx, "x-sluice-budget-remaining-tokens"), "40");
    sluice_test_upstream(ctx, SLUICE_ATTEMPT_HTTP, 200, NULL,
                         "{\"usage\":{\"prompt_tokens\":20,"
                         "\"completion_tokens\":15}}");
    sluice_test_on_complete(ctx);
    sluice_test_req_free(ctx);
    ctx = chat_ctx(g, "alice");
    HOST.attr_set(CTX(ctx), "budget_tokens_day", "40");
    ck_assert_int_eq(sluice_test_on_request(ctx), SLUICE_RESPOND);
    ck_assert_msg(strstr(sluice_test_body(ctx), "35 of 40 used"), "%s",
                  sluice_test_body(ctx));
    sluice_test_on_complete(ctx);
    sluice_test_req_free(ctx);
    /* without the attribute, the stage's own budget applies */
    ctx = chat_ctx(g, "alice");
    ck_assert_int_eq(sluice_test_on_request(ctx), SLUICE_CONTINUE);
    ck_assert_str_eq(
        sluice_test_header(ctx, "x-sluice-budget-remaining-tokens"), "965");
    sluice_test_on_complete(ctx);
    sluice_test_req_free(ctx);
    /* a client known only from the clients file: on the gauge */
    ctx = chat_ctx(g, "carol");
    HOST.attr_set(CTX(ctx), "budget_tokens_month", "100");
    ck_assert_int_eq(sluice_test_on_request(ctx), SLUICE_CONTINUE);
    sluice_test_on_complete(ctx);
    sluice_test_req_free(ctx);
    ck_assert(sluice_test_metric(
                  g, "sluice_client_budget_used_ratio{client=\"carol\","
                     "budget=\"tokens_month\"}") == 0);
    /* malformed: ignored, no budget */
    ctx = chat_ctx(g, "dave");
    HOST.attr_set(CTX(ctx), "budget_tokens_day", "-3");
    ck_assert_int_eq(sluice_test_on_request(ctx), SLUICE_CONTINUE);
    ck_assert_ptr_null(
        sluice_test_header(ctx, "x-sluice-budget-remaining-tokens"));
    sluice_test_on_complete(ctx);
    sluice_test_req_free(ctx);
    /* a new instance (a restart, a reload) finds carol's learned budget in
     * the state layer; alice's was forgotten when she came without one */
    sluice_test_stage *g2 =
        sh_gen_new("{\"budgets\":{\"alice\":{\"budget_tokens_day\":1000}}}",
                   err, sizeof err);
    ck_assert_msg(g2 != NULL, "%s", err);
    char *st = NULL;
    ck_assert_int_eq(sluice_test_stage_status(g2, &st), 0);
    ck_assert_msg(strstr(st, "\"budgets\":2"), "%s", st);
    free(st);
    sluice_test_stage_free(g2);
    sluice_test_stage_free(g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("usage_stage");
    TCase *tc = tcase_create("usage");
    tcase_add_test(tc, test_dates);
    tcase_add_test(tc, test_usage_from_body);
    tcase_add_test(tc, test_cost_exact);
    tcase_add_test(tc, test_config_errors);
    tcase_add_test(tc, test_budget_cycle);
    tcase_add_test(tc, test_reservations);
    tcase_add_test(tc, test_budget_from_clients_file);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
