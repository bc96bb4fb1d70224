/*
 * browser_util.h - what the headless Chromium tests share (header-only, as
 * itest_util.h): finding Debian's chromium, installing tests/browser's npm
 * packages from its lock file when they are missing, reading a small file,
 * and the build's test-output/<name>/ folder for screenshots.
 */
#ifndef SLUICE_BROWSER_UTIL_H
#define SLUICE_BROWSER_UTIL_H

#include "harness.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The chromium binary, or NULL when it is not installed. */
static inline const char *bu_chromium_bin(void)
{
    static const char *const cands[] = {"/usr/bin/chromium",
                                        "/usr/bin/chromium-browser", NULL};
    for (size_t i = 0; cands[i]; i++)
        if (access(cands[i], X_OK) == 0)
            return cands[i];
    return NULL;
}

/* npm ci in tests/browser unless `probe` (a file of a package) exists. */
static inline void bu_npm_ci_unless(const char *probe)
{
    struct stat st;
    if (stat(probe, &st) == 0)
        return;
    char *argv[] = {"/usr/bin/env",  "npm",        "ci",        "--prefix",
                    "tests/browser", "--no-audit", "--no-fund", NULL};
    char *out = NULL;
    int rc = h_run_capture(argv, 300000, &out);
    ck_assert_msg(rc == 0, "npm ci --prefix tests/browser failed (%d):\n%s", rc,
                  out ? out : "");
    free(out);
}

/* The whole file (at most 1 MiB) as a string (caller frees), or NULL. */
static inline char *bu_file_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *s = calloc(1, 1 << 20);
    size_t n = fread(s, 1, (1 << 20) - 1, f);
    s[n] = '\0';
    fclose(f);
    return s;
}

/* <build>/test-output/<name> (created), in static storage. */
static inline const char *bu_output_dir(const char *name)
{
    static char dir[1024];
    const char *build = getenv("SLUICE_BUILD");
    snprintf(dir, sizeof dir, "%s/test-output", build ? build : "build");
    mkdir(dir, 0755);
    snprintf(dir, sizeof dir, "%s/test-output/%s", build ? build : "build",
             name);
    mkdir(dir, 0755);
    return dir;
}

/* Assert that path holds a PNG image of more than min_bytes. */
static inline void bu_assert_png(const char *path, long min_bytes)
{
    struct stat st;
    ck_assert_msg(stat(path, &st) == 0 && st.st_size > min_bytes,
                  "no screenshot at %s", path);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    unsigned char magic[8] = {0};
    ck_assert_int_eq(fread(magic, 1, 8, f), 8);
    fclose(f);
    ck_assert(!memcmp(magic, "\x89PNG\r\n\x1a\n", 8));
}

#endif
