# Two commands for a newcomer: `make demo` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never

.PHONY: setup demo test lint bench loadtest clean

$(BIN)/flashsale: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q uv
	$(BIN)/uv pip install -q --python $(BIN)/python -e '.[dev]'
	touch $(BIN)/flashsale

setup: $(BIN)/flashsale

demo: setup
	$(BIN)/flashsale demo

test: setup
	.ci/tools
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: setup
	$(BIN)/flashsale bench

clean:
	rm -rf $(VENV) build *.egg-info
