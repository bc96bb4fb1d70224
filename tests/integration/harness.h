/*
 * harness.h - integration-test harness: runs the real `sluice` and the mock
 * upstream as child processes on loopback and talks HTTP to both (libcurl).
 *
 * One harness per test process (Check forks one child per test, so each test
 * gets its own). Children run in their own process group, die with the test
 * process (PR_SET_PDEATHSIG), and are killed (TERM, then KILL) and reaped by
 * h_teardown() or, when a failed assertion exits the test early, by an atexit
 * handler that also prints the tail of their logs. Every network call is
 * bounded by a timeout.
 *
 * Environment (set by CTest): SLUICE_BIN, MOCK_BIN, PLUGINS_DIR.
 * SLUICE_TEST_LOG_DIR, when set, receives a copy of each test's temp dir
 * (logs, config, keys files) before it is removed, so a later test can
 * search every log of the run (tests/scripts/secrets_in_logs.sh).
 */
#ifndef SLUICE_TEST_HARNESS_H
#define SLUICE_TEST_HARNESS_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

/* ---- processes -------------------------------------------------------- */

/* What goes into the temporary sluice YAML. Zero/NULL members take the
 * defaults noted. */
typedef struct h_opts {
    /* The items of `pipeline:` as YAML text, indented by two spaces, e.g.
     * "  - plugin: keyring\n    config: { keys_file: \"@KEYS_FILE@\" }\n".
     * @KEYS_FILE@ and @TMPDIR@ are replaced. NULL: keyring + sse. */
    const char *pipeline;
    int threads;                /* 0: 2 */
    long max_body_bytes;        /* 0: leave to sluice's default */
    const char *base_url;       /* NULL: http://127.0.0.1:<mock>/v1; "":
                                   none (an `upstreams:` list in extra) */
    int timeout_s;              /* 0: 30 */
    const char *models;         /* items of `models:`; NULL: H_DEFAULT_MODELS */
    const char *extra;          /* more top-level YAML appended verbatim */
    const char *keys;           /* keys file content; NULL: H_DEFAULT_KEYS */
    const char *server_extra;   /* more `server:` lines, indented by two
                                   spaces (e.g. "  request_timeout_s: 2\n") */
    const char *upstream_extra; /* more `upstream:` lines, indented by two
                                   spaces (e.g. "  verify: false\n") */
} h_opts;

#define H_DEFAULT_KEYS "sk-test-key-1\nsk-test-key-2\n"
#define H_FIRST_KEY    "sk-test-key-1"
#define H_MODEL_ID     "qwen/qwen3-next-80b-a3b-instruct"
#define H_MODEL_CTX    262144
#define H_DEFAULT_MODELS                                                       \
    "  - { id: \"qwen/qwen3-next-80b-a3b-instruct\", context_length: 262144 "  \
    "}\n"                                                                      \
    "  - { id: \"gpt-4o-mini\", context_length: 128000 }\n"

/* Create the temp dir (idempotent); registers the atexit cleanup. */
const char *h_tmpdir(void);
/* Start the mock upstream; returns its port, or fails the test. */
int h_start_mock(void);
/* Start the mock upstream with a second port serving the same API over TLS
 * with the PEM files cert and key; returns the TLS port (the plain one, for
 * the control API, is h_mock_port()), or fails the test. The mock counts
 * connections to the TLS port as "tls_connections_opened". */
int h_start_mock_tls(const char *cert, const char *key);
/* Write the YAML (h_config_path()) and start sluice on a free port; waits
 * for /health. Returns the port or fails the test (with the log tail). */
int h_start_sluice(const h_opts *opts);
/* Write the YAML for opts to `path` without starting anything; `port` is the
 * server.port written. Returns 0 or -1. */
int h_write_config(const char *path, const h_opts *opts, int port);
/* Start both with opts (NULL = defaults). */
void h_start_all(const h_opts *opts);
/* More sluice processes (a fleet on one state backend), each with its own
 * config (opts), log and port; killed at teardown. Returns the index. */
#define H_FLEET_MAX 8
int h_fleet_start(const h_opts *opts);
int h_fleet_port(int i);
pid_t h_fleet_pid(int i);
/* A crash: SIGKILL sluice (no clean stop) and reap it; h_start_sluice
 * starts it again (same temp dir, so the same state file). */
void h_kill9_sluice(void);
/* Kill and reap both children, remove the temp dir. Safe to call twice. */
void h_teardown(void);

int h_mock_port(void);
int h_sluice_port(void);
const char *h_config_path(void);
const char *h_keys_path(void);
pid_t h_sluice_pid(void);
/* Print the last `lines` lines of both logs to stderr. */
void h_dump_logs(int lines);
/* Wait up to limit_ms for a line of sluice's log holding `a` and, unless
 * NULL, `b` (the log is written by a writer thread, so a line may land
 * after the response that caused it). Returns that line, malloc'd (caller
 * frees), or NULL when none came in time. */
char *h_log_wait(const char *a, const char *b, long limit_ms);

/* The Redis the fixture/redis_start test started (REDIS_FIXTURE_DIR holds
 * its port, password and pid files): copies that folder into dir and
 * returns the port. When there is none, prints SKIP with the reason and
 * exits 77 (the tests' SKIP_RETURN_CODE). */
int h_redis_fixture(char *dir, size_t dirlen);

/* A free loopback TCP port (bound then released), or -1. */
int h_free_port(void);
/* 1 if something accepts TCP connections on 127.0.0.1:port. */
int h_port_open(int port);

/* Run argv to completion (at most timeout_ms; killed after), stdout and
 * stderr captured together into *output (caller frees). Returns the exit
 * status (0..255), 128+signal when killed, or -1 on spawn failure. */
int h_run_capture(char *const argv[], long timeout_ms, char **output);

/* ---- HTTP ------------------------------------------------------------- */

typedef struct h_header {
    char *name;
    char *value;
} h_header;

typedef struct h_resp {
    long status;     /* 0 when no response was received */
    int curl_code;   /* CURLcode of the transfer */
    char error[256]; /* curl's error text, if any */
    char *body;      /* NUL-terminated, may contain NULs */
    size_t body_len;
    h_header *headers; /* of the final response */
    size_t nheaders;
    double ttfb_ms;  /* start -> first body byte (-1: no body) */
    double total_ms; /* start -> transfer end */
} h_resp;

/* Send a request to 127.0.0.1:port. `headers` is a NULL-terminated list of
 * "Name: value" strings (may be NULL); body may be NULL. When body is given
 * and no Content-Type is, "application/json" is sent. Returns the CURLcode
 * (0 ok); out is always filled and must be freed with h_resp_free. */
int h_request(int port, const char *method, const char *path,
              const char *const *headers, const char *body, size_t body_len,
              long timeout_ms, h_resp *out);
/* Shorthands on the sluice port. */
int h_get(const char *path, h_resp *out);
int h_post_json(const char *path, const char *body, h_resp *out);
/* Case-insensitive header lookup (first match), or NULL. */
const char *h_resp_header(const h_resp *r, const char *name);
/* GET path on port with headers (NULL-ended, or NULL): the body, "" when
 * none came; never NULL (caller frees). */
char *h_get_body(int port, const char *path, const char *const *headers);
/* GET path (as h_get_body) until its body holds needle (want 1) or does not
 * (want 0), for at most limit_ms. 1 if it came to that, else 0. */
int h_wait_body(int port, const char *path, const char *const *headers,
                const char *needle, int want, long limit_ms);
/* Parse the body as JSON (caller decrefs), NULL if it is not JSON. */
json_t *h_resp_json(const h_resp *r);
void h_resp_free(h_resp *r);

/* ---- streaming -------------------------------------------------------- */

typedef struct h_chunk {
    char *data;
    size_t len;
    double t_ms; /* arrival time since the request started */
} h_chunk;

typedef struct h_event {
    char *data;  /* the event's data: lines joined by "\n" (NULL if none) */
    char *name;  /* event: field, or NULL */
    double t_ms; /* arrival of the chunk that completed the event */
} h_event;

typedef struct h_stream {
    h_resp resp;     /* status, headers, whole body, total time */
    h_chunk *chunks; /* each write callback, in order */
    size_t nchunks;
    h_event *events; /* complete SSE events, in order */
    size_t nevents;
    int aborted; /* we stopped the transfer (abort_after_*) */
    /* internal */
    size_t parse_off;
} h_stream;

/* Like h_request but records every chunk and parses SSE events as they
 * arrive. The transfer is aborted (the client closes the connection) once
 * abort_after_bytes (>0) bytes or abort_after_events (>0) events were
 * received. */
int h_stream_request(int port, const char *method, const char *path,
                     const char *const *headers, const char *body,
                     size_t body_len, long timeout_ms, size_t abort_after_bytes,
                     size_t abort_after_events, h_stream *out);
void h_stream_free(h_stream *s);
/* Events whose data is not "[DONE]" / is "[DONE]". */
size_t h_stream_data_events(const h_stream *s);
int h_stream_has_done(const h_stream *s);

/* ---- mock upstream control ------------------------------------------- */

/* Extra mock upstreams (routing tests): index 1..H_MAX_MOCKS-1; index 0
 * is the one h_start_mock starts. port 0: a free one; a given port
 * restarts a stopped mock where it was. Stopped by h_teardown. */
#define H_MAX_MOCKS 4
int h_start_mock_at(int idx, int port);
void h_stop_mock_at(int idx);
int h_mock_port_at(int idx);
int h_mock_reset_at(int idx);
int h_mock_script_at(int idx, const char *rules_json);
json_t *h_mock_requests_at(int idx);

/* POST /_mock/reset: forget rules, records and counters. 0 ok. */
int h_mock_reset(void);
/* POST /_mock/script with rules_json ({"rules":[...]}). 0 ok. */
int h_mock_script(const char *rules_json);
/* GET /_mock/requests: the array of records (caller decrefs), or NULL. */
json_t *h_mock_requests(void);
/* Number of records, -1 on error. */
int h_mock_request_count(void);
/* A counter the mock reports (e.g. "connections_opened"), -1 if absent. */
long h_mock_stat(const char *name);
/* One rule: a stream of exactly these writes (raw, a JSON array of strings,
 * stolen), delay_ms apart. 0 ok. */
int h_mock_script_raw(json_t *raw, int delay_ms);
/* The first record's outcome once it is `want`, or the last one seen after
 * limit_ms ("(no record)" if none); static storage. */
const char *h_mock_wait_outcome(const char *want, long limit_ms);
/* Record accessors (tolerate the mock's representation choices). */
const char *h_rec_str(json_t *rec, const char *key);
const char *h_rec_header(json_t *rec, const char *name);
/* The body exactly as the mock received it (borrowed from rec, or a
 * string kept alive by rec); *len set. NULL if none. */
const char *h_rec_body(json_t *rec, size_t *len);

/* ---- /metrics -------------------------------------------------------- */

/* GET /metrics on sluice; asserts 200 and the exposition content type.
 * Caller frees. */
char *h_metrics_scrape(void);
/* The value of one exposition sample line ("name{labels} value") in text,
 * or -1 when absent. */
double h_metrics_sample(const char *text, const char *series);

/* ---- misc ------------------------------------------------------------- */

double h_now_ms(void);
void h_sleep_ms(long ms);
/* Assert the OpenAI error shape; returns the error object (borrowed from
 * doc). Fails the test with a message naming `what` otherwise. */
json_t *h_assert_openai_error(json_t *doc, const char *what);

#endif
