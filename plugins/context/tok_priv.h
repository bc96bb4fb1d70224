/* tok_priv.h - the pieces of the tokenizer library shared between its
 * files: JSON cursor, vocabulary and merge tables, splitter, BPE, cache.
 * Not part of the stage's interface (that is tok.h). */
#ifndef SLUICE_TOK_PRIV_H
#define SLUICE_TOK_PRIV_H

#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#include "tok.h"

/* ---- growable byte buffer ---------------------------------------------- */
struct tbuf {
    char *p;
    size_t len, cap;
};
int tbuf_reserve(struct tbuf *b, size_t extra);
int tbuf_add(struct tbuf *b, const void *s, size_t n);
void tbuf_free(struct tbuf *b);

/* ---- JSON cursor (tok_json.c): reads without building a tree ---------- */
struct tj {
    const char *p, *end, *start;
    const char *err; /* static message on failure */
};
enum tj_type {
    TJ_END,
    TJ_OBJ,
    TJ_ARR,
    TJ_STR,
    TJ_NUM,
    TJ_TRUE,
    TJ_FALSE,
    TJ_NULL,
    TJ_BAD
};
enum tj_type tj_peek(struct tj *j);
int tj_obj_begin(struct tj *j);
/* 1: key read into key (NUL-terminated) and ':' consumed; 0: '}'; -1 err */
int tj_obj_next(struct tj *j, struct tbuf *key);
int tj_arr_begin(struct tj *j);
/* 1: another element follows; 0: ']' consumed; -1 error */
int tj_arr_next(struct tj *j);
int tj_string(struct tj *j, struct tbuf *out); /* decoded, NUL-terminated */
int tj_int(struct tj *j, long *v);
int tj_bool(struct tj *j, int *v); /* true/false/null(0) */
int tj_skip(struct tj *j);
size_t tj_offset(const struct tj *j);

/* ---- vocabulary: byte strings <-> ids (tok_vocab.c) ------------------- */
/* A slot holds what a lookup needs, so a probe touches one line (plus the
 * token's bytes on a tag match): 24 hash bits and min(len, 255), the id + 1
 * (0 = empty) and the offset of the bytes. */
struct vocab_slot {
    uint32_t tag, id1, off;
};
struct tok_vocab {
    char *bytes; /* arena of every token's bytes */
    size_t bytes_len, bytes_cap;
    uint32_t *off, *len;      /* per id; len UINT32_MAX = no token */
    uint32_t n_ids;           /* max id + 1 */
    struct vocab_slot *slots; /* open addressing, linear probing */
    uint32_t mask, used;
    uint32_t byte_id[256]; /* id of each single byte */
};
int vocab_init(struct tok_vocab *v, uint32_t expect);
/* 0 ok, 1 duplicate bytes or id, -1 out of memory */
int vocab_add(struct tok_vocab *v, const char *s, size_t n, uint32_t id);
/* id or -1; _hashed with h = tok_hash(s, n) already computed */
long vocab_find(const struct tok_vocab *v, const char *s, size_t n);
long vocab_find_hashed(const struct tok_vocab *v, const char *s, size_t n,
                       uint64_t h);
void vocab_free(struct tok_vocab *v);
static inline void vocab_prefetch(const struct tok_vocab *v, uint64_t h)
{
    __builtin_prefetch(&v->slots[(uint32_t)h & v->mask]);
}
size_t vocab_memory(const struct tok_vocab *v);
uint64_t tok_hash(const void *s, size_t n);
uint64_t tok_hash_seed(const void *s, size_t n, uint64_t seed);

/* ---- merges: (left id, right id) -> (rank, merged id) ----------------- */
struct tok_pair {
    uint64_t key; /* (left << 32 | right) + 1, 0 = empty */
    uint32_t rank, id;
};
struct tok_pairs {
    struct tok_pair *slots;
    uint32_t mask, used;
};
int pairs_init(struct tok_pairs *m, uint32_t expect);
int pairs_add(struct tok_pairs *m, uint32_t a, uint32_t b, uint32_t rank,
              uint32_t id); /* 0 ok, 1 duplicate (the later rank wins) */
const struct tok_pair *pairs_find(const struct tok_pairs *m, uint32_t a,
                                  uint32_t b);
void pairs_free(struct tok_pairs *m);
static inline uint32_t pair_slot(uint64_t key, uint32_t mask)
{
    uint64_t h = key * 0x9E3779B97F4A7C15ULL;
    return (uint32_t)(h >> 32) & mask;
}
static inline void pairs_prefetch(const struct tok_pairs *m, uint32_t a,
                                  uint32_t b)
{
    uint64_t key = (((uint64_t)a << 32) | b) + 1;
    __builtin_prefetch(&m->slots[pair_slot(key, m->mask)]);
}

/* ---- splitter (tok_split.c) -------------------------------------------- */
#define TOK_MAX_SPLITS 8
struct tok_splitter {
    void *re[TOK_MAX_SPLITS]; /* pcre2_code_8 *, applied in sequence */
    int n;
};
/* Named patterns: "o200k", "cl100k", "gpt2" (ByteLevel use_regex). */
const char *split_named_pattern(const char *name);
int split_add(struct tok_splitter *s, const char *pattern, int literal,
              char *err, size_t errlen);
typedef int (*split_piece_fn)(void *ud, const char *p, size_t n);
/* Splits text through every regex in turn (Isolated behaviour: matches and
 * the gaps between them are pieces).  Returns -1 on error / fn failure. */
int split_run(const struct tok_splitter *s, const char *text, size_t len,
              split_piece_fn fn, void *ud);
void split_free(struct tok_splitter *s);

/* ---- the cache of recent pieces (tok_cache.c) ------------------------- */
#define TOK_CACHE_SHARDS 64
#define TOK_CACHE_KEY    36
/* A piece of up to TOK_CACHE_KEY bytes is kept whole; a longer one by its
 * length and a 128-bit fingerprint (two independent 64-bit hashes: a false
 * hit has probability ~2^-128 per lookup). */
struct tok_cache_entry {
    uint32_t hash32;
    uint32_t len; /* 0 = empty */
    uint32_t count;
    char key[TOK_CACHE_KEY];
};
struct tok_cache {
    struct tok_cache_entry *e;
    uint32_t mask; /* entries - 1 */
    pthread_mutex_t lock[TOK_CACHE_SHARDS];
    int enabled;
};
int cache_init(struct tok_cache *c, uint32_t entries);
/* count, or -1 when not cached */
long cache_get(struct tok_cache *c, uint64_t h, const char *s, size_t n);
void cache_put(struct tok_cache *c, uint64_t h, const char *s, size_t n,
               long count);
void cache_free(struct tok_cache *c);
static inline void cache_prefetch(const struct tok_cache *c, uint64_t h)
{
    __builtin_prefetch(&c->e[(uint32_t)h & c->mask]);
}
size_t cache_memory(const struct tok_cache *c);

/* ---- the tokenizer ------------------------------------------------------ */
enum tok_kind { TOK_HF, TOK_TIKTOKEN };

struct tok_added { /* Hugging Face added_tokens */
    char *s;
    uint32_t len;
};

struct tok {
    enum tok_kind kind;
    struct tok_vocab vocab;
    struct tok_pairs pairs; /* TOK_HF only */
    struct tok_splitter split;
    int nfc;                 /* normalizer NFC */
    int ignore_merges;       /* whole piece in vocab -> 1 token */
    struct tok_added *added; /* contents, as loaded */
    size_t n_added;
    uint8_t *added_pair;      /* bitmap of first two bytes (8 KB) */
    uint8_t added_single[32]; /* bitmap of one-byte contents */
    uint32_t *added_slots;    /* hash set: index + 1, 0 = empty */
    uint32_t added_mask;
    uint32_t added_lens[32]; /* distinct lengths, longest first */
    int n_lens;
    struct tok_cache *cache; /* mutable through const tok */
};

/* BPE count of one piece (raw bytes, not byte-level-mapped), merging from
 * single bytes; the caller first checks whether the whole piece is a token
 * (tiktoken, ignore_merges). */
long bpe_count(const struct tok *t, const char *s, size_t n);
/* Pieces of at least this many bytes merge through rank buckets instead of
 * the heap (same result; tests lower it to check that). */
extern size_t bpe_long_min;

/* UTF-8 helpers (tok_text.c) */
/* Length of the valid prefix; if it is n the text is valid. */
size_t utf8_valid_prefix(const char *s, size_t n);
/* Copy with every maximal invalid subpart replaced by U+FFFD. */
int utf8_repair(const char *s, size_t n, struct tbuf *out);
/* NFC of valid UTF-8 into out; returns 0 (out untouched, *same=1) when the
 * text is already known to be NFC (ASCII fast path). */
int text_nfc(const char *s, size_t n, struct tbuf *out, int *same);

void tok_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* loaders */
int tok_load_hf(struct tok *t, const char *path, const char *data, size_t n,
                char *err, size_t errlen);
int tok_load_tiktoken(struct tok *t, const char *path, const char *data,
                      size_t n, const char *pattern, char *err, size_t errlen);

#endif
