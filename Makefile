# Every target does its own set-up: a virtual environment in .venv with the package and its
# test extras, and the Graphviz `dot` program from apt when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint typecheck unit bench dot clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,postgres]'
	touch $(STAMP)

dot:
	@command -v dot >/dev/null 2>&1 || { \
	  echo "installing the graphviz OS package (for the dot program)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq graphviz >/dev/null; }

demo: $(STAMP) dot
	$(BIN)/python -m engine validate specs/*.yaml

lint: $(STAMP)
	$(BIN)/ruff format --check engine tests bench
	$(BIN)/ruff check engine tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) dot
	$(BIN)/pytest

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
