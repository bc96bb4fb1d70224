/*
 * routed.h - the core's `routes:` (host call model_routes, ABI 1.1) as
 * the context stage shows them: GET /v1/models lists every routable name
 * (route names and aliases; glob patterns are not names), owned by its
 * route's first deployment's upstream, and /v1/models/{id}/info shows the
 * route's deployments and fallbacks. The table's entries stay listed;
 * a name is listed once.
 */
#ifndef SLUICE_CONTEXT_ROUTED_H
#define SLUICE_CONTEXT_ROUTED_H

#include "models.h"
#include "sluice.h"

#include <stdint.h>

/* The route whose model or an alias is `name` (exact), or NULL. routes
 * may be NULL (no routes: configured). */
const sluice_json *routed_find(const sluice_host *H, const sluice_json *routes,
                               const char *name);
/* {"object":"list","data":[...]}: the table (a routed entry owned by its
 * upstream), then the routed names the table lacks, then `extra` (the
 * upstream's models, ",{...}" already without table names). */
int routed_render_list(const sluice_host *H, const struct model_table *t,
                       const sluice_json *routes, int64_t created,
                       const char *extra, sluice_buf *out);
/* The model object of `id` (table entry or routed name), with "route"
 * when `info`; 1 when id is neither (nothing written), 0, -1 (memory). */
int routed_render_one(const sluice_host *H, const struct model_table *t,
                      const sluice_json *routes, const char *id, int info,
                      int64_t created, sluice_buf *out);

#endif
