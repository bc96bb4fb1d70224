/*
 * test_routing_models.c - GET /v1/models and /v1/models/{id}/info over
 * the core's routes, through the real sluice (context + router + sse)
 * and two mock upstreams: every routable name is listed once (route names
 * and aliases, not glob patterns) owned by its first deployment's
 * upstream, with its context window where known; the table's models stay
 * listed; /info shows the route's deployments and fallbacks; a listed
 * alias routes to its upstream (asserted on what the mock received).
 * Each with the context stage answering and without it (the core's own
 * answer over the top-level models: list): the same documents.
 */
#include "harness.h"
#include "itest_util.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

static char yaml_extra[4096];

static void setup(void)
{
    h_tmpdir();
}

static void teardown(void)
{
    h_teardown();
}

/* `context_cfg`: extra settings of the context stage ("" for none); NULL:
 * no context stage, the same table as the top-level `models:` (the
 * core answers /v1/models). */
static void start_ctx(const char *context_cfg)
{
    static char pipe[1024];
    static const char table[] =
        "        - { id: up-oss, context_length: 131072 }\n"
        "        - { id: big-model, context_length: 4096 }\n"
        "        - { id: table-only, context_length: 2048 }\n";
    int pa = h_mock_port() > 0 ? h_mock_port() : h_start_mock();
    int pb = h_start_mock_at(1, 0);
    snprintf(yaml_extra, sizeof yaml_extra,
             "upstreams:\n"
             "  - { name: alpha, base_url: \"http://127.0.0.1:%d/v1\", keys: "
             "false }\n"
             "  - { name: beta, base_url: \"http://127.0.0.1:%d/v1\", keys: "
             "false }\n"
             "routes:\n"
             "  - model: gpt-oss\n"
             "    aliases: [oss]\n"
             "    deployments:\n"
             "      - { upstream: alpha, model: up-oss, weight: 3 }\n"
             "      - { upstream: beta, model: gpt-oss-b, weight: 1 }\n"
             "    fallbacks: [llama]\n"
             "  - model: llama\n"
             "    context_length: 8192\n"
             "    deployments: [{ upstream: beta, model: \"llama3.1:8b\" }]\n"
             "  - { model: big-model, deployments: [{ upstream: beta }] }\n"
             "  - { model: \"deepseek-*\", deployments: [{ upstream: beta }] "
             "}\n",
             pa, pb);
    if (context_cfg)
        snprintf(pipe, sizeof pipe,
                 "  - plugin: context\n"
                 "    config:\n"
                 "%s"
                 "      models:\n"
                 "%s"
                 "  - plugin: router\n"
                 "  - plugin: sse\n",
                 context_cfg, table);
    else
        snprintf(pipe, sizeof pipe, "  - plugin: router\n  - plugin: sse\n");
    h_opts o = {.pipeline = pipe,
                .base_url = "",
                .extra = yaml_extra,
                .models = context_cfg ? NULL : table}; /* top level */
    h_start_sluice(&o);
}

/* Loop tests: _i 0 with the context stage, 1 without (the core's
 * answer): the same listing and the same /info. */
static void start(int core_only)
{
    start_ctx(core_only ? NULL : "");
}

/* The entry of `id` in data[]; fails on a duplicate. */
static json_t *entry(json_t *data, const char *id)
{
    json_t *found = NULL, *e;
    size_t i;
    json_array_foreach(data, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "id")), id))
            continue;
        ck_assert_msg(!found, "%s listed twice", id);
        found = e;
    }
    return found;
}

static void assert_entry(json_t *data, const char *id, const char *owner,
                         long long ctx)
{
    json_t *e = entry(data, id);
    ck_assert_msg(e, "%s not listed", id);
    ck_assert_str_eq(json_string_value(json_object_get(e, "object")), "model");
    ck_assert_str_eq(json_string_value(json_object_get(e, "owned_by")), owner);
    json_t *cl = json_object_get(e, "context_length");
    if (ctx)
        ck_assert_int_eq(json_integer_value(cl), ctx);
    else
        ck_assert_ptr_null(cl);
    ck_assert_ptr_null(json_object_get(e, "route"));
}

/* What every listing holds: route names and aliases (windows from the
 * route or its first deployment's model in the table), the table's own
 * models, no pattern. */
static void assert_routed_names(json_t *data)
{
    assert_entry(data, "gpt-oss", "alpha", 131072);
    assert_entry(data, "oss", "alpha", 131072);
    assert_entry(data, "llama", "beta", 8192);
    assert_entry(data, "table-only", "megallm", 2048);
    ck_assert_ptr_null(entry(data, "deepseek-*"));
}

START_TEST(models_lists_every_routable_name_once)
{
    start(_i);
    h_resp r;
    h_get("/v1/models", &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, it_show(&r));
    json_t *doc = h_resp_json(&r);
    json_t *data = json_object_get(doc, "data");
    ck_assert_msg(json_is_array(data), "%s", it_show(&r));
    assert_routed_names(data);
    /* in the table and routed: listed once, owned by its upstream */
    assert_entry(data, "big-model", "beta", 4096);
    assert_entry(data, "up-oss", "megallm", 131072);
    json_decref(doc);
    h_resp_free(&r);
    /* the listed alias routes to its first deployment */
    h_post_json("/v1/chat/completions",
                "{\"model\":\"oss\",\"messages\":[{\"role\":\"user\","
                "\"content\":\"hi\"}]}",
                &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, it_show(&r));
    h_resp_free(&r);
    json_t *recs = h_mock_requests_at(0);
    ck_assert_int_eq(json_array_size(recs), 1);
    size_t len;
    const char *b = h_rec_body(json_array_get(recs, 0), &len);
    json_t *body = b ? json_loadb(b, len, 0, NULL) : NULL;
    ck_assert_str_eq(json_string_value(json_object_get(body, "model")),
                     "up-oss");
    json_decref(body);
    json_decref(recs);
    recs = h_mock_requests_at(1); /* listing asked no upstream */
    ck_assert_int_eq(json_array_size(recs), 0);
    json_decref(recs);
}
END_TEST

START_TEST(model_info_shows_deployments_and_fallbacks)
{
    start(_i);
    h_resp r;
    h_get("/v1/models/oss/info", &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, it_show(&r));
    json_t *doc = h_resp_json(&r);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "id")), "oss");
    ck_assert_str_eq(json_string_value(json_object_get(doc, "owned_by")),
                     "alpha");
    json_t *route = json_object_get(doc, "route");
    ck_assert_msg(json_is_object(route), "%s", it_show(&r));
    ck_assert_str_eq(json_string_value(json_object_get(route, "model")),
                     "gpt-oss");
    json_t *ds = json_object_get(route, "deployments");
    ck_assert_int_eq(json_array_size(ds), 2);
    const char *want[2][2] = {{"alpha", "up-oss"}, {"beta", "gpt-oss-b"}};
    const double weight[2] = {3, 1};
    for (size_t i = 0; i < 2; i++) {
        json_t *d = json_array_get(ds, i);
        ck_assert_str_eq(json_string_value(json_object_get(d, "upstream")),
                         want[i][0]);
        ck_assert_str_eq(json_string_value(json_object_get(d, "model")),
                         want[i][1]);
        ck_assert_double_eq(json_number_value(json_object_get(d, "weight")),
                            weight[i]);
    }
    json_t *fb = json_object_get(route, "fallbacks");
    ck_assert_int_eq(json_array_size(fb), 1);
    ck_assert_str_eq(json_string_value(json_array_get(fb, 0)), "llama");
    json_decref(doc);
    h_resp_free(&r);
    /* a deployment without its own model sends the route's name */
    h_get("/v1/models/big-model/info", &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, it_show(&r));
    doc = h_resp_json(&r);
    json_t *d = json_array_get(
        json_object_get(json_object_get(doc, "route"), "deployments"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(d, "model")),
                     "big-model");
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "context_length")),
                     4096);
    json_decref(doc);
    h_resp_free(&r);
    /* the plain object has no route; a pattern's match is no model id */
    h_get("/v1/models/llama", &r);
    ck_assert_int_eq(r.status, 200);
    doc = h_resp_json(&r);
    ck_assert_ptr_null(json_object_get(doc, "route"));
    ck_assert_str_eq(json_string_value(json_object_get(doc, "owned_by")),
                     "beta");
    json_decref(doc);
    h_resp_free(&r);
    h_get("/v1/models/deepseek-*/info", &r);
    ck_assert_int_eq(r.status, 404);
    ck_assert_ptr_nonnull(strstr(r.body, "model_not_found"));
    h_resp_free(&r);
}
END_TEST

/* models_from_upstream beside routes: the first upstream's list adds only
 * the names neither the table nor a route has; a routed name it also
 * lists stays owned by its route's upstream, listed once. */
START_TEST(models_from_upstream_beside_routes_lists_each_once)
{
    /* mock A answers GET /models before sluice asks (at its start) */
    ck_assert_int_gt(h_start_mock(), 0);
    ck_assert_int_eq(
        h_mock_script("{\"rules\":[{\"match\":{\"path\":\"/models\","
                      "\"method\":\"GET\"},\"times\":0,\"json\":{"
                      "\"object\":\"list\",\"data\":["
                      "{\"id\":\"oss\",\"owned_by\":\"vendor\"},"
                      "{\"id\":\"llama\",\"owned_by\":\"vendor\"},"
                      "{\"id\":\"table-only\",\"owned_by\":\"vendor\"},"
                      "{\"id\":\"only-upstream\",\"owned_by\":"
                      "\"vendor\"}]}}]}"),
        0);
    start_ctx("      models_from_upstream: true\n");
    json_t *doc = NULL, *data = NULL;
    for (int i = 0; i < 400 && !data; i++) { /* the fetch is async */
        h_resp r;
        h_get("/v1/models", &r);
        ck_assert_msg(r.status == 200, "%ld %s", r.status, it_show(&r));
        doc = h_resp_json(&r);
        h_resp_free(&r);
        data = json_object_get(doc, "data");
        if (!entry(data, "only-upstream")) {
            json_decref(doc);
            doc = data = NULL;
            h_sleep_ms(25);
        }
    }
    ck_assert_msg(data, "/v1/models never listed the upstream's model");
    assert_entry(data, "only-upstream", "vendor", 0);
    /* oss, llama (routed) and table-only (the table's) the upstream lists
     * too: once each, the route's or the table's entry */
    assert_routed_names(data);
    json_decref(doc);
    /* the list came from the first upstream, asked with GET /v1/models */
    json_t *recs = h_mock_requests_at(0);
    ck_assert_int_ge(json_array_size(recs), 1);
    ck_assert_str_eq(h_rec_str(json_array_get(recs, 0), "method"), "GET");
    ck_assert_str_eq(h_rec_str(json_array_get(recs, 0), "path"), "/v1/models");
    json_decref(recs);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("routing_models");
    TCase *tc = tcase_create("routing_models");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, models_lists_every_routable_name_once, 0, 2);
    tcase_add_loop_test(tc, model_info_shows_deployments_and_fallbacks, 0, 2);
    tcase_add_test(tc, models_from_upstream_beside_routes_lists_each_once);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
