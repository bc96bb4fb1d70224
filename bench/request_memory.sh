#!/usr/bin/env bash
# bench/request_memory.sh - sluice's resident memory around a spike of
# concurrent requests (issue 17: the per-request arena). Reports VmRSS
# before, the peak during (sampled every 50 ms) and 2 s after a wrk spike
# of CONNS connections for S seconds, plain and then streamed, and the
# requests served. A report, not a timed test.
#
#   bench/request_memory.sh [CONNS] [SECONDS]      (defaults 256, 5)
#
# Starts bench/fast_upstream and sluice (2 workers, bench/lib.sh's
# production-shaped pipeline) from BENCH_BUILD (default build-bench/),
# stops them by PID at the end. Needs wrk and curl.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BENCH_BUILD:-$ROOT/build-bench}
CONNS=${1:-256}
SECS=${2:-5}
for b in sluice fast_upstream; do
    [ -x "$BUILD/$b" ] || { echo "request_memory.sh: $BUILD/$b missing" >&2; exit 1; }
done
TMP=$(mktemp -d /tmp/sluice-reqmem.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
start_fast_upstream
write_keys
PORT=$(free_port)
sluice_config "$PORT" 2 "http://127.0.0.1:$FAST_PORT/v1" "$TMP/access.log" \
    >"$TMP/sluice.yaml"
"$BUILD/sluice" -c "$TMP/sluice.yaml" >"$TMP/sluice.log" 2>&1 &
SPID=$!
PIDS+=($SPID)
wait_port "$PORT"
export BENCH_AUTH=$AUTH_KEY
URL="http://127.0.0.1:$PORT/v1/chat/completions"
rss() { awk '$1 == "VmRSS:" {print $2}' "/proc/$SPID/status"; }

# warm up: every worker has run requests, the heap has its working shape
BENCH_STREAM=0 timeout 20 wrk -t1 -c8 -d2s -s "$ROOT/bench/chat.lua" "$URL" >/dev/null 2>&1
for stream in 0 1; do
    before=$(rss)
    peak=$before
    BENCH_STREAM=$stream timeout $((SECS + 20)) wrk -t2 -c"$CONNS" -d"${SECS}s" \
        -s "$ROOT/bench/chat.lua" "$URL" >"$TMP/wrk.out" 2>&1 &
    WPID=$!
    while kill -0 "$WPID" 2>/dev/null; do
        r=$(rss)
        [ "$r" -gt "$peak" ] && peak=$r
        sleep 0.05
    done
    wait "$WPID" || true
    sleep 2
    after=$(rss)
    req=$(sed -n 's/.*"requests":\([0-9]*\).*/\1/p' "$TMP/wrk.out")
    err=$(sed -n 's/.*"errors":\([0-9]*\),"non2xx":\([0-9]*\).*/\1 errors, \2 non-2xx/p' "$TMP/wrk.out")
    printf '%s: %s connections, %s requests (%s): VmRSS before %s kB, peak %s kB, 2 s after %s kB\n' \
        "$([ $stream = 1 ] && echo stream || echo plain)" "$CONNS" "${req:-?}" \
        "${err:-?}" "$before" "$peak" "$after"
done
