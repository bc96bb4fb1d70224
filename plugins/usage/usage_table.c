/*
 * usage_table.c - a small string-keyed hash table of report rows, so that
 * aggregating a year of ledger counters stays linear in their number.
 */
#include "usage_table.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static int grow(struct usage_table *t)
{
    size_t cap = t->cap ? t->cap * 2 : 64;
    struct usage_row **s = calloc(cap, sizeof(*s));
    if (!s)
        return -1;
    for (size_t i = 0; i < t->cap; i++) {
        struct usage_row *r = t->slots[i];
        if (!r)
            continue;
        size_t j = hash(r->key) & (cap - 1);
        while (s[j])
            j = (j + 1) & (cap - 1);
        s[j] = r;
    }
    free(t->slots);
    t->slots = s;
    t->cap = cap;
    return 0;
}

struct usage_row *usage_table_get(struct usage_table *t, const char *key)
{
    if ((t->n + 1) * 2 > t->cap && grow(t) != 0)
        return NULL;
    size_t j = hash(key) & (t->cap - 1);
    while (t->slots[j]) {
        if (!strcmp(t->slots[j]->key, key))
            return t->slots[j];
        j = (j + 1) & (t->cap - 1);
    }
    struct usage_row *r = calloc(1, sizeof(*r));
    if (!r || !(r->key = strdup(key))) {
        free(r);
        return NULL;
    }
    t->slots[j] = r;
    t->n++;
    return r;
}

struct usage_row **usage_table_rows(struct usage_table *t)
{
    struct usage_row **v = calloc(t->n ? t->n : 1, sizeof(*v));
    size_t n = 0;
    for (size_t i = 0; v && i < t->cap; i++)
        if (t->slots[i])
            v[n++] = t->slots[i];
    return v;
}

void usage_table_free(struct usage_table *t)
{
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i]) {
            free(t->slots[i]->key);
            free(t->slots[i]);
        }
    free(t->slots);
    memset(t, 0, sizeof(*t));
}
