# Everything a newcomer or CI needs starts here: `make demo`, `make test`.
# The virtualenv is created on first use and reused; the install step reruns only when
# pyproject.toml or the pinned constraints change.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
CONSTRAINTS := requirements/constraints-test.txt
# Azurite, the Azure Blob Storage emulator the abfs:// tests run against, from npm into a
# project-local folder (nothing global); the stamp names the version, so a bump reinstalls.
NODE_TOOLS := .tools/node
AZURITE_VERSION := 3.37.0
AZURITE_INSTALLED := $(NODE_TOOLS)/.azurite-$(AZURITE_VERSION)

.PHONY: help install azurite lint typecheck pytest docs test demo bench clean

help:
	@echo "make demo       run the example DAGs end to end offline against the local emulator"
	@echo "make test       lint, type-check, build the docs and run the whole test suite"
	@echo "make docs       build the documentation (warnings are errors) into docs/_build/html"
	@echo "make bench      run the benchmarks and rewrite docs/performance.md"
	@echo "make bench-celery  1,000 TTS tasks under CeleryExecutor with Redis (figures in docs/deployment.md)"

$(INSTALLED): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[test,docs,bench,s3,azure]"
	touch $@

install: $(INSTALLED)

$(AZURITE_INSTALLED):
	@command -v npm >/dev/null || { echo "npm (Node.js) is needed to install Azurite for the abfs:// tests"; exit 1; }
	npm install --prefix $(NODE_TOOLS) --save-exact --no-audit --no-fund --loglevel=error "azurite@$(AZURITE_VERSION)"
	rm -f $(NODE_TOOLS)/.azurite-*
	touch $@

azurite: $(AZURITE_INSTALLED)

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(INSTALLED)
	$(BIN)/mypy

pytest: $(INSTALLED) $(AZURITE_INSTALLED)
	$(BIN)/python -m pytest

docs: $(INSTALLED)
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

test: lint typecheck docs pytest

demo: $(INSTALLED)
	$(BIN)/python scripts/demo.py

bench: $(INSTALLED)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) $(CELERY_VENV) $(NODE_TOOLS) airflow_home docs/_build demo_output

# CeleryExecutor benchmark (not part of `make test`): a 1,000-task mapped DAG on Redis and two
# Celery workers, against the emulator; prints the figures of docs/deployment.md. Its own
# virtualenv, so the Celery provider never lands in the one the tests run from. The celery
# packages (and psycopg, for `--db postgres`) are not in the constraints file; they are pinned
# here to what resolved beside it. Options: make bench-celery BENCH_CELERY_ARGS="--tasks 200".
CELERY_VENV := .venv-celery
CELERY_INSTALLED := $(CELERY_VENV)/.installed
CELERY_PINS := "apache-airflow-providers-celery==3.26.0" "celery==5.6.3" "kombu==5.6.2" "redis==6.4.0" \
	"psycopg[binary]==3.3.9"
BENCH_CELERY_ARGS ?=

$(CELERY_INSTALLED): pyproject.toml $(CONSTRAINTS)
	test -x $(CELERY_VENV)/bin/python || $(PYTHON) -m venv $(CELERY_VENV)
	echo '*' > $(CELERY_VENV)/.gitignore
	$(CELERY_VENV)/bin/python -m pip install --quiet --upgrade "pip>=24"
	$(CELERY_VENV)/bin/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[test]" $(CELERY_PINS)
	touch $@

.PHONY: bench-celery
bench-celery: $(CELERY_INSTALLED)
	command -v redis-server || (apt-get update && apt-get install -y redis-server)
	$(CELERY_VENV)/bin/python bench/celery_1000.py $(BENCH_CELERY_ARGS)
