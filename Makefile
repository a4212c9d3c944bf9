# One target per habit. `make test` is what CI runs (.ci/run): it sets everything up
# on a fresh machine (virtualenv, dependencies) and runs lint, types and the tests.
# The tests start and stop their own servers (PostgreSQL, moto_server, rclone serve s3,
# sshd) on loopback.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo lint type test bench bench-enumeration bench-tools clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
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

test: lint type
	$(PY) -m pytest

# Benchmarks, written to benchmarks/RESULTS.md: `bench` runs the copy scenarios and the
# cost model (~30 min); `bench-enumeration` plan --summary over 1M and 5M rows (~17 min).
bench: setup bench-tools
	$(PY) benchmarks/copy_suite.py
	$(PY) benchmarks/report.py

bench-enumeration: setup bench-tools
	$(PY) benchmarks/plan_enumeration.py
	$(PY) benchmarks/report.py

# GNU time measures each tool's CPU and peak RSS (Debian's package `time`).
bench-tools:
	@if [ ! -x /usr/bin/time ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq time >/dev/null; \
		else echo "install GNU time (sudo apt-get install time) for the benchmarks"; exit 1; fi; fi

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .cdk-assets cdk.out
