#!/usr/bin/env bash
# Installs what building and testing bytebase_signal needs, and nothing that is already there:
# Debian packages, cargo-pgrx at the pinned version, and `cargo pgrx init` against the system
# PostgreSQL. Safe to run again; when everything is present it only checks (about a second).
#
#   PG_CONFIG  pg_config of the PostgreSQL to build against
#              (default /usr/lib/postgresql/15/bin/pg_config)
set -euo pipefail

cd "$(dirname "$0")/.."
. scripts/common.sh

PGRX_VERSION=0.19.4

# --- Debian packages --------------------------------------------------------------------------
# The system PostgreSQL 15 always (the default server, its `postgres` user runs every test
# cluster). Another major's server/dev packages only where PG_CONFIG is Debian's path for it
# (/usr/lib/postgresql/NN/bin/pg_config, from a repository that has them); the majors of
# scripts/postgres.sh (`make test PG=16`) are not Debian packages.
debian_major=$(printf '%s' "$PG_CONFIG" | sed -nE 's|^/usr/lib/postgresql/([0-9]+)/bin/pg_config$|\1|p')
packages=(sudo clang libclang-dev pkg-config make pgbouncer postgresql-15 postgresql-server-dev-15)
if [ -n "$debian_major" ] && [ "$debian_major" != 15 ]; then
    packages+=("postgresql-$debian_major" "postgresql-server-dev-$debian_major")
fi
# Debian's postgresql package may create and start a default cluster (15/main, port 5432): the
# tests start their own on free ports and leave it alone.
ensure_debian_packages "${packages[@]}"

if [ ! -x "$PG_CONFIG" ]; then
    echo "error: PG_CONFIG=$PG_CONFIG is not an executable pg_config" >&2
    exit 1
fi

# --- cargo-pgrx -------------------------------------------------------------------------------
# (cargo itself is always found: scripts/toolchain/cargo, which needs the real one.)
if ! command -v rustc >/dev/null 2>&1; then
    echo "error: rustc not found; install Rust (rustup) first" >&2
    exit 1
fi
have=$(cargo pgrx --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$PGRX_VERSION" ]; then
    step "installing cargo-pgrx $PGRX_VERSION (found: ${have:-none}); takes a few minutes"
    # cargo is scripts/toolchain/cargo: cargo-pgrx 0.19 declares Rust 1.96 too.
    cargo install cargo-pgrx --version "=$PGRX_VERSION" --locked --quiet
fi

# --- cargo pgrx init --------------------------------------------------------------------------
# Always against an existing pg_config: the download form of `cargo pgrx init` needs the internet.
pgrx_home=${PGRX_HOME:-$HOME/.pgrx}
key="pg$(pg_major)"
if ! grep -qsE "^$key = \"$PG_CONFIG\"" "$pgrx_home/config.toml"; then
    step "cargo pgrx init --$key $PG_CONFIG"
    cargo pgrx init "--$key" "$PG_CONFIG"
fi
