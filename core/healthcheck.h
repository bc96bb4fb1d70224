/*
 * healthcheck.h - `sluice --health`: ask a running sluice, at the listener
 * its config names, whether it is healthy. For container HEALTHCHECKs, which
 * then follow server.host and server.port (and HOST/PORT) instead of
 * guessing them. Not a monitoring client: one GET /health, a short timeout.
 */
#ifndef SLUICE_HEALTHCHECK_H
#define SLUICE_HEALTHCHECK_H

#include "config.h"

#include <stddef.h>

/* GET /health on cfg's listener (a wildcard host is asked on loopback).
 * 0 when it answered 200; -1 otherwise, with the reason in err. */
int healthcheck_run(const struct config *cfg, char *err, size_t errlen);

#endif
