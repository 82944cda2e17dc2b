# Two commands for a newcomer: `make demo` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never

CHAIN_NODE := flashsale/chain/node
.PHONY: setup demo test lint bench loadtest clean

$(BIN)/flashsale: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q uv
	$(BIN)/uv pip install -q --python $(BIN)/python -e '.[dev,bench]'
	touch $(BIN)/flashsale

# the local chain's node and the Solidity compiler, from the npm registry as locked
$(CHAIN_NODE)/node_modules/.package-lock.json: $(CHAIN_NODE)/package-lock.json
	cd $(CHAIN_NODE) && npm ci --no-audit --no-fund --loglevel=error

# .ci/tools: the Debian packages the tests drive (wrk, redis-tools, chromium, chromium-driver)
setup: $(BIN)/flashsale $(CHAIN_NODE)/node_modules/.package-lock.json
	.ci/tools

demo: setup
	$(BIN)/flashsale demo

# two test processes: most tests wait on servers, processes and I/O, so two share 2
# cores well (13 min instead of 26 on the CI machine); a module's tests stay together
TEST_WORKERS ?= 2

test: setup
	.ci/tools
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: setup
	$(BIN)/flashsale bench

clean:
	rm -rf $(VENV) build *.egg-info $(CHAIN_NODE)/node_modules
