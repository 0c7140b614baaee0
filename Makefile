# The two commands: `make up` runs a local network with a demo workload; `make test` runs everything CI runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
PROJECT_FILES := pyproject.toml

.PHONY: up test lint typecheck imports pytest install clean down

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python $(PROJECT_FILES)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# `make up` runs 4 organisations' validators; `make up NODES=1` a single validator.
NODES ?= 4
up: $(STAMP)
	$(BIN)/taihang up --nodes $(NODES) --demo

down: $(STAMP)
	$(BIN)/taihang down

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck imports pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
