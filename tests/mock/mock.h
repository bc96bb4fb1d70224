/* mock.h - shared types of mock_upstream, the scriptable OpenAI-compatible
 * upstream used by the integration tests, the demo and the benchmarks.
 * Not part of sluice: it links nothing of core/ and nothing links it. */
#ifndef MOCK_H
#define MOCK_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MOCK_BODY_RECORD_MAX (1024 * 1024)      /* body bytes kept per record */
#define MOCK_BODY_ACCEPT_MAX (64 * 1024 * 1024) /* larger bodies get a 413 */

/* Command line options; read-only once the daemon runs. */
struct mock_opts {
    const char *host;
    int port;
    const char *port_file;
    int chunks;           /* default chunk events per stream */
    int delay_ms;         /* default delay between chunk events */
    bool quiet;           /* no MHD error log, no banner but the listen line */
    size_t max_records;   /* newest records kept; 0 = record nothing */
    const char *tls_cert; /* PEM: with tls_key, a second port over TLS */
    const char *tls_key;  /* PEM */
    const char *tls_port_file; /* where the TLS port is written */
};

/* ---- mock_record.c: what the mock saw (thread-safe) ---------------------- */

enum mock_outcome {
    MOCK_OUT_IN_PROGRESS = 0,
    MOCK_OUT_COMPLETE,
    MOCK_OUT_CLIENT_CLOSED,
    MOCK_OUT_CUT,    /* a rule cut the stream */
    MOCK_OUT_CLOSED, /* a rule closed the connection without a response */
};

struct mock_rec; /* refcounted: the store holds one ref, a live request one */

int mock_record_init(size_t max_records);
void mock_record_fini(void);
/* New in-progress record; takes ownership of headers. Caller holds a ref.
 * conn_id names the TCP connection (see mock_record_conn_opened). */
struct mock_rec *mock_record_begin(const char *method, const char *path,
                                   json_t *headers, unsigned long conn_id);
struct mock_rec *mock_record_ref(struct mock_rec *rec); /* NULL-safe */
void mock_record_unref(struct mock_rec *rec);
unsigned mock_record_seq(const struct mock_rec *rec);
void mock_record_set_body(struct mock_rec *rec, const char *body, size_t len);
void mock_record_set_status(struct mock_rec *rec, int status);
/* Takes the query arguments object (the record's "query"). */
void mock_record_set_query(struct mock_rec *rec, json_t *query);
void mock_record_add_chunk(struct mock_rec *rec);
/* Sets the outcome if none is set yet (the first cause wins). */
void mock_record_mark(struct mock_rec *rec, enum mock_outcome outcome);
/* Stamps t_end and sets the outcome if none is set yet. */
void mock_record_finish(struct mock_rec *rec, enum mock_outcome outcome);
/* Counts a new TCP connection; returns its id (never reused). */
unsigned long mock_record_conn_opened(bool tls);
void mock_record_conn_closed(void);
void mock_record_reset(void);
/* {"requests":[...],"connections_opened":..,...}; records with seq > since. */
json_t *mock_record_dump(unsigned since);
long long mock_record_now_ms(void);

/* ---- mock_script.c: scripted rules (thread-safe) ------------------------- */

struct mock_stream_spec {
    int chunks;
    int delay_ms;
    int cut_after;   /* -1: never cut */
    int stall_after; /* -1: never stall */
    int stall_ms;
    char **raw; /* NULL: generated chunk events; else n_raw exact writes */
    size_t *raw_len;
    size_t n_raw;
};

struct mock_rule {
    int refs;
    json_t *src;      /* the rule as scripted, for GET /_mock/rules */
    char *match_path; /* normalised: without the /v1 prefix */
    char *match_auth;
    char *match_method;
    char *match_model;
    char *match_body; /* substring of the raw body */
    int match_stream; /* -1 any, 0 non-stream, 1 stream */
    int times;        /* 0 = forever */
    int used;
    int status; /* 0 = not given */
    json_t *headers;
    char *body; /* NULL = not given */
    size_t body_len;
    const char *body_type;
    int stall_ms;
    bool close;
    bool has_stream;
    struct mock_stream_spec stream; /* -1/0 fields fall back to defaults */
};

/* What a rule may match on; all borrowed. */
struct mock_req_info {
    const char *method;
    const char *path;
    const char *auth;
    const char *model;
    const char *body;
    int stream;
};

int mock_script_init(void);
void mock_script_fini(void);
/* Appends the rules of {"rules":[...]} (or a bare array or one rule). */
int mock_script_add(const json_t *root, char *err, size_t errlen);
/* First fitting rule with uses left, counted as used; caller unrefs. */
struct mock_rule *mock_script_take(const struct mock_req_info *info);
struct mock_rule *mock_rule_ref(struct mock_rule *rule); /* NULL-safe */
void mock_rule_unref(struct mock_rule *rule);
void mock_script_reset(void);
json_t *mock_script_dump(void);
/* "/v1/x" -> "/x"; other paths unchanged. Borrowed from path. */
const char *mock_path_strip_v1(const char *path);

/* ---- mock_wait.c: sleeps that end early on hang-up or shutdown ----------- */

int mock_wait_init(void);
void mock_wait_fini(void);
void mock_wait_stop_all(void);
/* 0 after ms elapsed; -1 if the peer on fd hung up (fd < 0: never) or the
 * mock is stopping. */
int mock_wait_ms(int fd, int ms);
int mock_wait_conn_fd(struct MHD_Connection *conn);

/* ---- mock_reply.c: response bodies and queueing helpers ----------------- */

/* Queues a copied body with content type and status. */
enum MHD_Result mock_reply_queue(struct MHD_Connection *conn, int status,
                                 const char *type, const char *body, size_t len,
                                 const json_t *extra_headers);
enum MHD_Result mock_reply_json(struct MHD_Connection *conn, int status,
                                json_t *body /* stolen */);
enum MHD_Result mock_reply_error(struct MHD_Connection *conn, int status,
                                 const char *message,
                                 const json_t *extra_headers);
char *mock_reply_error_text(int status, const char *message);
void mock_reply_add_headers(struct MHD_Response *resp, const json_t *headers);
/* The chat.completion body as text; caller frees. */
char *mock_reply_completion(unsigned seq, const char *model,
                            const char *user_text, size_t body_len);
/* s as a JSON string literal, quotes included; s must be UTF-8. Caller
 * frees. */
char *mock_reply_escape(const char *s);
json_t *mock_reply_models(void);
/* Chat text the mock answers with: first 40 code points of the last user
 * message. Caller frees. */
char *mock_reply_user_text(const json_t *request);

/* ---- mock_stream.c: the SSE content reader ------------------------------- */

enum mock_stream_kind {
    MOCK_STREAM_CHAT = 0,    /* chat.completion.chunk data events, [DONE] */
    MOCK_STREAM_COMPLETIONS, /* text_completion data events, [DONE] */
    MOCK_STREAM_RESPONSES,   /* named response.* events, no [DONE]; each
                                delta split mid-UTF-8 across two writes */
    MOCK_STREAM_TRANSCRIPT,  /* transcript.text.delta data events, then
                                transcript.text.done; no [DONE] */
};

struct mock_stream_args {
    enum mock_stream_kind kind;
    struct mock_rec *rec;         /* a new ref is taken */
    struct mock_rule *rule;       /* may be NULL; a new ref is taken */
    struct mock_stream_spec spec; /* resolved: no defaults left */
    unsigned seq;
    const char *model;
    bool include_usage;
    size_t body_len;
    int fd;
};

struct MHD_Response *mock_stream_response(const struct mock_stream_args *a);

/* ---- mock_api.c: the endpoints beside chat ------------------------------ */

struct mock_req;
/* One of /responses, /completions, /embeddings, ... (without /v1). */
bool mock_api_known(const char *path);
bool mock_api_is_multipart(const char *path);
enum MHD_Result mock_api_serve(struct MHD_Connection *conn,
                               struct mock_req *req, const char *path,
                               const json_t *body, const char *model,
                               int status, const json_t *headers);
/* The Responses API's objects (streams reuse them). */
json_t *mock_api_response_obj(unsigned seq, const char *model, const char *text,
                              size_t body_len, bool done);
json_t *mock_api_message_item(unsigned seq, const char *text, bool done);
void mock_api_speech_bytes(const char *input, unsigned char *out, size_t n);
char *mock_api_form_field(const char *body, size_t len, const char *name);

/* ---- mock_serve.c: non-control requests ---------------------------------- */

struct mock_req {
    bool control;
    char method[16];
    char *path;
    char *body;
    size_t body_len;
    size_t body_cap;
    bool too_large;
    struct mock_rec *rec; /* NULL for control requests */
};

enum MHD_Result mock_serve(const struct mock_opts *opts,
                           struct MHD_Connection *conn, struct mock_req *req);

/* ---- mock_control.c: the /_mock/ API
 * -------------------------------------------- */

enum MHD_Result mock_control(struct MHD_Connection *conn, struct mock_req *req);

/* ---- mock_handler.c: libmicrohttpd callbacks ---------------------------- */

enum MHD_Result mock_handler_access(void *cls, struct MHD_Connection *conn,
                                    const char *url, const char *method,
                                    const char *version,
                                    const char *upload_data,
                                    size_t *upload_data_size, void **con_cls);
void mock_handler_completed(void *cls, struct MHD_Connection *conn,
                            void **con_cls,
                            enum MHD_RequestTerminationCode toe);
void mock_handler_connection(void *cls, struct MHD_Connection *conn,
                             void **socket_context,
                             enum MHD_ConnectionNotificationCode toe);

#endif
