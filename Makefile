# Every target bootstraps what it needs first (Debian packages, cargo-pgrx, `cargo pgrx init`),
# idempotently. PG_CONFIG selects the PostgreSQL (default: the system PostgreSQL 15); PG=16
# selects a major from scripts/postgres.sh instead (fetched and cached on first use).
ifdef PG
PG_CONFIG := $(shell bash scripts/postgres.sh pg-config $(PG))
ifneq ($(.SHELLSTATUS),0)
$(error no PostgreSQL $(PG): scripts/postgres.sh pg-config $(PG) failed (its messages are above))
endif
ifeq ($(wildcard $(PG_CONFIG)),)
$(error no PostgreSQL $(PG): scripts/postgres.sh pg-config $(PG) answered "$(PG_CONFIG)", not a pg_config)
endif
endif
PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
export PG_CONFIG

.PHONY: all bootstrap postgres test test-matrix demo bench install package package-matrix clean

all: test

## bootstrap: install missing build and test dependencies (quick when nothing is missing)
bootstrap:
	@bash scripts/bootstrap.sh

## postgres: fetch and cache PostgreSQL 14-19 (15 is the system's), one pg_config path a line
## (scripts/postgres.sh; quick when cached)
postgres:
	@bash scripts/postgres.sh fetch all

## test: every test: unit, #[pg_test] inside PostgreSQL, end-to-end on throwaway clusters
test: bootstrap
	@bash scripts/test.sh

## test-matrix: the #[pg_test]s and every end-to-end suite on each PostgreSQL major, 14 to 19
## (MATRIX_MAJORS="14 16" for fewer), then one table of major x suite (scripts/matrix.sh)
test-matrix: bootstrap
	@bash scripts/matrix.sh

## demo: the main job end to end on a throwaway cluster
demo: bootstrap
	@bash scripts/demo.sh

## bench: the benchmarks on throwaway clusters (release build), markdown tables; `make bench receive`
## (or send, cli-vs-psycopg, latency, recovery, heartbeat, memory, fanout) runs those sections only
BENCH_SECTIONS := send receive cli-vs-psycopg latency recovery heartbeat memory fanout
bench: bootstrap
	@bash scripts/bench.sh $(filter $(BENCH_SECTIONS),$(MAKECMDGOALS))

# The section names are arguments of `make bench`, not targets of their own; a word that is
# neither a section nor a target is refused before anything runs.
ifneq ($(filter bench,$(MAKECMDGOALS)),)
BENCH_UNKNOWN := $(filter-out $(BENCH_SECTIONS) all bootstrap postgres test test-matrix demo bench install package package-matrix clean,$(MAKECMDGOALS))
ifneq ($(BENCH_UNKNOWN),)
$(error unknown bench section $(BENCH_UNKNOWN) (sections: $(BENCH_SECTIONS)))
endif
.PHONY: $(BENCH_SECTIONS)
$(BENCH_SECTIONS):
	@:
endif

## install: build in release mode and install into the PostgreSQL that PG_CONFIG names
install: bootstrap
	@bash -c '. scripts/common.sh && install_extension --release'

## package: release tarball (and .deb) for PG_CONFIG's PostgreSQL in target/package/, checked by
## installing each into a pristine copy of that PostgreSQL
package: bootstrap
	@bash scripts/package.sh

## package-matrix: make package for each PostgreSQL major, 14 to 19 (MATRIX_MAJORS for fewer)
package-matrix: bootstrap
	@for major in $${MATRIX_MAJORS:-$$(bash scripts/postgres.sh supported)}; do \
		PG_CONFIG=$$(bash scripts/postgres.sh pg-config $$major) && export PG_CONFIG && \
		bash scripts/bootstrap.sh && bash scripts/package.sh || exit 1; \
	done

clean:
	cargo clean
