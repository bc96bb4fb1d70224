/*
 * test_h1parse.c - core/h1parse.c: every framing (Content-Length, chunked
 * with extensions and trailers, close-delimited, HEAD, 204, 304, interim
 * 1xx, HTTP/1.0 with and without keep-alive, Connection: close, chunked +
 * Content-Length), every malformed case, the bounds just under and just
 * over, pause and resume, EOF at each point, callback aborts.
 *
 * Every response is fed as a real caller does (keeping what was not
 * consumed, appending what it reads next, each feed from a fresh exact-size
 * copy so ASan sees any read past it): whole, cut in two at every byte,
 * and one byte at a time, with and without a pause on every other body
 * call; all must give the same callbacks, status, body, keep_alive, result,
 * error and bytes consumed.
 */
#include "h1parse.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* what one run saw */
struct out {
    int rc, status, keep_alive, started;
    size_t used; /* bytes of the input consumed in all */
    const char *err;
    char *log; /* "name=value\n" per header, "=> status\n" per head */
    size_t loglen, logcap;
    char *body;
    size_t bodylen, bodycap;
    int pause; /* pause on every other on_body call */
    int last_paused;
    int pauses;   /* H1P_PAUSE results seen */
    int abort_at; /* 1 on_header, 2 on_head, 3 on_body: return -1 */
};

static void out_log(struct out *o, const char *s, size_t n)
{
    ck_assert_uint_le(o->loglen + n, o->logcap);
    memcpy(o->log + o->loglen, s, n);
    o->loglen += n;
}

static int on_header(void *u, const char *name, size_t nlen, const char *value,
                     size_t vlen)
{
    struct out *o = u;
    out_log(o, name, nlen);
    out_log(o, "=", 1);
    out_log(o, value, vlen);
    out_log(o, "\n", 1);
    return o->abort_at == 1 ? -1 : 0;
}

static int on_head(void *u, int status)
{
    struct out *o = u;
    char line[32];
    int n = snprintf(line, sizeof line, "=> %d\n", status);
    out_log(o, line, (size_t)n);
    return o->abort_at == 2 ? -1 : 0;
}

static int on_body(void *u, const char *data, size_t len)
{
    struct out *o = u;
    ck_assert_uint_gt(len, 0);
    if (o->abort_at == 3)
        return -1;
    if (o->pause && !o->last_paused) {
        o->last_paused = 1;
        return 1;
    }
    o->last_paused = 0;
    ck_assert_uint_le(o->bodylen + len, o->bodycap);
    memcpy(o->body + o->bodylen, data, len);
    o->bodylen += len;
    return 0;
}

static const struct h1p_cb CB = {on_header, on_head, on_body};

static void out_init(struct out *o, size_t len, int pause)
{
    memset(o, 0, sizeof *o);
    o->logcap = len * 2 + 256;
    o->log = malloc(o->logcap);
    o->bodycap = len + 1;
    o->body = malloc(o->bodycap);
    o->pause = pause;
    ck_assert(o->log && o->body);
}

static void out_free(struct out *o)
{
    free(o->log);
    free(o->body);
}

/* Feed in[0..len) as a caller would: the bytes arrive in pieces ending at
 * cuts[0..ncuts) (increasing), then len; EOF after the last when the
 * parser still wants more. */
static void drive(const char *in, size_t len, int no_body, const size_t *cuts,
                  size_t ncuts, struct out *o)
{
    struct h1p p;
    h1p_init(&p, &CB, o, no_body);
    size_t start = 0, ci = 0;
    size_t avail = ncuts ? cuts[0] : len;
    int rc;
    for (;;) {
        size_t n = avail - start, used = 99999999;
        char *win = malloc(n ? n : 1);
        ck_assert_ptr_nonnull(win);
        memcpy(win, in + start, n);
        rc = h1p_feed(&p, win, n, &used);
        free(win);
        ck_assert_uint_le(used, n);
        start += used;
        if (rc == H1P_PAUSE) {
            o->pauses++;
            continue; /* on_body takes them next time */
        }
        if (rc != H1P_MORE)
            break;
        /* waiting: what is left is a partial line, never a whole one */
        ck_assert_ptr_null(memchr(in + start, '\n', avail - start));
        if (avail == len) {
            rc = h1p_eof(&p);
            break;
        }
        ci++;
        avail = ci < ncuts ? cuts[ci] : len;
    }
    o->rc = rc;
    o->used = start;
    o->status = p.status;
    o->keep_alive = p.keep_alive;
    o->started = p.started;
    o->err = p.err;
    /* the result is sticky */
    size_t used = 1;
    ck_assert_int_eq(h1p_feed(&p, "x", 1, &used), rc);
    ck_assert_uint_eq(used, 0);
}

static void out_same(const struct out *a, const struct out *b, size_t at)
{
    ck_assert_msg(a->rc == b->rc, "rc %d vs %d (cut at %zu)", a->rc, b->rc, at);
    ck_assert_msg(a->used == b->used, "used %zu vs %zu (cut at %zu)", a->used,
                  b->used, at);
    ck_assert_int_eq(a->status, b->status);
    ck_assert_int_eq(a->keep_alive, b->keep_alive);
    ck_assert_msg(a->loglen == b->loglen &&
                      memcmp(a->log, b->log, a->loglen) == 0,
                  "callbacks differ (cut at %zu)", at);
    ck_assert_msg(a->bodylen == b->bodylen &&
                      memcmp(a->body, b->body, a->bodylen) == 0,
                  "body differs (cut at %zu)", at);
    if (a->err || b->err)
        ck_assert_pstr_eq(a->err, b->err);
}

/* in whole, then cut in two at every stride-th byte (and the last few),
 * then one byte at a time (when small), each with and without pauses: all
 * equal to the whole run, which is returned in *ref (caller frees). */
static void run_all(const char *in, size_t len, int no_body, size_t stride,
                    struct out *ref)
{
    out_init(ref, len, 0);
    drive(in, len, no_body, NULL, 0, ref);
    for (int pause = 0; pause <= 1; pause++) {
        struct out o;
        out_init(&o, len, pause);
        drive(in, len, no_body, NULL, 0, &o);
        out_same(ref, &o, 0);
        if (pause && ref->bodylen)
            ck_assert_int_gt(o.pauses, 0);
        out_free(&o);
        for (size_t at = 1; at < len; at++) {
            if (at % stride && at + 8 < len)
                continue;
            out_init(&o, len, pause);
            drive(in, len, no_body, &at, 1, &o);
            out_same(ref, &o, at);
            out_free(&o);
        }
        if (len > 4096)
            continue;
        size_t *cuts = malloc(len * sizeof *cuts + 1);
        ck_assert_ptr_nonnull(cuts);
        for (size_t i = 0; i + 1 < len; i++)
            cuts[i] = i + 1;
        out_init(&o, len, pause);
        drive(in, len, no_body, cuts, len ? len - 1 : 0, &o);
        out_same(ref, &o, 1);
        /* one byte at a time, pausing on every other call: a pause at
         * every body offset, each resumed */
        if (pause)
            ck_assert_uint_eq((size_t)o.pauses, ref->bodylen);
        out_free(&o);
        free(cuts);
    }
}

/* A valid response: the expected result, status, keep_alive, callbacks
 * and body, and how many bytes at its end are not part of it. */
static void valid(const char *in, size_t len, int no_body, int rc, int status,
                  int keep_alive, const char *log, const char *body,
                  size_t extra)
{
    struct out r;
    run_all(in, len, no_body, 1, &r);
    ck_assert_msg(r.rc == rc, "rc %d, err %s", r.rc, r.err ? r.err : "-");
    ck_assert_int_eq(r.status, status);
    ck_assert_int_eq(r.keep_alive, keep_alive);
    ck_assert_uint_eq(r.used, len - extra);
    ck_assert_uint_eq(r.loglen, strlen(log));
    ck_assert(memcmp(r.log, log, r.loglen) == 0);
    ck_assert_uint_eq(r.bodylen, strlen(body));
    ck_assert(memcmp(r.body, body, r.bodylen) == 0);
    ck_assert_int_eq(r.started, len > 0);
    out_free(&r);
}

#define VALID(in, no_body, rc, status, ka, log, body, extra)                   \
    valid(in, sizeof in - 1, no_body, rc, status, ka, log, body, extra)

/* A malformed (or cut short) response: H1P_ERROR with err containing
 * `msg`, however it is cut. */
static void invalid(const char *in, size_t len, int no_body, const char *msg)
{
    struct out r;
    run_all(in, len, no_body, 1, &r);
    ck_assert_msg(r.rc == H1P_ERROR, "rc %d for %.*s", r.rc, (int)len, in);
    ck_assert_ptr_nonnull(r.err);
    ck_assert_msg(strstr(r.err, msg), "err \"%s\", expected \"%s\"", r.err,
                  msg);
    out_free(&r);
}

#define INVALID(in, msg) invalid(in, sizeof in - 1, 0, msg)

/* ---- framings ----------------------------------------------------------- */

START_TEST(content_length)
{
    VALID("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
          "Content-Length: 5\r\n\r\nhelloEXTRA",
          0, H1P_DONE, 200, 1,
          "Content-Type=text/plain\nContent-Length=5\n=> 200\n", "hello", 5);
    VALID("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\nHTTP/1.1", 0,
          H1P_DONE, 404, 1, "Content-Length=0\n=> 404\n", "", 8);
    /* equal values: a list, several headers, leading zeros */
    VALID("HTTP/1.1 200 OK\r\ncontent-length: 3, 3 ,3\r\n"
          "CONTENT-LENGTH:003\r\n\r\nabc",
          0, H1P_DONE, 200, 1,
          "content-length=3, 3 ,3\nCONTENT-LENGTH=003\n=> 200\n", "abc", 0);
    /* the body is cut short: EOF says so */
    INVALID("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
            "in the middle of the body");
}
END_TEST

START_TEST(chunked)
{
    VALID("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
          "5\r\nhello\r\n6;name=value\r\n world\r\nA \r\n0123456789\r\n"
          "0010 ; a ; b=\"c\"\r\nabcdefghijklmnop\r\n"
          "0\r\nX-Trailer: t\r\nX-Other: u\r\n\r\nEXTRA",
          0, H1P_DONE, 200, 1, "Transfer-Encoding=chunked\n=> 200\n",
          "hello world0123456789abcdefghijklmnop", 5);
    /* bare LF everywhere, codings before chunked, several TE headers */
    VALID("HTTP/1.1 200 OK\nTransfer-Encoding: gzip\n"
          "transfer-encoding: , CHUNKED \n\n"
          "3\nabc\nff\n"
          "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZ"
          "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOP"
          "QRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZABCDEF"
          "GHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTU"
          "\n0\n\n",
          0, H1P_DONE, 200, 1,
          "Transfer-Encoding=gzip\ntransfer-encoding=, CHUNKED\n=> 200\n",
          "abcABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZ"
          "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOP"
          "QRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZABCDEF"
          "GHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTU",
          0);
    /* chunked wins over Content-Length, and the connection is not reused */
    VALID("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
          "Transfer-Encoding: chunked\r\n\r\n4\r\nwxyz\r\n0\r\n\r\n",
          0, H1P_DONE, 200, 0,
          "Content-Length=3\nTransfer-Encoding=chunked\n=> 200\n", "wxyz", 0);
    /* the largest chunk size accepted: 15 hex digits (cut short here) */
    INVALID("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            "fffffffffffffff\r\nabc",
            "in the middle of the body");
    INVALID("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            "in the middle of the body");
    INVALID("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n"
            "hello\r",
            "in the middle of the body");
    INVALID("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5",
            "in the middle of the body");
    INVALID("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
            "X-T: 1\r\n",
            "in the middle of the chunked body's trailers");
}
END_TEST

START_TEST(close_delimited)
{
    VALID("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome body\n"
          "and more\r\n",
          0, H1P_DONE, 200, 0, "Content-Type=text/plain\n=> 200\n",
          "some body\nand more\r\n", 0);
    VALID("HTTP/1.1 200 OK\r\n\r\n", 0, H1P_DONE, 200, 0, "=> 200\n", "", 0);
    VALID("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\nbody", 0, H1P_DONE,
          200, 0, "Connection=keep-alive\n=> 200\n", "body", 0);
}
END_TEST

START_TEST(no_body)
{
    /* HEAD: Content-Length is the GET body's, nothing follows */
    VALID("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHTTP/1.1 200", 1,
          H1P_DONE, 200, 1, "Content-Length=100\n=> 200\n", "", 12);
    VALID("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n", 1,
          H1P_DONE, 200, 1, "Transfer-Encoding=chunked\n=> 200\n", "", 3);
    VALID("HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\nEXTRA", 0, H1P_DONE, 204, 1,
          "X-A=b\n=> 204\n", "", 5);
    VALID("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", 0,
          H1P_DONE, 304, 1, "Content-Length=10\n=> 304\n", "", 0);
    VALID("HTTP/1.0 204 No Content\r\n\r\n", 0, H1P_DONE, 204, 0, "=> 204\n",
          "", 0);
}
END_TEST

START_TEST(interim_responses)
{
    VALID("HTTP/1.1 100 Continue\r\n\r\n"
          "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n"
          "Content-Length: 99\r\nConnection: close\r\n\r\n"
          "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
          0, H1P_DONE, 200, 1, "Content-Length=2\n=> 200\n", "hi", 0);
    VALID("HTTP/1.1 100 Continue\n\nHTTP/1.0 200 OK\nContent-Length: 1\n\nx", 0,
          H1P_DONE, 200, 0, "Content-Length=1\n=> 200\n", "x", 0);
    /* an interim response's headers are still checked */
    INVALID("HTTP/1.1 103 Early Hints\r\nLink : x\r\n\r\n", "whitespace");
    /* cut after an interim response: the final head never came */
    INVALID("HTTP/1.1 100 Continue\r\n\r\n", "in the middle of the response "
                                             "head");
}
END_TEST

START_TEST(keep_alive)
{
    VALID("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", 0, H1P_DONE, 200, 0,
          "Content-Length=1\n=> 200\n", "x", 0);
    VALID("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n"
          "\r\nx",
          0, H1P_DONE, 200, 1,
          "Connection=Keep-Alive\nContent-Length=1\n=> "
          "200\n",
          "x", 0);
    VALID("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
          0, H1P_DONE, 200, 0, "Connection=close\nContent-Length=1\n=> 200\n",
          "x", 0);
    VALID("HTTP/1.1 200 OK\r\nConnection: keep-alive, CLOSE\r\n"
          "Content-Length: 0\r\n\r\n",
          0, H1P_DONE, 200, 0,
          "Connection=keep-alive, CLOSE\nContent-Length=0\n=> 200\n", "", 0);
    VALID("HTTP/1.1 200 OK\r\nConnection: upgrade\r\nConnection: x-close\r\n"
          "Content-Length: 0\r\n\r\n",
          0, H1P_DONE, 200, 1,
          "Connection=upgrade\nConnection=x-close\nContent-Length=0\n=> 200\n",
          "", 0);
    /* Transfer-Encoding in HTTP/1.0: read it, then close (RFC 9112 6.1) */
    VALID("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
          "Transfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n",
          0, H1P_DONE, 200, 0,
          "Connection=keep-alive\nTransfer-Encoding=chunked\n=> 200\n", "z", 0);
}
END_TEST

START_TEST(status_line_and_values)
{
    VALID("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", 0, H1P_DONE, 200, 1,
          "Content-Length=0\n=> 200\n", "", 0);
    VALID("HTTP/1.1 599 \r\nContent-Length: 0\r\n\r\n", 0, H1P_DONE, 599, 1,
          "Content-Length=0\n=> 599\n", "", 0);
    VALID("HTTP/1.1 200 OK with \t spaces \xc3\xa9\r\nX-Empty:\r\n"
          "X-Trim: \t  a  b \t \r\nX-Colon: a:b: c\r\n"
          "!#$%&'*+-.^_`|~09azAZ: tchars\r\nContent-Length: 0\r\n\r\n",
          0, H1P_DONE, 200, 1,
          "X-Empty=\nX-Trim=a  b\nX-Colon=a:b: c\n!#$%&'*+-.^_`|~09azAZ=tchars"
          "\nContent-Length=0\n=> 200\n",
          "", 0);
}
END_TEST

/* ---- malformed ---------------------------------------------------------- */

START_TEST(bad_status_line)
{
    INVALID("HTTP/2 200\r\n\r\n", "HTTP version");
    INVALID("HTTP/1.2 200 OK\r\n\r\n", "HTTP version");
    INVALID("HTTP/1.1\r\n\r\n", "3-digit");
    INVALID("HTTP/1.10 200 OK\r\n\r\n", "3-digit");
    INVALID("HTTP/1\r\n\r\n", "HTTP version");
    INVALID("http/1.1 200 OK\r\n\r\n", "does not start with an HTTP/1.x");
    INVALID("\r\nHTTP/1.1 200 OK\r\n\r\n", "does not start with an HTTP/1.x");
    INVALID("garbage\r\n", "does not start with an HTTP/1.x");
    INVALID("SSH-2.0-OpenSSH_9.2\r\n", "does not start with an HTTP/1.x");
    INVALID("HTTP/1.1 99 Odd\r\n\r\n", "3-digit");
    INVALID("HTTP/1.1 2000 OK\r\n\r\n", "3-digit");
    INVALID("HTTP/1.1  200 OK\r\n\r\n", "3-digit");
    INVALID("HTTP/1.1 20\r\n\r\n", "3-digit");
    INVALID("HTTP/1.1 2x0 OK\r\n\r\n", "3-digit");
    INVALID("HTTP/1.1 200\tOK\r\n\r\n", "3-digit");
    INVALID("HTTP/1.1 099 Low\r\n\r\n", "below 100");
    INVALID("HTTP/1.1 000\r\n\r\n", "below 100");
    INVALID("HTTP/1.1 200 O\rK\r\n\r\n", "reason phrase");
    INVALID("HTTP/1.1 200 O\0K\r\n\r\n", "reason phrase");
    INVALID("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
            "switched protocols");
}
END_TEST

START_TEST(bad_headers)
{
    INVALID("HTTP/1.1 200 OK\r\n folded: x\r\n\r\n", "obs-fold");
    INVALID("HTTP/1.1 200 OK\r\nX-A: a\r\n\tcontinued\r\n\r\n", "obs-fold");
    INVALID("HTTP/1.1 200 OK\r\nX-A : a\r\n\r\n", "whitespace between");
    INVALID("HTTP/1.1 200 OK\r\nX-A\t: a\r\n\r\n", "whitespace between");
    INVALID("HTTP/1.1 200 OK\r\n: a\r\n\r\n", "empty name");
    INVALID("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "no colon");
    INVALID("HTTP/1.1 200 OK\r\nX y: z\r\n\r\n", "whitespace between");
    INVALID("HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "no colon");
    INVALID("HTTP/1.1 200 OK\r\nX(A): a\r\n\r\n", "not allowed in a token");
    INVALID("HTTP/1.1 200 OK\r\nX\xc3\xa9: a\r\n\r\n", "not allowed");
    INVALID("HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n", "CR, LF or NUL");
    INVALID("HTTP/1.1 200 OK\r\nX-A: a\r\r\n\r\n", "CR, LF or NUL");
    INVALID("HTTP/1.1 200 OK\r\nX-A: a\0b\r\n\r\n", "CR, LF or NUL");
    INVALID("HTTP/1.1 200 OK\r\n\rX: a\r\n\r\n", "not allowed");
}
END_TEST

START_TEST(bad_framing)
{
    INVALID("HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", "not a number");
    INVALID("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "not a number");
    INVALID("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n", "not a number");
    INVALID("HTTP/1.1 200 OK\r\nContent-Length: 5 5\r\n\r\n", "not a number");
    INVALID("HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\n", "not a number");
    INVALID("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", "not a number");
    INVALID("HTTP/1.1 200 OK\r\nContent-Length: 5,\r\n\r\n", "not a number");
    INVALID("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n", "differing");
    INVALID("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n"
            "\r\n",
            "differing");
    INVALID("HTTP/1.1 200 OK\r\nContent-Length: 9007199254740993\r\n\r\n",
            "too large");
    INVALID("HTTP/1.1 200 OK\r\nContent-Length: "
            "99999999999999999999999999999\r\n\r\n",
            "too large");
    INVALID("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            "unsupported transfer coding");
    INVALID("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "unsupported transfer coding");
    INVALID("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
            "Transfer-Encoding: identity\r\n\r\n",
            "unsupported transfer coding");
    INVALID("HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n",
            "unsupported transfer coding");
    INVALID("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;q=1\r\n\r\n",
            "unsupported transfer coding");
}
END_TEST

#define TE_CHUNKED "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

START_TEST(bad_chunks)
{
    INVALID(TE_CHUNKED "g\r\n", "does not start with a hex size");
    INVALID(TE_CHUNKED "\r\n", "does not start with a hex size");
    INVALID(TE_CHUNKED " 5\r\nhello\r\n", "does not start with a hex size");
    INVALID(TE_CHUNKED ";x\r\n", "does not start with a hex size");
    INVALID(TE_CHUNKED "-5\r\n", "does not start with a hex size");
    INVALID(TE_CHUNKED "5x\r\nhello\r\n", "junk after the size");
    INVALID(TE_CHUNKED "5 x\r\nhello\r\n", "junk after the size");
    INVALID(TE_CHUNKED "0x5\r\nhello\r\n", "junk after the size");
    INVALID(TE_CHUNKED "1000000000000000\r\n", "more than 15 hex digits");
    INVALID(TE_CHUNKED "0000000000000000\r\n", "more than 15 hex digits");
    INVALID(TE_CHUNKED "5\r\nhelloX\r\n0\r\n\r\n", "not followed by a line");
    INVALID(TE_CHUNKED "5\r\nhello\rX\n0\r\n\r\n", "not followed by a line");
    INVALID(TE_CHUNKED "5\r\nhello\r\r\n0\r\n\r\n", "not followed by a line");
    INVALID(TE_CHUNKED "5\r\nhello world\r\n0\r\n\r\n",
            "not followed by a line");
}
END_TEST

/* ---- bounds ------------------------------------------------------------- */

/* Header lines "X: vvv\r\n" of 6 to 1000 bytes filling exactly room
 * (>= 6) bytes of buf. */
static size_t fill_lines(char *buf, size_t room)
{
    size_t n = 0;
    while (room) {
        size_t line = room > 1000 ? 1000 : room;
        if (room > 1000 && room - line < 6)
            line = room - 6;
        memcpy(buf + n, "X: ", 3);
        memset(buf + n + 3, 'v', line - 5);
        memcpy(buf + n + line - 2, "\r\n", 2);
        n += line;
        room -= line;
    }
    return n;
}

/* buf = status line + filler headers + "Content-Length: 0\r\n" + "\r\n",
 * exactly total bytes */
static size_t make_head(char *buf, size_t total)
{
    static const char start[] = "HTTP/1.1 200 OK\r\n";
    static const char end[] = "Content-Length: 0\r\n\r\n";
    size_t n = 0;
    memcpy(buf, start, sizeof start - 1);
    n += sizeof start - 1;
    n += fill_lines(buf + n, total - n - (sizeof end - 1));
    memcpy(buf + n, end, sizeof end - 1);
    return n + sizeof end - 1;
}

START_TEST(head_bound)
{
    char *buf = malloc(H1P_MAX_HEAD + 128);
    ck_assert_ptr_nonnull(buf);
    struct out r;
    size_t n = make_head(buf, H1P_MAX_HEAD);
    ck_assert_uint_eq(n, H1P_MAX_HEAD);
    run_all(buf, n, 0, 997, &r);
    ck_assert_int_eq(r.rc, H1P_DONE);
    ck_assert_uint_eq(r.used, n);
    out_free(&r);
    n = make_head(buf, H1P_MAX_HEAD + 1);
    run_all(buf, n, 0, 997, &r);
    ck_assert_int_eq(r.rc, H1P_ERROR);
    ck_assert_str_eq(r.err, "the response head is longer than 64 KiB");
    out_free(&r);
    /* a line with no end yet: refused once the bytes held cannot fit */
    struct h1p p;
    size_t used;
    h1p_init(&p, &CB, NULL, 0);
    memcpy(buf, "HTTP/1.1 200 OK\r\nX: ", 20);
    memset(buf + 20, 'v', H1P_MAX_HEAD - 20);
    ck_assert_int_eq(h1p_feed(&p, buf, H1P_MAX_HEAD - 1, &used), H1P_MORE);
    ck_assert_uint_eq(used, 17);
    ck_assert_int_eq(h1p_feed(&p, buf + 17, H1P_MAX_HEAD - 18, &used),
                     H1P_MORE);
    ck_assert_uint_eq(used, 0);
    ck_assert_int_eq(h1p_feed(&p, buf + 17, H1P_MAX_HEAD - 17, &used),
                     H1P_ERROR);
    /* interim heads count towards the bound: no endless 100 Continue */
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    size_t k = 0;
    while (k < H1P_MAX_HEAD + 64) {
        memcpy(buf + k, cont, sizeof cont - 1);
        k += sizeof cont - 1;
    }
    run_all(buf, k, 0, 1499, &r);
    ck_assert_int_eq(r.rc, H1P_ERROR);
    ck_assert_str_eq(r.err, "the response head is longer than 64 KiB");
    out_free(&r);
    free(buf);
}
END_TEST

START_TEST(chunk_line_bound)
{
    size_t hl = sizeof TE_CHUNKED - 1;
    char *buf = malloc(hl + H1P_MAX_LINE + 64);
    ck_assert_ptr_nonnull(buf);
    for (int over = 0; over <= 1; over++) {
        /* "1;" + ext filler + "\r\n" = H1P_MAX_LINE (+1) bytes */
        size_t line = H1P_MAX_LINE + (size_t)over, n = hl;
        memcpy(buf, TE_CHUNKED, hl);
        memcpy(buf + n, "1;", 2);
        memset(buf + n + 2, 'e', line - 4);
        memcpy(buf + n + line - 2, "\r\n", 2);
        n += line;
        memcpy(buf + n, "z\r\n0\r\n\r\n", 8);
        n += 8;
        struct out r;
        run_all(buf, n, 0, 211, &r);
        if (over) {
            ck_assert_int_eq(r.rc, H1P_ERROR);
            ck_assert_str_eq(r.err,
                             "a chunk-size line is longer than 4096 bytes");
        } else {
            ck_assert_int_eq(r.rc, H1P_DONE);
            ck_assert_uint_eq(r.bodylen, 1);
            ck_assert_uint_eq(r.used, n);
        }
        out_free(&r);
    }
    free(buf);
}
END_TEST

START_TEST(trailer_bound)
{
    size_t hl = sizeof TE_CHUNKED - 1;
    char *buf = malloc(hl + 8 + H1P_MAX_HEAD + 16);
    ck_assert_ptr_nonnull(buf);
    for (int over = 0; over <= 1; over++) {
        size_t n = hl, room = H1P_MAX_HEAD + (size_t)over - 2;
        memcpy(buf, TE_CHUNKED "0\r\n", hl + 3);
        n += 3;
        n += fill_lines(buf + n, room);
        memcpy(buf + n, "\r\n", 2);
        n += 2;
        struct out r;
        run_all(buf, n, 0, 1009, &r);
        if (over) {
            ck_assert_int_eq(r.rc, H1P_ERROR);
            ck_assert_str_eq(
                r.err, "the chunked body's trailers are longer than 64 KiB");
        } else {
            ck_assert_int_eq(r.rc, H1P_DONE);
            ck_assert_uint_eq(r.used, n);
        }
        out_free(&r);
    }
    free(buf);
}
END_TEST

/* ---- pause, abort, EOF, reuse ------------------------------------------- */

START_TEST(pause_and_resume)
{
    static const char in[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
                             "helloNEXT";
    struct out o;
    out_init(&o, sizeof in, 1);
    struct h1p p;
    size_t used;
    h1p_init(&p, &CB, &o, 0);
    /* paused: the head is consumed, the body is not */
    size_t h = (size_t)(strstr(in, "hello") - in);
    ck_assert_int_eq(h1p_feed(&p, in, sizeof in - 1, &used), H1P_PAUSE);
    ck_assert_uint_eq(used, h);
    ck_assert_uint_eq(o.bodylen, 0);
    ck_assert_int_eq(p.status, 200);
    /* fed again with only part of it */
    ck_assert_int_eq(h1p_feed(&p, in + h, 2, &used), H1P_MORE);
    ck_assert_uint_eq(used, 2);
    h += 2;
    ck_assert_int_eq(h1p_feed(&p, in + h, sizeof in - 1 - h, &used), H1P_PAUSE);
    ck_assert_uint_eq(used, 0);
    ck_assert_int_eq(h1p_feed(&p, in + h, sizeof in - 1 - h, &used), H1P_DONE);
    ck_assert_uint_eq(used, 3);
    ck_assert_uint_eq(o.bodylen, 5);
    ck_assert(memcmp(o.body, "hello", 5) == 0);
    ck_assert_int_eq(p.keep_alive, 1);
    out_free(&o);

    /* chunked: a pause after the size line keeps the size line consumed */
    static const char ch[] = TE_CHUNKED "3\r\nabc\r\n0\r\n\r\n";
    size_t hl = sizeof TE_CHUNKED - 1;
    out_init(&o, sizeof ch, 1);
    h1p_init(&p, &CB, &o, 0);
    ck_assert_int_eq(h1p_feed(&p, ch, sizeof ch - 1, &used), H1P_PAUSE);
    ck_assert_uint_eq(used, hl + 3);
    ck_assert_int_eq(h1p_feed(&p, ch + hl + 3, sizeof ch - 1 - hl - 3, &used),
                     H1P_DONE);
    ck_assert_uint_eq(used, sizeof ch - 1 - hl - 3);
    ck_assert_uint_eq(o.bodylen, 3);
    out_free(&o);
}
END_TEST

START_TEST(callbacks_abort)
{
    static const char in[] = "HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 5"
                             "\r\n\r\nhello";
    for (int at = 1; at <= 3; at++) {
        struct out o;
        out_init(&o, sizeof in, 0);
        o.abort_at = at;
        drive(in, sizeof in - 1, 0, NULL, 0, &o);
        ck_assert_int_eq(o.rc, H1P_ABORT);
        ck_assert_uint_eq(o.bodylen, 0);
        out_free(&o);
    }
    /* NULL callbacks: everything is taken */
    struct h1p p;
    struct h1p_cb none = {0};
    size_t used;
    h1p_init(&p, &none, NULL, 0);
    ck_assert_int_eq(h1p_feed(&p, in, sizeof in - 1, &used), H1P_DONE);
    ck_assert_uint_eq(used, sizeof in - 1);
    h1p_init(&p, NULL, NULL, 0);
    ck_assert_int_eq(h1p_feed(&p, in, sizeof in - 1, &used), H1P_DONE);
}
END_TEST

START_TEST(eof_messages)
{
    struct h1p p;
    size_t used;
    h1p_init(&p, &CB, NULL, 0);
    ck_assert_int_eq(p.started, 0);
    ck_assert_int_eq(h1p_feed(&p, "", 0, &used), H1P_MORE);
    ck_assert_int_eq(p.started, 0);
    ck_assert_int_eq(h1p_eof(&p), H1P_ERROR);
    ck_assert_str_eq(p.err, "the upstream closed the connection before "
                            "answering");
    ck_assert_int_eq(h1p_eof(&p), H1P_ERROR); /* sticky */
    /* a partial status line, held but not consumed, is an answer begun */
    h1p_init(&p, &CB, NULL, 0);
    ck_assert_int_eq(h1p_feed(&p, "HTTP/1.", 7, &used), H1P_MORE);
    ck_assert_uint_eq(used, 0);
    ck_assert_int_eq(p.started, 1);
    ck_assert_int_eq(h1p_eof(&p), H1P_ERROR);
    ck_assert_str_eq(p.err, "the upstream closed the connection in the "
                            "middle of the response head");
    INVALID("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n",
            "in the middle of the response head");
    INVALID("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r",
            "in the middle of the response head");
    /* after DONE, EOF changes nothing */
    static const char in[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    h1p_init(&p, &CB, NULL, 0);
    struct out o;
    out_init(&o, sizeof in, 0);
    h1p_init(&p, &CB, &o, 0);
    ck_assert_int_eq(h1p_feed(&p, in, sizeof in - 1, &used), H1P_DONE);
    ck_assert_int_eq(h1p_eof(&p), H1P_DONE);
    ck_assert_int_eq(p.keep_alive, 1);
    out_free(&o);
}
END_TEST

START_TEST(pipelined_responses)
{
    /* two responses on one connection: the second parser starts where the
     * first stopped */
    static const char in[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab"
                             "HTTP/1.1 201 Created\r\nTransfer-Encoding: "
                             "chunked\r\n\r\n2\r\ncd\r\n0\r\n\r\n";
    struct out o;
    out_init(&o, sizeof in, 0);
    struct h1p p;
    size_t used, at = 0;
    h1p_init(&p, &CB, &o, 0);
    ck_assert_int_eq(h1p_feed(&p, in, sizeof in - 1, &used), H1P_DONE);
    at += used;
    ck_assert_int_eq(p.keep_alive, 1);
    h1p_init(&p, &CB, &o, 0);
    ck_assert_int_eq(h1p_feed(&p, in + at, sizeof in - 1 - at, &used),
                     H1P_DONE);
    at += used;
    ck_assert_uint_eq(at, sizeof in - 1);
    ck_assert_int_eq(p.status, 201);
    ck_assert_uint_eq(o.bodylen, 4);
    ck_assert(memcmp(o.body, "abcd", 4) == 0);
    out_free(&o);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("h1parse");
    TCase *tc = tcase_create("h1parse");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, content_length);
    tcase_add_test(tc, chunked);
    tcase_add_test(tc, close_delimited);
    tcase_add_test(tc, no_body);
    tcase_add_test(tc, interim_responses);
    tcase_add_test(tc, keep_alive);
    tcase_add_test(tc, status_line_and_values);
    tcase_add_test(tc, bad_status_line);
    tcase_add_test(tc, bad_headers);
    tcase_add_test(tc, bad_framing);
    tcase_add_test(tc, bad_chunks);
    tcase_add_test(tc, head_bound);
    tcase_add_test(tc, chunk_line_bound);
    tcase_add_test(tc, trailer_bound);
    tcase_add_test(tc, pause_and_resume);
    tcase_add_test(tc, callbacks_abort);
    tcase_add_test(tc, eof_messages);
    tcase_add_test(tc, pipelined_responses);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
