/* tok_bpe.c - byte-pair merging of one piece by rank: the parts form a
 * linked list over the piece's bytes and candidate merges sit in a binary
 * heap keyed (rank, position), so a piece of n bytes costs O(n log n).
 * Counting only: the result is the number of parts left. */
#include <stdlib.h>
#include <string.h>

#include "tok_priv.h"

#define BPE_STACK 64

struct bpe_part {
    uint32_t start, end; /* bytes [start, end) of the piece */
    int32_t prev, next;  /* -1 = none */
    uint32_t id;         /* token id (Hugging Face only) */
    int alive;
};

struct bpe_cand {
    uint32_t rank, left; /* left part index = its start */
    uint32_t right_end;  /* for spotting stale entries */
    uint32_t id;         /* merged id (Hugging Face) */
};

struct bpe {
    const struct tok *t;
    const char *s;
    struct bpe_part *part;
    struct bpe_cand *heap;
    size_t nheap;
};

static int cand_less(const struct bpe_cand *a, const struct bpe_cand *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

/* A 4-ary heap: a node's four children share one 64-byte line, so a
 * long piece's big heap costs half the cache misses of a binary one. */
static void heap_push(struct bpe *b, struct bpe_cand c)
{
    size_t i = b->nheap++;
    while (i > 0) {
        size_t up = (i - 1) / 4;
        if (!cand_less(&c, &b->heap[up]))
            break;
        b->heap[i] = b->heap[up];
        i = up;
    }
    b->heap[i] = c;
}

static struct bpe_cand heap_pop(struct bpe *b)
{
    struct bpe_cand top = b->heap[0];
    struct bpe_cand last = b->heap[--b->nheap];
    size_t i = 0, n = b->nheap;
    for (;;) {
        size_t first = 4 * i + 1, m = i;
        const struct bpe_cand *best = &last;
        for (size_t k = first; k < first + 4 && k < n; k++)
            if (cand_less(&b->heap[k], best)) {
                m = k;
                best = &b->heap[k];
            }
        if (m == i)
            break;
        b->heap[i] = b->heap[m];
        i = m;
    }
    if (n)
        b->heap[i] = last;
    return top;
}

/* The merge of part l with its right neighbour: 1 and *c set if the pair
 * has a rank, else 0. */
static int bpe_cand_of(const struct bpe *b, int32_t l, struct bpe_cand *out)
{
    if (l < 0)
        return 0;
    int32_t r = b->part[l].next;
    if (r < 0)
        return 0;
    struct bpe_cand c;
    c.left = (uint32_t)l;
    c.right_end = b->part[r].end;
    if (b->t->kind == TOK_HF) {
        const struct tok_pair *p =
            pairs_find(&b->t->pairs, b->part[l].id, b->part[r].id);
        if (!p)
            return 0;
        c.rank = p->rank;
        c.id = p->id;
    } else {
        long rank = vocab_find(&b->t->vocab, b->s + b->part[l].start,
                               b->part[r].end - b->part[l].start);
        if (rank < 0)
            return 0;
        c.rank = (uint32_t)rank;
        c.id = (uint32_t)rank;
    }
    *out = c;
    return 1;
}

/* Queues the merge of part l with its right neighbour, if one exists. */
static void bpe_consider(struct bpe *b, int32_t l)
{
    struct bpe_cand c;
    if (bpe_cand_of(b, l, &c))
        heap_push(b, c);
}

static void bpe_init_parts(struct bpe *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct bpe_part *p = &b->part[i];
        p->start = (uint32_t)i;
        p->end = (uint32_t)i + 1;
        p->prev = (int32_t)i - 1;
        p->next = i + 1 < n ? (int32_t)i + 1 : -1;
        p->id = b->t->vocab.byte_id[(unsigned char)b->s[i]];
        p->alive = 1;
    }
}

/* The first candidates, 16 at a time: prefetch their table slots, then
 * look them up (the misses overlap); each goes to add(). */
static int bpe_first_cands(struct bpe *b, size_t n,
                           int (*add)(void *, struct bpe_cand), void *ud)
{
    for (size_t base = 0; base + 1 < n; base += 16) {
        size_t end = base + 16 < n - 1 ? base + 16 : n - 1;
        for (size_t i = base; i < end; i++) {
            if (b->t->kind == TOK_HF)
                pairs_prefetch(&b->t->pairs, b->part[i].id, b->part[i + 1].id);
            else
                vocab_prefetch(&b->t->vocab, tok_hash(b->s + i, 2));
        }
        struct bpe_cand c;
        for (size_t i = base; i < end; i++)
            if (bpe_cand_of(b, (int32_t)i, &c) && add(ud, c) < 0)
                return -1;
    }
    return 0;
}

static int heap_add(void *ud, struct bpe_cand c)
{
    heap_push(ud, c);
    return 0;
}

/* Applies candidate c if it is still valid: 1 merged, 0 stale. */
static int bpe_apply(struct bpe *b, const struct bpe_cand *c)
{
    struct bpe_part *l = &b->part[c->left];
    if (!l->alive || l->next < 0)
        return 0;
    struct bpe_part *r = &b->part[l->next];
    if (r->end != c->right_end)
        return 0;
    l->end = r->end;
    l->id = c->id;
    l->next = r->next;
    if (r->next >= 0)
        b->part[r->next].prev = (int32_t)c->left;
    r->alive = 0;
    return 1;
}

static long bpe_merge_all(struct bpe *b, size_t n)
{
    long parts = (long)n;
    bpe_init_parts(b, n);
    bpe_first_cands(b, n, heap_add, b);
    while (b->nheap) {
        struct bpe_cand c = heap_pop(b);
        if (!bpe_apply(b, &c))
            continue;
        parts--;
        bpe_consider(b, b->part[c.left].prev);
        bpe_consider(b, (int32_t)c.left);
    }
    return parts;
}

/* ---- long pieces: rank buckets -------------------------------------------
 * In a long piece (a run of spaces, of one letter, a CJK clause) the heap
 * gets big and every pop is a chain of cache misses. Instead: candidates go
 * to one bucket per rank; the lowest pending rank's bucket is sorted by
 * position and applied in order. The order is the heap's exactly as long as
 * a merge never makes a candidate of a rank <= the one being applied (true
 * of files learned by BPE: a token's merge comes after its parts'); if a
 * file breaks that, the piece is redone with the heap. */
size_t bpe_long_min = 1024;

struct bucket {
    uint32_t rank, n, cap, done;
    struct bpe_cand *v;
};

struct buckets {
    struct bucket *bk;
    uint32_t nbk, capbk;
    uint32_t *slot, mask; /* rank hash -> bucket index + 1 */
    uint32_t *rheap, nr;  /* pending buckets, lowest rank on top */
    uint32_t current;     /* rank being applied + 1 (0: none) */
    int oom;
};

static uint32_t rank_slot(uint32_t rank, uint32_t mask)
{
    return (uint32_t)(((uint64_t)rank * 0x9E3779B97F4A7C15ULL) >> 32) & mask;
}

static int buckets_grow_slots(struct buckets *B)
{
    uint32_t size = (B->mask + 1) * 2;
    uint32_t *slot = calloc(size, sizeof(uint32_t));
    if (!slot)
        return -1;
    for (uint32_t i = 0; i < B->nbk; i++) {
        uint32_t k = rank_slot(B->bk[i].rank, size - 1);
        while (slot[k])
            k = (k + 1) & (size - 1);
        slot[k] = i + 1;
    }
    free(B->slot);
    B->slot = slot;
    B->mask = size - 1;
    return 0;
}

static void rheap_push(struct buckets *B, uint32_t idx)
{
    uint32_t i = B->nr++, rank = B->bk[idx].rank;
    while (i > 0) {
        uint32_t up = (i - 1) / 2;
        if (B->bk[B->rheap[up]].rank <= rank)
            break;
        B->rheap[i] = B->rheap[up];
        i = up;
    }
    B->rheap[i] = idx;
}

static uint32_t rheap_pop(struct buckets *B)
{
    uint32_t top = B->rheap[0], last = B->rheap[--B->nr], i = 0;
    uint32_t rank = B->bk[last].rank;
    for (;;) {
        uint32_t l = 2 * i + 1, m = i, mr = rank;
        if (l < B->nr && B->bk[B->rheap[l]].rank < mr) {
            m = l;
            mr = B->bk[B->rheap[l]].rank;
        }
        if (l + 1 < B->nr && B->bk[B->rheap[l + 1]].rank < mr)
            m = l + 1;
        if (m == i)
            break;
        B->rheap[i] = B->rheap[m];
        i = m;
    }
    if (B->nr)
        B->rheap[i] = last;
    return top;
}

/* Bucket index of rank, created (and queued) when new; -1 out of memory. */
static long buckets_get(struct buckets *B, uint32_t rank)
{
    uint32_t k = rank_slot(rank, B->mask);
    for (; B->slot[k]; k = (k + 1) & B->mask)
        if (B->bk[B->slot[k] - 1].rank == rank)
            return B->slot[k] - 1;
    if (B->nbk == B->capbk) {
        uint32_t cap = B->capbk ? B->capbk * 2 : 256;
        struct bucket *bk = realloc(B->bk, cap * sizeof(*bk));
        if (!bk)
            return -1;
        B->bk = bk;
        uint32_t *rh = realloc(B->rheap, cap * sizeof(*rh));
        if (!rh)
            return -1;
        B->rheap = rh;
        B->capbk = cap;
    }
    uint32_t idx = B->nbk++;
    B->bk[idx] = (struct bucket){rank, 0, 0, 0, NULL};
    B->slot[k] = idx + 1;
    rheap_push(B, idx);
    if (B->nbk * 2 > B->mask + 1 && buckets_grow_slots(B) < 0)
        return -1;
    return idx;
}

/* 0 added; -1 out of memory (B->oom) or the order would break. */
static int buckets_add(void *ud, struct bpe_cand c)
{
    struct buckets *B = ud;
    if (B->current && c.rank < B->current) /* rank <= applied rank */
        return -1;
    long idx = buckets_get(B, c.rank);
    if (idx < 0) {
        B->oom = 1;
        return -1;
    }
    struct bucket *k = &B->bk[idx];
    if (k->done)
        return -1;
    if (k->n == k->cap) {
        uint32_t cap = k->cap ? k->cap * 2 : 8;
        struct bpe_cand *v = realloc(k->v, cap * sizeof(*v));
        if (!v) {
            B->oom = 1;
            return -1;
        }
        k->v = v;
        k->cap = cap;
    }
    k->v[k->n++] = c;
    return 0;
}

static int cand_by_left(const void *a, const void *b)
{
    uint32_t x = ((const struct bpe_cand *)a)->left;
    uint32_t y = ((const struct bpe_cand *)b)->left;
    return (x > y) - (x < y);
}

static void bucket_sort(struct bucket *k)
{
    for (uint32_t i = 1; i < k->n; i++)
        if (k->v[i].left < k->v[i - 1].left) {
            qsort(k->v, k->n, sizeof(*k->v), cand_by_left);
            return;
        }
}

/* -1 out of memory, -2 the file's ranks break the order (use the heap). */
static long bpe_merge_buckets(struct bpe *b, struct buckets *B, size_t n)
{
    long parts = (long)n;
    bpe_init_parts(b, n);
    if (bpe_first_cands(b, n, buckets_add, B) < 0)
        return B->oom ? -1 : -2;
    while (B->nr) {
        uint32_t idx = rheap_pop(B);
        B->current = B->bk[idx].rank + 1;
        bucket_sort(&B->bk[idx]);
        for (uint32_t i = 0; i < B->bk[idx].n; i++) {
            struct bpe_cand c = B->bk[idx].v[i], nc;
            if (!bpe_apply(b, &c))
                continue;
            parts--;
            if ((bpe_cand_of(b, b->part[c.left].prev, &nc) &&
                 buckets_add(B, nc) < 0) ||
                (bpe_cand_of(b, (int32_t)c.left, &nc) &&
                 buckets_add(B, nc) < 0))
                return B->oom ? -1 : -2;
        }
        free(B->bk[idx].v);
        B->bk[idx].v = NULL;
        B->bk[idx].done = 1;
    }
    return parts;
}

static long bpe_long(struct bpe *b, size_t n)
{
    struct buckets B = {0};
    long count = -1;
    B.mask = 1023;
    if ((B.slot = calloc(B.mask + 1, sizeof(uint32_t))))
        count = bpe_merge_buckets(b, &B, n);
    for (uint32_t i = 0; i < B.nbk; i++)
        free(B.bk[i].v);
    free(B.bk);
    free(B.rheap);
    free(B.slot);
    return count;
}

long bpe_count(const struct tok *t, const char *s, size_t n)
{
    if (n <= 1)
        return (long)n;
    struct bpe_part part_stack[BPE_STACK];
    /* heap[1] on a 64-byte boundary: each group of 4 children in a line */
    struct bpe_cand heap_stack[BPE_STACK * 3 + 3] __attribute__((aligned(64)));
    struct bpe_cand *heap_mem = NULL;
    struct bpe b = {t, s, part_stack, heap_stack + 3, 0};
    if (n > BPE_STACK) {
        if (n > UINT32_MAX / 4)
            return -1;
        b.part = malloc(n * sizeof(*b.part));
        heap_mem =
            aligned_alloc(64, ((n * 3 + 3) * sizeof(*b.heap) + 63) / 64 * 64);
        if (!b.part || !heap_mem) {
            free(b.part);
            free(heap_mem);
            return -1;
        }
        b.heap = heap_mem + 3;
    }
    long count = n >= bpe_long_min ? bpe_long(&b, n) : -2;
    if (count == -2)
        count = bpe_merge_all(&b, n);
    if (n > BPE_STACK) {
        free(b.part);
        free(heap_mem);
    }
    return count;
}
