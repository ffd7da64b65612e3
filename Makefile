# reelm — one task runner. `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

.PHONY: install
install: $(STAMP) ## create .venv and install reelm with its test tools

.PHONY: static
static: ## fetch the pinned front-end libraries (htmx, hls.js, tus-js-client) from npm into web/static/vendor
	./scripts/vendor_static.sh

.PHONY: browser
browser: ## install Debian's Chromium (and an emoji font for its screenshots) when missing
	@command -v chromium >/dev/null && test -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf \
	  || { apt-get update -qq && apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null; }

PEER := tests/federation/fedify_peer
PEER_STAMP := $(PEER)/node_modules/.installed-$(shell cat $(PEER)/package-lock.json | cksum | cut -d' ' -f1)

$(PEER_STAMP): $(PEER)/package-lock.json
	@command -v npm >/dev/null || { apt-get -o DPkg::Lock::Timeout=900 update -qq && apt-get -o DPkg::Lock::Timeout=900 install -y -qq nodejs npm >/dev/null; }
	cd $(PEER) && npm ci --no-audit --no-fund --loglevel=error
	@rm -f $(PEER)/node_modules/.installed-* && touch $(PEER_STAMP)

.PHONY: fedify-peer
fedify-peer: $(PEER_STAMP) ## install Node.js if missing and the Fedify peer the federation interop tests start (npm ci)

.PHONY: redis
redis: ## install Debian's redis-server when missing (the test run starts its own on loopback)
	@command -v redis-server >/dev/null \
	  || { apt-get -o DPkg::Lock::Timeout=900 update -qq \
	       && apt-get -o DPkg::Lock::Timeout=900 install -y -qq redis-server >/dev/null; }

.PHONY: run
run: $(STAMP) static ## set up a data folder with demo regions, users and videos, then serve reelm at http://127.0.0.1:8000
	$(BIN)/reelm demo
	$(BIN)/reelm serve

.PHONY: test
test: $(STAMP) static browser fedify-peer redis ## install what the tests need; lint, then the whole suite on SQLite and on PostgreSQL
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory test-sqlite
	$(MAKE) --no-print-directory test-postgresql

.PHONY: test-sqlite
test-sqlite: $(STAMP) static browser fedify-peer redis ## the suite on SQLite files
	REELM_TEST_DB=sqlite $(BIN)/pytest -q $(PYTEST_ARGS)

.PHONY: test-postgresql
test-postgresql: $(STAMP) fedify-peer redis ## the suite on a real PostgreSQL 16 server that the run starts itself (pgserver); browser tests run in the SQLite pass only
	REELM_TEST_DB=postgresql $(BIN)/pytest -q -m "not e2e" $(PYTEST_ARGS)

.PHONY: lint
lint: $(STAMP) ## ruff and mypy --strict on src/
	$(BIN)/ruff check .
	$(BIN)/mypy --config-file pyproject.toml

.PHONY: bench
bench: $(STAMP) ## run every benchmark and write bench/RESULTS.md
	$(BIN)/python -m bench

.PHONY: clean
clean: ## remove the demo data folder and caches (keeps .venv)
	rm -rf data .pytest_cache .mypy_cache .ruff_cache

.PHONY: help
help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'
