/*
 * features.c - helper of fit.py: reads texts from stdin, each framed as
 * "<byte length>\n<bytes>", and prints the estimator's feature counts of
 * each on one line (space-separated, in enum est_feature order). Built by
 * fit.py with the stage's estimate.c so the fit sees exactly the counts the
 * stage computes. Not part of the stage.
 */
#include "../estimate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    size_t len;
    while (scanf("%zu", &len) == 1) {
        if (getchar() != '\n')
            return 1;
        char *text = malloc(len ? len : 1);
        if (!text || fread(text, 1, len, stdin) != len)
            return 1;
        est_counts c;
        memset(&c, 0, sizeof c);
        est_scan(text, len, &c);
        for (int i = 0; i < EST_NFEATURES; i++)
            printf(i ? " %llu" : "%llu", (unsigned long long)c.f[i]);
        putchar('\n');
        free(text);
    }
    return 0;
}
