/*
 * upstream_models.h - models_from_upstream: the context stage asks the
 * upstream for its model list (GET /models, on the core's probe thread)
 * when it starts, i.e. at start and at every reload, and /v1/models then
 * lists the upstream's models the table and the routes do not name. The table's
 * entries win (their context_length is what the stage checks against);
 * an upstream that fails leaves the table alone, with a WARNING.
 */
#ifndef SLUICE_CONTEXT_UPSTREAM_MODELS_H
#define SLUICE_CONTEXT_UPSTREAM_MODELS_H

#include "models.h"
#include "sluice.h"

#include <stdatomic.h>

struct upstream_models {
    const sluice_host *H;
    sluice_stage *self;
    const struct model_table *table; /* the stage's, read-only */
    const sluice_json *routes;       /* the core's routes (listed), or NULL */
    int64_t created;
    _Atomic(char *) extra; /* ",{model},{model}" of the upstream's models
                              not in the table; set once, NULL before */
};

/* Start the fetch; key_file (may be NULL) names a file whose first key
 * goes as the Bearer credential. 0, or -1 with err set. */
int upstream_models_start(struct upstream_models *u, const char *key_file,
                          char *err, size_t errlen);
/* The extra entries to append to the list ("" when none yet). */
const char *upstream_models_extra(struct upstream_models *u);
/* Free what the fetch left (after the core cancelled it: destroy). */
void upstream_models_free(struct upstream_models *u);

#endif
