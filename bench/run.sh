#!/usr/bin/env bash
# bench/run.sh - sluice's benchmark: sluice vs nginx vs the upstream itself,
# all on loopback in front of bench/fast_upstream, measured in the same run.
# A benchmark, not a test: it reports, it never fails on a number.
#
#   bench/run.sh [--quick] [--duration S] [--out FILE] [--no-build]
#
# What it does:
#   1. installs the tools if missing (scripts/deps.sh --bench: wrk, nginx,
#      openssl), builds RelWithDebInfo into build-bench/ (BENCH_BUILD);
#   2. starts bench/fast_upstream (one epoll thread, canned answers, 20-chunk
#      streams) and, in front of it, nginx with 1 and with 2 workers
#      (`proxy_pass`, upstream keep-alive, `proxy_buffering off`) and sluice
#      with 1 and with 2 threads on the production-shaped pipeline (auth,
#      context, keyring with 8 fake keys, retry, sse; metrics on; the access
#      log at INFO into a file);
#   3. HTTPS: a TLS-terminating nginx (2 workers, certificates made now with
#      openssl) in front of the same upstream, and in front of it nginx
#      (`proxy_pass https://`, `proxy_ssl_session_reuse on`, keep-alive,
#      verification on) and sluice (`upstream.ca_file`), 1 worker/thread each;
#      the terminator's access log counts the TLS connections each opened;
#   4. wrk (bench/chat.lua, ~1.2 KB body, one thread) for S seconds (10)
#      after a 1 s warm-up: plain at 1, 16, 64 connections, streamed at 1
#      and 64, HTTPS at 64; plain at 1 and 64 and HTTPS three times
#      (medians); every target in turn;
#   5. per run: requests/s, p50/p90/p99, errors, CPU µs per request
#      (utime+stime of the target's processes over the run / requests),
#      RSS after the run, upstream connections opened;
#   6. validity: the upstream must answer directly at least twice as many
#      requests/s as the faster nginx does through it at 64 connections
#      (medians); otherwise the report says INVALID at the top;
#   7. idle: every sluice left idle for 30 s (BENCH_IDLE_S) after the load:
#      CPU ticks used (expected 0);
#   8. BENCH_STREAMS=1 also runs bench/streams.sh (2,000 concurrent streams);
#   9. writes bench/results/<date>-<commit>.md.
#
# The machine is shared: CPU per request and bench/profile.sh's instruction
# counts are the stable figures; requests/s swing with other work.
# Every load is bounded in time; every process it starts is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=10
REPEAT=3
IDLE_S=${BENCH_IDLE_S:-30}
BUILD=${BENCH_BUILD:-$ROOT/build-bench}
OUT=""
DO_BUILD=1

while [ $# -gt 0 ]; do
    case "$1" in
    --quick) DURATION=3; REPEAT=1; IDLE_S=${BENCH_IDLE_S:-5} ;;
    --duration) DURATION=$2; shift ;;
    --out) OUT=$2; shift ;;
    --no-build) DO_BUILD=0 ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

"$ROOT/scripts/deps.sh" --bench >&2
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [ "$DO_BUILD" = 1 ]; then
    log "building (RelWithDebInfo) in $BUILD"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DSLUICE_SANITIZE=OFF >/dev/null
    cmake --build "$BUILD" -j"$(nproc)" >/dev/null
fi
for b in sluice fast_upstream; do
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

start_fast_upstream
log "fast upstream on $FAST_PORT"
make_certs "$TMP/tls" || { cat "$TMP/tls/openssl.log" >&2; exit 1; }
write_keys

# ---- nginx instances ---------------------------------------------------
# nginx_start NAME WORKERS SERVER_BLOCK: sets NGX_PORT_<NAME>, NGX_PID_<NAME>
nginx_start() {
    local name=$1 workers=$2 body=$3 d="$TMP/nginx-$1" port
    port=$(free_port)
    mkdir -p "$d"
    cat >"$d/nginx.conf" <<EOF
worker_processes $workers;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    client_body_buffer_size 64k;
    keepalive_requests 100000;
    keepalive_timeout 300s;
${body//@PORT@/$port}
}
EOF
    "$NGINX" -c "$d/nginx.conf" -p "$d" >"$d/out.log" 2>&1 &
    local pid=$!
    PIDS+=($pid)
    wait_port "$port" || { cat "$d/out.log" "$d/error.log" >&2 2>/dev/null; exit 1; }
    printf -v "NGX_PORT_$name" '%s' "$port"
    printf -v "NGX_PID_$name" '%s' "$pid"
}
nginx_pids() { echo "$1 $(pgrep -P "$1" | tr '\n' ' ')"; }

PROXY_PLAIN="
    upstream up { server 127.0.0.1:$FAST_PORT; keepalive 64; keepalive_requests 100000; }
    server {
        listen 127.0.0.1:@PORT@ reuseport;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_buffering off;
            proxy_request_buffering off;
        }
    }"
nginx_start n1 1 "$PROXY_PLAIN"
nginx_start n2 2 "$PROXY_PLAIN"

# the TLS terminator: the HTTPS upstream (logs each request's connection
# serial number, its request count on that connection and session reuse)
nginx_start term 2 "
    log_format conns '\$connection \$connection_requests \$ssl_session_reused';
    upstream fast { server 127.0.0.1:$FAST_PORT; keepalive 64; keepalive_requests 100000; }
    server {
        listen 127.0.0.1:@PORT@ ssl reuseport;
        access_log $TMP/term-access.log conns;
        ssl_certificate $TMP/tls/server.pem;
        ssl_certificate_key $TMP/tls/server.key;
        ssl_session_cache shared:BENCH:10m;
        location / {
            proxy_pass http://fast;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_buffering off;
            proxy_request_buffering off;
        }
    }"
TERM_PORT=$NGX_PORT_term
nginx_start n1s 1 "
    upstream tup { server 127.0.0.1:$TERM_PORT; keepalive 64; keepalive_requests 100000; }
    server {
        listen 127.0.0.1:@PORT@ reuseport;
        location / {
            proxy_pass https://tup;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_ssl_session_reuse on;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate $TMP/tls/ca.pem;
            proxy_ssl_name localhost;
            proxy_buffering off;
            proxy_request_buffering off;
        }
    }"
log "nginx: 1 worker on $NGX_PORT_n1, 2 workers on $NGX_PORT_n2, TLS terminator on $TERM_PORT, https proxy on $NGX_PORT_n1s"

# ---- sluice instances --------------------------------------------------
# sluice_start NAME THREADS BASE_URL [UPSTREAM_EXTRA]: SL_PORT_/SL_PID_<NAME>
sluice_start() {
    local name=$1 port pid try
    # a port free when probed may be taken by the time sluice binds it
    # (other work on the machine): a few tries
    for try in 1 2 3; do
        port=$(free_port)
        sluice_config "$port" "$2" "$3" "$TMP/sluice-$name.access.log" "${4:-}" \
            >"$TMP/sluice-$name.yaml"
        (cd "$ROOT" && exec "$BUILD/sluice" -c "$TMP/sluice-$name.yaml") \
            >>"$TMP/sluice-$name.err" 2>&1 &
        pid=$!
        PIDS+=($pid)
        wait_port "$port" && kill -0 "$pid" 2>/dev/null && break
        kill "$pid" 2>/dev/null || true
        [ "$try" = 3 ] && { cat "$TMP/sluice-$name.err" >&2; exit 1; }
    done
    local code
    code=$(curl -s -o "$TMP/check.json" -w '%{http_code}' \
        -H "Authorization: Bearer $AUTH_KEY" -H 'Content-Type: application/json' \
        -d '{"model":"openai-gpt-oss-20b","messages":[{"role":"user","content":"hi"}]}' \
        "http://127.0.0.1:$port/v1/chat/completions")
    if [ "$code" != 200 ]; then
        echo "run.sh: sluice $name answered $code: $(cat "$TMP/check.json")" >&2
        tail -20 "$TMP/sluice-$name.err" >&2
        exit 1
    fi
    printf -v "SL_PORT_$name" '%s' "$port"
    printf -v "SL_PID_$name" '%s' "$pid"
}
sluice_start s1 1 "http://127.0.0.1:$FAST_PORT/v1"
sluice_start s2 2 "http://127.0.0.1:$FAST_PORT/v1"
sluice_start s1s 1 "https://127.0.0.1:$TERM_PORT/v1" ", ca_file: \"$TMP/tls/ca.pem\""
IDLE_RSS=$(kb_sum VmRSS "$SL_PID_s2")
log "sluice: 1 thread on $SL_PORT_s1, 2 threads on $SL_PORT_s2, https upstream (1 thread) on $SL_PORT_s1s; idle RSS (2 threads) $IDLE_RSS kB"

# ---- one wrk run -------------------------------------------------------
# run_wrk TARGET MODE CONNS: appends a row to $TMP/rows
#   target mode conns rps p50 p90 p99 errors cpu_us_per_req rss_kb opened resumed requests
run_wrk() {
    local target=$1 mode=$2 c=$3 port pids="" scheme=http auth=$AUTH_KEY
    case "$target" in
    direct) port=$FAST_PORT; pids=$FAST_PID ;;
    nginx-1w) port=$NGX_PORT_n1; pids=$(nginx_pids "$NGX_PID_n1") ;;
    nginx-2w) port=$NGX_PORT_n2; pids=$(nginx_pids "$NGX_PID_n2") ;;
    sluice-1t) port=$SL_PORT_s1; pids=$SL_PID_s1 ;;
    sluice-2t) port=$SL_PORT_s2; pids=$SL_PID_s2 ;;
    direct-tls) port=$TERM_PORT; pids=$(nginx_pids "$NGX_PID_term"); scheme=https ;;
    nginx-1w-https) port=$NGX_PORT_n1s; pids=$(nginx_pids "$NGX_PID_n1s") ;;
    sluice-1t-https) port=$SL_PORT_s1s; pids=$SL_PID_s1s ;;
    esac
    local url="$scheme://127.0.0.1:$port/v1/chat/completions" stream=0
    [ "$mode" = stream ] && stream=1
    # warm-up: connections opened, caches filled
    BENCH_STREAM=$stream BENCH_AUTH=$auth timeout 10 \
        wrk -t1 -c"$c" -d1s -s "$ROOT/bench/chat.lua" "$url" >/dev/null 2>&1 || true
    fast_reset
    : >"$TMP/term-access.log"
    for f in "$TMP"/sluice-*.access.log "$TMP"/sluice-*.err; do : >"$f"; done
    local c0 c1 out
    # shellcheck disable=SC2086
    c0=$(cpu_ticks $pids)
    out=$(BENCH_STREAM=$stream BENCH_AUTH=$auth timeout $((DURATION + 30)) \
        wrk -t1 -c"$c" -d"${DURATION}s" --latency -s "$ROOT/bench/chat.lua" "$url" \
        2>&1 | grep '^BENCH ' || echo 'BENCH {}')
    # shellcheck disable=SC2086
    c1=$(cpu_ticks $pids)
    local opened resumed="-" rss
    # shellcheck disable=SC2086
    rss=$(kb_sum VmRSS $pids)
    case "$target" in
    direct) opened="-" ;;
    direct-tls|*-https)
        # connections of the terminator that served their first request
        # during the run (and of those, resumed TLS sessions)
        opened=$(awk '$2 == 1' "$TMP/term-access.log" | wc -l)
        resumed=$(awk '$2 == 1 && $3 == "r"' "$TMP/term-access.log" | wc -l) ;;
    *) opened=$(fast_conns) ;;
    esac
    local j=${out#BENCH }
    g() { echo "$j" | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
    local req dur rps cpu="-"
    req=$(g requests); dur=$(g duration_us)
    [ -z "$req" ] && req=0
    { [ -z "$dur" ] || [ "$dur" = 0 ]; } && dur=1
    rps=$(awk -v r="$req" -v d="$dur" 'BEGIN{printf "%.0f", r / (d / 1e6)}')
    [ "$req" -gt 0 ] && cpu=$(awk -v t=$((c1 - c0)) -v hz="$HZ" -v r="$req" \
        'BEGIN{printf "%.1f", t / hz / r * 1e6}')
    local e1 e2
    e1=$(g errors); e2=$(g non2xx)
    local err=$((${e1:-0} + ${e2:-0}))
    echo "$target $mode $c $rps $(g p50_us) $(g p90_us) $(g p99_us) $err $cpu $rss $opened $resumed $req" >>"$TMP/rows"
    log "$target $mode c=$c: $rps req/s p50 $(g p50_us) us p99 $(g p99_us) us, errors $err, CPU $cpu us/req, RSS $rss kB, upstream conns $opened"
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$TMP/rows"
PLAIN="direct nginx-1w nginx-2w sluice-1t sluice-2t"
HTTPS="direct-tls nginx-1w-https sluice-1t-https"
for c in 1 16 64; do
    for t in $PLAIN; do run_wrk "$t" plain "$c"; done
done
for c in 1 64; do
    for t in $PLAIN; do run_wrk "$t" stream "$c"; done
done
for t in $HTTPS; do run_wrk "$t" plain 64; done
# the named targets twice more: medians of three, targets interleaved
for _ in $(seq 2 "$REPEAT"); do
    for c in 64 1; do
        for t in $PLAIN; do run_wrk "$t" plain "$c"; done
    done
    for t in $HTTPS; do run_wrk "$t" plain 64; done
done
PEAK_RSS=$(kb_sum VmHWM "$SL_PID_s2")

# ---- idle: every sluice, after the load --------------------------------
sleep 2 # let keep-alive clients' last bytes settle
I0=$(cpu_ticks "$SL_PID_s1"); J0=$(cpu_ticks "$SL_PID_s2"); K0=$(cpu_ticks "$SL_PID_s1s")
log "idle for $IDLE_S s"
sleep "$IDLE_S"
IDLE_TICKS="sluice-1t $(($(cpu_ticks "$SL_PID_s1") - I0)), sluice-2t $(($(cpu_ticks "$SL_PID_s2") - J0)), sluice-1t-https $(($(cpu_ticks "$SL_PID_s1s") - K0))"
log "idle CPU ticks over $IDLE_S s: $IDLE_TICKS"

# ---- 2,000 concurrent streams (bench/streams.sh), on request -----------
STREAMS_LINE="not run (BENCH_STREAMS=1 runs bench/streams.sh: 2,000 streams, its own sluice and mock)"
if [ -n "${BENCH_STREAMS:-}" ] && [ -x "$BUILD/stream_load" ]; then
    log "2,000 concurrent streams (bench/streams.sh, about a minute)"
    if (cd "$ROOT" && BUILD="$BUILD" timeout 600 bench/streams.sh) >"$TMP/streams.txt" 2>&1; then
        STREAMS_LINE=$(sed -n '/^== summary/,$p' "$TMP/streams.txt" |
            sed '1d; s/^ *//' | paste -sd';' | sed 's/;/; /g')
    else
        STREAMS_LINE="bench/streams.sh failed: $(tail -3 "$TMP/streams.txt" | tr '\n' ' ')"
    fi
fi

# ---- report --------------------------------------------------------------
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- core plugins sdk bench 2>/dev/null || COMMIT="$COMMIT+dirty"
DATE=$(date -u +%Y-%m-%d)
if [ -z "$OUT" ]; then
    mkdir -p "$ROOT/bench/results"
    OUT="$ROOT/bench/results/$DATE-$COMMIT.md"
fi
CPU=$(awk -F: '/model name/ {sub(/^ +/, "", $2); print $2; exit}' /proc/cpuinfo)
NGV=$("$NGINX" -v 2>&1 | sed 's/.*\///')

awk -v D="$DATE" -v C="$COMMIT" -v CPU="$CPU" -v NP="$(nproc)" -v K="$(uname -r)" \
    -v NGV="$NGV" -v IDLE="$IDLE_RSS" -v PEAK="$PEAK_RSS" -v DUR="$DURATION" \
    -v REP="$REPEAT" -v IDLES="$IDLE_S" -v IDLET="$IDLE_TICKS" \
    -v STREAMS="$STREAMS_LINE" -v L0="$LOAD0" -v L1="$LOAD1" -f "$ROOT/bench/report.awk" \
    "$TMP/rows" >"$OUT"

log "wrote $OUT"
cat "$OUT"
