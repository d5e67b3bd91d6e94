# The only entry points a person needs. Every target installs what it needs first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: install run serve test lint typecheck pytest openapi openapi-check migrate seed bench audit-deps clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(PY) -m app migrate

seed: migrate
	$(PY) -m app seed-demo --if-empty

run: seed
	$(PY) -m app serve --host $(HOST) --port $(PORT)

lint: install
	$(PY) -m ruff check app tests $(wildcard bench) $(wildcard security) migrations/env.py

typecheck: install
	$(PY) -m mypy app

pytest: install
	$(PY) -m pytest

test: lint typecheck pytest

openapi: install
	$(PY) -m app export-openapi openapi/openapi.json

openapi-check: install
	$(PY) -m app export-openapi --check openapi/openapi.json

bench: install
	$(PY) -m bench

# Known vulnerabilities in the pinned set (constraints.txt); needs the registry, so `make test` does not run it.
# Reviewed exceptions: security/pip-audit-exceptions.md.
audit-deps: install
	$(PY) security/audit_deps.py

clean:
	rm -rf $(VENV) data/*.db data/*.db-wal data/*.db-shm
