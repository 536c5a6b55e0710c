# Sourced by tests/run.sh and benches/demo-k8s.sh (from the repository root): puts kubectl on
# PATH, unpacking Debian's kubernetes-client into target/kubectl when none is installed.
if ! command -v kubectl >/dev/null 2>&1 && [ ! -x target/kubectl/usr/bin/kubectl ]; then
    echo "installing kubectl (Debian's kubernetes-client) into target/kubectl"
    rm -rf target/kubectl && mkdir -p target/kubectl
    # Unpacked, not installed: needs no root once the package lists are there.
    (cd target/kubectl && { apt-get download kubernetes-client >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get download kubernetes-client; }; } &&
        dpkg -x kubernetes-client_*.deb .)
fi
if [ -x target/kubectl/usr/bin/kubectl ]; then
    export PATH="$PWD/target/kubectl/usr/bin:$PATH"
fi
