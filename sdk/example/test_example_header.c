/*
 * test_example_header.c - unit test of the example stage with the SDK's
 * stage test host (sluice_test.h, libsluice_test.so): no server, no socket,
 * no mock upstream. Built and run out of tree:
 *
 *   make test SLUICE_LIB=/path/to/dir/of/libsluice_test.so
 *
 * Plain C and assert-free checks (a failed check prints and exits 1), so it
 * needs no test framework.
 */
#include "sluice_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);               \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            failures++;                                                        \
        }                                                                      \
    } while (0)

#define BODY                                                                   \
    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"

int main(int argc, char **argv)
{
    const char *so = argc > 1 ? argv[1] : "./example_header.so";
    char err[512];

    /* a bad config is refused by init, with the field named */
    sluice_test_stage *bad =
        sluice_test_stage_load(so, "{ header: [X-A, X-B] }", err, sizeof err);
    CHECK(bad == NULL, "init accepted a list as header");
    CHECK(strstr(err, "config.header") != NULL, "error: %s", err);

    /* YAML config, as in a pipeline file */
    sluice_test_stage *st = sluice_test_stage_load(
        so, "header: X-Test\nvalue: hello\n", err, sizeof err);
    if (!st) {
        fprintf(stderr, "FAIL: load: %s\n", err);
        return 1;
    }

    /* a plain request: the header lands on the response the client gets */
    sluice_test_req *r = sluice_test_req_new(st, BODY);
    CHECK(sluice_test_on_request(r) == SLUICE_CONTINUE, "on_request");
    CHECK(sluice_test_on_attempt(r) == SLUICE_CONTINUE, "on_attempt");
    const char *hdrs[] = {"Content-Type", "application/json", NULL};
    sluice_test_upstream(r, SLUICE_ATTEMPT_HTTP, 200, hdrs, "{}");
    CHECK(sluice_test_on_response(r) == SLUICE_CONTINUE, "on_response");
    const char *v = sluice_test_header(r, "X-Test");
    CHECK(v && !strcmp(v, "hello"), "X-Test: %s", v ? v : "(absent)");
    CHECK(sluice_test_status(r) == 0, "the stage answered itself");
    CHECK(sluice_test_metric(st, "sluice_example_in_progress") == 1,
          "in progress during the request");
    sluice_test_on_complete(r);
    sluice_test_req_free(r);

    /* a body that is not JSON: on_complete without on_request */
    r = sluice_test_req_new(st, "not json");
    sluice_test_on_complete(r);
    sluice_test_req_free(r);

    /* the metrics the stage published, as /metrics shows them */
    CHECK(sluice_test_metric(
              st, "sluice_example_requests_total{stream=\"false\"}") == 1,
          "requests_total");
    CHECK(sluice_test_metric(st, "sluice_example_attempts_count") == 1,
          "one request observed (not the non-JSON one)");
    CHECK(sluice_test_metric(st, "sluice_example_in_progress") == 0,
          "in progress after");

    /* its /health status object */
    char *status = NULL;
    CHECK(sluice_test_stage_status(st, &status) == 0, "status");
    CHECK(status && strstr(status, "X-Test"), "status: %s",
          status ? status : "(none)");
    free(status);

    sluice_test_stage_free(st);
    if (failures) {
        fprintf(stderr, "test_example_header: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_example_header: all checks passed\n");
    return 0;
}
