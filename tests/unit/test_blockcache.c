/*
 * test_blockcache.c - the per-thread spare blocks: a block given back is
 * handed out again for a size it fits (at most twice the size asked),
 * never one too small, never outside 1-16 KiB; the cache holds at most 8; a
 * thread's blocks are its own; and buffers that grow through it keep
 * their bytes. Pointer identity is only checked when blocks are kept (not
 * under AddressSanitizer, where every block is really freed).
 */
#include "blockcache.h"
#include "buf.h"

#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_reuse_fits)
{
    size_t got;
    char *a = blockcache_get(2048, &got);
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq(got, 2048);
    memset(a, 'x', got);
    blockcache_put(a, got);
    /* too big for it: a new block of exactly the size asked */
    char *b = blockcache_get(5000, &got);
    ck_assert_uint_eq(got, 5000);
    ck_assert(b != a);
    memset(b, 'y', got);
    /* fits, and not more than twice the size: the kept one */
    char *c = blockcache_get(1500, &got);
    if (blockcache_enabled()) {
        ck_assert_ptr_eq(c, a);
        ck_assert_uint_eq(got, 2048);
    } else {
        ck_assert_uint_eq(got, 1500);
    }
    memset(c, 'z', got);
    blockcache_put(c, got);
    /* more than twice: not that one */
    char *d = blockcache_get(1000, &got);
    ck_assert_uint_eq(got, 1000);
    memset(d, 'w', got);
    blockcache_put(d, got);
    blockcache_put(b, 5000);
    /* outside 1-16 KiB: plain malloc, never a kept block */
    char *e = blockcache_get(64, &got);
    ck_assert_uint_eq(got, 64);
    ck_assert(e != a && e != b && e != d);
    free(e);
    blockcache_put(NULL, 4096); /* ignored */
}
END_TEST

START_TEST(test_bounded)
{
    void *v[20];
    size_t got;
    for (int i = 0; i < 20; i++)
        v[i] = blockcache_get(4096, &got);
    ck_assert_uint_eq(blockcache_held(), 0);
    for (int i = 0; i < 20; i++)
        blockcache_put(v[i], 4096); /* beyond the bound: freed */
    ck_assert_uint_eq(blockcache_held(), blockcache_enabled() ? 8 : 0);
    for (int i = 0; i < 20; i++)
        v[i] = blockcache_get(4096, &got);
    ck_assert_uint_eq(blockcache_held(), 0);
    for (int i = 0; i < 20; i++)
        blockcache_put(v[i], 4096);
}
END_TEST

static void *other_thread(void *arg)
{
    size_t got;
    void *p = blockcache_get(2048, &got);
    int mine = p != arg;
    blockcache_put(p, got); /* freed with the thread's cache at its end */
    return (void *)(long)mine;
}

START_TEST(test_per_thread)
{
    size_t got;
    void *a = blockcache_get(2048, &got);
    blockcache_put(a, got);
    pthread_t t;
    void *r;
    pthread_create(&t, NULL, other_thread, a);
    pthread_join(t, &r);
    ck_assert(r == (void *)1); /* it never got this thread's block */
    void *b = blockcache_get(2048, &got);
    if (blockcache_enabled())
        ck_assert_ptr_eq(b, a);
    blockcache_put(b, got);
}
END_TEST

START_TEST(test_buffers_keep_their_bytes)
{
    for (int round = 0; round < 3; round++) {
        buf_t b;
        buf_init(&b);
        for (int i = 0; i < 3000; i++) {
            char c = (char)('a' + (i + round) % 26);
            ck_assert_int_eq(buf_append(&b, &c, 1), 0);
        }
        ck_assert_uint_eq(b.len, 3000);
        ck_assert_uint_eq(strlen(b.data), 3000);
        for (int i = 0; i < 3000; i++)
            ck_assert_int_eq(b.data[i], 'a' + (i + round) % 26);
        buf_release(&b); /* its block kept for the next round */
        ck_assert_ptr_null(b.data);
    }
    /* a buffer stolen from it is plain malloc'd memory */
    buf_t b;
    buf_init(&b);
    for (int i = 0; i < 2000; i++)
        buf_append(&b, "q", 1);
    size_t n;
    char *p = buf_steal(&b, &n);
    ck_assert_uint_eq(n, 2000);
    free(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("blockcache");
    TCase *tc = tcase_create("blockcache");
    tcase_add_test(tc, test_reuse_fits);
    tcase_add_test(tc, test_bounded);
    tcase_add_test(tc, test_per_thread);
    tcase_add_test(tc, test_buffers_keep_their_bytes);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
