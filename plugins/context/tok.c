/* tok.c - the tokenizer's entry points: load a file (format detected from
 * its content), count a text (UTF-8 repair, added tokens, normalizer,
 * pre-tokenizer, BPE per piece through the cache), free. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tok_priv.h"

#define TOK_MAX_FILE      (512L * 1024 * 1024)
#define TOK_CACHE_ENTRIES 131072

/* ---- added tokens: leftmost-longest match, as Hugging Face does ------- */

static int added_index(struct tok *t, char *err, size_t errlen)
{
    if (!t->n_added)
        return 0;
    t->added_pair = calloc(8192, 1);
    uint32_t size = 64;
    while (size < t->n_added * 2)
        size *= 2;
    t->added_slots = calloc(size, sizeof(uint32_t));
    if (!t->added_pair || !t->added_slots) {
        tok_errf(err, errlen, "out of memory");
        return -1;
    }
    t->added_mask = size - 1;
    for (size_t i = 0; i < t->n_added; i++) {
        const struct tok_added *a = &t->added[i];
        const unsigned char *u = (const unsigned char *)a->s;
        if (a->len == 1) {
            t->added_single[u[0] / 8] |= (uint8_t)(1u << (u[0] % 8));
        } else {
            unsigned k = (unsigned)u[0] << 8 | u[1];
            t->added_pair[k / 8] |= (uint8_t)(1u << (k % 8));
        }
        uint32_t s = (uint32_t)tok_hash(a->s, a->len) & t->added_mask;
        while (t->added_slots[s])
            s = (s + 1) & t->added_mask;
        t->added_slots[s] = (uint32_t)i + 1;
        int j = 0;
        while (j < t->n_lens && t->added_lens[j] > a->len)
            j++;
        if (j < t->n_lens && t->added_lens[j] == a->len)
            continue;
        if (t->n_lens == 32) {
            tok_errf(err, errlen,
                     "added tokens of more than 32 distinct "
                     "lengths are not supported");
            return -1;
        }
        memmove(&t->added_lens[j + 1], &t->added_lens[j],
                (size_t)(t->n_lens - j) * sizeof(uint32_t));
        t->added_lens[j] = a->len;
        t->n_lens++;
    }
    return 0;
}

static int added_has(const struct tok *t, const char *s, size_t n)
{
    uint32_t k = (uint32_t)tok_hash(s, n) & t->added_mask;
    for (;;) {
        uint32_t i1 = t->added_slots[k];
        if (!i1)
            return 0;
        const struct tok_added *a = &t->added[i1 - 1];
        if (a->len == n && memcmp(a->s, s, n) == 0)
            return 1;
        k = (k + 1) & t->added_mask;
    }
}

/* Length of the longest added token at s, 0 if none. */
static size_t added_match(const struct tok *t, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    int pair = 0;
    if (n >= 2) {
        unsigned k = (unsigned)u[0] << 8 | u[1];
        pair = t->added_pair[k / 8] & (1u << (k % 8));
    }
    int single = t->added_single[u[0] / 8] & (1u << (u[0] % 8));
    if (!pair && !single)
        return 0;
    for (int i = 0; i < t->n_lens; i++) {
        size_t len = t->added_lens[i];
        if (len > n || (len == 1 ? !single : !pair))
            continue;
        if (added_has(t, s, len))
            return len;
    }
    return 0;
}

/* ---- counting ----------------------------------------------------------- */

/* Pieces are counted in batches: their table slots are prefetched when
 * they arrive, so the cache misses of a batch overlap instead of queuing. */
#define TOK_BATCH 16

struct tok_piece {
    const char *p;
    size_t n;
    uint64_t h;
};

struct tok_run {
    const struct tok *t;
    long total;
    struct tok_piece batch[TOK_BATCH];
    int nbatch;
    struct tbuf norm;
    tok_piece_fn fn; /* tok_split(): report pieces instead */
    void *ud;
};

static int count_piece(struct tok_run *r, const struct tok_piece *x)
{
    const struct tok *t = r->t;
    if ((t->kind == TOK_TIKTOKEN || t->ignore_merges) &&
        vocab_find_hashed(&t->vocab, x->p, x->n, x->h) >= 0) {
        r->total++; /* a whole token: no lock, no merging */
        return 0;
    }
    long c = cache_get(t->cache, x->h, x->p, x->n);
    if (c < 0) {
        c = bpe_count(t, x->p, x->n);
        if (c < 0)
            return -1;
        cache_put(t->cache, x->h, x->p, x->n, c);
    }
    r->total += c;
    return 0;
}

static int run_flush(struct tok_run *r)
{
    int rc = 0;
    for (int i = 0; i < r->nbatch && rc == 0; i++)
        rc = count_piece(r, &r->batch[i]);
    r->nbatch = 0;
    return rc;
}

static int run_piece(void *ud, const char *p, size_t n)
{
    struct tok_run *r = ud;
    if (r->fn) {
        r->fn(r->ud, p, n, 0);
        return 0;
    }
    if (n == 1) {
        r->total++;
        return 0;
    }
    struct tok_piece *x = &r->batch[r->nbatch++];
    x->p = p;
    x->n = n;
    x->h = tok_hash(p, n);
    vocab_prefetch(&r->t->vocab, x->h);
    cache_prefetch(r->t->cache, x->h);
    return r->nbatch == TOK_BATCH ? run_flush(r) : 0;
}

static int run_segment(struct tok_run *r, const char *s, size_t n)
{
    if (!n)
        return 0;
    if (r->t->nfc) {
        int same;
        if (text_nfc(s, n, &r->norm, &same) < 0)
            return -1;
        if (!same) {
            s = r->norm.p;
            n = r->norm.len;
        }
    }
    /* the pieces point into s: count them before s is reused */
    if (split_run(&r->t->split, s, n, run_piece, r) < 0) {
        r->nbatch = 0;
        return -1;
    }
    return run_flush(r);
}

static int run_text(struct tok_run *r, const char *s, size_t n)
{
    const struct tok *t = r->t;
    if (!t->n_added)
        return run_segment(r, s, n);
    size_t seg = 0;
    for (size_t i = 0; i < n;) {
        size_t m = added_match(t, s + i, n - i);
        if (!m) {
            i++;
            continue;
        }
        if (run_segment(r, s + seg, i - seg) < 0)
            return -1;
        if (r->fn)
            r->fn(r->ud, s + i, m, 1);
        else
            r->total++;
        i += m;
        seg = i;
    }
    return run_segment(r, s + seg, n - seg);
}

static int run(const struct tok *t, const char *text, size_t len,
               struct tok_run *r)
{
    struct tbuf fixed = {0};
    int rc;
    if (utf8_valid_prefix(text, len) != len) {
        if (utf8_repair(text, len, &fixed) < 0)
            return -1;
        text = fixed.p;
        len = fixed.len;
    }
    rc = run_text(r, text, len);
    tbuf_free(&fixed);
    tbuf_free(&r->norm);
    (void)t;
    return rc;
}

long tok_count(const struct tok *t, const char *text, size_t len)
{
    struct tok_run r = {.t = t};
    if (!t || (!text && len))
        return -1;
    if (run(t, text, len, &r) < 0)
        return -1;
    return r.total;
}

int tok_split(const struct tok *t, const char *text, size_t len,
              tok_piece_fn fn, void *ud)
{
    struct tok_run r = {.t = t, .fn = fn, .ud = ud};
    return run(t, text, len, &r);
}

/* ---- loading ------------------------------------------------------------ */

static char *read_file(const char *path, size_t *n, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        tok_errf(err, errlen, "%s", strerror(errno));
        return NULL;
    }
    struct stat st;
    char *buf = NULL;
    if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
        tok_errf(err, errlen, "not a regular file");
        goto out;
    }
    if (st.st_size > TOK_MAX_FILE) {
        tok_errf(err, errlen, "larger than %ld MB", TOK_MAX_FILE >> 20);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        tok_errf(err, errlen, "out of memory");
        goto out;
    }
    *n = fread(buf, 1, (size_t)st.st_size, f);
    if (*n != (size_t)st.st_size) {
        tok_errf(err, errlen, "read error");
        free(buf);
        buf = NULL;
        goto out;
    }
    buf[*n] = '\0';
out:
    fclose(f);
    return buf;
}

/* HF tokenizer.json is an object with a "model"; the npm tiktoken encoder
 * JSON has "bpe_ranks"; anything else is read as a .tiktoken file. */
static int looks_hf(const char *data, size_t n)
{
    const char *p = data;
    while (p < data + n && strchr(" \t\r\n", *p))
        p++;
    if (p >= data + n || *p != '{')
        return 0;
    return !memmem(data, n < 4096 ? n : 4096, "\"bpe_ranks\"", 11) &&
           !memmem(data, n < 4096 ? n : 4096, "\"pat_str\"", 9);
}

int tok_load(const char *path, const char *pattern, struct tok **out, char *err,
             size_t errlen)
{
    char why[256] = "";
    size_t n = 0;
    *out = NULL;
    char *data = read_file(path, &n, why, sizeof(why));
    struct tok *t = calloc(1, sizeof(*t));
    int rc = -1;
    if (!data || !t) {
        if (!why[0])
            snprintf(why, sizeof(why), "out of memory");
        goto out;
    }
    if (looks_hf(data, n)) {
        if (pattern) {
            snprintf(why, sizeof(why),
                     "a tokenizer.json carries its own "
                     "split pattern: remove \"pattern: %s\"",
                     pattern);
            goto out;
        }
        rc = tok_load_hf(t, path, data, n, why, sizeof(why));
    } else {
        rc = tok_load_tiktoken(t, path, data, n, pattern, why, sizeof(why));
    }
    if (rc == 0 && (rc = added_index(t, why, sizeof(why))) == 0) {
        t->cache = calloc(1, sizeof(*t->cache));
        if (!t->cache || cache_init(t->cache, TOK_CACHE_ENTRIES) < 0) {
            snprintf(why, sizeof(why), "out of memory");
            rc = -1;
        }
    }
out:
    free(data);
    if (rc < 0) {
        tok_errf(err, errlen, "tokenizer %s: %s", path, why);
        tok_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

void tok_free(struct tok *t)
{
    if (!t)
        return;
    vocab_free(&t->vocab);
    pairs_free(&t->pairs);
    split_free(&t->split);
    for (size_t i = 0; i < t->n_added; i++)
        free(t->added[i].s);
    free(t->added);
    free(t->added_pair);
    free(t->added_slots);
    if (t->cache) {
        cache_free(t->cache);
        free(t->cache);
    }
    free(t);
}

size_t tok_memory(const struct tok *t)
{
    size_t m = sizeof(*t) + vocab_memory(&t->vocab);
    m += ((size_t)t->pairs.mask + (t->pairs.slots ? 1 : 0)) *
         sizeof(struct tok_pair);
    for (size_t i = 0; i < t->n_added; i++)
        m += t->added[i].len + 1 + sizeof(struct tok_added);
    if (t->added_pair)
        m += 8192 + ((size_t)t->added_mask + 1) * sizeof(uint32_t);
    if (t->cache)
        m += cache_memory(t->cache);
    return m;
}

const char *tok_kind_name(const struct tok *t)
{
    return t->kind == TOK_HF ? "hf-bpe" : "tiktoken";
}

unsigned tok_vocab_size(const struct tok *t)
{
    return t->vocab.used;
}

void tok_set_cache(struct tok *t, int enabled)
{
    if (t->cache)
        t->cache->enabled = enabled;
}
