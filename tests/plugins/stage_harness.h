/*
 * stage_harness.h - what the bundled stages' unit tests share on top of the
 * SDK's stage test host (sdk/sluice_test.h, libsluice_test.so): the stage
 * under test is linked in (its sources compiled into the test), a request
 * is made with its headers in one call, and the host table is at hand.
 * Nothing of the core's private headers: these tests drive a stage exactly
 * as an out-of-tree author's tests do.
 */
#ifndef SLUICE_STAGE_HARNESS_H
#define SLUICE_STAGE_HARNESS_H

#include "sluice_test.h"

/* The stage under test: its descriptor through its own entry point. */
const sluice_plugin *sluice_plugin_entry(void);

/* The host table the stage got (with the test clock). */
#define HOST (*sluice_test_host(NULL))
/* The opaque context of a test request, for host calls. */
#define CTX(r) sluice_test_req_ctx(r)

/* The stage under test with config (YAML or JSON, NULL: {}). */
static inline sluice_test_stage *sh_gen_new(const char *config, char *err,
                                            size_t errlen)
{
    return sluice_test_stage_link(sluice_plugin_entry(), config, err, errlen);
}

/* A request with this body (may be NULL) and NULL-terminated name/value
 * pairs of client headers (may be NULL). */
static inline sluice_test_req *sh_ctx_new(sluice_test_stage *st,
                                          const char *body_json,
                                          const char *const *headers)
{
    sluice_test_req *r = sluice_test_req_new(st, body_json);
    for (size_t i = 0; r && headers && headers[i] && headers[i + 1]; i += 2)
        sluice_test_req_header(r, headers[i], headers[i + 1]);
    return r;
}

#endif
