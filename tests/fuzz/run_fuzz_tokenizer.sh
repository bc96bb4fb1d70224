#!/usr/bin/env bash
# run_fuzz_tokenizer.sh - CTest entry fuzz/fuzz_tokenizer: builds
# tests/fuzz/fuzz_tokenizer.c with clang (-fsanitize=fuzzer,address,
# undefined) against plugins/context/tok_*.c and runs it for a bounded time
# (FUZZ_SECONDS, default 20) over a seed corpus of the shared texts.
# Exit 77 (skipped) when clang or libFuzzer is not installed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
build="${SLUICE_BUILD:-build}/fuzz-tokenizer"
secs="${FUZZ_SECONDS:-20}"

if ! command -v clang >/dev/null 2>&1; then
    echo "fuzz_tokenizer: clang not installed; skipped" >&2
    exit 77
fi
mkdir -p "$build/corpus"
if ! clang -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
        -fno-sanitize-recover=undefined -Wall -Wextra -Werror \
        -Wno-unused-parameter -Iplugins/context \
        -o "$build/fuzz_tokenizer" tests/fuzz/fuzz_tokenizer.c \
        plugins/context/tok*.c \
        $(pkg-config --cflags --libs libpcre2-8 libutf8proc) -lpthread \
        2> "$build/compile.log"; then
    if grep -q "libclang_rt.fuzzer\|cannot find.*fuzzer" "$build/compile.log"; then
        echo "fuzz_tokenizer: libFuzzer runtime missing; skipped" >&2
        exit 77
    fi
    cat "$build/compile.log" >&2
    exit 1
fi

# seeds: a few corpus texts, each with a tokenizer selector byte
if [ -z "$(ls -A "$build/corpus")" ]; then
    i=0
    while IFS= read -r line && [ $i -lt 60 ]; do
        printf '%b' "\\x$(printf '%02x' $((i % 5)))" > "$build/corpus/seed$i"
        printf '%s' "${line:0:2000}" >> "$build/corpus/seed$i"
        i=$((i + 1))
    done < tests/data/token-corpus.jsonl
fi

exec tests/tokenizers/fetch.sh "$build/fuzz_tokenizer" \
    -seed=1 -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=4096 \
    -print_final_stats=1 "$build/corpus"
