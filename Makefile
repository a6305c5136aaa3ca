# devposture — developer and demo entry points. `make demo` and `make test` are the Quick start.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck unit unit-postgresql protos catalogs bench clean packages msi pkg

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "devposture needs Python 3.11 or newer; $(PYTHON) is older. Set PYTHON=python3.11"; exit 1; }
	@$(PYTHON) -m venv $(VENV) || \
	  { echo "cannot create $(VENV): on Debian/Ubuntu install it with: sudo apt install python3-venv"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

## demo: start a collector on loopback, enroll this machine, send one report, print the table
demo: $(VENV)/.installed
	$(BIN)/python scripts/demo.py

## test: lint, type-check and run the whole test suite (the collector's tests on SQLite, then
## again on PostgreSQL: scripts/postgresql-for-tests finds or starts a server)
test: lint typecheck unit unit-postgresql

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy
	$(BIN)/mypy --platform win32 agent/windows

# Four processes (pytest-xdist), a file's tests kept together in one: much of the time goes in
# waiting for real processes (collectors, agents, package installs, PostgreSQL), which run side
# by side, so more processes than CI's two cores keep them busier (a quiet 2-core VM,
# 2026-12-05, two -> three: the SQLite leg 427 -> 364 s, the PostgreSQL leg 314 -> 272 s;
# 2026-12-06, three -> four: 545 -> 477 s and 495 -> 345 s, the PostgreSQL leg using 1.3 cores
# of two; six: 368 s; 2026-12-07, a slower VM, the SQLite leg: four 506 s, six 541 s).
# TEST_WORKERS=0 runs everything in this process. The PostgreSQL leg waits more (on the
# server, whose CPU is not the suite's processes'): six processes there (2026-12-07, a quiet
# 2-core VM: four 318 s, six 271 s, the suite's processes and the server's together using
# 1.8 cores of two; the SQLite leg alone uses 1.84). Both legs at once were slower than one
# after the other (the PostgreSQL leg 714 s, the SQLite leg past 950 s, against 318 + 414 s).
TEST_WORKERS ?= 4
TEST_WORKERS_POSTGRESQL ?= $(if $(filter 0,$(TEST_WORKERS)),0,6)
# Bytecode is cached (__pycache__, ignored by git) even where the environment says
# PYTHONDONTWRITEBYTECODE, as some CI images do: the suite starts hundreds of Python processes
# (collectors, agents, command lines), and each compiled every module it imports again, about
# 0.3 s of a core per collector command (0.53 s against 0.26 s for `devposture-collector --help`).
# `--durations`: each leg ends with its 25 slowest tests, so that a run's log shows where its
# time went (a 2-core VM, 2026-12-07: the slowest 20-40 s in each leg, then a long tail).
PYTEST = env -u PYTHONDONTWRITEBYTECODE $(BIN)/pytest --dist loadfile --durations=25

unit: $(VENV)/.installed-test
	env -u DEVPOSTURE_TEST_POSTGRESQL $(PYTEST) -n $(TEST_WORKERS)

# The collector's and the dashboard's tests on PostgreSQL too, and the end-to-end tests whose
# collector's store is what they exercise (faults, identity, admin, evidence, enrollment);
# the other end-to-end tests are about the agent and gain nothing from a second engine.
# Tests marked engine_free (they never reach the engine: parsers, rendering, wire checks) ran
# on the SQLite leg already, with the same outcome; tests/databases.py fails one that does.
E2E_ON_POSTGRESQL = tests/e2e/test_faults.py tests/e2e/test_admin.py tests/e2e/test_identity.py \
	tests/e2e/test_enrollment_value.py tests/e2e/test_compliance_scenario.py \
	tests/e2e/test_token_bundle.py tests/e2e/test_tls_rotation.py tests/e2e/test_hints.py \
	tests/e2e/test_database_faults.py tests/e2e/test_audit_language.py
unit-postgresql: $(VENV)/.installed-test
	DEVPOSTURE_TEST_POSTGRESQL=$${DEVPOSTURE_TEST_POSTGRESQL:-$$(scripts/postgresql-for-tests)} \
	  $(PYTEST) -n $(TEST_WORKERS_POSTGRESQL) -m "not sqlite_only and not engine_free" \
	  tests/collector tests/web $(E2E_ON_POSTGRESQL)

## protos: regenerate the Python modules and stubs from protos/devposture/v1/*.proto
protos: $(VENV)/.installed-test
	$(BIN)/python protos/generate.py

## catalogs: bring the message catalogs (protos/devposture/policy/locale/*/LC_MESSAGES/*.po) up
## to date with the declared messages and compile the .mo files beside them (commit both)
catalogs: $(VENV)/.installed-test
	$(BIN)/python scripts/catalogs.py

## packages: .deb and .rpm of the agent and the collector, each with its own Python, and the
## three wheels, into dist/ (installers/linux/packages.py; the build is cached outside the
## repository, keyed by its sources). Needs Debian's python3.11-venv, libpython3.11, binutils.
FREEZE_PYTHON ?= /usr/bin/python3.11
AGENT_VERSION = $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' agent/__init__.py)
packages:
	$(PYTHON) installers/linux/packages.py --out dist --python $(FREEZE_PYTHON)

## msi, pkg: the Windows MSI and the macOS .pkg of the agent, from a program frozen on a native
## build machine (.github/workflows/native-installers.yml; PyInstaller cannot freeze for
## another system): make msi FROZEN=path/to/devposture-agent (the folder), likewise pkg.
## Each refuses an executable that is not of its system.
msi:
	@test -n "$(FROZEN)" || { echo "make msi FROZEN=DIR: DIR is the agent frozen on Windows (installers/README.md)"; exit 1; }
	$(PYTHON) installers/windows/build_msi.py --frozen $(FROZEN) --version $(AGENT_VERSION)
pkg:
	@test -n "$(FROZEN)" || { echo "make pkg FROZEN=DIR: DIR is the agent frozen on macOS (installers/README.md)"; exit 1; }
	$(PYTHON) installers/macos/build_pkg.py --frozen $(FROZEN) --version $(AGENT_VERSION) --out dist/devposture-agent-$(AGENT_VERSION).pkg

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache test-artifacts
