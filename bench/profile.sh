#!/usr/bin/env bash
# bench/profile.sh - instructions per request of sluice, under callgrind.
# Wall time swings on a shared machine; instruction counts do not, so this
# is how each optimisation in bench/NOTES.md was measured.
#
#   bench/profile.sh [--stream] [--seconds S] [--keep DIR]
#
# Starts the mock upstream and sluice (one worker, the same pipeline as
# bench/run.sh) under valgrind --tool=callgrind, warms up, zeroes the
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

"$BUILD/mock_upstream" --port 0 --port-file "$TMP/mock.port" --quiet \
    --max-records 0 --chunks 20 --delay-ms 0 >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$TMP/mock.port" ] && break; sleep 0.05; done
MOCK_PORT=$(cat "$TMP/mock.port")
PORT=$((20000 + RANDOM % 40000))
for i in 1 2 3 4 5 6 7 8; do echo "sk-bench-fake-key-000000000000000$i"; done >"$TMP/keys.txt"
chmod 600 "$TMP/keys.txt"
{
    cat <<EOF
server: { host: 127.0.0.1, port: $PORT, threads: 1 }
upstream: { base_url: "http://127.0.0.1:$MOCK_PORT/v1", timeout_s: 60 }
log: { level: WARNING, format: json }
plugins_dir: "$BUILD/plugins"
pipeline:
EOF
    [ -f "$BUILD/plugins/context.so" ] &&
        printf '  - plugin: context\n    config: { default_model: openai-gpt-oss-120b, on_unknown_model: pass }\n'

    printf '  - plugin: keyring\n    config: { keys_file: "%s" }\n' "$TMP/keys.txt"
    [ -f "$BUILD/plugins/retry.so" ] && echo "  - plugin: retry"
    [ -f "$BUILD/plugins/sse.so" ] && echo "  - plugin: sse"
} >"$TMP/sluice.yaml"

valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" \
    "$BUILD/sluice" -c "$TMP/sluice.yaml" >"$TMP/sluice.log" 2>&1 &
SPID=$!
PIDS+=($SPID)
for _ in $(seq 300); do
    (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
    sleep 0.1
done
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
