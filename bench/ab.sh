#!/usr/bin/env bash
# bench/ab.sh - two builds of sluice side by side: CPU per request and
# requests/s of each, runs interleaved (A, B, A, B, ...) so both see the
# same machine load. For "what did this change buy" on a shared machine.
#
#   bench/ab.sh BUILD_A BUILD_B [ROUNDS (5)] [SECONDS (10)] [THREADS (1)]
#
# Each build dir needs sluice, fast_upstream and plugins/ (auth, context,
# keyring, retry, sse): bench/run.sh's production pipeline, plain requests,
# 64 connections, after a 1 s warm-up. Prints one line per run and the
# medians.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 2 ] || { sed -n '2,12p' "$0"; exit 2; }
A=$(cd "$1" && pwd)
B=$(cd "$2" && pwd)
ROUNDS=${3:-5}
SECS=${4:-10}
THREADS=${5:-1}
TMP=$(mktemp -d /tmp/sluice-ab.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.5
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
BUILD=$B
start_fast_upstream
write_keys

# start_one NAME BUILD: sets PORT_<NAME>, PID_<NAME>
start_one() {
    local port pid
    for _ in 1 2 3; do
        port=$(free_port)
        BUILD=$2 sluice_config "$port" "$THREADS" "http://127.0.0.1:$FAST_PORT/v1" \
            "$TMP/$1.access.log" >"$TMP/$1.yaml"
        "$2/sluice" -c "$TMP/$1.yaml" >>"$TMP/$1.err" 2>&1 &
        pid=$!
        PIDS+=($pid)
        wait_port "$port" && kill -0 "$pid" 2>/dev/null && break
    done
    printf -v "PORT_$1" '%s' "$port"
    printf -v "PID_$1" '%s' "$pid"
}
start_one a "$A"
start_one b "$B"
export BENCH_AUTH=$AUTH_KEY
: >"$TMP/rows"
for r in $(seq "$ROUNDS"); do
    for n in a b; do
        pv=PORT_$n; iv=PID_$n
        url="http://127.0.0.1:${!pv}/v1/chat/completions"
        wrk -t1 -c64 -d1s -s "$ROOT/bench/chat.lua" "$url" >/dev/null 2>&1 || true
        c0=$(cpu_ticks "${!iv}")
        out=$(wrk -t1 -c64 -d"${SECS}s" -s "$ROOT/bench/chat.lua" "$url" | grep '^BENCH')
        c1=$(cpu_ticks "${!iv}")
        req=$(echo "$out" | sed -n 's/.*"requests":\([0-9]*\).*/\1/p')
        dur=$(echo "$out" | sed -n 's/.*"duration_us":\([0-9]*\).*/\1/p')
        line=$(awk -v n="$n" -v r="$req" -v d="$dur" -v t=$((c1 - c0)) -v hz="$HZ" \
            'BEGIN{printf "%s %.0f %.1f", n, r / (d / 1e6), t / hz / r * 1e6}')
        echo "$line" >>"$TMP/rows"
        echo "round $r: $line (req/s, CPU us/req)"
    done
done
awk '{rps[$1, ++n[$1]] = $2; cpu[$1, n[$1]] = $3}
function med(arr, k, c,   i, j, t, v) {
    for (i = 1; i <= c; i++) v[i] = arr[k, i]
    for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return v[int((c + 1) / 2)]
}
END {
    for (k in n) printf "median %s (%s): %.0f req/s, %.1f CPU us/req over %d runs\n",
        k, k == "a" ? "A" : "B", med(rps, k, n[k]), med(cpu, k, n[k]), n[k]
}' "$TMP/rows" | sort
echo "A = $A"
echo "B = $B"
