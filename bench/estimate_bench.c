/*
 * estimate_bench.c - throughput of the context stage's token estimator
 * (plugins/context/estimate.c) on one core. Not a test: prints MB/s.
 *
 *   cmake --build build --target bench_estimate
 *   ./build/bench_estimate [tests/data/token-corpus.jsonl] [seconds]
 *
 * Texts of the corpus are concatenated per group (all, ASCII-only, the
 * rest) and scanned repeatedly, one est_tokens() call per text as the
 * stage makes them, for about `seconds` (default 2) per group; the best of
 * five rounds is reported.
 */
#include "estimate.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct set {
    const char *name;
    char **text;
    size_t *len;
    size_t n, bytes;
};

/* CPU time of this thread: what one core spends, whatever else runs on
 * the machine (wall time is printed too, for a quiet machine). */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int set_add(struct set *s, const char *t, size_t len)
{
    char **tv = realloc(s->text, (s->n + 1) * sizeof(*tv));
    size_t *lv = tv ? realloc(s->len, (s->n + 1) * sizeof(*lv)) : NULL;
    if (tv)
        s->text = tv;
    if (!tv || !lv)
        return -1;
    s->len = lv;
    if (!(s->text[s->n] = malloc(len ? len : 1)))
        return -1;
    memcpy(s->text[s->n], t, len);
    s->len[s->n++] = len;
    s->bytes += len;
    return 0;
}

static int is_ascii(const char *t, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)t[i] >= 0x80)
            return 0;
    return 1;
}

/* Best MB/s (per CPU second, and per wall second) of five rounds of
 * ~seconds/5 of CPU time each. */
static double set_run(const struct set *s, double seconds, uint64_t *sink,
                      double *wall_mbs)
{
    double best = 0;
    *wall_mbs = 0;
    for (int round = 0; round < 5; round++) {
        double t0 = cpu_s(), t1 = t0, w0 = wall_s();
        size_t bytes = 0;
        for (int rep = 0; rep < 1000000 && t1 - t0 < seconds / 5; rep++) {
            for (size_t i = 0; i < s->n; i++)
                *sink += est_tokens(s->text[i], s->len[i]);
            bytes += s->bytes;
            t1 = cpu_s();
        }
        double mbs = (double)bytes / (t1 - t0) / 1e6;
        double wmbs = (double)bytes / (wall_s() - w0) / 1e6;
        if (mbs > best)
            best = mbs;
        if (wmbs > *wall_mbs)
            *wall_mbs = wmbs;
    }
    return best;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "tests/data/token-corpus.jsonl";
    double seconds = argc > 2 ? atof(argv[2]) : 2.0;
    struct set sets[3] = {
        {.name = "all"}, {.name = "ascii-only"}, {.name = "non-ascii"}};
    json_error_t je;
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return 1;
    }
    json_t *rec;
    while ((rec = json_loadf(f, JSON_DISABLE_EOF_CHECK, &je))) {
        json_t *t = json_object_get(rec, "text");
        const char *s = json_string_value(t);
        size_t len = json_string_length(t);
        if (s && (set_add(&sets[0], s, len) ||
                  set_add(&sets[is_ascii(s, len) ? 1 : 2], s, len))) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        json_decref(rec);
    }
    fclose(f);
    uint64_t sink = 0;
    printf("estimator throughput, one core (%s)\n", path);
    for (int i = 0; i < 3; i++) {
        double wall, mbs = set_run(&sets[i], seconds, &sink, &wall);
        printf("  %-11s %4zu texts %6.2f MB  %6.0f MB/s per CPU second "
               "(%6.0f MB/s wall)\n",
               sets[i].name, sets[i].n, (double)sets[i].bytes / 1e6, mbs, wall);
    }
    printf("(checksum %llu)\n", (unsigned long long)sink);
    for (int i = 0; i < 3; i++) {
        for (size_t j = 0; j < sets[i].n; j++)
            free(sets[i].text[j]);
        free(sets[i].text);
        free(sets[i].len);
    }
    return 0;
}
