/*
 * test_metrics.c - the metrics registry and its text rendering: families
 * found again on re-register (counters stay monotonic across reloads),
 * clashes refused, label escaping, cumulative histogram buckets with +Inf,
 * _sum and _count, value formatting, the series limit, and concurrent
 * updates adding up.
 */
#include "metrics.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ck_assert_has(hay, needle)                                             \
    ck_assert_msg(strstr((hay), (needle)) != NULL, "expected '%s' in:\n%s",    \
                  (needle), (hay))
#define ck_assert_hasnt(hay, needle)                                           \
    ck_assert_msg(strstr((hay), (needle)) == NULL,                             \
                  "did not expect '%s' in:\n%s", (needle), (hay))

static char errbuf[256];

static sluice_metric *reg(sluice_metric_type t, const char *name,
                          const char *labels, const double *b, size_t nb)
{
    errbuf[0] = '\0';
    return metrics_register(t, name, "help text", labels, b, nb, errbuf,
                            sizeof errbuf);
}

/* The whole registry as text (caller frees). */
static char *render(void)
{
    buf_t b;
    buf_init(&b);
    ck_assert_int_eq(metrics_render(&b), 0);
    return buf_steal(&b, NULL);
}

START_TEST(test_counter_reregister_keeps_value)
{
    sluice_metric *a =
        reg(SLUICE_METRIC_COUNTER, "t_reqs_total", "code", NULL, 0);
    ck_assert_ptr_nonnull(a);
    const char *v200[] = {"200"};
    metrics_add(a, v200, 3);
    metrics_add(a, v200, -5); /* a counter never goes down: ignored */
    /* a reload registers it again: same family, value kept */
    sluice_metric *b =
        reg(SLUICE_METRIC_COUNTER, "t_reqs_total", "code", NULL, 0);
    ck_assert_ptr_eq(a, b);
    metrics_add(b, v200, 2);
    ck_assert(metrics_series_value(metrics_series(b, v200)) == 5.0);
    char *t = render();
    ck_assert_has(t, "# HELP t_reqs_total help text\n"
                     "# TYPE t_reqs_total counter\n"
                     "t_reqs_total{code=\"200\"} 5\n");
    free(t);
}
END_TEST

START_TEST(test_clashes_refused)
{
    ck_assert_ptr_nonnull(reg(SLUICE_METRIC_GAUGE, "t_clash", "a", NULL, 0));
    ck_assert_ptr_null(reg(SLUICE_METRIC_COUNTER, "t_clash", "a", NULL, 0));
    ck_assert_has(errbuf, "exists with another type");
    ck_assert_ptr_null(reg(SLUICE_METRIC_GAUGE, "t_clash", "b", NULL, 0));
    ck_assert_ptr_null(reg(SLUICE_METRIC_GAUGE, "t_clash", "a,b", NULL, 0));
    double b1[] = {1, 2}, b2[] = {1, 3};
    ck_assert_ptr_nonnull(
        reg(SLUICE_METRIC_HISTOGRAM, "t_h_clash", NULL, b1, 2));
    ck_assert_ptr_null(reg(SLUICE_METRIC_HISTOGRAM, "t_h_clash", NULL, b2, 2));
    /* bad names */
    ck_assert_ptr_null(reg(SLUICE_METRIC_GAUGE, "1abc", NULL, NULL, 0));
    ck_assert_ptr_null(reg(SLUICE_METRIC_GAUGE, "a-b", NULL, NULL, 0));
    ck_assert_ptr_null(reg(SLUICE_METRIC_GAUGE, "t_ok", "bad-label", NULL, 0));
    ck_assert_ptr_null(reg(SLUICE_METRIC_GAUGE, "t_ok", "__x", NULL, 0));
    ck_assert_ptr_null(reg(SLUICE_METRIC_GAUGE, "t_ok", "a,a", NULL, 0));
    ck_assert_ptr_null(reg(SLUICE_METRIC_HISTOGRAM, "t_ok_h", "le", NULL, 0));
    double desc[] = {2, 1};
    ck_assert_ptr_null(reg(SLUICE_METRIC_HISTOGRAM, "t_ok_h", NULL, desc, 2));
    ck_assert_has(errbuf, "ascending");
    /* spaces around label names are tolerated */
    ck_assert_ptr_nonnull(
        reg(SLUICE_METRIC_GAUGE, "t_spaces", "a, b", NULL, 0));
}
END_TEST

START_TEST(test_label_escaping)
{
    sluice_metric *m = reg(SLUICE_METRIC_GAUGE, "t_esc", "v,w", NULL, 0);
    ck_assert_ptr_nonnull(m);
    const char *vals[] = {"a\\b\"c\nd", NULL};
    metrics_set(m, vals, 1.5);
    metrics_set(m, NULL, -2); /* no values at all: every label "" */
    char *t = render();
    ck_assert_has(t, "t_esc{v=\"a\\\\b\\\"c\\nd\",w=\"\"} 1.5\n");
    ck_assert_has(t, "t_esc{v=\"\",w=\"\"} -2\n");
    free(t);

    buf_t b;
    buf_init(&b);
    metrics_escape_label(&b, "plain");
    metrics_escape_label(&b, "\\\"\n");
    ck_assert_str_eq(b.data, "plain\\\\\\\"\\n");
    buf_release(&b);
}
END_TEST

START_TEST(test_help_escaping)
{
    char err[128];
    ck_assert_ptr_nonnull(metrics_register(SLUICE_METRIC_GAUGE, "t_help",
                                           "line one\nback\\slash", NULL, NULL,
                                           0, err, sizeof err));
    char *t = render();
    ck_assert_has(t, "# HELP t_help line one\\nback\\\\slash\n");
    ck_assert_has(t, "\nt_help 0\n"); /* label-less: rendered from the start */
    free(t);
}
END_TEST

START_TEST(test_histogram_rendering)
{
    double b[] = {0.1, 1, 10};
    sluice_metric *h =
        reg(SLUICE_METRIC_HISTOGRAM, "t_lat_seconds", "route", b, 3);
    ck_assert_ptr_nonnull(h);
    const char *r[] = {"chat"};
    metrics_observe(h, r, 0.05);
    metrics_observe(h, r, 0.1); /* le is inclusive */
    metrics_observe(h, r, 0.5);
    metrics_observe(h, r, 100);
    metrics_observe(h, r, NAN); /* ignored */
    metrics_add(h, r, 1);       /* wrong call for a histogram: ignored */
    char *t = render();
    ck_assert_has(t, "# TYPE t_lat_seconds histogram\n"
                     "t_lat_seconds_bucket{route=\"chat\",le=\"0.1\"} 2\n"
                     "t_lat_seconds_bucket{route=\"chat\",le=\"1\"} 3\n"
                     "t_lat_seconds_bucket{route=\"chat\",le=\"10\"} 3\n"
                     "t_lat_seconds_bucket{route=\"chat\",le=\"+Inf\"} 4\n"
                     "t_lat_seconds_sum{route=\"chat\"} 100.65\n"
                     "t_lat_seconds_count{route=\"chat\"} 4\n");
    free(t);

    /* label-less, default buckets, a trailing +Inf bound is folded in */
    double inf[] = {1, INFINITY};
    sluice_metric *h2 = reg(SLUICE_METRIC_HISTOGRAM, "t_plain", NULL, inf, 2);
    ck_assert_ptr_nonnull(h2);
    metrics_observe(h2, NULL, 2);
    sluice_metric *h3 =
        reg(SLUICE_METRIC_HISTOGRAM, "t_default", NULL, NULL, 0);
    ck_assert_ptr_nonnull(h3);
    t = render();
    ck_assert_has(t,
                  "t_plain_bucket{le=\"1\"} 0\nt_plain_bucket{le=\"+Inf\"} 1\n"
                  "t_plain_sum 2\nt_plain_count 1\n");
    ck_assert_hasnt(t, "le=\"+Inf\"} 1\nt_plain_bucket");
    ck_assert_has(t, "t_default_bucket{le=\"0.005\"} 0\n");
    ck_assert_has(t, "t_default_bucket{le=\"10\"} 0\n");
    free(t);
}
END_TEST

START_TEST(test_gauge_and_value_format)
{
    sluice_metric *g = reg(SLUICE_METRIC_GAUGE, "t_gauge", "k", NULL, 0);
    const char *a[] = {"a"}, *b[] = {"b"}, *c[] = {"c"}, *d[] = {"d"};
    metrics_set(g, a, 0.1);
    metrics_add(g, a, 0.2);
    metrics_set(g, b, 1e20);
    metrics_set(g, c, INFINITY);
    metrics_add(g, d, 2);
    metrics_add(g, d, -3);
    char *t = render();
    ck_assert_has(t, "t_gauge{k=\"a\"} 0.30000000000000004\n");
    ck_assert_has(t, "t_gauge{k=\"b\"} 1e+20\n");
    ck_assert_has(t, "t_gauge{k=\"c\"} +Inf\n");
    ck_assert_has(t, "t_gauge{k=\"d\"} -1\n");
    free(t);
    /* set on a counter is refused */
    sluice_metric *cn =
        reg(SLUICE_METRIC_COUNTER, "t_cnt_total", NULL, NULL, 0);
    metrics_add(cn, NULL, 4);
    metrics_set(cn, NULL, 1);
    ck_assert(metrics_series_value(metrics_series(cn, NULL)) == 4.0);
}
END_TEST

START_TEST(test_series_limit)
{
    sluice_metric *m =
        reg(SLUICE_METRIC_COUNTER, "t_many_total", "id", NULL, 0);
    char v[32];
    const char *vals[] = {v};
    for (int i = 0; i < METRICS_MAX_SERIES + 10; i++) {
        snprintf(v, sizeof v, "%d", i);
        metrics_add(m, vals, 1);
    }
    snprintf(v, sizeof v, "%d", METRICS_MAX_SERIES + 5);
    ck_assert_ptr_null(metrics_series(m, vals));
    snprintf(v, sizeof v, "%d", 17);
    ck_assert(metrics_series_value(metrics_series(m, vals)) == 1.0);
    char *t = render();
    ck_assert_has(t, "sluice_metrics_series_dropped_total 11\n");
    free(t);
}
END_TEST

/* ---- concurrency: updates from several threads add up ---------------- */

#define THREADS 4
#define ROUNDS  20000

static sluice_metric *conc_c, *conc_h;

static void *hammer(void *arg)
{
    char v[16];
    const char *vals[] = {v};
    snprintf(v, sizeof v, "%d", (int)(long)arg % 2);
    for (int i = 0; i < ROUNDS; i++) {
        metrics_add(conc_c, vals, 0.5);
        metrics_observe(conc_h, vals, 0.25);
    }
    return NULL;
}

START_TEST(test_concurrent_updates)
{
    pthread_t th[THREADS];
    conc_c = reg(SLUICE_METRIC_COUNTER, "t_conc_total", "k", NULL, 0);
    double b[] = {1};
    conc_h = reg(SLUICE_METRIC_HISTOGRAM, "t_conc_h", "k", b, 1);
    for (long i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, hammer, (void *)i);
    /* render while they run: must not crash or block */
    for (int i = 0; i < 20; i++)
        free(render());
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    const char *k0[] = {"0"}, *k1[] = {"1"};
    double want = THREADS / 2 * ROUNDS * 0.5;
    ck_assert(metrics_series_value(metrics_series(conc_c, k0)) == want);
    ck_assert(metrics_series_value(metrics_series(conc_c, k1)) == want);
    char *t = render();
    char line[128];
    snprintf(line, sizeof line, "t_conc_h_count{k=\"0\"} %d\n",
             THREADS / 2 * ROUNDS);
    ck_assert_has(t, line);
    /* each thread wrote its own shard: buckets and sums add up across them */
    snprintf(line, sizeof line, "t_conc_h_bucket{k=\"1\",le=\"1\"} %d\n",
             THREADS / 2 * ROUNDS);
    ck_assert_has(t, line);
    snprintf(line, sizeof line, "t_conc_h_sum{k=\"1\"} %d\n",
             THREADS / 2 * ROUNDS / 4);
    ck_assert_has(t, line);
    free(t);
}
END_TEST

/* A gauge set after other threads added to it: the set value, whatever
 * the shards held. */
static sluice_metric *gs;

static void *gauge_adder(void *arg)
{
    (void)arg;
    metrics_add(gs, (const char *const[]){"x"}, 5);
    return NULL;
}

START_TEST(test_gauge_set_after_threads_added)
{
    pthread_t th[3];
    gs = reg(SLUICE_METRIC_GAUGE, "t_gs", "k", NULL, 0);
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, gauge_adder, NULL);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    const char *x[] = {"x"};
    ck_assert(metrics_series_value(metrics_series(gs, x)) == 15.0);
    metrics_set(gs, x, 2);
    ck_assert(metrics_series_value(metrics_series(gs, x)) == 2.0);
    metrics_add(gs, x, -1);
    char *t = render();
    ck_assert_has(t, "t_gs{k=\"x\"} 1\n");
    free(t);
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("registry");
    /* each test in its own process (CK_FORK): a fresh registry */
    tcase_add_test(tc, test_counter_reregister_keeps_value);
    tcase_add_test(tc, test_clashes_refused);
    tcase_add_test(tc, test_label_escaping);
    tcase_add_test(tc, test_help_escaping);
    tcase_add_test(tc, test_histogram_rendering);
    tcase_add_test(tc, test_gauge_and_value_format);
    tcase_add_test(tc, test_series_limit);
    tcase_add_test(tc, test_concurrent_updates);
    tcase_add_test(tc, test_gauge_set_after_threads_added);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(metrics_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
