#!/usr/bin/env bash
# `make test-matrix`: the extension's #[pg_test]s and every end-to-end suite against each
# PostgreSQL major, each with that major's own server binaries, then one table: major × suite →
# passed or failed, and seconds. Run scripts/bootstrap.sh first (the Makefile does).
#
#   MATRIX_MAJORS  the majors to run (default: every supported one, `scripts/postgres.sh supported`)
#
# Each major comes from scripts/postgres.sh (15 is the system's; the others are fetched and
# cached there, then quick). The extension is built for it (`--features pgNN`: pgrx's bindings
# for that major) and installed into that installation; the end-to-end binaries do not depend on
# the major and are built once. A suite's whole output is kept in target/tmp/matrix/; a failure
# prints its last lines and the matrix goes on (a major whose extension does not install has its
# suites marked failed), then exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

read -r -a majors <<<"${MATRIX_MAJORS:-$(bash scripts/postgres.sh supported)}"
# Every end-to-end suite, one test binary each (tests/tests/*.rs).
suites=()
for f in tests/tests/*.rs; do suites+=("$(basename "$f" .rs)"); done
out=target/tmp/matrix
rm -rf "$out" && mkdir -p "$out"

step "PostgreSQL ${majors[*]}"
declare -A pg_config_of
for major in "${majors[@]}"; do
    pg_config_of[$major]=$(bash scripts/postgres.sh pg-config "$major")
done
# The TLS suites compare with psql 18 and need a PostgreSQL 17 server, whatever the major.
bash scripts/postgres.sh fetch 17 18 >/dev/null

step "building the end-to-end suites and the CLI once"
cargo build -p bytebase-signal-cli
if ! cargo test -p bytebase-signal-tests --no-run >"$out/build.log" 2>&1; then
    tail -n 60 "$out/build.log" >&2
    echo "error: the end-to-end suites do not build (whole output in $out/build.log)" >&2
    exit 1
fi

# `cargo pgrx test` runs PostgreSQL as `postgres` when we are root, in a directory it can write.
pgrx_args=()
if [ "$(id -u)" -eq 0 ]; then
    pgtest_dir=$(mktemp -d /tmp/bytebase-signal-pgtest.XXXXXX)
    trap 'rm -rf "$pgtest_dir"' EXIT
    chown postgres: "$pgtest_dir"
fi

# One cell: runs "$@" with its output in $out/<major>-<suite>.log; records "passed|failed seconds".
declare -A result
failed=0
cell() {
    local major=$1 suite=$2 started status
    shift 2
    started=$(date +%s)
    if "$@" >"$out/$major-$suite.log" 2>&1; then status=passed; else status=failed; failed=1; fi
    result[$major,$suite]="$status $(($(date +%s) - started))"
    printf '    %-14s %s in %s s\n' "$suite" "$status" "$(($(date +%s) - started))" >&2
    if [ "$status" = failed ]; then
        tail -n 40 "$out/$major-$suite.log" | sed 's/^/      | /' >&2
    fi
}

for major in "${majors[@]}"; do
    pg_config=${pg_config_of[$major]}
    step "PostgreSQL $major ($("$pg_config" --version), $pg_config)"
    export PG_CONFIG=$pg_config
    # cargo pgrx keeps one pg_config per major in its config, adding to the others.
    if ! grep -qsE "^pg$major = \"$pg_config\"" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
        cargo pgrx init "--pg$major" "$pg_config" >&2
    fi
    if [ -n "${pgtest_dir:-}" ]; then
        rm -rf "$pgtest_dir/data"
        pgrx_args=(--runas postgres --pgdata "$pgtest_dir/data")
    fi
    cell "$major" pg_test cargo pgrx test "pg$major" -p bytebase_signal "${pgrx_args[@]}"
    # `cargo pgrx test` installed a test build; the suites need the real one.
    if ! install_extension >"$out/$major-install.log" 2>&1; then
        tail -n 40 "$out/$major-install.log" | sed 's/^/      | /' >&2
        echo "error: installing the extension into PostgreSQL $major failed; its suites are marked failed" >&2
        failed=1
        for suite in "${suites[@]}"; do result[$major,$suite]="failed 0"; done
        continue
    fi
    # This major's proof only, never an earlier run's.
    rm -f target/tmp/fault-proof.md
    for suite in "${suites[@]}"; do
        cell "$major" "$suite" cargo test -q -p bytebase-signal-tests --test "$suite"
    done
    if [ -f target/tmp/fault-proof.md ]; then cp target/tmp/fault-proof.md "$out/$major-fault-proof.md"; fi
done

# The table, printed and kept in target/tmp/matrix/summary.md.
{
    printf '| PostgreSQL |'
    for suite in pg_test "${suites[@]}"; do printf ' %s |' "$suite"; done
    printf ' total |\n|---|'
    for _ in pg_test "${suites[@]}"; do printf -- '---|'; done
    printf -- '---:|\n'
    for major in "${majors[@]}"; do
        printf '| %s (%s) |' "$major" "$(${pg_config_of[$major]} --version | sed -E 's/^PostgreSQL ([^ ]+).*/\1/')"
        total=0
        for suite in pg_test "${suites[@]}"; do
            read -r status seconds <<<"${result[$major,$suite]}"
            total=$((total + seconds))
            if [ "$status" = passed ]; then printf ' ✓ %ss |' "$seconds"; else printf ' **✗** %ss |' "$seconds"; fi
        done
        printf ' %ss |\n' "$total"
    done
} | tee "$out/summary.md"
if [ "$failed" -ne 0 ]; then
    echo "error: some suites failed on some majors (the ✗ above; logs in $out/)" >&2
    exit 1
fi
