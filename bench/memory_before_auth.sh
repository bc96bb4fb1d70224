#!/usr/bin/env bash
# memory_before_auth.sh - the memory check of issue 19 (a benchmark-style
# check, not a timed test: it reports sluice's resident memory, it does not
# race a clock).
#
#   bench/memory_before_auth.sh            16 clients x 3.4 MB bodies
#   CLIENTS=32 MESSAGES=100000 bench/memory_before_auth.sh
#
# Starts the mock upstream and sluice (auth + keyring, 2 workers, 4 MiB body
# limit) from $BUILD (default build/), then sends CLIENTS concurrent bodies
# of MESSAGES tiny messages (~34 bytes each):
#   1. with no key (what a stranger can do): refused on the headers, the
#      body never buffered or parsed;
#   2. with a valid key (an authenticated client abusing it): parsed within
#      the per-request budget and the total cap (core/bodycap.h), memory
#      handed back after.
# Reports VmRSS before, the peak seen during (sampled every 50 ms), and
# 2 s after each round, and the answers' status codes. Issue 19's target:
# round 1 under 100 MB during and under 30 MB after. Exits 1 when round 1
# misses it. Everything started is stopped at the end. Needs curl and
# python3 (to pick free ports and write the body).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD=${BUILD:-build}
CLIENTS=${CLIENTS:-16}
MESSAGES=${MESSAGES:-100000}
for b in sluice mock_upstream; do
    [ -x "$BUILD/$b" ] || { echo "memory_before_auth.sh: $BUILD/$b missing (build first)" >&2; exit 1; }
done

tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MOCK_PORT=$(free_port)
PORT=$(free_port)
CLIENT_KEY=sk-bench-client-0123456789abcdef
(umask 077; echo "sk-bench-upstream-0001" >"$tmp/keys.txt"; echo "$CLIENT_KEY bench" >"$tmp/clients.txt")
cat >"$tmp/sluice.yaml" <<YAML
server: { host: 127.0.0.1, port: $PORT, threads: 2, max_body_bytes: 4194304 }
upstream: { base_url: "http://127.0.0.1:$MOCK_PORT/v1", timeout_s: 30 }
log: { level: WARNING }
plugins_dir: "$BUILD/plugins"
pipeline:
  - plugin: auth
    config: { clients_file: "$tmp/clients.txt" }
  - plugin: keyring
    config: { keys_file: "$tmp/keys.txt" }
YAML

"$BUILD/mock_upstream" --port "$MOCK_PORT" --quiet --max-records 0 >"$tmp/mock.log" 2>&1 &
pids+=($!)
"$BUILD/sluice" -c "$tmp/sluice.yaml" >"$tmp/sluice.log" 2>&1 &
spid=$!
pids+=($spid)
for _ in $(seq 1 100); do
    curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/health" 2>/dev/null && break
    sleep 0.1
done

# {"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"},...]}
python3 - "$MESSAGES" >"$tmp/body.json" <<'PY'
import sys
n = int(sys.argv[1])
sys.stdout.write('{"model":"gpt-4o-mini","messages":[')
sys.stdout.write(",".join(['{"role":"user","content":"x"}'] * n))
sys.stdout.write("]}")
PY
size=$(stat -c %s "$tmp/body.json")

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$spid/status"; }

# round NAME [header...]: CLIENTS concurrent POSTs; prints the numbers
round() {
    local name=$1; shift
    local before peak now codes
    before=$(rss_kb); peak=$before
    : >"$tmp/codes"
    local cpids=()
    for _ in $(seq 1 "$CLIENTS"); do
        curl -s -o /dev/null -w '%{http_code}\n' --max-time 60 "$@" \
            -H 'Content-Type: application/json' --data-binary @"$tmp/body.json" \
            "http://127.0.0.1:$PORT/v1/chat/completions" >>"$tmp/codes" &
        cpids+=($!)
    done
    while :; do
        now=$(rss_kb); [ "$now" -gt "$peak" ] && peak=$now
        local running=0
        for p in "${cpids[@]}"; do kill -0 "$p" 2>/dev/null && running=1; done
        [ $running = 0 ] && break
        sleep 0.05
    done
    wait "${cpids[@]}" 2>/dev/null || true
    sleep 2
    now=$(rss_kb)
    codes=$(sort "$tmp/codes" | uniq -c | awk '{printf "%s x%s ", $2, $1}')
    awk -v n="$name" -v b="$before" -v p="$peak" -v a="$now" -v c="$codes" \
        'BEGIN { printf "%-22s RSS before %6.1f MB, peak %6.1f MB, after %6.1f MB; answers: %s\n", n, b / 1024, p / 1024, a / 1024, c }'
    echo "$peak $now" >"$tmp/last"
}

echo "sluice $("$BUILD/sluice" --version 2>/dev/null || true): $CLIENTS clients x $size bytes ($MESSAGES messages)"
round "no key (stranger)"
read -r p1 a1 <"$tmp/last"
round "valid key (abuse)" -H "Authorization: Bearer $CLIENT_KEY"
ok=1
[ "$p1" -lt $((100 * 1024)) ] && [ "$a1" -lt $((30 * 1024)) ] || ok=0
if [ $ok = 1 ]; then
    echo "target met: no-key round under 100 MB during and 30 MB after"
else
    echo "target MISSED: no-key round peak $((p1 / 1024)) MB, after $((a1 / 1024)) MB" >&2
    exit 1
fi
