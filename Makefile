# Everything a newcomer or CI needs starts here: `make demo`, `make test`.
# The virtualenv is created on first use and reused; the install step reruns only when
# pyproject.toml or the pinned constraints change.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
CONSTRAINTS := requirements/constraints-test.txt

.PHONY: help install lint typecheck pytest docs test demo bench clean

help:
	@echo "make demo       run the end-to-end example DAG offline against the local emulator"
	@echo "make test       lint, type-check, build the docs and run the whole test suite"
	@echo "make docs       build the documentation (warnings are errors) into docs/_build/html"
	@echo "make bench      run the benchmarks and rewrite docs/performance.md"

$(INSTALLED): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[test,docs,bench,s3]"
	touch $@

install: $(INSTALLED)

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(INSTALLED)
	$(BIN)/mypy

pytest: $(INSTALLED)
	$(BIN)/python -m pytest

docs: $(INSTALLED)
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

test: lint typecheck docs pytest

demo: $(INSTALLED)
	$(BIN)/python scripts/demo.py

bench: $(INSTALLED)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) airflow_home docs/_build demo_output
