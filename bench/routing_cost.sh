#!/usr/bin/env bash
# routing_cost.sh - what routing costs per request, in instructions
# (callgrind: repeatable whatever else the machine does).
#
#   bench/routing_cost.sh [BUILD_DIR] [SECONDS] [baseline]
#
# "baseline": the same traffic through the legacy single upstream with no
# router (keyring + retry + sse): the difference in flow_begin (on_request
# + on_attempt + starting the transfer) is what routing adds there.
#
# Two mock upstreams and sluice (one worker, under callgrind) on loopback,
# three routes over two upstreams (one weighted 3:1 across both, one
# rewritten, one glob), router + keyring (a pool per upstream) + retry;
# sends non-streamed completions for the three models with wrk for SECONDS
# (default 15) from 4 connections, then prints the inclusive instruction
# count per call of what routing adds: the router's hooks, the core's
# target resolution (attributes, body rewrite), the URL and the access
# line's attempt chain, and the keyring's pool lookup. Needs valgrind, wrk,
# curl. Loopback only; bounded in time. CG_KEEP=<file> keeps the callgrind
# profile for a closer look (callgrind_annotate --tree=calling).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD=${1:-build}
SECS=${2:-15}
MODE=${3:-routing}
for t in valgrind wrk curl callgrind_annotate; do
    command -v "$t" >/dev/null || { echo "needs $t" >&2; exit 1; }
done
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-routing-bench.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

for m in a b; do
    "$BUILD/mock_upstream" --port 0 --port-file "$work/$m.port" --quiet \
        >"$work/mock-$m.log" 2>&1 &
    pids+=($!)
done
for _ in $(seq 1 100); do
    [ -s "$work/a.port" ] && [ -s "$work/b.port" ] && break
    sleep 0.05
done
port=18392
printf 'sk-bench-a-0123456789\n' >"$work/a.keys"
printf 'sk-bench-b-0123456789\n' >"$work/b.keys"
chmod 600 "$work"/*.keys
if [ "$MODE" = baseline ]; then
    cat >"$work/s.yaml" <<YAML
server: { host: 127.0.0.1, port: $port, threads: 1 }
upstream: { base_url: "http://127.0.0.1:$(cat "$work/a.port")/v1", timeout_s: 30 }
log: { level: INFO, file: "$work/app.log", format: json }
state: { path: "$work/state.db" }
plugins_dir: "$BUILD/plugins"
pipeline:
  - plugin: keyring
    config: { keys_file: "$work/a.keys" }
  - plugin: retry
  - plugin: sse
YAML
else
cat >"$work/s.yaml" <<YAML
server: { host: 127.0.0.1, port: $port, threads: 1 }
upstream: { timeout_s: 30 }
upstreams:
  - { name: alpha, base_url: "http://127.0.0.1:$(cat "$work/a.port")/v1", keys: { keys_file: "$work/a.keys" } }
  - { name: beta, base_url: "http://127.0.0.1:$(cat "$work/b.port")/v1", keys: { keys_file: "$work/b.keys" } }
routes:
  - model: gpt-oss
    deployments:
      - { upstream: alpha, model: "openai/gpt-oss-120b", weight: 3 }
      - { upstream: beta, model: "gpt-oss:120b", weight: 1 }
    fallbacks: [local]
  - model: local
    deployments: [{ upstream: beta, model: "llama3.1:8b" }]
  - model: "deepseek-*"
    deployments: [{ upstream: alpha }]
log: { level: INFO, file: "$work/app.log", format: json }
state: { path: "$work/state.db" }
plugins_dir: "$BUILD/plugins"
pipeline:
  - plugin: router
  - plugin: keyring
  - plugin: retry
  - plugin: sse
YAML
fi
cat >"$work/post.lua" <<'LUA'
local models = {"gpt-oss", "local", "deepseek-chat"}
local i = 0
request = function()
    i = i + 1
    local body = '{"model":"' .. models[i % 3 + 1] ..
        '","messages":[{"role":"user","content":"hi"}]}'
    return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
LUA
valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
    "$BUILD/sluice" -c "$work/s.yaml" >"$work/sluice.log" 2>&1 &
sluice_pid=$!
pids+=($sluice_pid)
for _ in $(seq 1 200); do
    curl -fs -o /dev/null "http://127.0.0.1:$port/health" && break
    sleep 0.1
done
wrk -t1 -c4 -d"${SECS}s" -s "$work/post.lua" \
    "http://127.0.0.1:$port/v1/chat/completions" | grep -E 'requests in|Non-2xx' || true
kill -INT "$sluice_pid"
wait "$sluice_pid" || true
[ -n "${CG_KEEP:-}" ] && cp "$work/cg.out" "$CG_KEEP" # for callgrind_annotate
callgrind_annotate --inclusive=yes "$work/cg.out" 2>/dev/null |
    grep -E '=> .*(router_on_attempt|router_on_response|router_on_complete|target_resolve|set_url|attempt_record|pool_of|request_plan|rt_route_pick|rt_table_find|flow_begin|flow_attempt_done|upstream_start|access_log_write) \(' |
    sed -E 's/^ *([0-9,]+) .*:([a-z_]+) \(([0-9,]+)x\)/\1 \2 \3/' |
    awk '{ gsub(",", "", $1); gsub(",", "", $3);
           if ($3 > 0) printf "  %-24s %8.0f instructions/call (%d calls)\n", $2, $1 / $3, $3 }' |
    sort -u
