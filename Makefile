# Two commands set everything up: `make run` and `make test`.
# Every install step lives here or in pyproject.toml, so a clean clone needs nothing else.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 7766
NS_PORT ?= 9090

.DEFAULT_GOAL := help
.PHONY: help run test lint fmt bench vectors clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP) ## set up, then start the name server and the event server (127.0.0.1:$(PORT))
	$(BIN)/es up -n 127.0.0.1 -p $(PORT) --ns-port $(NS_PORT)

test: $(STAMP) ## set up, then run every test
	$(BIN)/python -m pytest

lint: $(STAMP) ## ruff check, ruff format --check, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy es naming clients

fmt: $(STAMP) ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

vectors: $(STAMP) ## regenerate clients/wire/vectors.json from tests/vectorgen.py
	$(BIN)/python -m tests.vectorgen > clients/wire/vectors.json

bench: $(STAMP) ## benchmarks (arrive with the performance issue)
	@echo "no benchmarks yet: see the performance issue"

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
