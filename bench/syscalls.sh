#!/usr/bin/env bash
# bench/syscalls.sh - system calls per request of sluice and of nginx, with
# strace -c -f attached to the running proxy while wrk drives it (16
# connections, bench/chat.lua) for S seconds (5). Both in front of
# bench/fast_upstream; sluice (1 thread) on bench/run.sh's production
# pipeline, nginx (1 worker) as in bench/run.sh. Prints each table and the
# calls per request. strace slows the traced process: read the counts, not
# the throughput.
#
#   bench/syscalls.sh [--seconds S]        (BENCH_BUILD: build-bench)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BENCH_BUILD:-$ROOT/build-bench}
SECS=5
[ "${1:-}" = --seconds ] && SECS=$2
command -v strace >/dev/null || { echo "syscalls.sh: strace is needed (scripts/deps.sh --bench)" >&2; exit 1; }
TMP=$(mktemp -d /tmp/sluice-syscalls.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.5
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
start_fast_upstream
write_keys

PORT=$(free_port)
sluice_config "$PORT" 1 "http://127.0.0.1:$FAST_PORT/v1" "$TMP/access.log" >"$TMP/s.yaml"
"$BUILD/sluice" -c "$TMP/s.yaml" >>"$TMP/s.err" 2>&1 &
SPID=$!
PIDS+=($SPID)
wait_port "$PORT" || { cat "$TMP/s.err" >&2; exit 1; }

NPORT=$(free_port)
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    keepalive_requests 100000;
    upstream up { server 127.0.0.1:$FAST_PORT; keepalive 64; keepalive_requests 100000; }
    server {
        listen 127.0.0.1:$NPORT;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }
    }
}
NGX
nginx -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" >"$TMP/nginx/out.log" 2>&1 &
NPID=$!
PIDS+=($NPID)
wait_port "$NPORT"
NWORKER=$(pgrep -P "$NPID" | head -1)

export BENCH_AUTH=$AUTH_KEY
# measure NAME PID PORT
measure() {
    local url="http://127.0.0.1:$3/v1/chat/completions" out req calls
    wrk -t1 -c16 -d1s -s "$ROOT/bench/chat.lua" "$url" >/dev/null 2>&1 || true
    timeout $((SECS + 10)) strace -c -f -p "$2" -o "$TMP/$1.txt" &
    local st=$!
    sleep 1
    out=$(wrk -t1 -c16 -d"${SECS}s" -s "$ROOT/bench/chat.lua" "$url" | grep '^BENCH')
    sleep 0.5
    kill -INT "$st" 2>/dev/null || true
    wait "$st" 2>/dev/null || true
    req=$(echo "$out" | sed -n 's/.*"requests":\([0-9]*\).*/\1/p')
    calls=$(awk '$NF == "total" {print $4}' "$TMP/$1.txt")
    echo "== $1: $req requests, $calls system calls: $(awk -v c="$calls" -v r="$req" 'BEGIN{printf "%.2f", c / r}') per request"
    awk -v r="$req" 'NR > 2 && $NF != "total" && $1 !~ /^-/ {
        printf "  %-14s %7.2f per request\n", $NF, $4 / r }' "$TMP/$1.txt"
}
measure sluice "$SPID" "$PORT"
measure nginx "$NWORKER" "$NPORT"
