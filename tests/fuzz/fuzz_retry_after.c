/*
 * fuzz_retry_after.c - libFuzzer target for the keyring's Retry-After family
 * parser (plugins/keyring/retry_after.c): durations ("6m0s", "1.5s"),
 * HTTP-dates, and the cooldown chosen from a set of upstream headers. The
 * input's lines are the header values, in the order of `names` below;
 * every line is also parsed alone as a duration and as a date.
 */
#include "keyring.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = {"retry-after-ms",
                                    "retry-after",
                                    "x-ratelimit-reset-requests",
                                    "x-ratelimit-reset-tokens",
                                    "x-ratelimit-remaining-requests",
                                    "x-ratelimit-remaining-tokens"};
#define NNAMES (sizeof names / sizeof names[0])

struct hdrs {
    char *v[NNAMES];
};

static const char *lookup(void *arg, const char *name)
{
    struct hdrs *h = arg;
    for (size_t i = 0; i < NNAMES; i++)
        if (!strcasecmp(name, names[i]))
            return h->v[i];
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hdrs h = {{NULL}};
    size_t pos = 0, k = 0;
    while (pos <= size && k < NNAMES) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - (data + pos)) : size - pos;
        h.v[k] = malloc(len + 1);
        if (!h.v[k])
            break;
        memcpy(h.v[k], data + pos, len);
        h.v[k][len] = '\0';
        (void)ra_parse_duration(h.v[k]);
        (void)ra_parse_http_date(h.v[k]);
        k++;
        if (!nl)
            break;
        pos += len + 1;
    }
    (void)ra_cooldown_ms(lookup, &h, 1764000000000ULL);
    (void)ra_cooldown_ms(lookup, &h, 0);
    for (size_t i = 0; i < NNAMES; i++)
        free(h.v[i]);
    return 0;
}
