#!/usr/bin/env bash
# client_ai_sdk.sh - CTest entry for the Vercel AI SDK and LangChain client
# test (tests/client/ai_sdk.test.mjs); client_openai.sh does the work.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/client_openai.sh" ai_sdk.test.mjs
