#!/usr/bin/env bash
# Kubernetes objects at scale (issue 5's targets): gen-k8s writes OBJECTS generated objects
# (~2 KB each, 100 namespaces, ten kinds incl. a custom resource) as `kind: List` JSON files,
# and a second day with 1% of them changed. Each run uses a fresh local repository:
#   backup of day 1 from the directory  (target: <= 10 s, peak RSS <= 256 MB)
#   backup of day 2                     (target: <= 2% new bytes)
#   restore planning of all objects     (`restore --dry-run --json`, target: <= 5 s)
#   export to a Velero tarball, and import of it
# RUNS runs; medians reported. Times include the password's key derivation (~0.3 s).
#
#   bash benches/k8s.sh                 # 100,000 objects, 3 runs
#   OBJECTS=20000 RUNS=1 bash benches/k8s.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OBJECTS=${OBJECTS:-100000}
RUNS=${RUNS:-3}
WORK=${WORK:-$(mktemp -d /var/tmp/cairn-k8s-bench.XXXXXX)}
export CAIRN_PASSWORD=bench
cargo build --release -q -p node-agent -p cairn-server
cargo build --release -q -p cairn-benches --bin gen-k8s
na=target/release/node-agent
cs=target/release/cairn-server
[ -d "$WORK/day1" ] || target/release/gen-k8s "$WORK/day1" --objects "$OBJECTS"
[ -d "$WORK/day2" ] || target/release/gen-k8s "$WORK/day2" --objects "$OBJECTS" --changed 1

timed() { # name, command... -> appends "seconds kib" to $WORK/$name
    local name=$1
    shift
    /usr/bin/time -f "%e %M" -o "$WORK/time.out" "$@" >"$WORK/out.json" 2>"$WORK/err.log" ||
        { cat "$WORK/err.log" >&2; exit 1; }
    cat "$WORK/time.out" >>"$WORK/$name"
}
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$WORK/out.json" "$1"; }

rm -f "$WORK"/m-*
for run in $(seq "$RUNS"); do
    repo="$WORK/repo"
    rm -rf "$repo" "$WORK/all.tar.gz"
    "$na" --repo "$repo" init >/dev/null 2>&1
    timed m-backup1 "$cs" --repo "$repo" backup day1 --from-dir "$WORK/day1" --json
    echo "$(field newBytes) $(field storedBytes)" >>"$WORK/m-bytes1"
    timed m-backup2 "$cs" --repo "$repo" backup day2 --from-dir "$WORK/day2" --json
    echo "$(field newBytes) $(field storedBytes)" >>"$WORK/m-bytes2"
    timed m-plan "$cs" --repo "$repo" restore day2 --dry-run --json
    timed m-export "$cs" --repo "$repo" export-velero day2 "$WORK/all.tar.gz" --json
    timed m-import "$cs" --repo "$repo" import-velero "$WORK/all.tar.gz" imported --json
done

median() { # file, column -> median
    awk -v c="$2" '{print $c}' "$1" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}
row() { # label, file, target
    printf "| %s | %s s | %d MB | %s |\n" "$1" "$(median "$WORK/$2" 1)" \
        "$(( $(median "$WORK/$2" 2) / 1024 ))" "$3"
}
n1=$(median "$WORK/m-bytes1" 1); s1=$(median "$WORK/m-bytes1" 2)
n2=$(median "$WORK/m-bytes2" 1); s2=$(median "$WORK/m-bytes2" 2)
echo "Kubernetes objects: $OBJECTS objects, $(nproc) cores, $(date -u +%F), local repository, median of $RUNS"
echo
echo "| step | time | peak RSS | target |"
echo "|---|---|---|---|"
row "backup from a directory" m-backup1 "≤ 10 s, ≤ 256 MB"
row "second backup, 1% changed" m-backup2 "≤ 2% new bytes"
row "restore plan of all (--dry-run)" m-plan "≤ 5 s"
row "export a Velero tarball" m-export ""
row "import a Velero tarball" m-import ""
echo
python3 - "$n1" "$s1" "$n2" "$s2" <<'PY'
import sys
n1, s1, n2, s2 = map(int, sys.argv[1:])
print(f"second backup: {n2:,} new bytes of {n1:,} ({100 * n2 / n1:.2f}%), "
      f"{s2:,} stored of {s1:,} ({100 * s2 / s1:.2f}%)")
PY
