/*
 * access_log.h - the access log line written when a request completes.
 */
#ifndef SLUICE_ACCESS_LOG_H
#define SLUICE_ACCESS_LOG_H

#include "core_metrics.h"

struct sluice_ctx;

void access_log_write(struct sluice_ctx *ctx,
                      const struct request_summary *sum);

#endif
