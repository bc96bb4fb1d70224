/*
 * hdrs.c - owned name/value lists (see hdrs.h).
 */
#include "hdrs.h"
#include "arena.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* 0 when a and b cannot be equal ignoring ASCII case, judged on their
 * first byte (c | 0x20 folds a letter's case, and equal bytes stay
 * equal): most names of a list differ there, and strcasecmp costs a call
 * per entry. Lookups run ~60 times a request. */
static int first_may_match(const char *a, const char *b)
{
    return (*a | 0x20) == (*b | 0x20);
}

const char *hdrs_get(const struct hdrs *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (first_may_match(h->v[i].name, name) &&
            !strcasecmp(h->v[i].name, name))
            return h->v[i].value;
    return NULL;
}

static void entry_free(struct hdrs *h, struct hdr *e)
{
    if (h->arena)
        return; /* the arena's: freed with the request */
    free(e->name);
    free(e->value);
}

static void hdrs_remove(struct hdrs *h, const char *name)
{
    size_t j = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (first_may_match(h->v[i].name, name) &&
            !strcasecmp(h->v[i].name, name))
            entry_free(h, &h->v[i]);
        else
            h->v[j++] = h->v[i];
    }
    h->n = j;
}

static int hdrs_grow(struct hdrs *h)
{
    size_t cap = h->cap ? h->cap * 2 : 8;
    struct hdr *v;
    if (h->arena) {
        v = arena_alloc(h->arena, cap * sizeof(*v));
        if (v && h->n)
            memcpy(v, h->v, h->n * sizeof(*v));
    } else {
        v = realloc(h->v, cap * sizeof(*v));
    }
    if (!v)
        return -1;
    h->v = v;
    h->cap = cap;
    return 0;
}

static char *str_copy(struct hdrs *h, const char *s, size_t n)
{
    return h->arena ? arena_strndup(h->arena, s, n) : strndup(s, n);
}

int hdrs_addn(struct hdrs *h, const char *name, size_t nlen, const char *value,
              size_t vlen)
{
    if (h->n == h->cap && hdrs_grow(h) != 0)
        return -1;
    char *n = str_copy(h, name, nlen);
    char *val = n ? str_copy(h, value, vlen) : NULL;
    if (!val) {
        if (!h->arena)
            free(n);
        return -1;
    }
    h->v[h->n].name = n;
    h->v[h->n].value = val;
    h->n++;
    return 0;
}

int hdrs_add(struct hdrs *h, const char *name, const char *value)
{
    return hdrs_addn(h, name, strlen(name), value, strlen(value));
}

int hdrs_set(struct hdrs *h, const char *name, const char *value)
{
    /* one pass: the first entry of that name keeps its slot and name
     * (attributes are set once per attempt: no name copy, no shuffle) */
    for (size_t i = 0; i < h->n; i++) {
        if (!first_may_match(h->v[i].name, name) ||
            strcasecmp(h->v[i].name, name))
            continue;
        size_t vlen = strlen(value);
        if (h->arena && strlen(h->v[i].value) >= vlen) {
            /* the arena's: overwritten in place, nothing allocated */
            memmove(h->v[i].value, value, vlen + 1);
        } else {
            char *v = str_copy(h, value, vlen);
            if (!v)
                return -1;
            if (!h->arena)
                free(h->v[i].value);
            h->v[i].value = v;
        }
        for (size_t j = i + 1; j < h->n; j++) /* rare: later duplicates */
            if (first_may_match(h->v[j].name, name) &&
                !strcasecmp(h->v[j].name, name)) {
                struct hdrs rest = {h->v + i + 1, h->n - i - 1, 0, h->arena};
                hdrs_remove(&rest, name);
                h->n = i + 1 + rest.n;
                break;
            }
        return 0;
    }
    return hdrs_add(h, name, value);
}

void hdrs_clear(struct hdrs *h)
{
    for (size_t i = 0; i < h->n; i++)
        entry_free(h, &h->v[i]);
    h->n = 0;
}

void hdrs_free(struct hdrs *h)
{
    hdrs_clear(h);
    if (!h->arena)
        free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}
