/*
 * auth_bench.c - what the auth stage's on_request costs per request, driven
 * through the real host table (tests/plugins/stage_harness.c) on one
 * context: key hash, lookup, rpm bucket, "client" attribute. Prints the
 * best of 15 batches of 20000 calls, for a clients file of N clients (the
 * key presented is the last one). Not a test: run by hand.
 *
 *   build/bench_auth [N ...]        default: 1 10 1000 50000
 */
#include "stage_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int bench(int nclients)
{
    char path[] = "/tmp/sluice-auth-bench-XXXXXX", cfg[256], err[256];
    char key[80];
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f)
        return -1;
    for (int i = 0; i < nclients; i++)
        fprintf(f, "sk-bench-client-key-%06d c%d rpm=1000000000\n", i, i);
    fclose(f);
    snprintf(cfg, sizeof cfg, "{\"clients_file\":\"%s\"}", path);
    sluice_test_stage *g = sh_gen_new(cfg, err, sizeof err);
    remove(path);
    if (!g) {
        fprintf(stderr, "init: %s\n", err);
        return -1;
    }
    snprintf(key, sizeof key, "Bearer sk-bench-client-key-%06d", nclients - 1);
    const char *h[] = {"Authorization", key, NULL};
    sluice_test_req *c = sh_ctx_new(g, "{\"model\":\"m\",\"messages\":[]}", h);
    double best = 1e18;
    for (int b = 0; b < 15; b++) {
        double t0 = now_ns();
        for (int i = 0; i < 20000; i++)
            if (sluice_test_on_request(c) != SLUICE_CONTINUE)
                return -1;
        double per = (now_ns() - t0) / 20000;
        best = per < best ? per : best;
    }
    printf("clients=%-6d on_request %6.0f ns (best of 15 x 20000)\n", nclients,
           best);
    sluice_test_req_free(c);
    sluice_test_stage_free(g);
    return 0;
}

int main(int argc, char **argv)
{
    static const int def[] = {1, 10, 1000, 50000};
    int rc = 0;
    if (argc > 1)
        for (int i = 1; i < argc; i++)
            rc |= bench(atoi(argv[i]));
    else
        for (size_t i = 0; i < sizeof def / sizeof def[0]; i++)
            rc |= bench(def[i]);
    return rc ? 1 : 0;
}
