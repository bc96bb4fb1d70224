/*
 * framing.c - see framing.h.
 *
 * Line ends and folding: libmicrohttpd 0.9.75 accepts a bare LF as a line
 * end and mangles an obs-fold line into the field name, and leaves no flag
 * saying it did. It parses the head in place in its read buffer, turning
 * each line end into NULs ("\r\n" into two, a bare "\n" into one) and
 * handing out pointers into it; so between the end of one field value and
 * the start of the next field name there are exactly the line end's bytes,
 * and anything else there (a bare LF's missing NUL, a folded line's text)
 * is a malformed head. The same holds from the request line's version to
 * the first field. The last field's line end cannot be told (the blank line
 * that follows is NULed too). Later libmicrohttpd releases reject these
 * themselves (MHD_OPTION_CLIENT_DISCIPLINE_LVL), so the layout check is
 * compiled for 0.9.75 and older only.
 */
#include "framing.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define LAYOUT_CHECK (MHD_VERSION < 0x00097600)

struct scan {
    int n_cl, n_te;
    const char *cl, *te;
    const char *bad;    /* first fault found (static text) */
    const char *expect; /* LAYOUT_CHECK: where the next name must start */
};

static int is_digits(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/* The bytes from `from` to `to` are one "\r\n" turned into two NULs,
 * after optional trailing whitespace of the value. */
static int crlf_between(const char *from, const char *to)
{
    if (to < from + 2 || to > from + 256)
        return 0;
    for (const char *p = from; p < to - 2; p++)
        if (*p != ' ' && *p != '\t' && *p != '\0')
            return 0;
    return to[-1] == '\0' && to[-2] == '\0';
}

static enum MHD_Result scan_field(void *cls, enum MHD_ValueKind kind,
                                  const char *key, size_t klen,
                                  const char *value, size_t vlen)
{
    struct scan *s = cls;
    (void)kind;
    if (s->bad)
        return MHD_NO;
    if (!klen || strpbrk(key, " \t"))
        s->bad = "whitespace in a header field name";
#if LAYOUT_CHECK
    else if (s->expect && !crlf_between(s->expect, key))
        s->bad = "a header line not ended by CRLF, or folded (obs-fold)";
    s->expect = value ? value + vlen : NULL;
#endif
    if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
        s->n_cl++;
        s->cl = value ? value : "";
    } else if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
        s->n_te++;
        s->te = value ? value : "";
    }
    return s->bad ? MHD_NO : MHD_YES;
}

static int fail(const char **code, const char *c, char *msg, size_t msglen,
                const char *why, int status)
{
    *code = c;
    snprintf(msg, msglen, "the request's framing is ambiguous: %s", why);
    return status;
}

int framing_check(struct MHD_Connection *conn, const char *version,
                  const char **code, char *msg, size_t msglen)
{
    struct scan s;
    memset(&s, 0, sizeof s);
#if LAYOUT_CHECK
    s.expect = version ? version + strlen(version) : NULL;
#else
    (void)version;
#endif
    MHD_get_connection_values_n(conn, MHD_HEADER_KIND, scan_field, &s);
    if (s.bad)
        return fail(code, "bad_request_framing", msg, msglen, s.bad, 400);
    if (s.n_cl && s.n_te)
        return fail(code, "bad_request_framing", msg, msglen,
                    "both Content-Length and Transfer-Encoding", 400);
    if (s.n_cl > 1)
        return fail(code, "bad_request_framing", msg, msglen,
                    "Content-Length given more than once", 400);
    if (s.n_cl && !is_digits(s.cl))
        return fail(code, "bad_request_framing", msg, msglen,
                    "Content-Length is not a number", 400);
    if (s.n_te > 1)
        return fail(code, "bad_request_framing", msg, msglen,
                    "Transfer-Encoding given more than once", 400);
    if (s.n_te && strcasecmp(s.te, "chunked") != 0) {
        *code = "unsupported_transfer_coding";
        snprintf(msg, msglen,
                 "Transfer-Encoding \"%.40s\" is not supported: only "
                 "\"chunked\"",
                 s.te);
        return 501;
    }
    return 0;
}
