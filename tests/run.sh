#!/usr/bin/env bash
# The test command (README): installs and starts what the tests need, then runs all tests.
# - moto_server (PyPI `moto[server]`) on a free loopback port, for the S3 tests;
# - the node-agent binary, which the process tests spawn.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target

if ! python3 -c 'import moto.server, flask' >/dev/null 2>&1; then
    echo "installing moto[server] (the S3 test server)"
    python3 -m pip install --quiet 'moto[server]'
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m moto.server -H 127.0.0.1 -p "$port" > target/moto.log 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/')" >/dev/null 2>&1; then
        break
    fi
    sleep 0.2
done
python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/')" >/dev/null \
    || { echo "moto_server did not start; see target/moto.log"; cat target/moto.log; exit 1; }

export CAIRN_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
export CAIRN_REQUIRE_S3=1

cargo build --workspace --bins
cargo test --workspace "$@"
