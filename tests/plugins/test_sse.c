/*
 * test_sse.c - the sse stage: its parser (plugins/sse/sse_parser.c) on every
 * framing case, fed whole, split at every byte and byte by byte; and the
 * stage through the real host table (stage_harness.c): headers, canonical
 * re-framing, usage injection and reading, malformed framing.
 */
#include "sse_parser.h"
#include "stage_harness.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- parser: collect events as text ----------------------------------- */

/* Events rendered as "[event|id|retry]data" lines, "#comment" for comments,
 * so a whole run compares as one string. */
struct collect {
    char out[65536];
    size_t len;
    int events;
    int stop_after; /* callback returns non-zero after this many (0: never) */
};

static void col_put(struct collect *c, const char *s, size_t n)
{
    ck_assert_msg(c->len + n < sizeof c->out, "collector overflow");
    memcpy(c->out + c->len, s, n);
    c->len += n;
    c->out[c->len] = '\0';
}

static int col_event(void *arg, const struct sse_event *ev)
{
    struct collect *c = arg;
    char tmp[64];
    col_put(c, "[", 1);
    if (ev->has_event)
        col_put(c, ev->event, ev->event_len);
    col_put(c, "|", 1);
    if (ev->has_id)
        col_put(c, ev->id, ev->id_len);
    col_put(c, "|", 1);
    if (ev->has_retry) {
        int n =
            snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)ev->retry);
        col_put(c, tmp, (size_t)n);
    }
    col_put(c, "]", 1);
    if (ev->has_data)
        col_put(c, ev->data, ev->data_len);
    else
        col_put(c, "(nodata)", 8);
    col_put(c, "\n", 1);
    c->events++;
    return c->stop_after && c->events >= c->stop_after ? 7 : 0;
}

static int col_comment(void *arg, const char *text, size_t len)
{
    struct collect *c = arg;
    col_put(c, "#", 1);
    col_put(c, text, len);
    col_put(c, "\n", 1);
    return 0;
}

/* Feed `in` in pieces cut at `cuts` (ascending offsets); 0 or -1. */
static int feed_cut(struct sse_parser *p, const char *in, size_t len,
                    const size_t *cuts, size_t ncuts)
{
    size_t at = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        int rc = sse_parser_feed(p, in + at, to - at);
        if (rc)
            return rc;
        at = to;
    }
    return 0;
}

/* Parse `in` whole, at every single cut and byte by byte; every way must
 * give `want`. */
static void check_parse(const char *in, size_t len, int strict,
                        const char *want)
{
    struct sse_parser p;
    struct collect c;
    size_t cut;

    memset(&c, 0, sizeof c);
    sse_parser_init(&p, 4096, strict, col_event, col_comment, &c);
    ck_assert_int_eq(sse_parser_feed(&p, in, len), 0);
    ck_assert_msg(strcmp(c.out, want) == 0, "whole: got\n%s\nwant\n%s", c.out,
                  want);
    sse_parser_free(&p);

    for (cut = 0; cut <= len; cut++) {
        memset(&c, 0, sizeof c);
        sse_parser_init(&p, 4096, strict, col_event, col_comment, &c);
        ck_assert_int_eq(feed_cut(&p, in, len, &cut, 1), 0);
        ck_assert_msg(strcmp(c.out, want) == 0, "cut at %zu: got\n%s\nwant\n%s",
                      cut, c.out, want);
        sse_parser_free(&p);
    }
    memset(&c, 0, sizeof c);
    sse_parser_init(&p, 4096, strict, col_event, col_comment, &c);
    for (size_t i = 0; i < len; i++)
        ck_assert_int_eq(sse_parser_feed(&p, in + i, 1), 0);
    ck_assert_msg(strcmp(c.out, want) == 0, "byte by byte: got\n%s\nwant\n%s",
                  c.out, want);
    sse_parser_free(&p);
}

#define CHECK(in, want) check_parse(in, sizeof(in) - 1, 1, want)

START_TEST(parser_one_and_several_events)
{
    CHECK("data: hello\n\n", "[||]hello\n");
    CHECK("data: a\n\ndata: b\n\ndata: c\n\n", "[||]a\n[||]b\n[||]c\n");
    /* blank lines with nothing pending dispatch nothing */
    CHECK("\n\n\ndata: a\n\n\n\n", "[||]a\n");
    /* no blank line yet: nothing */
    CHECK("data: pending\n", "");
}
END_TEST

START_TEST(parser_line_ends)
{
    CHECK("data: a\r\n\r\ndata: b\r\n\r\n", "[||]a\n[||]b\n");
    CHECK("data: a\r\rdata: b\r\r", "[||]a\n[||]b\n");
    CHECK("data: a\rdata: b\r\n\ndata: c\n\r\n", "[||]a\nb\n[||]c\n");
    /* "\r" then "\n" is one line end, not two, even across reads (every cut
     * is tried by CHECK; this one names the case) */
    struct sse_parser p;
    struct collect c = {0};
    sse_parser_init(&p, 4096, 1, col_event, col_comment, &c);
    ck_assert_int_eq(sse_parser_feed(&p, "data: a\r", 8), 0);
    ck_assert_int_eq(sse_parser_feed(&p, "\ndata: b\r", 9), 0);
    ck_assert_int_eq(c.events, 0);
    ck_assert_int_eq(sse_parser_feed(&p, "\n\r", 2), 0);
    ck_assert_str_eq(c.out, "[||]a\nb\n");
    /* a "\r" alone at the end of a read still ends the line */
    ck_assert_int_eq(sse_parser_feed(&p, "data: c\r", 8), 0);
    ck_assert_int_eq(sse_parser_feed(&p, "\r", 1), 0);
    ck_assert_str_eq(c.out, "[||]a\nb\n[||]c\n");
    sse_parser_free(&p);
}
END_TEST

START_TEST(parser_multiline_data_and_fields)
{
    CHECK("data: one\ndata: two\ndata:three\n\n", "[||]one\ntwo\nthree\n");
    CHECK("event: add\nid: 42\nretry: 3000\ndata: x\n\n", "[add|42|3000]x\n");
    /* later event/id lines replace earlier ones in the same event */
    CHECK("event: a\nevent: b\nid: 1\nid: 2\ndata: x\n\n", "[b|2|]x\n");
    /* retry that is not all digits is ignored */
    CHECK("retry: 12a\ndata: x\n\n", "[||]x\n");
    CHECK("retry: \ndata: x\n\n", "[||]x\n");
    /* an id with a NUL is ignored */
    check_parse("id: a\0b\ndata: x\n\n", 17, 1, "[||]x\n");
    /* an event with fields but no data is still reported */
    CHECK("event: ping\n\n", "[ping||](nodata)\n");
    /* fields do not leak into the next event */
    CHECK("event: a\nid: 1\ndata: x\n\ndata: y\n\n", "[a|1|]x\n[||]y\n");
}
END_TEST

START_TEST(parser_colon_and_space_rules)
{
    /* exactly one leading space is stripped */
    CHECK("data:  two spaces\n\n", "[||] two spaces\n");
    CHECK("data:nospace\n\n", "[||]nospace\n");
    CHECK("data: a: b\n\n", "[||]a: b\n");
    /* a field without a colon has an empty value */
    CHECK("data\n\n", "[||]\n");
    CHECK("data\ndata\n\n", "[||]\n\n");
    CHECK("data:\n\n", "[||]\n");
    /* trailing spaces are kept */
    CHECK("data: x  \n\n", "[||]x  \n");
}
END_TEST

START_TEST(parser_comments)
{
    CHECK(": keep-alive\n\n", "# keep-alive\n");
    CHECK(":\n", "#\n");
    CHECK("data: a\n: inside\ndata: b\n\n", "# inside\n[||]a\nb\n");
}
END_TEST

START_TEST(parser_utf8_split)
{
    /* é (2 bytes), € (3), 😀 (4): every cut splits some character */
    CHECK("data: \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\n\n",
          "[||]\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\n");
    /* bytes that are not UTF-8 pass untouched */
    CHECK("data: \xff\xfe\n\n", "[||]\xff\xfe\n");
}
END_TEST

START_TEST(parser_bom)
{
    CHECK("\xEF\xBB\xBF"
          "data: x\n\n",
          "[||]x\n");
    /* only at the very start */
    check_parse("data: x\n\n\xEF\xBB\xBF"
                "data: y\n\n",
                21, 0, "[||]x\n");
    /* a prefix of a BOM that is not one is data (non-strict: an unknown
     * field is ignored; the prefix must not eat the next line) */
    check_parse("\xEF\xBBx\ndata: y\n\n", 13, 0, "[||]y\n");
}
END_TEST

START_TEST(parser_unknown_field)
{
    struct sse_parser p;
    struct collect c = {0};
    /* non-strict: ignored, as the standard says */
    check_parse("foo: bar\ndata: x\n\n", 18, 0, "[||]x\n");
    /* strict: a framing error, and every later feed fails */
    sse_parser_init(&p, 4096, 1, col_event, col_comment, &c);
    ck_assert_int_eq(sse_parser_feed(&p, "data: ok\n\n", 10), 0);
    ck_assert_int_eq(sse_parser_feed(&p, "<html>oops</html>\n", 18), -1);
    ck_assert_msg(strstr(p.err, "not an event-stream field"), "err: %s", p.err);
    ck_assert_int_eq(sse_parser_feed(&p, "data: x\n\n", 9), -1);
    ck_assert_str_eq(c.out, "[||]ok\n");
    sse_parser_free(&p);
}
END_TEST

START_TEST(parser_max_event_bytes)
{
    char big[3000];
    struct sse_parser p;
    struct collect c = {0};

    /* 900 bytes of data fit in 1024, fed whole or byte by byte */
    memcpy(big, "data: ", 6);
    memset(big + 6, 'a', 900);
    memcpy(big + 906, "\n\n", 2);
    sse_parser_init(&p, 1024, 1, col_event, NULL, &c);
    ck_assert_int_eq(sse_parser_feed(&p, big, 908), 0);
    for (size_t i = 0; i < 908; i++)
        ck_assert_int_eq(sse_parser_feed(&p, big + i, 1), 0);
    ck_assert_int_eq(c.events, 2);
    sse_parser_free(&p);

    /* 2000 bytes: an error, whole */
    memset(big + 6, 'a', 2000);
    memcpy(big + 2006, "\n\n", 2);
    sse_parser_init(&p, 1024, 1, col_event, NULL, &c);
    ck_assert_int_eq(sse_parser_feed(&p, big, 2008), -1);
    ck_assert_msg(strstr(p.err, "exceeds the limit of 1024"), "err: %s", p.err);
    sse_parser_free(&p);

    /* ... and in pieces: the line buffer is bounded too */
    sse_parser_init(&p, 1024, 1, col_event, NULL, &c);
    int rc = 0;
    for (size_t i = 0; i < 2008 && rc == 0; i += 100)
        rc = sse_parser_feed(&p, big + i, 2008 - i < 100 ? 2008 - i : 100);
    ck_assert_int_eq(rc, -1);
    ck_assert_msg(p.line.cap <= 1025, "line buffer grew to %zu", p.line.cap);
    sse_parser_free(&p);

    /* many data lines add up to one event: bounded as well */
    sse_parser_init(&p, 1024, 1, col_event, NULL, &c);
    rc = 0;
    for (int i = 0; i < 200 && rc == 0; i++)
        rc = sse_parser_feed(&p, "data: 0123456789\n", 17);
    ck_assert_int_eq(rc, -1);
    sse_parser_free(&p);
}
END_TEST

START_TEST(parser_end_and_stop)
{
    struct sse_parser p;
    struct collect c = {0};
    sse_parser_init(&p, 4096, 1, col_event, NULL, &c);
    ck_assert_int_eq(sse_parser_feed(&p, "data: a\n\ndata: b\n", 17), 0);
    ck_assert_int_eq(sse_parser_end(&p), 1); /* "b" had no blank line */
    ck_assert_str_eq(c.out, "[||]a\n");
    ck_assert_int_eq(sse_parser_end(&p), 0);
    /* a partial line counts as well */
    ck_assert_int_eq(sse_parser_feed(&p, "data: x", 7), 0);
    ck_assert_int_eq(sse_parser_end(&p), 1);
    sse_parser_free(&p);

    /* a callback's non-zero stops feeding and is returned */
    memset(&c, 0, sizeof c);
    c.stop_after = 1;
    sse_parser_init(&p, 4096, 1, col_event, NULL, &c);
    ck_assert_int_eq(sse_parser_feed(&p, "data: a\n\ndata: b\n\n", 18), 7);
    ck_assert_int_eq(c.events, 1);
    sse_parser_free(&p);
}
END_TEST

/* ---- the stage --------------------------------------------------------- */

static const char *const SSE_HDRS[] = {"content-type", "text/event-stream",
                                       NULL};
static const char STREAM_BODY[] =
    "{\"model\":\"m\",\"stream\":true,\"messages\":[]}";
static const char STREAM_BODY_USAGE[] =
    "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":"
    "true},\"messages\":[]}";

static sluice_test_stage *gen_ok(const char *cfg)
{
    char err[256] = "";
    sluice_test_stage *g = sh_gen_new(cfg, err, sizeof err);
    ck_assert_msg(g != NULL, "init failed: %s", err);
    return g;
}

/* A context that went through on_request and a 2xx on_response. */
static sluice_test_req *stream_ctx(sluice_test_stage *g, const char *body)
{
    sluice_test_req *ctx = sh_ctx_new(g, body, NULL);
    ck_assert_int_eq(sluice_test_on_request(ctx), SLUICE_CONTINUE);
    sluice_test_upstream(ctx, SLUICE_ATTEMPT_NONE, 200, SSE_HDRS, NULL);
    ck_assert_int_eq(sluice_test_on_response(ctx), SLUICE_CONTINUE);
    return ctx;
}

static const char *streamed(sluice_test_req *ctx)
{
    static char out[8192];
    size_t n;
    const char *s = sluice_test_chunks(ctx, &n);
    ck_assert_uint_lt(n, sizeof out);
    memcpy(out, s, n);
    out[n] = '\0';
    return out;
}

START_TEST(stage_config_validation)
{
    static const char *const bad[] = {"{\"heartbeat_s\": -1}",
                                      "{\"idle_timeout_s\": \"soon\"}",
                                      "{\"buffer_bytes\": 10}",
                                      "{\"max_event_bytes\": 100}",
                                      "{\"inject_usage\": \"maybe\"}",
                                      "{\"heartbat_s\": 5}",
                                      NULL};
    char err[256];
    for (size_t i = 0; bad[i]; i++) {
        err[0] = '\0';
        sluice_test_stage *g = sh_gen_new(bad[i], err, sizeof err);
        ck_assert_msg(g == NULL, "config %s was accepted", bad[i]);
        ck_assert_msg(err[0], "config %s: no error message", bad[i]);
    }
    sluice_test_stage *g = gen_ok(
        "{\"heartbeat_s\": 0.2, \"idle_timeout_s\": \"2\", \"buffer_bytes\": "
        "4096, \"max_event_bytes\": 2048, \"inject_usage\": true}");
    sluice_test_stage_free(g);
}
END_TEST

START_TEST(stage_headers_and_configure)
{
    sluice_test_stage *g = gen_ok("{\"heartbeat_s\": 0.25, \"idle_timeout_s\":"
                                  " 3, \"buffer_bytes\": 8192}");
    sluice_test_req *ctx = stream_ctx(g, STREAM_BODY);
    ck_assert_str_eq(sluice_test_header(ctx, "Content-Type"),
                     "text/event-stream");
    ck_assert_str_eq(sluice_test_header(ctx, "Cache-Control"), "no-cache");
    ck_assert_str_eq(sluice_test_header(ctx, "X-Accel-Buffering"), "no");
    uint32_t hb, idle;
    size_t bufmax;
    sluice_test_stream_settings(ctx, &hb, &idle, &bufmax);
    ck_assert_uint_eq(hb, 250);
    ck_assert_uint_eq(idle, 3000);
    ck_assert_uint_eq(bufmax, 8192);
    /* a second 2xx on_response (after a retry) adds nothing twice */
    ck_assert_int_eq(sluice_test_on_response(ctx), SLUICE_CONTINUE);
    size_t n = 0;
    for (size_t i = 0; sluice_test_header_at(ctx, i, NULL); i++)
        n += strcasecmp(sluice_test_header_at(ctx, i, NULL), "cache-control") ==
             0;
    ck_assert_uint_eq(n, 1);
    sluice_test_on_complete(ctx);
    sluice_test_req_free(ctx);

    /* not a stream: nothing */
    ctx = sh_ctx_new(g, "{\"model\":\"m\",\"messages\":[]}", NULL);
    sluice_test_upstream(ctx, SLUICE_ATTEMPT_HTTP, 200, NULL, "{}");
    ck_assert_int_eq(sluice_test_on_response(ctx), SLUICE_CONTINUE);
    ck_assert_ptr_null(sluice_test_header(ctx, "Cache-Control"));
    sluice_test_on_complete(ctx);
    sluice_test_req_free(ctx);

    /* a 2xx stream that is not an event stream: 502 before any byte */
    static const char *const json_hdrs[] = {"content-type", "application/json",
                                            NULL};
    ctx = sh_ctx_new(g, STREAM_BODY, NULL);
    sluice_test_upstream(ctx, SLUICE_ATTEMPT_NONE, 200, json_hdrs, NULL);
    ck_assert_int_eq(sluice_test_on_response(ctx), SLUICE_RESPOND);
    ck_assert_int_eq(sluice_test_status(ctx), 502);
    ck_assert_ptr_nonnull(strstr(sluice_test_body(ctx), "bad_upstream_stream"));
    sluice_test_on_complete(ctx);
    sluice_test_req_free(ctx);
    sluice_test_stage_free(g);
}
END_TEST

START_TEST(stage_reframes_split_events)
{
    sluice_test_stage *g = gen_ok(NULL);
    sluice_test_req *ctx = stream_ctx(g, STREAM_BODY);
    static const char *const pieces[] = {"data: {\"a\":",
                                         "1}\r",
                                         "\n\r",
                                         "\nevent: e\r\nid: 7\rdata: x\r",
                                         "\r: between\n\ndata: one\ndata:two\n",
                                         "\ndata: \xe2\x82",
                                         "\xac\n\n",
                                         "data: [DONE]\n\n",
                                         NULL};
    for (size_t i = 0; pieces[i]; i++)
        ck_assert_int_eq(
            sluice_test_on_chunk(ctx, pieces[i], strlen(pieces[i])),
            SLUICE_CONTINUE);
    ck_assert_str_eq(streamed(ctx), "data: {\"a\":1}\n\n"
                                    "event: e\nid: 7\ndata: x\n\n"
                                    ": between\n\n"
                                    "data: one\ndata: two\n\n"
                                    "data: \xe2\x82\xac\n\n"
                                    "data: [DONE]\n\n");
    /* the end mark: an incomplete event is dropped, not half forwarded,
     * and the stream is reported broken (the core's stream_interrupted) */
    ck_assert_int_eq(sluice_test_on_chunk(ctx, "data: half", 10),
                     SLUICE_CONTINUE);
    ck_assert_int_eq(sluice_test_on_chunk(ctx, NULL, 0), SLUICE_ERROR);
    ck_assert_ptr_null(strstr(streamed(ctx), "half"));
    sluice_test_on_complete(ctx);
    sluice_test_req_free(ctx);
    sluice_test_stage_free(g);
}
END_TEST

START_TEST(stage_malformed_is_error)
{
    sluice_test_stage *g = gen_ok("{\"max_event_bytes\": 1024}");
    sluice_test_req *ctx = stream_ctx(g, STREAM_BODY);
    ck_assert_int_eq(sluice_test_on_chunk(ctx, "data: ok\n\n", 10),
                     SLUICE_CONTINUE);
    ck_assert_int_eq(sluice_test_on_chunk(ctx, "<html>\n", 7), SLUICE_ERROR);
    ck_assert_str_eq(streamed(ctx), "data: ok\n\n");
    sluice_test_on_complete(ctx);
    sluice_test_req_free(ctx);

    ctx = stream_ctx(g, STREAM_BODY);
    char big[1500];
    memset(big, 'x', sizeof big);
    memcpy(big, "data: ", 6);
    ck_assert_int_eq(sluice_test_on_chunk(ctx, big, sizeof big), SLUICE_ERROR);
    ck_assert_str_eq(streamed(ctx), "");
    sluice_test_on_complete(ctx);
    sluice_test_req_free(ctx);
    sluice_test_stage_free(g);
}
END_TEST

static const char CONTENT_CHUNK[] =
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}],"
    "\"usage\":null}\n\n";
static const char USAGE_CHUNK[] =
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":11,"
    "\"completion_tokens\":5,\"total_tokens\":16}}\n\n";

START_TEST(stage_inject_usage_client_did_not_ask)
{
    sluice_test_stage *g = gen_ok("{\"inject_usage\": true}");
    sluice_test_req *ctx = stream_ctx(g, STREAM_BODY);
    /* the upstream is asked */
    ck_assert_int_eq(sluice_test_body_changed(ctx), 1);
    const sluice_json *so =
        HOST.json_get(HOST.req_body(CTX(ctx)), "stream_options");
    ck_assert(HOST.json_bool(HOST.json_get(so, "include_usage")));
    /* the usage chunk is read, then dropped */
    ck_assert_int_eq(
        sluice_test_on_chunk(ctx, CONTENT_CHUNK, strlen(CONTENT_CHUNK)),
        SLUICE_CONTINUE);
    ck_assert_int_eq(
        sluice_test_on_chunk(ctx, USAGE_CHUNK, strlen(USAGE_CHUNK)),
        SLUICE_CONTINUE);
    ck_assert_int_eq(sluice_test_on_chunk(ctx, "data: [DONE]\n\n", 14),
                     SLUICE_CONTINUE);
    ck_assert_str_eq(streamed(ctx),
                     "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                     "\"hi\"}}],\"usage\":null}\n\ndata: [DONE]\n\n");
    ck_assert_str_eq(sluice_test_attr(ctx, "usage_prompt_tokens"), "11");
    ck_assert_str_eq(sluice_test_attr(ctx, "usage_completion_tokens"), "5");
    ck_assert_str_eq(sluice_test_attr(ctx, "usage_total_tokens"), "16");
    sluice_test_on_complete(ctx);
    sluice_test_req_free(ctx);
    sluice_test_stage_free(g);
}
END_TEST

START_TEST(stage_usage_client_asked)
{
    sluice_test_stage *g = gen_ok("{\"inject_usage\": true}");
    sluice_test_req *ctx = stream_ctx(g, STREAM_BODY_USAGE);
    ck_assert_int_eq(sluice_test_body_changed(ctx), 0); /* nothing to change */
    ck_assert_int_eq(
        sluice_test_on_chunk(ctx, USAGE_CHUNK, strlen(USAGE_CHUNK)),
        SLUICE_CONTINUE);
    ck_assert_str_eq(streamed(ctx), USAGE_CHUNK);
    ck_assert_str_eq(sluice_test_attr(ctx, "usage_prompt_tokens"), "11");
    sluice_test_on_complete(ctx);
    sluice_test_req_free(ctx);
    sluice_test_stage_free(g);
}
END_TEST

START_TEST(stage_usage_injection_off)
{
    sluice_test_stage *g = gen_ok(NULL);
    sluice_test_req *ctx = stream_ctx(g, STREAM_BODY);
    ck_assert_int_eq(sluice_test_body_changed(ctx), 0);
    ck_assert_ptr_null(
        HOST.json_get(HOST.req_body(CTX(ctx)), "stream_options"));
    /* a usage chunk the upstream sends anyway reaches the client, and is
     * still read */
    ck_assert_int_eq(
        sluice_test_on_chunk(ctx, USAGE_CHUNK, strlen(USAGE_CHUNK)),
        SLUICE_CONTINUE);
    ck_assert_str_eq(streamed(ctx), USAGE_CHUNK);
    ck_assert_str_eq(sluice_test_attr(ctx, "usage_completion_tokens"), "5");
    sluice_test_on_complete(ctx);
    sluice_test_req_free(ctx);
    sluice_test_stage_free(g);
}
END_TEST

/* Events forwarded, usage chunks forwarded/dropped, stream errors by code
 * (this test runs in its own process: the values start at 0). */
START_TEST(stage_metrics)
{
    sluice_test_stage *g =
        gen_ok("{\"inject_usage\": true, \"max_event_bytes\": 1024}");
    sluice_test_req *ctx = stream_ctx(g, STREAM_BODY);
    ck_assert_int_eq(
        sluice_test_on_chunk(ctx, CONTENT_CHUNK, strlen(CONTENT_CHUNK)),
        SLUICE_CONTINUE);
    ck_assert_int_eq(sluice_test_on_chunk(ctx, ": keep-alive\n\n", 14),
                     SLUICE_CONTINUE);
    ck_assert_int_eq(
        sluice_test_on_chunk(ctx, USAGE_CHUNK, strlen(USAGE_CHUNK)),
        SLUICE_CONTINUE);
    ck_assert_int_eq(sluice_test_on_chunk(ctx, "data: [DONE]\n\n", 14),
                     SLUICE_CONTINUE);
    sluice_test_on_complete(ctx);
    sluice_test_req_free(ctx);
    ck_assert_double_eq(sluice_test_metric(g, "sluice_sse_events_total"), 2);
    ck_assert_double_eq(
        sluice_test_metric(g,
                           "sluice_sse_usage_chunks_total{action=\"dropped\"}"),
        1);

    ctx = stream_ctx(g, STREAM_BODY_USAGE);
    ck_assert_int_eq(
        sluice_test_on_chunk(ctx, USAGE_CHUNK, strlen(USAGE_CHUNK)),
        SLUICE_CONTINUE);
    /* the upstream stops inside an event */
    ck_assert_int_eq(sluice_test_on_chunk(ctx, "data: {\"cho", 11),
                     SLUICE_CONTINUE);
    ck_assert_int_eq(sluice_test_on_chunk(ctx, NULL, 0), SLUICE_ERROR);
    sluice_test_on_complete(ctx);
    sluice_test_req_free(ctx);
    ck_assert_double_eq(sluice_test_metric(g, "sluice_sse_events_total"), 3);
    ck_assert_double_eq(
        sluice_test_metric(
            g, "sluice_sse_usage_chunks_total{action=\"forwarded\"}"),
        1);
    ck_assert_double_eq(
        sluice_test_metric(
            g, "sluice_sse_stream_errors_total{code=\"truncated\"}"),
        1);

    ctx = stream_ctx(g, STREAM_BODY);
    ck_assert_int_eq(sluice_test_on_chunk(ctx, "<html>\n", 7), SLUICE_ERROR);
    sluice_test_on_complete(ctx);
    sluice_test_req_free(ctx);
    ctx = stream_ctx(g, STREAM_BODY);
    char big[1500];
    memset(big, 'x', sizeof big);
    memcpy(big, "data: ", 6);
    ck_assert_int_eq(sluice_test_on_chunk(ctx, big, sizeof big), SLUICE_ERROR);
    sluice_test_on_complete(ctx);
    sluice_test_req_free(ctx);
    static const char *const json_hdrs[] = {"content-type", "application/json",
                                            NULL};
    ctx = sh_ctx_new(g, STREAM_BODY, NULL);
    sluice_test_upstream(ctx, SLUICE_ATTEMPT_NONE, 200, json_hdrs, NULL);
    ck_assert_int_eq(sluice_test_on_response(ctx), SLUICE_RESPOND);
    sluice_test_on_complete(ctx);
    sluice_test_req_free(ctx);
    ck_assert_double_eq(
        sluice_test_metric(
            g, "sluice_sse_stream_errors_total{code=\"unknown_field\"}"),
        1);
    ck_assert_double_eq(
        sluice_test_metric(
            g, "sluice_sse_stream_errors_total{code=\"event_too_large\"}"),
        1);
    ck_assert_double_eq(
        sluice_test_metric(
            g, "sluice_sse_stream_errors_total{code=\"bad_content_type\"}"),
        1);
    ck_assert_double_eq(sluice_test_metric(g, "sluice_sse_events_total"), 3);
    sluice_test_stage_free(g);
}
END_TEST

static Suite *sse_suite(void)
{
    Suite *s = suite_create("sse");
    TCase *tp = tcase_create("parser");
    tcase_add_test(tp, parser_one_and_several_events);
    tcase_add_test(tp, parser_line_ends);
    tcase_add_test(tp, parser_multiline_data_and_fields);
    tcase_add_test(tp, parser_colon_and_space_rules);
    tcase_add_test(tp, parser_comments);
    tcase_add_test(tp, parser_utf8_split);
    tcase_add_test(tp, parser_bom);
    tcase_add_test(tp, parser_unknown_field);
    tcase_add_test(tp, parser_max_event_bytes);
    tcase_add_test(tp, parser_end_and_stop);
    suite_add_tcase(s, tp);
    TCase *ts = tcase_create("stage");
    tcase_add_test(ts, stage_config_validation);
    tcase_add_test(ts, stage_headers_and_configure);
    tcase_add_test(ts, stage_reframes_split_events);
    tcase_add_test(ts, stage_malformed_is_error);
    tcase_add_test(ts, stage_inject_usage_client_did_not_ask);
    tcase_add_test(ts, stage_usage_client_asked);
    tcase_add_test(ts, stage_usage_injection_off);
    tcase_add_test(ts, stage_metrics);
    suite_add_tcase(s, ts);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sse_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
