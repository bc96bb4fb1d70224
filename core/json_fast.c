/*
 * json_fast.c - the request body parser (see json_fast.h): recursive
 * descent over the buffer, strings scanned in runs of plain bytes, UTF-8
 * checked as jansson checks it, values built with jansson's constructors.
 */
#include "json_fast.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct jp {
    const unsigned char *p, *end, *start;
    size_t flags;
    json_error_t *err;
    int failed;
    int depth;
    char *scratch; /* unescaped string being built; owned */
    size_t slen, scap;
    size_t used, budget; /* estimated bytes of the tree built, its cap */
};

/* Estimated heap bytes of the pieces of a jansson tree (allocation and its
 * malloc header), charged as they are built. */
#define COST_OBJECT 192 /* json_object_t and its first hash buckets */
#define COST_MEMBER 64  /* a hashtable pair, plus the key's bytes */
#define COST_ARRAY  128
#define COST_ITEM   8  /* a slot of the array's table */
#define COST_STRING 64 /* a string, plus its bytes */
#define COST_NUMBER 32

/* 1 for bytes that stand for themselves inside a string: printable ASCII
 * other than '"' and '\\'. */
static const unsigned char plain_tab[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

/* Nonzero when one of the 8 bytes in x is not plain (see plain_tab): a
 * control character, '"', '\\' or a byte >= 0x80. Word-at-a-time tests
 * from "Bit Twiddling Hacks" (haszero / hasless), exact for n <= 128. */
#define J_ONES 0x0101010101010101ull
#define J_HIGH 0x8080808080808080ull
static uint64_t word_not_plain(uint64_t x)
{
    uint64_t q = x ^ (J_ONES * '"'), b = x ^ (J_ONES * '\\');
    return ((x - J_ONES * 0x20) & ~x & J_HIGH) | ((q - J_ONES) & ~q & J_HIGH) |
           ((b - J_ONES) & ~b & J_HIGH) | (x & J_HIGH);
}

static void jp_fail(struct jp *j, const unsigned char *at, const char *fmt, ...)
{
    if (j->failed)
        return;
    j->failed = 1;
    if (!j->err)
        return;
    int line = 1, col = 0;
    if (at > j->end)
        at = j->end;
    for (const unsigned char *q = j->start; q < at; q++) {
        if (*q == '\n') {
            line++;
            col = 0;
        } else if ((*q & 0xC0) != 0x80) {
            col++; /* columns count characters, as jansson does */
        }
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->err->text, sizeof j->err->text, fmt, ap);
    va_end(ap);
    j->err->line = line;
    j->err->column = col;
    j->err->position = (int)(at - j->start);
    snprintf(j->err->source, sizeof j->err->source, "<buffer>");
}

static void skip_ws(struct jp *j)
{
    const unsigned char *p = j->p, *e = j->end;
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    j->p = p;
}

/* Length of the valid UTF-8 sequence at p (2..4), or 0. The rules are
 * jansson's: no overlong forms, no surrogates, nothing past U+10FFFF. */
static size_t utf8_len(const unsigned char *p, const unsigned char *e)
{
    unsigned c = p[0], n;
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        v = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        v = c & 0x07;
    } else {
        return 0;
    }
    if ((size_t)(e - p) < n)
        return 0;
    for (unsigned i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (p[i] & 0x3F);
    }
    if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000) ||
        (v >= 0xD800 && v <= 0xDFFF) || v > 0x10FFFF)
        return 0;
    return n;
}

static int scratch_add(struct jp *j, const void *s, size_t n)
{
    if (!n)
        return 0; /* also keeps a NULL scratch away from memcpy */
    if (j->slen + n > j->scap) {
        size_t cap = j->scap ? j->scap : 256;
        while (cap < j->slen + n)
            cap *= 2;
        char *v = realloc(j->scratch, cap);
        if (!v)
            return -1;
        j->scratch = v;
        j->scap = cap;
    }
    memcpy(j->scratch + j->slen, s, n);
    j->slen += n;
    return 0;
}

static int hex4(const unsigned char *p, const unsigned char *e, uint32_t *out)
{
    uint32_t v = 0;
    if (e - p < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    *out = v;
    return 0;
}

static int utf8_put(struct jp *j, uint32_t v)
{
    unsigned char b[4];
    size_t n;
    if (v < 0x80) {
        b[0] = (unsigned char)v;
        n = 1;
    } else if (v < 0x800) {
        b[0] = (unsigned char)(0xC0 | (v >> 6));
        b[1] = (unsigned char)(0x80 | (v & 0x3F));
        n = 2;
    } else if (v < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (v >> 12));
        b[1] = (unsigned char)(0x80 | ((v >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (v & 0x3F));
        n = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | (v >> 18));
        b[1] = (unsigned char)(0x80 | ((v >> 12) & 0x3F));
        b[2] = (unsigned char)(0x80 | ((v >> 6) & 0x3F));
        b[3] = (unsigned char)(0x80 | (v & 0x3F));
        n = 4;
    }
    return scratch_add(j, b, n);
}

/* One escape after the backslash at j->p[-1]; appends to scratch. */
static int parse_escape(struct jp *j)
{
    const unsigned char *at = j->p - 1;
    if (j->p >= j->end)
        goto bad;
    unsigned char c = *j->p++;
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *k = c ? strchr(from, c) : NULL;
    if (k)
        return scratch_add(j, &to[k - from], 1);
    if (c != 'u')
        goto bad;
    uint32_t v, lo;
    if (hex4(j->p, j->end, &v) != 0)
        goto bad;
    j->p += 4;
    if (v >= 0xD800 && v <= 0xDBFF) {
        if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' ||
            hex4(j->p + 2, j->end, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF) {
            jp_fail(j, at, "invalid Unicode '\\u%04X'", (unsigned)v);
            return -1;
        }
        j->p += 6;
        v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
    } else if (v >= 0xDC00 && v <= 0xDFFF) {
        jp_fail(j, at, "invalid Unicode '\\u%04X'", (unsigned)v);
        return -1;
    } else if (v == 0) {
        jp_fail(j, at, "\\u0000 is not allowed without JSON_ALLOW_NUL");
        return -1;
    }
    return utf8_put(j, v);
bad:
    jp_fail(j, at, "invalid escape");
    return -1;
}

/* A string whose opening quote is at j->p. On success (*s, *n) is either a
 * span of the input (no escapes) or the scratch buffer. */
static int parse_string(struct jp *j, const char **s, size_t *n)
{
    const unsigned char *start = ++j->p, *p = start, *e = j->end;
    int copying = 0;
    j->slen = 0;
    for (;;) {
        for (;;) { /* 8 plain bytes at a time, then byte by byte */
            uint64_t x;
            if (e - p < 8)
                break;
            memcpy(&x, p, 8);
            if (word_not_plain(x))
                break;
            p += 8;
        }
        while (p < e && plain_tab[*p])
            p++;
        if (p >= e) {
            jp_fail(j, p, "premature end of input in string");
            return -1;
        }
        unsigned c = *p;
        if (c == '"')
            break;
        if (c >= 0x80) {
            size_t k = utf8_len(p, e);
            if (!k) {
                jp_fail(j, p, "unable to decode byte 0x%x", c);
                return -1;
            }
            p += k;
            continue;
        }
        if (c < 0x20) {
            jp_fail(j, p, "control character 0x%x in string", c);
            return -1;
        }
        /* a backslash: from here on the string is built in scratch */
        if (scratch_add(j, start, (size_t)(p - start)) != 0)
            goto oom;
        j->p = p + 1;
        if (parse_escape(j) != 0)
            return -1;
        p = start = j->p;
        copying = 1;
    }
    if (copying) {
        if (scratch_add(j, start, (size_t)(p - start)) != 0)
            goto oom;
        *s = j->scratch;
        *n = j->slen;
    } else {
        *s = (const char *)start;
        *n = (size_t)(p - start);
    }
    j->p = p + 1;
    return 0;
oom:
    jp_fail(j, p, "out of memory");
    return -1;
}

static json_t *parse_number(struct jp *j)
{
    const unsigned char *s = j->p, *p = s, *e = j->end;
    int is_real = 0;
    if (p < e && *p == '-')
        p++;
    if (p < e && *p == '0') {
        p++;
    } else if (p < e && *p >= '1' && *p <= '9') {
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    } else {
        goto bad;
    }
    if (p < e && *p == '.') {
        is_real = 1;
        p++;
        if (p >= e || *p < '0' || *p > '9')
            goto bad;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        is_real = 1;
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        if (p >= e || *p < '0' || *p > '9')
            goto bad;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    size_t n = (size_t)(p - s);
    j->p = p;
    if (!is_real && n <= 18) { /* fits: no overflow possible */
        const unsigned char *q = s;
        int neg = *q == '-';
        long long v = 0;
        for (q += neg; q < p; q++)
            v = v * 10 + (*q - '0');
        return json_integer(neg ? -v : v);
    }
    char small[64], *txt = n < sizeof small ? small : malloc(n + 1);
    if (!txt) {
        jp_fail(j, s, "out of memory");
        return NULL;
    }
    memcpy(txt, s, n);
    txt[n] = '\0';
    json_t *v = NULL;
    errno = 0;
    if (!is_real) {
        long long iv = strtoll(txt, NULL, 10);
        if (errno == ERANGE)
            jp_fail(j, s,
                    iv < 0 ? "too big negative integer" : "too big integer");
        else
            v = json_integer(iv);
    } else {
        double d = strtod(txt, NULL);
        if (errno == ERANGE && (d > 1.0 || d < -1.0))
            jp_fail(j, s, "real number overflow");
        else
            v = json_real(d);
    }
    if (txt != small)
        free(txt);
    return v;
bad:
    jp_fail(j, s, "invalid token");
    return NULL;
}

static int literal(struct jp *j, const char *word, size_t n)
{
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0) {
        jp_fail(j, j->p, "invalid token");
        return -1;
    }
    j->p += n;
    return 0;
}

static json_t *parse_value(struct jp *j);

/* Count n more bytes of tree; -1 (and the parse fails) past the budget. */
static int charge(struct jp *j, size_t n)
{
    j->used += n;
    if (j->used <= j->budget)
        return 0;
    jp_fail(j, j->p,
            "the body is too complex: its parsed form would exceed "
            "%zu bytes",
            j->budget);
    return -1;
}

/* After an object member or array element: ',' (another follows) -> 0,
 * the closing `close` -> 1, anything else -> -1. */
static int after_item(struct jp *j, char close)
{
    skip_ws(j);
    if (j->p < j->end && *j->p == ',') {
        j->p++;
        skip_ws(j);
        return 0;
    }
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return 1;
    }
    return -1;
}

/* Keys of an object checked for duplicates by comparing them with the
 * ones before (spans of the input) instead of jansson's hash lookup, while
 * every key so far was unescaped and there are at most this many. */
#define DUP_SCAN_MAX 8

static json_t *parse_object(struct jp *j)
{
    struct {
        const char *p;
        size_t n;
    } seen[DUP_SCAN_MAX];
    size_t nseen = 0;
    int scan = 1; /* 0: an escaped key or too many, jansson looks */
    if (charge(j, COST_OBJECT) != 0)
        return NULL;
    json_t *obj = json_object();
    if (!obj)
        goto oom;
    j->p++; /* '{' */
    skip_ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return obj;
    }
    for (;;) {
        const char *k;
        size_t kn;
        char *kcopy = NULL;
        if (j->p >= j->end || *j->p != '"') {
            jp_fail(j, j->p, "string or '}' expected");
            goto fail;
        }
        if (parse_string(j, &k, &kn) != 0 || charge(j, COST_MEMBER + kn) != 0)
            goto fail;
        int escaped = k == j->scratch;
        if (escaped) { /* the value may reuse scratch */
            kcopy = malloc(kn ? kn : 1);
            if (!kcopy)
                goto oom;
            memcpy(kcopy, k, kn);
            k = kcopy;
        }
        if (j->flags & JSON_REJECT_DUPLICATES) {
            int dup = 0;
            if (scan && !escaped && nseen < DUP_SCAN_MAX) {
                /* an unescaped key's bytes are its decoded text */
                for (size_t i = 0; i < nseen && !dup; i++)
                    dup = seen[i].n == kn && !memcmp(seen[i].p, k, kn);
                seen[nseen].p = k;
                seen[nseen++].n = kn;
            } else {
                scan = 0; /* this key and the later ones: jansson's lookup */
                dup = json_object_getn(obj, k, kn) != NULL;
            }
            if (dup) {
                free(kcopy);
                jp_fail(j, j->p, "duplicate object key");
                goto fail;
            }
        }
        skip_ws(j);
        if (j->p >= j->end || *j->p != ':') {
            free(kcopy);
            jp_fail(j, j->p, "':' expected");
            goto fail;
        }
        j->p++;
        skip_ws(j);
        json_t *v = parse_value(j);
        if (!v) {
            free(kcopy);
            goto fail;
        }
        int rc = json_object_setn_new_nocheck(obj, k, kn, v);
        free(kcopy);
        if (rc != 0)
            goto oom;
        int next = after_item(j, '}');
        if (next == 0)
            continue;
        if (next == 1)
            return obj;
        jp_fail(j, j->p, "'}' expected");
        goto fail;
    }
oom:
    jp_fail(j, j->p, "out of memory");
fail:
    json_decref(obj);
    return NULL;
}

static json_t *parse_array(struct jp *j)
{
    if (charge(j, COST_ARRAY) != 0)
        return NULL;
    json_t *arr = json_array();
    if (!arr)
        goto oom;
    j->p++; /* '[' */
    skip_ws(j);
    if (j->p < j->end && *j->p == ']') {
        j->p++;
        return arr;
    }
    for (;;) {
        json_t *v = charge(j, COST_ITEM) == 0 ? parse_value(j) : NULL;
        if (!v)
            goto fail;
        if (json_array_append_new(arr, v) != 0)
            goto oom;
        int next = after_item(j, ']');
        if (next == 0)
            continue;
        if (next == 1)
            return arr;
        jp_fail(j, j->p, "']' expected");
        goto fail;
    }
oom:
    jp_fail(j, j->p, "out of memory");
fail:
    json_decref(arr);
    return NULL;
}

static json_t *parse_value(struct jp *j)
{
    json_t *v = NULL;
    if (++j->depth > JSON_PARSER_MAX_DEPTH) {
        jp_fail(j, j->p, "maximum parsing depth reached");
        return NULL;
    }
    if (j->p >= j->end) {
        jp_fail(j, j->p, "premature end of input");
        return NULL;
    }
    switch (*j->p) {
    case '{':
        v = parse_object(j);
        break;
    case '[':
        v = parse_array(j);
        break;
    case '"': {
        const char *s;
        size_t n;
        if (parse_string(j, &s, &n) == 0 && charge(j, COST_STRING + n) == 0) {
            v = json_stringn_nocheck(s, n);
            if (!v)
                jp_fail(j, j->p, "out of memory");
        }
        break;
    }
    case 't':
        v = literal(j, "true", 4) == 0 ? json_true() : NULL;
        break;
    case 'f':
        v = literal(j, "false", 5) == 0 ? json_false() : NULL;
        break;
    case 'n':
        v = literal(j, "null", 4) == 0 ? json_null() : NULL;
        break;
    default:
        v = charge(j, COST_NUMBER) == 0 ? parse_number(j) : NULL;
        break;
    }
    j->depth--;
    return v;
}

json_t *json_fast_loadb(const char *buf, size_t len, size_t flags,
                        json_error_t *err)
{
    return json_fast_loadb_budget(buf, len, flags, SIZE_MAX, NULL, err);
}

json_t *json_fast_loadb_budget(const char *buf, size_t len, size_t flags,
                               size_t budget, size_t *used, json_error_t *err)
{
    struct jp j = {.p = (const unsigned char *)buf,
                   .end = (const unsigned char *)buf + len,
                   .start = (const unsigned char *)buf,
                   .flags = flags,
                   .err = err,
                   .budget = budget};
    if (err) {
        memset(err, 0, sizeof *err);
        err->line = -1;
        err->column = -1;
    }
    if (!buf) {
        jp_fail(&j, j.p, "wrong arguments");
        return NULL;
    }
    skip_ws(&j);
    if (j.p >= j.end || (*j.p != '{' && *j.p != '[')) {
        jp_fail(&j, j.p, "'[' or '{' expected");
        return NULL;
    }
    json_t *v = parse_value(&j);
    if (v) {
        skip_ws(&j);
        if (j.p < j.end) {
            jp_fail(&j, j.p, "end of file expected");
            json_decref(v);
            v = NULL;
        }
    }
    free(j.scratch);
    if (used)
        *used = j.used;
    return v;
}
