/*
 * healthcheck.c - `sluice --health` (see healthcheck.h).
 */
#include "healthcheck.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#define HEALTHCHECK_TIMEOUT_MS 4000L

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

/* The address a local client reaches the listener at: a wildcard bind is
 * reached on loopback; an IPv6 literal goes in brackets. */
static void listener_url(const struct config *cfg, char *url, size_t len)
{
    const char *h = cfg->host && *cfg->host ? cfg->host : "0.0.0.0";
    if (!strcmp(h, "0.0.0.0") || !strcmp(h, "*"))
        h = "127.0.0.1";
    else if (!strcmp(h, "::") || !strcmp(h, "[::]"))
        h = "::1";
    int v6 = strchr(h, ':') && h[0] != '[';
    snprintf(url, len, "http://%s%s%s:%d/health", v6 ? "[" : "", h,
             v6 ? "]" : "", cfg->port);
}

int healthcheck_run(const struct config *cfg, char *err, size_t errlen)
{
    char url[320];
    long status = 0;
    listener_url(cfg, url, sizeof url);
    CURL *e = curl_easy_init();
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, HEALTHCHECK_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    CURLcode rc = curl_easy_perform(e);
    if (rc == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "%s: %s", url, curl_easy_strerror(rc));
        return -1;
    }
    if (status != 200) {
        snprintf(err, errlen, "%s: HTTP %ld", url, status);
        return -1;
    }
    snprintf(err, errlen, "%s: healthy", url);
    return 0;
}
