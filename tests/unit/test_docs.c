/*
 * test_docs.c - the OpenAPI document compiled into the binary: it is the
 * file docs/openapi.json byte for byte, valid JSON, OpenAPI 3.1, every
 * operation has responses, every $ref points at a schema that exists, and
 * both security schemes (client key, admin token) are declared.
 */
#include "docs.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *doc_load(void)
{
    json_error_t je;
    json_t *d =
        json_loadb((const char *)openapi_json, openapi_json_len, 0, &je);
    ck_assert_msg(d != NULL, "embedded openapi.json: %s (line %d)", je.text,
                  je.line);
    return d;
}

START_TEST(test_embedded_is_the_file)
{
    FILE *f = fopen("docs/openapi.json", "rb"); /* cwd: the source tree */
    ck_assert_ptr_nonnull(f);
    char *s = malloc(openapi_json_len + 2);
    size_t n = fread(s, 1, openapi_json_len + 1, f);
    fclose(f);
    ck_assert_uint_eq(n, openapi_json_len);
    ck_assert(memcmp(s, openapi_json, n) == 0);
    ck_assert_int_eq(openapi_json[openapi_json_len], 0);
    free(s);
}
END_TEST

static void refs_resolve(json_t *root, json_t *v)
{
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x)
        {
            if (!strcmp(k, "$ref")) {
                const char *r = json_string_value(x);
                ck_assert_msg(r && !strncmp(r, "#/components/schemas/", 21),
                              "bad $ref %s", r ? r : "(null)");
                ck_assert_msg(
                    json_object_get(
                        json_object_get(json_object_get(root, "components"),
                                        "schemas"),
                        r + 21),
                    "dangling $ref %s", r);
            } else {
                refs_resolve(root, x);
            }
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) refs_resolve(root, x);
    }
}

START_TEST(test_document_shape)
{
    json_t *d = doc_load();
    ck_assert_str_eq(json_string_value(json_object_get(d, "openapi")), "3.1.0");
    json_t *paths = json_object_get(d, "paths");
    static const char *const must[] = {"/v1/chat/completions",
                                       "/v1/models",
                                       "/v1/models/{model}",
                                       "/health",
                                       "/metrics",
                                       "/openapi.json",
                                       "/docs",
                                       "/redoc",
                                       "/admin/keys",
                                       "/admin/reload",
                                       "/admin/pipeline",
                                       "/admin/ui",
                                       "/admin/usage",
                                       NULL};
    for (size_t i = 0; must[i]; i++)
        ck_assert_msg(json_object_get(paths, must[i]), "missing path %s",
                      must[i]);
    const char *p;
    json_t *item;
    int ops = 0;
    json_object_foreach(paths, p, item)
    {
        const char *m;
        json_t *op;
        json_object_foreach(item, m, op)
        {
            if (!strcmp(m, "parameters"))
                continue;
            ck_assert_msg(json_object_size(json_object_get(op, "responses")) >
                              0,
                          "%s %s has no responses", m, p);
            ck_assert_msg(json_is_string(json_object_get(op, "operationId")),
                          "%s %s has no operationId", m, p);
            ops++;
        }
    }
    ck_assert_int_ge(ops, 20);
    json_t *sec =
        json_object_get(json_object_get(d, "components"), "securitySchemes");
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(sec, "clientKey"), "scheme")),
                     "bearer");
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(sec, "adminToken"), "scheme")),
                     "bearer");
    static const char *const schemas[] = {"ChatCompletionRequest",
                                          "ChatCompletion",
                                          "ChatCompletionChunk",
                                          "Error",
                                          "ModelList",
                                          "Health",
                                          "KeyStatus",
                                          NULL};
    for (size_t i = 0; schemas[i]; i++)
        ck_assert_msg(
            json_object_get(
                json_object_get(json_object_get(d, "components"), "schemas"),
                schemas[i]),
            "missing schema %s", schemas[i]);
    refs_resolve(d, d);
    json_decref(d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("docs");
    TCase *tc = tcase_create("openapi");
    tcase_add_test(tc, test_embedded_is_the_file);
    tcase_add_test(tc, test_document_shape);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
