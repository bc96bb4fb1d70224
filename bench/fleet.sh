#!/usr/bin/env bash
# fleet.sh - the fleet rows (issue 14): sluice instances sharing state
# through one Redis, on loopback, against the mock upstream.
#
#   bench/fleet.sh [BUILD_DIR]
#
#   FLEET_SECS=120   rate-limit run length (the target: 2 minutes)
#   TRIALS=100       propagation trials
#   WRK_SECS=10      each wrk run of the overhead rows
#   OV_ROUNDS=1      overhead rounds, local and redis alternating (the order
#                    swapped every round, so drift in the machine's load
#                    falls on both backends alike)
#   PARTS="rate propagation overhead"   which rows to run ("instructions":
#                    the callgrind rows, see 4.)
#
# 1. Rate-limit accuracy: 3 instances, one client with rpm=600, requests
#    spread evenly over the 3 at 1,800 a minute for FLEET_SECS: admitted per
#    minute, fleet-wide (target 600 +-5 %; per-instance limits would admit
#    all 1,800).
# 2. Propagation: a 429 with Retry-After: 30 on instance A; the time until
#    B and C show the key cooling (GET /admin/keys polled back to back),
#    p50/p99 over TRIALS (target p99 <= 100 ms).
# 3. Overhead: one instance, the production pipeline (auth with rpm, context,
#    keyring, retry, sse): wrk at 1 connection (p50) and 64 connections
#    (req/s), local backend then redis backend, same run (targets: +20 us
#    p50 at most, >= 0.9 x the req/s).
# 4. Instructions (PARTS=instructions, needs valgrind): the overhead row's
#    instance under callgrind (one worker), wrk at 4 connections for
#    WRK_SECS, local then redis: instructions per request in the worker
#    thread (the request path) and in the other threads (state thread,
#    subscriber, ...). Wall time on a shared machine cannot resolve 20 us;
#    instruction counts do not swing with its load.
# Needs redis-server, wrk, curl. Loopback only; bounded in time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BUILD=${1:-build}
FLEET_SECS=${FLEET_SECS:-120}
TRIALS=${TRIALS:-100}
WRK_SECS=${WRK_SECS:-10}
OV_ROUNDS=${OV_ROUNDS:-1}
PARTS=${PARTS:-rate propagation overhead}
for t in redis-server wrk curl; do
    command -v "$t" >/dev/null || { echo "needs $t" >&2; exit 1; }
done
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-fleet-bench.XXXXXX")
PIDS=()
# shellcheck source=bench/lib.sh
. bench/lib.sh
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    bash tests/redis/redis_fixture.sh stop "$TMP/redis" >/dev/null 2>&1 || true
    wait 2>/dev/null || true
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT

TOKEN=fleet-bench-admin-token-0123456789
CLIENT=sk-client-bench-rpm600
FREE=sk-client-bench-nolimit
bash tests/redis/redis_fixture.sh start "$TMP/redis" >/dev/null
[ -s "$TMP/redis/port" ] || { echo "no redis-server" >&2; exit 1; }
RPORT=$(cat "$TMP/redis/port")

"$BUILD/mock_upstream" --port 0 --port-file "$TMP/mport" --quiet \
    --max-records 0 >"$TMP/mock.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$TMP/mport" ] && break; sleep 0.05; done
MPORT=$(cat "$TMP/mport")
for i in 1 2 3 4; do echo "sk-fleet-bench-key-00000$i"; done >"$TMP/keys.txt"
# "free": a limit far away, so the window is still counted per request
printf '%s bench rpm=600\n%s free rpm=100000000\n' "$CLIENT" "$FREE" \
    >"$TMP/clients.txt"
echo "$TOKEN" >"$TMP/admin.token"
chmod 600 "$TMP/keys.txt" "$TMP/clients.txt" "$TMP/admin.token"

# fleet_config NAME BACKEND THREADS PREFIX RETRY PORT: writes $TMP/NAME.yaml.
# Without RETRY (the fleet rows) a 429 goes back to the client at once.
fleet_config() {
    local name=$1 backend=$2 threads=$3 prefix=$4 retry=$5 port=$6
    cat >"$TMP/$name.yaml" <<EOF
server: { host: 127.0.0.1, port: $port, threads: $threads }
upstream: { base_url: "http://127.0.0.1:$MPORT/v1", timeout_s: 30 }
admin: { token_file: "$TMP/admin.token" }
log: { level: WARNING }
plugins_dir: "$BUILD/plugins"
state:
  backend: $backend
  path: "$TMP/$name.db"
  url: "redis://127.0.0.1:$RPORT/0"
  password_file: "$TMP/redis/password"
  instance: "$name"
  prefix: "$prefix"
pipeline:
  - plugin: auth
    config: { clients_file: "$TMP/clients.txt" }
  - plugin: context
    config: { default_model: openai-gpt-oss-120b, on_unknown_model: pass }
  - plugin: keyring
    config: { keys_file: "$TMP/keys.txt" }
${retry:+  - plugin: retry}
  - plugin: sse
EOF
}

# start_sluice NAME BACKEND THREADS PREFIX [RETRY]: sets SPORT.
start_sluice() {
    local name=$1 port
    port=$(free_port)
    fleet_config "$1" "$2" "$3" "$4" "${5:-}" "$port"
    "$BUILD/sluice" -c "$TMP/$name.yaml" >"$TMP/$name.log" 2>&1 &
    PIDS+=($!)
    wait_port "$port" || { tail -5 "$TMP/$name.log" >&2; exit 1; }
    SPORT=$port
}


body='{"model":"openai-gpt-oss-20b","messages":[{"role":"user","content":"hi"}]}'

# ---- 1. rate-limit accuracy --------------------------------------------------
for n in A B C; do
    start_sluice "$n" redis 1 "bench-$$-fleet:"
    eval "PORT_$n=$SPORT"
done
if [[ " $PARTS " == *" rate "* ]]; then
log "rate limit: 3 instances, rpm=600, 1800/min for ${FLEET_SECS}s"
ok=0 limited=0 other=0
total=$((FLEET_SECS * 30))
start=$(date +%s%N)
for i in $(seq 0 $((total - 1))); do
    case $((i % 3)) in 0) p=$PORT_A ;; 1) p=$PORT_B ;; *) p=$PORT_C ;; esac
    # 30 a second, evenly: wait for this request's slot
    due=$((start + i * 1000000000 / 30))
    now=$(date +%s%N)
    [ "$now" -lt "$due" ] && sleep "$(awk -v d=$((due - now)) 'BEGIN{printf "%.4f", d/1e9}')"
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
        -H "Authorization: Bearer $CLIENT" -H 'Content-Type: application/json' \
        -d "$body" "http://127.0.0.1:$p/v1/chat/completions")
    case $code in 200) ok=$((ok + 1)) ;; 429) limited=$((limited + 1)) ;; *) other=$((other + 1)) ;; esac
done
secs=$(awk -v s="$start" -v e="$(date +%s%N)" 'BEGIN{printf "%.1f", (e-s)/1e9}')
per_min=$(awk -v o=$ok -v s="$secs" 'BEGIN{printf "%.0f", o*60/s}')
echo "FLEET rate_limit: sent=$total in ${secs}s admitted=$ok limited=$limited other=$other admitted_per_min=$per_min (target 600 +-5%)"
fi

# ---- 2. propagation ------------------------------------------------------------
if [[ " $PARTS " == *" propagation "* ]]; then
log "propagation: $TRIALS trials"
key1=sk-fleet-bench-key-000001
lat=()
for t in $(seq 1 "$TRIALS"); do
    curl -s -o /dev/null -X POST "http://127.0.0.1:$MPORT/_mock/reset"
    curl -s -o /dev/null -X POST "http://127.0.0.1:$MPORT/_mock/script" \
        -d '{"rules":[{"times":1,"status":429,"headers":{"Retry-After":"30"}}]}'
    t0=$(date +%s%N)
    curl -s -o /dev/null -H "Authorization: Bearer $FREE" \
        -H 'Content-Type: application/json' -d "$body" \
        "http://127.0.0.1:$PORT_A/v1/chat/completions"
    worst=0
    for p in $PORT_B $PORT_C; do
        for _ in $(seq 2000); do
            if curl -s -H "Authorization: Bearer $TOKEN" \
                "http://127.0.0.1:$p/admin/keys" | grep -q '"state":"cooling"'; then
                break
            fi
        done
        d=$(( ($(date +%s%N) - t0) / 1000 ))
        [ "$d" -gt "$worst" ] && worst=$d
    done
    lat+=("$worst")
    curl -s -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" \
        "http://127.0.0.1:$PORT_A/admin/reset-failed-keys"
    for p in $PORT_B $PORT_C; do
        for _ in $(seq 2000); do
            curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$p/admin/keys" |
                grep -q '"state":"cooling"' || break
        done
    done
done
printf '%s\n' "${lat[@]}" | sort -n | awk '{v[NR]=$1} END {
    printf "FLEET propagation: trials=%d p50_us=%d p99_us=%d max_us=%d (A: 429 sent to the client side; B and C both cooling; includes one client request)\n",
        NR, v[int(NR*0.5)+(NR*0.5>int(NR*0.5))], v[int(NR*0.99)+(NR*0.99>int(NR*0.99))], v[NR] }'
fi
for p in "${PIDS[@]:1}"; do kill "$p" 2>/dev/null || true; done
PIDS=("${PIDS[0]}")
sleep 0.5

# ---- 3. overhead ---------------------------------------------------------------
overhead() { # BACKEND
    start_sluice "ov-$1" "$1" 2 "bench-$$-ov:" retry
    local p=$SPORT
    BENCH_AUTH=$FREE wrk -t1 -c1 -d"${WRK_SECS}s" -s bench/chat.lua \
        "http://127.0.0.1:$p/v1/chat/completions" 2>/dev/null | grep '^BENCH' |
        sed "s/^BENCH/FLEET overhead $1 c1/"
    BENCH_AUTH=$FREE wrk -t2 -c64 -d"${WRK_SECS}s" -s bench/chat.lua \
        "http://127.0.0.1:$p/v1/chat/completions" 2>/dev/null | grep '^BENCH' |
        sed "s/^BENCH/FLEET overhead $1 c64/"
    kill "${PIDS[-1]}"
    wait "${PIDS[-1]}" 2>/dev/null || true
    unset 'PIDS[-1]'
}
if [[ " $PARTS " == *" overhead "* ]]; then
    for r in $(seq 1 "$OV_ROUNDS"); do
        if [ $((r % 2)) -eq 1 ]; then
            overhead local
            overhead redis
        else
            overhead redis
            overhead local
        fi
    done
fi

# ---- 4. instructions per request (callgrind) -----------------------------------
instructions() { # BACKEND
    local name="cg-$1" port pid n
    port=$(free_port)
    fleet_config "$name" "$1" 1 "bench-$$-cg:" retry "$port"
    valgrind --tool=callgrind --separate-threads=yes \
        --callgrind-out-file="$TMP/$name.out" \
        "$BUILD/sluice" -c "$TMP/$name.yaml" >"$TMP/$name.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    BENCH_AUTH=$FREE wrk -t1 -c4 -d2s -s bench/chat.lua \
        "http://127.0.0.1:$port/v1/chat/completions" >/dev/null 2>&1 # warm
    sleep 0.5
    callgrind_control -z "$pid" >/dev/null 2>&1
    n=$(BENCH_AUTH=$FREE wrk -t1 -c4 -d"${WRK_SECS}s" -s bench/chat.lua \
        "http://127.0.0.1:$port/v1/chat/completions" 2>/dev/null |
        sed -n 's/^BENCH .*"requests":\([0-9]*\).*/\1/p')
    sleep 0.3 # the last batch's write (10 ms period) and its answer
    callgrind_control -d "$pid" >/dev/null 2>&1
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    unset 'PIDS[-1]'
    # one file per thread and dump; the worker is the one that ran flow_begin
    local worker=0 other=0 f t
    for f in "$TMP/$name.out".1-*; do
        t=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$f" | tail -1)
        [ -n "$t" ] || continue
        if grep -q 'flow_begin' "$f"; then
            worker=$((worker + t))
        else
            other=$((other + t))
        fi
    done
    echo "FLEET instructions $1: requests=$n worker_per_req=$((worker / n)) other_threads_per_req=$((other / n))"
}
if [[ " $PARTS " == *" instructions "* ]]; then
    command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 1; }
    instructions local
    instructions redis
fi
