# `make dev` runs the demo shop on the emulators; `make test` runs every test. Both install first.
VENV := functions/venv
PY := $(VENV)/bin/python
PYTHON ?= python3.11
EMULATORS := $(PY) tools/emulators.py

.PHONY: install dev test test-repeat lint bench chromium

install: node_modules/.install.stamp $(VENV)/.install.stamp chromium

# Debian's Chromium for the browser tests (Playwright's own browser download needs the internet).
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		{ echo "install Debian's chromium (apt-get install chromium) for the browser tests" >&2; exit 1; }

node_modules/.install.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(VENV)/.install.stamp: functions/requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

dev: install
	$(EMULATORS) exec "$(PY) tools/demo.py --watch"

lint: install
	$(VENV)/bin/ruff check

# tests/lifecycle starts and stops emulator suites of its own (other ports), so it runs outside.
test: lint
	FIRETASKS_TESTING=1 $(EMULATORS) exec "$(PY) -m pytest --ignore=tests/lifecycle $(PYTEST_ARGS)"
	$(PY) -m pytest tests/lifecycle

# `make test-repeat N=5`: `make test` N times in a row, up to the first failure (flaky tests).
N ?= 3
test-repeat:
	@for run in $$(seq $(N)); do \
		echo "=== make test: run $$run of $(N)"; \
		$(MAKE) --no-print-directory test || \
			{ echo "=== make test: run $$run of $(N) failed" >&2; exit 1; }; \
	done; echo "=== make test: all $(N) runs passed"

# Not part of the tests: figures for the README. `make bench BENCH_ARGS=noop` runs one scenario.
bench: install
	mkdir -p .cache && rm -f .cache/meter.jsonl
	FIRETASKS_TESTING=1 FIRETASKS_METER_FILE=$(CURDIR)/.cache/meter.jsonl \
		$(EMULATORS) exec "$(PY) benchmarks/bench.py $(BENCH_ARGS)"
