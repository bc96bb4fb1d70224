/*
 * json_splice.c - see json_splice.h. A scanner, not a parser: it walks
 * the top-level object's members, decodes each key only to compare it,
 * and skips values by their brackets and strings, so it costs a pass over
 * the bytes up to the member (usually the first one).
 */
#include "json_splice.h"

#include <string.h>

static size_t skip_ws(const char *b, size_t i, size_t n)
{
    while (i < n &&
           (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r'))
        i++;
    return i;
}

/* Past the string starting at b[i] == '"'; n when unterminated. */
static size_t skip_string(const char *b, size_t i, size_t n)
{
    for (i++; i < n; i++) {
        if (b[i] == '\\')
            i++;
        else if (b[i] == '"')
            return i + 1;
    }
    return n;
}

static int hex4(const char *p, unsigned *v)
{
    *v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p[k];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d > 15)
            return -1;
        *v = *v << 4 | d;
    }
    return 0;
}

/* Whether the key string at b[i] == '"' decodes to `key`; *end past it.
 * -1 when malformed. */
static int key_is(const char *b, size_t i, size_t n, const char *key,
                  size_t *end)
{
    size_t k = 0, klen = strlen(key);
    int same = 1;
    for (i++; i < n; i++) {
        unsigned c = (unsigned char)b[i];
        if (c == '"') {
            *end = i + 1;
            return same && k == klen;
        }
        if (c == '\\') {
            if (++i >= n)
                return -1;
            switch (b[i]) {
            case 'u':
                if (i + 4 >= n || hex4(b + i + 1, &c) != 0)
                    return -1;
                i += 4;
                break;
            case 'b':
                c = '\b';
                break;
            case 'f':
                c = '\f';
                break;
            case 'n':
                c = '\n';
                break;
            case 'r':
                c = '\r';
                break;
            case 't':
                c = '\t';
                break;
            default: /* " \ / */
                c = (unsigned char)b[i];
            }
        }
        /* key is ASCII: any other byte or code point differs */
        if (k >= klen || c != (unsigned char)key[k])
            same = 0;
        k++;
    }
    return -1;
}

/* Past the value starting at b[i]; n when it runs off the end. */
static size_t skip_value(const char *b, size_t i, size_t n)
{
    int depth = 0;
    if (i >= n)
        return n;
    if (b[i] == '"')
        return skip_string(b, i, n);
    if (b[i] != '{' && b[i] != '[') { /* number, true, false, null */
        while (i < n && b[i] != ',' && b[i] != '}' && b[i] != ']' &&
               b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r')
            i++;
        return i;
    }
    while (i < n) {
        char c = b[i];
        if (c == '"') {
            i = skip_string(b, i, n);
            continue;
        }
        if (c == '{' || c == '[')
            depth++;
        else if ((c == '}' || c == ']') && --depth == 0)
            return i + 1;
        i++;
    }
    return n;
}

int json_member_span(const char *buf, size_t len, const char *key, size_t *off,
                     size_t *vlen)
{
    size_t i = skip_ws(buf, 0, len), end;
    if (i >= len || buf[i] != '{')
        return -1;
    i = skip_ws(buf, i + 1, len);
    if (i < len && buf[i] == '}')
        return 0;
    while (i < len) {
        if (buf[i] != '"')
            return -1;
        int is = key_is(buf, i, len, key, &end);
        if (is < 0)
            return -1;
        i = skip_ws(buf, end, len);
        if (i >= len || buf[i] != ':')
            return -1;
        i = skip_ws(buf, i + 1, len);
        end = skip_value(buf, i, len);
        if (end >= len || end == i) /* the object's '}' must follow */
            return -1;
        if (is) {
            *off = i;
            *vlen = end - i;
            return 1;
        }
        i = skip_ws(buf, end, len);
        if (i >= len)
            return -1;
        if (buf[i] == '}')
            return 0;
        if (buf[i] != ',')
            return -1;
        i = skip_ws(buf, i + 1, len);
    }
    return -1;
}

int json_splice_str(const char *buf, size_t len, size_t off, size_t vlen,
                    const char *s, buf_t *out)
{
    if (off > len || vlen > len - off)
        return -1;
    buf_reserve(out, len - vlen + strlen(s) + 8);
    buf_append(out, buf, off);
    buf_json_str(out, s);
    buf_append(out, buf + off + vlen, len - off - vlen);
    return out->oom ? -1 : 0;
}
