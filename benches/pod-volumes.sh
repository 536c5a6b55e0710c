#!/usr/bin/env bash
# Pod volumes through `node-agent serve` (issue 15's targets), on the simulated cluster
# (fake-apiserver with a simulated node; there is no real cluster here), local repositories:
#   1. the Linux 6.1 source (~1.5 GB, ~78k files) as one pod volume, backed up
#      a. by `node-agent backup` of the same directory (the baseline), and
#      b. through a PodVolumeBackup taken by `node-agent serve` (from taking it to Completed,
#         by the agent's log; target: <= 10% over the baseline);
#      and restored, `node-agent restore` vs a PodVolumeRestore (same measure; on a disk
#      the command is followed by `sync`, as the restore's done file is written with fsync,
#      which waits for the restored data; on tmpfs there is nothing to wait for);
#   2. the source split into four volumes of four pods on one node, backed up through a
#      Backup object with `--load-concurrency 1` and `2` (the speed-up).
# Each backup goes to a fresh repository. RUNS runs; medians. Everything (a copy of the
# source included) is on tmpfs when /dev/shm has room: on this machine's shared disk the
# same restore took anywhere from 9 s to 39 s, which hides any overhead.
#
#   bash benches/pod-volumes.sh              # RUNS=5
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
if [ -z "${WORK:-}" ]; then
    if [ "$(df --output=avail -k /dev/shm 2>/dev/null | tail -1)" -gt $((8 << 20)) ] 2>/dev/null; then
        WORK=$(mktemp -d /dev/shm/cairn-pv-bench.XXXXXX)
    else
        WORK=$(mktemp -d /var/tmp/cairn-pv-bench.XXXXXX)
    fi
fi
SRC=${SRC:-/work/bench-tmp/data-linux}
source tests/kubectl.sh
cargo build --release -q -p node-agent -p cairn-server
cargo build --release -q -p cairn-tests --bin fake-apiserver
na=$PWD/target/release/node-agent
cs=$PWD/target/release/cairn-server
if [ ! -d "$SRC" ]; then
    mkdir -p "$SRC.tmp"
    [ -f /usr/src/linux-source-6.1.tar.xz ] || apt-get install -y -q linux-source-6.1 >/dev/null
    tar xf /usr/src/linux-source-6.1.tar.xz -C "$SRC.tmp" --strip-components=1
    mv "$SRC.tmp" "$SRC"
fi
durable=sync
if [ "$(stat -f -c %T "$WORK")" = tmpfs ]; then
    cp -a "$SRC" "$WORK/src"
    SRC=$WORK/src
    durable=true
fi
export CAIRN_PASSWORD=bench
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    pids=()
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
k() { kubectl "$@"; }
apply() { kubectl apply --validate=false -f - >/dev/null; }

# A fresh simulated cluster with node-a, the CRDs, a location on $WORK/store and the agent.
start() { # load-concurrency
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    pids=()
    rm -rf "$WORK/nodes" "$WORK/store"
    export KUBECONFIG=$WORK/kubeconfig
    rm -f "$KUBECONFIG"
    target/release/fake-apiserver --listen "127.0.0.1:$(free_port)" --kubeconfig "$KUBECONFIG" \
        --nodes node-a --nodes-dir "$WORK/nodes" >"$WORK/apiserver.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 300); do [ -s "$KUBECONFIG" ] && break; sleep 0.1; done
    kubectl apply --validate=false -f deploy/crds >/dev/null
    apply <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: velero}
---
apiVersion: v1
kind: Namespace
metadata: {name: src}
---
apiVersion: v1
kind: Secret
metadata: {name: velero-repo-credentials, namespace: velero}
stringData: {repository-password: bench}
---
apiVersion: velero.io/v1
kind: BackupStorageLocation
metadata: {name: default, namespace: velero}
spec: {provider: filesystem, default: true, objectStorage: {bucket: repo}, config: {path: "$WORK/store"}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: cairn-node-agent, namespace: velero}
spec:
  selector: {matchLabels: {role: node-agent}}
  template: {metadata: {labels: {role: node-agent}}, spec: {containers: [{name: a, image: cairn}]}}
YAML
    mkdir -p "$WORK/store"
    "$na" --repo "$WORK/store/repo" init >/dev/null 2>&1
    "$cs" --no-cache serve --identity bench --metrics-address "127.0.0.1:$(free_port)" >"$WORK/server.log" 2>&1 &
    pids+=($!)
    NODE_NAME=node-a "$na" --no-cache serve --pods-dir "$WORK/nodes/node-a/pods" --load-concurrency "$1" \
        >"$WORK/agent.log" 2>&1 &
    pids+=($!)
}
# Pods `p<i>` with an emptyDir `v`; fills each from a directory (hard links: same files).
pods() { # dir...
    local i=0
    for d in "$@"; do
        printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: p%s, namespace: src}\nspec: {volumes: [{name: v, emptyDir: {}}], containers: [{name: c, image: x, volumeMounts: [{name: v, mountPath: /v}]}]}\n' "$i" | apply
        until [ "$(k get pod "p$i" -n src -o jsonpath='{.status.phase}' 2>/dev/null)" = Running ]; do sleep 0.1; done
        local uid; uid=$(k get pod "p$i" -n src -o jsonpath='{.metadata.uid}')
        local vol="$WORK/nodes/node-a/pods/$uid/volumes/kubernetes.io~empty-dir/v"
        rmdir "$vol" && cp -al "$d" "$vol"
        i=$((i + 1))
    done
}
# The agent's own account of a volume (from taking it to its end), as it logs it: waits
# for the line of a `kind` object whose name starts with `prefix` and prints its seconds.
# The log is read, not the API: kubectl costs a tenth of a core per call, and polled while a
# volume moves it slowed what it measured.
moved_in() { # kind prefix
    local line
    until line=$(grep -E "node-agent: $1 $2[^ ]* (Completed|Failed|Canceled) in " "$WORK/agent.log" | tail -1) && [ -n "$line" ]; do
        sleep 0.2
    done
    case $line in *" Completed in "*) ;; *) echo "$line" >&2; exit 1 ;; esac
    echo "$line" | sed -E 's/.* in ([0-9.]+) s.*/\1/'
}
phase() { k get "$1" "$2" -n velero -o jsonpath='{.status.phase}' 2>/dev/null || true; }
until_phase() { # kind name phase...
    while :; do
        p=$(phase "$1" "$2")
        for want in "${@:3}"; do [ "$p" = "$want" ] && return 0; done
        case $p in Failed|PartiallyFailed|FailedValidation) echo "$1 $2 ended $p" >&2; exit 1;; esac
        # kubectl costs a tenth of a core per call: polled often, it slows what it watches.
        sleep 1
    done
}
# Written data is flushed before each timed step, so one step's writeback does not slow
# the next (restores write 1.5 GB).
timed() { sync; /usr/bin/time -f "%e" -o "$WORK/t" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }; cat "$WORK/t"; }

find "$SRC" -type f -print0 | xargs -0 cat >/dev/null 2>&1 || true
rm -f "$WORK"/m-*
for run in $(seq "$RUNS"); do
    # 1a. The baseline, backup and restore of the same directory.
    rm -rf "$WORK/base" "$WORK/restored" && mkdir -p "$WORK/base"
    "$na" --repo "$WORK/base/repo" init >/dev/null 2>&1
    timed "$na" --repo "$WORK/base/repo" --no-cache backup "$SRC" >>"$WORK/m-base-backup"
    # Until the data is on disk (on a disk), as the served restore's done file (written
    # with fsync) makes it.
    # makes it.
    timed sh -c '"$1" --repo "$2/base/repo" --no-cache restore latest "$2/restored" && $3' _ "$na" "$WORK" "$durable" >>"$WORK/m-base-restore"
    rm -rf "$WORK/base" "$WORK/restored"
    # 1b. The same through node-agent serve.
    start 1
    pods "$SRC"
    sync
    printf 'apiVersion: velero.io/v1\nkind: Backup\nmetadata: {name: b%s, namespace: velero}\nspec: {includedNamespaces: [src], defaultVolumesToFsBackup: true}\n' "$run" | apply
    moved_in PodVolumeBackup "b$run-" >>"$WORK/m-served-backup"
    until_phase backups "b$run" Completed
    k delete namespace src >/dev/null
    printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: src}\n' | apply
    sync
    printf 'apiVersion: velero.io/v1\nkind: Restore\nmetadata: {name: r%s, namespace: velero}\nspec: {backupName: b%s}\n' "$run" "$run" | apply
    moved_in PodVolumeRestore "r$run-" >>"$WORK/m-served-restore"
    until_phase restores "r$run" Completed
    # 2. Four volumes on one node, one or two at once.
    parts=()
    for d in drivers arch fs; do parts+=("$SRC/$d"); done
    mkdir -p "$WORK/rest" && rm -rf "$WORK/rest"/* && for e in "$SRC"/*; do case ${e##*/} in drivers|arch|fs) ;; *) cp -al "$e" "$WORK/rest/";; esac; done
    parts+=("$WORK/rest")
    for n in 1 2; do
        start "$n"
        pods "${parts[@]}"
        sync
        t0=$(now)
        printf 'apiVersion: velero.io/v1\nkind: Backup\nmetadata: {name: four, namespace: velero}\nspec: {includedNamespaces: [src], defaultVolumesToFsBackup: true}\n' | apply
        # Until the agent has logged the fourth volume (the Backup object is looked at after).
        until [ "$(grep -cE 'node-agent: PodVolumeBackup four-[^ ]* Completed in ' "$WORK/agent.log")" = 4 ]; do
            sleep 0.2
        done
        t1=$(now)
        until_phase backups four Completed
        python3 -c "print(round($t1 - $t0, 2))" >>"$WORK/m-four-$n"
    done
done
cleanup
median() { sort -g "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
bb=$(median "$WORK/m-base-backup"); sb=$(median "$WORK/m-served-backup")
br=$(median "$WORK/m-base-restore"); sr=$(median "$WORK/m-served-restore")
f1=$(median "$WORK/m-four-1"); f2=$(median "$WORK/m-four-2")
echo "Pod volumes: Linux 6.1 source ($(du -sh "$SRC" | cut -f1), $(find "$SRC" -type f | wc -l) files), $(nproc) cores, $(date -u +%F), local repositories on $(stat -f -c %T "$WORK"), median of $RUNS"
echo
echo "| what | node-agent command | through node-agent serve | overhead |"
echo "|---|---|---|---|"
python3 -c "print(f'| backup | $bb s | $sb s | {100 * ($sb - $bb) / $bb:+.1f}% |')"
python3 -c "print(f'| restore | $br s | $sr s | {100 * ($sr - $br) / $br:+.1f}% |')"
echo
for m in base-backup served-backup base-restore served-restore four-1 four-2; do
    echo "runs $m: $(tr '\n' ' ' <"$WORK/m-$m")"
done
echo
python3 -c "print(f'Four volumes on one node, a Backup object: --load-concurrency 1: $f1 s, 2: $f2 s (speed-up {$f1 / $f2:.2f}x)')"
case $WORK in /dev/shm/*) rm -rf "$WORK" ;; esac
