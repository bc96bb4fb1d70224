/*
 * fuzz_multipart.c - libFuzzer target for the multipart/form-data reader
 * (core/multipart.c) that finds `model` and `stream` in an upload. The
 * first input line is the Content-Type, the rest the body; the body is
 * copied to an exact-size heap block so any read past it is caught.
 */
#include "multipart.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t hl = nl ? (size_t)(nl - data) : size;
    char ctype[256], boundary[80], v[64];
    if (hl >= sizeof ctype)
        return 0;
    memcpy(ctype, data, hl);
    ctype[hl] = '\0';
    if (multipart_boundary(ctype, boundary, sizeof boundary) != 0)
        return 0;
    size_t bl = nl ? size - hl - 1 : 0;
    char *body = malloc(bl ? bl : 1);
    if (!body)
        return 0;
    if (bl)
        memcpy(body, nl + 1, bl);
    int rc = multipart_field(body, bl, boundary, "model", v, sizeof v);
    if (rc == 1 && strlen(v) >= sizeof v)
        abort();
    (void)multipart_field(body, bl, boundary, "stream", v, sizeof v);
    free(body);
    return 0;
}
