#!/usr/bin/env bash
# observability_micro.sh - build and run bench/observability_micro.c against
# the core library of a build (default build/): wall-clock ns of a
# request's metric updates, of one access log line, of one render.
#   bench/observability_micro.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD=${1:-build}
out=$(mktemp -d "${TMPDIR:-/tmp}/sluice-micro.XXXXXX")
trap 'rm -rf "$out"' EXIT
cc -std=c11 -O2 -D_GNU_SOURCE -Icore -Isdk bench/observability_micro.c \
    "$BUILD/libsluice_core.a" \
    $(pkg-config --libs libmicrohttpd libcurl jansson yaml-0.1) \
    -lpthread -ldl -lm -o "$out/micro"
"$out/micro" 2>/dev/null
