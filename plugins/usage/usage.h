/*
 * usage.h - the usage stage's private interface: per client x model x day
 * usage and cost kept in the core's state layer (sdk/sluice.h, ABI 1.1),
 * budgets per client checked before a request starts, and the reports of
 * GET /admin/usage. Built against sdk/sluice.h only.
 */
#ifndef SLUICE_USAGE_H
#define SLUICE_USAGE_H

#include "sluice.h"

#include <pthread.h>
#include <stdint.h>

/* Prices per million tokens of one model name (the model table's prices:
 * a route's model or alias, or the stage's own `prices:`). */
struct usage_price {
    char *model; /* an exact name, or a glob when glob is set */
    int glob;
    double input, output, cached; /* cached < 0: charged as input */
};

#define USAGE_NAME_MAX 100 /* a cleaned client or model name, NUL included */

/* Budgets of one client; a negative value means none. */
struct usage_budget {
    char client[USAGE_NAME_MAX];
    int64_t tokens_day, tokens_month;
    double cost_month;
};

/* The stage instance. Everything but `mu`'s table is read-only after
 * init, so request threads share it without a lock. */
struct usage_cfg {
    const sluice_host *host; /* the table init got; valid until destroy */
    sluice_stage *self;
    char currency[16];
    struct usage_price *prices; /* the routes' prices, then the stage's */
    size_t nprices;
    struct usage_budget *budgets; /* the stage's `budgets:` */
    size_t nbudgets;
    uint64_t retention_ms;
    sluice_metric *m_ratio;
    /* budgets learned from the clients file (the request attributes
     * budget_* the auth stage sets), for the gauge and the report */
    pthread_mutex_t mu;
    struct usage_budget *learned;
    size_t nlearned;
};

/* ---- usage_config.c ---------------------------------------------------- */
/* The stage's config, and the prices of the pipeline's `routes:` (read
 * through model_routes). */
int usage_config_load(struct usage_cfg *c, const sluice_json *cfg, char *err,
                      size_t errlen);
void usage_config_free(struct usage_cfg *c);
const struct usage_price *usage_price_find(const struct usage_cfg *c,
                                           const char *model);

/* ---- usage_budget.c: whose budgets, from where ------------------------- */
/* The budgets of the request's client into *out: the clients file's
 * (attributes budget_tokens_day, budget_tokens_month, budget_cost_month,
 * set by auth) when the request carries any, else the stage's `budgets:`
 * entry. 1 when the client has a budget, else 0. */
int usage_budget_of(struct usage_cfg *c, sluice_ctx *ctx, const char *client,
                    struct usage_budget *out);
/* Every budget known: the stage's, then those learned from requests (a
 * learned one replaces the stage's of the same client). Caller frees;
 * *n is 0 (and the result may be NULL) when there are none. */
struct usage_budget *usage_budgets_all(struct usage_cfg *c, size_t *n);
/* At init: the clients-file budgets learned before (state records). */
void usage_budgets_load(struct usage_cfg *c);
/* The budget of `client` among usage_budgets_all's; 1 found, else 0. */
int usage_budget_known(struct usage_cfg *c, const char *client,
                       struct usage_budget *out);

/* ---- usage_date.c: UTC days and months as text ------------------------- */
/* "YYYY-MM-DD" and "YYYY-MM" of wall-clock ms. */
void usage_day_of(uint64_t wall_ms, char day[11]);
void usage_month_of(uint64_t wall_ms, char month[8]);
/* Parse a strict "YYYY-MM-DD" into days since 1970-01-01; -1 if malformed
 * or not a real date. */
long usage_day_parse(const char *s);
/* Wall-clock seconds of the next UTC midnight / first of next month. */
int64_t usage_next_day_s(uint64_t wall_ms);
int64_t usage_next_month_s(uint64_t wall_ms);
/* RFC 3339 "YYYY-MM-DDTHH:MM:SSZ" of epoch seconds. */
void usage_rfc3339(int64_t s, char out[21]);

/* ---- usage_ledger.c: the counters in the state layer ------------------- */
/* Ledger keys: "d|<day>|<client>|<model>|<field>", field one of the
 * USAGE_F_* letters; budget windows "bd|<day>|<client>" (tokens),
 * "bm|<month>|<client>" (tokens), "bc|<month>|<client>" (cost, nano). */
enum usage_field {
    USAGE_F_REQUESTS,
    USAGE_F_PROMPT,
    USAGE_F_COMPLETION,
    USAGE_F_CACHED,
    USAGE_F_ESTIMATED,
    USAGE_F_COST_NANO,
    USAGE_NFIELDS
};
extern const char usage_field_letter[USAGE_NFIELDS];

struct usage_charge {
    const char *client, *model; /* sanitised names */
    int64_t prompt, completion, cached;
    int64_t cost_nano; /* < 0: the model has no price */
    int estimated;
    /* what the budget check reserved in the windows at admission; the
     * windows get the difference to what was really used */
    int64_t reserved_tokens, reserved_cost_nano;
};
/* Copy name into out (size n) with '|' and control bytes replaced and the
 * length bounded; "" becomes `dflt`. */
void usage_name_clean(const char *name, const char *dflt, char *out, size_t n);
void usage_ledger_charge(struct usage_cfg *c, sluice_ctx *ctx, uint64_t wall_ms,
                         const struct usage_charge *ch);
/* Add tokens and cost (nano; negative: give back) to the budget windows
 * of `client` (what usage_ledger_used reads). */
void usage_ledger_reserve(struct usage_cfg *c, sluice_ctx *ctx,
                          const char *client, uint64_t wall_ms, int64_t tokens,
                          int64_t cost_nano);
/* The same, with done(arg, value) once per window (tokens today, tokens
 * this month, cost this month; in any order, on ctx's worker) with its
 * value after the increment as the backend answered it. */
void usage_ledger_reserve_wait(struct usage_cfg *c, sluice_ctx *ctx,
                               const char *client, uint64_t wall_ms,
                               int64_t tokens, int64_t cost_nano,
                               sluice_state_fn done, void *arg);
/* Used so far in the budget windows of `client` at wall_ms. */
void usage_ledger_used(struct usage_cfg *c, const char *client,
                       uint64_t wall_ms, int64_t *tok_day, int64_t *tok_month,
                       int64_t *cost_nano_month);
/* Cost in nano-units of the currency; -1 when the model has no price. */
int64_t usage_cost_nano(const struct usage_price *p, int64_t prompt,
                        int64_t completion, int64_t cached);

/* ---- usage_tokens.c: usage from bodies, estimates ---------------------- */
/* prompt/completion/cached tokens of the last "usage" object in a response
 * body; 0 if there is none (values left at -1 when absent). */
int usage_from_body(const sluice_host *H, const char *body, size_t len,
                    int64_t *prompt, int64_t *completion, int64_t *cached);
/* Characters of the "content" string values in data (a body or stream
 * bytes); a rough measure of generated text, for estimates. */
int64_t usage_content_chars(const char *data, size_t len);

/* ---- usage_report.c: GET /admin/usage and /admin/usage/clients ---------- */
int usage_report_answer(void *instance, sluice_ctx *ctx, sluice_buf *out,
                        const char **content_type);
int usage_clients_answer(void *instance, sluice_ctx *ctx, sluice_buf *out,
                         const char **content_type);

#endif
