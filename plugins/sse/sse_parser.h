/*
 * sse_parser.h - an incremental parser of text/event-stream (the SSE wire
 * format of the WHATWG HTML standard, section "Server-sent events").
 *
 * Pure: no I/O, no sluice.h, no allocation but its own bounded buffers.
 * Feed it the bytes of a stream in pieces of any size; it calls back once per
 * complete event (the blank line that ends it has arrived) and once per
 * comment line. Handles "\n", "\r\n" and "\r" line ends, including a "\r"
 * that ends one piece and a "\n" that starts the next; multi-line data;
 * "event:", "id:", "retry:"; a field name without a colon; the one leading
 * space after the colon; a UTF-8 byte order mark at the start. Bytes are
 * never decoded: a UTF-8 character split across pieces is just bytes.
 *
 * Memory is bounded: the pending line plus the fields of the event being
 * built may not exceed max_event bytes; past that feeding fails.
 *
 * What it is not: a dispatcher with "last event id" state, nor a validator
 * of the data (JSON or otherwise).
 */
#ifndef SSE_PARSER_H
#define SSE_PARSER_H

#include <stddef.h>
#include <stdint.h>

/* One complete event. Pointers are borrowed for the callback only. */
struct sse_event {
    const char *data; /* data lines joined by "\n" (no trailing "\n") */
    size_t data_len;
    int has_data;      /* at least one data line */
    const char *event; /* event type, when has_event */
    size_t event_len;
    int has_event;
    const char *id; /* when has_id */
    size_t id_len;
    int has_id;
    uint64_t retry; /* when has_retry */
    int has_retry;
};

/* Return 0 to go on, non-zero to stop feeding (returned by feed). */
typedef int (*sse_event_fn)(void *arg, const struct sse_event *ev);
/* text: the comment without its leading ':' (borrowed). */
typedef int (*sse_comment_fn)(void *arg, const char *text, size_t len);

struct sse_buf {
    char *p;
    size_t len, cap;
};

struct sse_parser {
    size_t max_event;
    int strict;     /* unknown field names are a framing error */
    int cr_pending; /* the last byte fed was '\r' */
    int bom_seen;   /* bytes of a leading BOM matched (3 = decided) */
    int pending;    /* fields of an event have been seen */
    int failed;
    int in_line;         /* parsing the buffered line */
    struct sse_buf line; /* the line in progress */
    struct sse_buf data;
    struct sse_buf event;
    struct sse_buf id;
    uint64_t retry;
    int has_data, has_event, has_id, has_retry;
    sse_event_fn on_event;
    sse_comment_fn on_comment; /* may be NULL */
    void *arg;
    char err[128];
    const char *code; /* when failed: event_too_large, out_of_memory or
                         unknown_field (a static string) */
};

#define SSE_PARSER_MIN_EVENT 64

/* Set up p. max_event: bound of one event in bytes (at least
 * SSE_PARSER_MIN_EVENT). strict: fail on a field name other than data,
 * event, id and retry (the standard says ignore it; an OpenAI-style upstream
 * never sends one, so it means the bytes are not an event stream). */
void sse_parser_init(struct sse_parser *p, size_t max_event, int strict,
                     sse_event_fn on_event, sse_comment_fn on_comment,
                     void *arg);
/* Release the buffers; p may be initialised again. */
void sse_parser_free(struct sse_parser *p);

/* Feed len bytes. Returns 0; -1 on a framing error (p->err says why; every
 * later feed fails too); or the callback's non-zero value. */
int sse_parser_feed(struct sse_parser *p, const char *buf, size_t len);

/* The stream ended. Returns 1 when an incomplete event (or line) was
 * pending and is discarded, as the standard says; 0 otherwise. Resets the
 * event state (not the error). */
int sse_parser_end(struct sse_parser *p);

#endif
