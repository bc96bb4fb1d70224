/* tok_json.c - a JSON cursor for the tokenizer loaders: walks a document in
 * place (objects, arrays, strings with \u escapes, integers) without building
 * a tree, so a 10 MB tokenizer.json costs no more than its tables. */
#include <stdlib.h>
#include <string.h>

#include "tok_priv.h"

#define TJ_MAX_DEPTH 256

int tbuf_reserve(struct tbuf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int tbuf_add(struct tbuf *b, const void *s, size_t n)
{
    if (tbuf_reserve(b, n) < 0)
        return -1;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

void tbuf_free(struct tbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static int tj_fail(struct tj *j, const char *msg)
{
    if (!j->err)
        j->err = msg;
    return -1;
}

static void tj_ws(struct tj *j)
{
    while (j->p < j->end &&
           (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

size_t tj_offset(const struct tj *j)
{
    return (size_t)(j->p - j->start);
}

enum tj_type tj_peek(struct tj *j)
{
    tj_ws(j);
    if (j->p >= j->end)
        return TJ_END;
    switch (*j->p) {
    case '{':
        return TJ_OBJ;
    case '[':
        return TJ_ARR;
    case '"':
        return TJ_STR;
    case 't':
        return TJ_TRUE;
    case 'f':
        return TJ_FALSE;
    case 'n':
        return TJ_NULL;
    default:
        if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))
            return TJ_NUM;
        return TJ_BAD;
    }
}

static int tj_char(struct tj *j, char c)
{
    tj_ws(j);
    if (j->p >= j->end)
        return tj_fail(j, "unexpected end of file (truncated JSON?)");
    if (*j->p != c)
        return tj_fail(j, "malformed JSON");
    j->p++;
    return 0;
}

int tj_obj_begin(struct tj *j)
{
    return tj_char(j, '{');
}

int tj_arr_begin(struct tj *j)
{
    return tj_char(j, '[');
}

/* After '{' or '[' the first element has no comma; later ones do.  We tell
 * them apart by the last non-blank byte before the cursor. */
static int tj_after_open(const struct tj *j)
{
    const char *q = j->p;
    while (q > j->start &&
           (q[-1] == ' ' || q[-1] == '\n' || q[-1] == '\r' || q[-1] == '\t'))
        q--;
    return q > j->start && (q[-1] == '{' || q[-1] == '[');
}

static int tj_next(struct tj *j, char close)
{
    tj_ws(j);
    if (j->p >= j->end)
        return tj_fail(j, "unexpected end of file (truncated JSON?)");
    if (*j->p == close) {
        j->p++;
        return 0;
    }
    if (!tj_after_open(j)) {
        if (*j->p != ',')
            return tj_fail(j, "malformed JSON (expected ',')");
        j->p++;
        tj_ws(j);
        if (j->p >= j->end)
            return tj_fail(j, "unexpected end of file (truncated JSON?)");
    }
    return 1;
}

int tj_obj_next(struct tj *j, struct tbuf *key)
{
    int r = tj_next(j, '}');
    if (r <= 0)
        return r;
    if (tj_peek(j) != TJ_STR)
        return tj_fail(j, "malformed JSON (expected a key)");
    if (tj_string(j, key) < 0 || tj_char(j, ':') < 0)
        return -1;
    return 1;
}

int tj_arr_next(struct tj *j)
{
    return tj_next(j, ']');
}

static int tj_hex4(struct tj *j, unsigned *v)
{
    if (j->end - j->p < 4)
        return tj_fail(j, "unexpected end of file in \\u escape");
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = j->p[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return tj_fail(j, "bad \\u escape");
        *v = *v * 16 + d;
    }
    j->p += 4;
    return 0;
}

static int tj_put_cp(struct tbuf *out, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return tbuf_add(out, u, n);
}

static int tj_escape(struct tj *j, struct tbuf *out)
{
    char c = *j->p++;
    const char *map = "\"\"\\\\//b\bf\fn\nr\rt\t";
    for (const char *m = map; *m; m += 2)
        if (*m == c)
            return tbuf_add(out, m + 1, 1);
    if (c != 'u')
        return tj_fail(j, "bad escape in string");
    unsigned cp, lo;
    if (tj_hex4(j, &cp) < 0)
        return -1;
    if (cp >= 0xD800 && cp < 0xDC00 && j->end - j->p >= 6 && j->p[0] == '\\' &&
        j->p[1] == 'u') {
        const char *save = j->p;
        j->p += 2;
        if (tj_hex4(j, &lo) < 0)
            return -1;
        if (lo >= 0xDC00 && lo < 0xE000)
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        else
            j->p = save;
    }
    if (cp >= 0xD800 && cp < 0xE000)
        cp = 0xFFFD; /* lone surrogate */
    return tj_put_cp(out, cp);
}

int tj_string(struct tj *j, struct tbuf *out)
{
    out->len = 0;
    if (tbuf_reserve(out, 0) < 0)
        return tj_fail(j, "out of memory");
    out->p[0] = '\0';
    if (tj_char(j, '"') < 0)
        return -1;
    for (;;) {
        const char *q = j->p;
        while (q < j->end && *q != '"' && *q != '\\' &&
               (unsigned char)*q >= 0x20)
            q++;
        if (q > j->p && tbuf_add(out, j->p, (size_t)(q - j->p)) < 0)
            return tj_fail(j, "out of memory");
        j->p = q;
        if (j->p >= j->end)
            return tj_fail(j, "unexpected end of file in a string "
                              "(truncated JSON?)");
        if (*j->p == '"') {
            j->p++;
            return 0;
        }
        if ((unsigned char)*j->p < 0x20)
            return tj_fail(j, "control character in a string");
        j->p++;
        if (j->p >= j->end)
            return tj_fail(j, "unexpected end of file in a string");
        if (tj_escape(j, out) < 0)
            return -1;
    }
}

int tj_int(struct tj *j, long *v)
{
    if (tj_peek(j) != TJ_NUM)
        return tj_fail(j, "expected a number");
    int neg = 0;
    if (*j->p == '-') {
        neg = 1;
        j->p++;
    }
    long x = 0;
    int digits = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        if (x > 1000000000000L)
            return tj_fail(j, "number out of range");
        x = x * 10 + (*j->p++ - '0');
        digits++;
    }
    if (!digits)
        return tj_fail(j, "malformed number");
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E'))
        return tj_fail(j, "expected an integer");
    *v = neg ? -x : x;
    return 0;
}

static int tj_word(struct tj *j, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0)
        return tj_fail(j, (size_t)(j->end - j->p) < n
                              ? "unexpected end of file (truncated JSON?)"
                              : "malformed JSON literal");
    j->p += n;
    return 0;
}

int tj_bool(struct tj *j, int *v)
{
    switch (tj_peek(j)) {
    case TJ_TRUE:
        *v = 1;
        return tj_word(j, "true");
    case TJ_FALSE:
        *v = 0;
        return tj_word(j, "false");
    case TJ_NULL:
        *v = 0;
        return tj_word(j, "null");
    default:
        return tj_fail(j, "expected true or false");
    }
}

static int tj_skip_depth(struct tj *j, int depth)
{
    struct tbuf tmp = {0};
    int r = 0;
    if (depth > TJ_MAX_DEPTH)
        return tj_fail(j, "JSON nested too deeply");
    switch (tj_peek(j)) {
    case TJ_OBJ:
        if (tj_obj_begin(j) < 0)
            return -1;
        while ((r = tj_obj_next(j, &tmp)) > 0)
            if (tj_skip_depth(j, depth + 1) < 0) {
                r = -1;
                break;
            }
        break;
    case TJ_ARR:
        if (tj_arr_begin(j) < 0)
            return -1;
        while ((r = tj_arr_next(j)) > 0)
            if (tj_skip_depth(j, depth + 1) < 0) {
                r = -1;
                break;
            }
        break;
    case TJ_STR:
        r = tj_string(j, &tmp);
        break;
    case TJ_NUM:
        if (*j->p == '-')
            j->p++;
        while (j->p < j->end && strchr("0123456789.eE+-", *j->p))
            j->p++;
        break;
    case TJ_TRUE:
        r = tj_word(j, "true");
        break;
    case TJ_FALSE:
        r = tj_word(j, "false");
        break;
    case TJ_NULL:
        r = tj_word(j, "null");
        break;
    case TJ_END:
        r = tj_fail(j, "unexpected end of file (truncated JSON?)");
        break;
    default:
        r = tj_fail(j, "malformed JSON");
    }
    tbuf_free(&tmp);
    return r < 0 ? -1 : 0;
}

int tj_skip(struct tj *j)
{
    return tj_skip_depth(j, 0);
}
