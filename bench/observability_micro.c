/*
 * observability_micro.c - wall-clock cost of the observability hot paths,
 * without a server: the metric updates a completed chat request makes (the
 * same families and label shapes as core_metrics.c), one access-log-sized
 * JSON line through the logger (the caller's side: format, scrub, queue;
 * the writer thread drains to /dev/null meanwhile), and one /metrics
 * render of a registry of realistic size.
 *
 * Built as build/bench_observability (bench/CMakeLists.txt); run it by
 * hand: build/bench_observability 2>/dev/null. Bounded: fixed iteration
 * counts. For instruction counts per request inside the real server, see
 * bench/observability_cost.sh (callgrind).
 */
#include "log.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static sluice_metric *reg(sluice_metric_type t, const char *name,
                          const char *labels, int hist)
{
    static const double b[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                               2.5,   5,    10,    30,   60,  120,  300};
    char err[200];
    sluice_metric *m =
        metrics_register(t, name, "bench", labels, hist ? b : NULL,
                         hist ? 15 : 0, err, sizeof err);
    if (!m) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    return m;
}

int main(void)
{
    const sluice_metric_type C = SLUICE_METRIC_COUNTER, G = SLUICE_METRIC_GAUGE,
                             H = SLUICE_METRIC_HISTOGRAM;
    sluice_metric *req =
        reg(C, "b_requests_total", "route,model,stream,code,outcome", 0);
    sluice_metric *inflight = reg(G, "b_in_flight", NULL, 0);
    sluice_metric *dur = reg(H, "b_duration_seconds", "route,stream", 1);
    sluice_metric *up = reg(H, "b_upstream_seconds", "model,stream", 1);
    sluice_metric *ovh = reg(H, "b_overhead_seconds", "stream", 1);
    sluice_metric *att = reg(C, "b_attempts_total", "result,code", 0);
    sluice_metric *usage = reg(C, "b_usage_total", "model,client,kind", 0);
    const char *models[] = {"openai-gpt-oss-20b", "openai-gpt-oss-120b",
                            "qwen/qwen3-next-80b-a3b-instruct",
                            "llama3-8b-instruct"};

    /* ---- metric updates of one request ---------------------------- */
    const int N = 1000000;
    double t0 = now_ns();
    for (int i = 0; i < N; i++) {
        const char *m = models[i & 3];
        const char *st = (i & 4) ? "true" : "false";
        const char *rl[] = {"chat", m, st, "200", "ok"};
        const char *dl[] = {"chat", st};
        const char *ul[] = {m, st};
        const char *ol[] = {st};
        const char *al[] = {"http", "200"};
        const char *kp[] = {m, "team-a", "prompt"};
        const char *kc[] = {m, "team-a", "completion"};
        metrics_add(inflight, NULL, 1);
        metrics_add(att, al, 1);
        metrics_add(inflight, NULL, -1);
        metrics_add(req, rl, 1);
        metrics_observe(dur, dl, 0.012);
        metrics_observe(up, ul, 0.011);
        metrics_observe(ovh, ol, 0.00004);
        metrics_add(usage, kp, 16);
        metrics_add(usage, kc, 9);
    }
    double per_req = (now_ns() - t0) / N;
    printf("metric updates of one request (9 updates): %.0f ns\n", per_req);

    /* ---- one access log line ------------------------------------------ */
    char err[200];
    log_set_pretty(0);
    if (log_start("/dev/null", err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    static const char fields[] =
        ",\"request_id\":\"req-1a2b3c-0-42\",\"route\":\"chat\",\"method\":"
        "\"POST\",\"path\":\"/v1/chat/completions\",\"peer\":\"127.0.0.1\","
        "\"client\":\"team-a\",\"model\":\"openai-gpt-oss-20b\",\"stream\":"
        "false,\"status\":200,\"attempts\":1,\"key_id\":\"sk-\xe2\x80\xa6"
        "abcd\",\"upstream_ms\":11.250,\"total_ms\":11.302,"
        "\"prompt_tokens_estimate\":16,\"usage_prompt_tokens\":16,"
        "\"usage_completion_tokens\":9,\"outcome\":\"ok\"";
    const int L = 200000;
    t0 = now_ns();
    for (int i = 0; i < L; i++)
        log_fields(LOG_INFO, "access", fields, "%s %s %d", "POST",
                   "/v1/chat/completions", 200);
    double per_line = (now_ns() - t0) / L;
    unsigned long long dropped = log_dropped_lines();
    log_stop();
    fprintf(stdout,
            "one access log line (caller side, stderr + file "
            "queued): %.0f ns (%llu of %d dropped: the writer "
            "thread could not keep up with this loop)\n",
            per_line, dropped, L);

    /* ---- one scrape ------------------------------------------------------ */
    buf_t b;
    buf_init(&b);
    metrics_render(&b);
    size_t size = b.len;
    const int R = 2000;
    t0 = now_ns();
    for (int i = 0; i < R; i++) {
        buf_reset(&b);
        metrics_render(&b);
    }
    printf("one /metrics render (%zu bytes): %.1f us\n", size,
           (now_ns() - t0) / R / 1e3);
    buf_release(&b);
    return 0;
}
