#!/usr/bin/env bash
# sdk_example.sh - the SDK example stage, built out of tree with only
# sluice.h, loaded into a running gateway, seen to act.
#
# Run by CTest from the repo root with SLUICE_BIN, MOCK_BIN, PLUGINS_DIR set
# (tests/CMakeLists.txt). Steps:
#   1. copy sdk/sluice.h, sdk/sluice_test.h + sdk/example/ to a temp dir
#      outside the repo and build example_header.so there with plain cc; build
#      its unit test there against libsluice_test.so and run it;
#   2. sluice --check accepts a pipeline using it, and refuses (non-zero,
#      naming the stage) one whose example config is invalid;
#   3. start the mock upstream and sluice with the example stage, POST a
#      completion (plain and streamed): 200, the configured header is on the
#      response, and the mock recorded the request.
set -uo pipefail

: "${SLUICE_BIN:?SLUICE_BIN not set (run through ctest)}"
: "${MOCK_BIN:?MOCK_BIN not set (run through ctest)}"
: "${PLUGINS_DIR:?PLUGINS_DIR not set (run through ctest)}"

SRC="${SLUICE_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"

# The gateway's environment overrides would win over the YAML written here.
unset HOST PORT MEGALLM_BASE_URL MEGALLM_TIMEOUT MEGALLM_MAX_RETRIES \
      MAX_KEY_RETRIES
export LOG_LEVEL=INFO

failures=0
pass() { echo "PASS: $*"; }
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}
die() {
    echo "FAIL: $*"
    echo "sdk_example: FAILED (aborted)"
    exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-sdk-example.XXXXXX") ||
    die "mktemp failed"
mock_pid=""
sluice_pid=""

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
    local pid
    for pid in "$sluice_pid" "$mock_pid"; do
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
        fi
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Print a log file indented, for a failure's context.
show_log() {
    echo "---- $1"
    sed 's/^/    /' "$2" 2>/dev/null | tail -n 40
    echo "----"
}

# ---- 1. build out of tree ------------------------------------------------
case "$work" in
    "$SRC"/*) die "temp dir $work is inside the repo" ;;
esac
mkdir -p "$work/sdk/example"
cp "$SRC/sdk/sluice.h" "$SRC/sdk/sluice_test.h" "$work/sdk/" ||
    die "copy sluice.h, sluice_test.h"
cp -R "$SRC/sdk/example/." "$work/sdk/example/" || die "copy sdk/example"
rm -f "$work/sdk/example/"*.so "$work/sdk/example/test_example_header"

so="$work/sdk/example/example_header.so"
if (cd "$work/sdk/example" &&
    cc -std=c11 -Wall -Wextra -Werror -pedantic -shared -fPIC \
        -fvisibility=hidden -I.. example_header.c -o "$so") \
    >"$work/cc.log" 2>&1; then
    pass "example_header.so built out of tree with only sluice.h"
else
    show_log "cc output" "$work/cc.log"
    die "building the example out of tree"
fi

# the stage's unit test, with the stage test host (no server, no mock)
: "${SLUICE_BUILD:?SLUICE_BUILD not set (run through ctest)}"
unit_cflags="-O0 -g -Werror"
# a sanitizer build's library needs its runtime in the program too
# (ldd's output first: grep -q may close the pipe early, and pipefail)
libs=$(ldd "$SLUICE_BUILD/sdk/libsluice_test.so" 2>/dev/null)
if [[ "$libs" == *libasan* ]]; then
    unit_cflags="$unit_cflags -fsanitize=address,undefined"
fi
if make -C "$work/sdk/example" test SLUICE_LIB="$SLUICE_BUILD/sdk" \
    CFLAGS="$unit_cflags" >"$work/unit.log" 2>&1; then
    pass "the example's unit test (sluice_test.h) built out of tree and passed"
else
    show_log "make test output" "$work/unit.log"
    fail "the example's unit test with the stage test host"
fi

exports=$(nm -D --defined-only "$so" 2>/dev/null | awk '{print $3}' |
    grep -v -e '^_init$' -e '^_fini$' -e '^$' | tr '\n' ' ')
if [ "$exports" = "sluice_plugin_entry " ]; then
    pass "the example exports only sluice_plugin_entry"
else
    fail "the example exports: $exports(expected only sluice_plugin_entry)"
fi

# ---- the mock upstream ---------------------------------------------------
"$MOCK_BIN" --host 127.0.0.1 --port 0 --port-file "$work/mock.port" --quiet \
    >"$work/mock.log" 2>&1 &
mock_pid=$!
mock_port=""
for _ in $(seq 1 100); do
    kill -0 "$mock_pid" 2>/dev/null || break
    if [ -s "$work/mock.port" ]; then
        mock_port=$(tr -dc '0-9' <"$work/mock.port")
        if [ -n "$mock_port" ] && curl -fsS -o /dev/null --max-time 2 \
            "http://127.0.0.1:$mock_port/_mock/health"; then
            break
        fi
        mock_port=""
    fi
    sleep 0.1
done
if [ -z "$mock_port" ]; then
    show_log "mock log" "$work/mock.log"
    die "mock upstream did not come up"
fi
pass "mock upstream on port $mock_port"

# write_pipeline FILE PORT CONFIG_FLOW_MAP
write_pipeline() {
    cat >"$1" <<EOF
server: { host: 127.0.0.1, port: $2, threads: 2 }
upstream: { base_url: "http://127.0.0.1:$mock_port/v1", timeout_s: 30 }
plugins_dir: "$PLUGINS_DIR"
pipeline:
  - plugin: example_header
    path: "$so"
    config: $3
EOF
}

# ---- 2. --check ----------------------------------------------------------
good_cfg='{ header: X-From-Example, value: out-of-tree }'
write_pipeline "$work/good.yaml" 0 "$good_cfg"
if "$SLUICE_BIN" --check -c "$work/good.yaml" >"$work/check-good.log" 2>&1; then
    pass "sluice --check accepts the example pipeline"
else
    show_log "sluice --check output" "$work/check-good.log"
    fail "sluice --check refused the valid example pipeline"
fi

# a pipeline name that is not the descriptor's: loads, with a warning
sed 's/plugin: example_header/plugin: taggerx/' "$work/good.yaml" >"$work/renamed.yaml"
if "$SLUICE_BIN" --check -c "$work/renamed.yaml" >"$work/check-renamed.log" 2>&1 &&
    grep -q "descriptor says 'example_header'" "$work/check-renamed.log"; then
    pass "plugin: taggerx loading example_header.so passes with a warning naming both"
else
    show_log "sluice --check output" "$work/check-renamed.log"
    fail "no warning for a plugin name that is not the descriptor's"
fi

write_pipeline "$work/bad.yaml" 0 '{ header: [X-A, X-B], value: out-of-tree }'
"$SLUICE_BIN" --check -c "$work/bad.yaml" >"$work/check-bad.log" 2>&1
rc=$?
if [ "$rc" -ne 0 ] && grep -q 'example_header' "$work/check-bad.log" &&
    grep -q 'config\.header' "$work/check-bad.log"; then
    pass "sluice --check refuses an invalid example config (exit $rc, names the stage)"
else
    show_log "sluice --check output" "$work/check-bad.log"
    fail "sluice --check on an invalid example config: exit $rc, expected non-zero and a message naming example_header and config.header"
fi

# ---- 3. a running gateway with the example stage ------------------------
# Port 0: the kernel picks a free port, sluice names it in its "listening"
# log line. No guessing, no retries.
write_pipeline "$work/run.yaml" 0 "$good_cfg"
"$SLUICE_BIN" -c "$work/run.yaml" >"$work/sluice.log" 2>&1 &
sluice_pid=$!
sluice_port=""
for _ in $(seq 1 200); do
    sluice_port=$(sed -n 's/.*"msg":"listening".*"port":\([0-9][0-9]*\).*/\1/p' \
        "$work/sluice.log" | head -n 1)
    [ -n "$sluice_port" ] && break
    kill -0 "$sluice_pid" 2>/dev/null || break
    sleep 0.05
done
if [ -z "$sluice_port" ]; then
    show_log "sluice log" "$work/sluice.log"
    die "sluice did not log a \"msg\":\"listening\" line with its port"
fi
pass "sluice with the example stage is listening on port $sluice_port"
if curl -fsS -o "$work/health.json" --max-time 5 \
    "http://127.0.0.1:$sluice_port/health"; then
    if grep -q 'example_header' "$work/health.json"; then
        pass "/health answers and lists the example_header stage"
    else
        show_log "/health" "$work/health.json"
        fail "/health does not list the example_header stage"
    fi
else
    show_log "sluice log" "$work/sluice.log"
    die "GET /health failed on port $sluice_port"
fi

marker="sdk-example-$$-$RANDOM"
url="http://127.0.0.1:$sluice_port/v1/chat/completions"
body='{"model":"openai-gpt-oss-20b","messages":[{"role":"user","content":"'$marker'"}]}'

# has_header FILE NAME VALUE: a header line "NAME: VALUE" (name any case).
has_header() {
    tr -d '\r' <"$1" | grep -qi "^$2: $3\$"
}

status=$(curl -sS --max-time 30 -D "$work/plain.headers" -o "$work/plain.body" \
    -w '%{http_code}' -H 'Content-Type: application/json' -d "$body" "$url")
if [ "$status" = "200" ]; then
    pass "plain completion: 200"
else
    show_log "response body" "$work/plain.body"
    fail "plain completion: status '$status', expected 200"
fi
if has_header "$work/plain.headers" X-From-Example out-of-tree; then
    pass "plain completion carries 'X-From-Example: out-of-tree'"
else
    show_log "response headers" "$work/plain.headers"
    fail "plain completion lacks 'X-From-Example: out-of-tree'"
fi

stream_body='{"model":"openai-gpt-oss-20b","stream":true,"messages":[{"role":"user","content":"'$marker'-stream"}]}'
status=$(curl -sS -N --max-time 30 -D "$work/stream.headers" \
    -o "$work/stream.body" -w '%{http_code}' \
    -H 'Content-Type: application/json' -d "$stream_body" "$url")
if [ "$status" = "200" ] && grep -q '^data: \[DONE\]' "$work/stream.body"; then
    pass "streamed completion: 200, ends with data: [DONE]"
else
    show_log "stream body" "$work/stream.body"
    fail "streamed completion: status '$status' (expected 200 and a [DONE] event)"
fi
if has_header "$work/stream.headers" X-From-Example out-of-tree; then
    pass "streamed completion carries 'X-From-Example: out-of-tree'"
else
    show_log "response headers" "$work/stream.headers"
    fail "streamed completion lacks 'X-From-Example: out-of-tree'"
fi

# The mock records the body as a JSON string; the marker has no characters
# that need escaping, so it appears verbatim.
if curl -fsS --max-time 5 "http://127.0.0.1:$mock_port/_mock/requests" \
    >"$work/mock.requests"; then
    if grep -Eq '"path" *: *"/v1/chat/completions"' "$work/mock.requests" &&
        grep -q "$marker" "$work/mock.requests"; then
        pass "the mock upstream recorded the forwarded request"
    else
        show_log "mock requests" "$work/mock.requests"
        fail "the mock upstream did not record the request with marker $marker"
    fi
else
    fail "GET /_mock/requests failed"
fi

# The example's metrics on /metrics: the counter from on_request (one plain,
# one streamed), the histogram from on_complete, the gauge from collect. A
# request is counted when the server completes it, which may be just after
# the client got its last byte: poll (bounded, 5 s).
metrics_ok=0
for _ in $(seq 1 50); do
    if curl -fsS --max-time 5 "http://127.0.0.1:$sluice_port/metrics" \
        >"$work/metrics.txt" &&
        grep -qx 'sluice_example_requests_total{stream="false"} 1' "$work/metrics.txt" &&
        grep -qx 'sluice_example_requests_total{stream="true"} 1' "$work/metrics.txt" &&
        grep -qx 'sluice_example_attempts_count 2' "$work/metrics.txt" &&
        grep -qx 'sluice_example_in_progress 0' "$work/metrics.txt"; then
        metrics_ok=1
        break
    fi
    sleep 0.1
done
if [ "$metrics_ok" -eq 1 ]; then
    pass "/metrics shows the example stage's counter, histogram and collected gauge"
else
    show_log "metrics" "$work/metrics.txt"
    fail "/metrics lacks the example stage's series"
fi

# A clean stop: SIGTERM ends sluice with status 0 (and, in the sanitizer
# build, with no sanitizer report).
kill -TERM "$sluice_pid"
stopped=0
for _ in $(seq 1 200); do
    if ! kill -0 "$sluice_pid" 2>/dev/null; then
        stopped=1
        break
    fi
    sleep 0.05
done
if [ "$stopped" -eq 1 ]; then
    wait "$sluice_pid"
    rc=$?
    sluice_pid=""
    if [ "$rc" -eq 0 ]; then
        pass "sluice stopped cleanly on SIGTERM"
    else
        show_log "sluice log" "$work/sluice.log"
        fail "sluice exited with status $rc on SIGTERM"
    fi
else
    fail "sluice did not stop within 10 s of SIGTERM"
fi
if grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:' "$work/sluice.log"; then
    show_log "sluice log" "$work/sluice.log"
    fail "sanitizer report in sluice's log"
fi

if [ "$failures" -eq 0 ]; then
    echo "sdk_example: all checks passed"
    exit 0
fi
echo "sdk_example: $failures check(s) FAILED"
exit 1
