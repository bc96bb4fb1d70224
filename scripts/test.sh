#!/usr/bin/env bash
# test.sh - README command 2: install what is missing and run every test.
#
#   1. packages (scripts/deps.sh --test) and the npm client (tests/client)
#   2. a normal build in build/ and the whole CTest suite
#   3. an ASan+UBSan build in build-asan/ and the whole suite again
#
# Exits non-zero when any step fails. SLUICE_TEST_SKIP_ASAN=1 skips step 3
# for a quick local run (CI never sets it: .ci/run runs the full thing).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

JOBS="$(nproc)"
# Tests pick their own ports and settings: the gateway's override variables
# from the caller's shell must not leak into them.
unset HOST PORT MEGALLM_BASE_URL MEGALLM_TIMEOUT MEGALLM_MAX_RETRIES \
      MAX_KEY_RETRIES LOG_LEVEL
CTEST_JOBS="${SLUICE_CTEST_JOBS:-2}"

declare -a summary=()
failed=0

# run NAME CMD... : run a step, record PASS/FAIL and its duration.
run() {
    local name="$1"
    shift
    local t0 rc
    t0=$(date +%s)
    echo
    echo "==== $name: $*"
    set +e
    "$@"
    rc=$?
    set -e
    local dt=$(($(date +%s) - t0))
    if [ "$rc" -eq 0 ]; then
        summary+=("PASS  $name (${dt}s)")
    else
        summary+=("FAIL  $name (exit $rc, ${dt}s)")
        failed=1
    fi
    return "$rc"
}

skip() {
    summary+=("SKIP  $1 ($2)")
}

print_summary() {
    echo
    echo "==== test.sh summary"
    local line
    for line in "${summary[@]}"; do
        echo "  $line"
    done
    if [ "$failed" -eq 0 ]; then
        echo "==== ALL PASSED"
    else
        echo "==== FAILED"
    fi
}

# shellcheck disable=SC2317  # called through run
npm_install() {
    if ! command -v npm >/dev/null 2>&1; then
        echo "test.sh: npm not found (node: $(command -v node || echo none))" >&2
        return 1
    fi
    (cd "$1" && npm ci --no-audit --no-fund)
}

# suite NAME BUILDDIR CMAKE_ARGS... : configure, build, ctest (with the
# variables in the array suite_env exported).
suite_env=()
suite() {
    local name="$1" dir="$2"
    shift 2
    if ! run "$name: configure" cmake -S . -B "$dir" -DSLUICE_TESTS=ON "$@"; then
        skip "$name: build + ctest" "configure failed"
        return 0
    fi
    if ! run "$name: build" cmake --build "$dir" -j"$JOBS"; then
        skip "$name: ctest" "build failed"
        return 0
    fi
    run "$name: ctest" env "${suite_env[@]}" ctest --test-dir "$dir" \
        --output-on-failure --no-tests=error -j"$CTEST_JOBS" || true
}

if ! run "deps" scripts/deps.sh --test; then
    print_summary
    exit 1
fi

# every npm-using test folder (tests/client, tests/browser, ...) pins its
# packages in a lockfile
for lock in tests/*/package-lock.json; do
    [ -f "$lock" ] || continue
    dir=$(dirname "$lock")
    run "npm ci ($dir)" npm_install "$dir" || true
done

suite "default build" build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_SANITIZE=OFF

if [ "${SLUICE_TEST_SKIP_ASAN:-0}" = "1" ]; then
    skip "asan+ubsan" "SLUICE_TEST_SKIP_ASAN=1"
else
    suite_env=(ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
               UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1)
    suite "asan+ubsan" build-asan -DCMAKE_BUILD_TYPE=Debug -DSLUICE_SANITIZE=ON
fi

print_summary
exit "$failed"
