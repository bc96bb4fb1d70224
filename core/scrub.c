/*
 * scrub.c - see scrub.h. The logger's scrubber (log.c) shortens anything
 * key-shaped; this one knows the exact secrets of the attempt, so a key of
 * any shape is caught, and nothing else in the body is touched.
 */
#include "scrub.h"

#include <string.h>
#include <strings.h>

#define SCRUB_MIN 8

size_t scrub_value(char *s, size_t len, const char *secret)
{
    static const char ell[] = "\xe2\x80\xa6"; /* … */
    size_t n = secret ? strlen(secret) : 0;
    if (n < SCRUB_MIN || !s)
        return len;
    size_t i = 0, was = len;
    while (i + n <= len) {
        char *p = memmem(s + i, len - i, secret, n);
        if (!p)
            break;
        size_t at = (size_t)(p - s);
        /* "…" + last four: 7 bytes in place of n >= 8 */
        memcpy(s + at, ell, 3);
        memcpy(s + at + 3, secret + n - 4, 4);
        memmove(s + at + 7, s + at + n, len - (at + n));
        len -= n - 7;
        i = at + 7;
    }
    if (len != was)
        s[len] = '\0'; /* s[was] was the terminator: room enough */
    return len;
}

/* A header that carries a credential: Authorization and any name with
 * "key" or "token" in it (x-api-key, api-key, x-goog-api-key, ...). */
static int credential_header(const char *name)
{
    return !strcasecmp(name, "authorization") ||
           !strcasecmp(name, "proxy-authorization") ||
           strcasestr(name, "key") || strcasestr(name, "token");
}

size_t scrub_credentials(char *s, size_t len, const struct hdrs *up)
{
    for (size_t i = 0; up && i < up->n; i++) {
        const char *v = up->v[i].value;
        if (!v || !credential_header(up->v[i].name))
            continue;
        /* "Bearer <token>": the token alone is what an upstream quotes */
        const char *sp = strchr(v, ' ');
        if (sp && !strncasecmp(v, "bearer ", 7))
            v = sp + 1;
        len = scrub_value(s, len, v);
    }
    return len;
}
