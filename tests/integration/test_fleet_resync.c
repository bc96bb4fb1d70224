/*
 * test_fleet_resync.c - what a fleet's state survives, through the real
 * binaries on the suite's own Redis (tests/redis/redis_fixture.sh, killed
 * and restarted here by its PID): an instance started later loads the
 * counters (usage, rate-limit windows) the others made, not only the
 * records; a Redis that comes back empty after a restart gets the counters
 * back from the instances' views (once, not once per instance); and with
 * state.on_unavailable: closed, a client whose limits are counted in the
 * shared state is refused with an OpenAI-shaped 503 while Redis is away
 * (open, the default, keeps serving). A record deleted while a new
 * instance's subscriber is not reading yet still reaches it (it subscribes
 * before it pulls). Each check reads both what sluice
 * answers and what Redis itself holds (redis-cli). Without the fixture the
 * test SKIPs (exit 77).
 */
#include "harness.h"
#include "itest_util.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOKEN   "resync-admin-token-0123456789"
#define CLIENT  "sk-client-resync-000001"
#define LIMITED "sk-client-resync-rpm006"
#define KEY     "sk-resync-test-aaaa0001"
#define KEY2    "sk-resync-test-bbbb0002"

static const char BODY[] =
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\","
    "\"content\":\"hi\"}]}";
/* every answer: 5,000 tokens */
static const char ANSWER[] =
    "{\"rules\":[{\"times\":0,\"json\":{\"id\":\"x\","
    "\"object\":\"chat.completion\",\"model\":\"m\",\"choices\":[{\"index\":"
    "0,\"message\":{\"role\":\"assistant\",\"content\":\"ok\"},"
    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":4000,"
    "\"completion_tokens\":1000,\"total_tokens\":5000}}}]}";
/* the counters behind them, as Redis names them after the prefix */
#define USAGE_REQUESTS "c:usage:d|*|team|*|r"
#define LIMITED_WINDOW "c:auth:win:r:limited:*"

static char rdir[512], prefix[64];
static int rport;

/* redis-cli reads the fixture's password from the environment, not argv */
static void redis_cli_auth(void)
{
    char path[600], buf[128] = "";
    snprintf(path, sizeof path, "%s/password", rdir);
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(buf, sizeof buf, f))
            buf[0] = '\0';
        fclose(f);
    }
    buf[strcspn(buf, "\r\n")] = '\0';
    setenv("REDISCLI_AUTH", buf, 1);
}

static void setup(void)
{
    h_tmpdir();
    snprintf(prefix, sizeof prefix, "s%d-%ld:", (int)getpid(),
             (long)h_now_ms());
}

static void teardown(void)
{
    h_teardown();
}

static const h_opts *opts(const char *name, const char *state_extra)
{
    static char extra[4][1024];
    static h_opts o[4];
    static int next;
    int i = next++ % 4;
    snprintf(extra[i], sizeof extra[i],
             "admin:\n  token_file: \"%s\"\n"
             "state:\n  backend: redis\n"
             "  url: \"redis://127.0.0.1:%d/0\"\n"
             "  password_file: \"%s/password\"\n"
             "  prefix: \"%s\"\n  instance: \"%s\"\n%s",
             it_secret_file("admin.token", TOKEN "\n"), rport, rdir, prefix,
             name, state_extra ? state_extra : "");
    it_secret_file("clients.txt", CLIENT " team\n" LIMITED " limited rpm=6\n");
    memset(&o[i], 0, sizeof o[i]);
    o[i].keys = KEY "\n" KEY2 "\n";
    o[i].pipeline = "  - plugin: auth\n"
                    "    config: { clients_file: \"@TMPDIR@/clients.txt\" }\n"
                    "  - plugin: usage\n"
                    "  - plugin: keyring\n"
                    "    config: { keys_file: \"@KEYS_FILE@\" }\n"
                    "  - plugin: sse\n";
    o[i].extra = extra[i];
    return &o[i];
}

/* The status of one chat request as `client` on port; the body into
 * body (may be NULL, caller frees). */
static long chat_as(int port, const char *client, char **body)
{
    char auth[128];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", client);
    const char *hdrs[] = {auth, NULL};
    h_resp r;
    h_request(port, "POST", CHAT, hdrs, BODY, strlen(BODY), 10000, &r);
    long st = r.status;
    if (body)
        *body = strdup(r.body ? r.body : "");
    h_resp_free(&r);
    return st;
}

/* GET path on port with the admin token: the body (caller frees). */
static const char *const ADMIN[] = {"Authorization: Bearer " TOKEN, NULL};

static char *get(int port, const char *path)
{
    return h_get_body(port, path, ADMIN);
}

/* Poll GET path (bounded) until its body has (or lacks) needle. */
static int wait_body(int port, const char *path, const char *needle, int want)
{
    return h_wait_body(port, path, ADMIN, needle, want, 10000);
}

/* Requests and tokens of client "team" in GET /admin/usage on port. */
static long long usage_on(int port, long long *tokens)
{
    char *body = get(port, "/admin/usage?group_by=client&client=team");
    json_error_t je;
    json_t *doc = json_loads(body, 0, &je);
    json_t *row = json_array_get(json_object_get(doc, "data"), 0);
    long long reqs = -1;
    *tokens = -1;
    if (row) {
        reqs = (long long)json_integer_value(json_object_get(row, "requests"));
        *tokens =
            (long long)json_integer_value(json_object_get(row, "total_tokens"));
    }
    json_decref(doc);
    free(body);
    return reqs;
}

/* redis-cli against the fixture's Redis with up to four arguments (the
 * first NULL ends them): its output (caller frees), or NULL when it
 * failed. */
static char *redis_cli4(const char *a1, const char *a2, const char *a3,
                        const char *a4)
{
    char port[16], *out = NULL;
    snprintf(port, sizeof port, "%d", rport);
    char *argv[] = {"/usr/bin/env",
                    "redis-cli",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    port,
                    "--no-auth-warning",
                    (char *)a1,
                    (char *)a2,
                    (char *)a3,
                    (char *)(a3 ? a4 : NULL),
                    NULL};
    if (h_run_capture(argv, 10000, &out) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

static char *redis_cli(const char *a1, const char *a2, const char *a3)
{
    return redis_cli4(a1, a2, a3, NULL);
}

/* The sum of the counters Redis holds under <prefix><pattern>; -1 when
 * Redis cannot be asked. */
static long long redis_sum(const char *pattern)
{
    char pat[300];
    snprintf(pat, sizeof pat, "%s%s", prefix, pattern);
    char *keys = redis_cli("--scan", "--pattern", pat);
    if (!keys)
        return -1;
    long long sum = 0;
    for (char *save = NULL, *k = strtok_r(keys, "\n", &save); k;
         k = strtok_r(NULL, "\n", &save)) {
        char *v = redis_cli("GET", k, NULL);
        if (!v) {
            free(keys);
            return -1;
        }
        sum += atoll(v);
        free(v);
    }
    free(keys);
    return sum;
}

/* Poll Redis (bounded) until the counters under pattern add up to want;
 * the last sum seen. */
static long long redis_wait_sum(const char *pattern, long long want)
{
    long long s = -1;
    for (int i = 0; i < 300; i++) {
        if ((s = redis_sum(pattern)) == want)
            break;
        h_sleep_ms(20);
    }
    return s;
}

static void redis_kill(void)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "kill -9 $(cat '%s/pid')", rdir);
    ck_assert_int_eq(system(cmd), 0);
}

static void redis_restart(void)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "bash tests/redis/redis_fixture.sh restart '%s'",
             rdir);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(later_instance_loads_counters)
{
    h_start_mock();
    ck_assert_int_eq(h_mock_script(ANSWER), 0);
    int pa = h_fleet_port(h_fleet_start(opts("A", NULL)));
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(chat_as(pa, CLIENT, NULL), 200);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(chat_as(pa, LIMITED, NULL), 200);
    /* Redis holds them (written by A's state thread in the background) */
    ck_assert_int_eq(redis_wait_sum(USAGE_REQUESTS, 3), 3);
    ck_assert_int_eq(redis_wait_sum(LIMITED_WINDOW, 4), 4);

    /* B starts now: A is idle, nothing more is published, so what B knows
     * it loaded at start (before it listens, so no polling here) */
    int pb = h_fleet_port(h_fleet_start(opts("B", NULL)));
    long long tokens = 0, reqs = usage_on(pb, &tokens);
    ck_assert_msg(reqs == 3 && tokens == 15000,
                  "B's /admin/usage: %lld requests, %lld tokens (A made 3, "
                  "15000)",
                  reqs, tokens);
    /* and the rate-limit window: 4 of LIMITED's 6 are used */
    int ok = 0, limited = 0;
    for (int i = 0; i < 4; i++) {
        long st = chat_as(pb, LIMITED, NULL);
        ok += st == 200;
        limited += st == 429;
    }
    ck_assert_msg(ok == 2 && limited == 2, "B admitted %d, limited %d", ok,
                  limited);
    ck_assert_int_eq(h_mock_request_count(), 3 + 4 + 2);
}
END_TEST

START_TEST(empty_redis_gets_counters_back)
{
    h_start_mock();
    ck_assert_int_eq(h_mock_script(ANSWER), 0);
    int pa = h_fleet_port(h_fleet_start(opts("A", NULL)));
    int pb = h_fleet_port(h_fleet_start(opts("B", NULL)));
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(chat_as(pa, CLIENT, NULL), 200);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(chat_as(pa, LIMITED, NULL), 200);
    ck_assert_int_eq(redis_wait_sum(USAGE_REQUESTS, 3), 3);
    ck_assert_int_eq(redis_wait_sum(LIMITED_WINDOW, 4), 4);
    ck_assert(wait_body(pb, "/admin/usage?group_by=client&client=team",
                        "\"requests\":3", 1));

    /* Redis restarts empty (nothing saved: --save ''; a marker shows) */
    char marker[128];
    snprintf(marker, sizeof marker, "%smarker", prefix);
    char *out = redis_cli("SET", marker, "1");
    ck_assert_msg(out && strstr(out, "OK"), "%s", out ? out : "(failed)");
    free(out);
    redis_kill();
    redis_restart();
    out = redis_cli("EXISTS", marker, NULL);
    ck_assert_msg(out && atoi(out) == 0, "%s", out ? out : "(failed)");
    free(out);
    ck_assert(wait_body(pa, "/health", "\"status\":\"ok\"", 1));
    ck_assert(wait_body(pb, "/health", "\"status\":\"ok\"", 1));
    /* both instances restore what they saw: the first one back sets it,
     * the other finds it there (3, not 6) */
    ck_assert_int_eq(redis_wait_sum(USAGE_REQUESTS, 3), 3);
    ck_assert_int_eq(redis_wait_sum(LIMITED_WINDOW, 4), 4);
    h_sleep_ms(300); /* not an assertion: a late second restore would show */
    ck_assert_int_eq(redis_sum(USAGE_REQUESTS), 3);
    ck_assert_int_eq(redis_sum(LIMITED_WINDOW), 4);

    /* counting goes on from there, on every instance */
    ck_assert_int_eq(chat_as(pb, CLIENT, NULL), 200);
    ck_assert_int_eq(redis_wait_sum(USAGE_REQUESTS, 4), 4);
    ck_assert(wait_body(pa, "/admin/usage?group_by=client&client=team",
                        "\"requests\":4", 1));
    /* the window kept its 4: B admits 2 more, not the 4 an emptied
     * window would (every value Redis answers B holds the 4) */
    int ok = 0;
    for (int i = 0; i < 4; i++)
        ok += chat_as(pb, LIMITED, NULL) == 200;
    ck_assert_msg(ok == 2, "B admitted %d of 4 after the restart", ok);
    ck_assert_int_eq(redis_wait_sum(LIMITED_WINDOW, 6), 6);
}
END_TEST

/* B subscribes before it loads the shared state, so a change made while
 * its subscriber thread is slow to start (SLUICE_FAULTS=state_sub_late:
 * 3 s) waits in the subscription instead of falling between the load
 * and a late subscribe, where no later pull would undo it. */
START_TEST(late_subscriber_misses_no_deletion)
{
    const char *admin[] = {"Authorization: Bearer " TOKEN, NULL};
    h_start_mock();
    ck_assert_int_eq(
        h_mock_script("{\"rules\":[{\"match\":{\"auth\":\"Bearer " KEY
                      "\"},\"times\":1,\"status\":401}]}"),
        0);
    int pa = h_fleet_port(h_fleet_start(opts("A", NULL)));
    for (int i = 0; i < 2; i++) /* round robin: KEY answers 401, failed */
        chat_as(pa, CLIENT, NULL);
    ck_assert(wait_body(pa, "/admin/keys", "\"state\":\"failed\"", 1));
    char pat[128];
    snprintf(pat, sizeof pat, "r:keyring:health:*");
    char *keys = NULL;
    for (int i = 0; i < 300; i++) { /* written by A's state thread */
        free(keys);
        char full[200];
        snprintf(full, sizeof full, "%s%s", prefix, pat);
        keys = redis_cli("--scan", "--pattern", full);
        if (keys && *keys)
            break;
        h_sleep_ms(20);
    }
    ck_assert_msg(keys && *keys, "A's health record never reached Redis");
    free(keys);
    setenv("SLUICE_FAULTS", "state_sub_late", 1);
    int pb = h_fleet_port(h_fleet_start(opts("B", NULL)));
    unsetenv("SLUICE_FAULTS");
    /* loaded at start */
    char *b = get(pb, "/admin/keys");
    ck_assert_msg(strstr(b, "\"state\":\"failed\""), "%s", b);
    free(b);
    /* deleted at once, while B's subscriber thread is still asleep */
    h_resp r;
    h_request(pa, "POST", "/admin/reset-failed-keys", admin, NULL, 0, 10000,
              &r);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    ck_assert(wait_body(pb, "/admin/keys", "\"state\":\"failed\"", 0));
}
END_TEST

/* B's subscriber connection alone is dropped (CLIENT KILL TYPE pubsub) and
 * comes back 3 s later (state_sub_late): a deletion published meanwhile is
 * in no message B reads, so the pull after it resubscribes removes what
 * Redis no longer holds (Redis kept its data: the same run_id). */
START_TEST(resubscribed_instance_drops_what_was_deleted)
{
    const char *admin[] = {"Authorization: Bearer " TOKEN, NULL};
    h_start_mock();
    ck_assert_int_eq(
        h_mock_script("{\"rules\":[{\"match\":{\"auth\":\"Bearer " KEY
                      "\"},\"times\":1,\"status\":401}]}"),
        0);
    int pa = h_fleet_port(h_fleet_start(opts("A", NULL)));
    setenv("SLUICE_FAULTS", "state_sub_late", 1);
    int pb = h_fleet_port(h_fleet_start(opts("B", NULL)));
    unsetenv("SLUICE_FAULTS");
    for (int i = 0; i < 2; i++) /* round robin: KEY answers 401, failed */
        chat_as(pa, CLIENT, NULL);
    ck_assert(wait_body(pb, "/admin/keys", "\"state\":\"failed\"", 1));
    char *out = redis_cli4("CLIENT", "KILL", "TYPE", "pubsub");
    ck_assert_msg(out && atoi(out) >= 2, "%s", out ? out : "(failed)");
    free(out);
    h_resp r;
    h_request(pa, "POST", "/admin/reset-failed-keys", admin, NULL, 0, 10000,
              &r);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    ck_assert(wait_body(pb, "/admin/keys", "\"state\":\"failed\"", 0));
}
END_TEST

START_TEST(closed_refuses_limited_clients_while_away)
{
    h_start_mock();
    int pa =
        h_fleet_port(h_fleet_start(opts("A", "  on_unavailable: closed\n")));
    int pb = h_fleet_port(h_fleet_start(opts("B", NULL))); /* open */
    ck_assert_int_eq(chat_as(pa, LIMITED, NULL), 200);

    redis_kill(); /* by its PID */
    ck_assert(wait_body(pa, "/health", "\"status\":\"degraded\"", 1));
    ck_assert(wait_body(pb, "/health", "\"status\":\"degraded\"", 1));
    ck_assert_int_eq(h_mock_reset(), 0);
    char *body = NULL;
    ck_assert_int_eq(chat_as(pa, LIMITED, &body), 503);
    json_error_t je;
    json_t *doc = json_loads(body, 0, &je);
    json_t *err = json_object_get(doc, "error");
    ck_assert_msg(json_is_string(json_object_get(err, "message")) &&
                      json_is_string(json_object_get(err, "type")),
                  "%s", body);
    ck_assert_msg(strstr(body, "unavailable"), "%s", body);
    json_decref(doc);
    free(body);
    /* a client without limits has nothing to count: it goes on; so does
     * everyone on B (on_unavailable: open) */
    ck_assert_int_eq(chat_as(pa, CLIENT, NULL), 200);
    ck_assert_int_eq(chat_as(pb, LIMITED, NULL), 200);
    ck_assert_int_eq(h_mock_request_count(), 2);

    /* Redis back: A admits LIMITED again */
    redis_restart();
    ck_assert(wait_body(pa, "/health", "\"status\":\"ok\"", 1));
    ck_assert_int_eq(chat_as(pa, LIMITED, NULL), 200);
    ck_assert_int_eq(h_mock_request_count(), 3);
}
END_TEST

int main(void)
{
    rport = h_redis_fixture(rdir, sizeof rdir);
    redis_cli_auth();
    Suite *s = suite_create("fleet_resync");
    TCase *tc = tcase_create("redis");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, later_instance_loads_counters);
    tcase_add_test(tc, empty_redis_gets_counters_back);
    tcase_add_test(tc, late_subscriber_misses_no_deletion);
    tcase_add_test(tc, resubscribed_instance_drops_what_was_deleted);
    tcase_add_test(tc, closed_refuses_limited_clients_while_away);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
