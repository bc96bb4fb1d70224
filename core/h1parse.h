/*
 * h1parse.h - an incremental parser for HTTP/1.x responses, the reading
 * half of sluice's own HTTP/1.1 client for http:// upstreams (h1client.c).
 *
 * Push style, no allocation, no copy: the caller keeps the bytes it read
 * from the socket in its own buffer and feeds everything it holds that was
 * not consumed yet; the parser consumes only whole lines of the head (the
 * status line, each header, a chunk-size line, each trailer) and any amount
 * of body, and says how much it consumed. The caller keeps the rest, reads
 * more after it, and feeds again from the first unconsumed byte.
 *
 * Framing follows RFC 9112: no body for a HEAD request, 1xx, 204 and 304;
 * chunked (Transfer-Encoding: chunked) wins over Content-Length (and then
 * the connection is not reused); Content-Length; else the body runs until
 * the connection closes (h1p_eof). Interim 1xx responses (100 Continue, 103
 * Early Hints) are skipped whole: their headers are not reported.
 * 101 Switching Protocols is an error (no upgrade is ever asked for).
 * Lines may end in CRLF or a bare LF (as libcurl accepts).
 */
#ifndef SLUICE_H1PARSE_H
#define SLUICE_H1PARSE_H

#include <stddef.h>
#include <stdint.h>

/* Bounds: a head (status line and headers) longer than H1P_MAX_HEAD, a
 * chunk-size line longer than H1P_MAX_LINE, or trailers longer than
 * H1P_MAX_HEAD are errors (the caller's read buffer must hold at least
 * H1P_MAX_HEAD + 1 bytes). Lengths count every byte including the line
 * ends (for a head or trailers, the empty line that ends them too); the
 * heads of interim 1xx responses count towards the final head's bound, so
 * an endless stream of 1xx is an error too. */
#define H1P_MAX_HEAD (64 * 1024)
#define H1P_MAX_LINE 4096

/* h1p_feed / h1p_eof results */
enum {
    H1P_MORE = 0,   /* all it could take is consumed: read more, feed again */
    H1P_DONE = 1,   /* the response is complete (bytes after it unused) */
    H1P_PAUSE = 2,  /* on_body said pause: feed the unused bytes again later */
    H1P_ERROR = -1, /* malformed or over a bound: h1p.err says what */
    H1P_ABORT = -2  /* a callback returned -1 */
};

/* Any callback may be NULL (headers ignored, head ignored, body taken). */
struct h1p_cb {
    /* One header of the final response, in order, name and value as sent
     * (value without the surrounding spaces/tabs). Non-zero aborts. */
    int (*on_header)(void *u, const char *name, size_t nlen, const char *value,
                     size_t vlen);
    /* The final response's head is complete (status in p->status).
     * Non-zero aborts. */
    int (*on_head)(void *u, int status);
    /* Body bytes, chunked framing removed. 0: taken; 1: pause, these bytes
     * are NOT taken (h1p_feed returns H1P_PAUSE, *used stops before them);
     * -1: abort. Never called with len 0. */
    int (*on_body)(void *u, const char *data, size_t len);
};

struct h1p {
    /* read by the caller */
    int status;      /* the final response's status, 0 until its status
                        line (set before its first on_header) */
    int keep_alive;  /* after H1P_DONE: the connection may carry another
                        request (HTTP/1.1 without Connection: close, or
                        HTTP/1.0 with Connection: keep-alive; never after a
                        close-delimited body or chunked + Content-Length) */
    const char *err; /* after H1P_ERROR: a static message for logs */
    int started;     /* 1 once h1p_feed was handed a byte of the response
                        (consumed or not): a reused connection that closes
                        while this is 0 never answered the request */
    /* private */
    const struct h1p_cb *cb;
    void *u;
    int no_body; /* the request was HEAD */
    int state;
    int result; /* sticky after H1P_DONE, H1P_ERROR, H1P_ABORT */
    int minor;  /* HTTP/1.<minor> */
    int code;   /* the status of the response being parsed (maybe 1xx) */
    int chunked, has_len, conn_close, conn_keep;
    int te_seen;     /* a Transfer-Encoding header was seen */
    uint64_t length; /* Content-Length when has_len */
    uint64_t remain; /* body bytes left (Content-Length or chunk) */
    size_t head_len; /* bytes of the current head or trailers so far */
};

/* Ready p for one response; no_body: the request was HEAD. cb and u are
 * borrowed for the parser's life. */
void h1p_init(struct h1p *p, const struct h1p_cb *cb, void *u, int no_body);
/* Parse what can be parsed of data[0..len): *used = bytes consumed (the
 * caller drops them and feeds the rest again with more after it). After
 * H1P_DONE, H1P_ERROR or H1P_ABORT every later call returns the same
 * result and consumes nothing. */
int h1p_feed(struct h1p *p, const char *data, size_t len, size_t *used);
/* The connection closed (EOF) with nothing left unconsumed that could be
 * parsed: H1P_DONE when this ends a close-delimited body, else H1P_ERROR
 * (err says what was cut short: no response, the head, the body). */
int h1p_eof(struct h1p *p);

#endif
