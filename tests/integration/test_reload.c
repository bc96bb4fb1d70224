/*
 * test_reload.c - hot reload under live traffic: POST /admin/reload and
 * SIGHUP swap the pipeline while plain and streamed requests keep flowing;
 * every request must succeed, old generations must retire (and their
 * libraries leave the process), broken reloads must change nothing.
 */
#include "harness.h"
#include "itest_util.h"

#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TOKEN "reload-test-admin-token-0123456789"

static char auth_hdr[128];
static char example_so[512];

/* Build the SDK example plugin (out of tree, only sdk/sluice.h) with a
 * compile-time default header value, into `out`. */
static void build_example(const char *value, const char *out)
{
    const char *src = getenv("SLUICE_SRC") ? getenv("SLUICE_SRC") : ".";
    char inc[600], file[600], def[200];
    snprintf(inc, sizeof inc, "-I%s/sdk", src);
    snprintf(file, sizeof file, "%s/sdk/example/example_header.c", src);
    snprintf(def, sizeof def, "-DEXAMPLE_DEFAULT_VALUE=\"%s\"", value);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.new", out);
    char *cc = getenv("SLUICE_CC") ? getenv("SLUICE_CC") : "/usr/bin/cc";
    char *argv[] = {cc,  "-std=c11", "-shared", "-fPIC", inc,
                    def, file,       "-o",      tmp,     NULL};
    char *log = NULL;
    int rc = h_run_capture(argv, 60000, &log);
    ck_assert_msg(rc == 0, "building the example failed: %s", log);
    free(log);
    /* replace atomically, as a deploy would */
    ck_assert_int_eq(rename(tmp, out), 0);
}

static const char *write_token(void)
{
    snprintf(auth_hdr, sizeof auth_hdr, "Authorization: Bearer %s", TOKEN);
    return it_secret_file("admin.token", TOKEN "\n");
}

static char extra_yaml[1024];
static char pipeline_with_example[1024];
static const char pipeline_plain[] =
    "  - plugin: keyring\n    config: { keys_file: \"@KEYS_FILE@\" }\n"
    "  - plugin: sse\n";

static h_opts opts_for(const char *pipeline)
{
    h_opts o = {0};
    o.pipeline = pipeline;
    o.extra = extra_yaml;
    return o;
}

static void start(const char *pipeline)
{
    const char *tok = write_token();
    snprintf(extra_yaml, sizeof extra_yaml, "admin:\n  token_file: \"%s\"\n",
             tok);
    snprintf(example_so, sizeof example_so, "%s/example_header.so", h_tmpdir());
    snprintf(pipeline_with_example, sizeof pipeline_with_example,
             "  - plugin: keyring\n    config: { keys_file: \"@KEYS_FILE@\" }\n"
             "  - plugin: example_header\n    path: \"%s\"\n"
             "    config: { header: X-Generation-Test }\n"
             "  - plugin: sse\n",
             example_so);
    h_opts o = opts_for(pipeline ? pipeline : pipeline_with_example);
    h_start_all(&o);
}

static long admin_reload(char **body)
{
    const char *hdrs[] = {auth_hdr, NULL};
    h_resp r;
    h_request(h_sluice_port(), "POST", "/admin/reload", hdrs, NULL, 0, 30000,
              &r);
    long st = r.status;
    if (body && st == 0) {
        char msg[400];
        snprintf(msg, sizeof msg, "(no response: curl %d %s)", r.curl_code,
                 r.error);
        *body = strdup(msg);
    } else if (body) {
        *body = strdup(r.body ? r.body : "");
    }
    h_resp_free(&r);
    return st;
}

static json_t *admin_pipeline(void)
{
    const char *hdrs[] = {auth_hdr, NULL};
    h_resp r;
    h_request(h_sluice_port(), "GET", "/admin/pipeline", hdrs, NULL, 0, 10000,
              &r);
    ck_assert_int_eq(r.status, 200);
    json_t *j = h_resp_json(&r);
    h_resp_free(&r);
    ck_assert_ptr_nonnull(j);
    return j;
}

static long current_generation(void)
{
    json_t *p = admin_pipeline();
    long g = (long)json_integer_value(json_object_get(p, "generation"));
    json_decref(p);
    return g;
}

/* Wait (bounded) until only the current generation is alive. */
static size_t wait_single_generation(void)
{
    size_t n = 0;
    for (int i = 0; i < 100; i++) {
        json_t *p = admin_pipeline();
        n = json_array_size(json_object_get(p, "live"));
        json_decref(p);
        if (n == 1)
            break;
        h_sleep_ms(100);
    }
    return n;
}

/* Private plugin copies still mapped in the gateway. */
static int mapped_copies(void)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)h_sluice_pid());
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char seen[64][256];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        /* the state file's shared memory (state.db-shm) is no plugin */
        if (!strstr(line, "/sluice-") || strstr(line, "/state.db"))
            continue;
        char *p = strchr(line, '/'); /* the path: addresses hold no '/' */
        line[strcspn(line, "\n")] = '\0';
        char *del = strstr(p, " (deleted)");
        if (del)
            *del = '\0';
        int dup = 0;
        for (int i = 0; i < n; i++)
            dup |= !strcmp(seen[i], p);
        if (!dup && n < 64)
            snprintf(seen[n++], sizeof seen[0], "%s", p);
    }
    fclose(f);
    return n;
}

/* ---- load --------------------------------------------------------------- */

struct load {
    atomic_int stop;
    atomic_int ok, failed, streams;
    char last_error[256];
};

static void *load_main(void *arg)
{
    struct load *L = arg;
    static const char plain[] =
        "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\","
        "\"content\":\"hi\"}]}";
    static const char stream[] =
        "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{\"role\":"
        "\"user\",\"content\":\"hi\"}]}";
    for (int i = 0; i < 100000 && !atomic_load(&L->stop); i++) {
        int ok;
        if (i % 3 == 2) {
            h_stream s;
            h_stream_request(h_sluice_port(), "POST", "/v1/chat/completions",
                             NULL, stream, strlen(stream), 20000, 0, 0, &s);
            ok = s.resp.status == 200 && h_stream_has_done(&s) &&
                 h_stream_data_events(&s) >= 1;
            if (!ok)
                snprintf(L->last_error, sizeof L->last_error,
                         "stream: status %ld curl %d events %zu", s.resp.status,
                         s.resp.curl_code, s.nevents);
            h_stream_free(&s);
            atomic_fetch_add(&L->streams, 1);
        } else {
            h_resp r;
            h_request(h_sluice_port(), "POST", "/v1/chat/completions", NULL,
                      plain, strlen(plain), 20000, &r);
            ok = r.status == 200 && r.body && strstr(r.body, "choices");
            if (!ok)
                snprintf(L->last_error, sizeof L->last_error,
                         "plain: status %ld curl %d", r.status, r.curl_code);
            h_resp_free(&r);
        }
        atomic_fetch_add(ok ? &L->ok : &L->failed, 1);
    }
    return NULL;
}

START_TEST(reload_20_times_under_load_loses_nothing)
{
    snprintf(example_so, sizeof example_so, "%s/example_header.so", h_tmpdir());
    build_example("v1", example_so);
    start(NULL);
    ck_assert_int_eq(h_mock_script("{\"rules\":[{\"times\":0,\"match\":"
                                   "{\"stream\":true},\"stream\":{\"chunks\":"
                                   "5,\"delay_ms\":20}}]}"),
                     0);
    struct load L = {0};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, load_main, &L);
    long g0 = current_generation();
    for (int i = 0; i < 20; i++) {
        char *body = NULL;
        long st = admin_reload(&body);
        ck_assert_msg(st == 200, "reload %d: %ld %s", i, st, body);
        free(body);
        if (i == 10) {
            /* same path, by signal; the signal's reload runs on its own, so
             * wait for its generation before the next admin reload (one
             * sent while it runs is refused with 409, rightly) */
            long g = current_generation();
            kill(h_sluice_pid(), SIGHUP);
            for (int t = 0; t < 500 && current_generation() == g; t++)
                h_sleep_ms(20);
        }
        h_sleep_ms(50);
    }
    h_sleep_ms(300);
    atomic_store(&L.stop, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    ck_assert_msg(atomic_load(&L.failed) == 0, "%d of %d requests failed: %s",
                  atomic_load(&L.failed),
                  atomic_load(&L.ok) + atomic_load(&L.failed), L.last_error);
    ck_assert_int_gt(atomic_load(&L.ok), 40);
    ck_assert_int_gt(atomic_load(&L.streams), 5);
    ck_assert_int_ge(current_generation(), g0 + 20);
    ck_assert_int_eq(wait_single_generation(), 1);
    /* only the current generation's three stage libraries remain mapped */
    ck_assert_int_eq(mapped_copies(), 3);
    /* the mock saw every request the load made */
    ck_assert_int_ge(h_mock_request_count(), atomic_load(&L.ok));
}
END_TEST

struct sarg {
    h_stream *s;
    const char *body;
};

static void *stream_main(void *p)
{
    struct sarg *sa = p;
    h_stream_request(h_sluice_port(), "POST", "/v1/chat/completions", NULL,
                     sa->body, strlen(sa->body), 20000, 0, 0, sa->s);
    return NULL;
}

START_TEST(rebuilt_so_changes_new_requests_not_old_streams)
{
    snprintf(example_so, sizeof example_so, "%s/example_header.so", h_tmpdir());
    build_example("v1", example_so);
    start(NULL);
    /* a slow stream that starts on generation 1 */
    ck_assert_int_eq(h_mock_script("{\"rules\":[{\"stream\":{\"chunks\":10,"
                                   "\"delay_ms\":150}}]}"),
                     0);
    h_stream s;
    pthread_t t;
    static const char stream[] =
        "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[]}";
    struct sarg sa = {&s, stream};
    pthread_create(&t, NULL, stream_main, &sa);
    h_sleep_ms(400); /* the stream is under way */

    build_example("v2", example_so);
    char *body = NULL;
    ck_assert_msg(admin_reload(&body) == 200, "%s", body);
    free(body);

    h_resp r;
    h_post_json("/v1/chat/completions",
                "{\"model\":\"gpt-4o-mini\","
                "\"messages\":[]}",
                &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(h_resp_header(&r, "X-Generation-Test"), "v2");
    h_resp_free(&r);

    pthread_join(t, NULL);
    ck_assert_int_eq(s.resp.status, 200);
    ck_assert_str_eq(h_resp_header(&s.resp, "X-Generation-Test"), "v1");
    ck_assert_uint_eq(h_stream_data_events(&s), 10);
    ck_assert(h_stream_has_done(&s));
    h_stream_free(&s);
    ck_assert_int_eq(wait_single_generation(), 1);
}
END_TEST

START_TEST(stages_added_and_removed)
{
    snprintf(example_so, sizeof example_so, "%s/example_header.so", h_tmpdir());
    build_example("added", example_so);
    start(pipeline_plain);
    h_resp r;
    h_post_json("/v1/chat/completions", "{\"messages\":[]}", &r);
    ck_assert_ptr_null(h_resp_header(&r, "X-Generation-Test"));
    h_resp_free(&r);

    h_opts o = opts_for(pipeline_with_example);
    ck_assert_int_eq(h_write_config(h_config_path(), &o, h_sluice_port()), 0);
    ck_assert_int_eq(admin_reload(NULL), 200);
    h_post_json("/v1/chat/completions", "{\"messages\":[]}", &r);
    ck_assert_str_eq(h_resp_header(&r, "X-Generation-Test"), "added");
    h_resp_free(&r);

    o = opts_for(pipeline_plain);
    ck_assert_int_eq(h_write_config(h_config_path(), &o, h_sluice_port()), 0);
    ck_assert_int_eq(admin_reload(NULL), 200);
    h_post_json("/v1/chat/completions", "{\"messages\":[]}", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_null(h_resp_header(&r, "X-Generation-Test"));
    h_resp_free(&r);
    ck_assert_int_eq(wait_single_generation(), 1);
    ck_assert_int_eq(mapped_copies(), 2);
}
END_TEST

/* Each broken pipeline: 422 naming what is wrong, nothing changes. */
static void broken_reload(const char *pipeline, const char *raw_yaml,
                          const char *expect1, const char *expect2)
{
    long g = current_generation();
    if (raw_yaml) {
        FILE *f = fopen(h_config_path(), "w");
        fputs(raw_yaml, f);
        fclose(f);
    } else {
        h_opts o = opts_for(pipeline);
        ck_assert_int_eq(h_write_config(h_config_path(), &o, h_sluice_port()),
                         0);
    }
    char *body = NULL;
    long st = admin_reload(&body);
    ck_assert_msg(st == 422, "expected 422, got %ld: %s", st, body);
    ck_assert_msg(strstr(body, expect1) && strstr(body, expect2),
                  "reply lacks '%s'/'%s': %s", expect1, expect2, body);
    json_error_t je;
    json_t *j = json_loads(body, 0, &je);
    h_assert_openai_error(j, "broken reload");
    json_decref(j);
    free(body);
    ck_assert_int_eq(current_generation(), g);
    h_resp r;
    h_post_json("/v1/chat/completions", "{\"messages\":[]}", &r);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
}

START_TEST(broken_reloads_change_nothing)
{
    start(pipeline_plain);
    char p[2048];
    const char *fx =
        getenv("FIXTURES_DIR") ? getenv("FIXTURES_DIR") : "build/test-plugins";
    broken_reload(NULL, "server: { port: [oops\n", "sluice.yaml:2", "YAML");
    broken_reload("  - plugin: ghoststage\n", NULL, "ghoststage",
                  "ghoststage.so");
    snprintf(p, sizeof p, "  - plugin: nosym\n    path: \"%s/nosymbol.so\"\n",
             fx);
    broken_reload(p, NULL, "nosym", "sluice_plugin_entry");
    snprintf(p, sizeof p,
             "  - plugin: wrongabi\n    path: \"%s/wrong_abi.so\"\n", fx);
    broken_reload(p, NULL, "wrongabi", "ABI");
    broken_reload("  - plugin: keyring\n    config: { keys_file: "
                  "\"/nonexistent/keys.txt\" }\n",
                  NULL, "keyring", "/nonexistent/keys.txt");
    ck_assert_int_eq(wait_single_generation(), 1);
}
END_TEST

START_TEST(reload_needs_the_admin_token)
{
    start(pipeline_plain);
    h_resp r;
    h_request(h_sluice_port(), "POST", "/admin/reload", NULL, NULL, 0, 10000,
              &r);
    ck_assert_int_eq(r.status, 401);
    h_resp_free(&r);
    const char *bad[] = {"Authorization: Bearer wrong-token-0123456789", NULL};
    h_request(h_sluice_port(), "POST", "/admin/reload", bad, NULL, 0, 10000,
              &r);
    ck_assert_int_eq(r.status, 401);
    h_resp_free(&r);
    const char *hdrs[] = {auth_hdr, NULL};
    static const char cfgbody[] = "{\"config\":\"/etc/passwd\"}";
    h_request(h_sluice_port(), "POST", "/admin/reload", hdrs, cfgbody,
              strlen(cfgbody), 10000, &r);
    ck_assert_int_eq(r.status, 403); /* allow_config_path is off */
    h_resp_free(&r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("reload");
    TCase *tc = tcase_create("reload");
    tcase_set_timeout(tc, 180);
    tcase_add_checked_fixture(tc, NULL, h_teardown);
    tcase_add_test(tc, reload_20_times_under_load_loses_nothing);
    tcase_add_test(tc, rebuilt_so_changes_new_requests_not_old_streams);
    tcase_add_test(tc, stages_added_and_removed);
    tcase_add_test(tc, broken_reloads_change_nothing);
    tcase_add_test(tc, reload_needs_the_admin_token);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
