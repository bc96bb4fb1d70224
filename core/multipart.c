/*
 * multipart.c - find a named text field in a multipart/form-data body
 * (see multipart.h). Parts are walked from delimiter to delimiter; only
 * each part's headers are looked at until the wanted field is found, so a
 * 25 MB audio part costs one memmem over its bytes.
 */

#include "multipart.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MP_MAX_BOUNDARY 70

int multipart_boundary(const char *ctype, char *out, size_t outlen)
{
    static const char mt[] = "multipart/form-data";
    if (!ctype)
        return -1;
    while (*ctype == ' ')
        ctype++;
    if (strncasecmp(ctype, mt, sizeof mt - 1) ||
        (ctype[sizeof mt - 1] && ctype[sizeof mt - 1] != ';' &&
         ctype[sizeof mt - 1] != ' '))
        return -1;
    const char *p = ctype + sizeof mt - 1;
    while ((p = strchr(p, ';'))) {
        p++;
        while (*p == ' ')
            p++;
        if (strncasecmp(p, "boundary=", 9))
            continue;
        p += 9;
        size_t n;
        if (*p == '"') {
            const char *q = strchr(++p, '"');
            if (!q)
                return -1;
            n = (size_t)(q - p);
        } else {
            n = strcspn(p, "; ");
        }
        if (n == 0 || n > MP_MAX_BOUNDARY || n >= outlen)
            return -1;
        memcpy(out, p, n);
        out[n] = '\0';
        return 0;
    }
    return -1;
}

/* 1 when the headers [h, end) carry Content-Disposition: form-data with
 * name="<name>" (the parameter exactly, not a prefix of another). */
static int part_is(const char *h, const char *end, const char *name)
{
    size_t nl = strlen(name);
    while (h < end) {
        const char *eol = memmem(h, (size_t)(end - h), "\r\n", 2);
        const char *le = eol ? eol : end;
        static const char cd[] = "content-disposition:";
        if ((size_t)(le - h) > sizeof cd - 1 &&
            !strncasecmp(h, cd, sizeof cd - 1)) {
            const char *p = h + sizeof cd - 1;
            while (p < le) {
                const char *q = memmem(p, (size_t)(le - p), "name=\"", 6);
                if (!q)
                    break;
                /* "filename=" also ends in name=": only a parameter start */
                int start = q == h + sizeof cd - 1 || q[-1] == ' ' ||
                            q[-1] == ';' || q[-1] == '\t';
                q += 6;
                if (start && (size_t)(le - q) > nl && !memcmp(q, name, nl) &&
                    q[nl] == '"')
                    return 1;
                p = q;
            }
        }
        if (!eol)
            break;
        h = eol + 2;
    }
    return 0;
}

int multipart_field(const char *body, size_t len, const char *boundary,
                    const char *name, char *out, size_t outlen)
{
    char delim[MP_MAX_BOUNDARY + 5];
    size_t bl = strlen(boundary);
    if (!body || bl == 0 || bl > MP_MAX_BOUNDARY || outlen == 0)
        return -1;
    /* "\r\n--boundary"; the first delimiter may start the body */
    int dl = snprintf(delim, sizeof delim, "\r\n--%s", boundary);
    const char *end = body + len, *p;
    if (len >= (size_t)dl - 2 && !memcmp(body, delim + 2, (size_t)dl - 2))
        p = body + dl - 2;
    else {
        p = memmem(body, len, delim, (size_t)dl);
        if (!p)
            return -1;
        p += dl;
    }
    for (;;) {
        /* p is just past a delimiter: "--" ends, else CRLF and a part */
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            return 0;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++; /* transport padding */
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
            return -1;
        p += 2;
        const char *hend, *vstart;
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
            hend = p, vstart = p + 2; /* a part without headers */
        else if ((hend = memmem(p, (size_t)(end - p), "\r\n\r\n", 4)))
            vstart = hend + 4;
        else
            return -1;
        const char *vend =
            memmem(vstart, (size_t)(end - vstart), delim, (size_t)dl);
        if (!vend)
            return -1;
        if (part_is(p, hend, name)) {
            size_t n = (size_t)(vend - vstart);
            if (n >= outlen)
                return -1;
            memcpy(out, vstart, n);
            out[n] = '\0';
            return 1;
        }
        p = vend + dl;
    }
}
