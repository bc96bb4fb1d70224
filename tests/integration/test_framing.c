/*
 * test_framing.c - raw-socket cases of issue 19 that libcurl will not send:
 * request smuggling (Content-Length with Transfer-Encoding, two
 * Content-Lengths, bare-LF line ends, obsolete line folding, a space
 * before the colon, unknown transfer codings), bodies over the limit that
 * the client writes whole before reading (Content-Length and chunked), and
 * clients that shut their write side after sending (half-close).
 *
 * Each case asserts what the client read, that nothing smuggled behind a
 * refused request was answered, and what the mock upstream saw.
 */
#include "itest_util.h"

#define POST_HEAD                                                              \
    "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"                        \
    "Content-Type: application/json\r\n"
/* what a smuggler hides behind the first request */
#define SMUGGLED "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"

static void setup(void)
{
    h_tmpdir();
}

static void teardown(void)
{
    h_teardown();
}

static void start(void)
{
    h_opts o;
    memset(&o, 0, sizeof o);
    o.max_body_bytes = 8192;
    o.server_extra = "  request_timeout_s: 5\n";
    h_start_all(&o);
}

/* ---- 3: smuggling ----------------------------------------------------- */

struct framing_case {
    const char *what;
    const char *req; /* printf format: %zu = body length, %zx = in hex,
                        %s = body */
    int status;
    const char *code;
};

static const struct framing_case CASES[] = {
    {"CL and TE",
     POST_HEAD "Content-Length: %zu\r\nTransfer-Encoding: chunked\r\n\r\n"
               "%zx\r\n%s\r\n0\r\n\r\n" SMUGGLED,
     400, "bad_request_framing"},
    {"two Content-Lengths",
     POST_HEAD "Content-Length: %zu\r\nContent-Length: 5\r\n\r\n%s" SMUGGLED,
     400, "bad_request_framing"},
    {"bare LF",
     "POST /v1/chat/completions HTTP/1.1\nHost: x\n"
     "Content-Type: application/json\nContent-Length: %zu\n\n%s" SMUGGLED,
     400, "bad_request_framing"},
    {"bare LF on the request line",
     "POST /v1/chat/completions HTTP/1.1\nHost: x\r\n"
     "Content-Length: %zu\r\n\r\n%s" SMUGGLED,
     400, "bad_request_framing"},
    {"obs-fold",
     POST_HEAD "X-Folded: a\r\n  b\r\nContent-Length: %zu\r\n\r\n%s" SMUGGLED,
     400, "bad_request_framing"},
    {"space before the colon",
     POST_HEAD
     "Transfer-Encoding : chunked\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n" SMUGGLED,
     400, "bad_request_framing"},
    {"gzip, chunked",
     POST_HEAD "Transfer-Encoding: gzip, chunked\r\n\r\n"
               "%zx\r\n%s\r\n0\r\n\r\n" SMUGGLED,
     501, "unsupported_transfer_coding"},
    {"unknown coding", POST_HEAD "Transfer-Encoding: foo\r\n\r\n%s" SMUGGLED,
     501, "unsupported_transfer_coding"},
};

/* Fill fmt's conversions in order with the chat body. */
static size_t build(char *out, size_t cap, const char *fmt)
{
    const char *body = OK_BODY;
    size_t blen = strlen(body), n = 0;
    for (const char *p = fmt; *p && n + 64 < cap; p++) {
        if (p[0] == '%' && p[1] == 'z') {
            n += (size_t)snprintf(out + n, cap - n, p[2] == 'x' ? "%zx" : "%zu",
                                  blen);
            p += 2;
        } else if (p[0] == '%' && p[1] == 's') {
            n += (size_t)snprintf(out + n, cap - n, "%s", body);
            p++;
        } else {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
    return n;
}

START_TEST(smuggling_is_refused_and_the_connection_closed)
{
    start();
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        const struct framing_case *c = &CASES[i];
        char req[1024], out[8192];
        size_t len = build(req, sizeof req, c->req);
        int eof;
        double t0 = h_now_ms();
        int st = it_raw_ex(h_sluice_port(), req, len, 0, 10000, out, sizeof out,
                           &eof);
        ck_assert_msg(st == c->status, "%s: status %d, expected %d: %.400s",
                      c->what, st, c->status, out);
        ck_assert_msg(strstr(out, c->code), "%s: not %s: %.400s", c->what,
                      c->code, out);
        /* the connection is closed at once, so the bytes behind it are
         * never a second request */
        ck_assert_msg(eof && h_now_ms() - t0 < 4000,
                      "%s: the connection stayed open", c->what);
        ck_assert_msg(it_count_str(out, "HTTP/1.1 ") == 1,
                      "%s: the smuggled request was answered: %.600s", c->what,
                      out);
        ck_assert_msg(strcasestr(out, "\r\nConnection: close\r\n"),
                      "%s: no Connection: close: %.400s", c->what, out);
    }
    it_assert_mock_saw(0, "smuggling");
    it_assert_normal(NULL, "after the smuggling cases");
}
END_TEST

/* ---- 7: bodies over the limit, written whole before reading ----------- */

START_TEST(oversized_bodies_get_their_413)
{
    start();
    /* 2 MiB with Content-Length: more than the socket buffers hold, so a
     * server that answered and closed at once resets the writing client */
    size_t big = 2u << 20;
    char *req = malloc(big + 512);
    ck_assert_ptr_nonnull(req);
    int n = sprintf(req, POST_HEAD "Content-Length: %zu\r\n\r\n", big);
    memset(req + n, ' ', big);
    char out[4096];
    int eof;
    /* the client writes it all (no broken pipe), then reads the 413 */
    int fd = it_connect(h_sluice_port());
    size_t off = 0, len = (size_t)n + big;
    while (off < len) {
        ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    ck_assert_msg(off == len, "the body could not be written: %zu of %zu (%s)",
                  off, len, strerror(errno));
    it_read_all(fd, out, sizeof out, 10000, &eof);
    close(fd);
    ck_assert_msg(!strncmp(out, "HTTP/1.1 413", 12), "Content-Length: %.300s",
                  out);
    ck_assert_msg(strstr(out, "request_too_large"), "%.300s", out);
    int st;
    /* chunked, 20 chunks of 1000 bytes over an 8 KiB limit */
    char *p = req + sprintf(req, POST_HEAD "Transfer-Encoding: chunked\r\n"
                                           "Connection: close\r\n\r\n");
    for (int i = 0; i < 20; i++) {
        p += sprintf(p, "3e8\r\n");
        memset(p, ' ', 1000);
        p += 1000;
        p += sprintf(p, "\r\n");
    }
    p += sprintf(p, "0\r\n\r\n");
    st = it_raw_ex(h_sluice_port(), req, (size_t)(p - req), 0, 10000, out,
                   sizeof out, &eof);
    ck_assert_msg(st == 413, "chunked: status %d: %.300s", st, out);
    ck_assert_msg(strstr(out, "request_too_large"), "%.300s", out);
    free(req);
    it_assert_mock_saw(0, "oversized bodies");
    it_assert_normal(NULL, "after the oversized bodies");
}
END_TEST

/* ---- 9: half-closed clients ------------------------------------------- */

START_TEST(half_closed_clients_are_served)
{
    start();
    static const char stream_body[] =
        "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{\"role\":"
        "\"user\",\"content\":\"hi\"}]}";
    struct {
        const char *what, *extra, *body;
        int stall; /* the upstream takes its time: the FIN comes first */
    } v[] = {
        {"keep-alive", "", OK_BODY, 0},
        {"Connection: close", "Connection: close\r\n", OK_BODY, 0},
        {"stream", "", stream_body, 0},
        {"slow upstream", "", OK_BODY, 1},
    };
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
            ck_assert_int_eq(h_mock_reset(), 0);
            if (v[i].stall)
                ck_assert_int_eq(
                    h_mock_script("{\"rules\":[{\"stall_ms\":300}]}"), 0);
            char req[1024], out[8192];
            int len = snprintf(req, sizeof req,
                               POST_HEAD "%sContent-Length: %zu\r\n\r\n%s",
                               v[i].extra, strlen(v[i].body), v[i].body);
            int eof;
            int st = it_raw_ex(h_sluice_port(), req, (size_t)len, 1, 10000, out,
                               sizeof out, &eof);
            ck_assert_msg(st == 200, "%s (round %d): status %d: %.300s",
                          v[i].what, round, st, out);
            ck_assert_msg(strstr(out, v[i].stall || i != 2 ? "Hello from mock"
                                                           : "[DONE]"),
                          "%s: incomplete answer: %.600s", v[i].what, out);
            it_assert_mock_saw(1, v[i].what);
        }
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("framing");
    TCase *tc = tcase_create("framing");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, smuggling_is_refused_and_the_connection_closed);
    tcase_add_test(tc, oversized_bodies_get_their_413);
    tcase_add_test(tc, half_closed_clients_are_served);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
