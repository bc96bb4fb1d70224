/*
 * test_usage.c - the usage stage through the real binary and the mock:
 *   - plain and streamed chats are charged per client x model x day from
 *     the upstream's usage (streams: sluice asks for the usage chunk and
 *     hides it from a client that did not ask; the mock saw the ask), an
 *     answer without usage is charged as estimated, a model without price
 *     has cost null; GET /admin/usage groups, filters and answers CSV;
 *     the counters survive a restart (state layer, local backend)
 *   - budgets: 429 insufficient_quota naming the budget, the usage and the
 *     reset, never sent upstream; x-sluice-budget-remaining-tokens; the
 *     overrun is at most one request; sluice_client_budget_used_ratio
 *   - bad input: group_by, dates, from > to, a range over 366 days, format;
 *     a negative or non-numeric budget or price is an error at --check
 *     naming file:line and the field
 *   - the placement: prices on the model table (routes:, aliases,
 *     globs), budgets on the clients file's line (through auth's
 *     attributes), with their errors at --check (file:line, field)
 */
#include "harness.h"
#include "itest_util.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#define TOKEN  "usage-test-admin-token-0123456789"
#define ALPHA  "sk-client-alpha-u5a9e1"
#define BETA   "sk-client-beta-u7c3d2"
#define PRICED "gpt-4o-mini"

static const char *const A_ALPHA[] = {"Authorization: Bearer " ALPHA, NULL};
static const char *const A_BETA[] = {"Authorization: Bearer " BETA, NULL};
static char auth_hdr[128];

/* What opts_for adds: options after alpha's name in the clients file, and
 * more top-level YAML (e.g. routes:). */
static const char *alpha_options = "", *more_yaml = "";

static void setup(void)
{
    h_tmpdir();
    alpha_options = more_yaml = "";
}

static void teardown(void)
{
    h_teardown();
}

static h_opts opts_for(const char *usage_cfg)
{
    static char pipeline[2048], extra[2048], clients[256];
    snprintf(auth_hdr, sizeof auth_hdr, "Authorization: Bearer %s", TOKEN);
    snprintf(clients, sizeof clients, ALPHA " alpha %s\n" BETA " beta\n",
             alpha_options);
    it_secret_file("clients.txt", clients);
    snprintf(extra, sizeof extra,
             "admin:\n  token_file: \"%s\"\n"
             "state:\n  backend: local\n  path: \"@TMPDIR@/state.db\"\n%s",
             it_secret_file("admin.token", TOKEN "\n"), more_yaml);
    snprintf(pipeline, sizeof pipeline,
             "  - plugin: auth\n"
             "    config: { clients_file: \"@TMPDIR@/clients.txt\" }\n"
             "  - plugin: context\n"
             "    config: { on_unknown_model: pass }\n"
             "  - plugin: usage\n"
             "    config:\n%s"
             "  - plugin: keyring\n"
             "    config: { keys_file: \"@KEYS_FILE@\" }\n"
             "  - plugin: sse\n",
             usage_cfg);
    h_opts o = {.pipeline = pipeline, .extra = extra};
    return o;
}

static json_t *admin_json(const char *path, long want)
{
    const char *hdrs[] = {auth_hdr, NULL};
    h_resp r;
    h_request(h_sluice_port(), "GET", path, hdrs, NULL, 0, 10000, &r);
    ck_assert_msg(r.status == want, "GET %s: %ld %s", path, r.status,
                  r.body ? r.body : "");
    json_t *doc = h_resp_json(&r);
    ck_assert_msg(doc != NULL, "GET %s: not JSON: %s", path, r.body);
    h_resp_free(&r);
    return doc;
}

static long long num(json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

/* A plain chat; adds the usage the client saw to *tokens. */
static long chat(const char *const *who, const char *model, long long *tokens,
                 h_resp *keep)
{
    char body[300];
    snprintf(body, sizeof body,
             "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\","
             "\"content\":\"hello there\"}]}",
             model);
    h_resp r;
    h_request(h_sluice_port(), "POST", CHAT, who, body, strlen(body), 10000,
              &r);
    long st = r.status;
    json_t *doc = h_resp_json(&r);
    if (tokens && st == 200)
        *tokens += num(json_object_get(doc, "usage"), "total_tokens");
    json_decref(doc);
    if (keep)
        *keep = r;
    else
        h_resp_free(&r);
    return st;
}

/* The row of doc's data with k = v, or NULL. */
static json_t *row_find(json_t *doc, const char *k, const char *v)
{
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(doc, "data"), i, row)
    {
        const char *s = json_string_value(json_object_get(row, k));
        if (s && !strcmp(s, v))
            return row;
    }
    return NULL;
}

/* Stop sluice cleanly (SIGTERM: the state is flushed) and start it again
 * with the same options. */
static void restart_sluice(const h_opts *o)
{
    pid_t pid = h_sluice_pid();
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    char log[400], old[420];
    snprintf(log, sizeof log, "%s/sluice.log", h_tmpdir());
    snprintf(old, sizeof old, "%s.1", log);
    rename(log, old); /* the harness reads the port from a fresh log */
    h_start_sluice(o);
}

static json_t *row_where(json_t *doc, const char *k, const char *v)
{
    json_t *row = row_find(doc, k, v);
    ck_assert_msg(row != NULL, "no row with %s=%s", k, v);
    return row;
}

/* A request is charged in on_complete, which runs after the client has its
 * answer (and maybe on the other worker): a report read right after it may
 * not hold it yet. GET the report until the row with k = v has field ==
 * want, for at most 10 s; returns the last document (caller decrefs). */
static json_t *usage_wait(const char *path, const char *k, const char *v,
                          const char *field, long long want)
{
    double until = h_now_ms() + 10000;
    for (;;) {
        json_t *doc = admin_json(path, 200);
        json_t *row = row_find(doc, k, v);
        if ((row && num(row, field) == want) || h_now_ms() >= until)
            return doc;
        json_decref(doc);
        h_sleep_ms(20);
    }
}

/* Wait until the budget view says `client` used `tokens` today. */
static void budget_wait(const char *client, long long tokens)
{
    double until = h_now_ms() + 10000;
    long long seen = -1;
    while (h_now_ms() < until) {
        json_t *doc = admin_json("/admin/usage/clients", 200);
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(doc, "clients"), i, c)
        {
            const char *name = json_string_value(json_object_get(c, "client"));
            if (name && !strcmp(name, client))
                seen = num(json_object_get(c, "today"), "tokens");
        }
        json_decref(doc);
        if (seen == tokens)
            return;
        h_sleep_ms(20);
    }
    ck_abort_msg("%s: %lld tokens charged today, want %lld", client, seen,
                 tokens);
}

START_TEST(test_usage_cost_and_report)
{
    h_opts o = opts_for("      currency: EUR\n"
                        "      prices:\n"
                        "        " PRICED ": { input_per_mtok: 1000, "
                        "output_per_mtok: 2000 }\n");
    h_start_all(&o);
    long long alpha = 0;
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(chat(A_ALPHA, PRICED, &alpha, NULL), 200);
    long long unpriced = 0;
    ck_assert_int_eq(chat(A_ALPHA, H_MODEL_ID, &unpriced, NULL), 200);

    /* beta streams without asking for usage: sluice asks, then hides it */
    static const char sbody[] =
        "{\"model\":\"" PRICED "\",\"stream\":true,\"messages\":[{\"role\":"
        "\"user\",\"content\":\"hello there\"}]}";
    h_stream s;
    h_stream_request(h_sluice_port(), "POST", CHAT, A_BETA, sbody,
                     strlen(sbody), 10000, 0, 0, &s);
    ck_assert_int_eq(s.resp.status, 200);
    ck_assert(h_stream_has_done(&s));
    for (size_t i = 0; i < s.nevents; i++)
        ck_assert_msg(!s.events[i].data ||
                          !strstr(s.events[i].data, "\"prompt_tokens\""),
                      "the client got a usage chunk it did not ask for: %s",
                      s.events[i].data);
    h_stream_free(&s);
    json_t *reqs = h_mock_requests();
    json_t *last = json_array_get(reqs, json_array_size(reqs) - 1);
    size_t blen;
    const char *b = h_rec_body(last, &blen);
    ck_assert_msg(b && strstr(b, "\"include_usage\":true"),
                  "the upstream was not asked for usage: %s", b ? b : "");
    json_decref(reqs);

    /* an answer without usage: charged as estimated */
    ck_assert_int_eq(
        h_mock_script("{\"rules\":[{\"match\":{\"body_contains\":\"nousage\"},"
                      "\"json\":{\"id\":\"x\",\"object\":\"chat.completion\","
                      "\"model\":\"" PRICED "\",\"choices\":[{\"index\":0,"
                      "\"message\":{\"role\":\"assistant\",\"content\":"
                      "\"abcdefghijklmnop\"},\"finish_reason\":\"stop\"}]}}]}"),
        0);
    static const char nbody[] =
        "{\"model\":\"" PRICED "\",\"messages\":[{\"role\":\"user\","
        "\"content\":\"nousage\"}]}";
    h_resp r;
    h_request(h_sluice_port(), "POST", CHAT, A_BETA, nbody, strlen(nbody),
              10000, &r);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);

    /* a stream whose upstream sends no usage chunk: estimated from the
     * streamed text (16 characters: 4 tokens) */
    ck_assert_int_eq(
        h_mock_script(
            "{\"rules\":[{\"match\":{\"body_contains\":\"rawstream\"},"
            "\"headers\":{\"Content-Type\":\"text/event-stream\"},"
            "\"stream\":{\"raw\":[\"data: {\\\"choices\\\":[{\\\"index\\\":0,"
            "\\\"delta\\\":{\\\"content\\\":\\\"abcdefgh\\\"}}]}\\n\\n\","
            "\"data: {\\\"choices\\\":[{\\\"index\\\":0,\\\"delta\\\":{"
            "\\\"content\\\":\\\"ijklmnop\\\"}}]}\\n\\n\",\"data: "
            "[DONE]\\n\\n\"]}}]}"),
        0);
    static const char rbody[] =
        "{\"model\":\"" PRICED "\",\"stream\":true,\"messages\":[{\"role\":"
        "\"user\",\"content\":\"rawstream\"}]}";
    h_stream_request(h_sluice_port(), "POST", CHAT, A_BETA, rbody,
                     strlen(rbody), 10000, 0, 0, &s);
    ck_assert_int_eq(s.resp.status, 200);
    ck_assert(h_stream_has_done(&s));
    h_stream_free(&s);
    json_t *est = usage_wait("/admin/usage?group_by=client&client=beta",
                             "client", "beta", "estimated_requests", 2);
    json_t *e0 = json_array_get(json_object_get(est, "data"), 0);
    ck_assert_int_eq(num(e0, "estimated_requests"), 2);
    ck_assert_int_ge(num(e0, "completion_tokens"), 4 + 4);
    json_decref(est);

    /* by client */
    json_decref(usage_wait("/admin/usage?group_by=client", "client", "alpha",
                           "requests", 3));
    json_t *doc = usage_wait("/admin/usage?group_by=client", "client", "beta",
                             "requests", 3);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "currency")),
                     "EUR");
    json_t *ra = row_where(doc, "client", "alpha");
    ck_assert_int_eq(num(ra, "requests"), 3);
    ck_assert_int_eq(num(ra, "total_tokens"), alpha + unpriced);
    ck_assert_int_eq(num(ra, "unpriced_tokens"), unpriced);
    ck_assert_int_eq(num(ra, "estimated_requests"), 0);
    /* 1000 / 2000 per million: cost = (prompt + 2 * completion) / 1000 */
    double cost = json_real_value(json_object_get(ra, "cost"));
    ck_assert_msg(cost > 0 && cost < 1, "cost %g", cost);
    json_t *rb = row_where(doc, "client", "beta");
    ck_assert_int_eq(num(rb, "requests"), 3);
    ck_assert_int_eq(num(rb, "estimated_requests"), 2);
    ck_assert_ptr_null(json_object_get(ra, "model"));
    json_decref(doc);

    /* by model, one client: the unpriced model's cost is null */
    doc = admin_json("/admin/usage?group_by=model&client=alpha", 200);
    ck_assert_uint_eq(json_array_size(json_object_get(doc, "data")), 2);
    ck_assert(json_is_null(
        json_object_get(row_where(doc, "model", H_MODEL_ID), "cost")));
    ck_assert(json_is_number(
        json_object_get(row_where(doc, "model", PRICED), "cost")));
    json_decref(doc);

    /* by day, filtered by model; the exact cost of alpha's priced calls */
    char path[200], day[11];
    time_t now = time(NULL);
    strftime(day, sizeof day, "%Y-%m-%d", gmtime(&now));
    snprintf(path, sizeof path,
             "/admin/usage?from=%s&to=%s&group_by=day,client&model=" PRICED,
             day, day);
    doc = admin_json(path, 200);
    ra = row_where(doc, "client", "alpha");
    ck_assert_str_eq(json_string_value(json_object_get(ra, "day")), day);
    double want = (double)(num(ra, "prompt_tokens") * 1000 +
                           num(ra, "completion_tokens") * 2000) /
                  1e6;
    ck_assert_msg(json_real_value(json_object_get(ra, "cost")) == want,
                  "cost %g, want %g",
                  json_real_value(json_object_get(ra, "cost")), want);
    json_decref(doc);

    /* CSV */
    const char *hdrs[] = {auth_hdr, NULL};
    h_request(h_sluice_port(), "GET", "/admin/usage?group_by=client&format=csv",
              hdrs, NULL, 0, 10000, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(
        strstr(h_resp_header(&r, "Content-Type"), "text/csv"));
    ck_assert_msg(!strncmp(r.body,
                           "client,requests,prompt_tokens,completion_tokens,"
                           "cached_tokens,total_tokens,cost,currency,"
                           "unpriced_tokens,estimated_requests\r\nalpha,3,",
                           113),
                  "csv: %s", r.body);
    ck_assert_ptr_nonnull(strstr(r.body, "\r\nbeta,3,"));
    h_resp_free(&r);

    /* a pipeline reload keeps them (the state layer, not the instance) */
    h_request(h_sluice_port(), "POST", "/admin/reload", hdrs, NULL, 0, 20000,
              &r);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    doc = admin_json("/admin/usage?group_by=client", 200);
    ck_assert_int_eq(num(row_where(doc, "client", "alpha"), "total_tokens"),
                     alpha + unpriced);
    json_decref(doc);

    /* restart: the counters come back from the state file */
    restart_sluice(&o);
    doc = admin_json("/admin/usage?group_by=client", 200);
    ck_assert_int_eq(num(row_where(doc, "client", "alpha"), "total_tokens"),
                     alpha + unpriced);
    ck_assert_int_eq(num(row_where(doc, "client", "beta"), "requests"), 3);
    json_decref(doc);
}
END_TEST

START_TEST(test_bad_report_queries)
{
    h_opts o = opts_for("      currency: USD\n");
    h_start_all(&o);
    static const struct {
        const char *q, *code, *param;
    } cases[] = {
        {"group_by=client,foo", "invalid_group_by", "group_by"},
        {"group_by=", "invalid_group_by", "group_by"},
        {"from=2026-02-30", "invalid_date", "from"},
        {"from=2026-1-01", "invalid_date", "from"},
        {"to=yesterday", "invalid_date", "to"},
        {"from=2026-12-05&to=2026-12-01", "invalid_date_range", "from"},
        {"from=2025-01-01&to=2026-01-02", "invalid_date_range", "to"},
        {"format=xml", "invalid_format", "format"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[200];
        snprintf(path, sizeof path, "/admin/usage?%s", cases[i].q);
        json_t *doc = admin_json(path, 400);
        json_t *e = h_assert_openai_error(doc, cases[i].q);
        ck_assert_str_eq(json_string_value(json_object_get(e, "code")),
                         cases[i].code);
        ck_assert_str_eq(json_string_value(json_object_get(e, "param")),
                         cases[i].param);
        json_decref(doc);
    }
    /* 366 days is allowed, and an empty ledger is an empty list */
    json_t *doc = admin_json("/admin/usage?from=2025-01-01&to=2026-01-01", 200);
    ck_assert_uint_eq(json_array_size(json_object_get(doc, "data")), 0);
    json_decref(doc);
    h_resp r;
    h_get("/admin/usage", &r);
    ck_assert_int_eq(r.status, 401);
    h_resp_free(&r);
    const char *hdrs[] = {auth_hdr, NULL};
    h_request(h_sluice_port(), "POST", "/admin/usage", hdrs, "{}", 2, 10000,
              &r);
    ck_assert_int_eq(r.status, 405);
    h_resp_free(&r);
}
END_TEST

START_TEST(test_budget_refuses)
{
    h_opts o = opts_for("      budgets:\n"
                        "        alpha: { budget_tokens_day: 100 }\n");
    h_start_all(&o);
    long long used = 0, one = 0;
    long st;
    int ok = 0;
    h_resp r;
    for (;;) {
        long long before = used;
        st = chat(A_ALPHA, PRICED, &used, &r);
        if (st != 200 || ok >= 50)
            break;
        /* what was left before this request */
        const char *left =
            h_resp_header(&r, "x-sluice-budget-remaining-tokens");
        ck_assert_ptr_nonnull(left);
        ck_assert_int_eq(atoll(left), 100 - before);
        if (!one)
            one = used; /* tokens of one request */
        ok++;
        h_resp_free(&r);
        budget_wait("alpha", used); /* the charge lands after the answer */
    }
    ck_assert_int_eq(st, 429);
    json_t *doc = h_resp_json(&r);
    json_t *e = h_assert_openai_error(doc, "over budget");
    ck_assert_str_eq(json_string_value(json_object_get(e, "code")),
                     "insufficient_quota");
    ck_assert_str_eq(json_string_value(json_object_get(e, "type")),
                     "insufficient_quota");
    const char *msg = json_string_value(json_object_get(e, "message"));
    char tomorrow[40], usedtxt[40];
    time_t t = (time(NULL) / 86400 + 1) * 86400;
    strftime(tomorrow, sizeof tomorrow, "resets at %Y-%m-%dT00:00:00Z",
             gmtime(&t));
    snprintf(usedtxt, sizeof usedtxt, "%lld of 100 used", used);
    ck_assert_msg(strstr(msg, "budget_tokens_day") && strstr(msg, usedtxt) &&
                      strstr(msg, tomorrow) && strstr(msg, "alpha"),
                  "message: %s", msg);
    ck_assert_ptr_nonnull(h_resp_header(&r, "Retry-After"));
    json_decref(doc);
    h_resp_free(&r);
    /* admitted usage ends within one request of the budget */
    ck_assert_msg(used >= 100 - one && used <= 100 + one,
                  "used %lld of 100 (one request: %lld)", used, one);
    /* the refused request never reached the upstream */
    ck_assert_int_eq(h_mock_request_count(), ok);
    /* beta has no budget: no header, not refused */
    ck_assert_int_eq(chat(A_BETA, PRICED, NULL, &r), 200);
    ck_assert_ptr_null(h_resp_header(&r, "x-sluice-budget-remaining-tokens"));
    h_resp_free(&r);
    char *m = h_metrics_scrape();
    double ratio =
        h_metrics_sample(m, "sluice_client_budget_used_ratio{client=\"alpha\","
                            "budget=\"tokens_day\"}");
    ck_assert_msg(ratio >= 1.0 && ratio == used / 100.0, "ratio %g", ratio);
    free(m);
    doc = admin_json("/admin/usage/clients", 200);
    json_t *c0 = json_array_get(json_object_get(doc, "clients"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(c0, "client")), "alpha");
    ck_assert_int_eq(num(json_object_get(c0, "budgets"), "tokens_day"), 100);
    ck_assert_int_eq(num(json_object_get(c0, "today"), "tokens"), used);
    json_decref(doc);
}
END_TEST

/* sluice --check on a config with this usage config: exit status and
 * output. */
static int check_config(const char *usage_cfg, char **out)
{
    h_opts o = opts_for(usage_cfg);
    char path[300];
    snprintf(path, sizeof path, "%s/bad.yaml", h_tmpdir());
    ck_assert_int_eq(h_write_config(path, &o, 18999), 0);
    char *argv[] = {(char *)getenv("SLUICE_BIN"), "--check", "-c", path, NULL};
    return h_run_capture(argv, 20000, out);
}

START_TEST(test_bad_config_at_check)
{
    static const struct {
        const char *cfg, *says;
    } cases[] = {
        {"      budgets: { alpha: { budget_tokens_day: -5 } }\n",
         "budgets.alpha.budget_tokens_day must be a non-negative whole"},
        {"      budgets: { alpha: { budget_tokens_month: lots } }\n",
         "budgets.alpha.budget_tokens_month must be a non-negative whole"},
        {"      budgets: { alpha: { budget_tokens_day: 1.5 } }\n",
         "budgets.alpha.budget_tokens_day must be a non-negative whole"},
        {"      prices: { m: { input_per_mtok: abc, output_per_mtok: 1 } }\n",
         "prices.m.input_per_mtok must be a non-negative number"},
        {"      prices: { m: { input_per_mtok: 1, output_per_mtok: -2 } }\n",
         "prices.m.output_per_mtok must be a non-negative number"},
        {"      prices: { m: { input_per_mtok: 1 } }\n",
         "prices.m needs input_per_mtok and output_per_mtok"},
        {"      budgets: { alpha: { budget_cost_month: 5 } }\n",
         "budget_cost_month needs prices"},
        {"      budgets: { alpha: { budget_tokens_week: 5 } }\n",
         "unknown field 'budget_tokens_week'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = NULL;
        int rc = check_config(cases[i].cfg, &out);
        ck_assert_msg(rc != 0, "--check accepted: %s", cases[i].cfg);
        ck_assert_msg(strstr(out, cases[i].says) && strstr(out, "bad.yaml:") &&
                          strstr(out, "'usage'"),
                      "--check on %s said:\n%s", cases[i].cfg, out);
        free(out);
    }
    char *out = NULL;
    ck_assert_int_eq(check_config("      currency: EUR\n      prices: { m: { "
                                  "input_per_mtok: \"0.5\", output_per_mtok: "
                                  "2, cached_input_per_mtok: 0.25 } }\n      "
                                  "budgets: { alpha: { budget_tokens_day: "
                                  "1000, budget_cost_month: 2.5 } }\n",
                                  &out),
                     0);
    free(out);
}
END_TEST

/* The placement: prices on the model table (routes:, a model, its
 * aliases, a glob), budgets on the client's line of the clients file. */
static const char ROUTES[] =
    "routes:\n"
    "  - model: " PRICED "\n"
    "    aliases: [mini]\n"
    "    input_per_mtok: 1000\n"
    "    output_per_mtok: 2000\n"
    "    deployments: [{ upstream: default, model: " PRICED " }]\n"
    "  - model: \"llama-*\"\n"
    "    input_per_mtok: 10\n"
    "    output_per_mtok: \"20\"\n"
    "    cached_input_per_mtok: 5\n"
    "    deployments: [{ upstream: default, model: llama-x }]\n";

/* cost of one usage row at (in, out) per million tokens */
static double row_cost(json_t *row, double in, double out)
{
    return (double)(num(row, "prompt_tokens") * in +
                    num(row, "completion_tokens") * out) /
           1e6;
}

START_TEST(test_model_table_and_clients_file)
{
    alpha_options = "budget_tokens_day=100 budget_cost_month=50";
    more_yaml = ROUTES;
    h_opts o = opts_for("      currency: EUR\n");
    h_start_all(&o);
    long long used = 0, beta = 0;
    ck_assert_int_eq(chat(A_BETA, "mini", &beta, NULL), 200);
    ck_assert_int_eq(chat(A_BETA, "llama-3", &beta, NULL), 200);
    ck_assert_int_eq(chat(A_BETA, H_MODEL_ID, &beta, NULL), 200);
    budget_wait("beta", beta);
    json_t *doc = admin_json("/admin/usage?group_by=model", 200);
    ck_assert(json_real_value(
                  json_object_get(row_where(doc, "model", "mini"), "cost")) ==
              row_cost(row_where(doc, "model", "mini"), 1000, 2000));
    ck_assert(json_real_value(json_object_get(
                  row_where(doc, "model", "llama-3"), "cost")) ==
              row_cost(row_where(doc, "model", "llama-3"), 10, 20));
    ck_assert(json_is_null(
        json_object_get(row_where(doc, "model", H_MODEL_ID), "cost")));
    json_decref(doc);

    /* a stream of a client with a budget waits for its reservation, then
     * flows as before, and is charged (when it has ended) */
    static const char sbody[] =
        "{\"model\":\"mini\",\"stream\":true,\"messages\":[{\"role\":"
        "\"user\",\"content\":\"hello there\"}]}";
    h_stream s;
    h_stream_request(h_sluice_port(), "POST", CHAT, A_ALPHA, sbody,
                     strlen(sbody), 10000, 0, 0, &s);
    ck_assert_int_eq(s.resp.status, 200);
    ck_assert(h_stream_has_done(&s));
    ck_assert_ptr_nonnull(
        h_resp_header(&s.resp, "x-sluice-budget-remaining-tokens"));
    h_stream_free(&s);
    ck_assert_int_eq(h_mock_request_count(), 4);
    for (int t = 0; t < 500 && used == 0; t++) { /* on_complete: soon */
        doc = admin_json("/admin/usage/clients", 200);
        json_t *c0 = json_array_get(json_object_get(doc, "clients"), 0);
        if (!strcmp(json_string_value(json_object_get(c0, "client")), "alpha"))
            used = num(json_object_get(c0, "today"), "tokens");
        json_decref(doc);
        if (!used)
            h_sleep_ms(20);
    }
    ck_assert_int_gt(used, 0);

    /* alpha's budget from the clients file: refused past 100 tokens */
    h_resp r;
    long st;
    int ok = 0;
    while ((st = chat(A_ALPHA, PRICED, &used, &r)) == 200 && ok < 50) {
        ck_assert_ptr_nonnull(
            h_resp_header(&r, "x-sluice-budget-remaining-cost"));
        h_resp_free(&r);
        ok++;
        budget_wait("alpha", used); /* the charge lands after the answer */
    }
    ck_assert_int_eq(st, 429);
    json_t *err = h_resp_json(&r);
    const char *msg = json_string_value(
        json_object_get(json_object_get(err, "error"), "message"));
    char usedtxt[40];
    snprintf(usedtxt, sizeof usedtxt, "%lld of 100 used", used);
    ck_assert_msg(msg && strstr(msg, "budget_tokens_day") &&
                      strstr(msg, usedtxt),
                  "%s", r.body);
    json_decref(err);
    h_resp_free(&r);
    ck_assert_int_eq(h_mock_request_count(), 4 + ok);
    /* the dashboard's bars and the gauge know the clients-file budget */
    doc = admin_json("/admin/usage/clients", 200);
    json_t *c0 = json_array_get(json_object_get(doc, "clients"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(c0, "client")), "alpha");
    ck_assert_int_eq(num(json_object_get(c0, "budgets"), "tokens_day"), 100);
    ck_assert(json_real_value(json_object_get(json_object_get(c0, "budgets"),
                                              "cost_month")) == 50.0);
    json_decref(doc);
    char *m = h_metrics_scrape();
    ck_assert(h_metrics_sample(m, "sluice_client_budget_used_ratio{client="
                                  "\"alpha\",budget=\"tokens_day\"}") ==
              used / 100.0);
    free(m);

    /* a restart remembers the clients-file budget before alpha's next
     * request (kept in the state layer) */
    restart_sluice(&o);
    doc = admin_json("/admin/usage/clients", 200);
    c0 = json_array_get(json_object_get(doc, "clients"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(c0, "client")), "alpha");
    ck_assert_int_eq(num(json_object_get(c0, "budgets"), "tokens_day"), 100);
    json_decref(doc);
    m = h_metrics_scrape();
    ck_assert(h_metrics_sample(m, "sluice_client_budget_used_ratio{client="
                                  "\"alpha\",budget=\"tokens_day\"}") ==
              used / 100.0);
    free(m);
}
END_TEST

/* Bad prices on the model table and bad budgets in the clients file are
 * errors at --check naming file:line and the field. */
START_TEST(test_placement_errors_at_check)
{
    static const struct {
        const char *alpha, *routes, *says;
    } cases[] = {
        {"",
         "routes:\n  - model: m\n    input_per_mtok: -1\n"
         "    output_per_mtok: 1\n    deployments: [{upstream: default}]\n",
         "routes[0].input_per_mtok: expected a price per million tokens"},
        {"",
         "routes:\n  - model: m\n    input_per_mtok: 1\n"
         "    output_per_mtok: cheap\n"
         "    deployments: [{upstream: default}]\n",
         "routes[0].output_per_mtok: expected a price"},
        {"",
         "routes:\n  - model: m\n    input_per_mtok: 1\n"
         "    deployments: [{upstream: default}]\n",
         "routes[0].output_per_mtok: a priced model needs both"},
        {"budget_tokens_day=-100", "",
         "clients.txt:1: budget_tokens_day must be a whole number"},
        {"budget_cost_month=lots", "",
         "clients.txt:1: budget_cost_month must be a non-negative number"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        alpha_options = cases[i].alpha;
        more_yaml = cases[i].routes;
        char *out = NULL;
        int rc = check_config("      currency: EUR\n", &out);
        ck_assert_msg(rc != 0, "--check accepted case %zu", i);
        ck_assert_msg(strstr(out, cases[i].says), "case %zu said:\n%s", i, out);
        if (*cases[i].routes) /* file:line of the pipeline */
            ck_assert_msg(strstr(out, "bad.yaml:"), "case %zu: %s", i, out);
        free(out);
    }
    /* a model priced twice (routes: and the stage's prices:) */
    alpha_options = "";
    more_yaml = ROUTES;
    char *out = NULL;
    ck_assert_int_ne(check_config("      prices: { mini: { input_per_mtok: 1, "
                                  "output_per_mtok: 1 } }\n",
                                  &out),
                     0);
    ck_assert_msg(strstr(out, "prices.mini") && strstr(out, "already prices"),
                  "%s", out);
    free(out);
}
END_TEST

/* state.on_unavailable: closed with the shared state away (a Redis nobody
 * listens on): a client with a budget gets 503 budgets_unavailable, never
 * the upstream; a client without one is served. */
START_TEST(test_budget_fails_closed)
{
    static char extra[512], pipeline[1024];
    snprintf(auth_hdr, sizeof auth_hdr, "Authorization: Bearer %s", TOKEN);
    it_secret_file("clients.txt",
                   ALPHA " alpha budget_tokens_day=1000\n" BETA " beta\n");
    snprintf(extra, sizeof extra,
             "state:\n  backend: redis\n  url: \"redis://127.0.0.1:1/0\"\n"
             "  on_unavailable: closed\n");
    snprintf(pipeline, sizeof pipeline,
             "  - plugin: auth\n"
             "    config: { clients_file: \"@TMPDIR@/clients.txt\" }\n"
             "  - plugin: usage\n"
             "  - plugin: keyring\n"
             "    config: { keys_file: \"@KEYS_FILE@\" }\n"
             "  - plugin: sse\n");
    h_opts o = {.pipeline = pipeline, .extra = extra};
    h_start_all(&o);
    h_resp r;
    ck_assert_int_eq(chat(A_ALPHA, PRICED, NULL, &r), 503);
    it_assert_error(&r, 503, "budgets_unavailable", "budget, state away");
    ck_assert_ptr_nonnull(h_resp_header(&r, "Retry-After"));
    h_resp_free(&r);
    ck_assert_int_eq(h_mock_request_count(), 0);
    ck_assert_int_eq(chat(A_BETA, PRICED, NULL, NULL), 200);
    ck_assert_int_eq(h_mock_request_count(), 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("usage");
    TCase *tc = tcase_create("usage");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_usage_cost_and_report);
    tcase_add_test(tc, test_bad_report_queries);
    tcase_add_test(tc, test_budget_refuses);
    tcase_add_test(tc, test_bad_config_at_check);
    tcase_add_test(tc, test_model_table_and_clients_file);
    tcase_add_test(tc, test_placement_errors_at_check);
    tcase_add_test(tc, test_budget_fails_closed);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
