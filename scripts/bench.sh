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
ensure_debian_packages python3 python3-venv
venv=target/bench-venv
if ! "$venv/bin/python" -c 'import psycopg' 2>/dev/null; then
    step "psycopg 3 into $venv (PyPI)"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check 'psycopg[binary]>=3.1,<4'
fi
export BENCH_PYTHON="$PWD/$venv/bin/python"

step "building the CLI and the bench (release)"
cargo build -q --release -p bytebase-signal-cli
cargo build -q --release -p bytebase-signal-tests --features bench --bin bytebase-signal-bench \
    --bin bytebase-signal-bench-sqlx-listen
step "benchmarks"
target/release/bytebase-signal-bench "$@"
