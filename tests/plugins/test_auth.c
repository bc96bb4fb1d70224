/*
 * test_auth.c - the auth stage: its pure parts (SHA-256 and constant-time
 * compare, the clients file, CIDR matching, token buckets on a hand-driven
 * clock) and the stage itself driven through the real host table
 * (stage_harness.c): 401/403/429 answers, the "client" attribute, token
 * charging, reload that keeps the old set on a broken file, state export.
 */
#include "bucket.h"
#include "cidr.h"
#include "clients_file.h"
#include "keycache.h"
#include "sha256.h"
#include "stage_harness.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- sha256 / constant-time compare ----------------------------------- */

static void hex(const uint8_t *d, char *out)
{
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

START_TEST(sha256_vectors)
{
    static const struct {
        size_t len;
        char c;
        const char *want;
    } v[] = {
        {0, 'a',
         "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {55, 'a',
         "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
        {56, 'a',
         "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
        {64, 'a',
         "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
        {119, 'a',
         "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
    };
    char buf[200], h[65];
    uint8_t d[32];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        memset(buf, v[i].c, v[i].len);
        auth_sha256(buf, v[i].len, d);
        hex(d, h);
        ck_assert_str_eq(h, v[i].want);
    }
    auth_sha256("abc", 3, d);
    hex(d, h);
    ck_assert_str_eq(
        h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
END_TEST

START_TEST(ct_equal_cases)
{
    uint8_t a[32], b[32];
    memset(a, 7, sizeof a);
    memcpy(b, a, sizeof b);
    ck_assert_int_eq(auth_ct_equal(a, b, 32), 1);
    ck_assert_int_eq(auth_ct_equal(a, b, 0), 1);
    for (int i = 0; i < 32; i += 31) { /* first and last byte */
        b[i] ^= 0x80;
        ck_assert_int_eq(auth_ct_equal(a, b, 32), 0);
        b[i] ^= 0x80;
    }
    b[13] ^= 1;
    ck_assert_int_eq(auth_ct_equal(a, b, 32), 0);
}
END_TEST

/* ---- the per-thread key digest cache ------------------------------------ */

/* keycache_digest against auth_sha256, and whether it was a hit. */
static int kc_check(const char *key, size_t klen)
{
    uint8_t want[32], got[32];
    unsigned long h0, m0, h1, m1;
    keycache_counts(&h0, &m0);
    keycache_digest(key, klen, got);
    keycache_counts(&h1, &m1);
    auth_sha256(key, klen, want);
    ck_assert_msg(!memcmp(want, got, 32), "wrong digest for '%.*s'", (int)klen,
                  key);
    ck_assert_uint_eq((h1 - h0) + (m1 - m0), klen && klen <= 128 ? 1 : 0);
    return h1 > h0;
}

START_TEST(keycache_hits_and_never_mixes_keys)
{
    const char *a = "sk-client-alpha-0001", *b = "sk-client-alpha-0002";
    ck_assert_int_eq(kc_check(a, strlen(a)), 0); /* first time: hashed */
    ck_assert_int_eq(kc_check(a, strlen(a)), 1); /* then kept */
    ck_assert_int_eq(kc_check(b, strlen(b)), 0);
    ck_assert_int_eq(kc_check(b, strlen(b)), 1);
    /* the same slot (same length, same last eight bytes), other keys: each
     * gets its own digest, the other's entry is replaced */
    const char *c = "XX-client-alpha-0001", *d = "YY-client-alpha-0001";
    ck_assert_int_eq(kc_check(c, strlen(c)), 0);
    ck_assert_int_eq(kc_check(d, strlen(d)), 0);
    ck_assert_int_eq(kc_check(c, strlen(c)), 0);
    ck_assert_int_eq(kc_check(a, strlen(a)), 0);
    /* a prefix of a kept key is another key */
    ck_assert_int_eq(kc_check(a, strlen(a) - 1), 0);
    /* empty and over-long keys: hashed every time, never kept */
    ck_assert_int_eq(kc_check("", 0), 0);
    char longkey[300];
    memset(longkey, 'k', sizeof longkey);
    ck_assert_int_eq(kc_check(longkey, sizeof longkey), 0);
    ck_assert_int_eq(kc_check(longkey, sizeof longkey), 0);
    ck_assert_int_eq(kc_check(longkey, 128), 0);
    ck_assert_int_eq(kc_check(longkey, 128), 1);
    /* many keys through 16 slots: the digest is always the key's own */
    char k[40];
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 200; i++) {
            int n = snprintf(k, sizeof k, "sk-%d-client-key-%d", i % 7, i);
            kc_check(k, (size_t)n);
        }
}
END_TEST

/* ---- clients file ---------------------------------------------------- */

static const char GOOD_FILE[] =
    "# sluice clients\n"
    "\n"
    "  sk-client-alpha-0001   alpha  \r\n"
    "sk-client-beta-00002\tbeta rpm=60 tpm=1000 # trailing comment\n"
    "sk-client-gamma-0003 gamma models=gpt-4o-mini,qwen/qwen3 rpm=2\n"
    "   # indented comment\n"
    "sk-client-delta-0004 delta tpm=5 budget_tokens_day=100000 "
    "budget_cost_month=12.50"; /* no final newline */

START_TEST(clients_good)
{
    struct client_defs d;
    char err[256] = "";
    ck_assert_msg(clients_parse(GOOD_FILE, strlen(GOOD_FILE), "c.txt", &d, err,
                                sizeof err) == 0,
                  "%s", err);
    ck_assert_uint_eq(d.n, 4);
    ck_assert_str_eq(d.v[0].name, "alpha");
    ck_assert_int_eq(d.v[0].rpm, 0);
    ck_assert_int_eq(d.v[0].line, 3);
    ck_assert_ptr_null(d.v[0].models);
    ck_assert_str_eq(d.v[1].name, "beta");
    ck_assert_int_eq(d.v[1].rpm, 60);
    ck_assert_int_eq(d.v[1].tpm, 1000);
    ck_assert_uint_eq(d.v[2].nmodels, 2);
    ck_assert_str_eq(d.v[2].models[1], "qwen/qwen3");
    ck_assert_int_eq(client_model_allowed(&d.v[2], "gpt-4o-mini"), 1);
    ck_assert_int_eq(client_model_allowed(&d.v[2], "gpt-4o"), 0);
    ck_assert_int_eq(client_model_allowed(&d.v[2], ""), 0);
    ck_assert_int_eq(client_model_allowed(&d.v[0], "anything"), 1);
    ck_assert_int_eq(d.v[3].tpm, 5);
    ck_assert_str_eq(d.v[3].budget[0], "100000");
    ck_assert_str_eq(d.v[3].budget[1], "");
    ck_assert_str_eq(d.v[3].budget[2], "12.50");

    uint8_t h[32];
    auth_sha256("sk-client-beta-00002", 20, h);
    ck_assert_int_eq(clients_find(&d, h), 1);
    auth_sha256("sk-client-delta-0004", 20, h);
    ck_assert_int_eq(clients_find(&d, h), 3);
    auth_sha256("sk-client-beta-0000", 19, h);
    ck_assert_int_eq(clients_find(&d, h), -1);
    clients_defs_free(&d);
}
END_TEST

/* The sorted lookup finds every client among many, and nothing else. */
START_TEST(clients_many)
{
    enum { N = 777 };
    static char text[N * 64];
    char *p = text;
    for (int i = 0; i < N; i++)
        p += sprintf(p, "sk-many-%08d-key c%d\n", (i * 7919) % 100003, i);
    struct client_defs d;
    char err[256];
    ck_assert_msg(
        clients_parse(text, strlen(text), "m.txt", &d, err, sizeof err) == 0,
        "%s", err);
    ck_assert_uint_eq(d.n, N);
    for (int i = 0; i < N; i++) {
        char key[64];
        uint8_t h[32];
        snprintf(key, sizeof key, "sk-many-%08d-key", (i * 7919) % 100003);
        auth_sha256(key, strlen(key), h);
        ck_assert_int_eq(clients_find(&d, h), i);
        key[5] = 'X';
        auth_sha256(key, strlen(key), h);
        ck_assert_int_eq(clients_find(&d, h), -1);
    }
    clients_defs_free(&d);
    struct client_defs empty = {NULL, 0, NULL, NULL};
    uint8_t z[32] = {0};
    ck_assert_int_eq(clients_find(&empty, z), -1);
}
END_TEST

START_TEST(clients_errors)
{
    static const struct {
        const char *text;
        const char *want; /* substring of the error */
    } v[] = {
        {"sk-client-alpha-0001\n", "c.txt:1: expected"},
        {"# c\nshort alpha\n", "c.txt:2: the key must be"},
        {"sk-client-alpha-0001 al/pha\n", "c.txt:1: the name may only"},
        {"sk-client-alpha-0001 alpha rpm=0\n", "c.txt:1: rpm/tpm"},
        {"sk-client-alpha-0001 alpha rpm=abc\n", "c.txt:1: rpm/tpm"},
        {"sk-client-alpha-0001 alpha rpm=99999999999\n", "c.txt:1: rpm/tpm"},
        {"sk-client-alpha-0001 alpha rpm=1 rpm=2\n", "c.txt:1: limit given"},
        {"sk-client-alpha-0001 alpha burst=3\n", "c.txt:1: unknown option"},
        {"sk-client-alpha-0001 alpha extra\n", "c.txt:1: expected rpm="},
        {"sk-client-alpha-0001 alpha budget_tokens_day=-1\n",
         "c.txt:1: budget_tokens_day must be a whole number"},
        {"sk-client-alpha-0001 alpha budget_tokens_month=1.5\n",
         "c.txt:1: budget_tokens_month must be a whole number"},
        {"sk-client-alpha-0001 alpha budget_tokens_day=99999999999999999\n",
         "c.txt:1: budget_tokens_day"},
        {"sk-client-alpha-0001 alpha budget_cost_month=ten\n",
         "c.txt:1: budget_cost_month must be a non-negative number"},
        {"sk-client-alpha-0001 alpha budget_cost_month=-5\n",
         "c.txt:1: budget_cost_month"},
        {"sk-client-alpha-0001 alpha budget_cost_month=1.\n",
         "c.txt:1: budget_cost_month"},
        {"sk-client-alpha-0001 alpha budget_cost_month=\n",
         "c.txt:1: budget_cost_month"},
        {"sk-client-alpha-0001 alpha budget_tokens_day=1 "
         "budget_tokens_day=2\n",
         "c.txt:1: budget given twice"},
        {"sk-client-alpha-0001 alpha models=a,,b\n", "c.txt:1: models"},
        {"sk-client-alpha-0001 alpha models=\n", "c.txt:1: models"},
        {"sk-client-alpha-0001 a\nsk-client-alpha-0001 b\n",
         "c.txt:2: the same key as line 1"},
        {"sk-client-alpha-0001 a\nsk-client-alpha-0002 a\n",
         "c.txt:2: the same name as line 1"},
        {"", "c.txt: no clients"},
        {"# only a comment\n\n", "c.txt: no clients"},
        {"sk-client-alpha-0001 a b c d e f g h i j k l m n o p q\n",
         "c.txt:1: too many fields"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        struct client_defs d;
        char err[256] = "";
        ck_assert_msg(clients_parse(v[i].text, strlen(v[i].text), "c.txt", &d,
                                    err, sizeof err) == -1,
                      "case %zu accepted", i);
        ck_assert_msg(strstr(err, v[i].want), "case %zu: '%s' lacks '%s'", i,
                      err, v[i].want);
        ck_assert_msg(!strstr(err, "sk-client"), "case %zu: key in '%s'", i,
                      err);
        ck_assert_uint_eq(d.n, 0);
    }
    /* a NUL byte inside the text */
    static const char nul[] = "sk-client-alpha-0001 a\0b\n";
    struct client_defs d;
    char err[256];
    ck_assert_int_eq(
        clients_parse(nul, sizeof nul - 1, "c.txt", &d, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "c.txt:1: a NUL"));
}
END_TEST

/* ---- CIDR ---------------------------------------------------------- */

static int in(const char *range, const char *addr)
{
    struct cidr r, a;
    ck_assert_msg(cidr_parse(range, &r) == 0, "range %s", range);
    ck_assert_msg(cidr_addr_parse(addr, &a) == 0, "addr %s", addr);
    return cidr_contains(&r, &a);
}

START_TEST(cidr_v4)
{
    ck_assert_int_eq(in("10.0.0.0/8", "10.255.1.2"), 1);
    ck_assert_int_eq(in("10.0.0.0/8", "11.0.0.1"), 0);
    ck_assert_int_eq(in("192.168.1.0/24", "192.168.1.255"), 1);
    ck_assert_int_eq(in("192.168.1.0/24", "192.168.2.0"), 0);
    ck_assert_int_eq(in("192.168.1.7", "192.168.1.7"), 1); /* bare = /32 */
    ck_assert_int_eq(in("192.168.1.7/32", "192.168.1.6"), 0);
    ck_assert_int_eq(in("0.0.0.0/0", "203.0.113.9"), 1);
    ck_assert_int_eq(in("0.0.0.0/0", "::1"), 0); /* other family */
    ck_assert_int_eq(in("172.16.0.0/12", "172.31.255.255"), 1);
    ck_assert_int_eq(in("172.16.0.0/12", "172.32.0.0"), 0);
    ck_assert_int_eq(in("10.1.2.3/31", "10.1.2.2"), 1); /* host bits set */
    ck_assert_int_eq(in("10.1.2.3/31", "10.1.2.4"), 0);
    ck_assert_int_eq(in("127.0.0.0/8", "::ffff:127.0.0.1"), 1); /* mapped */
}
END_TEST

START_TEST(cidr_v6)
{
    ck_assert_int_eq(in("::1", "::1"), 1);
    ck_assert_int_eq(in("::1/128", "::2"), 0);
    ck_assert_int_eq(in("2001:db8::/32", "2001:db8:ffff::1"), 1);
    ck_assert_int_eq(in("2001:db8::/32", "2001:db9::1"), 0);
    ck_assert_int_eq(in("::/0", "fe80::1"), 1);
    ck_assert_int_eq(in("::/0", "10.0.0.1"), 0);
    ck_assert_int_eq(in("fe80::/10", "febf::1"), 1);
    ck_assert_int_eq(in("fe80::/10", "fec0::1"), 0);
    ck_assert_int_eq(in("2001:db8::/127", "2001:db8::1"), 1);
    ck_assert_int_eq(in("2001:db8::/127", "2001:db8::2"), 0);
    ck_assert_int_eq(in("::ffff:10.0.0.0/104", "10.9.9.9"), 1);
    ck_assert_int_eq(in("[2001:db8::1]", "2001:db8::1"), 1);
}
END_TEST

START_TEST(cidr_bad)
{
    struct cidr c;
    const char *bad[] = {
        "",           "10.0.0.0/33",       "::/129",        "10.0.0/8",
        "10.0.0.0/",  "10.0.0.0/-1",       "10.0.0.0/8/8",  "abc",
        "1.2.3.4/1a", "::ffff:1.2.3.4/95", "10.0.0.0/0008", NULL};
    for (int i = 0; bad[i]; i++)
        ck_assert_msg(cidr_parse(bad[i], &c) == -1, "'%s' accepted", bad[i]);
    ck_assert_int_eq(cidr_parse(NULL, &c), -1);
    ck_assert_int_eq(cidr_addr_parse("10.0.0.1/8", &c), -1);
    ck_assert_int_eq(cidr_addr_parse(NULL, &c), -1);
}
END_TEST

/* ---- token buckets ---------------------------------------------------- */

START_TEST(bucket_clock)
{
    struct bucket b;
    uint64_t t = 1000000, wait = 0;
    bucket_init(&b, 3, 60000, t);
    ck_assert_int_eq(bucket_remaining(&b, t), 3);
    ck_assert_int_eq(bucket_take(&b, 1, t, &wait), 0);
    ck_assert_int_eq(bucket_take(&b, 1, t, &wait), 0);
    ck_assert_int_eq(bucket_take(&b, 1, t, &wait), 0);
    ck_assert_int_eq(bucket_remaining(&b, t), 0);
    ck_assert_int_eq(bucket_take(&b, 1, t, &wait), -1);
    ck_assert_uint_eq(wait, 20000); /* one token every 20 s */
    ck_assert_uint_eq(bucket_reset_ms(&b, t), 60000);
    ck_assert_int_eq(bucket_take(&b, 1, t + 19999, &wait), -1);
    ck_assert_uint_eq(wait, 1);
    ck_assert_int_eq(bucket_take(&b, 1, t + 20000, &wait), 0);
    /* a clock that goes back adds nothing */
    ck_assert_int_eq(bucket_take(&b, 1, t, &wait), -1);
    /* refill never exceeds the cap */
    ck_assert_int_eq(bucket_remaining(&b, t + 10 * 60000), 3);
    ck_assert_uint_eq(bucket_reset_ms(&b, t + 10 * 60000), 0);
    /* more than the cap: never */
    ck_assert_int_eq(bucket_take(&b, 4, t + 10 * 60000, &wait), -1);
    ck_assert_uint_eq(wait, UINT64_MAX);
    /* several at once */
    ck_assert_int_eq(bucket_take(&b, 3, t + 10 * 60000, &wait), 0);
    ck_assert_int_eq(bucket_take(&b, 2, t + 10 * 60000, &wait), -1);
    ck_assert_uint_eq(wait, 40000);
}
END_TEST

START_TEST(bucket_fractions_and_unlimited)
{
    struct bucket b;
    uint64_t t = 5, wait = 0;
    bucket_init(&b, 1000, 60000, t); /* one token every 60 ms */
    ck_assert_int_eq(bucket_take(&b, 1000, t, &wait), 0);
    for (int i = 1; i <= 60; i++) /* 1 ms steps: fractions accumulate */
        bucket_remaining(&b, t + (uint64_t)i);
    ck_assert_int_eq(bucket_remaining(&b, t + 60), 1);
    bucket_set(&b, 5000000, t + 60); /* clamped to the cap */
    ck_assert_int_eq(bucket_remaining(&b, t + 60), 1000);
    bucket_set(&b, -5, t + 60);
    ck_assert_int_eq(bucket_remaining(&b, t + 60), 0);

    bucket_init(&b, 0, 60000, t); /* unlimited */
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(bucket_take(&b, 1000000, t, &wait), 0);
}
END_TEST

/* ---- the stage through the host table -------------------------------- */

static char tmpdir[256], cpath[300];

static void write_clients(const char *text)
{
    FILE *f = fopen(cpath, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    chmod(cpath, 0600);
}

static sluice_test_stage *gen_with(const char *clients, const char *extra)
{
    char cfg[1024], err[512] = "";
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sluice-auth-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(cpath, sizeof cpath, "%s/clients.txt", tmpdir);
    write_clients(clients);
    snprintf(cfg, sizeof cfg, "{\"clients_file\":\"%s\"%s%s}", cpath,
             extra ? "," : "", extra ? extra : "");
    sluice_test_stage *g = sh_gen_new(cfg, err, sizeof err);
    ck_assert_msg(g != NULL, "init: %s", err);
    return g;
}

static void gen_done(sluice_test_stage *g)
{
    sluice_test_stage_free(g);
    unlink(cpath);
    rmdir(tmpdir);
}

static const char CLIENTS[] = "sk-client-alpha-0001 alpha\n"
                              "sk-client-beta-00002 beta rpm=2\n"
                              "sk-client-gamma-0003 gamma models=gpt-4o-mini\n"
                              "sk-client-delta-0004 delta tpm=100 "
                              "budget_tokens_month=5000 budget_cost_month=2\n";

static const char BODY[] =
    "{\"model\":\"qwen/qwen3\",\"messages\":[{\"role\":\"user\","
    "\"content\":\"hi\"}]}";

static sluice_test_req *req(sluice_test_stage *g, const char *hname,
                            const char *hval)
{
    const char *hdrs[] = {hname, hval, NULL, NULL};
    return sh_ctx_new(g, BODY, hname ? hdrs : NULL);
}

static const char *err_code(sluice_test_req *ctx)
{
    static char code[64];
    json_t *doc = json_loads(sluice_test_body(ctx), 0, NULL);
    const char *c = json_string_value(
        json_object_get(json_object_get(doc, "error"), "code"));
    snprintf(code, sizeof code, "%s", c ? c : "(none)");
    json_decref(doc);
    return code;
}

START_TEST(stage_keys)
{
    sluice_test_stage *g = gen_with(CLIENTS, NULL);
    sluice_test_req *c;

    c = req(g, NULL, NULL);
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_RESPOND);
    ck_assert_int_eq(sluice_test_status(c), 401);
    ck_assert_str_eq(err_code(c), "invalid_api_key");
    ck_assert_ptr_null(HOST.attr_get(CTX(c), "client"));
    sluice_test_req_free(c);

    c = req(g, "Authorization", "Bearer sk-client-alpha-0002");
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_RESPOND);
    ck_assert_int_eq(sluice_test_status(c), 401);
    ck_assert_ptr_null(strstr(sluice_test_body(c), "sk-client-alpha-0002"));
    sluice_test_req_free(c);

    c = req(g, "Authorization", "Basic sk-client-alpha-0001");
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_RESPOND);
    ck_assert_int_eq(sluice_test_status(c), 401);
    sluice_test_req_free(c);

    c = req(g, "Authorization", "bearer  sk-client-alpha-0001");
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_CONTINUE);
    ck_assert_str_eq(HOST.attr_get(CTX(c), "client"), "alpha");
    sluice_test_req_free(c);

    c = req(g, "x-api-key", "sk-client-beta-00002");
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_CONTINUE);
    ck_assert_str_eq(HOST.attr_get(CTX(c), "client"), "beta");
    ck_assert_ptr_null(HOST.attr_get(CTX(c), "budget_tokens_day"));
    sluice_test_req_free(c);

    /* the clients file's budgets go to the usage stage as attributes */
    c = req(g, "x-api-key", "sk-client-delta-0004");
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_CONTINUE);
    ck_assert_ptr_null(HOST.attr_get(CTX(c), "budget_tokens_day"));
    ck_assert_str_eq(HOST.attr_get(CTX(c), "budget_tokens_month"), "5000");
    ck_assert_str_eq(HOST.attr_get(CTX(c), "budget_cost_month"), "2");
    sluice_test_req_free(c);
    gen_done(g);
}
END_TEST

START_TEST(stage_models)
{
    sluice_test_stage *g = gen_with(CLIENTS, NULL);
    sluice_test_req *c = req(g, "x-api-key", "sk-client-gamma-0003");
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_RESPOND);
    ck_assert_int_eq(sluice_test_status(c), 403);
    ck_assert_str_eq(err_code(c), "model_not_allowed");
    sluice_test_req_free(c);
    const char *h[] = {"x-api-key", "sk-client-gamma-0003", NULL};
    c = sh_ctx_new(g, "{\"model\":\"gpt-4o-mini\",\"messages\":[]}", h);
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_CONTINUE);
    ck_assert_int_eq(sluice_test_on_attempt(c), SLUICE_CONTINUE);
    sluice_test_on_complete(c);
    sluice_test_req_free(c);
    /* no model: on_request lets it pass (a later stage may default it),
     * on_attempt decides on the model the body then holds */
    c = sh_ctx_new(g, "{\"messages\":[]}", h);
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_CONTINUE);
    ck_assert_int_eq(sluice_test_on_attempt(c), SLUICE_RESPOND);
    ck_assert_int_eq(sluice_test_status(c), 403);
    sluice_test_on_complete(c);
    sluice_test_req_free(c);
    c = sh_ctx_new(g, "{\"messages\":[]}", h);
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_CONTINUE);
    HOST.json_set_str(HOST.req_body_mut(CTX(c)), "model", "gpt-4o-mini");
    ck_assert_int_eq(sluice_test_on_attempt(c), SLUICE_CONTINUE);
    /* a later stage switching to a model outside the list is caught */
    HOST.json_set_str(HOST.req_body_mut(CTX(c)), "model", "gpt-4o");
    ck_assert_int_eq(sluice_test_on_attempt(c), SLUICE_RESPOND);
    sluice_test_on_complete(c);
    sluice_test_req_free(c);
    gen_done(g);
}
END_TEST

START_TEST(stage_rpm)
{
    sluice_test_stage *g = gen_with(CLIENTS, NULL);
    for (int i = 0; i < 2; i++) {
        sluice_test_req *c = req(g, "x-api-key", "sk-client-beta-00002");
        ck_assert_int_eq(sluice_test_on_request(c), SLUICE_CONTINUE);
        sluice_test_req_free(c);
    }
    sluice_test_req *c = req(g, "x-api-key", "sk-client-beta-00002");
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_RESPOND);
    ck_assert_int_eq(sluice_test_status(c), 429);
    ck_assert_str_eq(err_code(c), "rate_limit_exceeded");
    const char *ra = sluice_test_header(c, "Retry-After");
    ck_assert_ptr_nonnull(ra);
    ck_assert_int_ge(atoi(ra), 1);
    ck_assert_int_le(atoi(ra), 30);
    ck_assert_str_eq(sluice_test_header(c, "x-ratelimit-limit-requests"), "2");
    ck_assert_str_eq(sluice_test_header(c, "x-ratelimit-remaining-requests"),
                     "0");
    ck_assert_ptr_nonnull(sluice_test_header(c, "x-ratelimit-reset-requests"));
    ck_assert_ptr_null(sluice_test_header(c, "x-ratelimit-limit-tokens"));
    sluice_test_req_free(c);
    /* another client is not affected */
    c = req(g, "x-api-key", "sk-client-alpha-0001");
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_CONTINUE);
    sluice_test_req_free(c);
    gen_done(g);
}
END_TEST

/* The shared window keeps its count across a restart (the state file
 * closed and opened again, a fresh generation: the token buckets are full
 * again) and across generations; shared_limits: false leaves only the
 * buckets. */
START_TEST(stage_window_survives_restart)
{
    char db[64] = "/tmp/sluice-auth-db-XXXXXX", path[128];
    ck_assert_ptr_nonnull(mkdtemp(db));
    snprintf(path, sizeof path, "%s/state.db", db);
    ck_assert_int_eq(sluice_test_state_open(path), 0);
    sluice_test_stage *g = gen_with(CLIENTS, NULL);
    for (int i = 0; i < 2; i++) {
        sluice_test_req *c = req(g, "x-api-key", "sk-client-beta-00002");
        ck_assert_int_eq(sluice_test_on_request(c), SLUICE_CONTINUE);
        sluice_test_req_free(c);
    }
    gen_done(g);
    ck_assert_int_eq(sluice_test_state_open(path), 0); /* the restart */
    g = gen_with(CLIENTS, NULL);
    sluice_test_req *c = req(g, "x-api-key", "sk-client-beta-00002");
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_RESPOND);
    ck_assert_int_eq(sluice_test_status(c), 429);
    const char *ra = sluice_test_header(c, "Retry-After");
    ck_assert_ptr_nonnull(ra);
    ck_assert_int_ge(atoi(ra), 1);
    ck_assert_int_le(atoi(ra), 70);
    sluice_test_req_free(c);
    gen_done(g);
    g = gen_with(CLIENTS, "\"shared_limits\":false");
    c = req(g, "x-api-key", "sk-client-beta-00002");
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_CONTINUE);
    sluice_test_req_free(c);
    gen_done(g);
    sluice_test_state_open(NULL);
    unlink(path);
    char side[160];
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    rmdir(db);
}
END_TEST

/* state.on_unavailable: closed with the shared backend away: a client with
 * limits is refused with a 503 (its limits cannot be counted fleet-wide);
 * one without limits, or any client when the backend is only degraded
 * (open, the default) or shared_limits is off, goes on. */
START_TEST(stage_closed_when_state_unavailable)
{
    sluice_test_stage *g = gen_with(CLIENTS, NULL);
    sluice_test_state_status(SLUICE_STATE_DEGRADED | SLUICE_STATE_CLOSED);
    sluice_test_req *c = req(g, "x-api-key", "sk-client-beta-00002");
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_RESPOND);
    ck_assert_int_eq(sluice_test_status(c), 503);
    const char *body = sluice_test_body(c);
    ck_assert_msg(strstr(body, "\"type\":\"server_error\"") &&
                      strstr(body, "rate_limits_unavailable"),
                  "%s", body);
    sluice_test_req_free(c);
    c = req(g, "x-api-key", "sk-client-alpha-0001"); /* no limits */
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_CONTINUE);
    sluice_test_req_free(c);
    sluice_test_state_status(SLUICE_STATE_DEGRADED); /* open */
    c = req(g, "x-api-key", "sk-client-beta-00002");
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_CONTINUE);
    sluice_test_req_free(c);
    sluice_test_state_status(SLUICE_STATE_CLOSED); /* closed, but up */
    c = req(g, "x-api-key", "sk-client-beta-00002");
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_CONTINUE);
    sluice_test_req_free(c);
    gen_done(g);
    g = gen_with(CLIENTS, "\"shared_limits\":false");
    sluice_test_state_status(SLUICE_STATE_DEGRADED | SLUICE_STATE_CLOSED);
    c = req(g, "x-api-key", "sk-client-beta-00002");
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_CONTINUE);
    sluice_test_req_free(c);
    sluice_test_state_status(-1);
    gen_done(g);
}
END_TEST

START_TEST(stage_tpm)
{
    sluice_test_stage *g = gen_with(CLIENTS, NULL);
    /* no estimate: nothing charged */
    sluice_test_req *c = req(g, "x-api-key", "sk-client-delta-0004");
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_CONTINUE);
    ck_assert_int_eq(sluice_test_on_attempt(c), SLUICE_CONTINUE);
    sluice_test_on_complete(c);
    sluice_test_req_free(c);
    /* estimate set after auth's on_request (context runs later): charged
     * once in on_attempt, not again on a second attempt */
    c = req(g, "x-api-key", "sk-client-delta-0004");
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_CONTINUE);
    HOST.attr_set(CTX(c), "prompt_tokens_estimate", "60");
    ck_assert_int_eq(sluice_test_on_attempt(c), SLUICE_CONTINUE);
    ck_assert_int_eq(sluice_test_on_attempt(c), SLUICE_CONTINUE);
    sluice_test_on_complete(c);
    sluice_test_req_free(c);
    /* 40 left: a request of 60 is refused with the token headers */
    c = req(g, "x-api-key", "sk-client-delta-0004");
    HOST.attr_set(CTX(c), "prompt_tokens_estimate", "60"); /* before auth */
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_RESPOND);
    ck_assert_int_eq(sluice_test_status(c), 429);
    ck_assert_str_eq(sluice_test_header(c, "x-ratelimit-limit-tokens"), "100");
    ck_assert_str_eq(sluice_test_header(c, "x-ratelimit-remaining-tokens"),
                     "40");
    ck_assert_ptr_nonnull(sluice_test_header(c, "x-ratelimit-reset-tokens"));
    ck_assert_ptr_nonnull(sluice_test_header(c, "Retry-After"));
    sluice_test_on_complete(c);
    sluice_test_req_free(c);
    /* larger than the whole limit: 429 without Retry-After */
    c = req(g, "x-api-key", "sk-client-delta-0004");
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_CONTINUE);
    HOST.attr_set(CTX(c), "prompt_tokens_estimate", "500");
    ck_assert_int_eq(sluice_test_on_attempt(c), SLUICE_RESPOND);
    ck_assert_int_eq(sluice_test_status(c), 429);
    ck_assert_ptr_null(sluice_test_header(c, "Retry-After"));
    sluice_test_on_complete(c);
    sluice_test_req_free(c);
    gen_done(g);
}
END_TEST

START_TEST(stage_allow_list)
{
    sluice_test_stage *g =
        gen_with(CLIENTS, "\"allow\":[\"10.0.0.0/8\",\"2001:db8::/32\"],"
                          "\"trusted_proxies\":[\"127.0.0.1\"]");
    static const struct {
        const char *peer, *xff;
        int ok;
    } v[] = {
        {"10.1.2.3", NULL, 1},
        {"192.168.0.1", NULL, 0},
        {"2001:db8::5", NULL, 1},
        {"::ffff:10.9.9.9", NULL, 1},
        {"127.0.0.1", NULL, 0},       /* the proxy itself */
        {"127.0.0.1", "10.4.4.4", 1}, /* via the trusted proxy */
        {"127.0.0.1", "10.4.4.4, 127.0.0.1", 1},
        {"127.0.0.1", "10.4.4.4, 8.8.8.8", 0}, /* rightmost untrusted */
        {"127.0.0.1", "8.8.8.8, 10.4.4.4", 1}, /* spoofed left part */
        {"127.0.0.1", "garbage", 0},
        {"127.0.0.1", "", 0},
        {"192.168.0.1", "10.4.4.4", 0}, /* untrusted peer's XFF ignored */
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        const char *h[] = {"x-api-key",
                           "sk-client-alpha-0001",
                           v[i].xff ? "X-Forwarded-For" : NULL,
                           v[i].xff,
                           NULL,
                           NULL};
        sluice_test_req *c = sh_ctx_new(g, BODY, h);
        sluice_test_req_peer(c, v[i].peer);
        sluice_verdict r = sluice_test_on_request(c);
        ck_assert_msg(r == (v[i].ok ? SLUICE_CONTINUE : SLUICE_RESPOND),
                      "case %zu (%s / %s)", i, v[i].peer,
                      v[i].xff ? v[i].xff : "-");
        if (!v[i].ok) {
            ck_assert_int_eq(sluice_test_status(c), 403);
            ck_assert_str_eq(err_code(c), "ip_not_allowed");
        }
        sluice_test_req_free(c);
    }
    /* the allow list comes before the key check */
    sluice_test_req *c = req(g, NULL, NULL);
    sluice_test_req_peer(c, "8.8.8.8");
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_RESPOND);
    ck_assert_int_eq(sluice_test_status(c), 403);
    sluice_test_req_free(c);
    gen_done(g);
}
END_TEST

START_TEST(stage_bad_config)
{
    char err[512] = "";
    const char *bad[] = {
        "{\"clients_file\":\"/nonexistent/clients.txt\"}",
        "{\"clients_file\":5}",
        "{\"clients_file\":\"CP\",\"allow\":\"10.0.0.0/8\"}",
        "{\"clients_file\":\"CP\",\"allow\":[\"10.0.0.0/40\"]}",
        "{\"clients_file\":\"CP\",\"trusted_proxies\":[5]}",
        "{\"clients_file\":\"CP\",\"alow\":[]}",
        NULL};
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sluice-auth-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(cpath, sizeof cpath, "%s/clients.txt", tmpdir);
    write_clients(CLIENTS);
    for (int i = 0; bad[i]; i++) {
        char cfg[600], *cp;
        snprintf(cfg, sizeof cfg, "%s", bad[i]);
        if ((cp = strstr(cfg, "CP"))) {
            char tail[300];
            snprintf(tail, sizeof tail, "%s", cp + 2);
            snprintf(cp, sizeof cfg - (size_t)(cp - cfg), "%s%s", cpath, tail);
        }
        ck_assert_msg(sh_gen_new(cfg, err, sizeof err) == NULL,
                      "config %d accepted", i);
        ck_assert_msg(err[0], "config %d: no message", i);
    }
    /* a broken file names file:line and not the key */
    write_clients("sk-client-alpha-0001 alpha rpm=x\n");
    char cfg[400];
    snprintf(cfg, sizeof cfg, "{\"clients_file\":\"%s\"}", cpath);
    ck_assert_ptr_null(sh_gen_new(cfg, err, sizeof err));
    ck_assert_msg(strstr(err, "clients.txt:1:"), "%s", err);
    ck_assert_ptr_null(strstr(err, "sk-client-alpha-0001"));
    unlink(cpath);
    rmdir(tmpdir);
}
END_TEST

static int admin_call(sluice_test_stage *g, const char *action,
                      const char *method, char *out, size_t outlen)
{
    char *text = NULL;
    int st = sluice_test_admin(g, action, method, NULL, &text);
    snprintf(out, outlen, "%s", text ? text : "");
    free(text);
    return st;
}

START_TEST(stage_reload)
{
    sluice_test_stage *g = gen_with(CLIENTS, NULL);
    char out[1024];
    /* use one of beta's two requests */
    sluice_test_req *c = req(g, "x-api-key", "sk-client-beta-00002");
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_CONTINUE);
    sluice_test_req_free(c);

    ck_assert_int_eq(admin_call(g, "reload", "GET", out, sizeof out), 405);
    /* broken file: 400, old set kept */
    write_clients("sk-client-omega-0009 omega rpm=\n");
    ck_assert_int_eq(admin_call(g, "reload", "POST", out, sizeof out), 400);
    ck_assert_ptr_nonnull(strstr(out, "clients.txt:1:"));
    ck_assert_ptr_null(strstr(out, "sk-client-omega"));
    c = req(g, "x-api-key", "sk-client-alpha-0001");
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_CONTINUE);
    sluice_test_req_free(c);

    /* good file: alpha gone, omega in, beta keeps its used request */
    write_clients("sk-client-omega-0009 omega\n"
                  "sk-client-beta-00002 beta rpm=2\n");
    ck_assert_int_eq(admin_call(g, "reload", "POST", out, sizeof out), 200);
    ck_assert_ptr_nonnull(strstr(out, "\"clients\":2"));
    c = req(g, "x-api-key", "sk-client-alpha-0001");
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_RESPOND);
    ck_assert_int_eq(sluice_test_status(c), 401);
    sluice_test_req_free(c);
    c = req(g, "Authorization", "Bearer sk-client-omega-0009");
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_CONTINUE);
    ck_assert_str_eq(HOST.attr_get(CTX(c), "client"), "omega");
    sluice_test_req_free(c);
    c = req(g, "x-api-key", "sk-client-beta-00002");
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_CONTINUE);
    sluice_test_req_free(c);
    c = req(g, "x-api-key", "sk-client-beta-00002");
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_RESPOND);
    ck_assert_int_eq(sluice_test_status(c), 429);
    sluice_test_req_free(c);
    gen_done(g);
}
END_TEST

START_TEST(stage_state)
{
    sluice_test_stage *g = gen_with(CLIENTS, NULL);
    sluice_test_req *c = req(g, "x-api-key", "sk-client-beta-00002");
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_CONTINUE);
    sluice_test_req_free(c);

    char *state = NULL;
    ck_assert_int_eq(sluice_test_export_state(g, &state), 0);
    json_t *doc = json_loads(state, 0, NULL);
    ck_assert_ptr_nonnull(doc);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "version")), 1);
    json_t *beta = json_object_get(json_object_get(doc, "clients"), "beta");
    ck_assert_ptr_nonnull(beta);
    json_int_t lvl = json_integer_value(json_object_get(beta, "req"));
    ck_assert_int_ge(lvl, 1000);
    ck_assert_int_lt(lvl, 1100); /* one of two used, a little refill */
    ck_assert_ptr_null(json_object_get(json_object_get(doc, "clients"),
                                       "alpha")); /* no limits: no state */
    ck_assert_ptr_null(strstr(state, "sk-client"));
    json_decref(doc);

    /* a fresh instance takes the state: beta has one request left */
    char cfg[400], err[256];
    snprintf(cfg, sizeof cfg, "{\"clients_file\":\"%s\"}", cpath);
    sluice_test_stage *fresh = sh_gen_new(cfg, err, sizeof err);
    ck_assert_ptr_nonnull(fresh);
    ck_assert_int_eq(sluice_test_import_state(fresh, state, strlen(state)), 0);
    ck_assert_int_eq(sluice_test_import_state(fresh, "{}", 2), -1);
    ck_assert_int_eq(sluice_test_import_state(fresh, "x", 1), -1);
    free(state);
    c = req(fresh, "x-api-key", "sk-client-beta-00002");
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_CONTINUE);
    sluice_test_req_free(c);
    c = req(fresh, "x-api-key", "sk-client-beta-00002");
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_RESPOND);
    sluice_test_req_free(c);
    sluice_test_stage_free(fresh);
    gen_done(g);
}
END_TEST

/* Refusals by reason on /metrics, both phases; no client key in the text
 * (this test runs in its own process: the values start at 0). */
START_TEST(stage_metrics)
{
    sluice_test_stage *g = gen_with(CLIENTS, "\"allow\":[\"10.0.0.0/8\"]");
    const char *hb[] = {"x-api-key", "sk-client-beta-00002", NULL};
    const char *hg[] = {"x-api-key", "sk-client-gamma-0003", NULL};
    const char *hx[] = {"x-api-key", "sk-client-nobody-999", NULL};
    struct {
        const char *const *h;
        const char *body;
        const char *peer;
        sluice_verdict want;
    } v[] = {
        {hb, BODY, "10.0.0.1", SLUICE_CONTINUE},
        {hb, BODY, "10.0.0.1", SLUICE_CONTINUE},
        {hb, BODY, "10.0.0.1", SLUICE_RESPOND},    /* rpm=2 */
        {hx, BODY, "10.0.0.1", SLUICE_RESPOND},    /* unknown key */
        {hb, BODY, "192.168.1.1", SLUICE_RESPOND}, /* not allowed */
        {hg, BODY, "10.0.0.1", SLUICE_RESPOND},    /* model */
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        sluice_test_req *c = sh_ctx_new(g, v[i].body, v[i].h);
        sluice_test_req_peer(c, v[i].peer);
        ck_assert_int_eq(sluice_test_on_request(c), v[i].want);
        sluice_test_req_free(c);
    }
    /* refused in on_attempt: the model a later stage set */
    sluice_test_req *c = sh_ctx_new(g, "{\"messages\":[]}", hg);
    sluice_test_req_peer(c, "10.0.0.1");
    ck_assert_int_eq(sluice_test_on_request(c), SLUICE_CONTINUE);
    ck_assert_int_eq(sluice_test_on_attempt(c), SLUICE_RESPOND);
    sluice_test_on_complete(c);
    sluice_test_req_free(c);

    const char *f = "sluice_auth_rejections_total{reason=\"%s\"}";
    static const struct {
        const char *reason;
        double n;
    } want[] = {{"rate_limited", 1},
                {"invalid_api_key", 1},
                {"ip_not_allowed", 1},
                {"model_not_allowed", 2}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char sample[128];
        snprintf(sample, sizeof sample, f, want[i].reason);
        ck_assert_msg(sluice_test_metric(g, sample) == want[i].n, "%s: %g",
                      sample, sluice_test_metric(g, sample));
    }
    char *text = sluice_test_metrics_text(g);
    ck_assert_ptr_null(strstr(text, "sk-client"));
    free(text);
    gen_done(g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("pure");
    tcase_add_test(tc, sha256_vectors);
    tcase_add_test(tc, ct_equal_cases);
    tcase_add_test(tc, keycache_hits_and_never_mixes_keys);
    tcase_add_test(tc, clients_good);
    tcase_add_test(tc, clients_many);
    tcase_add_test(tc, clients_errors);
    tcase_add_test(tc, cidr_v4);
    tcase_add_test(tc, cidr_v6);
    tcase_add_test(tc, cidr_bad);
    tcase_add_test(tc, bucket_clock);
    tcase_add_test(tc, bucket_fractions_and_unlimited);
    suite_add_tcase(s, tc);
    tc = tcase_create("stage");
    tcase_add_test(tc, stage_keys);
    tcase_add_test(tc, stage_models);
    tcase_add_test(tc, stage_rpm);
    tcase_add_test(tc, stage_tpm);
    tcase_add_test(tc, stage_closed_when_state_unavailable);
    tcase_add_test(tc, stage_window_survives_restart);
    tcase_add_test(tc, stage_metrics);
    tcase_add_test(tc, stage_allow_list);
    tcase_add_test(tc, stage_bad_config);
    tcase_add_test(tc, stage_reload);
    tcase_add_test(tc, stage_state);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
