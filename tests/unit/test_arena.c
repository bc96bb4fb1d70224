/*
 * test_arena.c - core/arena.c and the header lists that live on it
 * (core/hdrs.c with an arena): alignment, growth past the first room,
 * large allocations, everything readable until arena_free, and a value
 * set again in place. Run under ASan, a missed block is a leak and a
 * freed-too-early string a use-after-free.
 */
#include "arena.h"
#include "hdrs.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

START_TEST(aligned_and_first_room_used)
{
    _Alignas(16) char room[256];
    struct arena a;
    arena_init(&a, room + 3, sizeof room - 3); /* a misaligned room */
    char *p = arena_alloc(&a, 1), *q = arena_alloc(&a, 17);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(q);
    ck_assert_uint_eq((uintptr_t)p % ARENA_ALIGN, 0);
    ck_assert_uint_eq((uintptr_t)q % ARENA_ALIGN, 0);
    ck_assert(p >= room && q + 17 <= room + sizeof room);
    ck_assert_ptr_null(arena_alloc(&a, 0));
    ck_assert_ptr_null(arena_alloc(&a, SIZE_MAX));
    arena_free(&a); /* nothing malloc'd: nothing to free */
}
END_TEST

START_TEST(grows_and_keeps_everything)
{
    struct arena a;
    char *v[600];
    arena_init(&a, NULL, 0);
    for (int i = 0; i < 600; i++) { /* ~600 * 48 bytes: several blocks */
        char s[40];
        int n = snprintf(s, sizeof s, "value-%d-of-the-request", i);
        v[i] = arena_strndup(&a, s, (size_t)n);
        ck_assert_ptr_nonnull(v[i]);
        ck_assert_uint_eq((uintptr_t)v[i] % ARENA_ALIGN, 0);
    }
    char *big = arena_calloc(&a, 100000); /* a block of its own */
    ck_assert_ptr_nonnull(big);
    ck_assert_int_eq(big[0] | big[99999], 0);
    memset(big, 'x', 100000);
    char *after = arena_strdup(&a, "still in the current block");
    for (int i = 0; i < 600; i++) {
        char s[40];
        snprintf(s, sizeof s, "value-%d-of-the-request", i);
        ck_assert_str_eq(v[i], s);
    }
    ck_assert_str_eq(after, "still in the current block");
    ck_assert_uint_ge(a.used, 600 * 32 + 100000);
    arena_free(&a);
    ck_assert_uint_eq(a.used, 0);
    ck_assert_ptr_null(a.blocks);
}
END_TEST

START_TEST(hdrs_on_an_arena)
{
    char room[512];
    struct arena a;
    struct hdrs h = {0};
    arena_init(&a, room, sizeof room);
    h.arena = &a;
    ck_assert_int_eq(hdrs_set(&h, "client", "alice"), 0);
    const char *old = hdrs_get(&h, "client");
    /* a value no longer than the old one: written in place */
    ck_assert_int_eq(hdrs_set(&h, "CLIENT", "bob"), 0);
    ck_assert_ptr_eq(hdrs_get(&h, "client"), old);
    ck_assert_str_eq(old, "bob");
    /* a longer one: a new copy, the old one still readable memory */
    ck_assert_int_eq(hdrs_set(&h, "client", "carol-the-longer"), 0);
    ck_assert_str_eq(hdrs_get(&h, "client"), "carol-the-longer");
    ck_assert_str_eq(old, "bob");
    /* past the first array (8 entries) and the first room */
    for (int i = 0; i < 40; i++) {
        char n[16];
        snprintf(n, sizeof n, "h%d", i);
        ck_assert_int_eq(hdrs_add(&h, n, "a value of some length"), 0);
    }
    ck_assert_uint_eq(h.n, 41);
    ck_assert_str_eq(hdrs_get(&h, "h39"), "a value of some length");
    /* two entries of one name: set replaces both */
    hdrs_add(&h, "dup", "1");
    hdrs_add(&h, "dup", "2");
    ck_assert_int_eq(hdrs_set(&h, "dup", "3"), 0);
    ck_assert_uint_eq(h.n, 42);
    ck_assert_str_eq(hdrs_get(&h, "dup"), "3");
    hdrs_clear(&h);
    ck_assert_uint_eq(h.n, 0);
    ck_assert_str_eq(old, "bob"); /* cleared entries stay until arena_free */
    hdrs_free(&h);
    arena_free(&a);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("arena");
    TCase *tc = tcase_create("arena");
    tcase_add_test(tc, aligned_and_first_room_used);
    tcase_add_test(tc, grows_and_keeps_everything);
    tcase_add_test(tc, hdrs_on_an_arena);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
