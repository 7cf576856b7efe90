# The README's commands. `make demo` and `make test` work on a fresh clone: they install what
# they need (Debian packages, PostgreSQL binaries) through `make setup` first.
CARGO ?= cargo
# Versions the test suite runs on (space or comma separated).
RDS_PG_TEST_VERSIONS ?= 13 14 15 16 17 18
export RDS_PG_TEST_VERSIONS
# Sandboxes mostly wait on I/O: run more tests than cores at once.
TEST_THREADS ?= 4

.PHONY: setup test lint unit demo bench clean test-python

setup:
	@bash scripts/setup-postgres.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

test: setup lint
	$(CARGO) test --workspace --locked --no-fail-fast -- --test-threads=$(TEST_THREADS)
	RDS_PG_TEST_VERSIONS="$(if $(filter file,$(origin RDS_PG_TEST_VERSIONS)),,$(RDS_PG_TEST_VERSIONS))" \
		bash scripts/python-test.sh

# The Python binding: venv in .cache/venv, wheel built with maturin, pytest on rds-pg-py/tests.
# Runs on 15 and the newest installed version unless RDS_PG_TEST_VERSIONS is given explicitly.
test-python: setup
	RDS_PG_TEST_VERSIONS="$(if $(filter file,$(origin RDS_PG_TEST_VERSIONS)),,$(RDS_PG_TEST_VERSIONS))" \
		bash scripts/python-test.sh

# The demo needs one version: 15 with PostGIS and the client tools (Debian packages), else 18
# (npm registry). scripts/demo.sh runs the seed's procedure through the rds-pg command.
demo:
	@RDS_PG_TEST_VERSIONS=15 bash scripts/setup-postgres.sh || RDS_PG_TEST_VERSIONS=18 bash scripts/setup-postgres.sh
	@CARGO="$(CARGO)" bash scripts/demo.sh

bench: setup
	$(CARGO) bench --locked -p rds-pg-benches
	$(CARGO) bench --locked -p rds-pg-cli --bench cli

clean:
	$(CARGO) clean
	rm -rf .cache
