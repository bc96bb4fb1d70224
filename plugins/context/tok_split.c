/* tok_split.c - the pre-tokenizer: a sequence of PCRE2 regexes (UTF, Unicode
 * properties, JIT) each splitting every piece of the previous step into its
 * matches and the gaps between them (Hugging Face Split with "Isolated"
 * behaviour; a tiktoken pattern is a sequence of one). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <string.h>

#include "tok_priv.h"

/* The split patterns of the tiktoken encodings, exactly as the npm tiktoken
 * package ships them (encoders/<name>.json "pat_str"), and GPT-2's
 * (Hugging Face ByteLevel pre-tokenizer with use_regex: true). */
static const char PAT_O200K[] =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*"
    "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+"
    "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+"
    "|\\s+(?!\\S)|\\s+";
static const char PAT_CL100K[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+"
    "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+"
    "|\\s+(?!\\S)|\\s+";
static const char PAT_GPT2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+"
    "|\\s+(?!\\S)|\\s+";

const char *split_named_pattern(const char *name)
{
    if (!name)
        return NULL;
    if (!strcmp(name, "o200k") || !strcmp(name, "o200k_base"))
        return PAT_O200K;
    if (!strcmp(name, "cl100k") || !strcmp(name, "cl100k_base"))
        return PAT_CL100K;
    if (!strcmp(name, "gpt2"))
        return PAT_GPT2;
    return NULL;
}

int split_add(struct tok_splitter *s, const char *pattern, int literal,
              char *err, size_t errlen)
{
    if (s->n >= TOK_MAX_SPLITS) {
        tok_errf(err, errlen, "more than %d Split pre-tokenizers",
                 TOK_MAX_SPLITS);
        return -1;
    }
    int code;
    PCRE2_SIZE at;
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   opts, &code, &at, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof(msg));
        tok_errf(err, errlen,
                 "split regex does not compile at offset %zu: "
                 "%s",
                 (size_t)at, (const char *)msg);
        return -1;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* interpreter if no JIT */
    s->re[s->n++] = re;
    return 0;
}

void split_free(struct tok_splitter *s)
{
    for (int i = 0; i < s->n; i++)
        pcre2_code_free(s->re[i]);
    s->n = 0;
}

struct split_run {
    const struct tok_splitter *s;
    pcre2_match_data *md[TOK_MAX_SPLITS];
    pcre2_match_context *mctx; /* only once a JIT stack ran short */
    pcre2_jit_stack *jit;
    split_piece_fn fn;
    void *ud;
};

static int split_level(struct split_run *r, int level, const char *p, size_t n);

static int split_emit(struct split_run *r, int level, const char *p, size_t n)
{
    if (!n)
        return 0;
    if (level + 1 < r->s->n)
        return split_level(r, level + 1, p, n);
    return r->fn(r->ud, p, n);
}

static int split_match(struct split_run *r, int level, const char *p, size_t n,
                       size_t off)
{
    const pcre2_code *re = r->s->re[level];
    int rc = pcre2_match(re, (PCRE2_SPTR)p, n, off, PCRE2_NO_UTF_CHECK,
                         r->md[level], r->mctx);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !r->jit) {
        r->jit = pcre2_jit_stack_create(64 * 1024, 8 * 1024 * 1024, NULL);
        r->mctx = pcre2_match_context_create(NULL);
        if (!r->jit || !r->mctx)
            return -1;
        pcre2_jit_stack_assign(r->mctx, NULL, r->jit);
        rc = pcre2_match(re, (PCRE2_SPTR)p, n, off, PCRE2_NO_UTF_CHECK,
                         r->md[level], r->mctx);
    }
    return rc;
}

static size_t utf8_next(const char *p, size_t n, size_t i)
{
    i++;
    while (i < n && ((unsigned char)p[i] & 0xC0) == 0x80)
        i++;
    return i;
}

static int split_level(struct split_run *r, int level, const char *p, size_t n)
{
    size_t off = 0, gap = 0;
    while (off < n) {
        int rc = split_match(r, level, p, n, off);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0)
            return -1; /* resource limit: refuse, never guess */
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md[level]);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) { /* empty match: no piece, step one char */
            off = utf8_next(p, n, ms > off ? ms : off);
            continue;
        }
        if (split_emit(r, level, p + gap, ms - gap) < 0 ||
            split_emit(r, level, p + ms, me - ms) < 0)
            return -1;
        gap = off = me;
    }
    return split_emit(r, level, p + gap, n - gap);
}

int split_run(const struct tok_splitter *s, const char *text, size_t len,
              split_piece_fn fn, void *ud)
{
    if (!len)
        return 0;
    if (!s->n)
        return fn(ud, text, len);
    struct split_run r = {.s = s, .fn = fn, .ud = ud};
    int rc = 0;
    for (int i = 0; i < s->n; i++)
        if (!(r.md[i] = pcre2_match_data_create(1, NULL)))
            rc = -1;
    if (rc == 0)
        rc = split_level(&r, 0, text, len);
    for (int i = 0; i < s->n; i++)
        pcre2_match_data_free(r.md[i]);
    pcre2_match_context_free(r.mctx);
    if (r.jit)
        pcre2_jit_stack_free(r.jit);
    return rc;
}
