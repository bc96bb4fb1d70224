#!/usr/bin/env bash
# demo.sh - README command 1: install what is missing, build, and run sluice
# on pipelines/demo.yaml against the bundled mock upstream (no real keys, no
# network). Ctrl-C stops both.
#
#   PORT=8000       where sluice listens (read by pipelines/demo.yaml)
#   MOCK_PORT=9100  where the mock upstream listens
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

MOCK_PORT="${MOCK_PORT:-9100}"
export MOCK_PORT
SLUICE_PORT="${PORT:-8000}"

scripts/deps.sh

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"

# Fake upstream keys: the mock accepts any. Keys files are secrets: 0600.
if [ ! -e data/demo-keys.txt ]; then
    mkdir -p data
    (
        umask 077
        printf '%s\n' sk-demo-0000000000000001 sk-demo-0000000000000002 \
            >data/demo-keys.txt
    )
    chmod 600 data/demo-keys.txt
    echo "demo: created data/demo-keys.txt (two fake keys)"
fi

mock_pid=""
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
    if [ -n "$mock_pid" ] && kill -0 "$mock_pid" 2>/dev/null; then
        kill "$mock_pid" 2>/dev/null || true
        wait "$mock_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

build/mock_upstream --port "$MOCK_PORT" --quiet &
mock_pid=$!

# Wait until the mock answers, and make sure it is ours that answers (a mock
# that failed to bind exits; another process may hold the port).
ready=0
for _ in $(seq 1 100); do
    if ! kill -0 "$mock_pid" 2>/dev/null; then
        echo "demo: mock_upstream exited; is port $MOCK_PORT in use?" \
             "Try MOCK_PORT=9101 $0" >&2
        exit 1
    fi
    if curl -fsS -o /dev/null --max-time 1 \
        "http://127.0.0.1:$MOCK_PORT/_mock/health" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.1
done
if [ "$ready" -ne 1 ] || ! kill -0 "$mock_pid" 2>/dev/null; then
    echo "demo: mock_upstream did not become ready on port $MOCK_PORT" >&2
    exit 1
fi

cat <<EOF

demo: mock upstream on 127.0.0.1:$MOCK_PORT; starting sluice on 127.0.0.1:$SLUICE_PORT.
In another terminal try a completion, then a streamed one:

curl -s http://127.0.0.1:$SLUICE_PORT/v1/chat/completions -H 'Content-Type: application/json' -d '{"model":"openai-gpt-oss-20b","messages":[{"role":"user","content":"Hello"}]}'

curl -sN http://127.0.0.1:$SLUICE_PORT/v1/chat/completions -H 'Content-Type: application/json' -d '{"model":"openai-gpt-oss-20b","messages":[{"role":"user","content":"Hello"}],"stream":true}'

Press Ctrl-C to stop sluice and the mock.

EOF

# In the foreground, not exec'd, so the EXIT trap still stops the mock.
# Ctrl-C reaches sluice directly (same process group); the script then exits
# with sluice's status.
set +e
build/sluice -c pipelines/demo.yaml
status=$?
set -e
exit "$status"
