/*
 * metrics.h - the process-wide metrics registry and its Prometheus text
 * rendering (exposition format 0.0.4).
 *
 * A family (name, help, type, label names, histogram buckets) lives for the
 * process: it survives pipeline reloads, and registering a name that exists
 * with the same shape returns the same family, so counters stay monotonic
 * across reloads. A series is one tuple of label values; it is created the
 * first time the tuple is seen and never freed. Updates are atomics on the
 * series (doubles as CAS on their bits); finding a series is a hash lookup
 * under a read-mostly lock. Rendering walks append-only lists without a
 * global lock. Not here: which metrics the core publishes (core_metrics.c).
 */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include "buf.h"
#include "sluice.h"

#include <stddef.h>

struct metric_series; /* opaque: one label tuple of a family */

/* Series per family beyond which new label tuples are dropped (counted in
 * sluice_metrics_series_dropped_total): a guard against label explosion. */
#define METRICS_MAX_SERIES 5000

/* Register or find a family. label_names: comma-separated or NULL/"".
 * buckets: ascending upper bounds (histograms; NULL = Prometheus' default
 * buckets). Returns NULL, with a reason in err, on a bad name, bad buckets
 * or a clash with an existing family of another type, labels or buckets. */
sluice_metric *metrics_register(sluice_metric_type type, const char *name,
                                const char *help, const char *label_names,
                                const double *buckets, size_t nbuckets,
                                char *err, size_t errlen);
/* The series for label_values (one per label name; NULL values and a NULL
 * array mean ""), created on first use. NULL when the family is full. */
struct metric_series *metrics_series(sluice_metric *m,
                                     const char *const *label_values);

/* Updates on a series (NULL is ignored). add: counters (v >= 0) and
 * gauges; set: gauges; observe: histograms. */
void metrics_series_add(struct metric_series *s, double v);
void metrics_series_set(struct metric_series *s, double v);
void metrics_series_observe(struct metric_series *s, double v);

/* Overwrite a counter or gauge series with v: for the core's counters that
 * mirror a count kept elsewhere (e.g. dropped log lines). */
void metrics_series_store(struct metric_series *s, double v);

/* Lookup + update, as the host table's metric_add/set/observe. A call that
 * does not fit the family's type is ignored. */
void metrics_add(sluice_metric *m, const char *const *label_values, double v);
void metrics_set(sluice_metric *m, const char *const *label_values, double v);
void metrics_observe(sluice_metric *m, const char *const *label_values,
                     double v);

/* Current value of a counter/gauge series (tests, access log). */
double metrics_series_value(const struct metric_series *s);

/* Append the whole registry in the text format to out. */
int metrics_render(buf_t *out);

/* Append a label value escaped for the text format (\\, \", \n). */
void metrics_escape_label(buf_t *out, const char *s);

#endif
