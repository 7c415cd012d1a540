#!/usr/bin/env bash
# `make bench`: benchmarks on a throwaway cluster, in release mode; prints markdown tables.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

step "installing the extension (release build) into $("$PG_CONFIG" --pkglibdir)"
install_extension --release
step "send cost"
cargo run -q --release -p bytebase-signal-tests --bin bytebase-signal-bench
