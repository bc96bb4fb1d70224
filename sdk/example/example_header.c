/*
 * example_header.c - an example sluice stage: adds one header to every
 * response the client gets (completions, streams, errors).
 *
 *   pipeline:
 *     - plugin: example_header
 *       path: /path/to/example_header.so
 *       config: { header: X-Example, value: hello }
 *
 * Defaults: "X-Sluice-Example: 1". Builds out of tree with only sluice.h:
 *   cc -std=c11 -shared -fPIC -fvisibility=hidden -I../ example_header.c \
 *      -o example_header.so
 *
 * It shows the parts every stage has: the descriptor, init validating its
 * config and copying what it keeps (config is borrowed), destroy, one hook,
 * and a status object for /health. It also publishes metrics on /metrics:
 * a counter updated in a hook, a histogram observed in on_complete, and a
 * gauge refreshed by the collect hook just before a scrape.
 */
#include "sluice.h"

/* The default header value; a build may set another (the reload tests build
 * this file twice with different values to see a rebuilt .so picked up). */
#ifndef EXAMPLE_DEFAULT_VALUE
#define EXAMPLE_DEFAULT_VALUE "1"
#endif

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct example {
    const sluice_host *host;
    char *header; /* owned copies: the config is only borrowed in init */
    char *value;
    /* metrics: NULL when registration failed (a name clash) */
    sluice_metric *m_requests, *m_attempts, *m_in_progress;
    atomic_long in_progress; /* between on_request and on_complete */
};

/* An HTTP header name is a token (RFC 9110): visible ASCII except
 * separators. Rejecting anything else keeps header injection out. */
static int is_token(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 32 || c >= 127 || strchr("()<>@,;:\\\"/[]?={}", c))
            return 0;
    }
    return 1;
}

/* Field values: no control characters (CR/LF would split the header). */
static int is_field_value(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 32 && c != '\t') || c == 127)
            return 0;
    }
    return 1;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

static void example_destroy(void *instance)
{
    struct example *ex = instance;
    if (!ex)
        return;
    free(ex->header);
    free(ex->value);
    free(ex);
}

static int example_init(const sluice_host *host, sluice_stage *self,
                        const sluice_json *config, void **instance, char *err,
                        size_t errlen)
{
    const char *header = NULL, *value = NULL;
    struct example *ex = NULL;
    void *it;

    /* Reject unknown keys: a typo ("hedaer:") should not silently fall
     * back to the default. */
    for (it = host->json_iter(config); it;
         it = host->json_iter_next(config, it)) {
        const char *key = host->json_iter_key(it);
        if (strcmp(key, "header") != 0 && strcmp(key, "value") != 0) {
            snprintf(err, errlen,
                     "unknown config key '%s' (expected 'header', 'value')",
                     key);
            return -1;
        }
    }
    if (host->cfg_str(config, "header", "X-Sluice-Example", &header) != 0) {
        snprintf(err, errlen, "config.header: expected a string");
        return -1;
    }
    if (host->cfg_str(config, "value", EXAMPLE_DEFAULT_VALUE, &value) != 0) {
        snprintf(err, errlen,
                 "config.value: expected a string "
                 "(quote numbers and booleans: value: \"1\")");
        return -1;
    }
    if (!is_token(header)) {
        snprintf(err, errlen, "config.header: '%s' is not a valid header name",
                 header);
        return -1;
    }
    if (!is_field_value(value)) {
        snprintf(err, errlen,
                 "config.value: control characters are not allowed");
        return -1;
    }

    ex = calloc(1, sizeof(*ex));
    if (!ex)
        goto nomem;
    ex->host = host;
    ex->header = dup_str(header);
    ex->value = dup_str(value);
    if (!ex->header || !ex->value)
        goto nomem;

    /* Metrics: registered in init, found again (with their values) by the
     * next generation's init after a reload. Names: sluice_<stage>_...,
     * counters end in _total, times in _seconds. The metric members are
     * ABI 1.0: every core has them (no SLUICE_HOST_HAS check). */
    {
        static const double attempt_buckets[] = {1, 2, 3, 5};
        ex->m_requests = host->metric_register(
            self, SLUICE_METRIC_COUNTER, "sluice_example_requests_total",
            "Chat requests the example stage saw, by stream or not.", "stream",
            NULL, 0);
        ex->m_attempts = host->metric_register(
            self, SLUICE_METRIC_HISTOGRAM, "sluice_example_attempts",
            "Upstream attempts per completed chat request.", NULL,
            attempt_buckets, 4);
        ex->m_in_progress = host->metric_register(
            self, SLUICE_METRIC_GAUGE, "sluice_example_in_progress",
            "Chat requests between on_request and on_complete (set by "
            "collect at scrape time).",
            NULL, NULL, 0);
    }

    host->log(self, SLUICE_LOG_INFO, "adding '%s: %s' to every response",
              ex->header, ex->value);
    *instance = ex;
    return 0;

nomem:
    example_destroy(ex);
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* on_request runs once per request, before any upstream call, so the header
 * lands on whatever response the client ends up with: the upstream's, a
 * later stage's RESPOND, or a gateway error. Only reads the instance:
 * safe to run on many threads at once. */
static sluice_verdict example_on_request(void *instance, sluice_ctx *ctx)
{
    struct example *ex = instance;
    const sluice_host *h = ex->host;
    if (h->resp_header_add(ctx, ex->header, ex->value) != 0)
        return SLUICE_ERROR;
    if (ex->m_requests) {
        /* one value per label name, in order; the host copies them the
         * first time it sees this tuple and allocates nothing afterwards */
        const char *labels[] = {h->req_stream(ctx) ? "true" : "false"};
        h->metric_add(ex->m_requests, labels, 1);
    }
    /* mark the request so on_complete knows on_request ran for it (a body
     * that is not JSON gets on_complete without on_request) */
    h->local_set(ctx, ex);
    atomic_fetch_add(&ex->in_progress, 1);
    return SLUICE_CONTINUE;
}

static void example_on_complete(void *instance, sluice_ctx *ctx)
{
    struct example *ex = instance;
    const sluice_host *h = ex->host;
    if (!h->local_get(ctx))
        return;
    atomic_fetch_sub(&ex->in_progress, 1);
    if (ex->m_attempts && h->attempt_no(ctx) > 0)
        h->metric_observe(ex->m_attempts, NULL, (double)h->attempt_no(ctx));
}

/* Just before /metrics renders: publish what is cheaper to read on demand.
 * May run concurrently with hooks and with another scrape's collect. */
static void example_collect(void *instance)
{
    struct example *ex = instance;
    if (ex->m_in_progress)
        ex->host->metric_set(ex->m_in_progress, NULL,
                             (double)atomic_load(&ex->in_progress));
}

static int example_status(void *instance, sluice_buf *out)
{
    struct example *ex = instance;
    const sluice_host *h = ex->host;
    if (h->buf_append(out, "{\"header\":", 10) != 0 ||
        h->buf_json_str(out, ex->header) != 0 ||
        h->buf_append(out, ",\"value\":", 9) != 0 ||
        h->buf_json_str(out, ex->value) != 0 || h->buf_append(out, "}", 1) != 0)
        return -1;
    return 0;
}

static const sluice_plugin example_plugin = {
    .abi_major = SLUICE_ABI_MAJOR,
    .abi_minor = SLUICE_ABI_MINOR,
    .size = sizeof(sluice_plugin),
    .flags = 0,
    .name = "example_header",
    .version = "1.0.0",
    .description = "adds a configured header to every response",
    .init = example_init,
    .destroy = example_destroy,
    .on_request = example_on_request,
    .on_complete = example_on_complete,
    .status = example_status,
    .collect = example_collect,
};

SLUICE_PLUGIN_DEFINE(example_plugin)
