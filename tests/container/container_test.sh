#!/usr/bin/env bash
# container_test.sh - the Dockerfile's image, built and run by the suite with
# podman (no Docker engine needed):
#
#   - base image: `debootstrap --variant=minbase bookworm` from Debian's
#     archive, `podman import`ed as localhost/sluice-debian:12-minbase (no
#     registry is needed). The rootfs tarball is cached between runs in
#     $SLUICE_CONTAINER_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/sluice-container),
#     outside any build tree; delete it to start over;
#   - `podman build --format docker` (the OCI format drops HEALTHCHECK),
#     run with `--runtime runc` (crun 1.8 refuses hybrid cgroup layouts) and
#     explicit ulimits (the defaults ask for limits root cannot raise in some
#     sandboxes), on the host network against the mock upstream;
#   - a data folder mounted read-only: keys, clients, admin token, each mode
#     600 and owned by uid 10001;
#   - checks: only *.so in /app/plugins, the HEALTHCHECK is `sluice --health`,
#     /health, a completion and a stream through the auth + keyring stages
#     (what the client got and what the mock saw), the process runs as uid
#     10001, `podman healthcheck run` passes, SIGTERM stops it within 2 s
#     (0.2 s measured; 2 s is the bound a container runtime's stop allows).
#
# Exit 0 pass, 1 fail, 77 skip (printed with the reason): not root, podman,
# runc or debootstrap missing, the Debian archive unreachable, or podman
# unable to run a container here. Registered in the default build's suite
# only (tests/CMakeLists.txt), not again under ASan.
#
# Environment: MOCK_BIN (set by CTest), SLUICE_SRC (default: this repo),
# SLUICE_DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail

SRC="${SLUICE_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
CACHE="${SLUICE_CONTAINER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice-container}"
MIRROR="${SLUICE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BASE=localhost/sluice-debian:12-minbase
IMAGE=localhost/sluice:container-test
NAME="sluice-container-test-$$"
CLIENT_KEY="sk-sluice-container-test-client-0123456789"
UP_KEY="sk-container-upstream-key-1"
ULIMITS=(--ulimit nofile=20000:20000 --ulimit nproc=32768:32768)
PODMAN=(podman --runtime runc)

skip() {
    echo "SKIP: $*"
    exit 77
}
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, and files owned by uid 10001)"
for tool in podman runc debootstrap curl; do
    command -v "$tool" >/dev/null 2>&1 ||
        skip "$tool is not installed (scripts/deps.sh --test installs it)"
done
[ -x "${MOCK_BIN:-}" ] || fail "MOCK_BIN is not set to the mock upstream"

WORK="$(mktemp -d /tmp/sluice-container.XXXXXX)"
MOCK_PID=""
cleanup() {
    "${PODMAN[@]}" rm -f -t 0 "$NAME" >/dev/null 2>&1 || true
    if [ -n "$MOCK_PID" ]; then
        kill "$MOCK_PID" 2>/dev/null || true
        wait "$MOCK_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# ---- base image: debootstrap once, cached -----------------------------------
make_base() {
    local tar="$CACHE/debian-12-minbase.tar"
    if [ ! -s "$tar" ]; then
        curl -fsS -o /dev/null --max-time 20 "$MIRROR/dists/bookworm/Release" ||
            skip "cannot reach the Debian archive at $MIRROR"
        mkdir -p "$CACHE"
        local root="$WORK/rootfs"
        echo "debootstrap --variant=minbase bookworm (cached in $tar)"
        if ! debootstrap --variant=minbase bookworm "$root" "$MIRROR" \
            >"$WORK/debootstrap.log" 2>&1; then
            tail -20 "$WORK/debootstrap.log" >&2
            fail "debootstrap failed"
        fi
        rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
        tar -C "$root" -cf "$tar.tmp" . && mv "$tar.tmp" "$tar"
        rm -rf "$root"
    fi
    podman import --change 'CMD ["/bin/bash"]' "$tar" "$BASE" >/dev/null
}
podman image exists "$BASE" || make_base

# can podman run a container on this machine at all?
if ! out=$("${PODMAN[@]}" run --rm --network host "${ULIMITS[@]}" "$BASE" \
    true 2>&1); then
    skip "podman cannot run a container here: $(echo "$out" | tail -3)"
fi

# ---- build --------------------------------------------------------------
echo "podman build --format docker"
t0=$(date +%s)
if ! "${PODMAN[@]}" build --format docker --pull=never --network host \
    "${ULIMITS[@]}" --build-arg "BASE=$BASE" -t "$IMAGE" "$SRC" \
    >"$WORK/build.log" 2>&1; then
    tail -30 "$WORK/build.log" >&2
    fail "podman build failed"
fi
echo "built in $(($(date +%s) - t0)) s"

plugins=$("${PODMAN[@]}" run --rm --network host "${ULIMITS[@]}" \
    --entrypoint /bin/ls "$IMAGE" /app/plugins)
[ -n "$plugins" ] || fail "no stages in /app/plugins"
if echo "$plugins" | grep -v '\.so$'; then
    fail "/app/plugins holds more than the stages' .so files"
fi
hc=$(podman image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE")
echo "$hc" | grep -q -- '--health' ||
    fail "the image's HEALTHCHECK is not sluice --health: $hc"

# ---- data folder, mock upstream -----------------------------------------
mkdir -p "$WORK/data"
echo "$UP_KEY" >"$WORK/data/keys.txt"
echo "$CLIENT_KEY container-test" >"$WORK/data/clients.txt"
echo "container-test-admin-token-0123456789" >"$WORK/data/admin.token"
chmod 600 "$WORK/data"/*
chown -R 10001:10001 "$WORK/data"
chmod 700 "$WORK/data"

"$MOCK_BIN" --host 127.0.0.1 --port 0 --port-file "$WORK/mock.port" --quiet \
    >"$WORK/mock.log" 2>&1 &
MOCK_PID=$!
for _ in $(seq 100); do
    [ -s "$WORK/mock.port" ] && break
    sleep 0.1
done
MOCK_PORT=$(cat "$WORK/mock.port")

# a free port for sluice (nothing answers on it)
PORT=""
for _ in $(seq 50); do
    p=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        PORT=$p
        break
    fi
done
[ -n "$PORT" ] || fail "no free port"

# ---- run ----------------------------------------------------------------
# --health-interval disable: no systemd here to schedule the checks (podman
# logs an error per run without it); the test runs the check itself
"${PODMAN[@]}" run -d --name "$NAME" --init --network host "${ULIMITS[@]}" \
    --health-interval disable \
    -v "$WORK/data:/app/data:ro" \
    -e HOST=127.0.0.1 -e PORT="$PORT" \
    -e MEGALLM_BASE_URL="http://127.0.0.1:$MOCK_PORT/v1" \
    "$IMAGE" >/dev/null
URL="http://127.0.0.1:$PORT"

up=""
for _ in $(seq 150); do
    if curl -fsS --max-time 2 "$URL/health" >/dev/null 2>&1; then
        up=1
        break
    fi
    sleep 0.2
done
if [ -z "$up" ]; then
    "${PODMAN[@]}" logs "$NAME" 2>&1 | tail -20 >&2
    fail "/health never answered 200"
fi
echo "ok /health"

chat() {
    curl -sS --max-time 30 -H "Authorization: Bearer $CLIENT_KEY" \
        -H 'Content-Type: application/json' -d "$1" "$URL/v1/chat/completions"
}
body=$(chat '{"model":"openai-gpt-oss-20b","messages":[{"role":"user","content":"hi from the container"}]}')
echo "$body" | grep -q 'Hello from mock upstream' || fail "completion: $body"
recs=$(curl -fsS --max-time 5 "http://127.0.0.1:$MOCK_PORT/_mock/requests")
echo "$recs" | grep -q "Bearer $UP_KEY" ||
    fail "the mock did not see the upstream key: $recs"
echo "ok completion"

stream=$(chat '{"model":"openai-gpt-oss-20b","stream":true,"messages":[{"role":"user","content":"hi"}]}')
echo "$stream" | grep -q '^data: \[DONE\]' || fail "stream: $stream"
echo "$stream" | grep -q '"content":"tok' || fail "stream had no content: $stream"
echo "ok stream"

hpids=$("${PODMAN[@]}" top "$NAME" hpid comm | awk '$2 == "sluice" {print $1}')
[ -n "$hpids" ] || fail "no sluice process in the container"
for hp in $hpids; do
    uid=$(awk '/^Uid:/ {print $2}' "/proc/$hp/status")
    [ "$uid" = 10001 ] || fail "sluice runs as uid $uid, not 10001"
done
echo "ok uid 10001"

"${PODMAN[@]}" healthcheck run "$NAME" || fail "podman healthcheck run failed"
echo "ok podman healthcheck run"

"${PODMAN[@]}" kill --signal TERM "$NAME" >/dev/null
t0=$(date +%s%N)
stopped=""
for _ in $(seq 40); do
    state=$(podman inspect --format '{{.State.Status}}' "$NAME")
    if [ "$state" = exited ]; then
        stopped=1
        break
    fi
    [ $((($(date +%s%N) - t0) / 1000000)) -lt 2000 ] || break
    sleep 0.05
done
ms=$((($(date +%s%N) - t0) / 1000000))
[ -n "$stopped" ] || fail "still running ${ms} ms after SIGTERM"
code=$(podman inspect --format '{{.State.ExitCode}}' "$NAME")
[ "$code" = 0 ] || fail "exit code $code after SIGTERM"
echo "ok SIGTERM: stopped in ${ms} ms, exit 0"
echo "PASS"
