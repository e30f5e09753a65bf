# Two commands for a newcomer: `make demo` and `make test`. Each sets up everything it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Never let the source folder `ratifier/` shadow the installed package (which maps streams/ etc. in).
export PYTHONSAFEPATH := 1

.PHONY: dev prereqs stack-up stack-down test lint lock demo bench chaos clean

LOCK   := requirements.lock

# Exactly the versions in the lock file (runtime, dev and bench, and the build's setuptools and
# wheel), then the project itself without resolving again: --no-deps, and built with the locked
# setuptools (--no-build-isolation). `pip check` fails if the lock no longer satisfies
# pyproject.toml (a dependency changed without `make lock`).
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r $(LOCK)
	$(BIN)/pip install -q --no-deps --no-build-isolation -e . --config-settings editable_mode=strict
	$(BIN)/pip check
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
# lint-imports runs from inside the venv, so the source folder ratifier/ (which lacks the mapped
# streams/ & co.) is not what it analyses: it checks the installed tree, like mypy.
lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/typecheck.py
	cd $(VENV) && bin/lint-imports $(CURDIR)/pyproject.toml

test: stack-up lint
	$(BIN)/pytest -q -p no:cacheprovider

demo: stack-up
	$(BIN)/ratifier demo

bench: stack-up
	$(BIN)/python bench/run.py
	$(BIN)/python bench/run.py finished
	$(BIN)/python bench/run.py debate

# The full chaos suite (docs/chaos.md): on a single broker, then on the 3-node cluster, and the
# cluster tests (pytest marker `cluster`) on that same cluster. It restarts brokers, so it runs on
# a stack of its own (own ports, own state dir), never on the one `make stack-up` started for
# tests and demos. CHAOS_ARGS adds options, e.g. --engine faust.
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
	$(CHAOS_ENV) $(BIN)/pytest -q -p no:cacheprovider -m cluster tests/integration/test_cluster.py \
		|| status=1; \
	$(CHAOS_ENV) $(BIN)/ratifier stack down; \
	exit $$status

# Re-resolve requirements.lock after a dependency changes in pyproject.toml. Pins that still fit
# are kept; LOCK_ARGS=--upgrade moves everything to the newest allowed versions,
# LOCK_ARGS='--upgrade-package aiokafka' one package. pip-tools runs from a venv of its own, with
# the Python the lock is for (3.11, as in CI): markers are resolved for that Python.
LOCK_ARGS  ?=
LOCK_VENV  := .cache/pip-tools
LOCK_TOOLS := pip==26.3 pip-tools==7.6.2

lock:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and \
		"make lock: the lock is for Python 3.11, set PYTHON=python3.11")'
	test -x $(LOCK_VENV)/bin/pip-compile || \
		{ $(PYTHON) -m venv $(LOCK_VENV) && $(LOCK_VENV)/bin/pip install -q $(LOCK_TOOLS); }
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile --quiet \
		--extra dev --extra bench --build-deps-for editable --allow-unsafe --strip-extras \
		--no-emit-index-url --no-emit-trusted-host --no-emit-find-links \
		--output-file $(LOCK) $(LOCK_ARGS) pyproject.toml

clean:
	-$(BIN)/ratifier stack down
	rm -rf .state build *.egg-info
