#!/usr/bin/env bash
# Installs this bytebase_signal package into the PostgreSQL that PG_CONFIG names (default: the
# pg_config on PATH). Run it as a user who can write that server's directories (usually root).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}
command -v "$PG_CONFIG" >/dev/null 2>&1 || { echo "error: pg_config not found; set PG_CONFIG" >&2; exit 1; }

built_for=$(sed -nE 's/.*-pg([0-9]+)-[^-]+$/\1/p' <<<"$(basename "$here")")
major=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
if [ -n "$built_for" ] && [ "$built_for" != "$major" ]; then
    echo "error: this package is built for PostgreSQL $built_for, but $PG_CONFIG is PostgreSQL $major" >&2
    exit 1
fi

pkglibdir=$("$PG_CONFIG" --pkglibdir)
extdir="$("$PG_CONFIG" --sharedir)/extension"
install -m 755 "$here/lib/bytebase_signal.so" "$pkglibdir/"
install -m 644 "$here"/extension/* "$extdir/"
echo "installed bytebase_signal into $pkglibdir and $extdir; now, in each database: CREATE EXTENSION bytebase_signal;"
