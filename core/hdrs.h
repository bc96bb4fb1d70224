/*
 * hdrs.h - a small list of owned name/value string pairs with
 * case-insensitive lookup: upstream request headers a stage set, upstream
 * response headers, headers added to the client response, and request
 * attributes. Linear search: these lists hold a handful of entries.
 *
 * A list with an arena (a request's, arena.h) takes its strings and array
 * from it and frees nothing itself: a removed or replaced entry's strings
 * stay valid until the arena is freed. Without one, entries are malloc'd.
 */
#ifndef SLUICE_HDRS_H
#define SLUICE_HDRS_H

#include <stddef.h>

struct hdr {
    char *name;
    char *value;
};

struct arena;

struct hdrs {
    struct hdr *v;
    size_t n, cap;
    struct arena *arena; /* where entries live; NULL: malloc */
};

/* Value of the first entry named `name` (any case), or NULL. */
const char *hdrs_get(const struct hdrs *h, const char *name);
/* Replace every entry named `name` with one holding `value` (copied). With
 * an arena, a lone entry whose value is at least as long is overwritten in
 * place (an attribute set per event of a stream does not grow the arena). */
int hdrs_set(struct hdrs *h, const char *name, const char *value);
/* Append an entry (copied), keeping existing ones of that name. */
int hdrs_add(struct hdrs *h, const char *name, const char *value);
int hdrs_addn(struct hdrs *h, const char *name, size_t nlen, const char *value,
              size_t vlen);
void hdrs_clear(struct hdrs *h); /* frees entries, keeps the array */
void hdrs_free(struct hdrs *h);

#endif
