/*
 * usage_date.c - UTC calendar arithmetic for the ledger: the day and month
 * a request is charged to, strict parsing of the report's dates, and when
 * a budget window resets. No locale, no local time zone.
 */
#include "usage.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static void tm_of(uint64_t wall_ms, struct tm *tm)
{
    time_t t = (time_t)(wall_ms / 1000);
    gmtime_r(&t, tm);
}

void usage_day_of(uint64_t wall_ms, char day[11])
{
    struct tm tm;
    tm_of(wall_ms, &tm);
    snprintf(day, 11, "%04u-%02u-%02u", (unsigned)(tm.tm_year + 1900) % 10000,
             (unsigned)(tm.tm_mon + 1) % 100, (unsigned)tm.tm_mday % 100);
}

void usage_month_of(uint64_t wall_ms, char month[8])
{
    struct tm tm;
    tm_of(wall_ms, &tm);
    snprintf(month, 8, "%04u-%02u", (unsigned)(tm.tm_year + 1900) % 10000,
             (unsigned)(tm.tm_mon + 1) % 100);
}

long usage_day_parse(const char *s)
{
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return -1;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return -1;
    struct tm tm = {0};
    tm.tm_year = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 +
                 (s[3] - '0') - 1900;
    tm.tm_mon = (s[5] - '0') * 10 + (s[6] - '0') - 1;
    tm.tm_mday = (s[8] - '0') * 10 + (s[9] - '0');
    int mon = tm.tm_mon, mday = tm.tm_mday;
    if (tm.tm_year < 70 || mon < 0 || mon > 11 || mday < 1 || mday > 31)
        return -1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || tm.tm_mon != mon || tm.tm_mday != mday)
        return -1; /* 2026-02-30 normalised to March */
    return (long)(t / 86400);
}

int64_t usage_next_day_s(uint64_t wall_ms)
{
    return ((int64_t)(wall_ms / 1000) / 86400 + 1) * 86400;
}

int64_t usage_next_month_s(uint64_t wall_ms)
{
    struct tm tm;
    tm_of(wall_ms, &tm);
    struct tm n = {0};
    n.tm_year = tm.tm_year + (tm.tm_mon == 11);
    n.tm_mon = (tm.tm_mon + 1) % 12;
    n.tm_mday = 1;
    return (int64_t)timegm(&n);
}

void usage_rfc3339(int64_t s, char out[21])
{
    struct tm tm;
    time_t t = (time_t)s;
    gmtime_r(&t, &tm);
    snprintf(out, 21, "%04u-%02u-%02uT%02u:%02u:%02uZ",
             (unsigned)(tm.tm_year + 1900) % 10000,
             (unsigned)(tm.tm_mon + 1) % 100, (unsigned)tm.tm_mday % 100,
             (unsigned)tm.tm_hour % 100, (unsigned)tm.tm_min % 100,
             (unsigned)tm.tm_sec % 100);
}
