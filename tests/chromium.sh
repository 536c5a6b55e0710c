# Sourced by tests/run.sh (from the repository root): Debian's chromium, for the console's
# browser tests (it needs root to install; CI runs as root).
if ! command -v chromium >/dev/null 2>&1; then
    echo "installing chromium (Debian's), for the console's browser tests"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
fi
export CAIRN_CHROMIUM="$(command -v chromium)"
