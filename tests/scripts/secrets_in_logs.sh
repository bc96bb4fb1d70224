#!/usr/bin/env bash
# secrets_in_logs.sh - no key or token the tests used appears whole in any
# log the tests produced.
#
# The integration harness copies each test's temp dir (logs, keys files,
# clients files, admin tokens) into $SLUICE_TEST_LOG_DIR before removing it.
# CTest runs this script last (FIXTURES_CLEANUP of the integration tests).
# The secrets are gathered from (1) the keys/clients/token files the tests
# wrote and (2) the key-like literals in the test sources (wrong keys the
# tests sent, keys only ever sent in headers). Exit 77 (skipped) when no
# logs were collected, i.e. when run without the integration tests.
set -u
dir="${SLUICE_TEST_LOG_DIR:-}"
src="${SLUICE_SRC:-.}"
if [ -z "$dir" ] || [ ! -d "$dir" ] || \
   [ -z "$(find "$dir" -name '*.log' -print -quit 2>/dev/null)" ]; then
    echo "secrets_in_logs: no collected logs in '${dir}': skipped"
    exit 77
fi
secrets=$(mktemp)
trap 'rm -f "$secrets"' EXIT

# (1) files the tests wrote: first field of each non-comment line
find "$dir" -type f \( -name '*keys*.txt' -o -name '*clients*.txt' \
     -o -name '*.token' \) -print0 |
    xargs -0 -r awk '!/^[ \t]*#/ && NF { print $1 }' >> "$secrets"
# (2) key-like literals in the test sources
grep -rhoE '(sk-[A-Za-z0-9_-]{6,}|admin-token-[A-Za-z0-9_-]{4,})' \
    "$src/tests/integration" "$src/tests/plugins" "$src/tests/scripts" \
    2>/dev/null | grep -v 'sk-…' >> "$secrets"
sort -u -o "$secrets" "$secrets"
# at least 8 characters: shorter strings are not secrets worth the name
awk 'length($0) >= 8' "$secrets" > "$secrets.f" && mv "$secrets.f" "$secrets"

nsecrets=$(wc -l < "$secrets")
logs=$(find "$dir" -type f -name '*.log')
nlogs=$(echo "$logs" | wc -l)
echo "secrets_in_logs: $nsecrets secrets, $nlogs log files under $dir"
if [ "$nsecrets" -lt 3 ]; then
    echo "secrets_in_logs: FAIL: found fewer than 3 secrets: the collection" \
         "is broken"
    exit 1
fi
found=$(echo "$logs" | tr '\n' '\0' | xargs -0 grep -lFf "$secrets" || true)
if [ -n "$found" ]; then
    echo "secrets_in_logs: FAIL: a whole secret appears in:"
    for f in $found; do
        echo "  $f:"
        grep -nFf "$secrets" "$f" | head -5 | cut -c1-300
    done
    exit 1
fi
echo "secrets_in_logs: OK: none of them appears whole in any log"
exit 0
