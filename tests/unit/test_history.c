/*
 * test_history.c - core/history.c: requests land in their 10-second slot,
 * the JSON covers the last 15 minutes since the first request (empty slots
 * included), quantiles follow the buckets, a slot a full ring later starts
 * afresh.
 */
#include "history.h"

#include <check.h>
#include <jansson.h>
#include <string.h>

#define T0 1796270775000ull /* 2026-12-03, mid-slot */

static json_t *points_at(uint64_t now)
{
    buf_t b;
    buf_init(&b);
    history_json(&b, now);
    json_t *doc = json_loadb(b.data, b.len, 0, NULL);
    buf_release(&b);
    ck_assert_ptr_nonnull(doc);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "slot_s")), 10);
    json_t *pts = json_incref(json_object_get(doc, "points"));
    json_decref(doc);
    return pts;
}

START_TEST(slots_rates_quantiles)
{
    buf_t b;
    buf_init(&b);
    history_json(&b, T0);
    ck_assert_ptr_nonnull(strstr(b.data, "\"points\":[]")); /* nothing yet */
    buf_release(&b);

    uint64_t s0 = T0 - T0 % HISTORY_SLOT_MS;
    for (int i = 0; i < 100; i++) /* 100 requests of 30 ms, 1 error */
        history_record(s0 + 1000, 0.03, i == 0);
    history_record(s0 + 25000, 2.0, 0); /* two slots later */
    json_t *pts = points_at(s0 + 26000);
    ck_assert_uint_eq(json_array_size(pts), 3); /* first, empty, current */
    json_t *a = json_array_get(pts, 0), *e = json_array_get(pts, 1),
           *c = json_array_get(pts, 2);
    ck_assert_int_eq(json_integer_value(json_object_get(a, "requests")), 100);
    ck_assert_int_eq(json_integer_value(json_object_get(a, "t")),
                     (json_int_t)(s0 + HISTORY_SLOT_MS));
    ck_assert(json_real_value(json_object_get(a, "rate")) == 10.0);
    ck_assert(json_real_value(json_object_get(a, "err")) == 1.0);
    /* all in (0.025, 0.05]: the median halfway, p99 near the top */
    ck_assert(json_real_value(json_object_get(a, "p50")) == 37.5);
    ck_assert(json_real_value(json_object_get(a, "p99")) == 49.75);
    ck_assert_int_eq(json_integer_value(json_object_get(e, "requests")), 0);
    ck_assert(json_is_null(json_object_get(e, "p50")));
    /* the current slot: its rate over the 6 s so far */
    ck_assert_int_eq(json_integer_value(json_object_get(c, "requests")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(c, "t")),
                     (json_int_t)(s0 + 26000));
    json_decref(pts);

    /* 15 minutes on: the old slots are out of the window, and the slot
     * the ring gives a new request again starts from zero */
    uint64_t later = s0 + HISTORY_SLOTS * HISTORY_SLOT_MS;
    history_record(later + 500, 0.2, 0);
    pts = points_at(later + 600);
    ck_assert_uint_eq(json_array_size(pts), HISTORY_SLOTS);
    json_t *last = json_array_get(pts, HISTORY_SLOTS - 1);
    ck_assert_int_eq(json_integer_value(json_object_get(last, "requests")), 1);
    long long total = 0;
    size_t i;
    json_t *p;
    json_array_foreach(pts, i, p)
    {
        total += json_integer_value(json_object_get(p, "requests"));
    }
    ck_assert_int_eq(total, 2); /* the 2 s request's slot, and the new one */
    json_decref(pts);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("history");
    TCase *tc = tcase_create("history");
    tcase_add_test(tc, slots_rates_quantiles);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
