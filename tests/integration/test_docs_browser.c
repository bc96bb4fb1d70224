/*
 * test_docs_browser.c - a developer opens /docs: headless Chromium loads
 * the Swagger UI page, whose JavaScript and CSS come from the npm package
 * swagger-ui-dist served on loopback (docs.assets_url), renders the
 * operations of /openapi.json, and takes a screenshot into the build's
 * test-output/docs_browser/ folder.
 *
 * Needs the Debian package chromium (scripts/deps.sh --test) and node; the
 * npm package is installed from tests/browser/package-lock.json when its
 * node_modules is missing. Every child is bounded in time and reaped.
 */
#include "browser_util.h"
#include "harness.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define ck_assert_has(hay, needle)                                             \
    ck_assert_msg(strstr((hay), (needle)) != NULL,                             \
                  "expected '%s' in the rendered page (%zu bytes)", (needle),  \
                  strlen(hay))

static pid_t server_pid = -1;

static void setup(void)
{
    h_tmpdir();
}

static void server_stop(void)
{
    if (server_pid <= 0)
        return;
    kill(server_pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(server_pid, NULL, WNOHANG) == server_pid) {
            server_pid = -1;
            return;
        }
        h_sleep_ms(20);
    }
    kill(server_pid, SIGKILL);
    waitpid(server_pid, NULL, 0);
    server_pid = -1;
}

static void teardown(void)
{
    server_stop();
    h_teardown();
}

/* node tests/browser/serve.mjs on a free port; returns the port. */
static int assets_server_start(const char *dir, const char *logpath)
{
    char portfile[300];
    snprintf(portfile, sizeof portfile, "%s/assets.port", h_tmpdir());
    server_pid = fork();
    ck_assert_int_ge(server_pid, 0);
    if (server_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp("node", "node", "tests/browser/serve.mjs", "--dir", dir,
               "--port-file", portfile, "--max-seconds", "300", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        char *t = bu_file_read(portfile);
        int port = t ? atoi(t) : 0;
        free(t);
        if (port > 0)
            return port;
        h_sleep_ms(20);
    }
    ck_abort_msg("the assets server did not start (node missing?)");
    return -1;
}

/* Run headless Chromium on url with one action flag (--dump-dom or
 * --screenshot=...). Returns its stdout+stderr (caller frees). */
static char *chromium_run(const char *action, const char *url)
{
    char profile[300];
    snprintf(profile, sizeof profile, "--user-data-dir=%s/chromium-%d",
             h_tmpdir(), (int)(h_now_ms()) % 100000);
    char *argv[] = {(char *)bu_chromium_bin(),
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--hide-scrollbars",
                    profile,
                    "--window-size=1280,2400",
                    "--virtual-time-budget=20000",
                    (char *)action,
                    (char *)url,
                    NULL};
    char *out = NULL;
    int rc = h_run_capture(argv, 120000, &out);
    ck_assert_msg(rc == 0, "chromium %s exited %d:\n%.2000s", action, rc,
                  out ? out : "");
    return out;
}

START_TEST(test_docs_in_chromium)
{
    ck_assert_msg(bu_chromium_bin() != NULL,
                  "chromium is not installed (scripts/deps.sh --test installs "
                  "the Debian package chromium)");
    bu_npm_ci_unless(
        "tests/browser/node_modules/swagger-ui-dist/swagger-ui-bundle.js");
    char assets[4096], serverlog[300], extra[512];
    ck_assert_ptr_nonnull(
        realpath("tests/browser/node_modules/swagger-ui-dist", assets));
    snprintf(serverlog, sizeof serverlog, "%s/assets.log", h_tmpdir());
    int aport = assets_server_start(assets, serverlog);
    snprintf(extra, sizeof extra,
             "docs:\n  assets_url: \"http://127.0.0.1:%d/assets\"\n", aport);
    h_opts o = {.extra = extra};
    h_start_all(&o);

    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/docs", h_sluice_port());
    char *dom = chromium_run("--dump-dom", url);
    /* Swagger UI rendered the document: its title, and one block per
     * operation, with the paths of the public and admin API */
    ck_assert_has(dom, "swagger-ui");
    ck_assert_has(dom, "opblock");
    ck_assert_has(dom, "sluice");
    static const char *const paths[] = {
        "/v1/chat/completions", "/v1/models",  "/health", "/metrics",
        "/admin/reload",        "/admin/keys", NULL};
    for (size_t i = 0; paths[i]; i++) {
        char needle[128];
        snprintf(needle, sizeof needle, "data-path=\"%s\"", paths[i]);
        ck_assert_has(dom, needle);
    }
    ck_assert_has(dom, "Create a chat completion");
    free(dom);

    /* the assets came from the local server, not a CDN */
    char *log = bu_file_read(serverlog);
    ck_assert_ptr_nonnull(log);
    ck_assert_has(log, "/assets/swagger-ui-bundle.js");
    ck_assert_has(log, "/assets/swagger-ui.css");
    free(log);

    /* a screenshot for people to look at */
    char shot[1100], flag[1200];
    snprintf(shot, sizeof shot, "%s/swagger-ui.png",
             bu_output_dir("docs_browser"));
    unlink(shot);
    snprintf(flag, sizeof flag, "--screenshot=%s", shot);
    free(chromium_run(flag, url));
    bu_assert_png(shot, 10000);
    fprintf(stderr, "docs_browser: screenshot at %s\n", shot);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("docs_browser");
    TCase *tc = tcase_create("chromium");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_docs_in_chromium);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
