/*
 * malloc_tune.h - glibc's per-thread allocation cache sized for sluice's
 * request pattern, set before anything is allocated (see malloc_tune.c).
 */
#ifndef SLUICE_MALLOC_TUNE_H
#define SLUICE_MALLOC_TUNE_H

/* Run first thing in main: when glibc's tcache is not sized yet, restart
 * this executable once with it set (same pid, argv and environment plus
 * GLIBC_TUNABLES). Returns when nothing is to be done or the restart
 * failed (sluice then runs with glibc's defaults). */
void malloc_tune_apply(char **argv);

#endif
