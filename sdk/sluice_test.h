/*
 * sluice_test.h - the stage test host of the sluice SDK: unit-test a stage
 * without a server, a socket or a mock upstream.
 *
 * The library behind it (libsluice_test.so, built with the SDK) carries the
 * gateway's own host table and pipeline runner, so a stage under test sees
 * exactly what it sees in the server: the same sluice_host functions, the
 * same verdict folding, the same /metrics rendering. What the server gets
 * from a socket, the test sets: the request body, headers, client address
 * and route; the upstream's answer of each attempt; the bytes of a stream;
 * the clock the stage reads through now_ms and wall_ms.
 *
 *   char err[256];
 *   sluice_test_stage *st = sluice_test_stage_load("./my_stage.so",
 *                                                  "{ word: banned }",
 *                                                  err, sizeof err);
 *   sluice_test_req *r = sluice_test_req_new(st, "{\"model\":\"m\",...}");
 *   sluice_test_req_header(r, "Authorization", "Bearer sk-client");
 *   if (sluice_test_on_request(r) == SLUICE_RESPOND)
 *       assert(sluice_test_status(r) == 400);
 *   sluice_test_on_complete(r);
 *   sluice_test_req_free(r);
 *   sluice_test_stage_free(st);
 *
 * Build: cc -std=c11 my_test.c -I<sdk> -L<dir of libsluice_test.so>
 *        -lsluice_test -Wl,-rpath,<that dir>
 *
 * Every function runs on the calling thread; one request at a time per
 * sluice_test_req. Strings returned are borrowed from the request (or the
 * stage) and valid until it is freed or the same value changes, unless a
 * function says "caller frees".
 */
#ifndef SLUICE_TEST_H
#define SLUICE_TEST_H

#include "sluice.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sluice_test_stage sluice_test_stage; /* one stage instance */
typedef struct sluice_test_req sluice_test_req;     /* one request */

/* ---- the stage ------------------------------------------------------- */

/* Load the stage in the shared object `so_path` through the gateway's own
 * loader (ABI and size checks included) and run its init with `config`:
 * the stage's `config:` block as YAML or JSON text (NULL: {}). NULL on
 * failure, with the loader's or init's message in err. */
sluice_test_stage *sluice_test_stage_load(const char *so_path,
                                          const char *config, char *err,
                                          size_t errlen);
/* The same for a descriptor linked into the test program (the stage's
 * sources compiled in: `sluice_test_stage_link(sluice_plugin_entry(), ...)`).
 */
sluice_test_stage *sluice_test_stage_link(const sluice_plugin *desc,
                                          const char *config, char *err,
                                          size_t errlen);
/* destroy() the instance (no request of it may be alive) and unload. */
void sluice_test_stage_free(sluice_test_stage *st);
/* The instance init made, and the host table init got. */
void *sluice_test_stage_instance(sluice_test_stage *st);
const sluice_host *sluice_test_host(sluice_test_stage *st);

/* The /metrics exposition as the gateway renders it, after the stage's
 * collect hook ran (as before every scrape). Caller frees with free(). */
char *sluice_test_metrics_text(sluice_test_stage *st);
/* One sample's value, e.g. `my_refusals_total{word="x"}` exactly as
 * rendered (labels in registration order); -1 when there is no such line.
 * Metrics are process-wide, like in the gateway: they outlive the stage. */
double sluice_test_metric(sluice_test_stage *st, const char *sample);

/* Call the admin action the stage published (admin_register) with method
 * and body (may be NULL): its HTTP status, and in *out (caller frees with
 * free()) the JSON it wrote; -1 when the stage has no such action. */
int sluice_test_admin(sluice_test_stage *st, const char *action,
                      const char *method, const char *body, char **out);
/* Call the public route serving method + path (route_register) as the
 * gateway would: its status and *out as above; -1 when no route of the
 * stage matches the path, -2 when one does but not for that method. */
int sluice_test_route(sluice_test_stage *st, const char *method,
                      const char *path, char **out);

/* The stage's status hook (what /health shows): 0 and *out (caller frees
 * with free()), or -1 (no hook, or it failed). */
int sluice_test_stage_status(sluice_test_stage *st, char **out);
/* The reload hand-over: export_state of st into *out (caller frees), and
 * import_state of that text into st (e.g. a fresh stage). -1 when the stage
 * has no such hook or it failed. */
int sluice_test_export_state(sluice_test_stage *st, char **out);
int sluice_test_import_state(sluice_test_stage *st, const char *state,
                             size_t len);

/* (Re)open the gateway's state layer (sluice_host.state_*) on the local
 * file `path`, or in memory when NULL, dropping what the view held: a
 * restart of the gateway, for state that must survive one. A stage made
 * before any call gets the in-memory layer. 0, or -1 with the reason on
 * stderr. */
int sluice_test_state_open(const char *path);
/* What state_status answers from now on (SLUICE_STATE_DEGRADED |
 * SLUICE_STATE_CLOSED: a shared backend that is away, on_unavailable:
 * closed), or -1 for the state layer's own answer (the default). */
void sluice_test_state_status(int flags);

/* ---- the clock ------------------------------------------------------- */

/* From now on the stage's now_ms() and wall_ms() return these (frozen)
 * values, moved only by sluice_test_clock_advance. Applies to every stage
 * of the process, before and after this call. */
void sluice_test_clock_set(uint64_t now_ms, uint64_t wall_ms);
void sluice_test_clock_advance(uint64_t ms);
/* Back to the real clocks. */
void sluice_test_clock_real(void);

/* ---- a request ------------------------------------------------------- */

/* A chat request (POST /v1/chat/completions from 127.0.0.1) with this
 * body. Not valid JSON (or NULL): req_body() is NULL, as for a request the
 * gateway refused with a 400 before the pipeline: such a request reaches
 * the stages in on_complete only. NULL when out of memory. */
sluice_test_req *sluice_test_req_new(sluice_test_stage *st,
                                     const char *body_json);
/* Add a client request header (repeat for more). 0 or -1. */
int sluice_test_req_header(sluice_test_req *r, const char *name,
                           const char *value);
/* The client's address as req_peer() reports it. */
void sluice_test_req_peer(sluice_test_req *r, const char *addr);
/* The route (req_route(): "chat", "embeddings", ...; see sdk/README.md) and
 * with it the path. -1 for an unknown route name. */
int sluice_test_req_route(sluice_test_req *r, const char *route);
/* The opaque context the hooks get: to call host functions in a test. */
sluice_ctx *sluice_test_req_ctx(sluice_test_req *r);
void sluice_test_req_free(sluice_test_req *r);

/* ---- the phases -------------------------------------------------------
 * Each runs the stage's hook (when it has one) as the gateway does and
 * returns the folded verdict. An on_request that says SLUICE_PENDING is
 * waited for (up to 10 s) until its req_resume, whose verdict is returned
 * (SLUICE_ERROR when none came). on_attempt starts a new attempt (attempt_no
 * counts up, upstream headers start empty). */
sluice_verdict sluice_test_on_request(sluice_test_req *r);
sluice_verdict sluice_test_on_attempt(sluice_test_req *r);
/* on_attempt said RETRY (e.g. waiting for a key): run it again for the
 * same attempt, as the gateway does once the delay is over. */
sluice_verdict sluice_test_on_attempt_again(sluice_test_req *r);
/* The upstream's answer to the current attempt: how it ended, the status
 * (0 when none), NULL-terminated name/value pairs of response headers (may
 * be NULL) and the body (may be NULL). Call before on_response. */
void sluice_test_upstream(sluice_test_req *r, sluice_attempt_result result,
                          int status, const char *const *headers,
                          const char *body);
sluice_verdict sluice_test_on_response(sluice_test_req *r);
/* Upstream stream bytes, as they arrive (any split); data NULL, len 0 is
 * the end of the stream. What the chain passes on collects in
 * sluice_test_chunks. */
sluice_verdict sluice_test_on_chunk(sluice_test_req *r, const char *data,
                                    size_t len);
void sluice_test_on_complete(sluice_test_req *r);

/* ---- what the stage did ---------------------------------------------- */

/* The client response a stage set: status (0: none), body ("" if none),
 * a header (NULL if absent). */
int sluice_test_status(sluice_test_req *r);
const char *sluice_test_body(sluice_test_req *r);
const char *sluice_test_header(sluice_test_req *r, const char *name);
/* The i-th client response header (in the order set): its name, and its
 * value in *value; NULL past the last. */
const char *sluice_test_header_at(sluice_test_req *r, size_t i,
                                  const char **value);
/* An attribute (attr_set), NULL if unset. */
const char *sluice_test_attr(sluice_test_req *r, const char *name);
/* A header the stage set on the current attempt's upstream request. */
const char *sluice_test_up_header(sluice_test_req *r, const char *name);
/* The delay a RETRY asked for (retry_after_ms). */
uint32_t sluice_test_retry_ms(sluice_test_req *r);
/* The stream bytes the on_chunk chain passed to the client so far. */
const char *sluice_test_chunks(sluice_test_req *r, size_t *len);
/* 1 when a stage changed the body (req_body_mut); the body as it would go
 * upstream, compact JSON (caller frees with free(); NULL without body). */
int sluice_test_body_changed(sluice_test_req *r);
char *sluice_test_body_json(sluice_test_req *r);
/* What stream_configure set (0s when it was not called). */
void sluice_test_stream_settings(sluice_test_req *r, uint32_t *heartbeat_ms,
                                 uint32_t *idle_ms, size_t *buffer_max);

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_TEST_H */
