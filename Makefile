# One target per habit. `make test` is what CI runs (.ci/run): it sets everything up
# on a fresh machine (virtualenv, dependencies) and runs lint, types and every tier of
# tests. `make test-unit` runs the unit tier alone (pure, no sockets: seconds). The
# server tiers start and stop their own servers (PostgreSQL, moto_server, rclone serve s3,
# sshd) on loopback; each is a marker named after its directory, so
# `.venv/bin/python -m pytest -m "integration or faults"` (or "not infra", ...) picks tiers.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo lint type test test-unit lock-lambda bench bench-enumeration bench-disk bench-tools clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools
	$(PY) -m pip install --quiet -e '.[dev]'
	@# The SSH bastion tests run a real sshd (Debian's openssh-server).
	@if [ ! -x /usr/sbin/sshd ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq openssh-server >/dev/null; \
		else echo "install openssh-server (sudo apt-get install openssh-server) for the tests"; exit 1; fi; fi
	@# No PostgreSQL binaries on this machine? The tests then use the pgserver wheel.
	@if ! command -v pg_ctl >/dev/null && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then \
		$(PY) -m pip install --quiet pgserver; fi
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/mastodon-s3-sync demo

lint: setup
	$(PY) -m ruff check src functions infra tests benchmarks
	$(PY) -m ruff format --check src functions infra tests benchmarks

type: setup
	$(PY) -m mypy

# Test workers (pytest-xdist), each with its own servers; 0 runs the tests in one process.
TEST_WORKERS ?= auto

test: lint type
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope

test-unit: setup
	$(PY) -m pytest tests/unit

# The Lambda assets' lock files (infra/lambda-requirements/, checked in): what pip resolves
# for the copier and enumerator extras on the Lambda platform, with hashes. Rerun after
# changing pyproject.toml's dependencies, or to take newer releases; commit the result.
lock-lambda: setup
	$(PY) -m infra.lambda_lock

# Benchmarks (modules of the benchmarks package, run from the repository root), written
# to benchmarks/RESULTS.md: `bench` runs the delay proxy's cost, the copy scenarios (3,000
# objects, 2 interleaved runs per tool) and the cost model (~30 min on an idle machine);
# `bench-enumeration` plan --summary over 1M and 5M rows (~17 min).
bench: setup bench-tools
	$(PY) -m benchmarks.proxy_cost
	$(PY) -m benchmarks.copy_suite --runs 2
	$(PY) -m benchmarks.report

# `bench-disk`: disk -> rclone serve s3, run vs rclone copy DIR, and a 1 GiB file (~5 min);
# figures in benchmarks/results/disk_upload.json.
bench-disk: setup bench-tools
	$(PY) -m benchmarks.disk_upload

bench-enumeration: setup bench-tools
	$(PY) -m benchmarks.plan_enumeration
	$(PY) -m benchmarks.report

# The soak (not in `make test`): 100,000 small objects through 10% faults on both sides,
# `run` SIGKILLed twice and resumed, then verified; figures in benchmarks/results/soak.json
# (~30 min on 2 cores). SOAK_OBJECTS=5000 for a quick one.
.PHONY: soak
SOAK_OBJECTS ?= 100000
soak: setup
	$(PY) -m benchmarks.soak --objects $(SOAK_OBJECTS)

# GNU time measures each tool's CPU and peak RSS (Debian's package `time`).
bench-tools:
	@if [ ! -x /usr/bin/time ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq time >/dev/null; \
		else echo "install GNU time (sudo apt-get install time) for the benchmarks"; exit 1; fi; fi

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .cdk-assets cdk.out
