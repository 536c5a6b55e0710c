#!/usr/bin/env bash
# Full maintenance on repositories of many blobs, built through the library (gc-repo: two
# overlapping snapshots of small files, the first forgotten, so 40% of the blobs are garbage).
# Reports wall time and peak RSS of the mark run and of the sweep run (which marks again),
# for SMALL and LARGE blob counts, and the resident bytes per blob between them.
#
#   bash benches/gc.sh            # 250,000 and 1,000,000 blobs
#   SMALL=100000 LARGE=2000000 bash benches/gc.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SMALL=${SMALL:-250000}
LARGE=${LARGE:-1000000}
WORK=${WORK:-$(mktemp -d /var/tmp/cairn-gc-bench.XXXXXX)}
export CAIRN_PASSWORD=bench
cargo build --release -q -p node-agent
cargo build --release -q -p cairn-benches --bin gc-repo
na=target/release/node-agent

measure() { # repo -> "seconds kib" of one forced full run
    /usr/bin/time -f "%e %M" -o "$WORK/time.out" "$na" --repo "$1" --no-cache \
        maintenance run --force --spill-dir "$WORK/spill" >"$WORK/run.log" 2>&1 ||
        { cat "$WORK/run.log" >&2; exit 1; }
    cat "$WORK/time.out"
}

declare -A R
for n in "$SMALL" "$LARGE"; do
    repo="$WORK/repo-$n"
    rm -rf "$repo"
    target/release/gc-repo "$repo" "$n" 2>/dev/null
    R[$n:mark]=$(measure "$repo")
    R[$n:sweep]=$(measure "$repo")
    rm -rf "$repo"
done

echo "Full maintenance, $(nproc) cores, $(date -u +%F); local repository; 40% of blobs garbage"
echo
echo "| blobs | mark: time | mark: peak RSS | sweep + mark: time | sweep + mark: peak RSS |"
echo "|---|---|---|---|---|"
for n in "$SMALL" "$LARGE"; do
    read -r ms mk <<<"${R[$n:mark]}"
    read -r ss sk <<<"${R[$n:sweep]}"
    echo "| $n | ${ms} s | $((mk / 1024)) MB | ${ss} s | $((sk / 1024)) MB |"
done
for phase in mark sweep; do
    read -r _ small <<<"${R[$SMALL:$phase]}"
    read -r _ large <<<"${R[$LARGE:$phase]}"
    echo
    echo "$phase: resident bytes per blob between $SMALL and $LARGE blobs: $(( (large - small) * 1024 / (LARGE - SMALL) ))"
done
rm -rf "$WORK"
