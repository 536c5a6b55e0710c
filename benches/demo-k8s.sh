#!/usr/bin/env bash
# The Kubernetes demo on one machine, no real cluster: a simulated API server
# (fake-apiserver, from the tests), the install from deploy/ (`kubectl apply -k`), cairn-server
# serve run here in place of its Deployment (the simulated cluster runs no pods), and kubectl
# as an operator would use it. It backs up a namespace with a Backup object, deletes the
# namespace, restores it with a Restore object, shows the objects and a pod volume's data
# back, a Schedule's first backup, a backup through the platform API (the console's
# address is printed), and the server's metrics. The simulated cluster has two
# nodes with stand-in kubelets whose pod directories are under $work/nodes; a
# `node-agent serve` runs for each, as the DaemonSet would.
#
#   bash benches/demo-k8s.sh
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/cairn-demo-k8s.XXXXXX)
cleanup() { kill "${server_pid:-}" "${api_pid:-}" ${agent_pids:-} 2>/dev/null || true; }
trap cleanup EXIT

source tests/kubectl.sh

cargo build -q -p cairn-tests --bin fake-apiserver
cargo build -q -p cairn-server -p node-agent
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export KUBECONFIG="$work/kubeconfig"
target/debug/fake-apiserver --listen "127.0.0.1:$port" --kubeconfig "$KUBECONFIG" \
    --nodes node-a,node-b --nodes-dir "$work/nodes" >"$work/apiserver.log" 2>&1 &
api_pid=$!
for _ in $(seq 1 100); do [ -f "$KUBECONFIG" ] && kubectl get --raw /version >/dev/null 2>&1 && break; sleep 0.1; done
# The simulated server serves no OpenAPI schema, so kubectl's client-side validation is off.
k() { kubectl "$@"; }
apply() { kubectl apply --validate=false -f "$@"; }

echo "== install: kubectl apply -k deploy/, the repository password, a location"
kubectl apply --validate=false -k deploy/ | sed 's/^/   /'
apply - <<YAML
apiVersion: v1
kind: Secret
metadata: {name: velero-repo-credentials, namespace: velero}
data: {repository-password: $(printf 'demo password' | base64)}
---
apiVersion: velero.io/v1
kind: BackupStorageLocation
metadata: {name: default, namespace: velero}
spec: {provider: filesystem, default: true, objectStorage: {bucket: backups}, config: {path: $work/store}}
YAML
mkdir -p "$work/store"
metrics=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
listen=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token=demo-admin-token-$(python3 -c 'import secrets; print(secrets.token_hex(16))')
apply - >/dev/null <<YAML
apiVersion: v1
kind: Secret
metadata: {name: cairn-api-tokens, namespace: velero}
stringData: {admin: $token}
YAML
target/debug/cairn-server serve --namespace velero --cache-dir "$work/cache" \
    --metrics-address "127.0.0.1:$metrics" --listen "127.0.0.1:$listen" 2>"$work/server.log" &
server_pid=$!
agent_pids=""
for node in node-a node-b; do
    NODE_NAME=$node target/debug/node-agent --cache-dir "$work/cache-$node" serve \
        --pods-dir "$work/nodes/$node/pods" 2>"$work/agent-$node.log" &
    agent_pids="$agent_pids $!"
done

echo "== a workload"
apply - <<'YAML'
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: payments}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {currency: EUR}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx:1.27}]}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: orders, namespace: shop}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop}
spec:
  volumes: [{name: data, persistentVolumeClaim: {claimName: orders}}, {name: scratch, emptyDir: {}}]
  containers: [{name: db, image: postgres:17, volumeMounts: [{name: data, mountPath: /data}, {name: scratch, mountPath: /tmp}]}]
YAML
until [ "$(k get pod db -n shop -o jsonpath='{.status.phase}')" = Running ]; do sleep 0.2; done
# The volume as the pod's node has it (the simulated kubelet's directory).
volume() { ls -d "$work"/nodes/*/pods/"$(k get pod db -n shop -o jsonpath='{.metadata.uid}')"/volumes/kubernetes.io~local-volume/*; }
printf 'id,total\n1,9.50\n2,12.00\n' >"$(volume)/orders.csv"
echo "   pod db on $(k get pod db -n shop -o jsonpath='{.spec.nodeName}'), its volume holds orders.csv ($(wc -c <"$(volume)/orders.csv") bytes)"

wait_phase() { # kind name
    for _ in $(seq 1 300); do
        phase=$(k get "$1" "$2" -n velero -o jsonpath='{.status.phase}' 2>/dev/null || true)
        case "$phase" in Completed | PartiallyFailed | Failed | FailedValidation) echo "$1/$2: $phase"; return 0 ;; esac
        sleep 0.2
    done
    echo "$1/$2 did not finish; see $work/server.log" >&2
    exit 1
}

echo "== back up the namespace with a Backup object"
apply - <<'YAML'
apiVersion: velero.io/v1
kind: Backup
metadata: {name: shop-nightly, namespace: velero}
spec: {includedNamespaces: [shop], defaultVolumesToFsBackup: true}
YAML
wait_phase backups.velero.io shop-nightly
k get podvolumebackups.velero.io -n velero -o custom-columns=POD:.spec.pod.name,VOLUME:.spec.volume,NODE:.spec.node,PHASE:.status.phase,SNAPSHOT:.status.snapshotID
k get backups.velero.io shop-nightly -n velero -o jsonpath='{.status}'; echo

echo "== disaster: the namespace is deleted, and the claim's volume with it"
k delete namespace shop   # the claim's volume goes with it (reclaim policy Delete)
echo "   persistent volumes left: $(k get pv -o name | wc -l)"
k get configmap settings -n shop 2>&1 | sed 's/^/   /' || true

echo "== restore it with a Restore object"
apply - <<'YAML'
apiVersion: velero.io/v1
kind: Restore
metadata: {name: shop-back, namespace: velero}
spec: {backupName: shop-nightly}
YAML
wait_phase restores.velero.io shop-back
k get podvolumerestores.velero.io -n velero -o custom-columns=POD:.spec.pod.name,VOLUME:.spec.volume,PHASE:.status.phase
until [ "$(k get pod db -n shop -o jsonpath='{.status.phase}')" = Running ]; do sleep 0.2; done
echo "   pod db Running again (restore-wait released); orders.csv in its new volume:"
sed 's/^/     /' "$(volume)/orders.csv"
k get namespace shop -o jsonpath='{.metadata.labels}'; echo
k get configmap settings -n shop -o jsonpath='{.data}'; echo
k get deployments -n shop

echo "== a CSI snapshot moved into the repository (Velero's snapshot data mover)"
# A CSI driver's storage class with the VolumeSnapshotClass Velero picks by its label, and a
# volume policy: claims of that class are snapshotted, the snapshot's data moved by a
# node-agent through a data-mover pod (the simulation's snapshotter copies the volume).
apply - <<'YAML'
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: fast}
provisioner: csi.demo.cairn
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata: {name: fast-snapshots, labels: {velero.io/csi-volumesnapshot-class: "true"}}
driver: csi.demo.cairn
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
      action: {type: snapshot}
---
apiVersion: v1
kind: Namespace
metadata: {name: ledger}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: journal, namespace: ledger}
spec: {storageClassName: fast, accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: ledger, namespace: ledger}
spec:
  volumes: [{name: journal, persistentVolumeClaim: {claimName: journal}}]
  containers: [{name: ledger, image: ledger:1, volumeMounts: [{name: journal, mountPath: /journal}]}]
YAML
until [ "$(k get pod ledger -n ledger -o jsonpath='{.status.phase}')" = Running ]; do sleep 0.2; done
journal() { ls -d "$work"/nodes/*/pods/"$(k get pod ledger -n ledger -o jsonpath='{.metadata.uid}')"/volumes/kubernetes.io~csi/*/mount; }
printf 'entry 1\nentry 2\n' >"$(journal)/journal.log"
apply - <<'YAML'
apiVersion: velero.io/v1
kind: Backup
metadata: {name: ledger-moved, namespace: velero}
spec: {includedNamespaces: [ledger], snapshotMoveData: true, resourcePolicy: {kind: configmap, name: volume-policies}}
YAML
wait_phase backups.velero.io ledger-moved
k get datauploads.velero.io -n velero -o custom-columns=CLAIM:.spec.sourcePVC,CLASS:.spec.csiSnapshot.snapshotClass,NODE:.status.node,PHASE:.status.phase,BYTES:.status.progress.bytesDone,SNAPSHOT:.status.snapshotID
echo "   left behind: $(k get volumesnapshots.snapshot.storage.k8s.io -A -o name | wc -l) VolumeSnapshots, $(k get pvc -n velero -o name | wc -l) temporary claims"
k delete namespace ledger   # its claim's volume goes with it (reclaim policy Delete)
apply - <<'YAML'
apiVersion: velero.io/v1
kind: Restore
metadata: {name: ledger-back, namespace: velero}
spec: {backupName: ledger-moved}
YAML
wait_phase restores.velero.io ledger-back
k get datadownloads.velero.io -n velero -o custom-columns=CLAIM:.spec.targetVolume.pvc,NODE:.status.node,PHASE:.status.phase
until [ "$(k get pod ledger -n ledger -o jsonpath='{.status.phase}')" = Running ]; do sleep 0.2; done
echo "   claim journal is $(k get pvc journal -n ledger -o jsonpath='{.status.phase}') to $(k get pvc journal -n ledger -o jsonpath='{.spec.volumeName}'); journal.log in it:"
sed 's/^/     /' "$(journal)/journal.log"

echo "== a Schedule: every minute, its backups kept an hour"
apply - <<'YAML'
apiVersion: velero.io/v1
kind: Schedule
metadata: {name: shop-minutely, namespace: velero}
spec: {schedule: "* * * * *", template: {includedNamespaces: [shop], ttl: 1h0m0s}}
YAML
for _ in $(seq 1 400); do
    made=$(k get backups.velero.io -n velero -l velero.io/schedule-name=shop-minutely -o name 2>/dev/null | head -1)
    [ -n "$made" ] && break
    sleep 0.2
done
[ -n "$made" ] || { echo "the schedule made no backup; see $work/server.log" >&2; exit 1; }
wait_phase backups.velero.io "${made#*/}"
k get schedules.velero.io shop-minutely -n velero -o jsonpath='{.status}'; echo

echo "== the platform API: POST /v1/internal/backups, then GET it until it ends"
api() { curl -s -H "Authorization: Bearer $token" "$@"; }
# 409 while the Schedule's backup runs: asked again until it is accepted.
for _ in $(seq 1 150); do
    answer=$(api -XPOST "http://127.0.0.1:$listen/v1/internal/backups" -d '{"description": "from the API", "includedNamespaces": ["shop"]}')
    name=$(printf '%s' "$answer" | python3 -c 'import json, sys; print(json.load(sys.stdin).get("name", ""))')
    [ -n "$name" ] && break
    sleep 0.2
done
[ -n "$name" ] || { echo "the API refused: $answer" >&2; exit 1; }
echo "   202: backup $name"
for _ in $(seq 1 300); do
    phase=$(api "http://127.0.0.1:$listen/v1/internal/backups/$name" | python3 -c 'import json, sys; print(json.load(sys.stdin)["phase"])')
    case $phase in Completed|PartiallyFailed|Failed|FailedValidation) break;; esac
    sleep 0.2
done
echo "   $name: $phase"
api "http://127.0.0.1:$listen/v1/internal/backups/$name/contents" |
    python3 -c 'import json, sys; d = json.load(sys.stdin); print("   contents:", d["counts"], "volumes:", [v["pod"] + "/" + v["volume"] for v in d["volumes"]])'
echo "   console: http://127.0.0.1:$listen/ (token: $token) while this runs"

echo "== metrics (http://127.0.0.1:$metrics/metrics)"
curl -s "http://127.0.0.1:$metrics/metrics" | grep -E '^velero_(backup|restore)_(success|attempt)_total' | sed 's/^/   /'
echo "== done (logs in $work)"
