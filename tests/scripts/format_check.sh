#!/usr/bin/env bash
# format_check.sh - every C source and header the repository tracks is
# formatted as the root .clang-format says (one style for the whole tree).
# Fix with: git ls-files '*.c' '*.h' | xargs clang-format -i
set -euo pipefail
cd "${SLUICE_SRC:-.}"
if ! command -v clang-format >/dev/null 2>&1; then
    echo "format_check: clang-format is not installed (scripts/deps.sh --test installs it)" >&2
    exit 1
fi
bad=()
while IFS= read -r f; do
    clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done < <(git ls-files '*.c' '*.h' 2>/dev/null || find core plugins sdk tests bench -name '*.[ch]')
if [ ${#bad[@]} -gt 0 ]; then
    echo "format_check: not clang-formatted (${#bad[@]} files):" >&2
    printf '  %s\n' "${bad[@]}" >&2
    exit 1
fi
echo "format_check: PASS ($(git ls-files '*.c' '*.h' | wc -l) files)"
