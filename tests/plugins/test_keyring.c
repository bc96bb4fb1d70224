/*
 * test_keyring.c - the keyring stage, compiled with its own sources and
 * driven through the real host table (stage_harness.c): the keys file, the
 * Retry-After family, outcome classification, every transition of the key
 * state machine against an injected clock, selection (round-robin, "same" /
 * "other", least_inflight), all-keys-unavailable (503 or a wait), reload
 * with health carried over, the admin actions and /health status (nothing
 * unmasked), export/import of state, probes of failed keys, a stress
 * test of many threads selecting at once, and the per-key /metrics series.
 */
#include "keyring.h"
#include "stage_harness.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define K1 "sk-test-aaaaaaaaaaaa1111"
#define K2 "sk-test-bbbbbbbbbbbb2222"
#define K3 "sk-test-cccccccccccc3333"

static char dir[64];
static char keys_path[128];
static uint64_t fake_now = 1000000;
static uint64_t fake_wall = 1700000000000ull;

/* The real clocks (what the keyring reads at init, before the tests' own
 * are injected): the host's, with the test clock not set. */
static uint64_t kr_host_now(void)
{
    return HOST.now_ms();
}

static uint64_t kr_host_wall(void)
{
    return HOST.wall_ms();
}

static uint64_t clock_now(void)
{
    return fake_now;
}

static uint64_t clock_wall(void)
{
    return fake_wall;
}

static void write_keys(const char *text, mode_t mode)
{
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", keys_path);
    FILE *f = fopen(tmp, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    chmod(tmp, mode);
    ck_assert_int_eq(rename(tmp, keys_path), 0);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/sluice-kr-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(keys_path, sizeof keys_path, "%s/keys.txt", dir);
    write_keys(K1 "\n" K2 "\n" K3 "\n", 0600);
    fake_now = 1000000;
    fake_wall = 1700000000000ull;
}

static void teardown(void)
{
    char p[160];
    snprintf(p, sizeof p, "%s/keys.txt", dir);
    unlink(p);
    rmdir(dir);
}

/* A generation with the keyring configured by `extra` (JSON members). */
static sluice_test_stage *gen(const char *extra)
{
    char cfg[512], err[512] = "";
    snprintf(cfg, sizeof cfg, "{\"keys_file\":\"%s\"%s%s}", keys_path,
             extra ? "," : "", extra ? extra : "");
    sluice_test_stage *g = sh_gen_new(cfg, err, sizeof err);
    ck_assert_msg(g != NULL, "init failed: %s", err);
    struct keyring *kr = sluice_test_stage_instance(g);
    kr->now = clock_now;
    kr->wall = clock_wall;
    kr->probe = NULL;
    return g;
}

static struct keyring *KR(sluice_test_stage *g)
{
    return sluice_test_stage_instance(g);
}

static const char *auth_of(sluice_test_req *c)
{
    const char *a = sluice_test_up_header(c, "Authorization");
    return a ? a : "(none)";
}

/* One whole request: attempt, upstream answer, response, complete.
 * Returns the key (Authorization) used, in a static buffer. */
static const char *one_request(sluice_test_stage *g, int status,
                               const char *const *hdrs, const char *body)
{
    static char used[128];
    sluice_test_req *c = sh_ctx_new(g, "{\"model\":\"m\"}", NULL);
    ck_assert_int_eq(sluice_test_on_attempt(c), SLUICE_CONTINUE);
    snprintf(used, sizeof used, "%s", auth_of(c));
    sluice_test_upstream(c,
                         status ? SLUICE_ATTEMPT_HTTP : SLUICE_ATTEMPT_TIMEOUT,
                         status, hdrs, body);
    sluice_test_on_response(c);
    sluice_test_on_complete(c);
    sluice_test_req_free(c);
    return used;
}

static struct key *key_named(sluice_test_stage *g, const char *secret)
{
    struct keyset *s = KR(g)->set;
    long i = keyset_find(s, secret);
    ck_assert_int_ge(i, 0);
    return &s->keys[i];
}

static int admin_call(sluice_test_stage *g, const char *action,
                      const char *method, char **out)
{
    int rc = sluice_test_admin(g, action, method, NULL, out);
    ck_assert_msg(rc >= 0, "no admin action %s", action);
    return rc;
}

static void assert_no_secret(const char *text)
{
    ck_assert_msg(!strstr(text, K1) && !strstr(text, K2) && !strstr(text, K3) &&
                      !strstr(text, "aaaaaaaaaaaa"),
                  "a key appears whole: %s", text);
}

/* ---- keys file ---------------------------------------------------- */

START_TEST(keyfile_parses_comments_labels_duplicates)
{
    const char *t = "# pool\n\n  sk-one  team-a  \n\tsk-two\r\n"
                    "sk-one again-dup\n# sk-commented\nsk-three  # note\n"
                    "sk-four label with spaces # c\n";
    struct keyfile kf;
    char err[128];
    ck_assert_int_eq(keyfile_parse(t, strlen(t), &kf, err, sizeof err), 0);
    ck_assert_uint_eq(kf.n, 4);
    ck_assert_uint_eq(kf.duplicates, 1);
    ck_assert_str_eq(kf.v[0].secret, "sk-one");
    ck_assert_str_eq(kf.v[0].label, "team-a");
    ck_assert_str_eq(kf.v[1].secret, "sk-two");
    ck_assert_ptr_null(kf.v[1].label);
    ck_assert_str_eq(kf.v[2].secret, "sk-three");
    ck_assert_ptr_null(kf.v[2].label);
    ck_assert_str_eq(kf.v[3].label, "label with spaces");
    keyfile_free(&kf);
}
END_TEST

/* A NUL byte would have cut a key short (an empty key sent upstream);
 * found by tests/fuzz/fuzz_keyfile.c. */
START_TEST(keyfile_rejects_nul)
{
    static const char t[] = "sk-good-key-1\n\0\0sk-tail\n";
    struct keyfile kf;
    char err[128] = "";
    ck_assert_int_eq(keyfile_parse(t, sizeof t - 1, &kf, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "line 2: a NUL byte"), "%s", err);
    ck_assert_uint_eq(kf.n, 0);
    ck_assert_ptr_null(strstr(err, "sk-"));
}
END_TEST

START_TEST(keyfile_empty_missing_and_loose)
{
    struct keyfile kf;
    char err[256] = "";
    write_keys("# nothing\n\n   \n", 0600);
    ck_assert_int_eq(keyfile_read(keys_path, &kf, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "holds no keys"), "%s", err);
    ck_assert_int_eq(keyfile_read("/nonexistent/keys", &kf, err, sizeof err),
                     -1);
    ck_assert_msg(strstr(err, "No such file"), "%s", err);
    write_keys(K1 "\n", 0644);
    ck_assert_int_eq(keyfile_read(keys_path, &kf, err, sizeof err), 0);
    ck_assert_int_eq(kf.loose_mode, 1);
    keyfile_free(&kf);
    write_keys(K1 "\n", 0600);
    ck_assert_int_eq(keyfile_read(keys_path, &kf, err, sizeof err), 0);
    ck_assert_int_eq(kf.loose_mode, 0);
    keyfile_free(&kf);
}
END_TEST

START_TEST(init_refuses_empty_file_and_bad_config)
{
    char err[512] = "", cfg[256];
    write_keys("\n# none\n", 0600);
    snprintf(cfg, sizeof cfg, "{\"keys_file\":\"%s\"}", keys_path);
    ck_assert_ptr_null(sh_gen_new(cfg, err, sizeof err));
    ck_assert_msg(strstr(err, "holds no keys"), "%s", err);
    ck_assert_ptr_null(
        sh_gen_new("{\"keys_file\":\"/nonexistent/k\"}", err, sizeof err));
    ck_assert_msg(strstr(err, "/nonexistent/k"), "%s", err);
    write_keys(K1 "\n", 0600);
    snprintf(cfg, sizeof cfg, "{\"keys_file\":\"%s\",\"strategy\":\"x\"}",
             keys_path);
    ck_assert_ptr_null(sh_gen_new(cfg, err, sizeof err));
    ck_assert_msg(strstr(err, "strategy"), "%s", err);
    snprintf(cfg, sizeof cfg, "{\"keys_file\":\"%s\",\"bogus\":1}", keys_path);
    ck_assert_ptr_null(sh_gen_new(cfg, err, sizeof err));
    ck_assert_msg(strstr(err, "bogus"), "%s", err);
}
END_TEST

/* ---- Retry-After family ------------------------------------------- */

struct hdrpairs {
    const char *const *kv;
};

static const char *pair_get(void *arg, const char *name)
{
    const char *const *kv = ((struct hdrpairs *)arg)->kv;
    for (size_t i = 0; kv[i]; i += 2)
        if (!strcasecmp(kv[i], name))
            return kv[i + 1];
    return NULL;
}

static uint64_t cooldown(const char *const *kv, uint64_t wall)
{
    struct hdrpairs p = {kv};
    return ra_cooldown_ms(pair_get, &p, wall);
}

START_TEST(durations)
{
    ck_assert_int_eq(ra_parse_duration("1s"), 1000);
    ck_assert_int_eq(ra_parse_duration("6m0s"), 360000);
    ck_assert_int_eq(ra_parse_duration("250ms"), 250);
    ck_assert_int_eq(ra_parse_duration("1.5s"), 1500);
    ck_assert_int_eq(ra_parse_duration("2h1m"), 7260000);
    ck_assert_int_eq(ra_parse_duration("1m30.5s"), 90500);
    ck_assert_int_eq(ra_parse_duration("2"), 2000);
    ck_assert_int_eq(ra_parse_duration(" 0.5 "), 500);
    ck_assert_int_eq(ra_parse_duration("0"), 0);
    ck_assert_int_eq(ra_parse_duration(""), -1);
    ck_assert_int_eq(ra_parse_duration("abc"), -1);
    ck_assert_int_eq(ra_parse_duration("1x"), -1);
    ck_assert_int_eq(ra_parse_duration("-1"), -1);
    ck_assert_int_eq(ra_parse_duration("1m30"), -1);
}
END_TEST

START_TEST(http_dates)
{
    /* 1994-11-06 08:49:37 UTC = 784111777 */
    ck_assert_int_eq(ra_parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
                     784111777000ll);
    ck_assert_int_eq(ra_parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"),
                     784111777000ll);
    ck_assert_int_eq(ra_parse_http_date("Sun Nov  6 08:49:37 1994"),
                     784111777000ll);
    ck_assert_int_eq(ra_parse_http_date("yesterday"), -1);
}
END_TEST

START_TEST(retry_after_headers)
{
    uint64_t wall = 784111777000ull - 5000; /* 5 s before the date */
    const char *a[] = {"Retry-After", "2", NULL};
    ck_assert_uint_eq(cooldown(a, wall), 2000);
    const char *b[] = {"Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT", NULL};
    ck_assert_uint_eq(cooldown(b, wall), 5000);
    ck_assert_uint_eq(cooldown(b, wall + 10000), 0); /* in the past */
    const char *c[] = {"retry-after-ms", "1234", "Retry-After", "9", NULL};
    ck_assert_uint_eq(cooldown(c, wall), 1234); /* ms form wins */
    const char *d[] = {"x-ratelimit-reset-requests", "1s",
                       "x-ratelimit-reset-tokens", "6m0s", NULL};
    ck_assert_uint_eq(cooldown(d, wall), 360000); /* larger, unsaid which */
    const char *e[] = {"x-ratelimit-reset-requests",
                       "1s",
                       "x-ratelimit-reset-tokens",
                       "6m0s",
                       "x-ratelimit-remaining-requests",
                       "0",
                       "x-ratelimit-remaining-tokens",
                       "5000",
                       NULL};
    ck_assert_uint_eq(cooldown(e, wall), 1000); /* the one that ran out */
    const char *f[] = {"x-ratelimit-reset-requests", "1700000030", NULL};
    ck_assert_uint_eq(cooldown(f, 1700000000000ull), 30000); /* epoch s */
    const char *g[] = {"Retry-After", "soon", NULL};
    ck_assert_uint_eq(cooldown(g, wall), RA_NONE);
    const char *none[] = {NULL};
    ck_assert_uint_eq(cooldown(none, wall), RA_NONE);
    /* "0" is "now", not "unsaid"; a number too large is long, not unsaid */
    const char *zero[] = {"Retry-After", "0", NULL};
    ck_assert_uint_eq(cooldown(zero, wall), 0);
    const char *huge[] = {"Retry-After", "99999999999999999999", NULL};
    ck_assert_uint_ge(cooldown(huge, wall), 1000ull * 86400 * 365);
    ck_assert_uint_ne(cooldown(huge, wall), RA_NONE);
    const char *huge_ms[] = {"retry-after-ms", "1e300", NULL};
    ck_assert_uint_ge(cooldown(huge_ms, wall), 1000ull * 86400 * 365);
    ck_assert_uint_ne(cooldown(huge_ms, wall), RA_NONE);
}
END_TEST

/* ---- classification ------------------------------------------------- */

START_TEST(classification)
{
    ck_assert_int_eq(classify_outcome(SLUICE_ATTEMPT_HTTP, 200, NULL, 0),
                     OUT_OK);
    ck_assert_int_eq(classify_outcome(SLUICE_ATTEMPT_HTTP, 401, "x", 1),
                     OUT_AUTH);
    ck_assert_int_eq(classify_outcome(SLUICE_ATTEMPT_HTTP, 403, "x", 1),
                     OUT_AUTH);
    ck_assert_int_eq(classify_outcome(SLUICE_ATTEMPT_HTTP, 402, NULL, 0),
                     OUT_QUOTA);
    const char *q = "{\"error\":{\"code\":\"insufficient_quota\"}}";
    ck_assert_int_eq(classify_outcome(SLUICE_ATTEMPT_HTTP, 429, q, strlen(q)),
                     OUT_QUOTA);
    const char *bal = "{\"error\":{\"message\":\"Insufficient Balance\"}}";
    ck_assert_int_eq(
        classify_outcome(SLUICE_ATTEMPT_HTTP, 403, bal, strlen(bal)),
        OUT_QUOTA);
    ck_assert_int_eq(classify_outcome(SLUICE_ATTEMPT_HTTP, 429, "{}", 2),
                     OUT_RATE);
    ck_assert_int_eq(classify_outcome(SLUICE_ATTEMPT_HTTP, 500, NULL, 0),
                     OUT_SERVER);
    ck_assert_int_eq(classify_outcome(SLUICE_ATTEMPT_HTTP, 503, NULL, 0),
                     OUT_SERVER);
    ck_assert_int_eq(classify_outcome(SLUICE_ATTEMPT_TIMEOUT, 0, NULL, 0),
                     OUT_TIMEOUT);
    ck_assert_int_eq(classify_outcome(SLUICE_ATTEMPT_CONNECT, 0, NULL, 0),
                     OUT_CONN);
    ck_assert_int_eq(classify_outcome(SLUICE_ATTEMPT_RESET, 0, NULL, 0),
                     OUT_CONN);
    ck_assert_int_eq(classify_outcome(SLUICE_ATTEMPT_ABORTED, 0, NULL, 0),
                     OUT_NONE);
    int client[] = {400, 404, 413, 422};
    for (size_t i = 0; i < 4; i++)
        ck_assert_int_eq(
            classify_outcome(SLUICE_ATTEMPT_HTTP, client[i], "{}", 2),
            OUT_NONE);
}
END_TEST

/* ---- the state machine (pure, injected clock) --------------------- */

static const struct key_policy POL = {.failure_threshold = 3,
                                      .cooldown_base_ms = 1000,
                                      .cooldown_max_ms = 8000,
                                      .max_cooldown_ms = 30000};

START_TEST(state_auth_and_quota_fail_until_reset)
{
    struct key k;
    ck_assert_int_eq(key_init(&k, K1, NULL), 0);
    ck_assert_int_eq(key_state_at(&k, 0), KEY_HEALTHY);
    key_record(&k, &POL, OUT_AUTH, 0, 100, "401: key rejected");
    ck_assert_int_eq(key_state_at(&k, 100), KEY_FAILED);
    ck_assert_int_eq(key_available(&k, 100 + 86400000), 0); /* never alone */
    key_record(&k, &POL, OUT_RATE, 1000, 200, "429"); /* failed outranks */
    ck_assert_int_eq(key_state_at(&k, 200), KEY_FAILED);
    key_reset(&k);
    ck_assert_int_eq(key_state_at(&k, 300), KEY_HEALTHY);
    key_record(&k, &POL, OUT_QUOTA, 0, 400, "402");
    ck_assert_int_eq(key_state_at(&k, 400), KEY_FAILED);
    key_record(&k, &POL, OUT_OK, 0, 500, NULL); /* a late 2xx: it works */
    ck_assert_int_eq(key_state_at(&k, 500), KEY_HEALTHY);
    ck_assert_uint_eq(atomic_load(&k.failures[OUT_AUTH]), 1);
    ck_assert_uint_eq(atomic_load(&k.failures[OUT_QUOTA]), 1);
    ck_assert_uint_eq(atomic_load(&k.successes), 1);
    char e[96];
    key_last_error(&k, e, sizeof e);
    ck_assert_str_eq(e, "402");
    key_fini(&k);
}
END_TEST

START_TEST(state_rate_limit_hint_cap_and_later_deadline)
{
    struct key k;
    ck_assert_int_eq(key_init(&k, K1, NULL), 0);
    key_record(&k, &POL, OUT_RATE, 2000, 10000, "429");
    ck_assert_int_eq(key_state_at(&k, 10000), KEY_COOLING);
    ck_assert_int_eq(key_state_at(&k, 11999), KEY_COOLING);
    ck_assert_int_eq(key_state_at(&k, 12000), KEY_HEALTHY); /* back alone */
    /* hint above max_cooldown: capped */
    key_record(&k, &POL, OUT_RATE, 999999, 20000, "429");
    ck_assert_uint_eq(atomic_load(&k.cool_until), 20000 + 30000);
    /* an earlier deadline keeps the later one */
    key_record(&k, &POL, OUT_RATE, 1000, 21000, "429");
    ck_assert_uint_eq(atomic_load(&k.cool_until), 50000);
    /* a later one extends it */
    key_record(&k, &POL, OUT_RATE, 30000, 25000, "429");
    ck_assert_uint_eq(atomic_load(&k.cool_until), 55000);
    key_fini(&k);
    /* "retry now" (Retry-After: 0 or a past date): usable at once, and the
     * exponential streak does not grow */
    ck_assert_int_eq(key_init(&k, K1, NULL), 0);
    for (int i = 0; i < 4; i++) {
        key_record(&k, &POL, OUT_RATE, 0, 10000, "429");
        ck_assert_int_eq(key_state_at(&k, 10000), KEY_HEALTHY);
    }
    key_record(&k, &POL, OUT_RATE, RA_NONE, 20000, "429");
    ck_assert_uint_eq(atomic_load(&k.cool_until), 21000);
    key_fini(&k);
}
END_TEST

START_TEST(state_rate_limit_exponential_without_hint)
{
    struct key k;
    uint64_t t = 0, want[] = {1000, 2000, 4000, 8000, 8000};
    ck_assert_int_eq(key_init(&k, K1, NULL), 0);
    for (size_t i = 0; i < 5; i++) {
        t += 100000;
        key_record(&k, &POL, OUT_RATE, RA_NONE, t, "429");
        ck_assert_uint_eq(atomic_load(&k.cool_until) - t, want[i]);
    }
    key_record(&k, &POL, OUT_OK, 0, t + 200000, NULL); /* resets streak */
    key_record(&k, &POL, OUT_RATE, RA_NONE, t + 300000, "429");
    ck_assert_uint_eq(atomic_load(&k.cool_until) - (t + 300000), 1000);
    key_fini(&k);
}
END_TEST

START_TEST(state_transient_threshold)
{
    struct key k;
    ck_assert_int_eq(key_init(&k, K1, NULL), 0);
    key_record(&k, &POL, OUT_SERVER, 0, 100, "500");
    key_record(&k, &POL, OUT_TIMEOUT, 0, 200, "timeout");
    ck_assert_int_eq(key_state_at(&k, 200), KEY_HEALTHY);
    key_record(&k, &POL, OUT_OK, 0, 300, NULL); /* success clears the run */
    key_record(&k, &POL, OUT_SERVER, 0, 400, "500");
    key_record(&k, &POL, OUT_CONN, 0, 500, "conn");
    ck_assert_int_eq(key_state_at(&k, 500), KEY_HEALTHY);
    key_record(&k, &POL, OUT_SERVER, 0, 600, "503");
    ck_assert_int_eq(key_state_at(&k, 600), KEY_COOLING);
    ck_assert_uint_eq(atomic_load(&k.cool_until), 1600);
    ck_assert_int_eq(key_state_at(&k, 1600), KEY_HEALTHY);
    ck_assert_uint_eq(atomic_load(&k.failures[OUT_SERVER]), 3);
    key_record(&k, &POL, OUT_NONE, 0, 700, "400"); /* no effect */
    ck_assert_uint_eq(atomic_load(&k.consecutive), 0);
    key_fini(&k);
}
END_TEST

/* ---- the stage: selection, failover, 503 --------------------------- */

START_TEST(round_robin_in_turn)
{
    sluice_test_stage *g = gen(NULL);
    const char *want[] = {K1, K2, K3};
    for (int i = 0; i < 9; i++) {
        char exp[64];
        snprintf(exp, sizeof exp, "Bearer %s", want[i % 3]);
        ck_assert_str_eq(one_request(g, 200, NULL, "{}"), exp);
    }
    for (int i = 0; i < 3; i++) {
        struct key *k = &KR(g)->set->keys[i];
        ck_assert_uint_eq(atomic_load(&k->requests), 3);
        ck_assert_uint_eq(atomic_load(&k->successes), 3);
        ck_assert_int_eq(atomic_load(&k->inflight), 0);
    }
    sluice_test_stage_free(g);
}
END_TEST

START_TEST(rate_limited_key_out_then_back)
{
    sluice_test_stage *g = gen(NULL);
    const char *ra[] = {"Retry-After", "2", NULL};
    ck_assert_str_eq(one_request(g, 429, ra, "{}"), "Bearer " K1);
    ck_assert_int_eq(key_state_at(key_named(g, K1), fake_now), KEY_COOLING);
    for (int i = 0; i < 6; i++) {
        fake_now += 300; /* 1.8 s in all */
        ck_assert_str_ne(one_request(g, 200, NULL, "{}"), "Bearer " K1);
    }
    fake_now += 200; /* 2.0 s after the 429 */
    int seen = 0;
    for (int i = 0; i < 3; i++)
        seen += !strcmp(one_request(g, 200, NULL, "{}"), "Bearer " K1);
    ck_assert_int_eq(seen, 1);
    sluice_test_stage_free(g);
}
END_TEST

START_TEST(want_same_and_other)
{
    sluice_test_stage *g = gen(NULL);
    sluice_test_req *c = sh_ctx_new(g, "{}", NULL);
    ck_assert_int_eq(sluice_test_on_attempt(c), SLUICE_CONTINUE);
    ck_assert_str_eq(auth_of(c), "Bearer " K1);
    sluice_test_upstream(c, SLUICE_ATTEMPT_HTTP, 500, NULL, "{}");
    sluice_test_on_response(c);
    HOST.attr_set(CTX(c), "keyring.want", "same");
    ck_assert_int_eq(sluice_test_on_attempt(c), SLUICE_CONTINUE);
    ck_assert_str_eq(auth_of(c), "Bearer " K1);
    ck_assert_int_eq(atomic_load(&key_named(g, K1)->inflight), 1);
    sluice_test_upstream(c, SLUICE_ATTEMPT_HTTP, 401, NULL, "{}");
    sluice_test_on_response(c);
    HOST.attr_set(CTX(c), "keyring.want", "other");
    ck_assert_int_eq(sluice_test_on_attempt(c), SLUICE_CONTINUE);
    ck_assert_str_ne(auth_of(c), "Bearer " K1);
    ck_assert_int_eq(atomic_load(&key_named(g, K1)->inflight), 0);
    /* "same" on a key that is no longer available moves on */
    const char *used = strdup(auth_of(c));
    sluice_test_upstream(c, SLUICE_ATTEMPT_HTTP, 403, NULL, "{}");
    sluice_test_on_response(c);
    HOST.attr_set(CTX(c), "keyring.want", "same");
    ck_assert_int_eq(sluice_test_on_attempt(c), SLUICE_CONTINUE);
    ck_assert_str_ne(auth_of(c), used);
    ck_assert_str_ne(auth_of(c), "Bearer " K1);
    free((void *)used);
    sluice_test_on_complete(c);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(atomic_load(&KR(g)->set->keys[i].inflight), 0);
    sluice_test_req_free(c);
    sluice_test_stage_free(g);
}
END_TEST

START_TEST(all_unavailable_is_503_with_retry_after)
{
    sluice_test_stage *g = gen(NULL);
    const char *ra5[] = {"Retry-After", "5", NULL};
    const char *ra9[] = {"Retry-After", "9", NULL};
    one_request(g, 401, NULL, "{}"); /* K1 failed */
    one_request(g, 429, ra9, "{}");  /* K2 cooling 9 s */
    one_request(g, 429, ra5, "{}");  /* K3 cooling 5 s */
    fake_now += 1500;
    sluice_test_req *c = sh_ctx_new(g, "{}", NULL);
    ck_assert_int_eq(sluice_test_on_attempt(c), SLUICE_RESPOND);
    ck_assert_int_eq(sluice_test_status(c), 503);
    ck_assert_msg(strstr(sluice_test_body(c), "\"all_keys_unavailable\""), "%s",
                  sluice_test_body(c));
    ck_assert_str_eq(sluice_test_header(c, "Retry-After"), "4"); /* 3.5 s up */
    ck_assert_ptr_null(sluice_test_up_header(c, "Authorization"));
    assert_no_secret(sluice_test_body(c));
    sluice_test_on_complete(c);
    sluice_test_req_free(c);
    /* only failed keys left: 503 without a Retry-After */
    fake_now += 10000;
    one_request(g, 401, NULL, "{}");
    one_request(g, 401, NULL, "{}");
    c = sh_ctx_new(g, "{}", NULL);
    ck_assert_int_eq(sluice_test_on_attempt(c), SLUICE_RESPOND);
    ck_assert_int_eq(sluice_test_status(c), 503);
    ck_assert_ptr_null(sluice_test_header(c, "Retry-After"));
    sluice_test_on_complete(c);
    sluice_test_req_free(c);
    sluice_test_stage_free(g);
}
END_TEST

START_TEST(all_rate_limited_is_429_with_retry_after)
{
    sluice_test_stage *g = gen(NULL);
    const char *ra5[] = {"Retry-After", "5", NULL};
    const char *ra9[] = {"Retry-After", "9", NULL};
    one_request(g, 429, ra9, "{}"); /* K1..K3 cooling after 429s */
    one_request(g, 429, ra5, "{}");
    one_request(g, 429, ra5, "{}");
    fake_now += 1500;
    sluice_test_req *c = sh_ctx_new(g, "{}", NULL);
    ck_assert_int_eq(sluice_test_on_attempt(c), SLUICE_RESPOND);
    ck_assert_int_eq(sluice_test_status(c), 429);
    ck_assert_msg(strstr(sluice_test_body(c), "\"rate_limit_exceeded\""), "%s",
                  sluice_test_body(c));
    ck_assert_str_eq(sluice_test_header(c, "Retry-After"), "4");
    sluice_test_on_complete(c);
    sluice_test_req_free(c);
    /* one of them fails for good: the others' 429s no longer speak for
     * the whole pool, 503 again */
    fake_now += 10000; /* all back */
    one_request(g, 401, NULL, "{}");
    one_request(g, 429, ra5, "{}");
    one_request(g, 429, ra5, "{}");
    c = sh_ctx_new(g, "{}", NULL);
    ck_assert_int_eq(sluice_test_on_attempt(c), SLUICE_RESPOND);
    ck_assert_int_eq(sluice_test_status(c), 503);
    sluice_test_on_complete(c);
    sluice_test_req_free(c);
    sluice_test_stage_free(g);
}
END_TEST

START_TEST(wait_for_key_retries_on_a_timer)
{
    sluice_test_stage *g = gen("\"wait_for_key_ms\":3000");
    const char *ra2[] = {"Retry-After", "2", NULL};
    const char *ra60[] = {"Retry-After", "60", NULL};
    one_request(g, 401, NULL, "{}");
    one_request(g, 429, ra2, "{}");
    one_request(g, 401, NULL, "{}");
    sluice_test_req *c = sh_ctx_new(g, "{}", NULL);
    ck_assert_int_eq(sluice_test_on_attempt(c), SLUICE_RETRY);
    ck_assert_uint_eq(sluice_test_retry_ms(c), 2000);
    ck_assert_int_eq(sluice_test_status(c), 503); /* the fallback */
    fake_now += 2000; /* the core re-runs on_attempt after the delay */
    /* a re-run is the same attempt */
    ck_assert_int_eq(sluice_test_on_attempt_again(c), SLUICE_CONTINUE);
    ck_assert_str_eq(auth_of(c), "Bearer " K2);
    sluice_test_on_complete(c);
    sluice_test_req_free(c);
    /* a key back later than wait_for_key_ms: 503 at once */
    one_request(g, 429, ra60, "{}");
    c = sh_ctx_new(g, "{}", NULL);
    ck_assert_int_eq(sluice_test_on_attempt(c), SLUICE_RESPOND);
    ck_assert_int_eq(sluice_test_status(c), 503);
    ck_assert_str_eq(sluice_test_header(c, "Retry-After"), "60");
    sluice_test_on_complete(c);
    sluice_test_req_free(c);
    sluice_test_stage_free(g);
}
END_TEST

START_TEST(least_inflight_strategy)
{
    sluice_test_stage *g = gen("\"strategy\":\"least_inflight\"");
    sluice_test_req *c[4];
    for (int i = 0; i < 3; i++) {
        c[i] = sh_ctx_new(g, "{}", NULL);
        ck_assert_int_eq(sluice_test_on_attempt(c[i]), SLUICE_CONTINUE);
    }
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(atomic_load(&KR(g)->set->keys[i].inflight), 1);
    /* free K2's request: the next goes to K2, the least loaded */
    const char *a1 = auth_of(c[1]);
    long idx = keyset_find(KR(g)->set, a1 + 7);
    sluice_test_on_complete(c[1]);
    sluice_test_req_free(c[1]);
    c[3] = sh_ctx_new(g, "{}", NULL);
    ck_assert_int_eq(sluice_test_on_attempt(c[3]), SLUICE_CONTINUE);
    ck_assert_int_eq(keyset_find(KR(g)->set, auth_of(c[3]) + 7), idx);
    for (int i = 0; i < 4; i++) {
        if (i == 1)
            continue;
        sluice_test_on_complete(c[i]);
        sluice_test_req_free(c[i]);
    }
    sluice_test_stage_free(g);
}
END_TEST

/* ---- reload, admin, status ------------------------------------------ */

START_TEST(reload_carries_health_and_inflight_finishes_on_its_key)
{
    sluice_test_stage *g = gen(NULL);
    char *out;
    one_request(g, 401, NULL, "{}"); /* K1 failed */
    const char *ra[] = {"Retry-After", "30", NULL};
    one_request(g, 429, ra, "{}"); /* K2 cooling */
    sluice_test_req *c = sh_ctx_new(g, "{}", NULL);
    ck_assert_int_eq(sluice_test_on_attempt(c), SLUICE_CONTINUE);
    ck_assert_str_eq(auth_of(c), "Bearer " K3);
    struct keyset *old = KR(g)->set;

    write_keys(K2 "\n" K3 "  team-c\nsk-test-dddddddddddd4444\n", 0600);
    ck_assert_int_eq(admin_call(g, "reload-keys", "POST", &out), 200);
    ck_assert_msg(strstr(out, "\"kept\":2") && strstr(out, "\"added\":1") &&
                      strstr(out, "\"removed\":1"),
                  "%s", out);
    free(out);
    ck_assert_ptr_ne(KR(g)->set, old);
    ck_assert_int_eq(key_state_at(key_named(g, K2), fake_now), KEY_COOLING);
    ck_assert_str_eq(key_named(g, K3)->name, "team-c");
    /* the in-flight request finishes on its key, in the old set */
    sluice_test_upstream(c, SLUICE_ATTEMPT_HTTP, 200, NULL, "{}");
    sluice_test_on_response(c);
    ck_assert_uint_eq(atomic_load(&old->keys[2].successes), 1);
    sluice_test_on_complete(c);
    sluice_test_req_free(c); /* drops the last reference to the old set */

    /* a broken file changes nothing and says why */
    write_keys("# emptied by mistake\n", 0600);
    ck_assert_int_eq(admin_call(g, "reload-keys", "POST", &out), 422);
    ck_assert_msg(strstr(out, "holds no keys") &&
                      strstr(out, "keys_file_invalid"),
                  "%s", out);
    free(out);
    ck_assert_uint_eq(KR(g)->set->n, 3);
    ck_assert_int_eq(admin_call(g, "reload-keys", "GET", &out), 405);
    free(out);
    sluice_test_stage_free(g);
}
END_TEST

START_TEST(same_key_across_a_reload)
{
    sluice_test_stage *g = gen(NULL);
    char *out;
    sluice_test_req *c = sh_ctx_new(g, "{}", NULL);
    ck_assert_int_eq(sluice_test_on_attempt(c), SLUICE_CONTINUE);
    ck_assert_str_eq(auth_of(c), "Bearer " K1);
    sluice_test_upstream(c, SLUICE_ATTEMPT_HTTP, 500, NULL, "{}");
    sluice_test_on_response(c);
    /* K1 stays: "same" moves to K1's record in the new set */
    write_keys(K3 "\n" K1 "\n", 0600);
    ck_assert_int_eq(admin_call(g, "reload-keys", "POST", &out), 200);
    free(out);
    HOST.attr_set(CTX(c), "keyring.want", "same");
    ck_assert_int_eq(sluice_test_on_attempt(c), SLUICE_CONTINUE);
    ck_assert_str_eq(auth_of(c), "Bearer " K1);
    ck_assert_int_eq(atomic_load(&key_named(g, K1)->inflight), 1);
    ck_assert_uint_eq(atomic_load(&key_named(g, K1)->failures[OUT_SERVER]),
                      1); /* carried */
    /* K1 removed: "same" cannot have it */
    sluice_test_upstream(c, SLUICE_ATTEMPT_HTTP, 500, NULL, "{}");
    sluice_test_on_response(c);
    write_keys(K3 "\n", 0600);
    ck_assert_int_eq(admin_call(g, "reload-keys", "POST", &out), 200);
    free(out);
    HOST.attr_set(CTX(c), "keyring.want", "same");
    ck_assert_int_eq(sluice_test_on_attempt(c), SLUICE_CONTINUE);
    ck_assert_str_eq(auth_of(c), "Bearer " K3);
    sluice_test_on_complete(c);
    ck_assert_int_eq(atomic_load(&key_named(g, K3)->inflight), 0);
    sluice_test_req_free(c);
    sluice_test_stage_free(g);
}
END_TEST

START_TEST(admin_keys_reset_and_status)
{
    sluice_test_stage *g = gen(NULL);
    char *out;
    one_request(g, 401, NULL, "{\"error\":\"bad key " K1 "\"}");
    const char *ra[] = {"Retry-After", "30", NULL};
    one_request(g, 429, ra, "{}");
    ck_assert_int_eq(admin_call(g, "keys", "GET", &out), 200);
    assert_no_secret(out);
    ck_assert_msg(strstr(out, "\"name\":\"sk-…1111\""), "%s", out);
    ck_assert_msg(strstr(out, "\"state\":\"failed\""), "%s", out);
    ck_assert_msg(strstr(out, "\"state\":\"cooling\""), "%s", out);
    ck_assert_msg(strstr(out, "\"cooldown_until\":\"2023-11-14T22:13:50"), "%s",
                  out); /* 1700000000 + 30 s */
    ck_assert_msg(strstr(out, "\"last_error\":\"401: key rejected\""), "%s",
                  out);
    ck_assert_msg(strstr(out, "\"rate_limit\":1"), "%s", out);
    free(out);

    ck_assert_int_eq(sluice_test_stage_status(g, &out), 0);
    ck_assert_str_eq(out, "{\"healthy\":true,\"keys\":{\"total\":3,"
                          "\"healthy\":1,\"cooling\":1,\"failed\":1},"
                          "\"upstreams\":{\"default\":{\"state\":"
                          "\"degraded\",\"keys_usable\":1,\"keys_total\":"
                          "3,\"cooling\":1,\"failed\":1}}}");
    free(out);
    one_request(g, 403, NULL, "{}");
    ck_assert_int_eq(sluice_test_stage_status(g, &out), 0);
    ck_assert_msg(strstr(out, "\"healthy\":false"), "%s", out);
    free(out);

    ck_assert_int_eq(admin_call(g, "reset-failed-keys", "POST", &out), 200);
    ck_assert_str_eq(out, "{\"reset\":3}");
    free(out);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(key_state_at(&KR(g)->set->keys[i], fake_now),
                         KEY_HEALTHY);
    sluice_test_stage_free(g);
}
END_TEST

/* ---- shared state (a restart, another generation) ------------------- */

/* Health lives in the core's state: after a restart (close and reopen of
 * the state file, a fresh generation) a failed key is still failed, a
 * cooling key still cools until its deadline; a reset clears it for good;
 * the admin view says which instance changed each key. */
START_TEST(health_survives_a_restart)
{
    char db[160], *out;
    snprintf(db, sizeof db, "%s/state.db", dir);
    ck_assert_int_eq(sluice_test_state_open(db), 0);
    fake_now = kr_host_now();
    fake_wall = kr_host_wall();
    sluice_test_stage *g = gen(NULL);
    const char *ra[] = {"Retry-After", "120", NULL};
    ck_assert_str_eq(one_request(g, 401, NULL, "{}"), "Bearer " K1);
    ck_assert_str_eq(one_request(g, 429, ra, "{}"), "Bearer " K2);
    sluice_test_stage_free(g);
    ck_assert_int_eq(sluice_test_state_open(db), 0); /* the restart */

    g = gen(NULL);
    ck_assert_int_eq(key_state_at(key_named(g, K1), fake_now), KEY_FAILED);
    ck_assert_int_eq(key_state_at(key_named(g, K2), fake_now), KEY_COOLING);
    uint64_t until = atomic_load(&key_named(g, K2)->cool_until);
    ck_assert_msg(until > fake_now + 115000 && until <= fake_now + 121000,
                  "cooling until %llu, now %llu", (unsigned long long)until,
                  (unsigned long long)fake_now);
    ck_assert_int_eq(key_state_at(key_named(g, K3), fake_now), KEY_HEALTHY);
    ck_assert_str_eq(one_request(g, 200, NULL, "{}"), "Bearer " K3);
    ck_assert_int_eq(admin_call(g, "keys", "GET", &out), 200);
    ck_assert_msg(strstr(out, "\"changed_by\":\"stage-test\""), "%s", out);
    ck_assert_msg(strstr(out, "\"last_error\":\"401: key rejected\""), "%s",
                  out);
    free(out);
    ck_assert_int_eq(admin_call(g, "reset-failed-keys", "POST", &out), 200);
    free(out);
    sluice_test_stage_free(g);
    ck_assert_int_eq(sluice_test_state_open(db), 0);
    g = gen(NULL);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(key_state_at(&KR(g)->set->keys[i], fake_now),
                         KEY_HEALTHY);
    sluice_test_stage_free(g);
    /* shared_state: false keeps health in memory only */
    g = gen("\"shared_state\":false");
    one_request(g, 401, NULL, "{}");
    sluice_test_stage_free(g);
    ck_assert_int_eq(sluice_test_state_open(db), 0);
    g = gen(NULL);
    ck_assert_int_eq(key_state_at(key_named(g, K1), fake_now), KEY_HEALTHY);
    sluice_test_stage_free(g);
    sluice_test_state_open(NULL);
}
END_TEST

/* A change made by the other generation of the stage (or another
 * instance) reaches this one through the watch. */
START_TEST(health_from_elsewhere_applies)
{
    sluice_test_stage *a = gen(NULL), *b = gen(NULL);
    one_request(a, 403, NULL, "{}");
    for (int i = 0;
         i < 200 && key_state_at(key_named(b, K1), fake_now) != KEY_FAILED; i++)
        usleep(5000);
    ck_assert_int_eq(key_state_at(key_named(b, K1), fake_now), KEY_FAILED);
    char *out;
    ck_assert_int_eq(admin_call(b, "reset-failed-keys", "POST", &out), 200);
    free(out);
    for (int i = 0;
         i < 200 && key_state_at(key_named(a, K1), fake_now) != KEY_HEALTHY;
         i++)
        usleep(5000);
    ck_assert_int_eq(key_state_at(key_named(a, K1), fake_now), KEY_HEALTHY);
    sluice_test_stage_free(a);
    sluice_test_stage_free(b);
}
END_TEST

/* ---- export / import -------------------------------------------------- */

START_TEST(export_import_roundtrip)
{
    sluice_test_stage *g = gen(NULL);
    one_request(g, 401, NULL, "{}");
    const char *ra[] = {"Retry-After", "30", NULL};
    one_request(g, 429, ra, "{}");
    one_request(g, 200, NULL, "{}");
    char *state = NULL;
    ck_assert_int_eq(sluice_test_export_state(g, &state), 0);
    assert_no_secret(state);
    ck_assert_msg(strstr(state, "\"version\":1"), "%s", state);
    sluice_test_stage_free(g);

    /* a new instance, 10 s later (wall and monotonic both moved) */
    fake_now += 10000;
    fake_wall += 10000;
    sluice_test_stage *g2 = gen(NULL);
    ck_assert_int_eq(sluice_test_import_state(g2, state, strlen(state)), 0);
    ck_assert_int_eq(key_state_at(key_named(g2, K1), fake_now), KEY_FAILED);
    ck_assert_int_eq(key_state_at(key_named(g2, K2), fake_now), KEY_COOLING);
    ck_assert_uint_eq(atomic_load(&key_named(g2, K2)->cool_until) - fake_now,
                      20000);
    ck_assert_int_eq(key_state_at(key_named(g2, K3), fake_now), KEY_HEALTHY);
    ck_assert_uint_eq(atomic_load(&key_named(g2, K3)->successes), 1);
    ck_assert_uint_eq(atomic_load(&key_named(g2, K1)->failures[OUT_AUTH]), 1);
    ck_assert_int_eq(sluice_test_import_state(g2, "{\"version\":9}", 13), -1);
    ck_assert_int_eq(sluice_test_import_state(g2, "not json", 8), -1);
    free(state);
    sluice_test_stage_free(g2);
}
END_TEST

/* ---- probes ----------------------------------------------------------- */

static sluice_probe_fn probe_done_fn[8];
static void *probe_arg[8];
static char probe_auth[8][64];
static int nprobes;

static int fake_probe(sluice_stage *st, const char *path, const char *auth,
                      sluice_probe_fn done, void *arg)
{
    (void)st;
    ck_assert_str_eq(path, "/models");
    ck_assert_int_lt(nprobes, 8);
    probe_done_fn[nprobes] = done;
    probe_arg[nprobes] = arg;
    snprintf(probe_auth[nprobes], sizeof probe_auth[0], "%s", auth);
    nprobes++;
    return 0;
}

START_TEST(probes_bring_failed_keys_back)
{
    sluice_test_stage *g = gen("\"probe_interval_s\":30");
    KR(g)->probe = fake_probe;
    nprobes = 0;
    atomic_store(&KR(g)->next_probe_ms, fake_now + 30000);
    one_request(g, 401, NULL, "{}"); /* K1 failed */
    one_request(g, 401, NULL, "{}"); /* K2 failed */
    ck_assert_int_eq(nprobes, 0);    /* not due yet */
    fake_now += 30000;
    one_request(g, 200, NULL, "{}"); /* passes by: probes start */
    ck_assert_int_eq(nprobes, 2);
    one_request(g, 200, NULL, "{}"); /* at most once per interval */
    ck_assert_int_eq(nprobes, 2);
    ck_assert_str_eq(probe_auth[0], "Bearer " K1);
    ck_assert_str_eq(probe_auth[1], "Bearer " K2);
    probe_done_fn[0](probe_arg[0], 200);
    probe_done_fn[1](probe_arg[1], 401);
    ck_assert_int_eq(key_state_at(key_named(g, K1), fake_now), KEY_HEALTHY);
    ck_assert_int_eq(key_state_at(key_named(g, K2), fake_now), KEY_FAILED);
    ck_assert_int_eq(atomic_load(&KR(g)->probes_out), 0);
    fake_now += 30000;
    one_request(g, 200, NULL, "{}");
    ck_assert_int_eq(nprobes, 3); /* K2 again */
    probe_done_fn[2](probe_arg[2], 0);
    sluice_test_stage_free(g);
}
END_TEST

/* ---- stress: many threads selecting at once ----------------------------- */

#define STRESS_THREADS 8
#define STRESS_PICKS   20000

struct stress {
    struct keyring *kr;
    long counts[8];
    long failed_handed;
};

static void *stress_main(void *arg)
{
    struct stress *st = arg;
    for (int i = 0; i < STRESS_PICKS; i++) {
        struct keyset *s = keyring_acquire(st->kr);
        long k = keyset_pick(s, STRAT_ROUND_ROBIN, -1, fake_now);
        if (k >= 0) {
            if (atomic_load(&s->keys[k].state) == KEY_FAILED)
                st->failed_handed++;
            else
                st->counts[k]++;
            atomic_fetch_sub(&s->keys[k].inflight, 1);
        }
        keyset_unref(s);
    }
    return NULL;
}

START_TEST(stress_many_threads_select)
{
    write_keys(K1 "\n" K2 "\n" K3 "\nsk-test-dddddddddddd4444\n"
                  "sk-test-eeeeeeeeeeee5555\n",
               0600);
    sluice_test_stage *g = gen(NULL);
    key_record(&KR(g)->set->keys[1], &POL, OUT_AUTH, 0, fake_now, "401");
    struct stress st[STRESS_THREADS];
    pthread_t th[STRESS_THREADS];
    memset(st, 0, sizeof st);
    for (int i = 0; i < STRESS_THREADS; i++) {
        st[i].kr = KR(g);
        ck_assert_int_eq(pthread_create(&th[i], NULL, stress_main, &st[i]), 0);
    }
    long total[8] = {0}, failed = 0, all = 0;
    for (int i = 0; i < STRESS_THREADS; i++) {
        pthread_join(th[i], NULL);
        failed += st[i].failed_handed;
        for (int k = 0; k < 5; k++)
            total[k] += st[i].counts[k];
    }
    ck_assert_int_eq(failed, 0);
    ck_assert_int_eq(total[1], 0);
    for (int k = 0; k < 5; k++)
        all += total[k];
    ck_assert_int_eq(all, (long)STRESS_THREADS * STRESS_PICKS);
    /* the failed key's turns are spread over the four others: each gets
     * a quarter, within 2 % */
    long n = all / 4;
    for (int k = 0; k < 5; k++)
        if (k != 1)
            ck_assert_msg(labs(total[k] - n) <= n / 50,
                          "key %d: %ld of %ld picks", k, total[k], all);
    for (int k = 0; k < 5; k++)
        ck_assert_int_eq(atomic_load(&KR(g)->set->keys[k].inflight), 0);
    sluice_test_stage_free(g);
}
END_TEST

/* ---- /metrics ----------------------------------------------------------- */

#define M2                                                                     \
    "sk-\xe2\x80\xa6"                                                          \
    "2222" /* K2 masked: no label */

static double kmetric(sluice_test_stage *g, const char *fmt, const char *a,
                      const char *b)
{
    char sample[256];
    snprintf(sample, sizeof sample, fmt, a, b);
    return sluice_test_metric(g, sample);
}

static double key_state_of(sluice_test_stage *g, const char *name,
                           const char *state)
{
    return kmetric(
        g, "sluice_key_state{upstream=\"default\",key=\"%s\",state=\"%s\"}",
        name, state);
}

START_TEST(metrics_per_key_counts_states_and_reload)
{
    write_keys(K1 " mx-a\n" K2 "\n" K3 " mx-c\n", 0600);
    sluice_test_stage *g = gen(NULL);
    const char *ra[] = {"Retry-After", "30", NULL};
    ck_assert_str_eq(one_request(g, 200, NULL, "{}"), "Bearer " K1);
    ck_assert_str_eq(one_request(g, 401, NULL, "{}"), "Bearer " K2);
    ck_assert_str_eq(one_request(g, 429, ra, "{}"), "Bearer " K3);
    ck_assert_str_eq(one_request(g, 500, NULL, "{}"), "Bearer " K1);

    const char *req =
        "sluice_key_requests_total{upstream=\"default\",key=\"%s\"}%s";
    ck_assert_double_eq(kmetric(g, req, "mx-a", ""), 2);
    ck_assert_double_eq(kmetric(g, req, M2, ""), 1);
    ck_assert_double_eq(kmetric(g, req, "mx-c", ""), 1);
    ck_assert_double_eq(
        kmetric(g,
                "sluice_key_successes_total{upstream=\"default\",key=\"%s\"}%s",
                "mx-a", ""),
        1);
    const char *fail = "sluice_key_failures_total{upstream=\"default\",key=\"%"
                       "s\",reason=\"%s\"}";
    ck_assert_double_eq(kmetric(g, fail, M2, "auth"), 1);
    ck_assert_double_eq(kmetric(g, fail, "mx-c", "http_429"), 1);
    ck_assert_double_eq(kmetric(g, fail, "mx-a", "http_5xx"), 1);
    ck_assert_double_eq(kmetric(g, fail, "mx-a", "auth"), -1);

    /* states and cooldown, refreshed by collect against the clock */
    ck_assert_double_eq(key_state_of(g, "mx-a", "healthy"), 1);
    ck_assert_double_eq(key_state_of(g, "mx-a", "cooling"), 0);
    ck_assert_double_eq(key_state_of(g, "mx-a", "failed"), 0);
    ck_assert_double_eq(key_state_of(g, M2, "failed"), 1);
    ck_assert_double_eq(key_state_of(g, M2, "healthy"), 0);
    ck_assert_double_eq(key_state_of(g, "mx-c", "cooling"), 1);
    const char *cool =
        "sluice_key_cooldown_seconds{upstream=\"default\",key=\"%s\"}%s";
    ck_assert_double_eq(kmetric(g, cool, "mx-c", ""), 30);
    ck_assert_double_eq(kmetric(g, cool, "mx-a", ""), 0);
    fake_now += 12500;
    ck_assert_double_eq_tol(kmetric(g, cool, "mx-c", ""), 17.5, 1e-9);
    fake_now += 20000;
    ck_assert_double_eq(key_state_of(g, "mx-c", "cooling"), 0);
    ck_assert_double_eq(key_state_of(g, "mx-c", "healthy"), 1);
    ck_assert_double_eq(kmetric(g, cool, "mx-c", ""), 0);

    /* in flight while a request holds its key, back to 0 after */
    const char *infl =
        "sluice_key_in_flight{upstream=\"default\",key=\"%s\"}%s";
    sluice_test_req *c = sh_ctx_new(g, "{}", NULL);
    ck_assert_int_eq(sluice_test_on_attempt(c), SLUICE_CONTINUE);
    ck_assert_str_eq(auth_of(c), "Bearer " K3);
    ck_assert_double_eq(kmetric(g, infl, "mx-c", ""), 1);

    /* K2 leaves: its gauges go to 0, its counters stay */
    char *out;
    write_keys(K1 " mx-a\n" K3 " mx-c\n", 0600);
    ck_assert_int_eq(admin_call(g, "reload-keys", "POST", &out), 200);
    free(out);
    ck_assert_double_eq(key_state_of(g, M2, "failed"), 0);
    ck_assert_double_eq(key_state_of(g, M2, "healthy"), 0);
    ck_assert_double_eq(key_state_of(g, M2, "cooling"), 0);
    ck_assert_double_eq(kmetric(g, req, M2, ""), 1);
    ck_assert_double_eq(key_state_of(g, "mx-a", "healthy"), 1);

    /* the request that picked from the old set releases its key there */
    sluice_test_upstream(c, SLUICE_ATTEMPT_HTTP, 200, NULL, "{}");
    sluice_test_on_response(c);
    sluice_test_on_complete(c);
    sluice_test_req_free(c);
    ck_assert_double_eq(kmetric(g, infl, "mx-c", ""), 0);
    ck_assert_double_eq(
        kmetric(g,
                "sluice_key_successes_total{upstream=\"default\",key=\"%s\"}%s",
                "mx-c", ""),
        1);

    char *text = sluice_test_metrics_text(g);
    assert_no_secret(text);
    ck_assert_ptr_nonnull(strstr(text, "# TYPE sluice_key_state gauge"));
    free(text);
    sluice_test_stage_free(g);
}
END_TEST

/* A pipeline reload: the new instance reads another keys file; when the old
 * one is destroyed, the keys only it held stop reporting a state, the keys
 * both hold keep theirs. */
START_TEST(metrics_keys_dropped_by_a_pipeline_reload)
{
    write_keys(K1 " pr-a\n" K2 " pr-b\n", 0600);
    sluice_test_stage *g1 = gen(NULL);
    one_request(g1, 200, NULL, "{}");
    one_request(g1, 401, NULL, "{}"); /* pr-b failed */
    ck_assert_double_eq(key_state_of(g1, "pr-b", "failed"), 1);
    write_keys(K1 " pr-a\n", 0600);
    sluice_test_stage *g2 = gen(NULL);
    ck_assert_double_eq(key_state_of(g2, "pr-a", "healthy"), 1);
    sluice_test_stage_free(g1);
    /* rendered without any collect: what destroy left */
    ck_assert_double_eq(
        sluice_test_metric(NULL, "sluice_key_state{upstream=\"default\",key="
                                 "\"pr-b\",state=\"failed\"}"),
        0);
    ck_assert_double_eq(
        sluice_test_metric(NULL, "sluice_key_state{upstream=\"default\",key="
                                 "\"pr-a\",state=\"healthy\"}"),
        1);
    ck_assert_double_eq(key_state_of(g2, "pr-a", "healthy"), 1);
    ck_assert_double_eq(key_state_of(g2, "pr-b", "failed"), 0);
    sluice_test_stage_free(g2);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("keyring");
    TCase *tc = tcase_create("keyring");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, keyfile_parses_comments_labels_duplicates);
    tcase_add_test(tc, keyfile_rejects_nul);
    tcase_add_test(tc, keyfile_empty_missing_and_loose);
    tcase_add_test(tc, init_refuses_empty_file_and_bad_config);
    tcase_add_test(tc, durations);
    tcase_add_test(tc, http_dates);
    tcase_add_test(tc, retry_after_headers);
    tcase_add_test(tc, classification);
    tcase_add_test(tc, state_auth_and_quota_fail_until_reset);
    tcase_add_test(tc, state_rate_limit_hint_cap_and_later_deadline);
    tcase_add_test(tc, state_rate_limit_exponential_without_hint);
    tcase_add_test(tc, state_transient_threshold);
    tcase_add_test(tc, round_robin_in_turn);
    tcase_add_test(tc, rate_limited_key_out_then_back);
    tcase_add_test(tc, want_same_and_other);
    tcase_add_test(tc, all_unavailable_is_503_with_retry_after);
    tcase_add_test(tc, all_rate_limited_is_429_with_retry_after);
    tcase_add_test(tc, wait_for_key_retries_on_a_timer);
    tcase_add_test(tc, least_inflight_strategy);
    tcase_add_test(tc, reload_carries_health_and_inflight_finishes_on_its_key);
    tcase_add_test(tc, same_key_across_a_reload);
    tcase_add_test(tc, admin_keys_reset_and_status);
    tcase_add_test(tc, export_import_roundtrip);
    tcase_add_test(tc, health_survives_a_restart);
    tcase_add_test(tc, health_from_elsewhere_applies);
    tcase_add_test(tc, probes_bring_failed_keys_back);
    tcase_add_test(tc, stress_many_threads_select);
    tcase_add_test(tc, metrics_per_key_counts_states_and_reload);
    tcase_add_test(tc, metrics_keys_dropped_by_a_pipeline_reload);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
