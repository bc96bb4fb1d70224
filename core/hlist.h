/*
 * hlist.h - a libcurl request header list built without a malloc per line.
 *
 * curl_slist_append() allocates a node and a copy of every line (two
 * mallocs a header, freed after every attempt). An hlist keeps the lines'
 * bytes in one buffer and the nodes in one array, both reused across the
 * attempts of a request; lines that outlive the transfer (the config's
 * pre-built ones) are referenced, not copied. libcurl only reads a list it
 * is given (CURLOPT_HTTPHEADER), so nodes we own are fine.
 * Owner: the request (struct sluice_ctx); hlist_free releases both.
 */
#ifndef SLUICE_HLIST_H
#define SLUICE_HLIST_H

#include <curl/curl.h>
#include <stddef.h>

#include "buf.h"

struct hlist {
    buf_t bytes;              /* copied lines, each NUL-terminated */
    struct curl_slist *nodes; /* nodes[0..n), linked by hlist_link */
    size_t *off;              /* per node: offset in bytes, or (size_t)-1 */
    size_t n, cap;
    int oom;
};

/* Empty the list, keeping its memory. */
void hlist_reset(struct hlist *h);
/* Append "name: value". 0, -1 out of memory, -2 when the line would be
 * `max` bytes or longer (the caller names the header). */
int hlist_add_kv(struct hlist *h, const char *name, const char *value,
                 size_t max);
/* Append a line that stays valid until the transfer ends (not copied). */
int hlist_add_ref(struct hlist *h, const char *line);
/* Link the nodes; the list to hand to CURLOPT_HTTPHEADER (NULL if empty or
 * out of memory: check h->oom). Valid until the next reset or add. */
struct curl_slist *hlist_link(struct hlist *h);
void hlist_free(struct hlist *h);

#endif
