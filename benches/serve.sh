#!/usr/bin/env bash
# cairn-server serve under load and at rest (issue 14's targets), on the simulated cluster
# (fake-apiserver; there is no real API server here):
#   1. OBJECTS generated objects in the cluster (gen-k8s, ~2 KB each), backed up
#      a. by `cairn-server backup --from-cluster` (the baseline), and
#      b. through a Backup object taken by `cairn-server serve`: from the server taking it
#         to Completed, by the server's JSON log (targets: <= 10% over the baseline, server
#         peak RSS <= 256 MB), and as a client sees it, `kubectl apply` to the phase
#         Completed seen by polling kubectl;
#   2. an idle server with IDLE_BACKUPS Backup objects present, for IDLE_SECONDS: CPU
#      (target <= 1% of a core) and RSS (target <= 40 MB).
# RUNS runs of 1; medians reported. Each backup goes to a fresh local repository and pays
# the password's key derivation (~0.3 s), both ways.
#
#   bash benches/serve.sh                       # 100,000 objects, 3 runs, 60 s idle
#   OBJECTS=20000 RUNS=1 IDLE_SECONDS=10 bash benches/serve.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OBJECTS=${OBJECTS:-100000}
RUNS=${RUNS:-3}
IDLE_BACKUPS=${IDLE_BACKUPS:-1000}
IDLE_SECONDS=${IDLE_SECONDS:-60}
WORK=${WORK:-$(mktemp -d /var/tmp/cairn-serve-bench.XXXXXX)}
source tests/kubectl.sh
cargo build --release -q -p node-agent -p cairn-server
cargo build --release -q -p cairn-benches --bin gen-k8s
cargo build --release -q -p cairn-tests --bin fake-apiserver
cs=$PWD/target/release/cairn-server
[ -d "$WORK/objects" ] || target/release/gen-k8s "$WORK/objects" --objects "$OBJECTS" >/dev/null

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Starts a fake cluster seeded from $1; sets KUBECONFIG.
start_cluster() {
    export KUBECONFIG=$WORK/kubeconfig
    rm -f "$KUBECONFIG"
    target/release/fake-apiserver --listen "127.0.0.1:$(free_port)" --kubeconfig "$KUBECONFIG" \
        --seed "$1" >"$WORK/apiserver.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 600); do [ -s "$KUBECONFIG" ] && break; sleep 0.1; done
    kubectl apply --validate=false -f deploy/crds >/dev/null
    cat <<YAML | kubectl apply --validate=false -f - >/dev/null
apiVersion: v1
kind: Namespace
metadata: {name: velero}
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
YAML
}
# Starts `cairn-server serve`; sets SERVER.
start_server() {
    XDG_CACHE_HOME=$WORK/cache "$cs" --no-cache serve --namespace velero --identity bench \
        --log-format json --metrics-address "127.0.0.1:$(free_port)" >"$WORK/server.log" 2>&1 &
    SERVER=$!
    pids+=("$SERVER")
}
peak_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
now() { date +%s.%N; }
phase() { kubectl get backups.velero.io -n velero "$1" -o jsonpath='{.status.phase}' 2>/dev/null || true; }

rm -f "$WORK"/m-*
start_cluster "$WORK/objects"
for run in $(seq "$RUNS"); do
    rm -rf "$WORK/store" "$WORK/cache"
    # a. The baseline: the same backup by the one-shot command, into an existing repository.
    CAIRN_PASSWORD=bench target/release/node-agent --repo "$WORK/store/repo" init >/dev/null 2>&1
    CAIRN_PASSWORD=bench /usr/bin/time -f "%e %M" -o "$WORK/time.out" \
        "$cs" --repo "$WORK/store/repo" --no-cache backup "oneshot-$run" --from-cluster --json \
        >"$WORK/out.json" 2>"$WORK/err.log" || { cat "$WORK/err.log" >&2; exit 1; }
    cat "$WORK/time.out" >>"$WORK/m-oneshot"
    # b. Through a Backup object, served, into an existing repository too.
    rm -rf "$WORK/store/repo"
    CAIRN_PASSWORD=bench target/release/node-agent --repo "$WORK/store/repo" init >/dev/null 2>&1
    start_server
    sleep 2
    t0=$(now)
    printf 'apiVersion: velero.io/v1\nkind: Backup\nmetadata: {name: served-%s, namespace: velero}\nspec: {}\n' "$run" |
        kubectl apply --validate=false -f - >/dev/null
    until [ "$(phase "served-$run")" = Completed ]; do
        p=$(phase "served-$run")
        case $p in Failed|PartiallyFailed|FailedValidation) echo "served-$run ended $p" >&2; cat "$WORK/server.log" >&2; exit 1;; esac
        sleep 0.05
    done
    t1=$(now)
    # The server's own account: from taking the Backup (its "backup started" line) to its
    # end, the same work as the one-shot command's; the client's view adds kubectl's
    # latency and the polling.
    server_s=$(python3 - "$WORK/server.log" "served-$run" <<'PY'
import json, sys
from datetime import datetime
times = {}
for line in open(sys.argv[1]):
    try:
        l = json.loads(line)
    except ValueError:
        continue
    if l.get("fields", {}).get("backup") == sys.argv[2]:
        times[l["fields"]["message"]] = datetime.fromisoformat(l["timestamp"].replace("Z", "+00:00"))
print(round((times["backup ended"] - times["backup started"]).total_seconds(), 2))
PY
)
    echo "$server_s $(peak_kib "$SERVER") $(python3 -c "print(round($t1 - $t0, 2))")" >>"$WORK/m-served"
    kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
done
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
pids=()

# 2. Idle, with IDLE_BACKUPS Completed Backup objects of a location not present (so the
# sync leaves them, and nothing expires).
mkdir -p "$WORK/idle"
python3 - "$IDLE_BACKUPS" >"$WORK/idle/backups.json" <<'PY'
import json, sys
n = int(sys.argv[1])
items = [{"apiVersion": "velero.io/v1", "kind": "Backup",
          "metadata": {"name": f"old-{i:05d}", "namespace": "velero",
                       "labels": {"velero.io/storage-location": "archive"}},
          "spec": {"storageLocation": "archive", "includedNamespaces": [f"ns-{i % 50}"], "ttl": "720h0m0s"},
          "status": {"phase": "Completed", "version": 1, "formatVersion": "1.1.0",
                     "startTimestamp": "2026-11-01T00:00:00Z", "completionTimestamp": "2026-11-01T00:00:09Z",
                     "expiration": "2099-01-01T00:00:00Z", "progress": {"totalItems": 1200, "itemsBackedUp": 1200}}}
         for i in range(n)]
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
PY
mv "$WORK/idle/backups.json" "$WORK/idle-backups.json"
echo '{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "velero"}}' >"$WORK/idle/ns.json"
rm -rf "$WORK/store" "$WORK/cache"
start_cluster "$WORK/idle"
kubectl apply --validate=false -f "$WORK/idle-backups.json" >/dev/null
start_server
until [ "$(kubectl get lease -n velero cairn-server -o jsonpath='{.spec.holderIdentity}' 2>/dev/null)" = bench ]; do sleep 0.2; done
sleep 10 # settle: informers listed, locations checked
c0=$(cpu_ticks "$SERVER"); t0=$(now)
sleep "$IDLE_SECONDS"
c1=$(cpu_ticks "$SERVER"); t1=$(now)
idle_rss=$(rss_kib "$SERVER")
hz=$(getconf CLK_TCK)
idle_cpu=$(python3 -c "print(round(100 * ($c1 - $c0) / $hz / ($t1 - $t0), 2))")
backups=$(kubectl get backups.velero.io -n velero -o name | wc -l)

median() { awk -v c="$2" '{print $c}' "$1" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
o=$(median "$WORK/m-oneshot" 1); om=$(median "$WORK/m-oneshot" 2)
s=$(median "$WORK/m-served" 1); sm=$(median "$WORK/m-served" 2); sc=$(median "$WORK/m-served" 3)
echo "cairn-server serve: $OBJECTS objects in the simulated cluster, $(nproc) cores, $(date -u +%F), local repository, median of $RUNS"
echo
echo "| what | time | peak RSS | target |"
echo "|---|---|---|---|"
echo "| \`backup --from-cluster\` (baseline) | $o s | $((om / 1024)) MB | |"
echo "| a Backup object, taken to Completed (server's log) | $s s | $((sm / 1024)) MB (server) | ≤ 10% over the baseline, ≤ 256 MB |"
python3 -c "print(f'| overhead | {100 * ($s - $o) / $o:+.1f}% | | ≤ 10% |')"
echo "| the same, kubectl apply to the phase Completed seen by polling kubectl | $sc s | | |"
echo "| idle, $backups Backup objects, ${IDLE_SECONDS} s | ${idle_cpu}% of a core | $((idle_rss / 1024)) MB (RSS) | ≤ 1%, ≤ 40 MB |"
