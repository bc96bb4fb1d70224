/*
 * usage_table.h - rows of a usage report, keyed by their group (e.g.
 * "2026-12-03|alice|gpt-4o"), in a string-keyed hash table.
 */
#ifndef SLUICE_USAGE_TABLE_H
#define SLUICE_USAGE_TABLE_H

#include "usage.h"

#include <stddef.h>
#include <stdint.h>

struct usage_row {
    char *key; /* owned */
    char day[11], client[100], model[100];
    int64_t f[USAGE_NFIELDS];
    int has_cost;            /* some of it was priced */
    int64_t unpriced_tokens; /* tokens of models without a price */
};

struct usage_table {
    struct usage_row **slots;
    size_t cap, n;
};

/* The row of `key`, created zeroed when new; NULL when out of memory. */
struct usage_row *usage_table_get(struct usage_table *t, const char *key);
/* The rows in an array (caller frees the array, not the rows). */
struct usage_row **usage_table_rows(struct usage_table *t);
void usage_table_free(struct usage_table *t);

#endif
