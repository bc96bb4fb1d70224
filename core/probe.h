/*
 * probe.h - cheap upstream probes off the request path (sluice_host.
 * http_probe): one background thread runs queued probes one at a time,
 * each a blocking GET with a short timeout, and calls the stage's done()
 * on that thread. A stage's probes are cancelled (queued ones get
 * done(arg, 0), the running one is aborted and waited for) before its
 * destroy() runs.
 */
#ifndef SLUICE_PROBE_H
#define SLUICE_PROBE_H

#include "sluice.h"

/* Queue GET url with the given Authorization value (copied). Returns 0, or
 * -1 when the queue is full or the thread cannot start (done is then never
 * called). done() runs on the probe thread and must not destroy a stage
 * (drop a generation's last reference): probe_cancel_stage from that
 * thread would wait for itself. */
int probe_submit(sluice_stage *stage, const char *url,
                 const char *authorization, long timeout_ms,
                 sluice_probe_fn done, void *arg);
/* The same, and done() also gets the body (at most PROBE_BODY_MAX bytes;
 * a longer one counts as no answer). */
int probe_submit_fetch(sluice_stage *stage, const char *url,
                       const char *authorization, long timeout_ms,
                       sluice_fetch_fn done, void *arg);
/* The same as probe_submit with the request's header lines given: takes
 * `headers` (a libcurl list, freed and wiped whatever happens; NULL is
 * refused). For an upstream's own auth header and static headers, and its
 * TLS settings for an https:// URL (ca_file NULL: the system's store;
 * verify 0: not checked). */
struct curl_slist;
int probe_submit_headers(sluice_stage *stage, const char *url,
                         struct curl_slist *headers, const char *ca_file,
                         int verify, long timeout_ms, sluice_probe_fn done,
                         void *arg);
/* Free a header list, its lines zeroed first (they hold keys). */
void probe_headers_free(struct curl_slist *l);
/* Cancel and wait for every probe of `stage`: queued ones get done(arg, 0)
 * on the calling thread; a running one is aborted and its done() has
 * returned when this does. */
void probe_cancel_stage(sluice_stage *stage);
/* Stop the thread (cancelling what is queued). */
void probe_shutdown(void);

#endif
