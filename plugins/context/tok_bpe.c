/* tok_bpe.c - byte-pair merging of one piece by rank: the parts form a
 * linked list over the piece's bytes and candidate merges sit in a binary
 * heap keyed (rank, position), so a piece of n bytes costs O(n log n).
 * Counting only: the result is the number of parts left. */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

#define BPE_STACK 64

struct bpe_part {
    uint32_t start, end;           /* bytes [start, end) of the piece */
    int32_t prev, next;            /* -1 = none */
    uint32_t id;                   /* token id (Hugging Face only) */
    int alive;
};

struct bpe_cand {
    uint32_t rank, left;           /* left part index = its start */
    uint32_t right_end;            /* for spotting stale entries */
    uint32_t id;                   /* merged id (Hugging Face) */
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
        const struct tok_pair *p = pairs_find(&b->t->pairs, b->part[l].id,
                                              b->part[r].id);
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
                pairs_prefetch(&b->t->pairs, b->part[i].id,
                               b->part[i + 1].id);
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

long bpe_count(const struct tok *t, const char *s, size_t n)
{
    if (n <= 1)
        return (long)n;
    struct bpe_part part_stack[BPE_STACK];
    /* heap[1] on a 64-byte boundary: each group of 4 children in a line */
    struct bpe_cand heap_stack[BPE_STACK * 3 + 3] __attribute__((aligned(64)));
    struct bpe_cand *heap_mem = NULL;
    struct bpe b = { t, s, part_stack, heap_stack + 3, 0 };
    if (n > BPE_STACK) {
        if (n > UINT32_MAX / 4)
            return -1;
        b.part = malloc(n * sizeof(*b.part));
        heap_mem = aligned_alloc(64, ((n * 3 + 3) * sizeof(*b.heap) + 63)
                                     / 64 * 64);
        if (!b.part || !heap_mem) {
            free(b.part);
            free(heap_mem);
            return -1;
        }
        b.heap = heap_mem + 3;
    }
    long count = bpe_merge_all(&b, n);
    if (n > BPE_STACK) {
        free(b.part);
        free(heap_mem);
    }
    return count;
}
