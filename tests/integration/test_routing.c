/*
 * test_routing.c - several upstreams behind one front door, end to end: the
 * real sluice (router, keyring, retry, sse) and three mock upstreams on
 * loopback, each with its own keys. Every test asserts on what the client
 * got (status, body, x-sluice-* headers) and on what each mock received
 * (model name, key header, path and query).
 *
 *   - routes by model: the model name rewritten, Bearer vs api-key, static
 *     query parameters and a {model} path (Azure's shape), a glob passing
 *     the name through, an unknown model 404 model_not_found
 *   - weights 3:1 over 4,000 requests, within 5 %
 *   - failover to the next deployment: connection refused, 500, every key
 *     401; then the `fallbacks:` model list with its own model name
 *   - a stream falls back before its first byte, never after
 *   - fallback_on without 5xx: the 500 reaches the client, B is not asked
 *   - context_fallbacks: a request too large for its model goes to the
 *     first listed model whose window fits
 *   - /health per upstream; /admin/keys?upstream=; the keyring's per-key
 *     series labelled by upstream
 *   - 16 connections for 20 s, alpha killed at 5 s and back at 10 s: no
 *     client error, alpha gets traffic again once it is back
 *   - reload under load: an upstream and a route added, then removed: no
 *     failed request, the new route answers, then 404s
 *   - forward_headers / add_headers per upstream (own, or upstream:'s); a
 *     forwarded client header too long: 400, named, value never echoed
 *   - every bad configuration refused by --check with file:line and reason
 */
#include "harness.h"
#include "itest_util.h"

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KA "sk-route-a-aaaa0001"
#define KB "sk-route-b-bbbb0002"
#define KC "sk-route-c-cccc0003"

static char yaml_extra[8192];
static const char *keyring_extra = "";   /* more keyring settings */
static const char *alpha_keys = KA "\n"; /* alpha's keys file */

static void setup(void)
{
    h_tmpdir();
}

static void teardown(void)
{
    h_teardown();
}

static const char *pipeline(const char *router_cfg)
{
    static char p[1024];
    snprintf(p, sizeof p,
             "  - plugin: router\n"
             "    config: { %s }\n"
             "  - plugin: keyring\n"
             "    config: { keys_file: \"@KEYS_FILE@\"%s }\n"
             "  - plugin: retry\n"
             "    config: { max_retries: 1, max_key_switches: 2, base_ms: 5,"
             " max_ms: 20 }\n"
             "  - plugin: sse\n",
             router_cfg ? router_cfg : "", keyring_extra);
    return p;
}

/* Three mocks (A = index 0, B = 1, C = 2) unless `a_down` (A: a port with
 * nothing listening), the three upstreams and `routes` (YAML items). */
static void start_with(const char *routes, const char *router_cfg, int a_down)
{
    int pa = a_down ? h_free_port() : h_start_mock();
    int pb = h_start_mock_at(1, 0);
    int pc = h_start_mock_at(2, 0);
    const char *ka = it_secret_file("a.keys", alpha_keys);
    const char *kb = it_secret_file("b.keys", KB "\n");
    const char *kc = it_secret_file("c.keys", KC "\n");
    snprintf(yaml_extra, sizeof yaml_extra,
             "upstreams:\n"
             "  - name: alpha\n"
             "    base_url: \"http://127.0.0.1:%d/v1\"\n"
             "    keys: { keys_file: \"%s\" }\n"
             "  - name: beta\n"
             "    base_url: \"http://127.0.0.1:%d/v1\"\n"
             "    keys: { keys_file: \"%s\" }\n"
             "  - name: azure\n"
             "    base_url: \"http://127.0.0.1:%d\"\n"
             "    auth_header: api-key\n"
             "    query: { api-version: \"2024-10-21\" }\n"
             "    headers: { x-team: \"routing-test\" }\n"
             "    paths: { chat: \"/openai/deployments/{model}/chat/"
             "completions\" }\n"
             "    keys: { keys_file: \"%s\" }\n"
             "routes:\n%s",
             pa, ka, pb, kb, pc, kc, routes);
    h_opts o = {
        .pipeline = pipeline(router_cfg), .base_url = "", .extra = yaml_extra};
    h_start_sluice(&o);
}

static const char *const ROUTES =
    "  - model: gpt-oss\n"
    "    aliases: [oss]\n"
    "    deployments: [{ upstream: alpha, model: \"openai/gpt-oss-120b\" }]\n"
    "  - model: local-llama\n"
    "    deployments: [{ upstream: beta, model: \"llama3.1:8b\" }]\n"
    "  - model: azure-4o\n"
    "    deployments: [{ upstream: azure, model: \"my-4o-deploy\" }]\n"
    "  - model: \"deepseek-*\"\n"
    "    deployments: [{ upstream: beta }]\n";

static void chat_model(const char *model, int stream, h_resp *r)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"model\":\"%s\",%s\"messages\":[{\"role\":\"user\","
             "\"content\":\"hi\"}]}",
             model, stream ? "\"stream\":true," : "");
    h_post_json("/v1/chat/completions", body, r);
}

/* The last request mock idx recorded (caller decrefs the array). */
static json_t *last_rec(int idx, json_t **arr)
{
    *arr = h_mock_requests_at(idx);
    ck_assert_msg(*arr && json_array_size(*arr) > 0, "mock %d saw nothing",
                  idx);
    return json_array_get(*arr, json_array_size(*arr) - 1);
}

static void assert_rec_model(json_t *rec, const char *model)
{
    size_t len;
    const char *b = h_rec_body(rec, &len);
    json_t *doc = b ? json_loadb(b, len, 0, NULL) : NULL;
    const char *m = json_string_value(json_object_get(doc, "model"));
    ck_assert_msg(m && !strcmp(m, model), "upstream got model %s, want %s",
                  m ? m : "(none)", model);
    json_decref(doc);
}

static int mock_count(int idx)
{
    json_t *a = h_mock_requests_at(idx);
    int n = a ? (int)json_array_size(a) : -1;
    json_decref(a);
    return n;
}

static void assert_hdr(const h_resp *r, const char *name, const char *want)
{
    const char *v = h_resp_header(r, name);
    ck_assert_msg(v && !strcmp(v, want), "%s: %s, want %s (body %s)", name,
                  v ? v : "(absent)", want, it_show(r));
}

START_TEST(routes_by_model_rewrite_key_header_and_query)
{
    start_with(ROUTES, NULL, 0);
    h_resp r;
    json_t *arr, *rec;

    chat_model("gpt-oss", 0, &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, it_show(&r));
    assert_hdr(&r, "x-sluice-upstream", "alpha");
    assert_hdr(&r, "x-sluice-model", "openai/gpt-oss-120b");
    assert_hdr(&r, "x-sluice-attempts", "1");
    assert_hdr(&r, "x-sluice-fallbacks", "0");
    h_resp_free(&r);
    rec = last_rec(0, &arr);
    assert_rec_model(rec, "openai/gpt-oss-120b");
    ck_assert_str_eq(h_rec_header(rec, "authorization"), "Bearer " KA);
    ck_assert_str_eq(h_rec_str(rec, "path"), "/v1/chat/completions");
    json_decref(arr);

    /* only the model changes: the client's bytes go on as they came */
    h_post_json("/v1/chat/completions",
                "{ \"messages\":[{\"role\":\"user\",\"content\":"
                "\"say \\\"model\\\": \\\"x\\\"\"}],\n"
                "  \"model\" : \"gpt-oss\", \"temperature\":0.50 }",
                &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, it_show(&r));
    h_resp_free(&r);
    rec = last_rec(0, &arr);
    size_t blen;
    const char *sent = h_rec_body(rec, &blen);
    const char *want_body =
        "{ \"messages\":[{\"role\":\"user\",\"content\":"
        "\"say \\\"model\\\": \\\"x\\\"\"}],\n"
        "  \"model\" : \"openai/gpt-oss-120b\", \"temperature\":0.50 }";
    ck_assert_msg(sent && blen == strlen(want_body) &&
                      !memcmp(sent, want_body, blen),
                  "upstream got %.*s", (int)blen, sent ? sent : "");
    json_decref(arr);

    chat_model("oss", 0, &r); /* the alias */
    ck_assert_int_eq(r.status, 200);
    assert_hdr(&r, "x-sluice-upstream", "alpha");
    h_resp_free(&r);

    chat_model("local-llama", 0, &r);
    ck_assert_int_eq(r.status, 200);
    assert_hdr(&r, "x-sluice-upstream", "beta");
    h_resp_free(&r);
    rec = last_rec(1, &arr);
    assert_rec_model(rec, "llama3.1:8b");
    ck_assert_str_eq(h_rec_header(rec, "authorization"), "Bearer " KB);
    json_decref(arr);

    chat_model("azure-4o", 0, &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, it_show(&r));
    assert_hdr(&r, "x-sluice-upstream", "azure");
    assert_hdr(&r, "x-sluice-model", "my-4o-deploy");
    h_resp_free(&r);
    rec = last_rec(2, &arr);
    ck_assert_str_eq(h_rec_header(rec, "api-key"), KC);
    ck_assert_msg(h_rec_header(rec, "authorization") == NULL,
                  "azure got an Authorization header");
    ck_assert_str_eq(h_rec_header(rec, "x-team"), "routing-test");
    ck_assert_str_eq(h_rec_str(rec, "path"),
                     "/openai/deployments/my-4o-deploy/chat/completions");
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(rec, "query"), "api-version")),
                     "2024-10-21");
    assert_rec_model(rec, "my-4o-deploy");
    json_decref(arr);

    chat_model("deepseek-chat", 0, &r); /* glob: the name passes through */
    ck_assert_int_eq(r.status, 200);
    assert_hdr(&r, "x-sluice-upstream", "beta");
    assert_hdr(&r, "x-sluice-model", "deepseek-chat");
    h_resp_free(&r);
    rec = last_rec(1, &arr);
    assert_rec_model(rec, "deepseek-chat");
    json_decref(arr);

    int before = mock_count(0) + mock_count(1) + mock_count(2);
    chat_model("no-such-model", 0, &r);
    it_assert_error(&r, 404, "model_not_found", "unknown model");
    h_resp_free(&r);
    ck_assert_int_eq(mock_count(0) + mock_count(1) + mock_count(2), before);

    /* each pool's key series carries its upstream: one attempt per
     * request a mock saw, none under another upstream */
    char *m = h_metrics_scrape();
    static const char *const series[3] = {
        "sluice_key_requests_total{upstream=\"alpha\",key=\"sk-…0001\"}",
        "sluice_key_requests_total{upstream=\"beta\",key=\"sk-…0002\"}",
        "sluice_key_requests_total{upstream=\"azure\",key=\"sk-…0003\"}"};
    for (int i = 0; i < 3; i++)
        ck_assert_msg(h_metrics_sample(m, series[i]) == mock_count(i),
                      "%s = %g, mock %d saw %d", series[i],
                      h_metrics_sample(m, series[i]), i, mock_count(i));
    ck_assert(h_metrics_sample(m, "sluice_key_requests_total{upstream="
                                  "\"alpha\",key=\"sk-…0002\"}") == -1);
    ck_assert(h_metrics_sample(m, "sluice_key_state{upstream=\"azure\","
                                  "key=\"sk-…0003\",state=\"healthy\"}") == 1);
    free(m);
}
END_TEST

/* The state word of upstream `name` in /health ("" when absent). */
static void health_state(const char *name, char *out, size_t n)
{
    h_resp r;
    char needle[96];
    h_get("/health", &r);
    snprintf(needle, sizeof needle, "\"%s\":{\"state\":\"", name);
    const char *p = r.body ? strstr(r.body, needle) : NULL;
    size_t len = p ? strcspn(p + strlen(needle), "\"") : 0;
    snprintf(out, n, "%.*s", (int)len, p ? p + strlen(needle) : "");
    h_resp_free(&r);
}

/* probe_interval_s: a failed key of the third upstream (api-key, a query)
 * is probed against that upstream, its own way, and comes back. */
START_TEST(probe_brings_back_a_failed_key_of_another_upstream)
{
    keyring_extra = ", probe_interval_s: 1";
    start_with(ROUTES, NULL, 0);
    ck_assert_int_eq(h_mock_script_at(2, "{\"match\":{\"method\":\"POST\"},"
                                         "\"times\":1,\"status\":401}"),
                     0);
    h_resp r;
    chat_model("azure-4o", 0, &r); /* its only key: 401 */
    ck_assert_msg(r.status >= 400, "%ld %s", r.status, it_show(&r));
    h_resp_free(&r);
    char st[32];
    health_state("azure", st, sizeof st);
    ck_assert_msg(!strcmp(st, "down"), "azure: %s", st);
    /* /health passing by starts the probe once the interval is up */
    for (double until = h_now_ms() + 15000; h_now_ms() < until;) {
        health_state("azure", st, sizeof st);
        if (!strcmp(st, "ok"))
            break;
        h_sleep_ms(100);
    }
    ck_assert_msg(!strcmp(st, "ok"), "azure still %s", st);
    json_t *arr = h_mock_requests_at(2), *rec;
    size_t i;
    int probes = 0;
    json_array_foreach(arr, i, rec)
    {
        if (strcmp(h_rec_str(rec, "method"), "GET"))
            continue;
        ck_assert_str_eq(h_rec_str(rec, "path"), "/models");
        ck_assert_str_eq(h_rec_header(rec, "api-key"), KC);
        ck_assert_ptr_null(h_rec_header(rec, "authorization"));
        ck_assert_str_eq(h_rec_header(rec, "x-team"), "routing-test");
        ck_assert_str_eq(json_string_value(json_object_get(
                             json_object_get(rec, "query"), "api-version")),
                         "2024-10-21");
        probes++;
    }
    json_decref(arr);
    ck_assert_int_ge(probes, 1);
    /* nothing failed elsewhere: the other upstreams saw no probe */
    for (int m = 0; m < 2; m++) {
        arr = h_mock_requests_at(m);
        json_array_foreach(arr, i, rec)
            ck_assert_str_ne(h_rec_str(rec, "method"), "GET");
        json_decref(arr);
    }
    /* and the key serves again */
    chat_model("azure-4o", 0, &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, it_show(&r));
    assert_hdr(&r, "x-sluice-upstream", "azure");
    h_resp_free(&r);
}
END_TEST

START_TEST(weights_three_to_one_within_five_percent)
{
    start_with("  - model: spread\n"
               "    deployments:\n"
               "      - { upstream: alpha, weight: 3 }\n"
               "      - { upstream: beta, weight: 1 }\n",
               NULL, 0);
    const int n = 4000;
    int a = 0, b = 0;
    for (int i = 0; i < n; i++) {
        h_resp r;
        chat_model("spread", 0, &r);
        ck_assert_msg(r.status == 200, "request %d: %ld %s", i, r.status,
                      it_show(&r));
        const char *u = h_resp_header(&r, "x-sluice-upstream");
        a += u && !strcmp(u, "alpha");
        b += u && !strcmp(u, "beta");
        h_resp_free(&r);
    }
    /* what the mocks received, not only what the headers say */
    ck_assert_int_eq(mock_count(0), a);
    ck_assert_int_eq(mock_count(1), b);
    ck_assert_int_eq(a + b, n);
    double share = (double)a / n;
    ck_assert_msg(share > 0.75 * 0.95 && share < 0.75 * 1.05,
                  "alpha got %d of %d (%.3f), want 0.75 within 5 %%", a, n,
                  share);
}
END_TEST

static const char *const FAILOVER =
    "  - model: m\n"
    "    deployments:\n"
    "      - { upstream: alpha, model: a-model }\n"
    "      - { upstream: beta, model: b-model }\n";

static void served_by_beta(const char *what, const char *fallbacks)
{
    h_resp r;
    json_t *arr;
    chat_model("m", 0, &r);
    ck_assert_msg(r.status == 200, "%s: %ld %s", what, r.status, it_show(&r));
    assert_hdr(&r, "x-sluice-upstream", "beta");
    assert_hdr(&r, "x-sluice-model", "b-model");
    assert_hdr(&r, "x-sluice-fallbacks", fallbacks);
    h_resp_free(&r);
    assert_rec_model(last_rec(1, &arr), "b-model");
    json_decref(arr);
}

static void assert_served_by_beta(const char *what)
{
    served_by_beta(what, "1");
}

START_TEST(failover_when_alpha_refuses_connections)
{
    start_with(FAILOVER, NULL, 1);
    assert_served_by_beta("connection refused");
}
END_TEST

START_TEST(failover_when_alpha_answers_500)
{
    start_with(FAILOVER, NULL, 0);
    ck_assert_int_eq(h_mock_script_at(0, "{\"times\":0,\"status\":500}"), 0);
    assert_served_by_beta("500");
    h_resp r;
    /* alpha had its retry (max_retries: 1): two attempts there */
    chat_model("m", 0, &r);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    ck_assert_int_ge(mock_count(0), 2);
}
END_TEST

START_TEST(failover_when_every_alpha_key_is_401)
{
    start_with(FAILOVER, NULL, 0);
    ck_assert_int_eq(h_mock_script_at(0, "{\"times\":0,\"status\":401}"), 0);
    assert_served_by_beta("all keys 401");
    /* alpha's only key is now failed: the next request goes to beta at
     * once (the deployment with no usable key is skipped) */
    int before = mock_count(0);
    served_by_beta("alpha has no key left", "0");
    ck_assert_int_eq(mock_count(0), before);
    h_resp r;
    h_get("/health", &r);
    json_t *doc = h_resp_json(&r);
    json_t *ups = json_object_get(
        json_object_get(json_object_get(doc, "stages"), "keyring"),
        "upstreams");
    if (!ups) /* the stage status may sit under another member */
        ups = json_object_get(json_object_get(doc, "keyring"), "upstreams");
    ck_assert_msg(strstr(r.body, "\"alpha\":{\"state\":\"down\""),
                  "/health: %s", r.body);
    ck_assert_msg(strstr(r.body, "\"beta\":{\"state\":\"ok\""), "/health: %s",
                  r.body);
    (void)ups;
    json_decref(doc);
    h_resp_free(&r);
}
END_TEST

START_TEST(fallback_model_list_gets_its_own_model_name)
{
    start_with("  - model: main\n"
               "    deployments: [{ upstream: alpha, model: a-main }]\n"
               "    fallbacks: [backup]\n"
               "  - model: backup\n"
               "    deployments: [{ upstream: beta, model: b-backup }]\n",
               NULL, 0);
    ck_assert_int_eq(h_mock_script_at(0, "{\"times\":0,\"status\":503}"), 0);
    h_resp r;
    json_t *arr;
    chat_model("main", 0, &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, it_show(&r));
    assert_hdr(&r, "x-sluice-upstream", "beta");
    assert_hdr(&r, "x-sluice-model", "b-backup");
    assert_hdr(&r, "x-sluice-fallbacks", "1");
    h_resp_free(&r);
    assert_rec_model(last_rec(1, &arr), "b-backup");
    json_decref(arr);
    char *m = h_metrics_scrape();
    ck_assert_msg(h_metrics_sample(m, "sluice_fallbacks_total{from_model="
                                      "\"main\",to_model=\"backup\","
                                      "reason=\"5xx\"}") == 1,
                  "%s", m);
    free(m);
}
END_TEST

START_TEST(stream_falls_back_before_first_byte_not_after)
{
    /* no cooldown: alpha stays in the rotation after failing over */
    start_with(FAILOVER, "deployment_cooldown_s: 0", 0);
    h_stream s;
    const char body[] = "{\"model\":\"m\",\"stream\":true,\"messages\":[{"
                        "\"role\":\"user\",\"content\":\"hi\"}]}";
    /* before: alpha answers 500 to the stream */
    ck_assert_int_eq(h_mock_script_at(0, "{\"times\":2,\"status\":500}"), 0);
    h_stream_request(h_sluice_port(), "POST", "/v1/chat/completions", NULL,
                     body, strlen(body), 10000, 0, 0, &s);
    ck_assert_int_eq(s.resp.status, 200);
    ck_assert_str_eq(h_resp_header(&s.resp, "x-sluice-upstream"), "beta");
    ck_assert(h_stream_has_done(&s));
    h_stream_free(&s);
    /* after: alpha's stream breaks after two events: no fallback */
    ck_assert_int_eq(h_mock_reset_at(0), 0);
    ck_assert_int_eq(h_mock_reset_at(1), 0);
    ck_assert_int_eq(h_mock_script_at(0,
                                      "{\"times\":0,\"stream\":{\"chunks\":5,"
                                      "\"cut_after\":2}}"),
                     0);
    /* weighted choice alternates: send until one lands on alpha first */
    int seen_cut = 0;
    for (int i = 0; i < 4 && !seen_cut; i++) {
        int nb = mock_count(1);
        h_stream_request(h_sluice_port(), "POST", "/v1/chat/completions", NULL,
                         body, strlen(body), 10000, 0, 0, &s);
        const char *u = h_resp_header(&s.resp, "x-sluice-upstream");
        if (u && !strcmp(u, "alpha")) {
            seen_cut = 1;
            ck_assert(!h_stream_has_done(&s));
            ck_assert_msg(strstr(s.resp.body, "stream_interrupted"), "%s",
                          s.resp.body);
            /* beta never saw the cut stream */
            ck_assert_int_eq(mock_count(1), nb);
        }
        h_stream_free(&s);
    }
    ck_assert(seen_cut);
}
END_TEST

START_TEST(fallback_on_without_5xx_lets_the_500_through)
{
    start_with("  - model: m\n"
               "    fallback_on: [connect, timeout]\n"
               "    deployments:\n"
               "      - { upstream: alpha }\n"
               "      - { upstream: beta }\n",
               NULL, 0);
    ck_assert_int_eq(h_mock_script_at(0, "{\"times\":0,\"status\":500}"), 0);
    ck_assert_int_eq(h_mock_script_at(1, "{\"times\":0,\"status\":500}"), 0);
    h_resp r;
    chat_model("m", 0, &r);
    ck_assert_msg(r.status == 500, "%ld %s", r.status, it_show(&r));
    assert_hdr(&r, "x-sluice-fallbacks", "0");
    const char *u = h_resp_header(&r, "x-sluice-upstream");
    int idx = u && !strcmp(u, "alpha") ? 0 : 1;
    h_resp_free(&r);
    ck_assert_int_eq(mock_count(1 - idx), 0);
}
END_TEST

/* 401/403 are the keys' class, not 4xx: alpha has four keys, every one
 * refused, and the retry stage's two key switches are spent with a key
 * still untried, so the keyring has not given up: the default
 * fallback_on (all_keys_unavailable) still moves the request to beta. */
START_TEST(refused_keys_fall_back_by_default_before_the_pool_is_empty)
{
    alpha_keys = KA "\nsk-route-a-aaaa0004\nsk-route-a-aaaa0005\n"
                    "sk-route-a-aaaa0006\n";
    start_with(FAILOVER, NULL, 0);
    ck_assert_int_eq(h_mock_script_at(0, "{\"times\":0,\"status\":403}"), 0);
    assert_served_by_beta("403 from three of alpha's keys");
    ck_assert_int_eq(mock_count(0), 3); /* one try and two switches */
    char *m = h_metrics_scrape();
    ck_assert_msg(h_metrics_sample(m, "sluice_fallbacks_total{from_model="
                                      "\"m\",to_model=\"m\",reason="
                                      "\"all_keys_unavailable\"}") == 1,
                  "%s", m);
    free(m);
}
END_TEST

/* fallback_on: [4xx] alone: a 404 falls back; a 401 does not (it is the
 * keys' class, not listed): the client gets the keyring's answer. */
START_TEST(fallback_on_4xx_leaves_refused_keys_out)
{
    start_with("  - model: m\n"
               "    fallback_on: [4xx]\n"
               "    deployments:\n" /* alpha first, request after request */
               "      - { upstream: alpha, model: a-model, weight: 100 }\n"
               "      - { upstream: beta, model: b-model, weight: 1 }\n",
               NULL, 0);
    ck_assert_int_eq(h_mock_script_at(0, "{\"times\":1,\"status\":404}"), 0);
    assert_served_by_beta("404 under fallback_on: [4xx]");
    ck_assert_int_eq(h_mock_reset_at(1), 0);
    ck_assert_int_eq(h_mock_script_at(0, "{\"times\":0,\"status\":401}"), 0);
    h_resp r;
    chat_model("m", 0, &r);
    /* alpha's only key refused: the keyring's answer, no fallback */
    it_assert_error(&r, 503, "all_keys_unavailable", "401 under [4xx]");
    assert_hdr(&r, "x-sluice-upstream", "alpha");
    assert_hdr(&r, "x-sluice-fallbacks", "0");
    h_resp_free(&r);
    ck_assert_int_eq(mock_count(1), 0);
}
END_TEST

/* A route's retries: replace the retry stage's budget for its
 * deployments (max_retries 0: alpha's 500 falls back at once); another
 * route over the same deployments keeps the stage's (max_retries 1). */
START_TEST(route_retry_budget_replaces_the_stage_budget)
{
    start_with("  - model: m\n"
               "    retries: { max_retries: 0 }\n"
               "    deployments:\n"
               "      - { upstream: alpha, model: a-model, weight: 100 }\n"
               "      - { upstream: beta, model: b-model, weight: 1 }\n"
               "  - model: m2\n"
               "    deployments:\n"
               "      - { upstream: alpha, model: a-model, weight: 100 }\n"
               "      - { upstream: beta, model: b-model, weight: 1 }\n",
               "deployment_cooldown_s: 0", 0);
    ck_assert_int_eq(h_mock_script_at(0, "{\"times\":0,\"status\":500}"), 0);
    assert_served_by_beta("500 with retries: { max_retries: 0 }");
    ck_assert_int_eq(mock_count(0), 1);
    h_resp r;
    chat_model("m2", 0, &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, it_show(&r));
    assert_hdr(&r, "x-sluice-upstream", "beta");
    assert_hdr(&r, "x-sluice-attempts", "3");
    h_resp_free(&r);
    ck_assert_int_eq(mock_count(0), 3); /* one try and one retry more */
}
END_TEST

START_TEST(context_fallback_picks_the_first_model_that_fits)
{
    int pa = h_start_mock(), pb = h_start_mock_at(1, 0),
        pc = h_start_mock_at(2, 0);
    snprintf(yaml_extra, sizeof yaml_extra,
             "upstreams:\n"
             "  - { name: alpha, base_url: \"http://127.0.0.1:%d/v1\", keys: "
             "false }\n"
             "  - { name: beta, base_url: \"http://127.0.0.1:%d/v1\", keys: "
             "false }\n"
             "  - { name: gamma, base_url: \"http://127.0.0.1:%d/v1\", keys: "
             "false }\n"
             "routes:\n"
             "  - model: small\n"
             "    deployments: [{ upstream: alpha, model: s-up }]\n"
             "    context_fallbacks: [medium, large]\n"
             "  - { model: medium, deployments: [{ upstream: beta, model: "
             "m-up }] }\n"
             "  - { model: large, deployments: [{ upstream: gamma, model: "
             "l-up }] }\n",
             pa, pb, pc);
    h_opts o = {.pipeline = "  - plugin: context\n"
                            "    config:\n"
                            "      estimate_margin: 0\n"
                            "      models:\n"
                            "        - { id: small, context_length: 64 }\n"
                            "        - { id: medium, context_length: 200 }\n"
                            "        - { id: large, context_length: 100000 }\n"
                            "  - plugin: router\n"
                            "  - plugin: sse\n",
                .base_url = "",
                .extra = yaml_extra};
    h_start_sluice(&o);
    /* about 1,000 tokens: over small (64) and medium (200), fits large */
    char body[8192];
    int n = snprintf(body, sizeof body,
                     "{\"model\":\"small\",\"messages\":[{\"role\":"
                     "\"user\",\"content\":\"");
    for (int i = 0; i < 1000; i++)
        n += snprintf(body + n, sizeof body - (size_t)n, "word ");
    snprintf(body + n, sizeof body - (size_t)n, "\"}]}");
    h_resp r;
    json_t *arr;
    h_post_json("/v1/chat/completions", body, &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, it_show(&r));
    assert_hdr(&r, "x-sluice-upstream", "gamma");
    assert_hdr(&r, "x-sluice-model", "l-up");
    assert_hdr(&r, "x-sluice-fallbacks", "1");
    assert_hdr(&r, "x-sluice-context-fallback", "large");
    h_resp_free(&r);
    assert_rec_model(last_rec(2, &arr), "l-up");
    json_decref(arr);
    ck_assert_int_eq(mock_count(0), 0);
    ck_assert_int_eq(mock_count(1), 0);
    /* a small request stays on small */
    chat_model("small", 0, &r);
    ck_assert_int_eq(r.status, 200);
    assert_hdr(&r, "x-sluice-upstream", "alpha");
    assert_hdr(&r, "x-sluice-fallbacks", "0");
    h_resp_free(&r);
}
END_TEST

/* ---- under load ---------------------------------------------------------- */

struct load {
    const char *model;
    double until_ms;
    atomic_int ok, failed;
    atomic_int last_status;
};

static void *load_main(void *arg)
{
    struct load *l = arg;
    char body[256];
    snprintf(body, sizeof body,
             "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\","
             "\"content\":\"hi\"}]}",
             l->model);
    for (int i = 0; i < 100000 && h_now_ms() < l->until_ms; i++) {
        h_resp r;
        h_request(h_sluice_port(), "POST", "/v1/chat/completions", NULL, body,
                  strlen(body), 10000, &r);
        if (r.status == 200) {
            atomic_fetch_add(&l->ok, 1);
        } else {
            atomic_fetch_add(&l->failed, 1);
            atomic_store(&l->last_status, (int)r.status);
            fprintf(stderr, "load: %ld %s\n", r.status, it_show(&r));
        }
        h_resp_free(&r);
    }
    return NULL;
}

#define LOAD_THREADS 16

static void load_start(struct load *l, pthread_t *t, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, load_main, l), 0);
}

static void load_join(pthread_t *t, int n)
{
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
}

START_TEST(load_with_alpha_killed_and_restarted)
{
    /* alpha and beta as extra mocks (1 and 2), so alpha can come back on
     * its port */
    int pa = h_start_mock_at(1, 0), pb = h_start_mock_at(2, 0);
    const char *ka = it_secret_file("a.keys", alpha_keys);
    const char *kb = it_secret_file("b.keys", KB "\n");
    snprintf(yaml_extra, sizeof yaml_extra,
             "upstreams:\n"
             "  - name: alpha\n"
             "    base_url: \"http://127.0.0.1:%d/v1\"\n"
             "    keys: { keys_file: \"%s\", cooldown_cap_s: 1 }\n"
             "  - name: beta\n"
             "    base_url: \"http://127.0.0.1:%d/v1\"\n"
             "    keys: { keys_file: \"%s\" }\n"
             "routes:\n"
             "  - model: m\n"
             "    deployments: [{ upstream: alpha }, { upstream: beta }]\n",
             pa, ka, pb, kb);
    h_opts o = {.pipeline = pipeline("deployment_cooldown_s: 1"),
                .base_url = "",
                .extra = yaml_extra};
    h_start_sluice(&o);
    struct load l = {.model = "m", .until_ms = h_now_ms() + 20000};
    pthread_t t[LOAD_THREADS];
    load_start(&l, t, LOAD_THREADS);
    h_sleep_ms(5000);
    ck_assert_int_gt(mock_count(1), 0);
    h_stop_mock_at(1);
    h_sleep_ms(5000);
    ck_assert_int_eq(h_start_mock_at(1, pa), pa); /* a fresh record */
    load_join(t, LOAD_THREADS);
    ck_assert_msg(atomic_load(&l.failed) == 0,
                  "%d of %d requests failed (last status %d)",
                  atomic_load(&l.failed),
                  atomic_load(&l.ok) + atomic_load(&l.failed),
                  atomic_load(&l.last_status));
    ck_assert_int_gt(atomic_load(&l.ok), 1000);
    int back = mock_count(1);
    ck_assert_msg(back > 100, "alpha got %d requests after it came back", back);
}
END_TEST

/* The config of the reload test: `with_gamma` adds upstream gamma (mock
 * 3) and the route g to it. */
static void write_reload_config(int with_gamma, int pa, int pb, int pg)
{
    char gamma_up[256] = "", gamma_route[256] = "";
    if (with_gamma) {
        snprintf(gamma_up, sizeof gamma_up,
                 "  - { name: gamma, base_url: \"http://127.0.0.1:%d/v1\", "
                 "keys: false }\n",
                 pg);
        snprintf(gamma_route, sizeof gamma_route,
                 "  - { model: g, deployments: [{ upstream: gamma, model: "
                 "g-up }] }\n");
    }
    snprintf(yaml_extra, sizeof yaml_extra,
             "admin:\n  token_file: \"%s\"\n"
             "upstreams:\n"
             "  - { name: alpha, base_url: \"http://127.0.0.1:%d/v1\", keys: "
             "false }\n"
             "  - { name: beta, base_url: \"http://127.0.0.1:%d/v1\", keys: "
             "false }\n%s"
             "routes:\n"
             "  - model: m\n"
             "    deployments: [{ upstream: alpha }, { upstream: beta }]\n%s",
             it_secret_file("admin.token", "routing-admin-token-0123456789\n"),
             pa, pb, gamma_up, gamma_route);
}

static long admin_reload(void)
{
    h_resp r;
    const char *hdr[] = {"Authorization: Bearer routing-admin-token-0123456789",
                         NULL};
    h_request(h_sluice_port(), "POST", "/admin/reload", hdr, "", 0, 20000, &r);
    long st = r.status;
    if (st != 200)
        fprintf(stderr, "reload: %ld %s\n", st, it_show(&r));
    h_resp_free(&r);
    return st;
}

START_TEST(reload_adds_and_removes_an_upstream_under_load)
{
    int pa = h_start_mock(), pb = h_start_mock_at(1, 0);
    int pg = h_start_mock_at(2, 0);
    const char *pipe = "  - plugin: router\n"
                       "  - plugin: retry\n"
                       "    config: { max_retries: 1, base_ms: 5 }\n"
                       "  - plugin: sse\n";
    write_reload_config(0, pa, pb, pg);
    h_opts o = {.pipeline = pipe, .base_url = "", .extra = yaml_extra};
    h_start_sluice(&o);
    struct load l = {.model = "m", .until_ms = h_now_ms() + 6000};
    pthread_t t[8];
    load_start(&l, t, 8);
    h_sleep_ms(1000);
    h_resp r;

    chat_model("g", 0, &r);
    it_assert_error(&r, 404, "model_not_found", "g before the reload");
    h_resp_free(&r);
    write_reload_config(1, pa, pb, pg);
    ck_assert_int_eq(h_write_config(h_config_path(), &o, h_sluice_port()), 0);
    ck_assert_int_eq(admin_reload(), 200);
    chat_model("g", 0, &r);
    ck_assert_msg(r.status == 200, "g after the reload: %ld %s", r.status,
                  it_show(&r));
    assert_hdr(&r, "x-sluice-upstream", "gamma");
    h_resp_free(&r);
    json_t *arr;
    assert_rec_model(last_rec(2, &arr), "g-up");
    json_decref(arr);

    h_sleep_ms(1500);
    write_reload_config(0, pa, pb, pg);
    ck_assert_int_eq(h_write_config(h_config_path(), &o, h_sluice_port()), 0);
    ck_assert_int_eq(admin_reload(), 200);
    chat_model("g", 0, &r);
    it_assert_error(&r, 404, "model_not_found", "g after its removal");
    h_resp_free(&r);
    load_join(t, 8);
    ck_assert_msg(atomic_load(&l.failed) == 0,
                  "%d of %d requests failed during the reloads",
                  atomic_load(&l.failed),
                  atomic_load(&l.ok) + atomic_load(&l.failed));
    ck_assert_int_gt(atomic_load(&l.ok), 100);
}
END_TEST

/* Requests to model m, one at a time; the upstreams that served them. */
static void serve_m(int n, const char *const *want)
{
    for (int i = 0; i < n; i++) {
        h_resp r;
        chat_model("m", 0, &r);
        ck_assert_msg(r.status == 200, "%ld %s", r.status, it_show(&r));
        assert_hdr(&r, "x-sluice-upstream", want[i]);
        h_resp_free(&r);
    }
}

/* m's two deployments weigh the same: alpha, beta, alpha, ... A reload
 * (here adding an upstream and a route) carries the position on: the
 * next request is beta's turn, where a fresh start would say alpha. */
START_TEST(reload_keeps_the_weighted_round_robin_position)
{
    int pa = h_start_mock(), pb = h_start_mock_at(1, 0);
    int pg = h_start_mock_at(2, 0);
    write_reload_config(0, pa, pb, pg);
    h_opts o = {.pipeline = "  - plugin: router\n",
                .base_url = "",
                .extra = yaml_extra};
    h_start_sluice(&o);
    serve_m(3, (const char *const[]){"alpha", "beta", "alpha"});
    write_reload_config(1, pa, pb, pg);
    ck_assert_int_eq(h_write_config(h_config_path(), &o, h_sluice_port()), 0);
    ck_assert_int_eq(admin_reload(), 200);
    serve_m(3, (const char *const[]){"beta", "alpha", "beta"});
    ck_assert_int_eq(mock_count(0), 3);
    ck_assert_int_eq(mock_count(1), 3);
    ck_assert_int_eq(mock_count(2), 0);
}
END_TEST

/* ---- header lists per upstream ------------------------------------------- */

/* alpha has its own forward_headers / add_headers; beta inherits
 * upstream:'s. */
static void start_header_lists(void)
{
    int pa = h_start_mock();
    int pb = h_start_mock_at(1, 0);
    const char *ka = it_secret_file("a.keys", alpha_keys);
    const char *kb = it_secret_file("b.keys", KB "\n");
    snprintf(yaml_extra, sizeof yaml_extra,
             "upstreams:\n"
             "  - name: alpha\n"
             "    base_url: \"http://127.0.0.1:%d/v1\"\n"
             "    keys: { keys_file: \"%s\" }\n"
             "    forward_headers: [X-Trace-Id]\n"
             "    add_headers: { X-Alpha-Only: a1 }\n"
             "  - name: beta\n"
             "    base_url: \"http://127.0.0.1:%d/v1\"\n"
             "    keys: { keys_file: \"%s\" }\n"
             "routes:\n"
             "  - { model: m-a, deployments: [{ upstream: alpha }] }\n"
             "  - { model: m-b, deployments: [{ upstream: beta }] }\n",
             pa, ka, pb, kb);
    h_opts o = {.pipeline = pipeline(NULL),
                .base_url = "",
                .upstream_extra =
                    "  forward_headers: [OpenAI-Beta, X-Trace-Id]\n"
                    "  add_headers: { X-Gateway: sluice }\n",
                .extra = yaml_extra};
    h_start_sluice(&o);
}

static void chat_with_headers(const char *model, const char **hdr, h_resp *r)
{
    char body[256];
    snprintf(body, sizeof body,
             "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\","
             "\"content\":\"hi\"}]}",
             model);
    h_request(h_sluice_port(), "POST", "/v1/chat/completions", hdr, body,
              strlen(body), 10000, r);
}

START_TEST(header_lists_apply_per_upstream)
{
    start_header_lists();
    const char *hdr[] = {"Content-Type: application/json",
                         "OpenAI-Beta: assistants=v2", "X-Trace-Id: t-1",
                         "X-Alpha-Only: from-client", NULL};
    h_resp r;
    json_t *arr, *rec;

    chat_with_headers("m-a", hdr, &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, it_show(&r));
    h_resp_free(&r);
    rec = last_rec(0, &arr);
    ck_assert_msg(!h_rec_header(rec, "openai-beta"),
                  "alpha's own list drops OpenAI-Beta");
    ck_assert_str_eq(h_rec_header(rec, "x-trace-id"), "t-1");
    ck_assert_str_eq(h_rec_header(rec, "x-alpha-only"), "a1");
    ck_assert_msg(!h_rec_header(rec, "x-gateway"),
                  "alpha's own add_headers replace upstream:'s");
    json_decref(arr);

    chat_with_headers("m-b", hdr, &r);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, it_show(&r));
    h_resp_free(&r);
    rec = last_rec(1, &arr);
    ck_assert_str_eq(h_rec_header(rec, "openai-beta"), "assistants=v2");
    ck_assert_str_eq(h_rec_header(rec, "x-trace-id"), "t-1");
    ck_assert_str_eq(h_rec_header(rec, "x-gateway"), "sluice");
    ck_assert_msg(!h_rec_header(rec, "x-alpha-only"),
                  "beta got alpha's added header or the client's");
    json_decref(arr);
}
END_TEST

/* a forwarded client header too long to send is the client's 400, naming
 * the header and never echoing its value; the upstream is not asked */
START_TEST(oversized_client_header_is_400)
{
    start_header_lists();
    static char line[9000];
    int n = snprintf(line, sizeof line, "X-Trace-Id: ");
    memset(line + n, 'q', sizeof line - n - 1);
    line[sizeof line - 1] = '\0';
    const char *hdr[] = {"Content-Type: application/json", line, NULL};
    int before = mock_count(0);
    h_resp r;
    chat_with_headers("m-a", hdr, &r);
    ck_assert_msg(r.status == 400, "%ld %s", r.status, it_show(&r));
    json_t *doc = json_loadb(r.body, r.body_len, 0, NULL);
    json_t *err = json_object_get(doc, "error");
    ck_assert_str_eq(json_string_value(json_object_get(err, "type")),
                     "invalid_request_error");
    ck_assert_str_eq(json_string_value(json_object_get(err, "code")),
                     "header_too_long");
    const char *msg = json_string_value(json_object_get(err, "message"));
    ck_assert_msg(msg && strstr(msg, "X-Trace-Id"), "message: %s",
                  msg ? msg : "(none)");
    ck_assert_msg(!strstr(r.body, "qqqq"), "the value was echoed: %s", r.body);
    json_decref(doc);
    h_resp_free(&r);
    ck_assert_int_eq(mock_count(0), before);
}
END_TEST

/* ---- bad configuration --------------------------------------------------- */

static void check_refused(const char *name, const char *upstreams,
                          const char *routes, const char *want1,
                          const char *want2)
{
    char path[512], *out = NULL;
    snprintf(path, sizeof path, "%s/%s.yaml", h_tmpdir(), name);
    FILE *f = fopen(path, "w");
    ck_assert(f != NULL);
    fprintf(f,
            "server: { host: \"127.0.0.1\", port: 0 }\n"
            "plugins_dir: \"%s\"\n"
            "upstreams:\n%s"
            "routes:\n%s"
            "pipeline:\n"
            "  - plugin: router\n",
            getenv("PLUGINS_DIR"), upstreams, routes);
    fclose(f);
    char *argv[] = {(char *)getenv("SLUICE_BIN"), "--check", "-c", path, NULL};
    int rc = h_run_capture(argv, 10000, &out);
    ck_assert_msg(rc != 0, "%s: --check accepted it:\n%s", name, out);
    ck_assert_msg(strstr(out, want1) && strstr(out, want2),
                  "%s: expected '%s' and '%s' in:\n%s", name, want1, want2,
                  out);
    free(out);
}

#define UP2                                                                    \
    "  - { name: a, base_url: \"http://127.0.0.1:1/v1\", keys: false }\n"      \
    "  - { name: b, base_url: \"http://127.0.0.1:2/v1\", keys: false }\n"

START_TEST(bad_configurations_are_refused_with_file_and_line)
{
    check_refused("unknown_upstream", UP2,
                  "  - model: x\n"
                  "    deployments: [{ upstream: nope }]\n",
                  "unknown_upstream.yaml:8: routes[0].deployments[0].upstream",
                  "unknown upstream 'nope'");
    check_refused("dup_upstream",
                  "  - { name: a, base_url: \"http://127.0.0.1:1/v1\" }\n"
                  "  - { name: a, base_url: \"http://127.0.0.1:2/v1\" }\n",
                  "  - { model: x, deployments: [{ upstream: a }] }\n",
                  "dup_upstream.yaml:5: upstreams[1].name",
                  "duplicate upstream name 'a'");
    check_refused("dup_model", UP2,
                  "  - { model: x, deployments: [{ upstream: a }] }\n"
                  "  - { model: y, aliases: [x], deployments: [{ upstream: b "
                  "}] }\n",
                  "dup_model.yaml:8: routes[1].aliases[0]",
                  "duplicate model name 'x'");
    check_refused("empty_deployments", UP2,
                  "  - { model: x, deployments: [] }\n",
                  "empty_deployments.yaml:7: routes[0].deployments",
                  "a non-empty list of deployments");
    check_refused("zero_weight", UP2,
                  "  - model: x\n"
                  "    deployments: [{ upstream: a, weight: 0 }]\n",
                  "zero_weight.yaml:8: routes[0].deployments[0].weight",
                  "a weight > 0");
    check_refused("cycle", UP2,
                  "  - { model: x, deployments: [{ upstream: a }], "
                  "fallbacks: [y] }\n"
                  "  - { model: y, deployments: [{ upstream: b }], "
                  "fallbacks: [x] }\n",
                  "cycle.yaml:", "fallback cycle");
    check_refused("shadow", UP2,
                  "  - { model: \"deepseek-*\", deployments: [{ upstream: a "
                  "}] }\n"
                  "  - { model: deepseek-chat, deployments: [{ upstream: b "
                  "}] }\n",
                  "shadow.yaml:7: routes[0].model",
                  "shadows 'deepseek-chat' listed after it");
    check_refused("keys_unreadable",
                  "  - name: a\n"
                  "    base_url: \"http://127.0.0.1:1/v1\"\n"
                  "    keys: { keys_file: /nonexistent/keys.txt }\n",
                  "  - { model: x, deployments: [{ upstream: a }] }\n",
                  "keys_unreadable.yaml:6: upstreams[0].keys.keys_file",
                  "cannot read keys file '/nonexistent/keys.txt'");
    check_refused("reserved_header",
                  "  - name: a\n"
                  "    base_url: \"http://127.0.0.1:1/v1\"\n"
                  "    keys: false\n"
                  "    forward_headers: [X-Ok, Authorization]\n",
                  "  - { model: x, deployments: [{ upstream: a }] }\n",
                  "reserved_header.yaml:7: upstreams[0].forward_headers",
                  "'Authorization' is never passed upstream");
    check_refused("bad_add_headers",
                  "  - name: a\n"
                  "    base_url: \"http://127.0.0.1:1/v1\"\n"
                  "    keys: false\n"
                  "    add_headers: [X-Not-A-Map]\n",
                  "  - { model: x, deployments: [{ upstream: a }] }\n",
                  "bad_add_headers.yaml:7: upstreams[0].add_headers",
                  "a mapping of header: value");
    check_refused("bad_retries", UP2,
                  "  - model: x\n"
                  "    retries: { max_retries: 99 }\n"
                  "    deployments: [{ upstream: a }]\n",
                  "bad_retries.yaml:8: routes[0].retries.max_retries", "15");
    check_refused("unknown_retries_key", UP2,
                  "  - model: x\n"
                  "    retries: { max_tries: 1 }\n"
                  "    deployments: [{ upstream: a }]\n",
                  "unknown_retries_key.yaml:8: routes[0].retries", "max_tries");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("routing");
    TCase *tc = tcase_create("routing");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, routes_by_model_rewrite_key_header_and_query);
    tcase_add_test(tc, weights_three_to_one_within_five_percent);
    tcase_add_test(tc, failover_when_alpha_refuses_connections);
    tcase_add_test(tc, failover_when_alpha_answers_500);
    tcase_add_test(tc, failover_when_every_alpha_key_is_401);
    tcase_add_test(tc, probe_brings_back_a_failed_key_of_another_upstream);
    tcase_add_test(tc, fallback_model_list_gets_its_own_model_name);
    tcase_add_test(tc, stream_falls_back_before_first_byte_not_after);
    tcase_add_test(tc, fallback_on_without_5xx_lets_the_500_through);
    tcase_add_test(tc,
                   refused_keys_fall_back_by_default_before_the_pool_is_empty);
    tcase_add_test(tc, fallback_on_4xx_leaves_refused_keys_out);
    tcase_add_test(tc, route_retry_budget_replaces_the_stage_budget);
    tcase_add_test(tc, context_fallback_picks_the_first_model_that_fits);
    tcase_add_test(tc, load_with_alpha_killed_and_restarted);
    tcase_add_test(tc, reload_adds_and_removes_an_upstream_under_load);
    tcase_add_test(tc, reload_keeps_the_weighted_round_robin_position);
    suite_add_tcase(s, tc);
    /* CK_RUN_CASE=headers runs these alone */
    TCase *th = tcase_create("headers");
    tcase_add_checked_fixture(th, setup, teardown);
    tcase_set_timeout(th, 60);
    tcase_add_test(th, header_lists_apply_per_upstream);
    tcase_add_test(th, oversized_client_header_is_400);
    tcase_add_test(th, bad_configurations_are_refused_with_file_and_line);
    suite_add_tcase(s, th);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
