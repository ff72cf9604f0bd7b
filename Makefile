# Two commands set everything up: `make run` and `make test`.
# Every install step lives here or in pyproject.toml, so a clean clone needs nothing else.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
JS     := clients/js
JS_STAMP := $(JS)/node_modules/.installed
# Chromium for the dashboard's browser tests: Debian's package (Playwright downloads no browser).
CHROMIUM_STAMP := $(VENV)/.chromium
PORT   ?= 7766
NS_PORT ?= 9090

.DEFAULT_GOAL := help
.PHONY: help run test check lint fmt bench vectors screenshots clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/$$(PORT)/$(PORT)/' \
		| awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,dashboard]'
	touch $(STAMP)

# The JavaScript client's dependencies (zeromq, @msgpack/msgpack), exactly as locked.
$(JS_STAMP): $(JS)/package.json $(JS)/package-lock.json
	cd $(JS) && npm ci --no-audit --no-fund --loglevel=error
	touch $(JS_STAMP)

# Installed with apt where this runs as root (as CI does); elsewhere the browser tests say why
# they skip, unless ES_BROWSER_TESTS=required (CI), where they fail.
$(CHROMIUM_STAMP): | $(STAMP)
	@if command -v chromium >/dev/null 2>&1; then touch $@; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium \
		&& touch $@; \
	else echo "Chromium is not installed and cannot be here (needs root and apt):" \
		"the dashboard's browser tests will skip"; fi

run: $(STAMP) ## set up, then start the name server and the event server (127.0.0.1:$(PORT))
	$(BIN)/es up -n 127.0.0.1 -p $(PORT) --ns-port $(NS_PORT)

test: $(STAMP) $(JS_STAMP) $(CHROMIUM_STAMP) ## set up, then run every test (Python, JavaScript, both together)
	$(BIN)/python -m pytest

# The pure cores of the event server: their unit tests take every branch (make check fails if not).
CORES := es/broker.py,es/brokerstate.py,es/publishing.py,es/subscriptions.py,es/introspection.py,$\
	es/delivery.py,es/flow.py,es/lane.py,es/actions.py,es/outcomes.py,es/durables.py,es/durablelog.py,$\
	es/history.py,es/catchup.py,es/replays.py,es/groups.py,es/grouping.py,es/members.py,$\
	es/cluster/subjects.py,es/cluster/frames.py,es/cluster/interest.py,es/cluster/traffic.py,$\
	es/cluster/peers.py,es/cluster/roster.py,$\
	es/dashboard/rates.py,es/dashboard/guard.py,es/dashboard/rows.py,es/dashboard/metrics.py

check: lint ## for the edit loop, under a minute: lint, the unit tests (cores fully covered), JS's own
	$(BIN)/python -m coverage run --branch -m pytest -q -p no:cacheprovider -m "not integration" tests/unit
	$(BIN)/python -m coverage report --show-missing --fail-under=100 --include='$(CORES)'
	cd $(JS) && node --test --test-reporter=dot test/

lint: $(STAMP) $(JS_STAMP) ## ruff check, ruff format --check, mypy; prettier for the JS client
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy es naming clients
	cd $(JS) && npx --no-install prettier --check .

fmt: $(STAMP) $(JS_STAMP) ## apply ruff's fixes and formatting, and prettier's
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	cd $(JS) && npx --no-install prettier --write --log-level=warn .

vectors: $(STAMP) ## regenerate clients/wire/vectors.json from tests/vectorgen.py
	$(BIN)/python -m tests.vectorgen > clients/wire/vectors.json

screenshots: $(STAMP) $(CHROMIUM_STAMP) ## the README's pictures of the dashboard, from a private stack
	$(BIN)/python -m tests.screenshots

bench: $(STAMP) ## start a private ns/es on loopback, run `es bench`, append to es/bench/results.*
	$(BIN)/es bench --results es/bench/results.jsonl --summary es/bench/RESULTS.md $(BENCH_ARGS)

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info $(JS)/node_modules
