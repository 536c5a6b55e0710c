#!/usr/bin/env bash
# End-to-end: `node-agent backup --stdin` of 1 GiB of text-like data (concatenated Rust
# sources) and of 1 GiB of random data into a fresh local repository, then `dump` of each.
# Prints wall time, throughput and peak RSS as a markdown table.
#
#   bash benches/e2e.sh [SIZE_MIB]     (default 1024)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
cargo build --release -p node-agent >/dev/null 2>&1
bin=$PWD/target/release/node-agent
work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-e2e.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Text-like input: Rust sources from the cargo registry, repeated to size; from the second
# pass on, a pass-numbered comment after every 64 lines keeps repeats from deduplicating.
find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -name '*.rs' -size -256k 2>/dev/null | sort | head -20000 > "$work/list"
python3 - "$work/list" "$work/text" "$size_mib" <<'PY'
import sys
files = [l.strip() for l in open(sys.argv[1]) if l.strip()]
target = int(sys.argv[3]) * 1024 * 1024
with open(sys.argv[2], "wb") as out:
    n, p = 0, 0
    while n < target:
        for f in files:
            b = open(f, "rb").read()
            if p:
                lines = b.split(b"\n")
                b = b"\n".join(l + (b"\n// pass %d" % p if i % 64 == 63 else b"") for i, l in enumerate(lines))
            out.write(b[: target - n])
            n += min(len(b), target - n)
            if n >= target:
                break
        p += 1
PY
head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$work/random"

export CAIRN_PASSWORD=bench CAIRN_CACHE_DIR="$work/cache"
measure() { # label, command...
    local label=$1; shift
    /usr/bin/time -f "%e %M" -o "$work/time" "$@"
    read -r secs kb < "$work/time"
    python3 - "$label" "$secs" "$kb" "$size_mib" <<'PY'
import sys
label, secs, kb, mib = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
print(f"| {label} | {secs:.2f} s | {mib * 1.048576 / secs:.0f} MB/s | {kb / 1024:.0f} MiB |")
PY
}
echo "| run ($size_mib MiB) | wall | throughput | peak RSS |"
echo "|---|---|---|---|"
for kind in text random; do
    export CAIRN_REPO="$work/repo-$kind"
    "$bin" init >/dev/null
    measure "backup --stdin, $kind" sh -c "'$bin' backup --stdin --stdin-name $kind < '$work/$kind' > '$work/id-$kind'"
    measure "dump, $kind" sh -c "'$bin' dump latest $kind > /dev/null"
    measure "backup --stdin again (all dedup), $kind" sh -c "'$bin' backup --stdin --stdin-name $kind < '$work/$kind' > /dev/null"
    du -sm "$CAIRN_REPO" | awk -v k="$kind" '{print "| repository size, " k " | " $1 " MiB | | |"}'
done
