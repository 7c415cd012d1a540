#!/usr/bin/env bash
# `make package`: the release build of the extension for the PostgreSQL that PG_CONFIG names,
# packed as a tarball (and a .deb where dpkg-deb exists) under target/package/, then checked: each
# artifact is installed into a pristine copy of that PostgreSQL (its bin, lib and share
# directories, minus any bytebase_signal files), where CREATE EXTENSION must work on a throwaway
# cluster. Run scripts/bootstrap.sh first (the Makefile does).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

major=$(pg_major)
version=$(sed -nE 's/^version = "(.*)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
name="bytebase_signal-$version-pg$major-$arch"
out=target/package
stage="$out/$name"
pkglibdir=$("$PG_CONFIG" --pkglibdir)
sharedir=$("$PG_CONFIG" --sharedir)

step "release build for PostgreSQL $major (cargo pgrx package)"
rm -rf target/release/bytebase_signal-pg"$major"
cargo pgrx package -p bytebase_signal --pg-config "$PG_CONFIG"
built="target/release/bytebase_signal-pg$major"

step "staging $stage"
rm -rf "$stage" && mkdir -p "$stage/lib" "$stage/extension" "$stage/pure"
cp "$built$pkglibdir/bytebase_signal.so" "$stage/lib/"
cp "$built$sharedir/extension/bytebase_signal.control" "$built$sharedir"/extension/bytebase_signal--*.sql "$stage/extension/"
# Older versions' install scripts, so that `CREATE EXTENSION ... VERSION` and every upgrade path work.
cp sql/bytebase_signal--*.sql "$stage/extension/"
cp -r sql/pure/. "$stage/pure/"
cp scripts/package/install.sh "$stage/install.sh"
sed -e "s/@VERSION@/$version/g" -e "s/@PG_MAJOR@/$major/g" scripts/package/INSTALL.md >"$stage/INSTALL.md"
cp LICENSE CHANGELOG.md "$stage/"
tar -C "$out" -czf "$out/$name.tar.gz" "$name"
artifacts=("$out/$name.tar.gz")

# The .deb installs where Debian's (and apt.postgresql.org's) postgresql-NN packages keep their
# files, whichever installation it was built against: a major from scripts/postgres.sh lives
# elsewhere, but its ABI is the same major's.
deb_pkglibdir=/usr/lib/postgresql/$major/lib
deb_sharedir=/usr/share/postgresql/$major
if command -v dpkg-deb >/dev/null 2>&1; then
    deb_name="postgresql-$major-bytebase-signal_${version}_$arch"
    deb_root="$out/$deb_name"
    step "building $deb_name.deb"
    rm -rf "$deb_root" && mkdir -p "$deb_root/DEBIAN" "$deb_root$deb_pkglibdir" "$deb_root$deb_sharedir/extension" \
        "$deb_root/usr/share/doc/postgresql-$major-bytebase-signal"
    cp "$stage/lib/bytebase_signal.so" "$deb_root$deb_pkglibdir/"
    cp "$stage"/extension/* "$deb_root$deb_sharedir/extension/"
    cp -r "$stage/pure" "$stage/INSTALL.md" "$stage/CHANGELOG.md" "$stage/LICENSE" \
        "$deb_root/usr/share/doc/postgresql-$major-bytebase-signal/"
    cat >"$deb_root/DEBIAN/control" <<EOF
Package: postgresql-$major-bytebase-signal
Version: $version
Architecture: $arch
Maintainer: bytebase_signal developers
Depends: postgresql-$major
Section: database
Priority: optional
Description: Bytebase cancel signals over NOTIFY/LISTEN for PostgreSQL $major
 The bytebase_signal extension: bytebase_cancel_task_run() and friends send cancel signals
 to every Bytebase replica at commit, and log them so that listeners replay what they missed.
EOF
    # Modes independent of the builder's umask.
    find "$deb_root" -type d -exec chmod 755 {} +
    find "$deb_root" -type f -exec chmod 644 {} +
    chmod 755 "$deb_root$deb_pkglibdir/bytebase_signal.so"
    dpkg-deb --root-owner-group --build "$deb_root" "$out/$deb_name.deb" >/dev/null
    rm -rf "$deb_root"
    artifacts+=("$out/$deb_name.deb")
fi

# --- check: each artifact into a pristine copy of this PostgreSQL -----------------------------
bindir=$("$PG_CONFIG" --bindir)
check_root=$(mktemp -d /tmp/bytebase-signal-package.XXXXXX)
trap 'stop_check_cluster; rm -rf "$check_root"' EXIT
run_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pgdata=""
stop_check_cluster() {
    if [ -n "$pgdata" ] && [ -f "$pgdata/postmaster.pid" ]; then
        run_pg "$pg_bin/pg_ctl" -D "$pgdata" -m immediate stop >/dev/null 2>&1 || true
    fi
}

# A copy of the server's bin, lib and share directories at their usual relative places: PostgreSQL
# finds its share and lib directories relative to its binaries, so the copy sees only its own files.
pristine_copy() {
    local root=$1
    mkdir -p "$root$(dirname "$bindir")" "$root$(dirname "$sharedir")" "$root$(dirname "$pkglibdir")"
    cp -a "$bindir" "$root$bindir"
    [ -d "$root$pkglibdir" ] || cp -a "$pkglibdir" "$root$pkglibdir"
    cp -a "$sharedir" "$root$sharedir"
    rm -f "$root$pkglibdir"/bytebase_signal* "$root$sharedir"/extension/bytebase_signal*
}

# Initialises and starts a cluster from the copy at `root`, then creates the extension fresh and
# from 0.1.0 upgraded, and sends a signal through each.
check_install() {
    local root=$1 what=$2
    pg_bin="$root$bindir"
    [ "$("$pg_bin/pg_config" --sharedir)" = "$root$sharedir" ] ||
        { echo "error: the copy of PostgreSQL does not use its own share directory" >&2; exit 1; }
    pgdata="$root/data"
    [ "$(id -u)" -eq 0 ] && chown -R postgres: "$root"
    chmod 755 "$check_root"
    run_pg "$pg_bin/initdb" -D "$pgdata" -A trust -U postgres >/dev/null
    run_pg "$pg_bin/pg_ctl" -D "$pgdata" -l "$root/log" -w \
        -o "-c listen_addresses='' -c unix_socket_directories='$root'" start >/dev/null
    local psql=("$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$root" -U postgres)
    "${psql[@]}" -d postgres -c "CREATE DATABASE fresh" >/dev/null
    "${psql[@]}" -d fresh -c "CREATE EXTENSION bytebase_signal" -c "SELECT bytebase_cancel_task_run(1)" >/dev/null
    local got from expected="$version:1"
    got=$("${psql[@]}" -At -d fresh -c "SELECT extversion || ':' || (SELECT count(*) FROM bytebase_signal_log) FROM pg_extension WHERE extname = 'bytebase_signal'")
    # Every older version the package ships an install script for, updated to this one.
    for from in $(ls "$root$sharedir/extension" | sed -nE 's/^bytebase_signal--([0-9.]+)\.sql$/\1/p'); do
        [ "$from" = "$version" ] && continue
        "${psql[@]}" -d postgres -c "CREATE DATABASE \"from_$from\"" >/dev/null
        "${psql[@]}" -d "from_$from" -c "CREATE EXTENSION bytebase_signal VERSION '$from'" \
            -c "ALTER EXTENSION bytebase_signal UPDATE" -c "SELECT bytebase_cancel_task_run(1)" >/dev/null
        got+=" $("${psql[@]}" -At -d "from_$from" -c "SELECT extversion || ':' || (SELECT count(*) FROM bytebase_signal_log) FROM pg_extension WHERE extname = 'bytebase_signal'")"
        expected+=" $version:1"
    done
    [ "$got" = "$expected" ] && [ "$expected" != "$version:1" ] ||
        { echo "error: $what: versions and log rows $got, expected $expected (and some upgrade path)" >&2; exit 1; }
    stop_check_cluster
    pgdata=""
    echo "ok: $what installs into a pristine PostgreSQL $major: CREATE EXTENSION and the updates from every shipped version work" >&2
}

step "checking the tarball in a pristine copy of PostgreSQL $major"
pristine_copy "$check_root/tar"
tar -C "$check_root" -xzf "$out/$name.tar.gz"
# The copy's pg_config must name the copy's directories, or install.sh would write into the real
# server's.
[ "$("$check_root/tar$bindir/pg_config" --pkglibdir)" = "$check_root/tar$pkglibdir" ] ||
    { echo "error: this PostgreSQL is not relocatable; cannot check the package in a copy" >&2; exit 1; }
PG_CONFIG="$check_root/tar$bindir/pg_config" "$check_root/$name/install.sh" >/dev/null
check_install "$check_root/tar" "$name.tar.gz"

if [ -n "${deb_name:-}" ]; then
    step "checking the .deb in a pristine copy of PostgreSQL $major"
    # Its files where Debian's postgresql-$major keeps such files, and nowhere else.
    deb_files=$(dpkg-deb -c "$out/$deb_name.deb" | awk '{print $6}' | grep -v '/$')
    unexpected=$(grep -vE "^\./(usr/lib/postgresql/$major/lib/bytebase_signal\.so|usr/share/postgresql/$major/extension/bytebase_signal[^/]*|usr/share/doc/postgresql-$major-bytebase-signal/.+)$" <<<"$deb_files" || true)
    [ -z "$unexpected" ] || { echo "error: $deb_name.deb has files outside Debian's layout: $unexpected" >&2; exit 1; }
    grep -qx "\./usr/lib/postgresql/$major/lib/bytebase_signal\.so" <<<"$deb_files" &&
        grep -qx "\./usr/share/postgresql/$major/extension/bytebase_signal\.control" <<<"$deb_files" ||
        { echo "error: $deb_name.deb lacks the library or the control file" >&2; exit 1; }
    pristine_copy "$check_root/deb"
    if [ "$pkglibdir" = "$deb_pkglibdir" ] && [ "$sharedir" = "$deb_sharedir" ]; then
        dpkg-deb -x "$out/$deb_name.deb" "$check_root/deb"
    else
        # Not a Debian layout: its files go where this installation keeps them.
        dpkg-deb -x "$out/$deb_name.deb" "$check_root/deb-files"
        cp "$check_root/deb-files$deb_pkglibdir"/* "$check_root/deb$pkglibdir/"
        cp "$check_root/deb-files$deb_sharedir"/extension/* "$check_root/deb$sharedir/extension/"
        echo "note: $deb_name.deb installs into $deb_pkglibdir and $deb_sharedir (Debian's layout);" \
            "checked with its files placed in a copy of $("$PG_CONFIG" --version) at $pkglibdir" >&2
    fi
    check_install "$check_root/deb" "$deb_name.deb"
fi

step "packages"
ls -l "${artifacts[@]}"
