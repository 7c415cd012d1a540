#!/usr/bin/env bash
# `make bench`: benchmarks on throwaway clusters, in release mode; prints markdown tables.
# Arguments select sections (send, receive, cli-vs-psycopg, latency, recovery, heartbeat, memory, fanout);
# default all.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

step "installing the extension (release build) into $("$PG_CONFIG" --pkglibdir)"
install_extension --release
# psycopg 3, the Python peer, from PyPI into a virtualenv of Debian's python3.
missing=()
for p in python3 python3-venv; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    step "installing Debian packages: ${missing[*]}"
    as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
venv=target/bench-venv
if ! "$venv/bin/python" -c 'import psycopg' 2>/dev/null; then
    step "psycopg 3 into $venv (PyPI)"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check 'psycopg[binary]>=3.1,<4'
fi
export BENCH_PYTHON="$PWD/$venv/bin/python"

step "building the CLI and the bench (release)"
cargo build -q --release -p bytebase-signal-client --features cli --bin bytebase-signal
cargo build -q --release -p bytebase-signal-tests --features bench --bin bytebase-signal-bench
step "benchmarks"
target/release/bytebase-signal-bench "$@"
