#!/usr/bin/env bash
# The Linux 6.1 source (~1.4 GB, ~78k files) in one CSI claim, moved into a fresh local
# repository by each path, on the simulated cluster (fake-apiserver with one simulated node;
# there is no real cluster or CSI driver here):
#   a. file by file: a volume policy sends the claim to fs-backup (a PodVolumeBackup);
#   b. snapshot data movement: the policy sends it to a snapshot (a VolumeSnapshot, then a
#      DataUpload that a node-agent moves through a data-mover pod);
# then the namespace is deleted and restored (a PodVolumeRestore, or a DataDownload into a
# new volume handed to the restored claim).
# Two figures for each: the node-agent's own account of the data's move (its log, from
# taking the work item to its end), and the whole Backup or Restore (its timestamps, to the
# second). The snapshot path's whole includes the simulation's snapshot, which copies the
# volume file by file (a real CSI snapshot is copy-on-write and near-instant) and starts the
# temporary claim as a second copy; its data move is the comparable figure.
# Everything is on tmpfs when /dev/shm has room. RUNS runs, alternating; medians.
#
#   bash benches/snapshot-move.sh              # RUNS=3
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
if [ -z "${WORK:-}" ]; then
    if [ "$(df --output=avail -k /dev/shm 2>/dev/null | tail -1)" -gt $((10 << 20)) ] 2>/dev/null; then
        WORK=$(mktemp -d /dev/shm/cairn-snap-bench.XXXXXX)
    else
        WORK=$(mktemp -d /var/tmp/cairn-snap-bench.XXXXXX)
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
if [ "$(stat -f -c %T "$WORK")" = tmpfs ]; then
    cp -a "$SRC" "$WORK/src"
    SRC=$WORK/src
fi
export CAIRN_PASSWORD=bench
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    pids=()
    rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
k() { kubectl "$@"; }
apply() { kubectl apply --validate=false -f - >/dev/null; }

# A fresh cluster: node-a, the CRDs, a location on a fresh $WORK/store, the server and the
# agent, a CSI class with its snapshot class, the claim `data` in pod `db` filled with $SRC.
start() { # action of the volume policy: fs-backup | snapshot
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
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: fast}
provisioner: csi.bench.cairn
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata: {name: fast-snapshots, labels: {velero.io/csi-volumesnapshot-class: "true"}}
driver: csi.bench.cairn
deletionPolicy: Delete
---
apiVersion: v1
kind: ConfigMap
metadata: {name: volume-policies, namespace: velero}
data:
  policies.yaml: |
    version: v1
    volumePolicies:
    - conditions: {storageClass: [fast]}
      action: {type: $1}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: src}
spec: {storageClassName: fast, accessModes: [ReadWriteOnce], resources: {requests: {storage: 4Gi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: src}
spec:
  volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
  containers: [{name: c, image: x, volumeMounts: [{name: data, mountPath: /data}]}]
YAML
    mkdir -p "$WORK/store"
    "$na" --repo "$WORK/store/repo" init >/dev/null 2>&1
    "$cs" --no-cache serve --identity bench --metrics-address "127.0.0.1:$(free_port)" >"$WORK/server.log" 2>&1 &
    pids+=($!)
    NODE_NAME=node-a "$na" --no-cache serve --pods-dir "$WORK/nodes/node-a/pods" >"$WORK/agent.log" 2>&1 &
    pids+=($!)
    until [ "$(k get pod db -n src -o jsonpath='{.status.phase}' 2>/dev/null)" = Running ]; do sleep 0.2; done
    local uid; uid=$(k get pod db -n src -o jsonpath='{.metadata.uid}')
    local vol; vol=$(ls -d "$WORK/nodes/node-a/pods/$uid/volumes/kubernetes.io~csi/"*/mount)
    rmdir "$vol" && cp -a "$SRC" "$vol"
    sync
}
# The agent's account of a `kind` object's move, in seconds, from its log.
moved_in() { # kind
    local line
    until line=$(grep -E "node-agent: $1 [^ ]+ (Completed|Failed|Canceled) in " "$WORK/agent.log" | tail -1) && [ -n "$line" ]; do
        sleep 0.5
    done
    case $line in *" Completed in "*) ;; *) echo "$line" >&2; exit 1 ;; esac
    echo "$line" | sed -E 's/.* in ([0-9.]+) s.*/\1/'
}
# A Backup's or Restore's whole, from its start to its completion timestamp.
took() { # kind name
    local p
    while :; do
        p=$(k get "$1" "$2" -n velero -o jsonpath='{.status.phase}' 2>/dev/null || true)
        case $p in Completed) break ;; Failed | PartiallyFailed | FailedValidation) echo "$1 $2 ended $p" >&2; exit 1 ;; esac
        sleep 1
    done
    local s e
    s=$(date -d "$(k get "$1" "$2" -n velero -o jsonpath='{.status.startTimestamp}')" +%s)
    e=$(date -d "$(k get "$1" "$2" -n velero -o jsonpath='{.status.completionTimestamp}')" +%s)
    echo $((e - s))
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

rm -f "$WORK"/m-*
for run in $(seq "$RUNS"); do
    for path in fs-backup snapshot; do
        start "$path"
        case $path in fs-backup) up=PodVolumeBackup down=PodVolumeRestore ;; snapshot) up=DataUpload down=DataDownload ;; esac
        apply <<YAML
apiVersion: velero.io/v1
kind: Backup
metadata: {name: b, namespace: velero}
spec: {includedNamespaces: [src], snapshotMoveData: true, resourcePolicy: {kind: configmap, name: volume-policies}}
YAML
        took backups.velero.io b >>"$WORK/m-$path-backup-whole"
        moved_in "$up" >>"$WORK/m-$path-backup-move"
        k delete namespace src >/dev/null
        apply <<YAML
apiVersion: velero.io/v1
kind: Restore
metadata: {name: r, namespace: velero}
spec: {backupName: b}
YAML
        took restores.velero.io r >>"$WORK/m-$path-restore-whole"
        moved_in "$down" >>"$WORK/m-$path-restore-move"
        echo "run $run $path: backup $(tail -1 "$WORK/m-$path-backup-move") s moved ($(tail -1 "$WORK/m-$path-backup-whole") s whole), restore $(tail -1 "$WORK/m-$path-restore-move") s moved ($(tail -1 "$WORK/m-$path-restore-whole") s whole)"
    done
done
echo
echo "| path | backup: data moved | backup: whole | restore: data moved | restore: whole |"
echo "|---|---|---|---|---|"
for path in fs-backup snapshot; do
    m() { median <"$WORK/m-$path-$1"; }
    echo "| $path | $(m backup-move) s | $(m backup-whole) s | $(m restore-move) s | $(m restore-whole) s |"
done
