#!/usr/bin/env bash
# streams.sh - benchmark of concurrent streams through sluice (a benchmark,
# not a test: numbers depend on the machine; see bench/NOTES.md).
#
#   bench/streams.sh                 2,000 streams x 200 events x 50 ms
#   N=500 RAMP_MS=1000 bench/streams.sh
#
# Starts the mock upstream and sluice (keyring + sse, 2 workers) from
# $BUILD (default build/), then with bench stream_load (one epoll loop):
#   1. latency probe: 50 short streams one after the other, direct to the
#      mock and through sluice (time to first event, uncontended);
#   2. N concurrent streams of EVENTS events DELAY ms apart, ramped over
#      RAMP_MS, straight to the mock;
#   3. the same through sluice, reporting errors, time to first event and
#      sluice's peak resident memory (VmHWM) and CPU time.
# Everything is killed at the end. Needs ~2 sockets per stream in sluice:
# the open-file limit is raised as far as the hard limit allows.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD=${BUILD:-build}
N=${N:-2000}
EVENTS=${EVENTS:-200}
DELAY=${DELAY:-50}
RAMP_MS=${RAMP_MS:-2000}
THREADS=${THREADS:-2}
TIMEOUT_S=${TIMEOUT_S:-120}
# BENCH_NICE=-10: run mock, sluice and the load tool at that niceness (root
# only), to approximate a dedicated machine when other jobs share this one.
# SLUICE_NICE=-19: sluice alone at that niceness (what sluice adds when it
# gets the CPU it needs, whatever else runs).
NICE=()
if [ -n "${BENCH_NICE:-}" ]; then NICE=(nice -n "$BENCH_NICE"); fi
SNICE=("${NICE[@]}")
if [ -n "${SLUICE_NICE:-}" ]; then SNICE=(nice -n "$SLUICE_NICE"); fi

for b in sluice mock_upstream stream_load; do
    [ -x "$BUILD/$b" ] || { echo "streams.sh: $BUILD/$b missing (build first)" >&2; exit 1; }
done
[ -f "$BUILD/plugins/sse.so" ] || { echo "streams.sh: $BUILD/plugins missing" >&2; exit 1; }

# 2,000 streams: 2,000 client sockets here, 4,000 in sluice, 2,000 in the mock.
want=65536
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then
    want=$hard
fi
ulimit -n "$want"
echo "open files limit: $(ulimit -n); load average: $(cut -d' ' -f1-3 /proc/loadavg)"

T=$(mktemp -d /tmp/sluice-bench-streams.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT

"${NICE[@]}" "$BUILD/mock_upstream" --host 127.0.0.1 --port 0 --port-file "$T/mport" \
    --quiet --max-records 0 >"$T/mock.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$T/mport" ] && break; sleep 0.05; done
MOCK=$(cat "$T/mport")
curl -fsS -X POST "http://127.0.0.1:$MOCK/_mock/script" -d "{\"rules\":[
  {\"times\":0,\"match\":{\"model\":\"probe\"},\"stream\":{\"chunks\":3,\"delay_ms\":5}},
  {\"times\":0,\"stream\":{\"chunks\":$EVENTS,\"delay_ms\":$DELAY}}]}" >/dev/null

printf 'sk-bench-key-1\nsk-bench-key-2\n' >"$T/keys"
chmod 600 "$T/keys"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$T/sluice.yaml" <<EOF
server: { host: "127.0.0.1", port: $PORT, threads: $THREADS }
upstream:
  base_url: "http://127.0.0.1:$MOCK/v1"
  timeout_s: 300
  max_connections: 4096
log: { level: WARNING }
plugins_dir: "$BUILD/plugins"
pipeline:
  - plugin: keyring
    config: { keys_file: "$T/keys" }
  - plugin: sse
EOF
env -u HOST -u PORT -u MEGALLM_BASE_URL -u MEGALLM_TIMEOUT -u LOG_LEVEL \
    "${SNICE[@]}" "$BUILD/sluice" -c "$T/sluice.yaml" >"$T/sluice.log" 2>&1 &
SLUICE_PID=$!
pids+=($SLUICE_PID)
for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
    sleep 0.05
done

PROBE='{"model":"probe","stream":true,"messages":[{"role":"user","content":"p"}]}'
json_of() { tail -n 1 "$1"; }

echo "== latency probe: 50 sequential short streams (3 events)"
for target in "mock:$MOCK" "sluice:$PORT"; do
    name=${target%%:*} port=${target##*:}
    : >"$T/probe_$name.txt"
    for _ in $(seq 50); do
        "${NICE[@]}" "$BUILD/stream_load" -p "$port" -n 1 -r 0 -t 10 -e 3 -b "$PROBE" |
            tail -n 1 >>"$T/probe_$name.txt"
    done
    python3 - "$name" "$T/probe_$name.txt" <<'PY'
import json, statistics, sys
v = [json.loads(l)["ttfe_p50_ms"] for l in open(sys.argv[2]) if l.strip()]
v.sort()
print(f"  {sys.argv[1]:6s} time to first event: median {statistics.median(v):.3f} ms, "
      f"p90 {v[int(0.9*(len(v)-1))]:.3f} ms ({len(v)} streams)")
PY
done

echo "== $N concurrent streams x $EVENTS events x $DELAY ms, straight to the mock"
"${NICE[@]}" "$BUILD/stream_load" -p "$MOCK" -n "$N" -r "$RAMP_MS" -t "$TIMEOUT_S" \
    -e "$EVENTS" | tee "$T/direct.txt" || true

rss_before=$(awk '/VmRSS/ {print $2}' /proc/$SLUICE_PID/status)
cpu() { awk '{print $14 + $15}' /proc/$SLUICE_PID/stat; }
cpu0=$(cpu)
echo "== $N concurrent streams x $EVENTS events x $DELAY ms, through sluice"
"${NICE[@]}" "$BUILD/stream_load" -p "$PORT" -n "$N" -r "$RAMP_MS" -t "$TIMEOUT_S" \
    -e "$EVENTS" | tee "$T/sluice.txt" || true
cpu1=$(cpu)
hwm=$(awk '/VmHWM/ {print $2}' /proc/$SLUICE_PID/status)
rss_after=$(awk '/VmRSS/ {print $2}' /proc/$SLUICE_PID/status)
tck=$(getconf CLK_TCK)

python3 - "$T/direct.txt" "$T/sluice.txt" "$rss_before" "$hwm" "$rss_after" \
    "$cpu0" "$cpu1" "$tck" "$N" <<'PY'
import json, sys
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
s = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
rss0, hwm, rss1 = (int(x) for x in sys.argv[3:6])
cpu = (int(sys.argv[7]) - int(sys.argv[6])) / int(sys.argv[8])
print("== summary")
print(f"  streams {sys.argv[9]}: errors direct {d['errors']}, through sluice {s['errors']}")
print(f"  time to first event p50: direct {d['ttfe_p50_ms']:.2f} ms, sluice "
      f"{s['ttfe_p50_ms']:.2f} ms, added {s['ttfe_p50_ms'] - d['ttfe_p50_ms']:.2f} ms")
print(f"  time to first event p99: direct {d['ttfe_p99_ms']:.2f} ms, sluice {s['ttfe_p99_ms']:.2f} ms")
print(f"  sluice RSS: {rss0/1024:.1f} MB before, peak (VmHWM) {hwm/1024:.1f} MB, "
      f"{rss1/1024:.1f} MB after")
print(f"  sluice CPU during the run: {cpu:.1f} s over {s['elapsed_ms']/1000:.1f} s")
PY
