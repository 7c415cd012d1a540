# Shared by the scripts behind the Makefile: which PostgreSQL, and how to reach its directories.
# shellcheck shell=bash

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
# rustup puts cargo here; a non-login shell (CI, sudo) may not have it on PATH. A CARGO_HOME of
# its own (docs/development.md: CI from nothing) is where `cargo install` puts cargo-pgrx.
if [ -d "$HOME/.cargo/bin" ]; then PATH="$HOME/.cargo/bin:$PATH"; fi
if [ -n "${CARGO_HOME:-}" ]; then PATH="$CARGO_HOME/bin:$PATH"; fi
# cargo and cargo-pgrx through scripts/toolchain: pgrx 0.19 declares Rust 1.96, the machine has 1.95.
toolchain_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/toolchain"
case ":$PATH:" in *":$toolchain_dir:"*) ;; *) PATH="$toolchain_dir:$PATH" ;; esac
export PATH CARGO_PGRX="$toolchain_dir/cargo-pgrx"
export PG_CONFIG

step() { printf '\n==> %s\n' "$*" >&2; }

# The major version of the PostgreSQL that PG_CONFIG names, e.g. 15.
pg_major() { "$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/'; }

# Installs the extension into PG_CONFIG's PostgreSQL; extra arguments go to `cargo pgrx install`
# (e.g. --release). Uses sudo only when we cannot write the server's directories ourselves.
install_extension() {
    local args=(-p bytebase_signal --pg-config "$PG_CONFIG")
    if [ ! -w "$("$PG_CONFIG" --pkglibdir)" ] || [ ! -w "$("$PG_CONFIG" --sharedir)/extension" ]; then
        args+=(--sudo)
    fi
    cargo pgrx install "${args[@]}" "$@"
    # cargo pgrx copies the upgrade scripts but not older versions' install scripts; those let
    # `CREATE EXTENSION ... VERSION '0.1.0'` work, which the upgrade tests need.
    local extdir sudo=()
    extdir="$("$PG_CONFIG" --sharedir)/extension"
    [ -w "$extdir" ] || sudo=(sudo)
    "${sudo[@]}" cp sql/bytebase_signal--*.sql "$extdir/"
}

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Installs those of the given Debian packages that are not installed; when all are, it only asks
# dpkg (no apt-get update, no network).
ensure_debian_packages() {
    local p missing=()
    for p in "$@"; do
        [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" = "install ok installed" ] || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        step "installing Debian packages: ${missing[*]}"
        # On stderr: callers such as `postgres.sh pg-config` answer on stdout.
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    fi
}
