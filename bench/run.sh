#!/usr/bin/env bash
# bench/run.sh - sluice's benchmark: sluice vs a plain nginx reverse proxy
# vs the upstream itself, all on loopback in front of the same mock
# upstream, measured in the same run. A benchmark, not a test: it reports,
# it never fails on a number.
#
#   bench/run.sh [--quick] [--duration S] [--out FILE] [--no-build]
#
# What it does:
#   1. installs wrk and nginx if missing (Debian: scripts/deps.sh --bench,
#      or apt-get), builds RelWithDebInfo into build-bench/ (BENCH_BUILD
#      overrides);
#   2. starts the mock upstream (20-chunk streams, no delay, no records),
#      sluice on a default.yaml-shaped pipeline made of every stage found in
#      build-bench/plugins (context, keyring with 8 fake keys, retry, sse;
#      auth in a second variant when the auth stage exists), and nginx with
#      its own config in a temp folder (keep-alive to the upstream,
#      proxy_buffering off);
#   3. runs wrk (bench/chat.lua, a ~1.2 KB chat body) for S seconds (10)
#      at 1, 16 and 64 connections, plain and streamed, against each; the
#      plain cases at 1 and 64 connections three times (median reported);
#   4. probes streams (time to first event, total time; bench/sse_probe)
#      and runs bench/streams.sh (2,000 concurrent streams; its own sluice
#      and mock) when stream_load is built (BENCH_NO_STREAMS=1 skips it);
#   5. writes bench/results/<date>-<commit>.md: requests/s, p50/p90/p99,
#      errors, ratios to direct and to nginx, CPU per 1,000 requests, peak
#      and idle RSS, upstream connections opened (keep-alive reuse).
#
# Every load is bounded in time; every process it starts is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=10
REPEAT=3
BUILD=${BENCH_BUILD:-$ROOT/build-bench}
OUT=""
DO_BUILD=1
CONNS="1 16 64"

while [ $# -gt 0 ]; do
    case "$1" in
    --quick) DURATION=3; REPEAT=1 ;;
    --duration) DURATION=$2; shift ;;
    --out) OUT=$2; shift ;;
    --no-build) DO_BUILD=0 ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---- dependencies ------------------------------------------------------
install_deps() {
    # scripts/deps.sh installs only what is missing (nothing, offline, when
    # all is there); without it, the bench tools straight from apt
    if [ -x "$ROOT/scripts/deps.sh" ] && grep -q -- '--bench' "$ROOT/scripts/deps.sh"; then
        "$ROOT/scripts/deps.sh" --bench >&2
        return 0
    fi
    local missing=""
    command -v wrk >/dev/null || missing="$missing wrk"
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$missing nginx"
    command -v curl >/dev/null || missing="$missing curl"
    [ -z "$missing" ] && return 0
    log "installing:$missing"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing
}
install_deps
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [ "$DO_BUILD" = 1 ]; then
    log "building (RelWithDebInfo) in $BUILD"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DSLUICE_SANITIZE=OFF >/dev/null
    cmake --build "$BUILD" -j"$(nproc)" >/dev/null
fi
for b in sluice mock_upstream sse_probe; do
    [ -x "$BUILD/$b" ] || { echo "run.sh: $BUILD/$b missing" >&2; exit 1; }
done

# ---- temp folder, processes, cleanup -----------------------------------
TMP=$(mktemp -d /tmp/sluice-bench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

free_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    echo "run.sh: no free port" >&2
    return 1
}

# wait until a TCP port answers (bounded)
wait_port() {
    for _ in $(seq 100); do
        (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "run.sh: nothing listens on port $1" >&2
    return 1
}

cpu_ticks() { # utime+stime of a process and its children threads
    local t=0 p
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] || continue
        t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
    done
    echo "$t"
}
HZ=$(getconf CLK_TCK)
kb() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }

# ---- mock upstream -----------------------------------------------------
"$BUILD/mock_upstream" --port 0 --port-file "$TMP/mock.port" --quiet \
    --max-records 0 --chunks 20 --delay-ms 0 >"$TMP/mock.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$TMP/mock.port" ] && break; sleep 0.05; done
MOCK_PORT=$(cat "$TMP/mock.port")
MOCK="http://127.0.0.1:$MOCK_PORT"
log "mock upstream on $MOCK_PORT"

mock_reset() { curl -s -o /dev/null -X POST "$MOCK/_mock/reset"; }
mock_conns() {
    curl -s "$MOCK/_mock/requests" |
        sed -n 's/.*"connections_opened": *\([0-9]*\).*/\1/p'
}

# ---- nginx -------------------------------------------------------------
NGINX_PORT=$(free_port)
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    client_body_buffer_size 64k;
    keepalive_requests 100000;
    upstream up {
        server 127.0.0.1:$MOCK_PORT;
        keepalive 64;
        keepalive_requests 100000;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }
    }
}
EOF
"$NGINX" -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" >"$TMP/nginx/out.log" 2>&1 &
NGINX_PID=$!
PIDS+=($NGINX_PID)
wait_port "$NGINX_PORT" || {
    cat "$TMP/nginx/out.log" "$TMP/nginx/error.log" >&2 2>/dev/null
    exit 1
}
nginx_pids() { echo "$NGINX_PID $(pgrep -P "$NGINX_PID" | tr '\n' ' ')"; }
log "nginx on $NGINX_PORT ($(nginx_pids | wc -w) processes)"

# ---- sluice ------------------------------------------------------------
PLUGINS="$BUILD/plugins"
has_stage() { [ -f "$PLUGINS/$1.so" ]; }
for i in 1 2 3 4 5 6 7 8; do
    echo "sk-bench-fake-key-000000000000000$i"
done >"$TMP/keys.txt"
AUTH_KEY="sk-client-bench-0123456789abcdef"
echo "$AUTH_KEY bench" >"$TMP/clients.txt"
chmod 600 "$TMP/keys.txt" "$TMP/clients.txt"

# sluice_config PORT WITH_AUTH: the default.yaml shape, stages that exist
sluice_config() {
    local port=$1 auth=$2
    cat <<EOF
server: { host: 127.0.0.1, port: $port, threads: 0, max_body_bytes: 4194304 }
upstream: { base_url: "$MOCK/v1", timeout_s: 30 }
log: { level: WARNING, format: json }
plugins_dir: "$PLUGINS"
pipeline:
EOF
    if [ "$auth" = 1 ] && has_stage auth; then
        printf '  - plugin: auth\n    config: { clients_file: "%s" }\n' \
            "$TMP/clients.txt"
    fi
    has_stage context && printf '  - plugin: context\n    config: { default_model: openai-gpt-oss-120b, on_unknown_model: pass }\n'
    printf '  - plugin: keyring\n    config: { keys_file: "%s" }\n' \
        "$TMP/keys.txt"
    has_stage retry && printf '  - plugin: retry\n'
    has_stage sse && printf '  - plugin: sse\n'
    return 0
}

SLUICE_PID=""
SLUICE_PORT=""
start_sluice() { # $1 = with auth (0|1)
    SLUICE_PORT=$(free_port)
    sluice_config "$SLUICE_PORT" "$1" >"$TMP/sluice-$1.yaml"
    (cd "$ROOT" && exec "$BUILD/sluice" -c "$TMP/sluice-$1.yaml") \
        >"$TMP/sluice-$1.log" 2>&1 &
    SLUICE_PID=$!
    PIDS+=($SLUICE_PID)
    wait_port "$SLUICE_PORT" || { cat "$TMP/sluice-$1.log" >&2; exit 1; }
    local hdr=()
    [ "$1" = 1 ] && hdr=(-H "Authorization: Bearer $AUTH_KEY")
    local code
    code=$(curl -s -o "$TMP/check.json" -w '%{http_code}' "${hdr[@]}" \
        -H 'Content-Type: application/json' \
        -d '{"model":"openai-gpt-oss-20b","messages":[{"role":"user","content":"hi"}]}' \
        "http://127.0.0.1:$SLUICE_PORT/v1/chat/completions")
    if [ "$code" != 200 ]; then
        echo "run.sh: sluice answered $code: $(cat "$TMP/check.json")" >&2
        cat "$TMP/sluice-$1.log" >&2
        exit 1
    fi
}
stop_sluice() {
    kill "$SLUICE_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$SLUICE_PID" 2>/dev/null || break; sleep 0.05; done
}

# ---- one wrk run -------------------------------------------------------
# run_wrk TARGET MODE CONNS: appends a result row to $TMP/rows
#   row: target mode conns rps p50 p90 p99 errors non2xx cpu_per_1k conns_opened
run_wrk() {
    local target=$1 mode=$2 c=$3 port pids="" auth="" t
    case "$target" in
    direct) port=$MOCK_PORT ;;
    nginx) port=$NGINX_PORT; pids=$(nginx_pids) ;;
    sluice|sluice+auth) port=$SLUICE_PORT; pids=$SLUICE_PID ;;
    esac
    [ "$target" = sluice+auth ] && auth=$AUTH_KEY
    t=$((c < 2 ? c : 2))
    local url="http://127.0.0.1:$port/v1/chat/completions"
    local stream=0
    [ "$mode" = stream ] && stream=1
    # warm-up: connections opened, caches filled
    BENCH_STREAM=$stream BENCH_AUTH=$auth timeout 10 \
        wrk -t"$t" -c"$c" -d1s -s "$ROOT/bench/chat.lua" "$url" >/dev/null 2>&1 || true
    mock_reset
    local c0 c1
    # shellcheck disable=SC2086
    c0=$(cpu_ticks $pids)
    local out
    out=$(BENCH_STREAM=$stream BENCH_AUTH=$auth timeout $((DURATION + 30)) \
        wrk -t"$t" -c"$c" -d"${DURATION}s" --latency -s "$ROOT/bench/chat.lua" "$url" \
        2>&1 | grep '^BENCH ' || echo 'BENCH {}')
    # shellcheck disable=SC2086
    c1=$(cpu_ticks $pids)
    local opened
    opened=$(mock_conns)
    opened=$((opened > 0 ? opened - 1 : 0)) # minus the one reading it
    local j=${out#BENCH }
    g() { echo "$j" | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
    local req dur
    req=$(g requests); dur=$(g duration_us)
    [ -z "$req" ] && req=0
    [ -z "$dur" ] || [ "$dur" = 0 ] && dur=1
    local rps cpu="-"
    rps=$(awk -v r="$req" -v d="$dur" 'BEGIN{printf "%.0f", r / (d / 1e6)}')
    if [ -n "$pids" ] && [ "$req" -gt 0 ]; then
        cpu=$(awk -v t=$((c1 - c0)) -v hz="$HZ" -v r="$req" \
            'BEGIN{printf "%.3f", t / hz / r * 1000}')
    fi
    echo "$target $mode $c $rps $(g p50_us) $(g p90_us) $(g p99_us) $(g errors) $(g non2xx) $cpu $opened $req" >>"$TMP/rows"
    log "$target $mode c=$c: $rps req/s p50 $(g p50_us) us, errors $(g errors)+$(g non2xx), cpu/1k $cpu s, upstream conns $opened"
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$TMP/rows"
start_sluice 0
IDLE_RSS=$(kb "$SLUICE_PID" VmRSS)
log "sluice on $SLUICE_PORT, idle RSS ${IDLE_RSS} kB; stages: $(grep -o 'plugin: [a-z]*' "$TMP/sluice-0.yaml" | awk '{print $2}' | tr '\n' ' ')"

for mode in plain stream; do
    for c in $CONNS; do
        for target in direct nginx sluice; do
            run_wrk "$target" "$mode" "$c"
        done
    done
done
# the two target cases (one connection, 64 connections), twice more:
# medians of three, each round interleaving the three targets
for _ in $(seq 2 "$REPEAT"); do
    for c in 1 64; do
        for target in direct nginx sluice; do
            run_wrk "$target" plain "$c"
        done
    done
done
PEAK_RSS=$(kb "$SLUICE_PID" VmHWM)
AFTER_RSS=$(kb "$SLUICE_PID" VmRSS)

# ---- streams: time to first event and total, through sluice vs direct --
PROBE_N=${BENCH_PROBE_N:-200}
curl -s -o /dev/null -X POST "$MOCK/_mock/script" -H 'Content-Type: application/json' \
    -d '{"rules":[{"match":{"body_contains":"sse-probe"},"times":0,"stream":{"chunks":10,"delay_ms":5}}]}'
: >"$TMP/probe"
for target in direct nginx sluice; do
    case "$target" in
    direct) port=$MOCK_PORT ;; nginx) port=$NGINX_PORT ;; sluice) port=$SLUICE_PORT ;;
    esac
    p=$("$BUILD/sse_probe" -n "$PROBE_N" "http://127.0.0.1:$port/v1/chat/completions" 2>>"$TMP/probe.err" || echo "failed")
    echo "$target $p" >>"$TMP/probe"
    log "probe $target: $p"
done
mock_reset

stop_sluice

# ---- 2,000 concurrent streams (bench/streams.sh, from the sse work) ----
STREAMS_LINE="bench/streams.sh or $BUILD/stream_load missing: not measured"
if [ -x "$ROOT/bench/streams.sh" ] && [ -x "$BUILD/stream_load" ] &&
    [ -z "${BENCH_NO_STREAMS:-}" ]; then
    log "2,000 concurrent streams (bench/streams.sh, about a minute)"
    if (cd "$ROOT" && BUILD="$BUILD" timeout 600 bench/streams.sh) \
        >"$TMP/streams.txt" 2>&1; then
        STREAMS_LINE=$(sed -n '/^== summary/,$p' "$TMP/streams.txt" |
            sed '1d; s/^ *//' | paste -sd';' | sed 's/;/; /g')
        [ -n "$STREAMS_LINE" ] || STREAMS_LINE="bench/streams.sh printed no summary"
    else
        STREAMS_LINE="bench/streams.sh failed: $(tail -3 "$TMP/streams.txt" | tr '\n' ' ')"
    fi
    log "streams: $STREAMS_LINE"
fi

# ---- auth variant ------------------------------------------------------
if has_stage auth; then
    start_sluice 1
    for c in $CONNS; do run_wrk sluice+auth plain "$c"; done
    run_wrk sluice+auth stream 64
    stop_sluice
fi

# ---- report --------------------------------------------------------------
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- core plugins sdk 2>/dev/null || COMMIT="$COMMIT+dirty"
DATE=$(date -u +%Y-%m-%d)
if [ -z "$OUT" ]; then
    mkdir -p "$ROOT/bench/results"
    OUT="$ROOT/bench/results/$DATE-$COMMIT.md"
fi
CPU=$(awk -F: '/model name/ {sub(/^ +/, "", $2); print $2; exit}' /proc/cpuinfo)
STAGES=$(grep -o 'plugin: [a-z]*' "$TMP/sluice-0.yaml" | awk '{print $2}' | paste -sd, -)

# median over the rows of one (target, mode, conns): by req/s
awk -v D="$DATE" -v C="$COMMIT" -v CPU="$CPU" -v NP="$(nproc)" \
    -v K="$(uname -r)" -v ST="$STAGES" -v IDLE="$IDLE_RSS" -v PEAK="$PEAK_RSS" \
    -v AFTER="$AFTER_RSS" -v DUR="$DURATION" -v REP="$REPEAT" \
    -v PROBE="$TMP/probe" -v STREAMS="$STREAMS_LINE" \
    -v L0="$LOAD0" -v L1="$LOAD1" '
function median_row(key,   n, i, j, t, idx) {
    n = cnt[key]
    for (i = 1; i <= n; i++) idx[i] = i
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
        if (row[key, idx[j], 4] < row[key, idx[i], 4]) { t = idx[i]; idx[i] = idx[j]; idx[j] = t }
    return idx[int((n + 1) / 2)]
}
function median_col(key, col,   n, i, j, t, v) {
    n = cnt[key]
    for (i = 1; i <= n; i++) v[i] = row[key, i, col] + 0
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
        if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return v[int((n + 1) / 2)]
}
{
    key = $1 " " $2 " " $3
    if (!(key in cnt)) order[++nk] = key
    cnt[key]++
    for (f = 1; f <= NF; f++) row[key, cnt[key], f] = $f
}
END {
    printf "# sluice benchmark, %s, commit %s\n\n", D, C
    printf "Machine: %s cores, %s, Linux %s. Load generator (wrk), mock upstream, ", NP, CPU, K
    printf "nginx and sluice all share these cores on loopback. Load average at the start: %s, at the end: %s ", L0, L1
    printf "(anything above ~2 is other work on the machine: expect run-to-run swings).\n\n"
    printf "sluice pipeline: %s (8 fake keys, log level WARNING). nginx: plain " , ST
    printf "`proxy_pass` with upstream keep-alive, `proxy_buffering off`. Body: " 
    printf "bench/chat.lua (~1.2 KB, 4 messages); streams: 20 chunks, no delay. "
    printf "Each run %s s after a 1 s warm-up; the plain rows at 1 and 64 connections " , DUR
    printf "are the median of %s runs (by req/s; p50 of the median run).\n\n", REP
    printf "| target | mode | conns | req/s | p50 µs | p90 µs | p99 µs | errors | × direct | × nginx | CPU s / 1k req | upstream conns opened |\n"
    printf "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    for (k = 1; k <= nk; k++) {
        key = order[k]; m = median_row(key)
        split(key, kk, " ")
        med[key] = m
    }
    for (k = 1; k <= nk; k++) {
        key = order[k]; m = med[key]; split(key, kk, " ")
        rps = row[key, m, 4]
        dk = "direct " kk[2] " " kk[3]; nk2 = "nginx " kk[2] " " kk[3]
        xd = (dk in med && row[dk, med[dk], 4] > 0) ? sprintf("%.2f", rps / row[dk, med[dk], 4]) : "-"
        xn = (nk2 in med && row[nk2, med[nk2], 4] > 0) ? sprintf("%.2f", rps / row[nk2, med[nk2], 4]) : "-"
        runs = cnt[key] > 1 ? sprintf(" (median of %d", cnt[key]) : ""
        if (cnt[key] > 1) {
            runs = runs ":"
            for (i = 1; i <= cnt[key]; i++) runs = runs " " row[key, i, 4]
            runs = runs ")"
        }
        opened = kk[1] == "direct" ? "-" : row[key, m, 11]
        printf "| %s | %s | %s | %s%s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
            kk[1], kk[2], kk[3], rps, runs, row[key, m, 5], row[key, m, 6],
            row[key, m, 7], row[key, m, 8] + row[key, m, 9], xd, xn,
            row[key, m, 10], opened
    }
    printf "\n### Overhead at one connection (plain, median p50 of %d runs)\n\n", cnt["sluice plain 1"]
    d = "direct plain 1"; n = "nginx plain 1"; s = "sluice plain 1"
    if ((d in med) && (n in med) && (s in med)) {
        dp = median_col(d, 5); np = median_col(n, 5); sp = median_col(s, 5)
        printf "p50 direct %d µs, nginx %d µs (+%d), sluice %d µs (+%d): sluice adds %+d µs over nginx'"'"'s added p50 (target ≤ +40).\n", dp, np, np - dp, sp, sp - dp, (sp - dp) - (np - dp)
    }
    d = "nginx plain 64"; s = "sluice plain 64"
    if ((d in med) && (s in med))
        printf "\nPlain at 64 connections: sluice / nginx = %.2f (target ≥ 0.45, median of %d).\n", row[s, med[s], 4] / row[d, med[d], 4], cnt[s]
    printf "\n### Memory (sluice)\n\nIdle RSS after start: %d kB (target < 20 MB). Peak RSS (VmHWM) over all the runs above: %d kB; RSS after them: %d kB.\n", IDLE, PEAK, AFTER
    printf "\n### Streams: time to first event and total (sse_probe, 10 events 5 ms apart, sequential)\n\n"
    printf "| target | first event p50 µs | first event p90 µs | total p50 µs | total p90 µs | streams |\n|---|---:|---:|---:|---:|---:|\n"
    while ((getline line < PROBE) > 0) {
        split(line, p, " ")
        printf "| %s | %s | %s | %s | %s | %s |\n", p[1], p[2], p[3], p[4], p[5], p[6]
    }
    printf "\n2,000 concurrent streams of 200 events 50 ms apart (bench/streams.sh: keyring + sse, 2 workers): %s\n", STREAMS
    printf "\nUpstream connections opened: counted by the mock upstream (`connections_opened`) during each measured run, after a warm-up that opened the pool; a proxy that reuses keep-alive connections opens none or a few, one per request would show the request count.\n"
}' "$TMP/rows" >"$OUT"

log "wrote $OUT"
cat "$OUT"
