/*
 * sse_parser.c - incremental text/event-stream parser; see sse_parser.h.
 *
 * Whole lines inside one fed piece are parsed in place; only a line cut by
 * the end of a piece is copied into p->line. Fields of the event being built
 * are copied (data, event, id). Everything copied counts against max_event.
 */
#include "sse_parser.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char sse_bom[3] = {0xEF, 0xBB, 0xBF};

void sse_parser_init(struct sse_parser *p, size_t max_event, int strict,
                     sse_event_fn on_event, sse_comment_fn on_comment,
                     void *arg)
{
    memset(p, 0, sizeof(*p));
    p->max_event =
        max_event < SSE_PARSER_MIN_EVENT ? SSE_PARSER_MIN_EVENT : max_event;
    p->strict = strict;
    p->on_event = on_event;
    p->on_comment = on_comment;
    p->arg = arg;
}

void sse_parser_free(struct sse_parser *p)
{
    free(p->line.p);
    free(p->data.p);
    free(p->event.p);
    free(p->id.p);
    p->line = p->data = p->event = p->id = (struct sse_buf){0};
}

static int sse_fail(struct sse_parser *p, const char *code, const char *msg)
{
    if (!p->failed) {
        snprintf(p->err, sizeof p->err, "%s", msg);
        p->code = code;
    }
    p->failed = 1;
    return -1;
}

/* Bytes held for the event in progress, plus `more` about to be. While a
 * buffered line is being parsed its bytes are not counted twice. */
static int sse_over(const struct sse_parser *p, size_t more)
{
    size_t held =
        p->data.len + p->event.len + p->id.len + (p->in_line ? 0 : p->line.len);
    return more > p->max_event || held > p->max_event - more;
}

static int sse_too_big(struct sse_parser *p)
{
    char msg[96];
    snprintf(msg, sizeof msg, "an event exceeds the limit of %zu bytes",
             p->max_event);
    return sse_fail(p, "event_too_large", msg);
}

static int sse_append(struct sse_parser *p, struct sse_buf *b, const char *s,
                      size_t n)
{
    if (sse_over(p, n))
        return sse_too_big(p);
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        if (cap > p->max_event + 1)
            cap = p->max_event + 1;
        char *q = realloc(b->p, cap);
        if (!q)
            return sse_fail(p, "out_of_memory", "out of memory");
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

static void sse_reset_event(struct sse_parser *p)
{
    p->data.len = p->event.len = p->id.len = 0;
    p->has_data = p->has_event = p->has_id = p->has_retry = 0;
    p->retry = 0;
    p->pending = 0;
}

static int sse_dispatch(struct sse_parser *p)
{
    if (!p->pending)
        return 0;
    struct sse_event ev = {
        .data = p->data.p ? p->data.p : "",
        .data_len = p->data.len,
        .has_data = p->has_data,
        .event = p->event.p ? p->event.p : "",
        .event_len = p->event.len,
        .has_event = p->has_event,
        .id = p->id.p ? p->id.p : "",
        .id_len = p->id.len,
        .has_id = p->has_id,
        .retry = p->retry,
        .has_retry = p->has_retry,
    };
    int rc = p->on_event ? p->on_event(p->arg, &ev) : 0;
    sse_reset_event(p);
    return rc;
}

static int sse_is(const char *f, size_t n, const char *name)
{
    return strlen(name) == n && memcmp(f, name, n) == 0;
}

static int sse_field(struct sse_parser *p, const char *f, size_t fn,
                     const char *v, size_t vn)
{
    if (sse_is(f, fn, "data")) {
        if (p->has_data && sse_append(p, &p->data, "\n", 1) != 0)
            return -1;
        if (sse_append(p, &p->data, v, vn) != 0)
            return -1;
        p->has_data = 1;
    } else if (sse_is(f, fn, "event")) {
        p->event.len = 0;
        if (sse_append(p, &p->event, v, vn) != 0)
            return -1;
        p->has_event = 1;
    } else if (sse_is(f, fn, "id")) {
        if (memchr(v, '\0', vn))
            return 0; /* the standard ignores such an id */
        p->id.len = 0;
        if (sse_append(p, &p->id, v, vn) != 0)
            return -1;
        p->has_id = 1;
    } else if (sse_is(f, fn, "retry")) {
        uint64_t r = 0;
        if (vn == 0)
            return 0;
        for (size_t i = 0; i < vn; i++) {
            if (v[i] < '0' || v[i] > '9')
                return 0; /* ignored, as the standard says */
            r = r > UINT64_MAX / 10 ? UINT64_MAX
                                    : r * 10 + (uint64_t)(v[i] - '0');
        }
        p->retry = r;
        p->has_retry = 1;
    } else if (p->strict) {
        return sse_fail(p, "unknown_field",
                        "a line that is not an event-stream field "
                        "(unknown field name)");
    } else {
        return 0;
    }
    p->pending = 1;
    return 0;
}

/* One line, without its line end. */
static int sse_line(struct sse_parser *p, const char *l, size_t n)
{
    if (n == 0)
        return sse_dispatch(p);
    if (sse_over(p, n))
        return sse_too_big(p);
    if (l[0] == ':')
        return p->on_comment ? p->on_comment(p->arg, l + 1, n - 1) : 0;
    const char *colon = memchr(l, ':', n);
    if (!colon)
        return sse_field(p, l, n, "", 0);
    size_t fn = (size_t)(colon - l);
    const char *v = colon + 1;
    size_t vn = n - fn - 1;
    if (vn && *v == ' ') {
        v++;
        vn--;
    }
    return sse_field(p, l, fn, v, vn);
}

/* Match a leading byte order mark; returns bytes of buf consumed. A prefix
 * that turns out not to be one is replayed into the line buffer. */
static size_t sse_bom_skip(struct sse_parser *p, const char *buf, size_t len)
{
    size_t i = 0;
    while (p->bom_seen < 3 && i < len) {
        if ((unsigned char)buf[i] == sse_bom[p->bom_seen]) {
            p->bom_seen++;
            i++;
            continue;
        }
        int seen = p->bom_seen;
        p->bom_seen = 3;
        if (seen &&
            sse_append(p, &p->line, (const char *)sse_bom, (size_t)seen) != 0)
            return len + 1;
    }
    return i;
}

int sse_parser_feed(struct sse_parser *p, const char *buf, size_t len)
{
    if (p->failed)
        return -1;
    size_t skip = sse_bom_skip(p, buf, len);
    if (skip > len)
        return -1;
    const char *s = buf + skip, *end = buf + len;
    if (p->cr_pending && s < end) {
        p->cr_pending = 0;
        if (*s == '\n')
            s++;
    }
    while (s < end) {
        const char *e = s;
        while (e < end && *e != '\n' && *e != '\r')
            e++;
        if (e == end)
            return sse_append(p, &p->line, s, (size_t)(end - s));
        int rc;
        if (p->line.len) {
            if (sse_append(p, &p->line, s, (size_t)(e - s)) != 0)
                return -1;
            p->in_line = 1;
            rc = sse_line(p, p->line.p, p->line.len);
            p->in_line = 0;
            p->line.len = 0;
        } else {
            rc = sse_line(p, s, (size_t)(e - s));
        }
        if (rc != 0)
            return p->failed ? -1 : rc;
        if (*e == '\r') {
            if (e + 1 == end)
                p->cr_pending = 1;
            else if (e[1] == '\n')
                e++;
        }
        s = e + 1;
    }
    return 0;
}

int sse_parser_end(struct sse_parser *p)
{
    int partial =
        p->pending || p->line.len || (p->bom_seen > 0 && p->bom_seen < 3);
    p->line.len = 0;
    p->cr_pending = 0;
    sse_reset_event(p);
    return partial;
}
