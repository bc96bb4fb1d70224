#!/usr/bin/env bash
# client_openai.sh - CTest entry for the official openai npm client test
# (tests/client/openai_client.test.mjs), or for another test of
# tests/client named as the first argument (client_ai_sdk.sh). Run from the
# repository root. The README's test command installs Node, so a missing
# node is a failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

if ! command -v node >/dev/null 2>&1; then
    echo "client_openai: node is not installed (the test command installs nodejs and npm)" >&2
    exit 1
fi
for v in SLUICE_BIN MOCK_BIN PLUGINS_DIR; do
    if [ -z "${!v:-}" ]; then
        echo "client_openai: $v is not set (run through ctest)" >&2
        exit 1
    fi
done

if [ ! -d tests/client/node_modules/openai ] || [ ! -d tests/client/node_modules/ai ]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "client_openai: npm is not installed and tests/client/node_modules is missing" >&2
        exit 1
    fi
    echo "client_openai: npm ci --prefix tests/client"
    npm ci --prefix tests/client --no-audit --no-fund
fi

exec node "tests/client/${1:-openai_client.test.mjs}"
