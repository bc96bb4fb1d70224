/*
 * hdrs.c - owned name/value lists (see hdrs.h).
 */
#include "hdrs.h"

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

static void hdrs_remove(struct hdrs *h, const char *name)
{
    size_t j = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (!strcasecmp(h->v[i].name, name)) {
            free(h->v[i].name);
            free(h->v[i].value);
        } else {
            h->v[j++] = h->v[i];
        }
    }
    h->n = j;
}

int hdrs_addn(struct hdrs *h, const char *name, size_t nlen, const char *value,
              size_t vlen)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 8;
        struct hdr *v = realloc(h->v, cap * sizeof(*v));
        if (!v)
            return -1;
        h->v = v;
        h->cap = cap;
    }
    char *n = strndup(name, nlen);
    char *val = strndup(value, vlen);
    if (!n || !val) {
        free(n);
        free(val);
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
        if (strcasecmp(h->v[i].name, name))
            continue;
        char *v = strdup(value);
        if (!v)
            return -1;
        free(h->v[i].value);
        h->v[i].value = v;
        for (size_t j = i + 1; j < h->n; j++) /* rare: later duplicates */
            if (!strcasecmp(h->v[j].name, name)) {
                struct hdrs rest = {h->v + i + 1, h->n - i - 1, 0};
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
    for (size_t i = 0; i < h->n; i++) {
        free(h->v[i].name);
        free(h->v[i].value);
    }
    h->n = 0;
}

void hdrs_free(struct hdrs *h)
{
    hdrs_clear(h);
    free(h->v);
    h->v = NULL;
    h->cap = 0;
}
