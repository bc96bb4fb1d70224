/*
 * admin.h - the admin routes (/admin/...): bearer-token check, reload jobs
 * run off the worker threads, key and stage status.
 */
#ifndef SLUICE_ADMIN_H
#define SLUICE_ADMIN_H

#include "request.h"

/* Answer an /admin/ path by setting ctx's response; 0 on success. */
int admin_answer(struct sluice_ctx *ctx);
/* Wait (bounded) for admin reload jobs still running (shutdown). */
void admin_wait_jobs(void);

#endif
