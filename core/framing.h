/*
 * framing.h - the request-framing checks libmicrohttpd 0.9.75 does not make
 * (RFC 9112 sections 5, 6.1 and 6.3), so that a front proxy and sluice can
 * never disagree on where a request ends (request smuggling):
 *
 *   Content-Length with Transfer-Encoding, Content-Length twice or not a
 *   plain number, whitespace in a field name ("Transfer-Encoding :"),
 *   bare-LF line ends, obsolete line folding        -> 400, then close
 *   a transfer coding other than chunked            -> 501, then close
 *
 * Run on the first call of the access handler, before any body is read.
 * Not here: limits on sizes (http.c, guard.c).
 */
#ifndef SLUICE_FRAMING_H
#define SLUICE_FRAMING_H

#include <microhttpd.h>
#include <stddef.h>

/* 0 when the request's framing is sound; else the HTTP status to answer
 * (400 or 501) with a client-facing reason in msg and an error code in
 * *code (a static string). `version` is the access handler's argument. */
int framing_check(struct MHD_Connection *conn, const char *version,
                  const char **code, char *msg, size_t msglen);

#endif
