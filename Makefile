# Every target does its own set-up: a virtual environment in .venv with the package and its
# `all` and `test` extras, the Graphviz `dot` program and Debian's `chromium` (for the inbox's
# browser tests and screenshots) from apt when they are missing. Playwright never downloads a
# browser of its own: it drives /usr/bin/chromium.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: demo serve test lint typecheck unit bench dot chromium figures clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,test]'
	touch $(STAMP)

dot:
	@command -v dot >/dev/null 2>&1 || { \
	  echo "installing the graphviz OS package (for the dot program)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq graphviz >/dev/null; }

chromium:
	@test -x /usr/bin/chromium || { \
	  echo "installing the chromium OS package (for the inbox's browser tests)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }

DEMO_STATE := .callcc/demo-state.json

# The HR example end to end with its scripted model: run -> suspended at
# account_agent -> authorize_account -> approve -> finished.
demo: $(STAMP) dot
	$(BIN)/callcc validate $(filter-out %.script.yaml,$(wildcard specs/*.yaml))
	@rm -f $(DEMO_STATE)
	@echo; echo "== callcc run: the run suspends for a human's approval (exit code 3)"
	$(BIN)/callcc run specs/hr_agent.yaml --state $(DEMO_STATE) \
	  -p "Onboard Ada Lovelace as an engineer"; test $$? -eq 3
	@echo; echo "== callcc resume: approve, and the run finishes where it stopped"
	$(BIN)/callcc resume $(DEMO_STATE) --approve call_acc_2

SERVE_TOKENS ?= .callcc/serve-tokens.yaml
SERVE_STORE ?= sqlite:///.callcc/serve.db
SERVE_PORT ?= 8080

# The service on the HR example: the specs in specs/, runs in a SQLite store under .callcc/,
# and a tokens file made on the first start (one random token per role, printed that once;
# .callcc/ is never committed). Open http://127.0.0.1:$(SERVE_PORT)/ and sign in with one.
serve: $(STAMP) dot
	@$(BIN)/python -m engine.serve.tokens $(SERVE_TOKENS)
	$(BIN)/callcc serve --store $(SERVE_STORE) --specs specs --tokens $(SERVE_TOKENS) \
	  --port $(SERVE_PORT)

FIGURE_STATE := .callcc/figure-state.json

# docs/hr-suspended.svg, regenerated from the HR example so the README's picture never goes stale,
# and the inbox's screenshots (docs/inbox*.png), taken by headless chromium of a real service.
figures: $(STAMP) dot chromium
	@rm -f $(FIGURE_STATE)
	$(BIN)/callcc run specs/hr_agent.yaml --run-id golden-hr --state $(FIGURE_STATE) --quiet \
	  -p "Onboard Ada"; test $$? -eq 3
	$(BIN)/callcc render $(FIGURE_STATE) --spec specs/hr_agent.yaml -o docs/hr-suspended.svg
	$(BIN)/callcc render $(FIGURE_STATE) --spec specs/hr_agent.yaml -o docs/hr-suspended.png
	$(BIN)/python tests/inbox_figures.py docs

lint: $(STAMP)
	$(BIN)/ruff format --check engine callcc tests bench
	$(BIN)/ruff check engine callcc tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) dot chromium
	$(BIN)/pytest

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
