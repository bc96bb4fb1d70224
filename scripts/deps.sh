#!/usr/bin/env bash
# deps.sh - install the Debian packages sluice needs, only those missing.
#
#   scripts/deps.sh            build dependencies (what scripts/demo.sh needs)
#   scripts/deps.sh --test     + test extras (clang/libFuzzer, Node.js + npm,
#                              promtool, headless Chromium, podman)
#   scripts/deps.sh --runtime  only the shared libraries a built sluice runs
#                              with (used by the Dockerfile's runtime stage)
#   scripts/deps.sh --bench    + the benchmark's tools (bench/run.sh): wrk,
#                              nginx (the reference proxy), valgrind
#
# Targets Debian 12. Runs as root, or through sudo when that exists. Does
# nothing (and needs no network) when everything is already installed.
# This file is the one place the package lists live.
set -euo pipefail

BUILD_PKGS=(build-essential pkg-config cmake libmicrohttpd-dev
            libcurl4-openssl-dev libjansson-dev libyaml-dev check
            libpcre2-dev libutf8proc-dev libsqlite3-dev libhiredis-dev
            curl ca-certificates)
# clang + its runtime libraries (libFuzzer, sanitizers) for fuzz targets;
# prometheus for `promtool check metrics` on a real /metrics scrape;
# chromium (+ its driver) to open /docs headless and screenshot it;
# openssl makes test_https's certificates at run time;
# podman + runc + debootstrap build and run the container image
# (tests/container/container_test.sh) - with podman's recommends the test
# relies on, which --no-install-recommends would leave out: catatonit for
# `run --init`, fuse-overlayfs where the kernel's overlay cannot be used,
# and the archive keyring debootstrap checks the release with;
# redis-server for the fleet tests' own Redis (tests/redis/redis_fixture.sh,
# started on loopback by CTest) and redis-tools' redis-cli, with which
# test_fleet_resync reads what Redis holds.
TEST_PKGS=(clang libclang-rt-dev clang-format prometheus chromium chromium-driver
           openssl podman runc debootstrap catatonit fuse-overlayfs uidmap
           slirp4netns debian-archive-keyring redis-server redis-tools)
# Node.js + npm for the openai client tests, only when no `node` is on PATH:
# a node from elsewhere (e.g. nodesource) conflicts with Debian's npm.
NODE_PKGS=(nodejs npm)
# bench/run.sh and bench/profile.sh
BENCH_PKGS=(wrk nginx valgrind openssl strace)
# libpcre2/libutf8proc: the context stage's tokenizers (plugin-private).
# libsqlite3: the local state backend (core/state_sqlite.c); libhiredis:
# the redis one (core/state_redis.c).
RUNTIME_PKGS=(libmicrohttpd12 libcurl4 libjansson4 libyaml-0-2
              libpcre2-8-0 libutf8proc2 libsqlite3-0 libhiredis0.14
              ca-certificates curl)

usage() {
    echo "usage: $0 [--test | --runtime | --bench]" >&2
    exit 2
}

mode="build"
case "${1:-}" in
    "") ;;
    --test) mode="test" ;;
    --runtime) mode="runtime" ;;
    --bench) mode="bench" ;;
    -h | --help) usage ;;
    *) usage ;;
esac
[ $# -le 1 ] || usage

wanted=()
case "$mode" in
    build) wanted=("${BUILD_PKGS[@]}") ;;
    test)
        wanted=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}")
        if ! command -v node >/dev/null 2>&1; then
            wanted+=("${NODE_PKGS[@]}")
        elif ! command -v npm >/dev/null 2>&1; then
            echo "deps.sh: warning: node is on PATH ($(command -v node)) but npm" \
                 "is not; install npm from the same source as node" >&2
        fi
        ;;
    runtime) wanted=("${RUNTIME_PKGS[@]}") ;;
    bench) wanted=("${BUILD_PKGS[@]}" "${BENCH_PKGS[@]}") ;;
esac

missing=()
for pkg in "${wanted[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        missing+=("$pkg")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "deps.sh: all ${#wanted[@]} $mode packages present"
    exit 0
fi

echo "deps.sh: installing: ${missing[*]}"
as_root=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        as_root=(sudo)
    else
        echo "deps.sh: not root and no sudo; as root run:" >&2
        echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
echo "deps.sh: done"
