#!/usr/bin/env bash
# The main job on a fresh machine: back up a directory into a local repository, restore it,
# and compare the two trees (contents, modes, times, links).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p node-agent
work=$(mktemp -d)
export CAIRN_REPO="$work/repo" CAIRN_PASSWORD=demo CAIRN_CACHE_DIR="$work/cache"
src="${1:-$PWD/repo-core}"
agent=./target/release/node-agent
$agent init
$agent backup "$src"
$agent backup "$src"                      # incremental: nothing is read again
$agent restore latest "$work/restored" --verify
diff -r "$src" "$work/restored" && echo "restored $src byte-identical into $work/restored"
