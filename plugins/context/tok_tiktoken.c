/* tok_tiktoken.c - loader of tiktoken ranks: a .tiktoken file ("<base64
 * token> <rank>" per line, as OpenAI publishes them) or the encoder JSON of
 * the npm tiktoken package ({"pat_str", "special_tokens", "bpe_ranks":
 * "! <offset> <base64> <base64> ..." lines}).  The rank of a token is its
 * id; the split pattern is named in config or taken from "pat_str". */
#include <stdlib.h>
#include <string.h>

#include "tok_priv.h"

static int b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decodes base64 (with or without padding) into out; -1 if malformed. */
static long b64_decode(const char *s, size_t n, char *out, size_t outcap)
{
    while (n && s[n - 1] == '=')
        n--;
    unsigned acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= outcap)
                return -1;
            out[o++] = (char)((acc >> bits) & 0xFF);
        }
    }
    return (long)o;
}

static int tt_add(struct tok *t, const char *b64, size_t n, long rank,
                  char *err, size_t errlen, long line)
{
    char buf[1024];
    long len = b64_decode(b64, n, buf, sizeof(buf));
    if (len <= 0) {
        tok_errf(err, errlen, "bad base64 token at line %ld", line);
        return -1;
    }
    if (rank < 0 || rank >= (1L << 30)) {
        tok_errf(err, errlen, "rank out of range at line %ld", line);
        return -1;
    }
    int r = vocab_add(&t->vocab, buf, (size_t)len, (uint32_t)rank);
    if (r < 0) {
        tok_errf(err, errlen, "out of memory");
        return -1;
    }
    if (r > 0) {
        tok_errf(err, errlen, "duplicate token or rank %ld at line %ld", rank,
                 line);
        return -1;
    }
    return 0;
}

static int is_sp(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* ".tiktoken": one "<base64> <rank>" per line. */
static int tt_lines(struct tok *t, const char *p, const char *end, char *err,
                    size_t errlen)
{
    long line = 0;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        line++;
        const char *a = p, *sp = a;
        while (sp < eol && !is_sp(*sp))
            sp++;
        if (sp == a) { /* blank line */
            p = eol + 1;
            continue;
        }
        const char *r = sp;
        while (r < eol && is_sp(*r))
            r++;
        char *q;
        long rank = strtol(r, &q, 10);
        if (r == eol || q == r || (q < eol && !is_sp(*q))) {
            tok_errf(err, errlen, "line %ld is not \"<base64> <rank>\"", line);
            return -1;
        }
        if (tt_add(t, a, (size_t)(sp - a), rank, err, errlen, line) < 0)
            return -1;
        p = eol + 1;
    }
    if (!line) {
        tok_errf(err, errlen, "no ranks");
        return -1;
    }
    return 0;
}

/* npm tiktoken "bpe_ranks": lines of "<tag> <offset> <b64> <b64> ...". */
static int tt_packed(struct tok *t, const char *p, const char *end, char *err,
                     size_t errlen)
{
    long line = 0;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        line++;
        const char *f = p;
        while (f < eol && *f != ' ')
            f++;
        if (f == eol) {
            p = eol + 1;
            continue;
        }
        char *q;
        long rank = strtol(f + 1, &q, 10);
        if (q == f + 1) {
            tok_errf(err, errlen, "bpe_ranks line %ld has no offset", line);
            return -1;
        }
        const char *s = q;
        while (s < eol) {
            while (s < eol && *s == ' ')
                s++;
            const char *e = s;
            while (e < eol && *e != ' ')
                e++;
            if (e > s &&
                tt_add(t, s, (size_t)(e - s), rank++, err, errlen, line) < 0)
                return -1;
            s = e;
        }
        p = eol + 1;
    }
    return 0;
}

static int tt_json(struct tok *t, const char *data, size_t n, struct tbuf *pat,
                   char *err, size_t errlen)
{
    struct tj j = {data, data + n, data, NULL};
    struct tbuf key = {0}, val = {0};
    int r, rc = -1, seen = 0;
    if (tj_obj_begin(&j) < 0)
        goto json;
    while ((r = tj_obj_next(&j, &key)) > 0) {
        if (!strcmp(key.p, "pat_str")) {
            if (tj_string(&j, pat) < 0)
                goto json;
        } else if (!strcmp(key.p, "bpe_ranks")) {
            if (tj_string(&j, &val) < 0)
                goto json;
            if (tt_packed(t, val.p, val.p + val.len, err, errlen) < 0)
                goto out;
            seen = 1;
        } else if (tj_skip(&j) < 0) {
            goto json;
        }
    }
    if (r < 0)
        goto json;
    if (!seen) {
        tok_errf(err, errlen, "no \"bpe_ranks\" in the encoder JSON");
        goto out;
    }
    rc = 0;
    goto out;
json:
    tok_errf(err, errlen, "%s at byte %zu", j.err ? j.err : "malformed JSON",
             tj_offset(&j));
out:
    tbuf_free(&key);
    tbuf_free(&val);
    return rc;
}

int tok_load_tiktoken(struct tok *t, const char *path, const char *data,
                      size_t n, const char *pattern, char *err, size_t errlen)
{
    (void)path;
    struct tbuf pat = {0};
    int rc = -1;
    t->kind = TOK_TIKTOKEN;
    if (vocab_init(&t->vocab, 1u << 18) < 0) {
        tok_errf(err, errlen, "out of memory");
        goto out;
    }
    const char *p = data;
    while (p < data + n && (*p == ' ' || *p == '\n' || *p == '\r'))
        p++;
    if (p < data + n && *p == '{') {
        if (tt_json(t, data, n, &pat, err, errlen) < 0)
            goto out;
    } else if (tt_lines(t, data, data + n, err, errlen) < 0) {
        goto out;
    }
    const char *re = split_named_pattern(pattern);
    if (pattern && !re) {
        tok_errf(err, errlen,
                 "unknown tiktoken pattern \"%s\" (known: "
                 "o200k, cl100k)",
                 pattern);
        goto out;
    }
    if (!re)
        re = pat.len ? pat.p : NULL;
    if (!re) {
        tok_errf(err, errlen,
                 "a tiktoken rank file needs its split pattern "
                 "named (pattern: o200k or cl100k)");
        goto out;
    }
    if (split_add(&t->split, re, 0, err, errlen) < 0)
        goto out;
    for (int b = 0; b < 256; b++)
        if (t->vocab.byte_id[b] == UINT32_MAX) {
            tok_errf(err, errlen, "no rank for the single byte 0x%02x", b);
            goto out;
        }
    rc = 0;
out:
    tbuf_free(&pat);
    return rc;
}
