/*
 * usage_ledger.c - the usage counters, kept in the core's state layer
 * (state_incr with a TTL: they survive a restart with the local backend and
 * are fleet-wide with Redis). One counter per client x model x day x field,
 * plus the windows the budgets read (tokens today, tokens and cost this
 * month per client). Costs are counted in nano-units of the currency so
 * that they add up exactly as integers. A budgeted request reserves its
 * estimate in the windows when it is admitted and settles the difference
 * when it completes, so requests in flight (on this instance, or on others
 * sharing the state) see each other.
 */
#include "usage.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char usage_field_letter[USAGE_NFIELDS] = {'r', 'p', 'c', 'k', 'e', 'n'};

#define DAY_MS   86400000ull
#define MONTH_MS (32ull * DAY_MS)

void usage_name_clean(const char *name, const char *dflt, char *out, size_t n)
{
    if (!name || !*name)
        name = dflt;
    size_t i = 0;
    for (; name[i] && i + 1 < n && i < 96; i++) {
        unsigned char ch = (unsigned char)name[i];
        out[i] = (ch == '|' || ch < 0x20 || ch == 0x7f) ? '_' : (char)ch;
    }
    out[i] = '\0';
}

int64_t usage_cost_nano(const struct usage_price *p, int64_t prompt,
                        int64_t completion, int64_t cached)
{
    if (!p)
        return -1;
    if (cached < 0 || cached > prompt)
        cached = cached < 0 ? 0 : prompt;
    double in_price = p->cached >= 0 ? p->cached : p->input;
    /* price per million tokens, in nano-units: tokens * price * 1000 */
    double nano = ((double)(prompt - cached) * p->input +
                   (double)cached * in_price + (double)completion * p->output) *
                  1000.0;
    return (int64_t)llround(nano);
}

static void incr(struct usage_cfg *c, sluice_ctx *ctx, const char *key,
                 int64_t delta, uint64_t ttl)
{
    if (delta > 0)
        c->host->state_incr(c->self, ctx, key, delta, ttl, NULL, NULL);
}

void usage_ledger_charge(struct usage_cfg *c, sluice_ctx *ctx, uint64_t wall_ms,
                         const struct usage_charge *ch)
{
    char day[11], month[8], key[256];
    usage_day_of(wall_ms, day);
    usage_month_of(wall_ms, month);
    int64_t v[USAGE_NFIELDS] = {1,
                                ch->prompt,
                                ch->completion,
                                ch->cached,
                                ch->estimated ? 1 : 0,
                                ch->cost_nano};
    /* the windows first: the budget checks of the fleet read them, and
     * the first change starts the state layer's write to the backend */
    usage_ledger_reserve(c, ctx, ch->client, wall_ms,
                         ch->prompt + ch->completion - ch->reserved_tokens,
                         (ch->cost_nano > 0 ? ch->cost_nano : 0) -
                             ch->reserved_cost_nano);
    for (int f = 0; f < USAGE_NFIELDS; f++) {
        snprintf(key, sizeof key, "d|%s|%s|%s|%c", day, ch->client, ch->model,
                 usage_field_letter[f]);
        incr(c, ctx, key, v[f], c->retention_ms);
    }
}

void usage_ledger_reserve(struct usage_cfg *c, sluice_ctx *ctx,
                          const char *client, uint64_t wall_ms, int64_t tokens,
                          int64_t cost_nano)
{
    const sluice_host *H = c->host;
    char day[11], month[8], key[256];
    usage_day_of(wall_ms, day);
    usage_month_of(wall_ms, month);
    if (tokens) {
        snprintf(key, sizeof key, "bd|%s|%s", day, client);
        H->state_incr(c->self, ctx, key, tokens, 2 * DAY_MS, NULL, NULL);
        snprintf(key, sizeof key, "bm|%s|%s", month, client);
        H->state_incr(c->self, ctx, key, tokens, MONTH_MS, NULL, NULL);
    }
    if (cost_nano) {
        snprintf(key, sizeof key, "bc|%s|%s", month, client);
        H->state_incr(c->self, ctx, key, cost_nano, MONTH_MS, NULL, NULL);
    }
}

void usage_ledger_reserve_wait(struct usage_cfg *c, sluice_ctx *ctx,
                               const char *client, uint64_t wall_ms,
                               int64_t tokens, int64_t cost_nano,
                               sluice_state_fn done, void *arg)
{
    const sluice_host *H = c->host;
    char day[11], month[8], key[256];
    usage_day_of(wall_ms, day);
    usage_month_of(wall_ms, month);
    snprintf(key, sizeof key, "bd|%s|%s", day, client);
    H->state_incr(c->self, ctx, key, tokens, 2 * DAY_MS, done, arg);
    snprintf(key, sizeof key, "bm|%s|%s", month, client);
    H->state_incr(c->self, ctx, key, tokens, MONTH_MS, done, arg);
    snprintf(key, sizeof key, "bc|%s|%s", month, client);
    H->state_incr(c->self, ctx, key, cost_nano, MONTH_MS, done, arg);
}

static int64_t read_count(struct usage_cfg *c, const char *key)
{
    int64_t n = 0;
    if (c->host->state_get(c->self, key, NULL, &n, NULL) != 1)
        return 0;
    return n;
}

void usage_ledger_used(struct usage_cfg *c, const char *client,
                       uint64_t wall_ms, int64_t *tok_day, int64_t *tok_month,
                       int64_t *cost_nano_month)
{
    char day[11], month[8], key[256];
    usage_day_of(wall_ms, day);
    usage_month_of(wall_ms, month);
    snprintf(key, sizeof key, "bd|%s|%s", day, client);
    *tok_day = read_count(c, key);
    snprintf(key, sizeof key, "bm|%s|%s", month, client);
    *tok_month = read_count(c, key);
    snprintf(key, sizeof key, "bc|%s|%s", month, client);
    *cost_nano_month = read_count(c, key);
}
