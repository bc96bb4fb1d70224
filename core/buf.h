/*
 * buf.h - a growable byte buffer (struct sluice_buf), the one the SDK hands
 * to stages for admin output and status, and the core uses for bodies.
 * Owner: whoever called buf_init / buf_new frees with buf_release / buf_free.
 */
#ifndef SLUICE_BUF_H
#define SLUICE_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct sluice_buf {
    char *data; /* always NUL-terminated when len > 0 or cap > 0 */
    size_t len;
    size_t cap;
    int oom; /* set once an allocation failed; later appends are no-ops */
};
typedef struct sluice_buf buf_t;

void buf_init(buf_t *b);
void buf_release(buf_t *b); /* frees data, leaves b empty and reusable */
void buf_reset(buf_t *b);   /* len = 0, keeps capacity */
int buf_reserve(buf_t *b, size_t extra);
int buf_append(buf_t *b, const char *data, size_t len);
int buf_puts(buf_t *b, const char *s);
/* Append a string literal (its length known at compile time, no strlen). */
#define buf_lit(b, lit) buf_append((b), "" lit, sizeof(lit) - 1)
int buf_printf(buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int buf_vprintf(buf_t *b, const char *fmt, va_list ap);
/* Append v in decimal (no printf: for what runs per request). */
int buf_append_ull(buf_t *b, unsigned long long v);
/* v as decimal text, as printf's %lld writes it, at the end of out;
 * returns where it starts (NUL-terminated). */
#define BUF_INT_TEXT 24
const char *buf_int_text(char out[BUF_INT_TEXT], long long v);
/* Append s as a JSON string literal (quotes included, escaped). */
int buf_json_str(buf_t *b, const char *s);
/* Detach the data (caller frees with free()); b becomes empty. */
char *buf_steal(buf_t *b, size_t *len);

#endif
