/* tok_vocab.c - the tokenizer's tables: token byte strings <-> ids (one
 * arena, open addressing) and the merge table (id pair -> rank, result). */
#include <stdlib.h>
#include <string.h>

#include "tok_priv.h"

static uint64_t hash_mix(uint64_t h)
{
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 29;
    return h;
}

uint64_t tok_hash(const void *s, size_t n)
{
    return tok_hash_seed(s, n, 0x9E3779B97F4A7C15ULL);
}

uint64_t tok_hash_seed(const void *s, size_t n, uint64_t seed)
{
    /* eight bytes at a time, multiply-xorshift mixing */
    const unsigned char *p = s;
    uint64_t h = seed ^ (n * 0xff51afd7ed558ccdULL);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = hash_mix(h ^ w) * 0x94d049bb133111ebULL;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    h = hash_mix(h ^ w ^ ((uint64_t)n << 56));
    return hash_mix(h);
}

static uint32_t slot_tag(uint64_t h, size_t n)
{
    return (uint32_t)(h >> 40) << 8 | (uint32_t)(n < 255 ? n : 255);
}

static uint32_t table_size(uint32_t expect)
{
    uint32_t n = 1024;
    while (n < expect + expect / 3 + 1)
        n *= 2;
    return n;
}

int vocab_init(struct tok_vocab *v, uint32_t expect)
{
    memset(v, 0, sizeof(*v));
    v->mask = table_size(expect) - 1;
    v->slots = calloc((size_t)v->mask + 1, sizeof(*v->slots));
    for (int i = 0; i < 256; i++)
        v->byte_id[i] = UINT32_MAX;
    return v->slots ? 0 : -1;
}

static int vocab_grow_ids(struct tok_vocab *v, uint32_t id)
{
    if (id < v->n_ids)
        return 0;
    uint32_t n = v->n_ids ? v->n_ids : 1024;
    while (n <= id)
        n *= 2;
    uint32_t *off = realloc(v->off, n * sizeof(*off));
    if (!off)
        return -1;
    v->off = off;
    uint32_t *len = realloc(v->len, n * sizeof(*len));
    if (!len)
        return -1;
    v->len = len;
    for (uint32_t i = v->n_ids; i < n; i++)
        v->len[i] = UINT32_MAX;
    v->n_ids = n;
    return 0;
}

static int vocab_rehash(struct tok_vocab *v)
{
    uint32_t size = (v->mask + 1) * 2;
    struct vocab_slot *slots = calloc(size, sizeof(*slots));
    if (!slots)
        return -1;
    for (uint32_t i = 0; i <= v->mask; i++) {
        struct vocab_slot e = v->slots[i];
        if (!e.id1)
            continue;
        uint32_t id = e.id1 - 1;
        uint64_t h = tok_hash(v->bytes + v->off[id], v->len[id]);
        uint32_t k = (uint32_t)h & (size - 1);
        while (slots[k].id1)
            k = (k + 1) & (size - 1);
        slots[k] = e;
    }
    free(v->slots);
    v->slots = slots;
    v->mask = size - 1;
    return 0;
}

long vocab_find(const struct tok_vocab *v, const char *s, size_t n)
{
    return vocab_find_hashed(v, s, n, tok_hash(s, n));
}

long vocab_find_hashed(const struct tok_vocab *v, const char *s, size_t n,
                       uint64_t h)
{
    uint32_t k = (uint32_t)h & v->mask, tag = slot_tag(h, n);
    for (;;) {
        const struct vocab_slot *e = &v->slots[k];
        if (!e->id1)
            return -1;
        if (e->tag == tag && (n < 255 || v->len[e->id1 - 1] == n) &&
            memcmp(v->bytes + e->off, s, n) == 0)
            return e->id1 - 1;
        k = (k + 1) & v->mask;
    }
}

int vocab_add(struct tok_vocab *v, const char *s, size_t n, uint32_t id)
{
    if (n == 0 || n > 0xFFFFFF || id == UINT32_MAX)
        return 1;
    if (vocab_grow_ids(v, id) < 0)
        return -1;
    if (v->len[id] != UINT32_MAX || vocab_find(v, s, n) >= 0)
        return 1;
    if ((v->used + 1) * 4 > (v->mask + 1) * 3 && vocab_rehash(v) < 0)
        return -1;
    if (v->bytes_len + n > v->bytes_cap) {
        size_t cap = v->bytes_cap ? v->bytes_cap : 65536;
        while (cap < v->bytes_len + n)
            cap *= 2;
        if (cap > UINT32_MAX)
            return -1;
        char *b = realloc(v->bytes, cap);
        if (!b)
            return -1;
        v->bytes = b;
        v->bytes_cap = cap;
    }
    memcpy(v->bytes + v->bytes_len, s, n);
    v->off[id] = (uint32_t)v->bytes_len;
    v->len[id] = (uint32_t)n;
    v->bytes_len += n;
    uint64_t h = tok_hash(s, n);
    uint32_t k = (uint32_t)h & v->mask;
    while (v->slots[k].id1)
        k = (k + 1) & v->mask;
    v->slots[k] = (struct vocab_slot){slot_tag(h, n), id + 1, v->off[id]};
    v->used++;
    if (n == 1)
        v->byte_id[(unsigned char)s[0]] = id;
    return 0;
}

void vocab_free(struct tok_vocab *v)
{
    free(v->bytes);
    free(v->off);
    free(v->len);
    free(v->slots);
    memset(v, 0, sizeof(*v));
}

size_t vocab_memory(const struct tok_vocab *v)
{
    return v->bytes_cap + (size_t)v->n_ids * 8 +
           ((size_t)v->mask + 1) * sizeof(*v->slots);
}

/* ---- merges ------------------------------------------------------------- */

int pairs_init(struct tok_pairs *m, uint32_t expect)
{
    m->mask = table_size(expect) - 1;
    m->used = 0;
    m->slots = calloc((size_t)m->mask + 1, sizeof(*m->slots));
    return m->slots ? 0 : -1;
}

static int pairs_rehash(struct tok_pairs *m)
{
    uint32_t size = (m->mask + 1) * 2;
    struct tok_pair *s = calloc(size, sizeof(*s));
    if (!s)
        return -1;
    for (uint32_t i = 0; i <= m->mask; i++) {
        if (!m->slots[i].key)
            continue;
        uint32_t k = pair_slot(m->slots[i].key, size - 1);
        while (s[k].key)
            k = (k + 1) & (size - 1);
        s[k] = m->slots[i];
    }
    free(m->slots);
    m->slots = s;
    m->mask = size - 1;
    return 0;
}

const struct tok_pair *pairs_find(const struct tok_pairs *m, uint32_t a,
                                  uint32_t b)
{
    uint64_t key = (((uint64_t)a << 32) | b) + 1;
    uint32_t k = pair_slot(key, m->mask);
    for (;;) {
        if (m->slots[k].key == key)
            return &m->slots[k];
        if (!m->slots[k].key)
            return NULL;
        k = (k + 1) & m->mask;
    }
}

int pairs_add(struct tok_pairs *m, uint32_t a, uint32_t b, uint32_t rank,
              uint32_t id)
{
    struct tok_pair *dup = (struct tok_pair *)pairs_find(m, a, b);
    if (dup) { /* as the tokenizers library: the last wins */
        dup->rank = rank;
        dup->id = id;
        return 1;
    }
    if ((m->used + 1) * 4 > (m->mask + 1) * 3 && pairs_rehash(m) < 0)
        return -1;
    uint64_t key = (((uint64_t)a << 32) | b) + 1;
    uint32_t k = pair_slot(key, m->mask);
    while (m->slots[k].key)
        k = (k + 1) & m->mask;
    m->slots[k].key = key;
    m->slots[k].rank = rank;
    m->slots[k].id = id;
    m->used++;
    return 0;
}

void pairs_free(struct tok_pairs *m)
{
    free(m->slots);
    memset(m, 0, sizeof(*m));
}
