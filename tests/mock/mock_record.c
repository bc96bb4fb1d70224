/* mock_record.c - the record of what the mock upstream saw: every non-control
 * request (headers, raw body, timing, status, outcome) and TCP connection
 * counters. One mutex guards it all; the newest max_records are kept so a
 * long benchmark does not grow without bound. Not the HTTP side. */
#include "mock.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct mock_rec {
    int refs;
    unsigned seq;
    unsigned long conn_id;
    char method[16];
    char *path;
    json_t *headers;
    json_t *query; /* the query arguments, decoded; NULL if none */
    char *body;
    size_t body_len;
    long long t_start;
    long long t_end; /* -1 while in progress */
    int status;      /* 0 = nothing sent */
    enum mock_outcome outcome;
    unsigned chunks;
};

static struct {
    pthread_mutex_t lock;
    struct mock_rec **ring;
    size_t cap;
    size_t head; /* index of the oldest record */
    size_t count;
    unsigned next_seq;
    unsigned long next_conn_id;
    long long conns_opened;
    long long tls_conns_opened; /* of conns_opened, on the TLS port */
    long long conns_open;
    long long active;
} store = {.lock = PTHREAD_MUTEX_INITIALIZER};

long long mock_record_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int mock_record_init(size_t max_records)
{
    store.cap = max_records;
    if (max_records == 0)
        return 0;
    store.ring = calloc(max_records, sizeof(*store.ring));
    return store.ring ? 0 : -1;
}

/* Drops one ref; caller holds store.lock. */
static void record_unref_locked(struct mock_rec *rec)
{
    if (--rec->refs > 0)
        return;
    free(rec->path);
    json_decref(rec->headers);
    json_decref(rec->query);
    free(rec->body);
    free(rec);
}

static void record_clear_locked(void)
{
    for (size_t i = 0; i < store.count; i++)
        record_unref_locked(store.ring[(store.head + i) % store.cap]);
    store.head = 0;
    store.count = 0;
}

void mock_record_fini(void)
{
    pthread_mutex_lock(&store.lock);
    record_clear_locked();
    free(store.ring);
    store.ring = NULL;
    pthread_mutex_unlock(&store.lock);
}

/* Appends rec to the ring, evicting the oldest when full; locked. */
static void record_store_locked(struct mock_rec *rec)
{
    if (store.cap == 0)
        return;
    if (store.count == store.cap) {
        record_unref_locked(store.ring[store.head]);
        store.head = (store.head + 1) % store.cap;
        store.count--;
    }
    store.ring[(store.head + store.count) % store.cap] = rec;
    store.count++;
    rec->refs++;
}

struct mock_rec *mock_record_begin(const char *method, const char *path,
                                   json_t *headers, unsigned long conn_id)
{
    struct mock_rec *rec = calloc(1, sizeof(*rec));

    if (!rec)
        goto fail;
    rec->path = strdup(path);
    if (!rec->path)
        goto fail;
    snprintf(rec->method, sizeof(rec->method), "%s", method);
    rec->headers = headers;
    rec->conn_id = conn_id;
    rec->refs = 1;
    rec->t_start = mock_record_now_ms();
    rec->t_end = -1;
    pthread_mutex_lock(&store.lock);
    rec->seq = ++store.next_seq;
    store.active++;
    record_store_locked(rec);
    pthread_mutex_unlock(&store.lock);
    return rec;
fail:
    if (rec)
        free(rec->path);
    free(rec);
    json_decref(headers);
    return NULL;
}

void mock_record_set_query(struct mock_rec *rec, json_t *query)
{
    if (!rec) {
        json_decref(query);
        return;
    }
    pthread_mutex_lock(&store.lock);
    json_decref(rec->query);
    rec->query = query;
    pthread_mutex_unlock(&store.lock);
}

struct mock_rec *mock_record_ref(struct mock_rec *rec)
{
    if (!rec)
        return NULL;
    pthread_mutex_lock(&store.lock);
    rec->refs++;
    pthread_mutex_unlock(&store.lock);
    return rec;
}

void mock_record_unref(struct mock_rec *rec)
{
    if (!rec)
        return;
    pthread_mutex_lock(&store.lock);
    record_unref_locked(rec);
    pthread_mutex_unlock(&store.lock);
}

unsigned mock_record_seq(const struct mock_rec *rec)
{
    return rec ? rec->seq : 0; /* immutable once begun */
}

void mock_record_set_body(struct mock_rec *rec, const char *body, size_t len)
{
    char *copy;

    if (!rec || store.cap == 0)
        return;
    if (len > MOCK_BODY_RECORD_MAX)
        len = MOCK_BODY_RECORD_MAX;
    copy = malloc(len + 1);
    if (!copy)
        return;
    memcpy(copy, body, len);
    copy[len] = '\0';
    pthread_mutex_lock(&store.lock);
    free(rec->body);
    rec->body = copy;
    rec->body_len = len;
    pthread_mutex_unlock(&store.lock);
}

void mock_record_set_status(struct mock_rec *rec, int status)
{
    if (!rec)
        return;
    pthread_mutex_lock(&store.lock);
    rec->status = status;
    pthread_mutex_unlock(&store.lock);
}

void mock_record_add_chunk(struct mock_rec *rec)
{
    if (!rec)
        return;
    pthread_mutex_lock(&store.lock);
    rec->chunks++;
    pthread_mutex_unlock(&store.lock);
}

void mock_record_mark(struct mock_rec *rec, enum mock_outcome outcome)
{
    if (!rec)
        return;
    pthread_mutex_lock(&store.lock);
    if (rec->outcome == MOCK_OUT_IN_PROGRESS)
        rec->outcome = outcome;
    pthread_mutex_unlock(&store.lock);
}

void mock_record_finish(struct mock_rec *rec, enum mock_outcome outcome)
{
    if (!rec)
        return;
    pthread_mutex_lock(&store.lock);
    if (rec->outcome == MOCK_OUT_IN_PROGRESS)
        rec->outcome = outcome;
    if (rec->t_end < 0) {
        rec->t_end = mock_record_now_ms();
        store.active--;
    }
    pthread_mutex_unlock(&store.lock);
}

unsigned long mock_record_conn_opened(bool tls)
{
    unsigned long id;

    pthread_mutex_lock(&store.lock);
    store.conns_opened++;
    store.tls_conns_opened += tls;
    store.conns_open++;
    id = ++store.next_conn_id;
    pthread_mutex_unlock(&store.lock);
    return id;
}

void mock_record_conn_closed(void)
{
    pthread_mutex_lock(&store.lock);
    store.conns_open--;
    pthread_mutex_unlock(&store.lock);
}

void mock_record_reset(void)
{
    pthread_mutex_lock(&store.lock);
    record_clear_locked();
    store.next_seq = 0;
    store.conns_opened = 0;
    store.tls_conns_opened = 0;
    pthread_mutex_unlock(&store.lock);
}

static const char *record_outcome_name(enum mock_outcome outcome)
{
    switch (outcome) {
    case MOCK_OUT_COMPLETE:
        return "complete";
    case MOCK_OUT_CLIENT_CLOSED:
        return "client_closed";
    case MOCK_OUT_CUT:
        return "cut";
    case MOCK_OUT_CLOSED:
        return "closed";
    case MOCK_OUT_IN_PROGRESS:
        break;
    }
    return "in_progress";
}

/* One record as JSON; locked. */
static json_t *record_to_json_locked(const struct mock_rec *rec)
{
    json_t *body;

    /* a body that is not UTF-8 cannot be a JSON string: show it as null */
    if (!rec->body)
        body = json_string("");
    else
        body = json_stringn(rec->body, rec->body_len);
    /* a deep copy: the dump is freed on another thread, outside the lock */
    return json_pack(
        "{s:I, s:I, s:s, s:s, s:o?, s:o, s:I, s:o, s:o, s:s,"
        " s:I, s:o?}",
        "seq", (json_int_t)rec->seq, "conn_id", (json_int_t)rec->conn_id,
        "method", rec->method, "path", rec->path, "headers",
        json_deep_copy(rec->headers), "body", body ? body : json_null(),
        "t_start_ms", (json_int_t)rec->t_start, "t_end_ms",
        rec->t_end < 0 ? json_null() : json_integer(rec->t_end), "status",
        rec->status ? json_integer(rec->status) : json_null(), "outcome",
        record_outcome_name(rec->outcome), "chunks_sent",
        (json_int_t)rec->chunks, "query",
        rec->query ? json_deep_copy(rec->query) : NULL);
}

json_t *mock_record_dump(unsigned since)
{
    json_t *list = json_array();
    json_t *out = NULL;

    if (!list)
        return NULL;
    pthread_mutex_lock(&store.lock);
    for (size_t i = 0; i < store.count; i++) {
        const struct mock_rec *rec = store.ring[(store.head + i) % store.cap];

        if (rec->seq > since)
            json_array_append_new(list, record_to_json_locked(rec));
    }
    out = json_pack(
        "{s:o, s:I, s:I, s:I, s:I, s:I}", "requests", list,
        "connections_opened", (json_int_t)store.conns_opened,
        "tls_connections_opened", (json_int_t)store.tls_conns_opened,
        "connections_open", (json_int_t)store.conns_open, "active",
        (json_int_t)store.active, "now_ms", (json_int_t)mock_record_now_ms());
    pthread_mutex_unlock(&store.lock);
    return out;
}
