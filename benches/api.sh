#!/usr/bin/env bash
# The platform API under load (issue 16): `cairn-server serve --listen` on the simulated
# cluster (fake-apiserver), with BACKUPS Completed Backup objects, and CLIENTS concurrent
# clients (Python threads on keep-alive connections) for DURATION seconds each round:
#   1. GET /v1/internal/backups (the list the console polls),
#   2. GET /v1/internal/backups/<name> (one backup),
#   3. POST /v1/internal/backups while an operation runs (every answer a 409);
# reported: requests per second, latency p50/p95/p99, errors, and the server's RSS (idle,
# and its peak). The clients share the machine's 2 cores with the server and the fake API
# server, so the figures bound the server's cost from above.
#
#   bash benches/api.sh                  # BACKUPS=200 CLIENTS=50 DURATION=10 (seconds)
set -euo pipefail
cd "$(dirname "$0")/.."
BACKUPS=${BACKUPS:-200}
CLIENTS=${CLIENTS:-50}
SECONDS_EACH=${DURATION:-10}
WORK=${WORK:-$(mktemp -d /var/tmp/cairn-api-bench.XXXXXX)}
source tests/kubectl.sh
cargo build --release -q -p cairn-server
cargo build --release -q -p cairn-tests --bin fake-apiserver
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export KUBECONFIG=$WORK/kubeconfig
rm -f "$KUBECONFIG"
target/release/fake-apiserver --listen "127.0.0.1:$(free_port)" --kubeconfig "$KUBECONFIG" >"$WORK/apiserver.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do [ -s "$KUBECONFIG" ] && break; sleep 0.1; done
kubectl apply --validate=false -f deploy/crds >/dev/null
TOKEN=bench-admin-token-0123456789abcdef
# Sync is off (backupSyncPeriod 0s): the Backup objects have no backups in the repository.
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
apiVersion: v1
kind: Secret
metadata: {name: cairn-api-tokens, namespace: velero}
stringData: {admin: $TOKEN}
---
apiVersion: velero.io/v1
kind: BackupStorageLocation
metadata: {name: default, namespace: velero}
spec: {provider: filesystem, default: true, backupSyncPeriod: 0s, objectStorage: {bucket: repo}, config: {path: "$WORK/store"}}
---
# A workflow whose Job never ends here (no simulated nodes run it): its operation holds.
apiVersion: v1
kind: ConfigMap
metadata: {name: hold, namespace: velero}
data:
  workflow.yaml: |
    backup:
      - {name: wait, job: {template: {spec: {containers: [{name: w, image: none}]}}}}
      - {name: kubernetes, objects: {}}
YAML
python3 - "$BACKUPS" >"$WORK/backups.json" <<'PY'
import json, sys
items = []
for i in range(int(sys.argv[1])):
    items.append({"apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": {"name": f"old-{i:05d}", "namespace": "velero", "annotations": {"cairn.io/description": f"backup {i}"}},
        "spec": {"includedNamespaces": ["shop"], "storageLocation": "default"},
        "status": {"phase": "Completed", "startTimestamp": "2026-11-01T00:00:00Z", "completionTimestamp": "2026-11-01T00:01:00Z",
            "progress": {"totalItems": 120, "itemsBackedUp": 120}}})
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
PY
kubectl apply --validate=false -f "$WORK/backups.json" >/dev/null
port=$(free_port)
target/release/cairn-server --no-cache serve --identity bench --namespace velero --listen "127.0.0.1:$port" \
    --metrics-address "127.0.0.1:$(free_port)" >"$WORK/server.log" 2>&1 &
server=$!
pids+=($server)
for _ in $(seq 300); do curl -s "http://127.0.0.1:$port/v1/openapi.json" >/dev/null 2>&1 && break; sleep 0.1; done
sleep 3
rss() { awk -v k="$1" '$1 == k":" {print int($2 / 1024)}' "/proc/$server/status"; }
idle=$(rss VmRSS)
python3 - "$port" "$TOKEN" "$CLIENTS" "$SECONDS_EACH" <<'PY'
import http.client, json, sys, threading, time
port, token, clients, seconds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}

def round_(name, method, path, body, expect):
    lat, errors, lock = [], [0], threading.Lock()
    stop = time.monotonic() + seconds
    def client():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        while time.monotonic() < stop:
            t = time.monotonic()
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            r.read()
            mine.append(time.monotonic() - t)
            if r.status != expect:
                with lock:
                    errors[0] += 1
        with lock:
            lat.extend(mine)
    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.monotonic()
    for t in threads: t.start()
    for t in threads: t.join()
    took = time.monotonic() - began
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
    print(f"| {name} | {len(lat) / took:.0f} | {q(.5):.1f} | {q(.95):.1f} | {q(.99):.1f} | {errors[0]} |", flush=True)

print(f"{clients} clients, {seconds:.0f} s each")
print()
print("| call | requests/s | p50 ms | p95 ms | p99 ms | unexpected answers |")
print("|---|---|---|---|---|---|")
round_("GET /v1/internal/backups (all)", "GET", "/v1/internal/backups", None, 200)
round_("GET /v1/internal/backups/{name}", "GET", "/v1/internal/backups/old-00007", None, 200)
# An operation that holds (its Job never ends here), so every start is refused.
c = http.client.HTTPConnection("127.0.0.1", port)
c.request("POST", "/v1/internal/backups", body=json.dumps({"workflow": "hold"}), headers=headers)
r = c.getresponse(); r.read()
round_("POST /v1/internal/backups (409)", "POST", "/v1/internal/backups", json.dumps({}), 409)
PY
echo
echo "cairn-server RSS: $idle MB idle with $BACKUPS Backups; peak $(rss VmHWM) MB"
