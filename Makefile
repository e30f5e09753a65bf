# Two commands for a newcomer: `make demo` and `make test`. Each sets up everything it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Never let the source folder `ratifier/` shadow the installed package (which maps streams/ etc. in).
export PYTHONSAFEPATH := 1

.PHONY: dev prereqs stack-up stack-down test lint demo bench chaos clean

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

# mypy runs over the installed layout (streams/, schemas/, validators/ inside ratifier) and bench/;
# see scripts/typecheck.py for why a bare `mypy` cannot.
lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/typecheck.py

test: stack-up lint
	$(BIN)/pytest -q -p no:cacheprovider

demo: stack-up
	$(BIN)/ratifier demo

bench: stack-up
	$(BIN)/python bench/run.py

# The full chaos suite (docs/chaos.md): on a single broker, then on the 3-node cluster. It
# restarts brokers, so it runs on a stack of its own (own ports, own state dir), never on the
# one `make stack-up` started for tests and demos. CHAOS_ARGS adds options, e.g. --engine faust.
CHAOS_ENV := RATIFIER_KAFKA_PORT=29092 RATIFIER_KAFKA_CONTROLLER_PORT=29093 \
	RATIFIER_REDIS_PORT=26379 RATIFIER_STATE_DIR=$(CURDIR)/.state/chaos
CHAOS_ARGS ?=

chaos: prereqs dev
	$(CHAOS_ENV) $(BIN)/ratifier stack up --no-topics
	$(CHAOS_ENV) $(BIN)/ratifier chaos run --allow-broker-restart --brokers 1 \
		--json .state/chaos/chaos-1.json $(CHAOS_ARGS); status=$$?; \
	$(CHAOS_ENV) $(BIN)/ratifier stack down --brokers 1; \
	$(CHAOS_ENV) $(BIN)/ratifier stack up --brokers 3 --no-topics && \
	$(CHAOS_ENV) $(BIN)/ratifier chaos run --allow-broker-restart --brokers 3 \
		--json .state/chaos/chaos-3.json $(CHAOS_ARGS) || status=1; \
	$(CHAOS_ENV) $(BIN)/ratifier stack down; \
	exit $$status

clean:
	-$(BIN)/ratifier stack down
	rm -rf .state build *.egg-info
