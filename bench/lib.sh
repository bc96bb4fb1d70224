# bench/lib.sh - shell helpers shared by bench/run.sh and bench/profile.sh
# (sourced, not run): ports, process CPU and memory, the fast upstream, the
# test certificates and the production-shaped sluice config.
#
# The caller sets ROOT, BUILD and TMP and keeps a PIDS array of what it
# started (its cleanup kills them).

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

free_port() {
    local p
    for _ in $(seq 200); do
        # below the ephemeral range (32768+): a port a client socket holds
        # answers no probe but cannot be bound
        p=$((20000 + RANDOM % 12000))
        if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    echo "bench: no free port" >&2
    return 1
}

# wait until a TCP port answers (bounded: 30 s, valgrind starts slowly)
wait_port() {
    for _ in $(seq 600); do
        (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "bench: nothing listens on port $1" >&2
    return 1
}

HZ=$(getconf CLK_TCK)
# utime+stime (clock ticks) of the given processes, all their threads
cpu_ticks() {
    local t=0 p
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] || continue
        t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
    done
    echo "$t"
}
# sum of a /proc/<pid>/status field (kB) over the given processes
kb_sum() {
    local key=$1 t=0 p v
    shift
    for p in "$@"; do
        v=$(awk -v k="$key" '$1 == k":" {print $2}' "/proc/$p/status" 2>/dev/null)
        t=$((t + ${v:-0}))
    done
    echo "$t"
}

# start_fast_upstream: sets FAST_PORT, FAST_PID
start_fast_upstream() {
    "$BUILD/fast_upstream" --port 0 --port-file "$TMP/fast.port" --chunks 20 \
        >"$TMP/fast.log" 2>&1 &
    FAST_PID=$!
    PIDS+=($FAST_PID)
    for _ in $(seq 100); do [ -s "$TMP/fast.port" ] && break; sleep 0.05; done
    FAST_PORT=$(cat "$TMP/fast.port")
    wait_port "$FAST_PORT"
}
fast_reset() { curl -s -o /dev/null -X POST "http://127.0.0.1:$FAST_PORT/_fast/reset"; }
# connections the fast upstream accepted since the reset (minus this one)
fast_conns() {
    local n
    n=$(curl -s "http://127.0.0.1:$FAST_PORT/_fast/stats" |
        sed -n 's/.*"connections_opened":\([0-9]*\).*/\1/p')
    echo $((${n:-1} - 1))
}

# make_certs DIR: a CA and a server certificate it signs for 127.0.0.1 and
# localhost (made now with openssl: no key is kept in the repository)
make_certs() {
    local d=$1
    mkdir -p "$d"
    (
        cd "$d"
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 \
            -subj '/CN=sluice bench CA' -keyout ca.key -out ca.pem
        openssl req -newkey rsa:2048 -nodes -subj '/CN=localhost' \
            -keyout server.key -out server.csr
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key \
            -CAcreateserial -days 2 -extfile san.ext -out server.pem
    ) >"$d/openssl.log" 2>&1
}

AUTH_KEY="sk-client-bench-0123456789abcdef"
# write_keys: 8 fake upstream keys and one client for the auth stage
write_keys() {
    for i in 1 2 3 4 5 6 7 8; do
        echo "sk-bench-fake-key-000000000000000$i"
    done >"$TMP/keys.txt"
    echo "$AUTH_KEY bench" >"$TMP/clients.txt"
    chmod 600 "$TMP/keys.txt" "$TMP/clients.txt"
}

# sluice_config PORT THREADS BASE_URL LOGFILE [UPSTREAM_EXTRA]: the
# production shape (default.yaml's stages: auth, context, keyring, retry,
# sse; metrics on; the access log at INFO into LOGFILE); BENCH_CLIENT=curl
# puts every upstream on libcurl (upstream.client), for A/B runs
sluice_config() {
    local port=$1 threads=$2 url=$3 logfile=$4 extra=${5:-}
    cat <<EOF
server: { host: 127.0.0.1, port: $port, threads: $threads, max_body_bytes: 4194304 }
upstream: { base_url: "$url", timeout_s: 30, client: ${BENCH_CLIENT:-auto}$extra }
log: { level: INFO, format: json, file: "$logfile" }
plugins_dir: "$BUILD/plugins"
pipeline:
  - plugin: auth
    config: { clients_file: "$TMP/clients.txt" }
  - plugin: context
    config: { default_model: openai-gpt-oss-120b, on_unknown_model: pass }
  - plugin: keyring
    config: { keys_file: "$TMP/keys.txt" }
  - plugin: retry
  - plugin: sse
EOF
}
