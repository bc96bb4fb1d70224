#!/usr/bin/env bash
# observability_cost.sh - what metrics and the access log cost per request,
# in instructions (callgrind: repeatable whatever else the machine does).
#
#   bench/observability_cost.sh [BUILD_DIR] [SECONDS]
#
# Runs the mock upstream and sluice (one worker, under callgrind) on
# loopback, sends non-streamed completions with wrk for SECONDS (default
# 20) from 4 connections, scrapes /metrics 20 times, then prints the
# inclusive instruction count per call of the observability functions.
# Needs valgrind, wrk, curl. Loopback only; bounded in time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD=${1:-build}
SECS=${2:-20}
for t in valgrind wrk curl callgrind_annotate; do
    command -v "$t" >/dev/null || { echo "needs $t" >&2; exit 1; }
done
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-obs-bench.XXXXXX")
mock_pid="" sluice_pid=""
cleanup() {
    [ -n "$sluice_pid" ] && kill "$sluice_pid" 2>/dev/null || true
    [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT

"$BUILD/mock_upstream" --port 0 --port-file "$work/mport" --quiet \
    >"$work/mock.log" 2>&1 &
mock_pid=$!
for _ in $(seq 1 100); do [ -s "$work/mport" ] && break; sleep 0.05; done
port=18391
printf 'sk-bench-key-0123456789\n' >"$work/keys.txt"
chmod 600 "$work/keys.txt"
for level in INFO WARNING; do
    cat >"$work/s.yaml" <<YAML
server: { host: 127.0.0.1, port: $port, threads: 1 }
upstream: { base_url: "http://127.0.0.1:$(cat "$work/mport")/v1", timeout_s: 30 }
log: { level: $level, file: "$work/app.log", format: json }
plugins_dir: "$BUILD/plugins"
models:
  - { id: "gpt-4o-mini", context_length: 128000 }
pipeline:
  - plugin: keyring
    config: { keys_file: "$work/keys.txt" }
  - plugin: sse
YAML
    cat >"$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
wrk.headers["Content-Type"] = "application/json"
LUA
    valgrind --tool=callgrind --callgrind-out-file="$work/cg-$level.out" \
        "$BUILD/sluice" -c "$work/s.yaml" >"$work/sluice-$level.log" 2>&1 &
    sluice_pid=$!
    for _ in $(seq 1 200); do
        curl -fs -o /dev/null "http://127.0.0.1:$port/health" && break
        sleep 0.1
    done
    echo "== log.level $level"
    wrk -t1 -c4 -d"${SECS}s" -s "$work/post.lua" \
        "http://127.0.0.1:$port/v1/chat/completions" | grep 'requests in'
    for _ in $(seq 1 20); do
        curl -fs -o "$work/metrics.txt" "http://127.0.0.1:$port/metrics"
    done
    kill -INT "$sluice_pid"
    wait "$sluice_pid" || true
    sluice_pid=""
    callgrind_annotate --inclusive=yes "$work/cg-$level.out" 2>/dev/null |
        grep -E '=> .*(core_metrics_summarise|core_metrics_request_done|core_metrics_attempt_end|core_metrics_request_start|access_log_write|metrics_render) \(' |
        sed -E 's/^ *([0-9,]+) .*:([a-z_]+) \(([0-9,]+)x\)/\1 \2 \3/' |
        awk '{ gsub(",", "", $1); gsub(",", "", $3);
               if ($3 > 0) printf "  %-28s %8.0f instructions/call (%d calls)\n", $2, $1 / $3, $3 }' |
        sort -u
done
echo "== /metrics: $(wc -c <"$work/metrics.txt") bytes, $(grep -vc '^#' "$work/metrics.txt") samples"
rm -rf "$work"
