#!/usr/bin/env bash
# bench/profile.sh - instructions per request of sluice, under callgrind.
# Wall time swings on a shared machine; instruction counts do not, so this
# is how each optimisation in bench/NOTES.md was measured.
#
#   bench/profile.sh [--stream] [--seconds S] [--keep DIR]
#
# Starts bench/fast_upstream and sluice (one worker, bench/run.sh's
# production-shaped pipeline: auth, context, keyring, retry, sse, the access
# log at INFO into a file) under valgrind --tool=callgrind, warms up, zeroes the
# counters, drives wrk (bench/chat.lua, 4 connections) for S seconds (10),
# dumps, and prints instructions per request and the top functions
# (inclusive). Needs valgrind, wrk, a build in BENCH_BUILD (build-bench).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BENCH_BUILD:-$ROOT/build-bench}
SECONDS_LOAD=10
STREAM=0
KEEP=""
while [ $# -gt 0 ]; do
    case "$1" in
    --stream) STREAM=1 ;;
    --seconds) SECONDS_LOAD=$2; shift ;;
    --keep) KEEP=$2; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "profile.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
command -v valgrind >/dev/null && command -v callgrind_control >/dev/null ||
    { echo "profile.sh: valgrind is needed (apt-get install valgrind)" >&2; exit 1; }

TMP=$(mktemp -d /tmp/sluice-profile.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 1
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    if [ -n "$KEEP" ]; then mkdir -p "$KEEP"; cp "$TMP"/cg.out* "$KEEP"/ 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
start_fast_upstream
write_keys
PORT=$(free_port)
sluice_config "$PORT" 1 "http://127.0.0.1:$FAST_PORT/v1" "$TMP/access.log" \
    >"$TMP/sluice.yaml"

valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" \
    "$BUILD/sluice" -c "$TMP/sluice.yaml" >"$TMP/sluice.log" 2>&1 &
SPID=$!
PIDS+=($SPID)
for _ in $(seq 300); do
    (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
    sleep 0.1
done
export BENCH_AUTH=$AUTH_KEY
URL="http://127.0.0.1:$PORT/v1/chat/completions"
BENCH_STREAM=$STREAM wrk -t1 -c4 -d3s -s "$ROOT/bench/chat.lua" "$URL" >/dev/null 2>&1
callgrind_control -z "$SPID" >/dev/null
OUT=$(BENCH_STREAM=$STREAM wrk -t1 -c4 -d"${SECONDS_LOAD}s" -s "$ROOT/bench/chat.lua" "$URL" | grep '^BENCH')
callgrind_control -d "$SPID" >/dev/null
sleep 1
REQ=$(echo "$OUT" | sed -n 's/.*"requests":\([0-9]*\).*/\1/p')
F=$(ls -t "$TMP"/cg.out.* | head -1)
TOTAL=$(callgrind_annotate "$F" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
echo "requests: $REQ  instructions: $TOTAL  per request: $((TOTAL / REQ))"
callgrind_annotate --inclusive=yes "$F" 2>/dev/null |
    awk -v r="$REQ" '/^ *[0-9,]+ \(/ { n = $1; gsub(",", "", n); $1 = ""; $2 = "";
        printf "%9d/req %s\n", n / r, $0; if (++k >= 40) exit }'
