#!/usr/bin/env bash
# `make test`: every test of the project against the PostgreSQL that PG_CONFIG names.
# Run scripts/bootstrap.sh first (the Makefile does).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

step "imports run one way (scripts/check_imports.py)"
ensure_debian_packages python3
python3 scripts/check_imports.py client connect cli extension tests

step "unit and doc tests: bytebase-signal-connect, bytebase-signal-client, bytebase-signal-cli"
cargo test -p bytebase-signal-connect -p bytebase-signal-client -p bytebase-signal-cli

step "#[pg_test]s inside PostgreSQL $(pg_major)"
pgrx_args=()
if [ "$(id -u)" -eq 0 ]; then
    # PostgreSQL refuses to run as root: pgrx's test server runs as `postgres`, in a data
    # directory that user can write.
    pgtest_dir=$(mktemp -d /tmp/bytebase-signal-pgtest.XXXXXX)
    trap 'rm -rf "$pgtest_dir"' EXIT
    chown postgres: "$pgtest_dir"
    pgrx_args+=(--runas postgres --pgdata "$pgtest_dir/data")
fi
cargo pgrx test "pg$(pg_major)" -p bytebase_signal "${pgrx_args[@]}"

# `cargo pgrx test` installed a test build (with its `tests` schema); the end-to-end tests need the
# real one.
step "installing the extension into $("$PG_CONFIG" --pkglibdir)"
install_extension

# The TLS tests compare our client with the newest libpq and need a PostgreSQL 17 server (direct
# TLS): both come from the project's cache of pinned installations (scripts/postgres.sh).
step "PostgreSQL 17 and 18 for the TLS tests"
bash scripts/postgres.sh fetch 17 18 >/dev/null

step "end-to-end tests on throwaway clusters"
# The CLI's black-box test runs the real binary.
cargo build -p bytebase-signal-cli
cargo test -p bytebase-signal-tests

step "fault proof (tests/tests/proof.rs): cancels lost with and without the durable log"
cat target/tmp/fault-proof.md
