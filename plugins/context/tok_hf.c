/* tok_hf.c - loader of a Hugging Face tokenizer.json for byte-level BPE:
 * model (type BPE: vocab, merges as "a b" strings or [a, b] pairs,
 * ignore_merges), normalizer (none or NFC), pre_tokenizer (Split regexes
 * with Isolated behaviour and ByteLevel) and added_tokens.  Anything else
 * is refused with a message saying what. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_priv.h"

struct hf_load {
    struct tok *t;
    struct tj j;
    struct tbuf key, str;
    int16_t u2b[512];      /* byte-level char -> byte, -1 none */
    const char *merges_at; /* merges are read after the vocab */
    int have_model, have_vocab, have_bytelevel;
    char *err;
    size_t errlen;
};

static void hf_byte_map(struct hf_load *L)
{
    int n = 0;
    for (int i = 0; i < 512; i++)
        L->u2b[i] = -1;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) ||
                   (b >= 0xAE && b <= 0xFF);
        L->u2b[keep ? b : 256 + n++] = (int16_t)b;
    }
}

/* Byte-level token string -> raw bytes (in place); -1 if a char is not one
 * of the 256 byte chars (such a token can never be produced). */
static long hf_unmap(struct hf_load *L, char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, o = 0;
    while (i < n) {
        unsigned cp;
        if (u[i] < 0x80) {
            cp = u[i];
            i += 1;
        } else if ((u[i] & 0xE0) == 0xC0 && i + 1 < n) {
            cp = ((u[i] & 0x1Fu) << 6) | (u[i + 1] & 0x3Fu);
            i += 2;
        } else {
            return -1;
        }
        if (cp >= 512 || L->u2b[cp] < 0)
            return -1;
        s[o++] = (char)L->u2b[cp];
    }
    return (long)o;
}

static int hf_fail(struct hf_load *L, const char *what)
{
    tok_errf(L->err, L->errlen, "%s", what);
    return -1;
}

static int hf_json_fail(struct hf_load *L)
{
    tok_errf(L->err, L->errlen, "%s at byte %zu",
             L->j.err ? L->j.err : "malformed JSON", tj_offset(&L->j));
    return -1;
}

/* Reads {"type": ...} objects field by field through a callback. */
typedef int (*hf_field_fn)(struct hf_load *L, const char *key, void *ctx);

static int hf_object(struct hf_load *L, hf_field_fn fn, void *ctx)
{
    int r;
    if (tj_obj_begin(&L->j) < 0)
        return hf_json_fail(L);
    while ((r = tj_obj_next(&L->j, &L->key)) > 0) {
        char key[64];
        snprintf(key, sizeof(key), "%s", L->key.p);
        if (fn(L, key, ctx) < 0)
            return -1;
    }
    return r < 0 ? hf_json_fail(L) : 0;
}

static int hf_str(struct hf_load *L, char *out, size_t outlen)
{
    if (tj_peek(&L->j) == TJ_NULL) {
        int dummy;
        out[0] = '\0';
        return tj_bool(&L->j, &dummy) < 0 ? hf_json_fail(L) : 0;
    }
    if (tj_string(&L->j, &L->str) < 0)
        return hf_json_fail(L);
    snprintf(out, outlen, "%s", L->str.p);
    return 0;
}

/* ---- normalizer --------------------------------------------------------- */

struct hf_typed { /* one normalizer / pre-tokenizer */
    char type[64];
    char behavior[32];
    int invert, add_prefix_space, use_regex, pattern_set, literal;
    struct tbuf pattern;
    int list_seen;
};

static int hf_list(struct hf_load *L, int (*item)(struct hf_load *));

static int hf_normalizer_item(struct hf_load *L);

static int hf_norm_field(struct hf_load *L, const char *key, void *ctx)
{
    struct hf_typed *x = ctx;
    if (!strcmp(key, "type"))
        return hf_str(L, x->type, sizeof(x->type));
    if (!strcmp(key, "normalizers")) {
        x->list_seen = 1;
        return hf_list(L, hf_normalizer_item);
    }
    return tj_skip(&L->j) < 0 ? hf_json_fail(L) : 0;
}

static int hf_normalizer_item(struct hf_load *L)
{
    struct hf_typed x = {0};
    if (tj_peek(&L->j) == TJ_NULL)
        return tj_skip(&L->j) < 0 ? hf_json_fail(L) : 0;
    if (hf_object(L, hf_norm_field, &x) < 0)
        return -1;
    if (!strcmp(x.type, "NFC")) {
        L->t->nfc = 1;
        return 0;
    }
    if (!strcmp(x.type, "Sequence") && x.list_seen)
        return 0;
    tok_errf(L->err, L->errlen,
             "normalizer type \"%s\" is not supported "
             "(supported: NFC, Sequence of NFC)",
             x.type);
    return -1;
}

/* ---- pre-tokenizer ------------------------------------------------------- */

static int hf_pretok_item(struct hf_load *L);

static int hf_pattern_field(struct hf_load *L, const char *key, void *ctx)
{
    struct hf_typed *x = ctx;
    if (strcmp(key, "Regex") && strcmp(key, "String"))
        return tj_skip(&L->j) < 0 ? hf_json_fail(L) : 0;
    x->literal = !strcmp(key, "String");
    x->pattern_set = 1;
    if (tj_string(&L->j, &x->pattern) < 0)
        return hf_json_fail(L);
    return 0;
}

static int hf_pretok_field(struct hf_load *L, const char *key, void *ctx)
{
    struct hf_typed *x = ctx;
    if (!strcmp(key, "type"))
        return hf_str(L, x->type, sizeof(x->type));
    if (!strcmp(key, "behavior"))
        return hf_str(L, x->behavior, sizeof(x->behavior));
    if (!strcmp(key, "invert"))
        return tj_bool(&L->j, &x->invert) < 0 ? hf_json_fail(L) : 0;
    if (!strcmp(key, "add_prefix_space"))
        return tj_bool(&L->j, &x->add_prefix_space) < 0 ? hf_json_fail(L) : 0;
    if (!strcmp(key, "use_regex")) {
        x->use_regex = 1; /* absent means true in tokenizers */
        int v;
        if (tj_bool(&L->j, &v) < 0)
            return hf_json_fail(L);
        x->use_regex = v ? 1 : 2;
        return 0;
    }
    if (!strcmp(key, "pattern")) {
        if (tj_peek(&L->j) != TJ_OBJ)
            return hf_fail(L, "Split pattern is not an object");
        return hf_object(L, hf_pattern_field, x);
    }
    if (!strcmp(key, "pretokenizers")) {
        x->list_seen = 1;
        return hf_list(L, hf_pretok_item);
    }
    return tj_skip(&L->j) < 0 ? hf_json_fail(L) : 0;
}

static int hf_pretok_split(struct hf_load *L, struct hf_typed *x)
{
    if (!x->pattern_set)
        return hf_fail(L, "Split pre-tokenizer without a Regex/String "
                          "pattern");
    if (strcmp(x->behavior, "Isolated")) {
        tok_errf(L->err, L->errlen,
                 "Split behavior \"%s\" is not supported "
                 "(supported: Isolated)",
                 x->behavior);
        return -1;
    }
    if (x->invert)
        return hf_fail(L, "Split with invert: true is not supported");
    if (L->have_bytelevel)
        return hf_fail(L, "a Split after the ByteLevel pre-tokenizer is not "
                          "supported");
    return split_add(&L->t->split, x->pattern.p, x->literal, L->err, L->errlen);
}

static int hf_pretok_item(struct hf_load *L)
{
    struct hf_typed x = {0};
    int rc = -1;
    if (hf_object(L, hf_pretok_field, &x) < 0)
        goto out;
    if (!strcmp(x.type, "Sequence") && x.list_seen) {
        rc = 0;
    } else if (!strcmp(x.type, "Split")) {
        rc = hf_pretok_split(L, &x);
    } else if (!strcmp(x.type, "ByteLevel")) {
        if (x.add_prefix_space) {
            hf_fail(L, "ByteLevel pre-tokenizer with add_prefix_space: true "
                       "is not supported");
            goto out;
        }
        L->have_bytelevel = 1;
        rc = x.use_regex == 2
                 ? 0
                 : split_add(&L->t->split, split_named_pattern("gpt2"), 0,
                             L->err, L->errlen);
    } else {
        tok_errf(L->err, L->errlen,
                 "pre_tokenizer type \"%s\" is not "
                 "supported (supported: Sequence, Split, ByteLevel)",
                 x.type);
    }
out:
    tbuf_free(&x.pattern);
    return rc;
}

static int hf_list(struct hf_load *L, int (*item)(struct hf_load *))
{
    int r;
    if (tj_arr_begin(&L->j) < 0)
        return hf_json_fail(L);
    while ((r = tj_arr_next(&L->j)) > 0)
        if (item(L) < 0)
            return -1;
    return r < 0 ? hf_json_fail(L) : 0;
}

/* ---- added tokens ------------------------------------------------------- */

struct hf_added {
    long id;
    int lstrip, rstrip, single_word, dummy;
    int have_content;
};

static int hf_added_field(struct hf_load *L, const char *key, void *ctx)
{
    struct hf_added *a = ctx;
    if (!strcmp(key, "id"))
        return tj_int(&L->j, &a->id) < 0 ? hf_json_fail(L) : 0;
    if (!strcmp(key, "content")) {
        a->have_content = 1;
        return tj_string(&L->j, &L->str) < 0 ? hf_json_fail(L) : 0;
    }
    int *flag = !strcmp(key, "lstrip")        ? &a->lstrip
                : !strcmp(key, "rstrip")      ? &a->rstrip
                : !strcmp(key, "single_word") ? &a->single_word
                                              : NULL;
    if (flag)
        return tj_bool(&L->j, flag) < 0 ? hf_json_fail(L) : 0;
    return tj_skip(&L->j) < 0 ? hf_json_fail(L) : 0;
}

static int hf_added_item(struct hf_load *L)
{
    struct hf_added a = {0};
    struct tok *t = L->t;
    if (hf_object(L, hf_added_field, &a) < 0)
        return -1;
    if (!a.have_content || !L->str.len)
        return hf_fail(L, "added token without content");
    if (a.lstrip || a.rstrip || a.single_word) {
        tok_errf(L->err, L->errlen,
                 "added token \"%.40s\" uses lstrip/"
                 "rstrip/single_word, which is not supported",
                 L->str.p);
        return -1;
    }
    if (t->n_added % 64 == 0) {
        struct tok_added *n = realloc(t->added, (t->n_added + 64) * sizeof(*n));
        if (!n)
            return hf_fail(L, "out of memory");
        t->added = n;
    }
    char *s = malloc(L->str.len + 1);
    if (!s)
        return hf_fail(L, "out of memory");
    memcpy(s, L->str.p, L->str.len + 1);
    t->added[t->n_added].s = s;
    t->added[t->n_added].len = (uint32_t)L->str.len;
    t->n_added++;
    return 0;
}

/* ---- model -------------------------------------------------------------- */

static int hf_vocab(struct hf_load *L)
{
    int r;
    long id;
    if (tj_peek(&L->j) != TJ_OBJ)
        return hf_fail(L, "model.vocab is not an object");
    if (tj_obj_begin(&L->j) < 0)
        return hf_json_fail(L);
    while ((r = tj_obj_next(&L->j, &L->key)) > 0) {
        if (tj_int(&L->j, &id) < 0)
            return hf_json_fail(L);
        if (id < 0 || id >= (1L << 30))
            return hf_fail(L, "model.vocab has an id out of range");
        long n = hf_unmap(L, L->key.p, L->key.len);
        if (n <= 0)
            continue; /* not byte-level: never produced */
        int a = vocab_add(&L->t->vocab, L->key.p, (size_t)n, (uint32_t)id);
        if (a < 0)
            return hf_fail(L, "out of memory");
    }
    if (r < 0)
        return hf_json_fail(L);
    L->have_vocab = 1;
    return 0;
}

/* One side of a merge -> its id; -1 with the error set. */
static long hf_merge_side(struct hf_load *L, char *s, size_t n, long rank)
{
    long b = hf_unmap(L, s, n);
    long id = b > 0 ? vocab_find(&L->t->vocab, s, (size_t)b) : -1;
    if (id < 0)
        tok_errf(L->err, L->errlen,
                 "merge %ld refers to a token that is not "
                 "in model.vocab",
                 rank);
    return id;
}

static int hf_merge_add(struct hf_load *L, long rank, long a, long b)
{
    const struct tok_vocab *v = &L->t->vocab;
    size_t la = v->len[a], lb = v->len[b];
    char buf[512];
    if (la + lb > sizeof(buf))
        return hf_fail(L, "a merge longer than 512 bytes");
    memcpy(buf, v->bytes + v->off[a], la);
    memcpy(buf + la, v->bytes + v->off[b], lb);
    long id = vocab_find(v, buf, la + lb);
    if (id < 0) {
        tok_errf(L->err, L->errlen,
                 "merge %ld makes a token that is not in "
                 "model.vocab",
                 rank);
        return -1;
    }
    if (pairs_add(&L->t->pairs, (uint32_t)a, (uint32_t)b, (uint32_t)rank,
                  (uint32_t)id) < 0)
        return hf_fail(L, "out of memory");
    return 0;
}

static int hf_merge_item(struct hf_load *L, long rank)
{
    long a, b;
    if (tj_peek(&L->j) == TJ_STR) { /* "a b" */
        if (tj_string(&L->j, &L->str) < 0)
            return hf_json_fail(L);
        char *sp = memchr(L->str.p, ' ', L->str.len);
        if (!sp || sp == L->str.p ||
            memchr(sp + 1, ' ', L->str.len - (size_t)(sp + 1 - L->str.p)))
            return hf_fail(L, "a merge string is not \"left right\"");
        size_t nl = (size_t)(sp - L->str.p);
        if ((a = hf_merge_side(L, L->str.p, nl, rank)) < 0 ||
            (b = hf_merge_side(L, sp + 1, L->str.len - nl - 1, rank)) < 0)
            return -1;
        return hf_merge_add(L, rank, a, b);
    }
    if (tj_arr_begin(&L->j) < 0) /* ["a", "b"] */
        return hf_json_fail(L);
    long side[2];
    for (int i = 0; i < 2; i++) {
        if (tj_arr_next(&L->j) <= 0 || tj_peek(&L->j) != TJ_STR ||
            tj_string(&L->j, &L->str) < 0)
            return hf_fail(L, "a merge pair is not [\"left\", \"right\"]");
        if ((side[i] = hf_merge_side(L, L->str.p, L->str.len, rank)) < 0)
            return -1;
    }
    if (tj_arr_next(&L->j) != 0)
        return hf_fail(L, "a merge pair is not [\"left\", \"right\"]");
    return hf_merge_add(L, rank, side[0], side[1]);
}

static int hf_merges(struct hf_load *L)
{
    int r;
    long rank = 0;
    L->j.p = L->merges_at;
    if (tj_arr_begin(&L->j) < 0)
        return hf_json_fail(L);
    while ((r = tj_arr_next(&L->j)) > 0)
        if (hf_merge_item(L, rank++) < 0)
            return -1;
    if (r < 0)
        return hf_json_fail(L);
    return 0;
}

struct hf_model {
    char type[32];
    int byte_fallback, dropout_set, prefix_set, suffix_set;
};

static int hf_model_field(struct hf_load *L, const char *key, void *ctx)
{
    struct hf_model *m = ctx;
    char s[64];
    if (!strcmp(key, "type"))
        return hf_str(L, m->type, sizeof(m->type));
    if (!strcmp(key, "vocab"))
        return hf_vocab(L);
    if (!strcmp(key, "merges")) {
        if (tj_peek(&L->j) != TJ_ARR)
            return hf_fail(L, "model.merges is not an array");
        L->merges_at = L->j.p;
        return tj_skip(&L->j) < 0 ? hf_json_fail(L) : 0;
    }
    if (!strcmp(key, "ignore_merges"))
        return tj_bool(&L->j, &L->t->ignore_merges) < 0 ? hf_json_fail(L) : 0;
    if (!strcmp(key, "byte_fallback"))
        return tj_bool(&L->j, &m->byte_fallback) < 0 ? hf_json_fail(L) : 0;
    if (!strcmp(key, "dropout")) {
        m->dropout_set = tj_peek(&L->j) != TJ_NULL;
        return tj_skip(&L->j) < 0 ? hf_json_fail(L) : 0;
    }
    if (!strcmp(key, "continuing_subword_prefix") ||
        !strcmp(key, "end_of_word_suffix")) {
        if (hf_str(L, s, sizeof(s)) < 0)
            return -1;
        if (s[0]) {
            tok_errf(L->err, L->errlen, "model.%s \"%s\" is not supported", key,
                     s);
            return -1;
        }
        return 0;
    }
    return tj_skip(&L->j) < 0 ? hf_json_fail(L) : 0;
}

static int hf_model(struct hf_load *L)
{
    struct hf_model m = {0};
    if (tj_peek(&L->j) != TJ_OBJ)
        return hf_fail(L, "\"model\" is not an object");
    if (hf_object(L, hf_model_field, &m) < 0)
        return -1;
    if (strcmp(m.type, "BPE")) {
        tok_errf(L->err, L->errlen,
                 "model.type \"%s\" is not supported "
                 "(only byte-level BPE)",
                 m.type[0] ? m.type : "(missing)");
        return -1;
    }
    if (m.byte_fallback)
        return hf_fail(L, "model.byte_fallback: true is not supported "
                          "(not a byte-level BPE)");
    if (m.dropout_set)
        return hf_fail(L, "model.dropout is not supported");
    if (!L->have_vocab)
        return hf_fail(L, "model.vocab is missing");
    if (!L->merges_at)
        return hf_fail(L, "model.merges is missing");
    L->have_model = 1;
    const char *resume = L->j.p;
    if (hf_merges(L) < 0)
        return -1;
    L->j.p = resume;
    return 0;
}

/* ---- top level ---------------------------------------------------------- */

static int hf_top_field(struct hf_load *L, const char *key, void *ctx)
{
    (void)ctx;
    if (!strcmp(key, "model"))
        return hf_model(L);
    if (!strcmp(key, "normalizer"))
        return hf_normalizer_item(L);
    if (!strcmp(key, "pre_tokenizer")) {
        if (tj_peek(&L->j) == TJ_NULL)
            return tj_skip(&L->j) < 0 ? hf_json_fail(L) : 0;
        return hf_pretok_item(L);
    }
    if (!strcmp(key, "added_tokens")) {
        if (tj_peek(&L->j) == TJ_NULL)
            return tj_skip(&L->j) < 0 ? hf_json_fail(L) : 0;
        return hf_list(L, hf_added_item);
    }
    return tj_skip(&L->j) < 0 ? hf_json_fail(L) : 0;
}

int tok_load_hf(struct tok *t, const char *path, const char *data, size_t n,
                char *err, size_t errlen)
{
    (void)path;
    struct hf_load L = {.t = t, .err = err, .errlen = errlen};
    L.j.p = L.j.start = data;
    L.j.end = data + n;
    hf_byte_map(&L);
    t->kind = TOK_HF;
    int rc = -1;
    if (vocab_init(&t->vocab, 1u << 17) < 0 ||
        pairs_init(&t->pairs, 1u << 17) < 0) {
        hf_fail(&L, "out of memory");
        goto out;
    }
    if (hf_object(&L, hf_top_field, NULL) < 0)
        goto out;
    if (tj_peek(&L.j) != TJ_END) {
        hf_fail(&L, "trailing data after the JSON object");
        goto out;
    }
    if (!L.have_model) {
        hf_fail(&L, "no \"model\" object");
        goto out;
    }
    if (!L.have_bytelevel) {
        hf_fail(&L, "no ByteLevel pre-tokenizer: only byte-level BPE is "
                    "supported");
        goto out;
    }
    for (int b = 0; b < 256; b++)
        if (t->vocab.byte_id[b] == UINT32_MAX) {
            tok_errf(err, errlen,
                     "model.vocab lacks the byte-level token of "
                     "byte 0x%02x",
                     b);
            goto out;
        }
    rc = 0;
out:
    tbuf_free(&L.key);
    tbuf_free(&L.str);
    return rc;
}
