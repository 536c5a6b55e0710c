#!/usr/bin/env bash
# Builds cairn's image on a machine that cannot pull `rust:1-bookworm` (no registry
# reachable, as in this project's sandbox): the two binaries are built here, statically
# linked against glibc (`+crt-static`), and copied onto `scratch` with podman, then the image
# runs `--version` of each. deploy/Dockerfile is the real recipe (musl, built in a
# container); this one checks what can be checked without a registry.
#
#   bash deploy/image-here.sh            # needs podman (Debian) and runc
#
# On this sandbox podman's default runtime (crun) cannot run containers (cgroups in hybrid
# mode, RLIMIT_NOFILE), so runc and explicit ulimits are used.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-gnu
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target "$target" \
    -p cairn-server -p node-agent
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "target/$target/release/cairn-server" "target/$target/release/node-agent" "$ctx/"
cp /etc/ssl/certs/ca-certificates.crt "$ctx/"
# The release profile keeps line tables for backtraces; the image does without them.
strip "$ctx/cairn-server" "$ctx/node-agent"
for b in cairn-server node-agent; do
    if ldd "$ctx/$b" 2>&1 | grep -q '=>'; then
        echo "$b is not static:" >&2
        ldd "$ctx/$b" >&2
        exit 1
    fi
done
cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY cairn-server /cairn-server
COPY node-agent /node-agent
USER 65532:65532
ENTRYPOINT ["/cairn-server"]
DOCKERFILE
podman build --runtime runc -t localhost/cairn:here "$ctx"
run() { podman --runtime runc run --rm --ulimit nofile=20000:20000 --ulimit nproc=32768:32768 "$@"; }
run localhost/cairn:here --version
run --entrypoint /node-agent localhost/cairn:here --version
run --entrypoint /cairn-server localhost/cairn:here serve --help | head -3
podman image ls localhost/cairn:here
