# Two commands on a fresh machine (Python >= 3.11 and pip):
#   make run    create .venv, install the project, open the playground
#   make test   create .venv if missing, install the dev extras, run ruff (lint and format), mypy and pytest
#               (pytest builds the docs site in strict mode and opens it in Chromium)
#   make docs   serve the documentation site at http://127.0.0.1:8000
# Another Python, in a virtualenv of its own (what .ci/run does for 3.12 and up):
#   make pytest PYTHON=python3.12 VENV=.venv-3.12
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test lint typecheck pytest bench docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Stamps: reinstall only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[uvloop]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(PY) -m playground

test: lint typecheck pytest

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(PY) -m mypy

# Two processes, each taking a whole file at a time (--dist loadfile): tests of
# one file keep running one after another, as they were written to.
pytest: $(VENV)/.installed-dev
	$(PY) -m pytest -n 2 --dist loadfile

bench: $(VENV)/.installed-dev
	$(PY) -m benchmarks

docs: $(VENV)/.installed-dev
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs serve

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache site
