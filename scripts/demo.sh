#!/usr/bin/env bash
# `make demo`: install the extension and run the end-to-end demo on a throwaway cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

step "installing the extension into $("$PG_CONFIG" --pkglibdir)"
install_extension
step "building the CLI (its doctor ends the demo)"
cargo build -q -p bytebase-signal-cli
step "demo"
cargo run -q -p bytebase-signal-tests --bin bytebase-signal-demo
