/*
 * models_routed.h - the core's own /v1/models (a pipeline without the
 * context stage, which otherwise answers it): the top-level `models:` list
 * and every routed name of the generation's `routes:` (names and aliases,
 * not glob patterns), each listed once, a routed one owned by its first
 * deployment's upstream; /v1/models/{id}/info adds the route (deployments,
 * fallbacks). The same answers as the context stage's plugins/context/
 * routed.c, over jansson.
 */
#ifndef SLUICE_MODELS_ROUTED_H
#define SLUICE_MODELS_ROUTED_H

#include <jansson.h>

/* {"object":"list","data":[...]} of models (may be NULL) and routes (may
 * be NULL). A new reference, or NULL out of memory. */
json_t *models_routed_list(const json_t *models, const json_t *routes);
/* The model object of id (with "route" when info and id is routed), or
 * NULL when neither lists it (a pattern is no name). */
json_t *models_routed_one(const json_t *models, const json_t *routes,
                          const char *id, int info);

#endif
