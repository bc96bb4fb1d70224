/*
 * test_fleet.c - several sluice instances on one Redis (state.backend:
 * redis), through the real binaries: a key failed on A is skipped on B, a
 * reset on C clears it everywhere, a restarted instance finds it in Redis;
 * a client's rate limit holds fleet-wide; Redis killed under load fails no
 * request, says "degraded" on /health and in /metrics, and when it is back
 * the instances converge; a wrong password or an unreachable URL at start
 * is a degraded start with a clear message (or a refusal, with required).
 *
 * Redis is the suite's own (tests/redis/redis_fixture.sh, a CTest fixture
 * that writes its port and password to REDIS_FIXTURE_DIR); without
 * redis-server the test SKIPs (exit 77).
 */
#include "harness.h"
#include "itest_util.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOKEN   "fleet-admin-token-0123456789"
#define KA      "sk-fleet-test-aaaa0001"
#define KB      "sk-fleet-test-bbbb0002"
#define KC      "sk-fleet-test-cccc0003"
#define KD      "sk-fleet-test-dddd0004"
#define CLIENT  "sk-client-fleet-000001"
#define LIMITED "sk-client-fleet-rpm006"

static const char BODY[] =
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\","
    "\"content\":\"hi\"}]}";

static char rdir[512];
static int rport;
static char prefix[64];
static char auth_hdr[128];

static void setup(void)
{
    h_tmpdir();
    /* each test its own key space in the shared Redis */
    snprintf(prefix, sizeof prefix, "t%d-%ld:", (int)getpid(),
             (long)h_now_ms());
    snprintf(auth_hdr, sizeof auth_hdr, "Authorization: Bearer %s", TOKEN);
}

static void teardown(void)
{
    h_teardown();
}

/* The YAML of instance `name` on Redis at `port` (0: the fixture's) with
 * the password in pwfile (NULL: the fixture's). */
static const h_opts *fleet_opts_at(const char *name, const char *state_extra,
                                   int port, const char *pwfile)
{
    char pwdefault[600];
    snprintf(pwdefault, sizeof pwdefault, "%s/password", rdir);
    static char extra[4][1024], pipeline[1024];
    static h_opts o[4];
    static int next;
    int i = next++ % 4;
    snprintf(extra[i], sizeof extra[i],
             "admin:\n  token_file: \"%s\"\n"
             "state:\n  backend: redis\n"
             "  url: \"redis://127.0.0.1:%d/0\"\n"
             "  password_file: \"%s\"\n"
             "  prefix: \"%s\"\n  instance: \"%s\"\n%s",
             it_secret_file("admin.token", TOKEN "\n"), port ? port : rport,
             pwfile ? pwfile : pwdefault, prefix, name,
             state_extra ? state_extra : "");
    it_secret_file("clients.txt", CLIENT " fleet\n" LIMITED " limited rpm=6\n");
    snprintf(pipeline, sizeof pipeline,
             "  - plugin: auth\n"
             "    config: { clients_file: \"@TMPDIR@/clients.txt\" }\n"
             "  - plugin: keyring\n"
             "    config: { keys_file: \"@KEYS_FILE@\" }\n"
             "  - plugin: retry\n"
             "    config: { base_ms: 20, max_ms: 50 }\n"
             "  - plugin: sse\n");
    memset(&o[i], 0, sizeof o[i]);
    o[i].keys = KA "\n" KB "\n" KC "\n";
    o[i].pipeline = pipeline;
    o[i].extra = extra[i];
    return &o[i];
}

static const h_opts *fleet_opts(const char *name, const char *state_extra)
{
    return fleet_opts_at(name, state_extra, 0, NULL);
}

static long chat_as(int port, const char *client_hdr)
{
    const char *hdrs[] = {client_hdr, NULL};
    h_resp r;
    h_request(port, "POST", CHAT, hdrs, BODY, strlen(BODY), 10000, &r);
    long st = r.status;
    h_resp_free(&r);
    return st;
}

static long chat(int port)
{
    return chat_as(port, "Authorization: Bearer " CLIENT);
}

static char *get(int port, const char *path)
{
    const char *hdrs[] = {auth_hdr, NULL};
    return h_get_body(port, path, hdrs);
}

static long post(int port, const char *path)
{
    const char *hdrs[] = {auth_hdr, NULL};
    h_resp r;
    h_request(port, "POST", path, hdrs, NULL, 0, 10000, &r);
    long st = r.status;
    h_resp_free(&r);
    return st;
}

/* Poll GET path on port (bounded) until its body has (or lacks) needle. */
static int wait_body(int port, const char *path, const char *needle, int want)
{
    const char *hdrs[] = {auth_hdr, NULL};
    return h_wait_body(port, path, hdrs, needle, want, 5000);
}

/* Letters of the keys the mock saw since its reset ("BCB..."). */
static void mock_keys(char *out, size_t outlen)
{
    json_t *reqs = h_mock_requests();
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(reqs) && n + 1 < outlen; i++) {
        const char *a = h_rec_header(json_array_get(reqs, i), "authorization");
        out[n++] = a && strlen(a) > 21 ? (char)(a[21] - 'a' + 'A') : '?';
    }
    out[n] = '\0';
    json_decref(reqs);
}

static int log_count(const char *file, const char *needle)
{
    char path[700], *text = NULL;
    snprintf(path, sizeof path, "%s/%s", h_tmpdir(), file);
    char *argv[] = {"/bin/cat", path, NULL};
    h_run_capture(argv, 5000, &text);
    int n = 0;
    for (const char *p = text; p && (p = strstr(p, needle)); p++)
        n++;
    free(text);
    return n;
}

START_TEST(key_health_is_fleet_wide)
{
    h_start_mock();
    int a = h_fleet_start(fleet_opts("A", NULL));
    int b = h_fleet_start(fleet_opts("B", NULL));
    int c = h_fleet_start(fleet_opts("C", NULL));
    ck_assert_int_eq(
        h_mock_script("{\"rules\":[{\"match\":{\"auth\":\"Bearer " KA "\"},"
                      "\"times\":1,\"status\":401}]}"),
        0);
    ck_assert_int_eq(chat(h_fleet_port(a)), 200); /* KA 401, then KB */
    /* B and C learn it (pub/sub); B skips KA from then on */
    ck_assert(
        wait_body(h_fleet_port(b), "/admin/keys", "\"state\":\"failed\"", 1));
    ck_assert(
        wait_body(h_fleet_port(c), "/admin/keys", "\"state\":\"failed\"", 1));
    char *keys = get(h_fleet_port(b), "/admin/keys");
    ck_assert_msg(strstr(keys, "\"changed_by\":\"A\""), "%s", keys);
    ck_assert_msg(!strstr(keys, KA), "%s", keys);
    free(keys);
    ck_assert_int_eq(h_mock_reset(), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(chat(h_fleet_port(b)), 200);
    char seen[32];
    mock_keys(seen, sizeof seen);
    ck_assert_msg(!strchr(seen, 'A'), "B used the failed key: %s", seen);

    /* a restarted instance finds it in Redis */
    kill(h_fleet_pid(a), SIGKILL);
    int a2 = h_fleet_start(fleet_opts("A", NULL));
    keys = get(h_fleet_port(a2), "/admin/keys");
    ck_assert_msg(strstr(keys, "\"state\":\"failed\""), "%s", keys);
    free(keys);

    /* reload-keys on A: every instance re-reads its keys file */
    FILE *kf = fopen(h_keys_path(), "w");
    ck_assert_ptr_nonnull(kf);
    fputs(KA "\n" KB "\n" KC "\n" KD "\n", kf);
    fclose(kf);
    ck_assert_int_eq(post(h_fleet_port(a2), "/admin/reload-keys"), 200);
    ck_assert(wait_body(h_fleet_port(b), "/admin/keys", "sk-…0004", 1));
    ck_assert(wait_body(h_fleet_port(c), "/admin/keys", "sk-…0004", 1));
    keys = get(h_fleet_port(b), "/admin/keys");
    ck_assert_msg(strstr(keys, "\"state\":\"failed\""), "kept: %s", keys);
    free(keys);

    /* a reset on C clears it everywhere */
    ck_assert_int_eq(post(h_fleet_port(c), "/admin/reset-failed-keys"), 200);
    ck_assert(
        wait_body(h_fleet_port(b), "/admin/keys", "\"state\":\"failed\"", 0));
    ck_assert(
        wait_body(h_fleet_port(a2), "/admin/keys", "\"state\":\"failed\"", 0));
    ck_assert_int_eq(h_mock_reset(), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(chat(h_fleet_port(b)), 200);
    mock_keys(seen, sizeof seen);
    ck_assert_msg(strchr(seen, 'A'), "KA not used again on B: %s", seen);
}
END_TEST

START_TEST(rate_limit_is_fleet_wide)
{
    h_start_mock();
    int ports[3];
    for (int i = 0; i < 3; i++)
        ports[i] = h_fleet_port(h_fleet_start(fleet_opts("ABC" + i, NULL)));
    /* rpm=6 per instance would admit 18 of these; the fleet admits 6
     * (a little more only if an instance ran ahead of the last flush) */
    int ok = 0, limited = 0;
    for (int i = 0; i < 18; i++) {
        long st = chat_as(ports[i % 3], "Authorization: Bearer " LIMITED);
        ok += st == 200;
        limited += st == 429;
        h_sleep_ms(30); /* pacing, not an assertion: one flush apart */
    }
    ck_assert_msg(ok >= 6 && ok <= 8 && ok + limited == 18,
                  "%d admitted, %d limited", ok, limited);
    ck_assert_int_eq(h_mock_request_count(), ok);
}
END_TEST

START_TEST(redis_down_is_degraded_not_down)
{
    char cmd[700];
    h_start_mock();
    int a = h_fleet_start(fleet_opts("A", NULL));
    int b = h_fleet_start(fleet_opts("B", NULL));
    int pa = h_fleet_port(a), pb = h_fleet_port(b);
    char *m = get(pa, "/metrics");
    ck_assert_msg(h_metrics_sample(m, "sluice_state_backend_up") == 1, "%s", m);
    free(m);
    /* Redis goes away (by its PID) */
    snprintf(cmd, sizeof cmd, "kill -9 $(cat '%s/pid')", rdir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(
        h_mock_script("{\"rules\":[{\"match\":{\"auth\":\"Bearer " KA "\"},"
                      "\"times\":1,\"status\":401}]}"),
        0);
    int failed = 0;
    for (int i = 0; i < 20; i++) {
        failed += chat(pa) != 200;
        failed += chat(pb) != 200;
    }
    ck_assert_int_eq(failed, 0);
    ck_assert(wait_body(pa, "/health", "\"status\":\"degraded\"", 1));
    h_resp r;
    h_request(pa, "GET", "/health", NULL, NULL, 0, 5000, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(strstr(r.body, "\"up\":false") && strstr(r.body, "reason"),
                  "%s", r.body);
    h_resp_free(&r);
    m = get(pa, "/metrics");
    ck_assert_msg(h_metrics_sample(m, "sluice_state_backend_up") == 0, "%s", m);
    ck_assert_msg(h_metrics_sample(m, "sluice_state_backend_errors_total") >= 1,
                  "%s", m);
    free(m);
    /* KA failed on A while Redis was away: B does not know yet */
    char *keys = get(pb, "/admin/keys");
    ck_assert_msg(!strstr(keys, "\"state\":\"failed\""), "%s", keys);
    free(keys);

    /* Redis back (empty): A pushes what it changed, B pulls: converged */
    snprintf(cmd, sizeof cmd, "bash tests/redis/redis_fixture.sh restart '%s'",
             rdir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert(wait_body(pa, "/health", "\"status\":\"ok\"", 1));
    ck_assert(wait_body(pb, "/admin/keys", "\"state\":\"failed\"", 1));
    /* one WARNING when it went, one INFO when it came back: no flood (the
     * log is written by its own thread: wait for the line) */
    for (int i = 0; i < 200 && log_count("fleet0.log", "/0 is back") < 1; i++)
        h_sleep_ms(10);
    ck_assert_int_eq(log_count("fleet0.log", "/0 unavailable: "), 1);
    ck_assert_int_eq(log_count("fleet0.log", "/0 is back"), 1);
}
END_TEST

START_TEST(bad_password_or_url_at_start)
{
    /* a wrong password: starts degraded, says why, never says it */
    const char *wrong = it_secret_file("wrong.pw", "not-the-password\n");
    h_start_mock();
    int w = h_fleet_start(fleet_opts_at("W", NULL, 0, wrong));
    ck_assert(
        wait_body(h_fleet_port(w), "/health", "\"status\":\"degraded\"", 1));
    ck_assert_int_eq(chat(h_fleet_port(w)), 200);
    ck_assert_int_ge(log_count("fleet0.log", "starting degraded"), 1);
    ck_assert_int_ge(log_count("fleet0.log", "AUTH refused"), 1);
    ck_assert_int_eq(log_count("fleet0.log", "not-the-password"), 0);

    /* an unreachable URL: degraded; with required: true, no start */
    int closed = h_free_port();
    int u = h_fleet_start(fleet_opts_at("U", NULL, closed, NULL));
    ck_assert(
        wait_body(h_fleet_port(u), "/health", "\"status\":\"degraded\"", 1));
    char cfg[600], *out = NULL, port_s[32];
    snprintf(cfg, sizeof cfg, "%s/required.yaml", h_tmpdir());
    ck_assert_int_eq(
        h_write_config(
            cfg, fleet_opts_at("R", "  required: true\n", closed, NULL), 0),
        0);
    char *argv[] = {getenv("SLUICE_BIN"), "-c", cfg, NULL};
    int rc = h_run_capture(argv, 15000, &out);
    ck_assert_msg(rc != 0 && rc < 128, "exit %d: %s", rc, out);
    snprintf(port_s, sizeof port_s, "redis 127.0.0.1:%d", closed);
    ck_assert_msg(strstr(out, port_s), "%s", out);
    free(out);
}
END_TEST

static Suite *fleet_suite(void)
{
    Suite *s = suite_create("fleet");
    TCase *tc = tcase_create("redis");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, key_health_is_fleet_wide);
    tcase_add_test(tc, rate_limit_is_fleet_wide);
    tcase_add_test(tc, bad_password_or_url_at_start);
    /* last: it restarts the fixture's Redis */
    tcase_add_test(tc, redis_down_is_degraded_not_down);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    rport = h_redis_fixture(rdir, sizeof rdir);
    SRunner *sr = srunner_create(fleet_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
