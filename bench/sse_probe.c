/*
 * sse_probe.c - time to first event and total time of streamed chat
 * completions, one after another on one keep-alive connection.
 *
 *   sse_probe [-n COUNT] [-H "Header: value"] URL
 *
 * Sends COUNT (default 200) streamed requests whose body contains the word
 * "sse-probe" (bench/run.sh scripts the mock upstream to answer those with
 * a paced stream). Prints one line:
 *
 *   <first-event p50 us> <first-event p90 us> <total p50 us> <total p90 us>
 *   <streams that ended with [DONE]>/<COUNT>
 *
 * "First event" is the first body byte of a "data:" line reaching the
 * client, measured from just before the request is sent. Part of the
 * benchmark, not of sluice; links libcurl only.
 */
#include <curl/curl.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROBE_MAX 100000

struct probe {
    uint64_t t0, first;
    int saw_done;
    char tail[8]; /* last bytes seen, to find "[DONE]" across writes */
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static size_t on_data(char *data, size_t size, size_t n, void *userp)
{
    struct probe *p = userp;
    size_t len = size * n;
    if (!p->first && len)
        p->first = now_us();
    char look[64];
    size_t keep = strlen(p->tail);
    size_t take = len < sizeof look - keep - 1 ? len : sizeof look - keep - 1;
    memcpy(look, p->tail, keep);
    memcpy(look + keep, data + len - take, take);
    look[keep + take] = '\0';
    if (strstr(look, "[DONE]") || memmem(data, len, "[DONE]", 6))
        p->saw_done = 1;
    size_t t =
        keep + take < sizeof p->tail - 1 ? keep + take : sizeof p->tail - 1;
    memcpy(p->tail, look + keep + take - t, t);
    p->tail[t] = '\0';
    return len;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t pct(uint64_t *v, size_t n, int p)
{
    if (!n)
        return 0;
    size_t i = (n * (size_t)p + 99) / 100;
    return v[i ? i - 1 : 0];
}

int main(int argc, char **argv)
{
    long count = 200;
    const char *url = NULL;
    struct curl_slist *hdrs = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-n") && i + 1 < argc)
            count = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "-H") && i + 1 < argc)
            hdrs = curl_slist_append(hdrs, argv[++i]);
        else
            url = argv[i];
    }
    if (!url || count < 1 || count > PROBE_MAX) {
        fprintf(stderr, "usage: sse_probe [-n COUNT] [-H HEADER] URL\n");
        return 2;
    }
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Accept: text/event-stream");
    static const char body[] =
        "{\"model\":\"openai-gpt-oss-20b\",\"stream\":true,\"messages\":["
        "{\"role\":\"system\",\"content\":\"You are terse.\"},"
        "{\"role\":\"user\",\"content\":\"sse-probe: count to ten\"}]}";
    uint64_t *first = calloc((size_t)count, sizeof *first);
    uint64_t *total = calloc((size_t)count, sizeof *total);
    CURL *e = curl_easy_init();
    if (!first || !total || !e)
        return 1;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)(sizeof body - 1));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    size_t ok = 0, n = 0;
    for (long i = 0; i < count; i++) {
        struct probe p = {0};
        long code = 0;
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &p);
        p.t0 = now_us();
        CURLcode rc = curl_easy_perform(e);
        uint64_t t1 = now_us();
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
        if (rc != CURLE_OK || code != 200 || !p.first)
            continue;
        first[n] = p.first - p.t0;
        total[n] = t1 - p.t0;
        n++;
        ok += p.saw_done;
    }
    qsort(first, n, sizeof *first, cmp_u64);
    qsort(total, n, sizeof *total, cmp_u64);
    printf("%llu %llu %llu %llu %zu/%ld\n",
           (unsigned long long)pct(first, n, 50),
           (unsigned long long)pct(first, n, 90),
           (unsigned long long)pct(total, n, 50),
           (unsigned long long)pct(total, n, 90), ok, count);
    curl_easy_cleanup(e);
    curl_slist_free_all(hdrs);
    free(first);
    free(total);
    return n ? 0 : 1;
}
