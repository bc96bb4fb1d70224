#!/usr/bin/env bash
# sdk_guide.sh - sdk/README.md names every member of struct sluice_host in
# sdk/sluice.h, in its host table, with the ABI minor version that added it.
#
# A member's ABI is the newest marker seen in the struct up to and including
# its declaration: a "/* ABI 1.N */" comment on a declaration or a section
# header "---- ... (ABI 1.N)" (members are only appended, so markers only
# grow); the guide's row naming `member` must say the same in its second
# column.
set -uo pipefail

SRC="${SLUICE_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
header="$SRC/sdk/sluice.h"
guide="$SRC/sdk/README.md"

# "name abi" per member, in order
members=$(awk '
    /^typedef struct sluice_host \{/ { inside = 1; cur = 0; next }
    inside && /^\} sluice_host;/ { inside = 0 }
    !inside { next }
    {
        # a member marker ("/* ABI 1.N */" after a declaration) or a
        # section header ("---- ... (ABI 1.N) ----"); prose that mentions
        # a version elsewhere does not count
        if (match($0, /\/\* ABI 1\.[0-9]+ \*\//) ||
            match($0, /---- .*\(ABI 1\.[0-9]+\)/)) {
            t = substr($0, RSTART, RLENGTH)
            sub(/.*ABI 1\./, "", t)
            m = t + 0
            if (m > cur) cur = m
        }
        decl = decl $0 " "
        if ($0 ~ /;/) {
            if (match(decl, /\(\*[a-z_]+\)/))
                print substr(decl, RSTART + 2, RLENGTH - 3), "1." cur
            else if (match(decl, /uint32_t [a-z_]+;/))
                print substr(decl, RSTART + 9, RLENGTH - 10), "1." cur
            decl = ""
        }
    }' "$header")

n=$(echo "$members" | grep -c .)
[ "$n" -gt 50 ] || { echo "FAIL: found only $n members in $header"; exit 1; }

failures=0
while read -r name abi; do
    row=$(grep -E "^\| [^|]*\`$name\`[^|]*\| 1\.[0-9]+ \|" "$guide" | head -n 1)
    if [ -z "$row" ]; then
        echo "FAIL: host member $name (ABI $abi) is not in the guide's host table"
        failures=$((failures + 1))
        continue
    fi
    said=$(echo "$row" | awk -F'|' '{gsub(/ /, "", $3); print $3}')
    if [ "$said" != "$abi" ]; then
        echo "FAIL: the guide says $name is ABI $said; sluice.h says $abi"
        failures=$((failures + 1))
    fi
done <<<"$members"

if [ "$failures" -eq 0 ]; then
    echo "sdk_guide: all $n host members are in the guide with their ABI"
    exit 0
fi
echo "sdk_guide: $failures problem(s)"
exit 1
