/*
 * cidr.h - IPv4 and IPv6 address ranges ("10.0.0.0/8", "::1/128", a bare
 * address = a single host) and matching an address written as text against
 * a list of them. IPv4-mapped IPv6 addresses (::ffff:10.1.2.3) match IPv4
 * ranges, since a dual-stack listener reports IPv4 peers that way.
 */
#ifndef SLUICE_AUTH_CIDR_H
#define SLUICE_AUTH_CIDR_H

#include <stddef.h>
#include <stdint.h>

struct cidr {
    uint8_t addr[16]; /* IPv4 in the first 4 bytes */
    int v6;
    int bits; /* prefix length */
};

/* Parse "addr[/bits]"; 0 or -1 (bad address, bits out of range, host bits
 * set are allowed and ignored). */
int cidr_parse(const char *text, struct cidr *out);
/* Parse an address (no prefix) into *out as a /32 or /128; mapped IPv6
 * addresses become IPv4. 0 or -1. */
int cidr_addr_parse(const char *text, struct cidr *out);
/* 1 when addr (from cidr_addr_parse) lies in range. */
int cidr_contains(const struct cidr *range, const struct cidr *addr);
/* 1 when addr lies in any of list[0..n). */
int cidr_list_contains(const struct cidr *list, size_t n,
                       const struct cidr *addr);

#endif
