/*
 * bodycap.h - how much memory parsed request bodies may take: per request
 * (a budget in bytes of tree per byte of body) and in total (across every
 * request being parsed or holding a parsed body, all workers), and giving
 * memory back to the system after a large body is done with.
 *
 * A 3.4 MB body of 100,000 tiny messages parses into ~45 MB of tree; a
 * handful of those at once would hold hundreds of MB. The per-request
 * budget bounds the blow-up (legitimate bodies stay well under it), the
 * total turns the rest away with a 503 instead of growing without end.
 */
#ifndef SLUICE_BODYCAP_H
#define SLUICE_BODYCAP_H

#include <stddef.h>

/* A parse runs at once on its worker: only what it keeps stays counted,
 * so the slack for small bodies costs the total nothing lasting. */
#define BODYCAP_RATIO   24                  /* tree bytes per body byte */
#define BODYCAP_SLACK   ((size_t)512 << 10) /* plus this per body */
#define BODYCAP_TOTAL   ((size_t)256 << 20) /* all parsed bodies at once */
#define BODYCAP_TRIM_AT ((size_t)1 << 20)   /* give memory back above this */

/* Reserve the budget of a body of body_len bytes. Returns it (> 0), or 0
 * when the total is spent (answer 503, retry later). */
size_t bodycap_reserve(size_t body_len);
/* The parse is done: keep `used` of the `reserved` (0 when it failed). */
void bodycap_settle(size_t reserved, size_t used);
/* The parsed body (charge = what settle kept) and the body bytes
 * (body_len) are freed: release the charge; after a large one, hand free
 * memory back to the system (malloc_trim). */
void bodycap_release(size_t charge, size_t body_len);

#endif
