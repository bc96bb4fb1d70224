/*
 * test_pipeline.c - the pipeline runner's verdict handling: phase order,
 * RESPOND / ERROR / RETRY folding, the on_chunk chain, on_complete once,
 * per-stage request slots, and init failures. Stages are descriptors in
 * this file (no dlopen); the context is built without a server.
 */
#include "pipeline.h"
#include "request.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static const sluice_host *H;
static char trace[256];
static sluice_verdict verdict[3][5]; /* [stage][phase] */

enum { P_REQ, P_ATT, P_RESP, P_CHUNK, P_DONE };

static void note(int stage, char phase)
{
    size_t n = strlen(trace);
    if (n + 3 < sizeof trace) {
        trace[n] = (char)('0' + stage);
        trace[n + 1] = phase;
        trace[n + 2] = '\0';
    }
}

static int st_init(const sluice_host *host, sluice_stage *self,
                   const sluice_json *cfg, void **inst, char *err,
                   size_t errlen)
{
    int fail = 0;
    H = host;
    if (host->cfg_bool(cfg, "fail", 0, &fail) != 0 || fail) {
        snprintf(err, errlen, "fail requested");
        return -1;
    }
    *inst = (void *)host->stage_name(self);
    return 0;
}

static int idx(void *inst)
{
    return ((const char *)inst)[1] - '0';
}

static sluice_verdict st_req(void *inst, sluice_ctx *ctx)
{
    int i = idx(inst);
    note(i, 'q');
    if (verdict[i][P_REQ] == SLUICE_RESPOND)
        H->respond_error(ctx, 418, "teapot", "short_and_stout", NULL, "no");
    return verdict[i][P_REQ];
}

static sluice_verdict st_att(void *inst, sluice_ctx *ctx)
{
    int i = idx(inst);
    note(i, 'a');
    H->local_set(ctx, (void *)(intptr_t)(100 + i));
    return verdict[i][P_ATT];
}

static sluice_verdict st_resp(void *inst, sluice_ctx *ctx)
{
    int i = idx(inst);
    note(i, 'r');
    ck_assert_ptr_eq(H->local_get(ctx), (void *)(intptr_t)(100 + i));
    if (verdict[i][P_RESP] == SLUICE_RETRY)
        H->retry_after_ms(ctx, 250);
    return verdict[i][P_RESP];
}

static sluice_verdict st_chunk_upper(void *inst, sluice_ctx *ctx, const char *d,
                                     size_t n)
{
    char buf[64];
    note(idx(inst), 'c');
    for (size_t i = 0; i < n && i < sizeof buf; i++)
        buf[i] = (char)(d[i] >= 'a' && d[i] <= 'z' ? d[i] - 32 : d[i]);
    return H->chunk_forward(ctx, buf, n) == 0 ? SLUICE_CONTINUE : SLUICE_ERROR;
}

static sluice_verdict st_chunk_twice(void *inst, sluice_ctx *ctx, const char *d,
                                     size_t n)
{
    note(idx(inst), 'c');
    H->chunk_forward(ctx, d, n);
    H->chunk_forward(ctx, d, n);
    return SLUICE_CONTINUE;
}

static void st_done(void *inst, sluice_ctx *ctx)
{
    note(idx(inst), 'd');
}

#define DESC(var, nm, chunk)                                                   \
    static const sluice_plugin var = {                                         \
        .abi_major = SLUICE_ABI_MAJOR,                                         \
        .abi_minor = SLUICE_ABI_MINOR,                                         \
        .size = sizeof(sluice_plugin),                                         \
        .name = nm,                                                            \
        .version = "1",                                                        \
        .init = st_init,                                                       \
        .on_request = st_req,                                                  \
        .on_attempt = st_att,                                                  \
        .on_response = st_resp,                                                \
        .on_chunk = chunk,                                                     \
        .on_complete = st_done,                                                \
    }

DESC(d0, "s0", st_chunk_upper);
DESC(d1, "s1", NULL);
DESC(d2, "s2", st_chunk_twice);

static struct generation *gen;
static struct sluice_ctx *ctx;

static void setup(void)
{
    const sluice_plugin *descs[] = {&d0, &d1, &d2};
    char err[256];
    memset(verdict, 0, sizeof verdict);
    trace[0] = '\0';
    gen = generation_from_descs(descs, NULL, 3, err, sizeof err);
    ck_assert_msg(gen != NULL, "%s", err);
    ctx = request_alloc(3);
    ck_assert_ptr_nonnull(ctx);
    ctx->gen = gen;
    ctx->cur_stage = ctx->chunk_stage = -1;
}

static void teardown(void)
{
    request_free(ctx); /* unpins gen */
}

START_TEST(all_continue_runs_in_order)
{
    ck_assert_int_eq(pipeline_on_request(ctx), SLUICE_CONTINUE);
    ck_assert_int_eq(pipeline_on_attempt(ctx), SLUICE_CONTINUE);
    ck_assert_int_eq(pipeline_on_response(ctx), SLUICE_CONTINUE);
    ck_assert_str_eq(trace, "0q1q2q0a1a2a0r1r2r");
    ck_assert_int_eq(ctx->out_status, 0);
}
END_TEST

START_TEST(respond_stops_the_phase)
{
    verdict[1][P_REQ] = SLUICE_RESPOND;
    ck_assert_int_eq(pipeline_on_request(ctx), SLUICE_RESPOND);
    ck_assert_str_eq(trace, "0q1q");
    ck_assert_int_eq(ctx->out_status, 418);
    ck_assert_ptr_nonnull(strstr(ctx->out_body.data, "\"short_and_stout\""));
}
END_TEST

START_TEST(respond_without_response_is_500)
{
    verdict[0][P_ATT] = SLUICE_RESPOND;
    ck_assert_int_eq(pipeline_on_attempt(ctx), SLUICE_RESPOND);
    ck_assert_str_eq(trace, "0a");
    ck_assert_int_eq(ctx->out_status, 500);
}
END_TEST

START_TEST(error_is_500_openai_shaped)
{
    verdict[0][P_REQ] = SLUICE_ERROR;
    ck_assert_int_eq(pipeline_on_request(ctx), SLUICE_ERROR);
    ck_assert_str_eq(trace, "0q");
    ck_assert_int_eq(ctx->out_status, 500);
    ck_assert_ptr_nonnull(strstr(ctx->out_body.data, "{\"error\":{"));
    ck_assert_ptr_nonnull(strstr(ctx->out_body.data, "\"type\":"));
}
END_TEST

START_TEST(retry_outside_on_response_is_error)
{
    verdict[2][P_REQ] = SLUICE_RETRY;
    ck_assert_int_eq(pipeline_on_request(ctx), SLUICE_ERROR);
    ck_assert_int_eq(ctx->out_status, 500);
}
END_TEST

START_TEST(retry_is_sticky_and_all_stages_see_the_response)
{
    pipeline_on_attempt(ctx);
    trace[0] = '\0';
    verdict[0][P_RESP] = SLUICE_RETRY;
    ck_assert_int_eq(pipeline_on_response(ctx), SLUICE_RETRY);
    ck_assert_str_eq(trace, "0r1r2r");
    ck_assert_uint_eq(ctx->retry_ms, 250);
}
END_TEST

START_TEST(respond_beats_retry)
{
    pipeline_on_attempt(ctx);
    verdict[0][P_RESP] = SLUICE_RETRY;
    verdict[1][P_RESP] = SLUICE_RESPOND;
    ck_assert_int_eq(pipeline_on_response(ctx), SLUICE_RESPOND);
}
END_TEST

START_TEST(chunk_chain_transforms_in_order)
{
    ck_assert_int_eq(pipeline_on_chunk(ctx, "ab", 2), SLUICE_CONTINUE);
    /* s0 uppercases, s1 has no on_chunk, s2 forwards twice */
    ck_assert_str_eq(trace, "0c2c");
    ck_assert_uint_eq(ctx->sbuf.len, 4);
    ck_assert_int_eq(memcmp(ctx->sbuf.data, "ABAB", 4), 0);
    ck_assert_int_eq(ctx->cur_stage, -1);
    ck_assert_int_eq(ctx->chunk_stage, -1);
}
END_TEST

START_TEST(on_complete_runs_once)
{
    pipeline_on_complete(ctx);
    pipeline_on_complete(ctx);
    ck_assert_str_eq(trace, "0d1d2d");
}
END_TEST

START_TEST(init_failure_names_the_reason)
{
    const sluice_plugin *descs[] = {&d0, &d1};
    json_t *ok = json_object(), *bad = json_pack("{s:b}", "fail", 1);
    const sluice_json *cfgs[] = {(sluice_json *)ok, (sluice_json *)bad};
    char err[256] = "";
    struct generation *g =
        generation_from_descs(descs, cfgs, 2, err, sizeof err);
    ck_assert_ptr_null(g);
    ck_assert_str_eq(err, "fail requested");
    json_decref(ok);
    json_decref(bad);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pipeline");
    TCase *tc = tcase_create("runner");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, all_continue_runs_in_order);
    tcase_add_test(tc, respond_stops_the_phase);
    tcase_add_test(tc, respond_without_response_is_500);
    tcase_add_test(tc, error_is_500_openai_shaped);
    tcase_add_test(tc, retry_outside_on_response_is_error);
    tcase_add_test(tc, retry_is_sticky_and_all_stages_see_the_response);
    tcase_add_test(tc, respond_beats_retry);
    tcase_add_test(tc, chunk_chain_transforms_in_order);
    tcase_add_test(tc, on_complete_runs_once);
    tcase_add_test(tc, init_failure_names_the_reason);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
