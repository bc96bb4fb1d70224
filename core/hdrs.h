/*
 * hdrs.h - a small list of owned name/value string pairs with
 * case-insensitive lookup: upstream request headers a stage set, upstream
 * response headers, headers added to the client response, and request
 * attributes. Linear search: these lists hold a handful of entries.
 */
#ifndef SLUICE_HDRS_H
#define SLUICE_HDRS_H

#include <stddef.h>

struct hdr {
    char *name;
    char *value;
};

struct hdrs {
    struct hdr *v;
    size_t n, cap;
};

/* Value of the first entry named `name` (any case), or NULL. */
const char *hdrs_get(const struct hdrs *h, const char *name);
/* Replace every entry named `name` with one holding `value` (copied). */
int hdrs_set(struct hdrs *h, const char *name, const char *value);
/* Append an entry (copied), keeping existing ones of that name. */
int hdrs_add(struct hdrs *h, const char *name, const char *value);
int hdrs_addn(struct hdrs *h, const char *name, size_t nlen, const char *value,
              size_t vlen);
void hdrs_clear(struct hdrs *h); /* frees entries, keeps the array */
void hdrs_free(struct hdrs *h);

#endif
