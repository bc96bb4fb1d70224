/*
 * h1parse.c - see h1parse.h: the HTTP/1.x response parser of sluice's own
 * client. It only parses: no socket, no buffer, no allocation; the client
 * (h1client.c) owns the bytes and decides what to do with a connection.
 *
 * Strict where a lax reading could desynchronise the connection or let a
 * response be read two ways (request smuggling, RFC 9112 section 11.2): a
 * header name must be a token followed at once by its colon, obs-fold is
 * refused, CR/NUL inside a value is refused, Content-Length is digits only
 * and must agree with itself, and the last transfer coding must be
 * chunked. Lenient where every implementation is: a bare LF ends a line,
 * the reason phrase may be empty, chunk extensions are ignored.
 *
 * Every bound is checked so that the verdict does not depend on how the
 * bytes were cut: a line too long is refused as soon as the bytes held
 * prove it cannot fit, and the same message is given when it arrives whole.
 */
#include "h1parse.h"

#include <string.h>
#include <strings.h>

enum {
    S_STATUS,     /* expecting a status line */
    S_HEADER,     /* header lines until the empty line */
    S_BODY_LEN,   /* Content-Length body, p->remain left */
    S_BODY_CLOSE, /* body until EOF */
    S_CHUNK_SIZE, /* expecting a chunk-size line */
    S_CHUNK_DATA, /* chunk data, p->remain left */
    S_CHUNK_END,  /* the line end after a chunk's data */
    S_TRAILER,    /* trailer lines until the empty line */
    S_END         /* DONE, ERROR or ABORT: p->result */
};

/* Content-Length above this is refused (2^53: exact in a double, far over
 * any body an upstream sends, and no overflow when counting). */
#define H1P_MAX_LENGTH (UINT64_C(1) << 53)
/* a chunk size of more hex digits is refused (no uint64_t overflow) */
#define H1P_MAX_HEX 15

static const char E_HEAD_LONG[] = "the response head is longer than 64 KiB";
static const char E_TRAILER_LONG[] =
    "the chunked body's trailers are longer than 64 KiB";
static const char E_CHUNK_LONG[] =
    "a chunk-size line is longer than 4096 bytes";

void h1p_init(struct h1p *p, const struct h1p_cb *cb, void *u, int no_body)
{
    memset(p, 0, sizeof *p);
    p->cb = cb;
    p->u = u;
    p->no_body = no_body ? 1 : 0;
    p->state = S_STATUS;
}

static int h1p_fail(struct h1p *p, const char *msg)
{
    p->err = msg;
    p->state = S_END;
    p->result = H1P_ERROR;
    return H1P_ERROR;
}

static int h1p_abort(struct h1p *p)
{
    p->err = "a callback aborted the response";
    p->state = S_END;
    p->result = H1P_ABORT;
    return H1P_ABORT;
}

static void h1p_done(struct h1p *p)
{
    p->state = S_END;
    p->result = H1P_DONE;
    if (p->minor == 1)
        p->keep_alive = !p->conn_close;
    else
        p->keep_alive = p->conn_keep && !p->conn_close;
    /* chunked + Content-Length, or Transfer-Encoding in HTTP/1.0: the
     * framing is suspect (RFC 9112 section 6.1), read this one, then close */
    if (p->te_seen && (p->has_len || p->minor == 0))
        p->keep_alive = 0;
}

/* Find the line starting at data[0..len). 1: found, *n = its length with
 * the line end, *content = without it; 0: no line end yet and the line
 * may still fit; -1: the line cannot fit in `room` bytes. */
static int h1p_line(const char *data, size_t len, size_t room, size_t *n,
                    size_t *content)
{
    size_t scan = len < room ? len : room;
    const char *lf = memchr(data, '\n', scan);
    if (!lf)
        return len >= room ? -1 : 0;
    *n = (size_t)(lf - data) + 1;
    *content = *n - 1;
    if (*content && data[*content - 1] == '\r')
        (*content)--;
    return 1;
}

/* A head or trailer line: the room left under H1P_MAX_HEAD. */
static int h1p_head_line(struct h1p *p, const char *data, size_t len, size_t *n,
                         size_t *content)
{
    size_t room = H1P_MAX_HEAD - p->head_len;
    int rc = h1p_line(data, len, room, n, content);
    if (rc < 0)
        return h1p_fail(p,
                        p->state == S_TRAILER ? E_TRAILER_LONG : E_HEAD_LONG);
    if (rc > 0)
        p->head_len += *n;
    return rc;
}

static int h1p_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int h1p_is_ws(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 9110 tchar */
static int h1p_is_tchar(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || h1p_is_digit(c))
        return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* CR, LF or NUL inside a value or reason phrase */
static int h1p_has_ctl(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return 1;
    return 0;
}

/* "HTTP/1.x SP 3DIGIT [SP reason]" */
static int h1p_status_line(struct h1p *p, const char *s, size_t n)
{
    if (n < 5 || memcmp(s, "HTTP/", 5) != 0)
        return h1p_fail(p, "the upstream's answer does not start with an "
                           "HTTP/1.x status line");
    if (n < 8 || memcmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1'))
        return h1p_fail(p, "the upstream answered with an HTTP version "
                           "other than HTTP/1.0 or HTTP/1.1");
    if (n < 12 || s[8] != ' ' || !h1p_is_digit(s[9]) || !h1p_is_digit(s[10]) ||
        !h1p_is_digit(s[11]) || (n > 12 && s[12] != ' '))
        return h1p_fail(p, "the status line is not \"HTTP/1.x\", a space, a "
                           "3-digit status and an optional reason");
    if (h1p_has_ctl(s + 12, n - 12))
        return h1p_fail(p, "the status line's reason phrase holds a CR or "
                           "NUL");
    int code = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    if (code < 100)
        return h1p_fail(p, "the status code is below 100");
    if (code == 101)
        return h1p_fail(p, "the upstream switched protocols (101) though no "
                           "upgrade was asked for");
    p->minor = s[7] - '0';
    p->code = code;
    if (code >= 200)
        p->status = code;
    p->state = S_HEADER;
    return 0;
}

/* The next element of the comma-separated list v[*off..n), OWS trimmed
 * (maybe empty); 0 when the list is exhausted. */
static int h1p_list_next(const char *v, size_t n, size_t *off, const char **el,
                         size_t *elen)
{
    if (*off > n)
        return 0;
    size_t b = *off, e = b;
    while (e < n && v[e] != ',')
        e++;
    *off = e + 1; /* past the comma, or past n: exhausted next time */
    while (b < e && h1p_is_ws(v[b]))
        b++;
    while (e > b && h1p_is_ws(v[e - 1]))
        e--;
    *el = v + b;
    *elen = e - b;
    return 1;
}

static int h1p_token_is(const char *el, size_t elen, const char *tok)
{
    return elen == strlen(tok) && strncasecmp(el, tok, elen) == 0;
}

/* 1*DIGIT within H1P_MAX_LENGTH: 0 ok, -1 not digits, -2 too large */
static int h1p_digits(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (!n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!h1p_is_digit(s[i]))
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > H1P_MAX_LENGTH)
            return -2;
    }
    *out = v;
    return 0;
}

/* Content-Length: 1*DIGIT, or a list of equal ones; equal to any earlier
 * Content-Length header (RFC 9110 section 8.6). */
static int h1p_content_length(struct h1p *p, const char *v, size_t n)
{
    const char *el;
    size_t elen, off = 0;
    while (h1p_list_next(v, n, &off, &el, &elen)) {
        uint64_t len = 0;
        int rc = h1p_digits(el, elen, &len);
        if (rc == -2)
            return h1p_fail(p, "the Content-Length is too large");
        if (rc < 0)
            return h1p_fail(p, "the Content-Length is not a number");
        if (p->has_len && len != p->length)
            return h1p_fail(p, "the response has several differing "
                               "Content-Length values");
        p->has_len = 1;
        p->length = len;
    }
    return 0;
}

/* Transfer-Encoding: only the last coding matters here (it must be
 * chunked, checked at the end of the head); empty elements are skipped. */
static void h1p_transfer_encoding(struct h1p *p, const char *v, size_t n)
{
    const char *el;
    size_t elen, off = 0;
    p->te_seen = 1;
    while (h1p_list_next(v, n, &off, &el, &elen))
        if (elen)
            p->chunked = h1p_token_is(el, elen, "chunked");
}

static void h1p_connection(struct h1p *p, const char *v, size_t n)
{
    const char *el;
    size_t elen, off = 0;
    while (h1p_list_next(v, n, &off, &el, &elen)) {
        if (h1p_token_is(el, elen, "close"))
            p->conn_close = 1;
        else if (h1p_token_is(el, elen, "keep-alive"))
            p->conn_keep = 1;
    }
}

/* A header of the final response: framing fields noted, then reported. */
static int h1p_header_use(struct h1p *p, const char *name, size_t nlen,
                          const char *v, size_t vlen)
{
    if (h1p_token_is(name, nlen, "content-length")) {
        if (h1p_content_length(p, v, vlen) < 0)
            return H1P_ERROR;
    } else if (h1p_token_is(name, nlen, "transfer-encoding")) {
        h1p_transfer_encoding(p, v, vlen);
    } else if (h1p_token_is(name, nlen, "connection")) {
        h1p_connection(p, v, vlen);
    }
    if (p->cb && p->cb->on_header &&
        p->cb->on_header(p->u, name, nlen, v, vlen) != 0)
        return h1p_abort(p);
    return 0;
}

/* "name: value" with name a token; interim (1xx) headers are checked but
 * neither used nor reported. */
static int h1p_header_line(struct h1p *p, const char *s, size_t n)
{
    if (n && h1p_is_ws(s[0]))
        return h1p_fail(p, "a header line starts with whitespace (obs-fold "
                           "is not accepted)");
    if (!memchr(s, ':', n))
        return h1p_fail(p, "a header line has no colon");
    size_t i = 0;
    while (h1p_is_tchar(s[i]))
        i++; /* stops at the colon at the latest */
    if (h1p_is_ws(s[i]))
        return h1p_fail(p, "whitespace between a header name and its colon");
    if (s[i] != ':')
        return h1p_fail(p, "a header name holds a character that is not "
                           "allowed in a token");
    if (i == 0)
        return h1p_fail(p, "a header line has an empty name");
    const char *v = s + i + 1, *end = s + n;
    while (v < end && h1p_is_ws(*v))
        v++;
    while (end > v && h1p_is_ws(end[-1]))
        end--;
    if (h1p_has_ctl(v, (size_t)(end - v)))
        return h1p_fail(p, "a header value holds a CR, LF or NUL");
    if (p->code < 200)
        return 0;
    return h1p_header_use(p, s, i, v, (size_t)(end - v));
}

/* The empty line after the headers: skip an interim response, else pick
 * the body's framing and report the head. */
static int h1p_head_end(struct h1p *p)
{
    if (p->code < 200) {
        p->state = S_STATUS; /* head_len keeps counting */
        return 0;
    }
    if (p->te_seen && !p->chunked)
        return h1p_fail(p, "the response uses an unsupported transfer "
                           "coding (only chunked is read)");
    if (p->cb && p->cb->on_head && p->cb->on_head(p->u, p->status) != 0)
        return h1p_abort(p);
    if (p->no_body || p->status == 204 || p->status == 304) {
        h1p_done(p);
        return H1P_DONE;
    }
    if (p->chunked) {
        p->state = S_CHUNK_SIZE;
    } else if (p->has_len) {
        p->remain = p->length;
        p->state = S_BODY_LEN;
        if (!p->remain) {
            h1p_done(p);
            return H1P_DONE;
        }
    } else {
        p->state = S_BODY_CLOSE;
    }
    return 0;
}

/* "1*HEXDIG [BWS] [; ext...]" */
static int h1p_chunk_size(struct h1p *p, const char *s, size_t n)
{
    uint64_t v = 0;
    size_t i = 0;
    for (; i < n; i++) {
        char c = s[i];
        int d;
        if (h1p_is_digit(c))
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            break;
        if (i == H1P_MAX_HEX)
            return h1p_fail(p, "a chunk size has more than 15 hex digits");
        v = v * 16 + (uint64_t)d;
    }
    if (i == 0)
        return h1p_fail(p, "a chunk-size line does not start with a hex "
                           "size");
    while (i < n && h1p_is_ws(s[i]))
        i++;
    if (i < n && s[i] != ';')
        return h1p_fail(p, "a chunk-size line holds junk after the size");
    p->remain = v;
    if (v) {
        p->state = S_CHUNK_DATA;
    } else {
        p->state = S_TRAILER;
        p->head_len = 0;
    }
    return 0;
}

/* Hand up to p->remain (or all, close-delimited) of data to on_body.
 * Sets *took; returns 0, H1P_PAUSE or H1P_ABORT. */
static int h1p_body(struct h1p *p, const char *data, size_t len, size_t *took)
{
    size_t n = len;
    if (p->state != S_BODY_CLOSE && p->remain < n)
        n = (size_t)p->remain;
    *took = 0;
    if (!n)
        return 0;
    if (p->cb && p->cb->on_body) {
        int rc = p->cb->on_body(p->u, data, n);
        if (rc == 1)
            return H1P_PAUSE;
        if (rc != 0)
            return h1p_abort(p);
    }
    *took = n;
    if (p->state != S_BODY_CLOSE)
        p->remain -= n;
    return 0;
}

/* After a chunk's data: exactly CRLF or LF. 1 consumed *n bytes, 0 more
 * bytes needed, H1P_ERROR. */
static int h1p_chunk_end(struct h1p *p, const char *data, size_t len, size_t *n)
{
    if (!len)
        return 0;
    if (data[0] == '\n') {
        *n = 1;
        return 1;
    }
    if (data[0] == '\r') {
        if (len < 2)
            return 0;
        if (data[1] == '\n') {
            *n = 2;
            return 1;
        }
    }
    return h1p_fail(p, "a chunk's data is not followed by a line end");
}

/* A whole line of the head or trailers (without its line end): 0 go on,
 * or H1P_DONE, H1P_ERROR, H1P_ABORT. */
static int h1p_head_line_use(struct h1p *p, const char *s, size_t n)
{
    if (p->state == S_STATUS)
        return h1p_status_line(p, s, n);
    if (p->state == S_HEADER)
        return n ? h1p_header_line(p, s, n) : h1p_head_end(p);
    if (n)
        return 0; /* a trailer: skipped */
    h1p_done(p);
    return H1P_DONE;
}

/* h1p_step: progressed (maybe by 0 bytes on a state change), step again */
#define H1P_STEP 3

/* Body bytes in a Content-Length, chunk or close-delimited body. */
static int h1p_step_body(struct h1p *p, const char *data, size_t len, size_t *n)
{
    if (!len)
        return H1P_MORE;
    int rc = h1p_body(p, data, len, n);
    if (rc)
        return rc;
    if (p->state == S_BODY_LEN && !p->remain) {
        h1p_done(p);
        return H1P_DONE;
    }
    if (p->state == S_CHUNK_DATA && !p->remain)
        p->state = S_CHUNK_END;
    return H1P_STEP;
}

/* One step in the current state at data[0..len): H1P_STEP having consumed
 * *n bytes, or an h1p result to return. */
static int h1p_step(struct h1p *p, const char *data, size_t len, size_t *n)
{
    size_t content = 0;
    int rc;
    *n = 0;
    switch (p->state) {
    case S_STATUS:
    case S_HEADER:
    case S_TRAILER:
        rc = h1p_head_line(p, data, len, n, &content);
        if (rc != 1)
            return rc; /* H1P_MORE or H1P_ERROR */
        rc = h1p_head_line_use(p, data, content);
        return rc ? rc : H1P_STEP;
    case S_CHUNK_SIZE:
        rc = h1p_line(data, len, H1P_MAX_LINE, n, &content);
        if (rc < 0)
            return h1p_fail(p, E_CHUNK_LONG);
        if (rc == 0)
            return H1P_MORE;
        rc = h1p_chunk_size(p, data, content);
        return rc ? rc : H1P_STEP;
    case S_BODY_LEN:
    case S_BODY_CLOSE:
    case S_CHUNK_DATA:
        return h1p_step_body(p, data, len, n);
    case S_CHUNK_END:
        rc = h1p_chunk_end(p, data, len, n);
        if (rc != 1)
            return rc; /* H1P_MORE or H1P_ERROR */
        p->state = S_CHUNK_SIZE;
        return H1P_STEP;
    default:
        return p->result;
    }
}

int h1p_feed(struct h1p *p, const char *data, size_t len, size_t *used)
{
    size_t pos = 0;
    *used = 0;
    if (p->state == S_END)
        return p->result;
    if (len)
        p->started = 1;
    for (;;) {
        size_t n = 0;
        int rc = h1p_step(p, data + pos, len - pos, &n);
        pos += n;
        if (rc == H1P_STEP)
            continue;
        *used = pos;
        return rc;
    }
}

int h1p_eof(struct h1p *p)
{
    switch (p->state) {
    case S_END:
        return p->result;
    case S_BODY_CLOSE:
        h1p_done(p);
        p->keep_alive = 0;
        return H1P_DONE;
    case S_STATUS:
        if (!p->started)
            return h1p_fail(p, "the upstream closed the connection before "
                               "answering");
        /* fall through */
    case S_HEADER:
        return h1p_fail(p, "the upstream closed the connection in the "
                           "middle of the response head");
    case S_TRAILER:
        return h1p_fail(p, "the upstream closed the connection in the "
                           "middle of the chunked body's trailers");
    default:
        return h1p_fail(p, "the upstream closed the connection in the "
                           "middle of the body");
    }
}
