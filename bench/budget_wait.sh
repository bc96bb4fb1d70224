#!/usr/bin/env bash
# budget_wait.sh - what a budget costs a request with a shared state (issue
# 18): one sluice (1 worker) on Redis, auth + usage + keyring + sse, against
# the mock upstream on loopback. Two clients of the clients file, one with a
# budget (budget_tokens_day, never reached) and one without; each sends
# N requests back to back on one keep-alive connection, in ROUNDS rounds
# whose order alternates. Prints p50/p90/mean per client. The budgeted
# request waits for Redis's answer to its reservation (SLUICE_PENDING) before
# it goes upstream; the other does not wait.
#
#   bench/budget_wait.sh [BUILD_DIR]      N=300 ROUNDS=6
# Needs redis-server and python3. Loopback only; bounded (N x ROUNDS x 2).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BUILD=$(cd "${1:-build}" && pwd)
N=${N:-300}
ROUNDS=${ROUNDS:-6}
TMP=$(mktemp -d /tmp/sluice-budget-wait.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

RP=$(free_port)
redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no \
    >"$TMP/redis.log" 2>&1 &
PIDS+=($!)
"$BUILD/mock_upstream" --port 0 --port-file "$TMP/mock.port" --quiet \
    >"$TMP/mock.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$TMP/mock.port" ] && break; sleep 0.1; done
wait_port "$RP"
MP=$(cat "$TMP/mock.port")
printf 'sk-budget-client-0001 bud budget_tokens_day=999999999999\nsk-free-client-00001 free\n' \
    >"$TMP/clients.txt"
printf 'sk-test-key-1\n' >"$TMP/keys.txt"
chmod 600 "$TMP/clients.txt" "$TMP/keys.txt"
SP=$(free_port)
cat >"$TMP/sluice.yaml" <<YAML
plugins_dir: "$BUILD/plugins"
server: { host: 127.0.0.1, port: $SP, threads: 1 }
upstream: { base_url: "http://127.0.0.1:$MP/v1", timeout_s: 30 }
state: { backend: redis, url: "redis://127.0.0.1:$RP/0", prefix: "bw:" }
pipeline:
  - plugin: auth
    config: { clients_file: "$TMP/clients.txt" }
  - plugin: usage
  - plugin: keyring
    config: { keys_file: "$TMP/keys.txt" }
  - plugin: sse
YAML
"$BUILD/sluice" -c "$TMP/sluice.yaml" >"$TMP/sluice.log" 2>&1 &
PIDS+=($!)
wait_port "$SP"
python3 - "$SP" "$N" "$ROUNDS" <<'PY'
import http.client, statistics, sys, time
port, n, rounds = (int(a) for a in sys.argv[1:4])
body = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
keys = {"budget": "sk-budget-client-0001", "no budget": "sk-free-client-00001"}
res = {k: [] for k in keys}
for r in range(rounds):
    for name in (list(keys) if r % 2 == 0 else list(keys)[::-1]):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(n):
            t = time.perf_counter()
            c.request("POST", "/v1/chat/completions", body,
                      {"Authorization": "Bearer " + keys[name],
                       "Content-Type": "application/json"})
            resp = c.getresponse()
            resp.read()
            if resp.status != 200:
                sys.exit("HTTP %d" % resp.status)
            res[name].append((time.perf_counter() - t) * 1e6)
        c.close()
for name, ts in res.items():
    ts.sort()
    print("%-9s n=%d  p50 %5.0f us  p90 %5.0f us  mean %5.0f us" %
          (name, len(ts), ts[len(ts) // 2], ts[int(len(ts) * 0.9)],
           statistics.mean(ts)))
PY
