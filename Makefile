# Developer entry points. `make test` is the command CI runs (.ci/run).
#
#   make run HOST=0.0.0.0 PORT=9000 [WORKERS=4]
#   make test PYTEST_ARGS='-k refresh -x'

SHELL := /bin/bash

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

HOST        ?= 127.0.0.1
PORT        ?= 8000
WORKERS     ?=
PYTEST_ARGS ?=
BENCH_ARGS  ?=

# `make check`, and the first step of `make test`: lint, the import contracts, and the types
# ([tool.mypy] in pyproject.toml: the whole idp package).
CHECKS = $(BIN)/ruff check . && $(BIN)/lint-imports --no-cache && $(BIN)/mypy

.PHONY: venv run test check bench fuzz mutate clean

# Reinstall only when pyproject.toml or the lock is newer than the stamp. Every dependency
# (runtime, dev, the build backend) comes from requirements.lock with its hash checked;
# idp itself is then installed editable with nothing resolved or fetched on top.
# scripts/lock.sh regenerates the lock after a change to pyproject.toml's dependencies.
venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: venv
	$(BIN)/idp db upgrade && $(BIN)/idp serve --host $(HOST) --port $(PORT) $(if $(WORKERS),--workers $(WORKERS))

# Two pytest runs: the deterministic suite, then the tests that wait on real time (`timing`: live servers,
# streams, Redis faults), serially, in file order, with a generous per-test timeout. Exit status 5 (nothing
# selected, e.g. PYTEST_ARGS='-k refresh' matches no timing test) counts as success.
test: venv
	bash scripts/test-setup.sh && $(CHECKS)
	$(BIN)/pytest -m "not timing" $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(BIN)/pytest -m timing -p no:randomly -o timeout=300 $(PYTEST_ARGS) || [ $$? -eq 5 ]

check: venv
	$(CHECKS)

bench: venv
	$(BIN)/python -m bench.run $(BENCH_ARGS)

fuzz: venv
	$(BIN)/pytest tests/robustness -m slow $(PYTEST_ARGS)

# Mutation testing of the security modules (mutmut; not part of CI). MODULES='idp/tokens/refresh.py' for one.
# What it reports and which survivors are equivalent: docs/mutation.md.
MODULES ?=
MUTATE_ARGS ?=
mutate: venv
	nice -n 10 $(BIN)/python scripts/mutate.py $(MUTATE_ARGS) $(MODULES)

# Build/test leftovers only: keeps .venv, data/ and keys/.
clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache .hypothesis mutants
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +
