/* tokenizer_bench.c - speed and memory of the context stage's tokenizers
 * (plugins/context/tok_*.c) on one core: MB/s over the mixed texts of
 * tests/data/token-corpus.jsonl with the piece cache warm and with it off
 * (every piece merged), the latency of one 100 KB prompt, load time and
 * memory.  A benchmark, not a test: see plugins/context/TOKENIZERS.md.
 *
 *   tokenizer_bench <tokenizer file> [pattern|-] [seconds per measure]
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tok.h"

/* CPU time of this thread: the machine may be busy with other work */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_kb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

struct texts {
    char **s;
    size_t *n, count, bytes;
};

static int texts_load(struct texts *t, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *o = json_loads(line, 0, NULL);
        json_t *x = o ? json_object_get(o, "text") : NULL;
        if (x) {
            t->s = realloc(t->s, (t->count + 1) * sizeof(char *));
            t->n = realloc(t->n, (t->count + 1) * sizeof(size_t));
            t->n[t->count] = json_string_length(x);
            t->s[t->count] = malloc(t->n[t->count] + 1);
            memcpy(t->s[t->count], json_string_value(x), t->n[t->count]);
            t->bytes += t->n[t->count++];
        }
        json_decref(o);
    }
    free(line);
    fclose(f);
    return t->count ? 0 : -1;
}

/* MB/s of counting every text, repeated for at least `secs`. */
static double throughput(const struct tok *tok, const struct texts *t,
                         double secs, long *tokens)
{
    double t0 = now(), t1;
    size_t bytes = 0;
    int rounds = 0;
    do {
        *tokens = 0;
        for (size_t i = 0; i < t->count; i++)
            *tokens += tok_count(tok, t->s[i], t->n[i]);
        bytes += t->bytes;
        rounds++;
        t1 = now();
    } while (t1 - t0 < secs && rounds < 1000);
    return (double)bytes / (t1 - t0) / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median milliseconds to count one prompt (20 runs). */
static double prompt_ms(const struct tok *tok, const char *p, size_t n)
{
    double ms[20];
    for (int i = 0; i < 20; i++) {
        double t0 = now();
        if (tok_count(tok, p, n) < 0)
            return -1;
        ms[i] = (now() - t0) * 1e3;
    }
    qsort(ms, 20, sizeof(double), cmp_double);
    return ms[10];
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s <tokenizer file> [pattern|-] [seconds]\n",
                argv[0]);
        return 2;
    }
    const char *pattern = argc > 2 && strcmp(argv[2], "-") ? argv[2] : NULL;
    double secs = argc > 3 ? atof(argv[3]) : 3.0;
    struct texts t = {0};
    if (texts_load(&t, "tests/data/token-corpus.jsonl") < 0) {
        fprintf(stderr, "run from the repository root\n");
        return 1;
    }
    char err[512];
    struct tok *tok;
    long rss0 = rss_kb();
    double t0 = wall();
    if (tok_load(argv[1], pattern, &tok, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    double load_s = wall() - t0;
    long rss1 = rss_kb();

    /* a 100 KB prompt: corpus texts back to back */
    size_t pn = 0, want = 100 * 1024;
    char *prompt = malloc(want + 1);
    for (size_t i = 0; pn < want; i = (i + 1) % t.count) {
        size_t k = t.n[i] < want - pn ? t.n[i] : want - pn;
        while (k && k < t.n[i] && (t.s[i][k] & 0xC0) == 0x80)
            k--; /* whole characters only */
        if (!k)
            break;
        memcpy(prompt + pn, t.s[i], k);
        pn += k;
    }

    long tokens = 0;
    tok_set_cache(tok, 0);
    double cold = throughput(tok, &t, secs, &tokens);
    double cold_ms = prompt_ms(tok, prompt, pn);
    tok_set_cache(tok, 1);
    double first_t0 = now();
    tok_count(tok, prompt, pn); /* empty cache: first use */
    double first_ms = (now() - first_t0) * 1e3;
    double warm = throughput(tok, &t, secs, &tokens);
    double warm_ms = prompt_ms(tok, prompt, pn);

    printf("%s: %s, %u tokens in vocabulary\n", argv[1], tok_kind_name(tok),
           tok_vocab_size(tok));
    printf("  load %.2f s (wall), tables+cache %.1f MB, RSS +%.1f MB\n", load_s,
           (double)tok_memory(tok) / 1048576.0, (double)(rss1 - rss0) / 1024);
    printf("  corpus: %zu texts, %.2f MB, %ld tokens\n", t.count,
           (double)t.bytes / 1e6, tokens);
    printf("  throughput: warm cache %.1f MB/s, cache off %.1f MB/s\n", warm,
           cold);
    printf("  100 KB prompt (%zu bytes): warm %.2f ms, first use %.2f ms, "
           "cache off %.2f ms\n",
           pn, warm_ms, first_ms, cold_ms);
    tok_free(tok);
    for (size_t i = 0; i < t.count; i++)
        free(t.s[i]);
    free(t.s);
    free(t.n);
    free(prompt);
    return 0;
}
