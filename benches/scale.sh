#!/usr/bin/env bash
# Scale: a generated dataset of about 10 GB of mixed files (200,000 small files of 4 KiB,
# 800 files of 10 MiB of low-redundancy text, and the Linux 6.1 source) backed up to and
# restored from SeaweedFS (benches/seaweedfs.sh). Reports for cairn's first backup and its
# restore: wall time, peak RSS, storage requests by kind and per GB (from
# CAIRN_TRACE_STORAGE), and the index's size, so memory can be weighed against the index's
# bytes per blob. The restore goes to the disk under $WORK (10 GB do not fit a tmpfs here)
# and is compared with `diff -r` afterwards, untimed.
#
#   bash benches/scale.sh
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${WORK:-/work/bench-tmp}"
mkdir -p "$WORK"
cargo build --release -q --manifest-path "$here/Cargo.toml" -p node-agent -p cairn-benches
cairn="$here/target/release/node-agent"

data="$WORK/data-scale"
if [ ! -d "$data" ]; then
    rm -rf "$data.tmp" && mkdir -p "$data.tmp"
    "$here/target/release/gen-tree" "$data.tmp/small" 200000 2000 4096
    "$here/target/release/gen-tree" "$data.tmp/large" 800 40 10485760
    mkdir -p "$data.tmp/linux"
    tar xf /usr/src/linux-source-6.1.tar.xz -C "$data.tmp/linux" --strip-components=1 2>/dev/null ||
        { apt-get install -y -q linux-source-6.1 >/dev/null &&
            tar xf /usr/src/linux-source-6.1.tar.xz -C "$data.tmp/linux" --strip-components=1; }
    mv "$data.tmp" "$data"
fi
files=$(find "$data" -type f | wc -l)
bytes=$(du -sb "$data" | cut -f1)
find "$data" -type f -print0 | xargs -0 cat >/dev/null 2>&1 || true

BUCKETS=cairn
# shellcheck source=benches/seaweedfs.sh
. "$here/benches/seaweedfs.sh"
export CAIRN_PASSWORD=bench CAIRN_CACHE_DIR="$WORK/scale-cache"
rm -rf "$CAIRN_CACHE_DIR"
repo=s3://cairn/scale
"$cairn" --repo "$repo" init >/dev/null

# measure NAME CMD...: runs with the storage trace on; prints a table row.
measure() {
    local name=$1
    shift
    CAIRN_TRACE_STORAGE=1 /usr/bin/time -f "%e %M" -o "$WORK/scale-time.out" "$@" \
        2>"$WORK/scale-$name.trace" >/dev/null
    read -r secs rss <"$WORK/scale-time.out"
    python3 - "$name" "$secs" "$rss" "$bytes" "$WORK/scale-$name.trace" <<'PY'
import collections, sys
name, secs, rss, data, trace = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
ops, moved = collections.Counter(), 0
for line in open(trace, errors="replace"):
    f = line.split()
    if len(f) >= 7 and f[0] == "storage":
        ops[f[4]] += 1
        if f[-1] == "B" and f[-2].isdigit() and f[4] in ("get", "get_range", "put"):
            moved += int(f[-2])
gb = data / 1e9
total = sum(ops.values())
kinds = ", ".join(f"{k} {v}" for k, v in sorted(ops.items()))
print(f"| {name} | {secs:.1f} s | {data / 1e6 / secs:.0f} MB/s | {rss / 1024:.0f} MB | {total} ({kinds}) | {total / gb:.1f} | {moved / 1e6:.0f} MB |")
PY
}

echo
echo "Dataset: $files files, $((bytes / 1000000)) MB; SeaweedFS on loopback; $(nproc) cores; $(date -u +%F)"
echo
echo "| step | time | throughput | peak RSS | requests | requests per GB | bytes moved |"
echo "|---|---|---|---|---|---|---|"
measure backup "$cairn" --repo "$repo" backup "$data"
restored="$WORK/scale-restore"
rm -rf "$restored"
measure restore "$cairn" --repo "$repo" restore latest "$restored"
index=$(ADMIN_URL="$admin_url" python3 -c '
import os, boto3
b = boto3.resource("s3", endpoint_url=os.environ["ADMIN_URL"]).Bucket("cairn")
print(sum(o.size for o in b.objects.filter(Prefix="scale/index/")))')
stored=$(ADMIN_URL="$admin_url" python3 -c '
import os, boto3
b = boto3.resource("s3", endpoint_url=os.environ["ADMIN_URL"]).Bucket("cairn")
print(sum(o.size for o in b.objects.filter(Prefix="scale/")))')
echo
echo "Repository: $((stored / 1000000)) MB stored; index files $((index / 1000)) kB (48 bytes a blob as stored, 44 in memory)."
if diff -r "$data" "$restored" >/dev/null; then echo "Restore identical to the source (diff -r)."; else echo "RESTORE DIFFERS from the source" >&2; exit 1; fi
rm -rf "$restored"
