/*
 * classify.c - what an attempt's outcome says about the key it used.
 * 401/403 mean the key is wrong or revoked, 402 (or an error body on
 * 400/403/429 saying the quota, balance or credit is exhausted) that it is
 * empty: both fail the key. 429 is a rate limit (cool down). 5xx, timeouts
 * and broken connections count toward the failure threshold. Other client
 * errors say nothing about the key.
 */
#include "keyring.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static int body_says_exhausted(const char *body, size_t len)
{
    static const char *const words[] = {"insufficient_quota",
                                        "quota_exceeded",
                                        "exceeded your current quota",
                                        "insufficient balance",
                                        "insufficient_balance",
                                        "balance is",
                                        "out of credit",
                                        "insufficient credit",
                                        "credit balance",
                                        "billing_hard_limit",
                                        NULL};
    char buf[2048];
    if (!body || !len)
        return 0;
    size_t n = len < sizeof buf - 1 ? len : sizeof buf - 1;
    for (size_t i = 0; i < n; i++) {
        char c = body[i];
        buf[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : (c ? c : ' '));
    }
    buf[n] = '\0';
    for (const char *const *w = words; *w; w++)
        if (strstr(buf, *w))
            return 1;
    return 0;
}

enum key_outcome classify_outcome(sluice_attempt_result r, int status,
                                  const char *body, size_t body_len)
{
    switch (r) {
    case SLUICE_ATTEMPT_TIMEOUT:
        return OUT_TIMEOUT;
    case SLUICE_ATTEMPT_CONNECT:
    case SLUICE_ATTEMPT_RESET:
        return OUT_CONN;
    case SLUICE_ATTEMPT_HTTP:
        break;
    default:
        return OUT_NONE; /* aborted by the client, or not finished */
    }
    if (status >= 200 && status < 300)
        return OUT_OK;
    if (status == 402)
        return OUT_QUOTA;
    if ((status == 400 || status == 403 || status == 429) &&
        body_says_exhausted(body, body_len))
        return OUT_QUOTA;
    if (status == 401 || status == 403)
        return OUT_AUTH;
    if (status == 429)
        return OUT_RATE;
    if (status >= 500)
        return OUT_SERVER;
    return OUT_NONE;
}

void classify_describe(enum key_outcome o, int status, char *out, size_t outlen)
{
    switch (o) {
    case OUT_AUTH:
        snprintf(out, outlen, "%d: key rejected", status);
        break;
    case OUT_QUOTA:
        snprintf(out, outlen, "%d: quota or balance exhausted", status);
        break;
    case OUT_RATE:
        snprintf(out, outlen, "%d: rate limited", status);
        break;
    case OUT_SERVER:
        snprintf(out, outlen, "%d: upstream error", status);
        break;
    case OUT_TIMEOUT:
        snprintf(out, outlen, "timeout");
        break;
    case OUT_CONN:
        snprintf(out, outlen, "connection failed");
        break;
    default:
        snprintf(out, outlen, "%d", status);
        break;
    }
}
