/*
 * fuzz_config.c - libFuzzer target for the YAML pipeline loader
 * (config_load_string: libyaml events -> JSON tree -> validated struct
 * config). Errors are fine; crashes, leaks and hangs are not.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config *cfg = NULL;
    char err[1024];
    if (config_load_string((const char *)data, size, "fuzz.yaml", &cfg, err,
                           sizeof err) == 0)
        config_free(cfg);
    else if (cfg || !err[0])
        abort();
    return 0;
}
