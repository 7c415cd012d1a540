# Every target bootstraps what it needs first (Debian packages, cargo-pgrx, `cargo pgrx init`),
# idempotently. PG_CONFIG selects the PostgreSQL (default: the system PostgreSQL 15).
PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
export PG_CONFIG

.PHONY: all bootstrap postgres test demo bench install package clean

all: test

## bootstrap: install missing build and test dependencies (quick when nothing is missing)
bootstrap:
	@bash scripts/bootstrap.sh

## postgres: fetch and cache PostgreSQL 13-18 (15 is the system's), one pg_config path a line
## (scripts/postgres.sh; quick when cached)
postgres:
	@bash scripts/postgres.sh fetch all

## test: every test: unit, #[pg_test] inside PostgreSQL, end-to-end on throwaway clusters
test: bootstrap
	@bash scripts/test.sh

## demo: the main job end to end on a throwaway cluster
demo: bootstrap
	@bash scripts/demo.sh

## bench: what a cancel costs the sender, against raw pg_notify (release build, throwaway cluster)
bench: bootstrap
	@bash scripts/bench.sh

## install: build in release mode and install into the PostgreSQL that PG_CONFIG names
install: bootstrap
	@bash -c '. scripts/common.sh && install_extension --release'

## package: release tarball (and .deb) for PG_CONFIG's PostgreSQL in target/package/, checked by
## installing each into a pristine copy of that PostgreSQL
package: bootstrap
	@bash scripts/package.sh

clean:
	cargo clean
