/*
 * usage_report.c - GET /admin/usage: the ledger summed over a date range,
 * filtered by client and model and grouped by any of client, model, day,
 * as JSON or CSV; and GET /admin/usage/clients: each client's usage today
 * and this month next to its budgets (the dashboard's budget bars). Both
 * read this instance's view of the state layer (fleet-wide with Redis).
 *
 *   from, to   YYYY-MM-DD (UTC), inclusive; default: this month to today;
 *              at most 366 days
 *   client, model   exact names (optional)
 *   group_by   client, model, day, or a comma list (default: day,client,model)
 *   format     json (default) or csv
 */
#include "usage.h"
#include "usage_table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { G_DAY = 1, G_CLIENT = 2, G_MODEL = 4 };

struct query {
    char from[11], to[11];
    const char *client, *model;
    int group; /* G_* bits */
    int csv;
    struct usage_table entries; /* day|client|model -> fields */
    int oom;
};

static int bad(const sluice_host *H, sluice_ctx *ctx, const char *code,
               const char *param, const char *msg)
{
    return H->respond_error(ctx, 400, "invalid_request_error", code, param,
                            msg) == 0
               ? 0
               : -1;
}

static int only_get(const sluice_host *H, sluice_ctx *ctx)
{
    if (!strcmp(H->req_method(ctx), "GET"))
        return 1;
    H->resp_header_add(ctx, "Allow", "GET");
    H->respond_error(ctx, 405, "invalid_request_error", "method_not_allowed",
                     NULL, "this admin path answers GET only");
    return 0;
}

/* Parse the query; 0 ok, 1 when a 400 was set. */
static int query_parse(const sluice_host *H, sluice_ctx *ctx, struct query *q,
                       uint64_t now)
{
    char msg[300];
    const char *from = H->req_query(ctx, "from");
    const char *to = H->req_query(ctx, "to");
    const char *g = H->req_query(ctx, "group_by");
    const char *fmt = H->req_query(ctx, "format");
    usage_day_of(now, q->to);
    snprintf(q->from, sizeof q->from, "%.8s01", q->to);
    const char *names[2] = {"from", "to"};
    const char *vals[2] = {from, to};
    char *dst[2] = {q->from, q->to};
    for (int i = 0; i < 2; i++) {
        if (!vals[i])
            continue;
        if (usage_day_parse(vals[i]) < 0) {
            snprintf(msg, sizeof msg,
                     "%s must be a date as YYYY-MM-DD (UTC), not '%.40s'",
                     names[i], vals[i]);
            return bad(H, ctx, "invalid_date", names[i], msg), 1;
        }
        snprintf(dst[i], 11, "%s", vals[i]);
    }
    long df = usage_day_parse(q->from), dt = usage_day_parse(q->to);
    if (df > dt) {
        snprintf(msg, sizeof msg, "from (%s) is after to (%s)", q->from, q->to);
        return bad(H, ctx, "invalid_date_range", "from", msg), 1;
    }
    if (dt - df + 1 > 366) {
        snprintf(msg, sizeof msg,
                 "the range %s..%s spans %ld days; at most 366 per query",
                 q->from, q->to, dt - df + 1);
        return bad(H, ctx, "invalid_date_range", "to", msg), 1;
    }
    q->client = H->req_query(ctx, "client");
    q->model = H->req_query(ctx, "model");
    if (q->client && !*q->client)
        q->client = NULL;
    if (q->model && !*q->model)
        q->model = NULL;
    q->group = g ? 0 : G_DAY | G_CLIENT | G_MODEL;
    for (const char *p = g; p && *p;) {
        size_t n = strcspn(p, ",");
        if (n == 6 && !strncmp(p, "client", 6))
            q->group |= G_CLIENT;
        else if (n == 5 && !strncmp(p, "model", 5))
            q->group |= G_MODEL;
        else if (n == 3 && !strncmp(p, "day", 3))
            q->group |= G_DAY;
        else {
            snprintf(msg, sizeof msg,
                     "group_by takes client, model, day or a comma list of "
                     "them, not '%.*s'",
                     (int)(n > 40 ? 40 : n), p);
            return bad(H, ctx, "invalid_group_by", "group_by", msg), 1;
        }
        p += n + (p[n] == ',');
    }
    if (g && !q->group)
        return bad(H, ctx, "invalid_group_by", "group_by", "group_by is empty"),
               1;
    if (fmt && strcmp(fmt, "json") && strcmp(fmt, "csv"))
        return bad(H, ctx, "invalid_format", "format", "format is json or csv"),
               1;
    q->csv = fmt && !strcmp(fmt, "csv");
    return 0;
}

/* "d|day|client|model|f" -> parts; 0 when the key is not a ledger one. */
static int key_split(const char *key, char *day, char *client, char *model,
                     int *field)
{
    const char *p[4];
    const char *s = key;
    if (strncmp(s, "d|", 2))
        return 0;
    s += 2;
    for (int i = 0; i < 3; i++) {
        p[i] = s;
        s = strchr(s, '|');
        if (!s)
            return 0;
        s++;
    }
    p[3] = s;
    size_t ld = (size_t)(p[1] - p[0] - 1), lc = (size_t)(p[2] - p[1] - 1),
           lm = (size_t)(p[3] - p[2] - 1);
    if (ld != 10 || lc >= 100 || lm >= 100 || strlen(p[3]) != 1)
        return 0;
    memcpy(day, p[0], 10), day[10] = '\0';
    memcpy(client, p[1], lc), client[lc] = '\0';
    memcpy(model, p[2], lm), model[lm] = '\0';
    const char *f = strchr(usage_field_letter, *p[3]);
    if (!f || !*f)
        return 0;
    *field = (int)(f - usage_field_letter);
    return 1;
}

static void entry_add(void *arg, const sluice_state_value *v)
{
    struct query *q = arg;
    char day[11], client[100], model[100], key[256];
    int f;
    if (!v->found || !key_split(v->key, day, client, model, &f))
        return;
    if (strcmp(day, q->from) < 0 || strcmp(day, q->to) > 0 ||
        (q->client && strcmp(client, q->client)) ||
        (q->model && strcmp(model, q->model)))
        return;
    snprintf(key, sizeof key, "%s|%s|%s", day, client, model);
    struct usage_row *e = usage_table_get(&q->entries, key);
    if (!e) {
        q->oom = 1;
        return;
    }
    memcpy(e->day, day, sizeof day);
    memcpy(e->client, client, sizeof client);
    memcpy(e->model, model, sizeof model);
    e->f[f] += v->count;
    if (f == USAGE_F_COST_NANO)
        e->has_cost = 1;
}

/* Entries (one per day x client x model) summed into rows of the groups. */
static int group_rows(struct query *q, struct usage_table *rows)
{
    struct usage_row **es = usage_table_rows(&q->entries);
    if (!es)
        return -1;
    for (size_t i = 0; i < q->entries.n; i++) {
        struct usage_row *e = es[i];
        char key[256];
        snprintf(key, sizeof key, "%s|%s|%s", q->group & G_DAY ? e->day : "",
                 q->group & G_CLIENT ? e->client : "",
                 q->group & G_MODEL ? e->model : "");
        struct usage_row *r = usage_table_get(rows, key);
        if (!r) {
            free(es);
            return -1;
        }
        if (q->group & G_DAY)
            memcpy(r->day, e->day, sizeof r->day);
        if (q->group & G_CLIENT)
            memcpy(r->client, e->client, sizeof r->client);
        if (q->group & G_MODEL)
            memcpy(r->model, e->model, sizeof r->model);
        for (int f = 0; f < USAGE_NFIELDS; f++)
            r->f[f] += e->f[f];
        r->has_cost |= e->has_cost;
        if (!e->has_cost)
            r->unpriced_tokens +=
                e->f[USAGE_F_PROMPT] + e->f[USAGE_F_COMPLETION];
    }
    free(es);
    return 0;
}

static int row_cmp(const void *a, const void *b)
{
    const struct usage_row *x = *(const struct usage_row *const *)a;
    const struct usage_row *y = *(const struct usage_row *const *)b;
    int c = strcmp(x->day, y->day);
    if (!c)
        c = strcmp(x->client, y->client);
    return c ? c : strcmp(x->model, y->model);
}

/* A cost in nano-units as a decimal number, trailing zeros trimmed. */
static void cost_text(int64_t nano, char *out, size_t n)
{
    snprintf(out, n, "%lld.%09lld", (long long)(nano / 1000000000),
             (long long)(nano % 1000000000));
    size_t l = strlen(out);
    while (l > 1 && out[l - 1] == '0')
        out[--l] = '\0';
    if (out[l - 1] == '.')
        out[l - 1] = '\0';
}

static void csv_field(const sluice_host *H, sluice_buf *b, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        H->buf_printf(b, "%s,", s);
        return;
    }
    H->buf_append(b, "\"", 1);
    for (; *s; s++)
        H->buf_append(b, *s == '"' ? "\"\"" : s, *s == '"' ? 2 : 1);
    H->buf_append(b, "\",", 2);
}

static void row_json(struct usage_cfg *c, const struct query *q,
                     const struct usage_row *r, sluice_buf *b)
{
    const sluice_host *H = c->host;
    char cost[40];
    H->buf_append(b, "{", 1);
    if (q->group & G_DAY)
        H->buf_printf(b, "\"day\":\"%s\",", r->day);
    if (q->group & G_CLIENT) {
        H->buf_append(b, "\"client\":", 9);
        H->buf_json_str(b, r->client);
        H->buf_append(b, ",", 1);
    }
    if (q->group & G_MODEL) {
        H->buf_append(b, "\"model\":", 8);
        H->buf_json_str(b, r->model);
        H->buf_append(b, ",", 1);
    }
    cost_text(r->f[USAGE_F_COST_NANO], cost, sizeof cost);
    H->buf_printf(
        b,
        "\"requests\":%lld,\"prompt_tokens\":%lld,"
        "\"completion_tokens\":%lld,\"cached_tokens\":%lld,"
        "\"total_tokens\":%lld,\"cost\":%s,\"unpriced_tokens\":%lld,"
        "\"estimated_requests\":%lld}",
        (long long)r->f[USAGE_F_REQUESTS], (long long)r->f[USAGE_F_PROMPT],
        (long long)r->f[USAGE_F_COMPLETION], (long long)r->f[USAGE_F_CACHED],
        (long long)(r->f[USAGE_F_PROMPT] + r->f[USAGE_F_COMPLETION]),
        r->has_cost ? cost : "null", (long long)r->unpriced_tokens,
        (long long)r->f[USAGE_F_ESTIMATED]);
}

static void row_csv(struct usage_cfg *c, const struct query *q,
                    const struct usage_row *r, sluice_buf *b)
{
    const sluice_host *H = c->host;
    char cost[40] = "";
    if (q->group & G_DAY)
        csv_field(H, b, r->day);
    if (q->group & G_CLIENT)
        csv_field(H, b, r->client);
    if (q->group & G_MODEL)
        csv_field(H, b, r->model);
    if (r->has_cost)
        cost_text(r->f[USAGE_F_COST_NANO], cost, sizeof cost);
    H->buf_printf(
        b, "%lld,%lld,%lld,%lld,%lld,%s,%s,%lld,%lld\r\n",
        (long long)r->f[USAGE_F_REQUESTS], (long long)r->f[USAGE_F_PROMPT],
        (long long)r->f[USAGE_F_COMPLETION], (long long)r->f[USAGE_F_CACHED],
        (long long)(r->f[USAGE_F_PROMPT] + r->f[USAGE_F_COMPLETION]), cost,
        r->has_cost ? c->currency : "", (long long)r->unpriced_tokens,
        (long long)r->f[USAGE_F_ESTIMATED]);
}

static void header_csv(const sluice_host *H, const struct query *q,
                       sluice_buf *b)
{
    if (q->group & G_DAY)
        H->buf_printf(b, "day,");
    if (q->group & G_CLIENT)
        H->buf_printf(b, "client,");
    if (q->group & G_MODEL)
        H->buf_printf(b, "model,");
    H->buf_printf(b, "requests,prompt_tokens,completion_tokens,cached_tokens,"
                     "total_tokens,cost,currency,unpriced_tokens,"
                     "estimated_requests\r\n");
}

static void render(struct usage_cfg *c, struct query *q,
                   struct usage_row **rows, size_t n, sluice_buf *b)
{
    const sluice_host *H = c->host;
    if (q->csv) {
        header_csv(c->host, q, b);
        for (size_t i = 0; i < n; i++)
            row_csv(c, q, rows[i], b);
        return;
    }
    static const char *const dims[] = {"day", "client", "model"};
    H->buf_printf(b,
                  "{\"object\":\"usage\",\"from\":\"%s\",\"to\":\"%s\","
                  "\"currency\":",
                  q->from, q->to);
    H->buf_json_str(b, c->currency);
    H->buf_printf(b, ",\"group_by\":[");
    for (int i = 0, k = 0; i < 3; i++)
        if (q->group & (1 << i))
            H->buf_printf(b, "%s\"%s\"", k++ ? "," : "", dims[i]);
    H->buf_printf(b, "],\"data\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            H->buf_append(b, ",", 1);
        row_json(c, q, rows[i], b);
    }
    H->buf_append(b, "]}", 2);
}

int usage_report_answer(void *instance, sluice_ctx *ctx, sluice_buf *out,
                        const char **ctype)
{
    struct usage_cfg *c = instance;
    const sluice_host *H = c->host;
    struct query q = {0};
    struct usage_table rows = {0};
    int rc = -1;
    if (!only_get(H, ctx))
        return 0;
    if (query_parse(H, ctx, &q, H->wall_ms()))
        return 0;
    H->state_list(c->self, "d|", entry_add, &q);
    if (q.oom || group_rows(&q, &rows) != 0)
        goto done;
    struct usage_row **v = usage_table_rows(&rows);
    if (!v)
        goto done;
    qsort(v, rows.n, sizeof(*v), row_cmp);
    render(c, &q, v, rows.n, out);
    free(v);
    if (q.csv)
        *ctype = "text/csv; charset=utf-8";
    rc = 200;
done:
    usage_table_free(&q.entries);
    usage_table_free(&rows);
    return rc;
}

/* ---- /admin/usage/clients ------------------------------------------------ */

struct month_acc {
    struct usage_cfg *c;
    char month[8], day[11];
    struct usage_table clients; /* day = "" month row, f = month totals */
    struct usage_table today;
    int oom;
};

static void month_add(void *arg, const sluice_state_value *v)
{
    struct month_acc *a = arg;
    char day[11], client[100], model[100];
    int f;
    if (!v->found || !key_split(v->key, day, client, model, &f) ||
        strncmp(day, a->month, 7))
        return;
    struct usage_row *m = usage_table_get(&a->clients, client);
    struct usage_row *t = usage_table_get(&a->today, client);
    if (!m || !t) {
        a->oom = 1;
        return;
    }
    memcpy(m->client, client, sizeof client);
    m->f[f] += v->count;
    m->has_cost |= f == USAGE_F_COST_NANO;
    if (!strcmp(day, a->day)) {
        t->f[f] += v->count;
        t->has_cost |= f == USAGE_F_COST_NANO;
    }
}

static void period_json(const sluice_host *H, sluice_buf *b, const char *name,
                        const struct usage_row *r)
{
    char cost[40];
    int64_t req = r ? r->f[USAGE_F_REQUESTS] : 0;
    int64_t tok = r ? r->f[USAGE_F_PROMPT] + r->f[USAGE_F_COMPLETION] : 0;
    if (r && r->has_cost)
        cost_text(r->f[USAGE_F_COST_NANO], cost, sizeof cost);
    H->buf_printf(b, "\"%s\":{\"requests\":%lld,\"tokens\":%lld,\"cost\":%s}",
                  name, (long long)req, (long long)tok,
                  r && r->has_cost ? cost : "null");
}

static void budget_num(const sluice_host *H, sluice_buf *b, const char *name,
                       int64_t v, int last)
{
    if (v < 0)
        H->buf_printf(b, "\"%s\":null%s", name, last ? "" : ",");
    else
        H->buf_printf(b, "\"%s\":%lld%s", name, (long long)v, last ? "" : ",");
}

int usage_clients_answer(void *instance, sluice_ctx *ctx, sluice_buf *out,
                         const char **ctype)
{
    struct usage_cfg *c = instance;
    const sluice_host *H = c->host;
    struct month_acc a = {.c = c};
    int rc = -1;
    (void)ctype;
    if (!only_get(H, ctx))
        return 0;
    uint64_t now = H->wall_ms();
    usage_day_of(now, a.day);
    usage_month_of(now, a.month);
    /* clients with a budget appear even before their first request */
    size_t nb = 0;
    struct usage_budget *bs = usage_budgets_all(c, &nb);
    for (size_t i = 0; i < nb; i++) {
        struct usage_row *m = usage_table_get(&a.clients, bs[i].client);
        if (!m) {
            free(bs);
            goto done;
        }
        snprintf(m->client, sizeof m->client, "%s", bs[i].client);
    }
    free(bs);
    H->state_list(c->self, "d|", month_add, &a);
    struct usage_row **v = a.oom ? NULL : usage_table_rows(&a.clients);
    if (!v)
        goto done;
    qsort(v, a.clients.n, sizeof(*v), row_cmp);
    H->buf_printf(out, "{\"day\":\"%s\",\"month\":\"%s\",\"currency\":", a.day,
                  a.month);
    H->buf_json_str(out, c->currency);
    H->buf_printf(out, ",\"clients\":[");
    for (size_t i = 0; i < a.clients.n; i++) {
        struct usage_budget known;
        const struct usage_budget *b =
            usage_budget_known(c, v[i]->client, &known) ? &known : NULL;
        struct usage_row *t = usage_table_get(&a.today, v[i]->client);
        H->buf_printf(out, "%s{\"client\":", i ? "," : "");
        H->buf_json_str(out, v[i]->client);
        H->buf_append(out, ",", 1);
        period_json(H, out, "today", t);
        H->buf_append(out, ",", 1);
        period_json(H, out, "month", v[i]);
        H->buf_printf(out, ",\"budgets\":{");
        budget_num(H, out, "tokens_day", b ? b->tokens_day : -1, 0);
        budget_num(H, out, "tokens_month", b ? b->tokens_month : -1, 0);
        if (b && b->cost_month >= 0)
            H->buf_printf(out, "\"cost_month\":%.6f}}", b->cost_month);
        else
            H->buf_printf(out, "\"cost_month\":null}}");
    }
    H->buf_append(out, "]}", 2);
    free(v);
    rc = 200;
done:
    usage_table_free(&a.clients);
    usage_table_free(&a.today);
    return rc;
}
