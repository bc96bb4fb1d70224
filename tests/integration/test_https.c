/*
 * test_https.c - https:// upstreams: the real sluice in front of the mock
 * upstream's TLS port (mock_upstream --tls-cert/--tls-key).
 *
 * The certificates are made at run time with the openssl command line (no
 * private key is committed to the repository): a test CA that signs the
 * mock's certificate for 127.0.0.1, and a second, unrelated CA. Without
 * openssl the test prints SKIP and exits 77 (CTest's skip code).
 *
 * Asserted: a request through the TLS port with upstream.ca_file = the test
 * CA works and reaches the mock; sequential requests reuse one TLS
 * connection; the wrong CA, and the system store by default (verify is on
 * unless the file says otherwise), get a 502 naming a certificate problem
 * and the mock sees no request; `verify: false` passes and is logged as a
 * WARNING at start; an `upstreams:` entry's own ca_file is used, and one
 * without takes upstream.ca_file; the keyring's probe of a failed key goes
 * with the entry's own ca_file too; a ca_file that cannot be opened is a
 * config error naming the file, line and field.
 */
#include "itest_util.h"

#include <check.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char certdir[256];
static char ca_pem[320], other_ca_pem[320], srv_pem[320], srv_key[320];

static void setup(void)
{
    h_tmpdir();
}

static void teardown(void)
{
    h_teardown();
}

/* Run one openssl command line (through sh, in certdir); 0 on success. */
static int openssl_run(const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd '%s' && openssl %s >>openssl.log 2>&1",
             certdir, args);
    return system(cmd) == 0 ? 0 : -1;
}

/* The test CA, the mock's certificate signed by it (for IP 127.0.0.1),
 * and an unrelated CA. 0 on success. */
static int make_certs(void)
{
    snprintf(certdir, sizeof certdir, "/tmp/sluice-https-XXXXXX");
    if (!mkdtemp(certdir))
        return -1;
    snprintf(ca_pem, sizeof ca_pem, "%s/ca.pem", certdir);
    snprintf(other_ca_pem, sizeof other_ca_pem, "%s/other-ca.pem", certdir);
    snprintf(srv_pem, sizeof srv_pem, "%s/server.pem", certdir);
    snprintf(srv_key, sizeof srv_key, "%s/server.key", certdir);
    char ext[320];
    snprintf(ext, sizeof ext, "%s/san.ext", certdir);
    FILE *f = fopen(ext, "w");
    if (!f)
        return -1;
    fputs("subjectAltName=IP:127.0.0.1,DNS:localhost\n", f);
    fclose(f);
    return openssl_run("req -x509 -newkey rsa:2048 -nodes -days 2 "
                       "-subj '/CN=sluice test CA' -keyout ca.key "
                       "-out ca.pem") ||
                   openssl_run("req -x509 -newkey rsa:2048 -nodes -days 2 "
                               "-subj '/CN=sluice other CA' "
                               "-keyout other-ca.key -out other-ca.pem") ||
                   openssl_run("req -newkey rsa:2048 -nodes "
                               "-subj '/CN=127.0.0.1' -keyout server.key "
                               "-out server.csr") ||
                   openssl_run("x509 -req -in server.csr -CA ca.pem "
                               "-CAkey ca.key -CAcreateserial -days 2 "
                               "-extfile san.ext -out server.pem")
               ? -1
               : 0;
}

static void remove_certs(void)
{
    char cmd[320];
    if (!certdir[0])
        return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", certdir);
    if (system(cmd) != 0)
        fprintf(stderr, "test_https: could not remove %s\n", certdir);
}

/* Mock with its TLS port, sluice with base_url on it (one worker: one
 * connection pool) and `upstream_extra` lines. */
static void start_tls(const char *upstream_extra)
{
    char base[128];
    int tls_port = h_start_mock_tls(srv_pem, srv_key);
    snprintf(base, sizeof base, "https://127.0.0.1:%d/v1", tls_port);
    h_opts o = {
        .threads = 1, .base_url = base, .upstream_extra = upstream_extra};
    h_start_sluice(&o);
}

static char *ca_line(const char *path)
{
    static char line[400];
    snprintf(line, sizeof line, "  ca_file: \"%s\"\n", path);
    return line;
}

/* A request through the TLS port works; three more, one at a time, go
 * over the same TLS connection (the mock's records name the connection). */
START_TEST(test_ca_file_works_and_reuses_connection)
{
    start_tls(ca_line(ca_pem));
    for (int i = 0; i < 4; i++) {
        h_resp r;
        h_post_json(CHAT, OK_BODY, &r);
        ck_assert_msg(r.curl_code == 0 && r.status == 200,
                      "request %d through https: status %ld: %s", i, r.status,
                      it_show(&r));
        json_t *doc = h_resp_json(&r);
        const char *obj = json_string_value(json_object_get(doc, "object"));
        ck_assert_msg(obj && !strcmp(obj, "chat.completion"),
                      "request %d: not a completion: %s", i, it_show(&r));
        json_decref(doc);
        h_resp_free(&r);
    }
    json_t *reqs = h_mock_requests();
    ck_assert_msg(reqs && json_array_size(reqs) == 4,
                  "the mock should have seen 4 requests, saw %zu",
                  reqs ? json_array_size(reqs) : 0);
    json_int_t conn = -1;
    for (size_t i = 0; i < 4; i++) {
        json_t *rec = json_array_get(reqs, i);
        const char *auth = h_rec_header(rec, "authorization");
        /* the keyring's round robin over the two test keys */
        ck_assert_msg(auth && !strncmp(auth, "Bearer sk-test-key-", 19),
                      "record %zu: the upstream key did not arrive", i);
        json_int_t c = json_integer_value(json_object_get(rec, "conn_id"));
        ck_assert_msg(i == 0 || c == conn,
                      "request %zu came on TLS connection %lld, the first "
                      "on %lld: keep-alive not reused",
                      i, (long long)c, (long long)conn);
        conn = c;
    }
    json_decref(reqs);
    long opened = h_mock_stat("tls_connections_opened");
    ck_assert_msg(opened == 1,
                  "4 sequential requests opened %ld TLS connections, "
                  "expected 1",
                  opened);
}
END_TEST

/* 1 if a line of sluice's log holds both a and b (within 10 s). */
static int log_has(const char *a, const char *b)
{
    char *line = h_log_wait(a, b, 10000);
    free(line);
    return line != NULL;
}

static void assert_cert_refused(const char *what)
{
    h_resp r;
    h_post_json(CHAT, OK_BODY, &r);
    it_assert_error(&r, 502, "upstream_certificate", what);
    ck_assert_msg(strstr(it_show(&r), "certificate"),
                  "%s: the message should name a certificate problem: %s", what,
                  it_show(&r));
    h_resp_free(&r);
    it_assert_mock_saw(0, what);
}

START_TEST(test_wrong_ca_is_refused)
{
    start_tls(ca_line(other_ca_pem));
    assert_cert_refused("ca_file = an unrelated CA");
    ck_assert_msg(log_has("certificate", "WARN"),
                  "the log should say why the upstream was refused");
}
END_TEST

/* No ca_file: the system's store, which does not hold the test CA. */
START_TEST(test_verify_is_on_by_default)
{
    start_tls(NULL);
    assert_cert_refused("no ca_file, verify by default");
}
END_TEST

/* verify: false is honoured, and said at start. */
START_TEST(test_verify_false_passes_with_warning)
{
    start_tls("  verify: false\n");
    h_resp r;
    h_post_json(CHAT, OK_BODY, &r);
    ck_assert_msg(r.curl_code == 0 && r.status == 200,
                  "verify: false: status %ld: %s", r.status, it_show(&r));
    h_resp_free(&r);
    it_assert_mock_saw(1, "verify: false");
    ck_assert_msg(log_has("verify is false", "WARN"),
                  "no WARNING at start about upstream.verify: false");
}
END_TEST

/* Mock with its TLS port and sluice with one `upstreams:` entry on it:
 * upstream.ca_file = up_ca, the entry's ca_file = entry_ca (NULL: none). */
static const char *listed_pipeline; /* NULL: the harness's */

static void start_listed(const char *up_ca, const char *entry_ca)
{
    static char extra[1200], up_extra[400], entry[400];
    int tls_port = h_start_mock_tls(srv_pem, srv_key);
    snprintf(up_extra, sizeof up_extra, "  ca_file: \"%s\"\n", up_ca);
    snprintf(entry, sizeof entry, "    ca_file: \"%s\"\n",
             entry_ca ? entry_ca : "");
    snprintf(extra, sizeof extra,
             "upstreams:\n"
             "  - name: listed\n"
             "    base_url: \"https://127.0.0.1:%d/v1\"\n"
             "%s",
             tls_port, entry_ca ? entry : "");
    h_opts o = {.threads = 1,
                .base_url = "",
                .upstream_extra = up_extra,
                .extra = extra,
                .pipeline = listed_pipeline};
    h_start_sluice(&o);
}

static void assert_passes(const char *what)
{
    h_resp r;
    h_post_json(CHAT, OK_BODY, &r);
    ck_assert_msg(r.curl_code == 0 && r.status == 200, "%s: status %ld: %s",
                  what, r.status, it_show(&r));
    h_resp_free(&r);
    it_assert_mock_saw(1, what);
}

/* An `upstreams:` entry's own ca_file wins over upstream.ca_file (here an
 * unrelated CA, which would refuse the mock's certificate). */
START_TEST(test_upstreams_entry_ca_file)
{
    start_listed(other_ca_pem, ca_pem);
    assert_passes("the entry's own ca_file");
}
END_TEST

/* An entry without ca_file takes upstream.ca_file (the system store would
 * refuse the test CA: a 200 means it did). */
START_TEST(test_upstreams_entry_inherits_ca_file)
{
    start_listed(ca_pem, NULL);
    assert_passes("the entry taking upstream.ca_file");
}
END_TEST

/* The state word of upstream "listed" in /health ("" if absent). */
static void listed_state(char *out, size_t n)
{
    static const char needle[] = "\"listed\":{\"state\":\"";
    h_resp r;
    h_get("/health", &r);
    const char *p = r.body ? strstr(r.body, needle) : NULL;
    snprintf(out, n, "%.*s", p ? (int)strcspn(p + sizeof needle - 1, "\"") : 0,
             p ? p + sizeof needle - 1 : "");
    h_resp_free(&r);
}

/* The keyring's probe of a failed key goes over TLS with the upstream's
 * own ca_file (upstream.ca_file, an unrelated CA, would refuse it): the
 * key comes back, and the mock saw the probe with that key. */
START_TEST(test_probe_uses_the_upstreams_ca_file)
{
    listed_pipeline = "  - plugin: keyring\n"
                      "    config: { keys_file: \"@KEYS_FILE@\", "
                      "probe_interval_s: 1 }\n"
                      "  - plugin: retry\n"
                      "  - plugin: sse\n";
    start_listed(other_ca_pem, ca_pem);
    ck_assert_int_eq(
        h_mock_script("{\"match\":{\"auth\":\"Bearer sk-test-key-2\","
                      "\"method\":\"POST\"},\"times\":1,\"status\":401}"),
        0);
    for (int i = 0; i < 2; i++) { /* key 1; key 2 refused, then key 1 */
        h_resp r;
        h_post_json(CHAT, OK_BODY, &r);
        ck_assert_msg(r.curl_code == 0 && r.status == 200, "%d: %ld %s", i,
                      r.status, it_show(&r));
        h_resp_free(&r);
    }
    char st[32];
    listed_state(st, sizeof st);
    ck_assert_msg(!strcmp(st, "degraded"), "listed: %s", st);
    for (double until = h_now_ms() + 15000; h_now_ms() < until;) {
        listed_state(st, sizeof st); /* /health starts the probe */
        if (!strcmp(st, "ok"))
            break;
        h_sleep_ms(100);
    }
    ck_assert_msg(!strcmp(st, "ok"), "the refused key never came back: %s", st);
    json_t *reqs = h_mock_requests();
    int probes = 0;
    for (size_t i = 0; i < json_array_size(reqs); i++) {
        json_t *rec = json_array_get(reqs, i);
        if (strcmp(h_rec_str(rec, "method"), "GET"))
            continue;
        ck_assert_str_eq(h_rec_str(rec, "path"), "/v1/models");
        ck_assert_str_eq(h_rec_header(rec, "authorization"),
                         "Bearer sk-test-key-2");
        probes++;
    }
    json_decref(reqs);
    ck_assert_int_ge(probes, 1);
}
END_TEST

/* A ca_file that cannot be opened fails the config, with file:line. */
START_TEST(test_missing_ca_file_is_config_error)
{
    char cfg[400];
    snprintf(cfg, sizeof cfg, "%s/bad-ca.yaml", h_tmpdir());
    h_opts o = {.base_url = "https://127.0.0.1:1/v1",
                .upstream_extra = "  ca_file: \"/nonexistent/ca.pem\"\n"};
    ck_assert(h_write_config(cfg, &o, 8000) == 0);
    char *out = NULL;
    char *argv[] = {(char *)getenv("SLUICE_BIN"), "--check", "-c", cfg, NULL};
    ck_assert(argv[0] != NULL);
    int rc = h_run_capture(argv, 10000, &out);
    ck_assert_msg(rc != 0, "--check accepted a missing ca_file:\n%s", out);
    ck_assert_msg(out && strstr(out, "bad-ca.yaml:") &&
                      strstr(out, "upstream.ca_file") &&
                      strstr(out, "/nonexistent/ca.pem"),
                  "the error should name the file, line, field and path:\n%s",
                  out ? out : "");
    free(out);
}
END_TEST

static void add(Suite *s, const char *name, const TTest *t)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t);
    suite_add_tcase(s, tc);
}

int main(void)
{
    if (system("openssl version >/dev/null 2>&1") != 0) {
        printf("SKIP: the openssl command is missing (scripts/deps.sh "
               "--test installs it); it makes the test certificates\n");
        return 77;
    }
    if (make_certs() != 0) {
        fprintf(stderr,
                "test_https: could not make the test certificates "
                "(see %s/openssl.log)\n",
                certdir);
        return 1;
    }
    curl_global_init(CURL_GLOBAL_ALL);
    Suite *s = suite_create("integration/https");
    add(s, "ca_file_works_and_reuses_connection",
        test_ca_file_works_and_reuses_connection);
    add(s, "wrong_ca_is_refused", test_wrong_ca_is_refused);
    add(s, "verify_is_on_by_default", test_verify_is_on_by_default);
    add(s, "verify_false_passes_with_warning",
        test_verify_false_passes_with_warning);
    add(s, "upstreams_entry_ca_file", test_upstreams_entry_ca_file);
    add(s, "upstreams_entry_inherits_ca_file",
        test_upstreams_entry_inherits_ca_file);
    add(s, "probe_uses_the_upstreams_ca_file",
        test_probe_uses_the_upstreams_ca_file);
    add(s, "missing_ca_file_is_config_error",
        test_missing_ca_file_is_config_error);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    remove_certs();
    curl_global_cleanup();
    return failed ? 1 : 0;
}
