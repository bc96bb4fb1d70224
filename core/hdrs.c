/*
 * hdrs.c - owned name/value lists (see hdrs.h).
 */
#include "hdrs.h"
#include "arena.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *hdrs_get(const struct hdrs *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (!strcasecmp(h->v[i].name, name))
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
        if (!strcasecmp(h->v[i].name, name))
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
    if (h->arena) {
        struct hdr *e = NULL;
        size_t count = 0;
        for (size_t i = 0; i < h->n; i++)
            if (!strcasecmp(h->v[i].name, name)) {
                e = &h->v[i];
                count++;
            }
        size_t vlen = strlen(value);
        if (count == 1 && strlen(e->value) >= vlen) {
            memmove(e->value, value, vlen + 1);
            return 0;
        }
    }
    hdrs_remove(h, name);
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
