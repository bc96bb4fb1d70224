/* tok_text.c - text preparation before splitting: UTF-8 validation and
 * repair (each maximal invalid subpart becomes U+FFFD, as Python's
 * decode(errors="replace") and the WHATWG decoder do) and Unicode NFC
 * through libutf8proc, skipped when a quick scan proves the text is NFC. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_priv.h"

void tok_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Length of the well-formed sequence at s (1..4), or 0 if it is not; *bad
 * gets the length of the maximal invalid subpart (>= 1) in that case. */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *bad)
{
    unsigned c = s[0];
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        *bad = 1;
        return 0;
    }
    size_t i = 1;
    for (; i < need; i++) {
        if (i >= n)
            break;
        unsigned b = s[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF))
            break;
    }
    if (i == need)
        return need;
    *bad = i;
    return 0;
}

size_t utf8_valid_prefix(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, bad;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = utf8_seq(u + i, n - i, &bad);
        if (!k)
            return i;
        i += k;
    }
    return n;
}

int utf8_repair(const char *s, size_t n, struct tbuf *out)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, bad;
    out->len = 0;
    if (tbuf_reserve(out, n + 16) < 0)
        return -1;
    while (i < n) {
        size_t start = i;
        while (i < n && (u[i] < 0x80 || utf8_seq(u + i, n - i, &bad)))
            i += u[i] < 0x80 ? 1 : utf8_seq(u + i, n - i, &bad);
        if (i > start && tbuf_add(out, s + start, i - start) < 0)
            return -1;
        if (i < n) {
            utf8_seq(u + i, n - i, &bad);
            if (tbuf_add(out, "\xEF\xBF\xBD", 3) < 0)
                return -1;
            i += bad;
        }
    }
    return 0;
}

/* Could NFC change the text around this code point?  Yes for combining
 * marks, second halves of compositions (including the Hangul V/T jamo),
 * and characters whose own NFC differs (singletons, exclusions).  A text
 * with none of these is NFC already.  Results for the first planes are
 * memoized (0 unknown, 1 no, 2 yes); racing writers store the same value. */
#define NFC_MEMO 0x30000
static _Atomic unsigned char nfc_memo[NFC_MEMO];

static int nfc_suspect_compute(utf8proc_int32_t cp)
{
    if (cp >= 0x1100 && cp <= 0x11FF)
        return 1;
    const utf8proc_property_t *p = utf8proc_get_property(cp);
    if (p->combining_class != 0)
        return 1;
    if (p->comb_index != UINT16_MAX && p->comb_index >= 0x8000)
        return 1;
    if (p->decomp_seqindex == UINT16_MAX || p->decomp_type != 0)
        return 0;
    if (p->comp_exclusion)
        return 1;
    utf8proc_uint8_t in[4], *out = NULL;
    utf8proc_ssize_t n = utf8proc_encode_char(cp, in);
    utf8proc_ssize_t k =
        utf8proc_map(in, n, &out, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    int differs = k != n || (out && memcmp(out, in, (size_t)n) != 0);
    free(out);
    return differs;
}

static int nfc_suspect(utf8proc_int32_t cp)
{
    if (cp < 0x300 || (cp >= 0x4E00 && cp <= 0x9FFF) ||
        (cp >= 0xAC00 && cp <= 0xD7A3))
        return 0;
    if (cp >= NFC_MEMO)
        return nfc_suspect_compute(cp);
    unsigned char m = atomic_load_explicit(&nfc_memo[cp], memory_order_relaxed);
    if (!m) {
        m = nfc_suspect_compute(cp) ? 2 : 1;
        atomic_store_explicit(&nfc_memo[cp], m, memory_order_relaxed);
    }
    return m == 2;
}

static int nfc_needed(const char *s, size_t n)
{
    const utf8proc_uint8_t *u = (const utf8proc_uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        utf8proc_int32_t cp;
        utf8proc_ssize_t k =
            utf8proc_iterate(u + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0)
            return 1;
        if (nfc_suspect(cp))
            return 1;
        i += (size_t)k;
    }
    return 0;
}

int text_nfc(const char *s, size_t n, struct tbuf *out, int *same)
{
    *same = 1;
    if (!nfc_needed(s, n))
        return 0;
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t k =
        utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst,
                     UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (k < 0)
        return k == UTF8PROC_ERROR_NOMEM ? -1 : 0; /* keep the text */
    out->len = 0;
    int rc = tbuf_add(out, dst, (size_t)k);
    free(dst);
    if (rc == 0)
        *same = 0;
    return rc;
}
