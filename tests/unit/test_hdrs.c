/*
 * test_hdrs.c - core/hdrs.c: hdrs_set replaces every entry of a name (any
 * case) with one holding the new value, whether the name was absent,
 * present once, or present several times among others; the others keep
 * their values and order; hdrs_get finds what a strcasecmp scan finds,
 * for names whose first bytes fold alike without being letters too.
 */
#include "hdrs.h"

#include <check.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static size_t count(const struct hdrs *h, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < h->n; i++)
        n += !strcasecmp(h->v[i].name, name);
    return n;
}

START_TEST(set_replaces_every_entry_of_a_name)
{
    struct hdrs h = {0};
    ck_assert_int_eq(hdrs_set(&h, "upstream", "alpha"), 0);
    ck_assert_str_eq(hdrs_get(&h, "UPSTREAM"), "alpha");
    ck_assert_int_eq(hdrs_add(&h, "a", "1"), 0);
    ck_assert_int_eq(hdrs_set(&h, "Upstream", "beta"), 0);
    ck_assert_str_eq(hdrs_get(&h, "upstream"), "beta");
    ck_assert_uint_eq(h.n, 2);
    /* duplicates (hdrs_add keeps them) all go but one */
    ck_assert_int_eq(hdrs_add(&h, "x", "1"), 0);
    ck_assert_int_eq(hdrs_add(&h, "b", "2"), 0);
    ck_assert_int_eq(hdrs_add(&h, "X", "2"), 0);
    ck_assert_int_eq(hdrs_add(&h, "c", "3"), 0);
    ck_assert_int_eq(hdrs_add(&h, "x", "3"), 0);
    ck_assert_int_eq(hdrs_set(&h, "x", "new"), 0);
    ck_assert_uint_eq(count(&h, "x"), 1);
    ck_assert_str_eq(hdrs_get(&h, "x"), "new");
    const char *order[][2] = {
        {"upstream", "beta"}, {"a", "1"}, {"x", "new"}, {"b", "2"}, {"c", "3"}};
    ck_assert_uint_eq(h.n, 5);
    for (size_t i = 0; i < 5; i++) {
        ck_assert_str_eq(h.v[i].name, order[i][0]);
        ck_assert_str_eq(h.v[i].value, order[i][1]);
    }
    hdrs_free(&h);
}
END_TEST

START_TEST(get_matches_a_strcasecmp_scan)
{
    static const char *const names[] = {
        "",          "a",         "A",  "b",         "@x",
        "`x",        "[y",        "{y", "X-Api-Key", "x-api-key",
        "x-API-KEY", "x-api-kez", "_q", "\x7fz",     "\xc3\xa9t",
        "\xe3\xa9t", "1",         "Q",  "client"};
    const size_t n = sizeof names / sizeof *names;
    struct hdrs h = {0};
    char val[16];
    for (size_t i = 0; i < n; i++) {
        snprintf(val, sizeof val, "v%zu", i);
        ck_assert_int_eq(hdrs_add(&h, names[i], val), 0);
    }
    for (size_t q = 0; q < n; q++) {
        const char *want = NULL;
        for (size_t i = 0; i < n && !want; i++)
            if (!strcasecmp(names[i], names[q]))
                want = h.v[i].value;
        const char *got = hdrs_get(&h, names[q]);
        ck_assert_msg(got == want, "hdrs_get('%s') found the wrong entry",
                      names[q]);
    }
    /* '@' and '`' fold to the same first byte, but are not the same */
    ck_assert_str_eq(hdrs_get(&h, "`X"), "v5");
    ck_assert_str_eq(hdrs_get(&h, "@X"), "v4");
    ck_assert_str_eq(hdrs_get(&h, "{Y"), "v7");
    ck_assert_ptr_null(hdrs_get(&h, "`q"));
    ck_assert_str_eq(hdrs_get(&h, "X-API-KEY"), "v8");
    hdrs_free(&h);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hdrs");
    TCase *tc = tcase_create("hdrs");
    tcase_add_test(tc, set_replaces_every_entry_of_a_name);
    tcase_add_test(tc, get_matches_a_strcasecmp_scan);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
