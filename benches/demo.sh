#!/usr/bin/env bash
# The main job on a fresh machine: back up a directory into a local repository, restore it,
# and compare the two trees: every entry's type, mode, size, time and link target, and every
# file's content. Usage: bash benches/demo.sh [DIRECTORY]   (default: repo-core/ of this
# checkout). KEEP=1 keeps the repository and the restored tree for a look.
set -euo pipefail
here=$PWD
cd "$(dirname "$0")/.."
src=$(cd "$here" && realpath -e "${1:-$PWD/repo-core}")

echo "building node-agent (release; the first build takes a few minutes)…"
cargo build --release -p node-agent 2>&1 | grep -E '^(error|warning: unused)' || true
agent=$PWD/target/release/node-agent
[ -x "$agent" ] || { echo "the build failed: run cargo build --release -p node-agent"; exit 1; }

work=$(mktemp -d)
if [ "${KEEP:-}" = 1 ]; then
    echo "keeping $work"
else
    trap 'rm -rf "$work"' EXIT
fi
export CAIRN_REPO="$work/repo" CAIRN_PASSWORD=demo CAIRN_CACHE_DIR="$work/cache"

# Exit 8 means the snapshot was written but some entries could not be read (listed above).
backup() { "$agent" backup "$src" || { rc=$?; [ "$rc" = 8 ] || exit "$rc"; }; }
"$agent" init
backup
backup                                   # incremental: unchanged files are not read again
"$agent" restore latest "$work/restored" --verify

# What a faithful restore reproduces. Sockets are never restored (nothing listens on them).
# (A directory's size depends on the file system, so only other entries' sizes count.)
listing() {
    (cd "$1" && {
        find . -mindepth 1 ! -type s ! -type d -printf '%y %m %s %T@ %l %p\n'
        find . -mindepth 1 -type d -printf '%y %m %T@ %p\n'
    } | LC_ALL=C sort)
}
contents() {
    (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
}
if diff <(listing "$src") <(listing "$work/restored") &&
    diff <(contents "$src") <(contents "$work/restored"); then
    echo "restored $src identical: $(listing "$src" | wc -l) entries, same types, modes, sizes, times, links and contents"
else
    echo "the restore of $src differs (above)"
    exit 1
fi
