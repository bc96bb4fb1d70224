/*
 * hlist.c - libcurl header lists in two reused buffers (see hlist.h).
 */
#include "hlist.h"

#include <stdlib.h>
#include <string.h>

#define HLIST_REF ((size_t)-1)

void hlist_reset(struct hlist *h)
{
    buf_reset(&h->bytes);
    h->n = 0;
    h->oom = 0;
}

static int node_new(struct hlist *h, const char *ref, size_t off)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        struct curl_slist *nodes = realloc(h->nodes, cap * sizeof *nodes);
        if (!nodes)
            goto oom;
        h->nodes = nodes;
        size_t *o = realloc(h->off, cap * sizeof *o);
        if (!o)
            goto oom;
        h->off = o;
        h->cap = cap;
    }
    h->nodes[h->n].data = (char *)ref;
    h->nodes[h->n].next = NULL;
    h->off[h->n++] = off;
    return 0;
oom:
    h->oom = 1;
    return -1;
}

int hlist_add_kv(struct hlist *h, const char *name, const char *value,
                 size_t max)
{
    size_t nl = strlen(name), vl = strlen(value);
    if (nl + 2 + vl >= max)
        return -2;
    if (h->oom || buf_reserve(&h->bytes, nl + 2 + vl + 1) != 0) {
        h->oom = 1;
        return -1;
    }
    size_t off = h->bytes.len;
    char *p = h->bytes.data + off;
    memcpy(p, name, nl);
    p[nl] = ':';
    p[nl + 1] = ' ';
    memcpy(p + nl + 2, value, vl);
    p[nl + 2 + vl] = '\0';
    h->bytes.len += nl + 2 + vl + 1; /* keep the NUL: lines follow it */
    h->bytes.data[h->bytes.len] = '\0';
    return node_new(h, NULL, off);
}

int hlist_add_ref(struct hlist *h, const char *line)
{
    if (h->oom)
        return -1;
    return node_new(h, line, HLIST_REF);
}

struct curl_slist *hlist_link(struct hlist *h)
{
    if (h->oom || !h->n)
        return NULL;
    for (size_t i = 0; i < h->n; i++) {
        if (h->off[i] != HLIST_REF)
            h->nodes[i].data = h->bytes.data + h->off[i];
        h->nodes[i].next = i + 1 < h->n ? &h->nodes[i + 1] : NULL;
    }
    return h->nodes;
}

void hlist_free(struct hlist *h)
{
    buf_release(&h->bytes);
    free(h->nodes);
    free(h->off);
    memset(h, 0, sizeof *h);
}
