/*
 * malloc_tune.c - a bigger glibc tcache for the request path.
 *
 * A request allocates and frees ~40 small blocks (the body's JSON tree,
 * header lists, libmicrohttpd's response headers). glibc keeps 7 freed
 * blocks of each size per thread (tcache); the rest go through its fast
 * bins, which the next "large" allocation (1 KiB and more: a request body)
 * consolidates. With 64 per size the request's blocks come and go through
 * the thread's cache: ~9,000 instructions a request fewer (bench/NOTES.md,
 * issue 16). The cache is sized by the GLIBC_TUNABLES environment variable
 * only, read when the process starts: so sluice restarts itself once with
 * it set (execv of its own executable keeps the pid, arguments and the rest
 * of the environment). An operator's own glibc.malloc.tcache_count wins;
 * SLUICE_MALLOC_TUNE=0 turns this off.
 */
#include "malloc_tune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TUNE_TCACHE "glibc.malloc.tcache_count=64"

void malloc_tune_apply(char **argv)
{
    const char *off = getenv("SLUICE_MALLOC_TUNE");
    const char *cur = getenv("GLIBC_TUNABLES");
    char buf[1024], self[4096];
    ssize_t n;

    if ((off && !strcmp(off, "0")) || getenv("SLUICE_MALLOC_TUNED") ||
        (cur && strstr(cur, "glibc.malloc.tcache_count")))
        return;
    if (snprintf(buf, sizeof buf, "%s%s%s", cur ? cur : "", cur ? ":" : "",
                 TUNE_TCACHE) >= (int)sizeof buf)
        return;
    /* the executable's own path, not /proc/self/exe: the process keeps
     * its name ("sluice" in ps, top, pgrep) */
    n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0 || n >= (ssize_t)sizeof self - 1)
        return;
    self[n] = '\0';
    /* once only, even if glibc ignores the tunable (secure mode) */
    if (setenv("SLUICE_MALLOC_TUNED", "1", 1) != 0 ||
        setenv("GLIBC_TUNABLES", buf, 1) != 0)
        return;
    execv(self, argv);
    /* gone or not executable any more: go on with glibc's defaults */
}
