# DataBright: every target sets up what it needs (.venv from PyPI, anvil from npm).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ANVIL_STAMP := .tools/node_modules/.installed
UI_DIR := src/databright/server/ui
UI_BUNDLE := $(UI_DIR)/static/app.js

export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: setup run test lint format bench artifacts clean

setup: $(STAMP) $(ANVIL_STAMP) $(UI_BUNDLE)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# anvil is pinned exactly in package.json; its platform binary is an optional dependency that
# a lock file written on one platform would leave out on another, so no lock file is kept.
$(ANVIL_STAMP): .tools/package.json
	cd .tools && npm install --no-package-lock --no-audit --no-fund --loglevel=error
	touch $(ANVIL_STAMP)

# The web UI's script: ethers and our code in one file, built here from npm (never a CDN).
$(UI_BUNDLE): $(UI_DIR)/assets/app.js $(ANVIL_STAMP)
	NODE_PATH=.tools/node_modules .tools/node_modules/.bin/esbuild $(UI_DIR)/assets/app.js --bundle --minify --format=esm \
		--target=es2022 --log-level=warning --outfile=$@

# The browser tests drive Debian's Chromium (Playwright cannot download a browser here).
CHROMIUM ?= /usr/bin/chromium
$(CHROMIUM):
	apt-get update -q && apt-get install -y -q --no-install-recommends chromium

API_PORT ?= 8000

## The main job: start the embedded node if none runs, deploy, run a whole market session,
## then leave node and platform server running (`databright down` stops both).
run: setup
	$(VENV)/bin/databright demo
	$(VENV)/bin/databright up --api-port $(API_PORT)

## Contract artifacts (committed); a test fails when they are stale.
artifacts: $(STAMP)
	PYTHONPATH=tools $(PY) -m databright_dev.build

test: setup $(CHROMIUM)
	$(PY) -m pytest

## ruff (lint + format), mypy on src/, and the layers of DESIGN.md checked by import-linter.
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks tools
	$(VENV)/bin/ruff format --check src tests benchmarks tools
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

format: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests benchmarks tools
	$(VENV)/bin/ruff format src tests benchmarks tools

bench: setup
	$(PY) benchmarks/chain_throughput.py
	$(PY) benchmarks/gas.py
	$(PY) benchmarks/market_throughput.py
	$(PY) benchmarks/ingestion.py
	$(PY) benchmarks/valuation_vs_pydvl.py
	$(PY) benchmarks/evaluator_scaling.py
	$(PY) benchmarks/reward_soundness.py
	$(PY) benchmarks/market_soundness.py
	$(PY) benchmarks/training.py
	$(PY) benchmarks/serving.py
	$(PY) benchmarks/prediction_gas.py
	$(PY) benchmarks/aggregation.py

clean:
	rm -rf $(VENV) .tools/node_modules .pytest_cache .mypy_cache .ruff_cache
