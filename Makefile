# Two commands for a newcomer: `make demo` and `make test`. Each sets up everything it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Never let the source folder `ratifier/` shadow the installed package (which maps streams/ etc. in).
export PYTHONSAFEPATH := 1

.PHONY: dev prereqs stack-up stack-down test lint demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip "setuptools>=69" wheel
	$(BIN)/pip install -q -e '.[dev,bench]' --config-settings editable_mode=strict
	touch $(STAMP)

# Strict editable installs link files one by one; relinking picks up modules added since.
dev: $(STAMP)
	@$(BIN)/pip install -q --no-deps --no-build-isolation -e . --config-settings editable_mode=strict

prereqs:
	@scripts/install-prereqs

stack-up: prereqs dev
	$(BIN)/ratifier stack up

stack-down:
	$(BIN)/ratifier stack down

lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy bench

test: stack-up lint
	$(BIN)/pytest -q -p no:cacheprovider

demo: stack-up
	$(BIN)/ratifier demo

bench: stack-up
	$(BIN)/python bench/run.py

clean:
	-$(BIN)/ratifier stack down
	rm -rf .state build *.egg-info
