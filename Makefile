# `make dev` runs the demo shop on the emulators; `make test` runs every test. Both install first.
VENV := functions/venv
PY := $(VENV)/bin/python
PYTHON ?= python3.11
EMULATORS := $(PY) tools/emulators.py
# A team's own Firebase project that installs firetasks as its README says (see its tests).
EXAMPLE := examples/library-app
EXAMPLE_VENV := $(EXAMPLE)/functions/venv
# Its tests in its own emulator suite (its firebase.json and project), with its venv and pytest.ini.
EXAMPLE_TEST = $(EMULATORS) --dir $(EXAMPLE) exec "functions/venv/bin/python -m pytest"

.PHONY: install dev test unit test-example test-repeat lint bench profile chromium web chaos

install: node_modules/.install.stamp web/node_modules/.install.stamp $(VENV)/.install.stamp chromium

# Debian's Chromium for the browser tests (Playwright's own browser download needs the internet).
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		{ echo "install Debian's chromium (apt-get install chromium) for the browser tests" >&2; exit 1; }

node_modules/.install.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(VENV)/.install.stamp: functions/requirements.txt requirements-dev.txt requirements-typecheck.txt \
		pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

# The example consumes firetasks as a wheel vendored in its functions folder (a deploy uploads that
# folder and pip-installs its requirements.txt there), rebuilt when the library changes (the
# folders' times cover added and removed files). Its venv is where the Functions emulator looks;
# pip runs in the functions folder, as the cloud build does.
LIBRARY := functions/firetasks functions/firetasks/dashboard_static functions/firetasks/customer_static \
	$(wildcard functions/firetasks/*.py functions/firetasks/*.cjs functions/firetasks/dashboard_static/* \
		functions/firetasks/customer_static/*)
$(EXAMPLE_VENV)/.install.stamp: $(VENV)/.install.stamp pyproject.toml $(LIBRARY) \
		$(EXAMPLE)/functions/requirements.txt requirements-dev.txt
	rm -rf build $(EXAMPLE)/functions/vendor
	cd $(EXAMPLE) && $(CURDIR)/$(PY) -m pip wheel --quiet --disable-pip-version-check --no-deps \
		-w functions/vendor $(CURDIR)
	rm -rf build
	test -x $(EXAMPLE_VENV)/bin/python || $(PYTHON) -m venv $(EXAMPLE_VENV)
	cd $(EXAMPLE)/functions && \
		venv/bin/python -m pip uninstall --quiet --yes firetasks 2>/dev/null; \
		venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt \
		"$$(grep '^pytest==' $(CURDIR)/requirements-dev.txt)"
	touch $@

dev: install
	$(EMULATORS) exec "$(PY) tools/demo.py --watch"

# The customer view's script: web/customer.js with the pinned `firebase` package, bundled and
# minified by esbuild (pinned too) into functions/firetasks/customer_static/customer.js. The bundle
# is checked in (a deploy uploads the functions folder as it is): run this after editing web/ or
# bumping firebase; tests/unit/test_customer_bundle.py fails while the bundle is out of date.
web: web/node_modules/.install.stamp
	cd web && npm run --silent build

# The customer view's build tools have a package.json and lock file of their own (web/).
web/node_modules/.install.stamp: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

lint: install
	$(VENV)/bin/ruff check
	$(VENV)/bin/mypy --config-file mypy.ini

# The pure and in-memory tests (tests/unit): no Java, no emulators, seconds.
unit: $(VENV)/.install.stamp
	$(PY) -m pytest tests/unit

# tests/lifecycle starts and stops emulator suites of its own (other ports), so it runs outside.
test: lint $(EXAMPLE_VENV)/.install.stamp
	FIRETASKS_TESTING=1 $(EMULATORS) exec "$(PY) -m pytest --ignore=tests/lifecycle $(PYTEST_ARGS)"
	$(EXAMPLE_TEST)
	$(PY) -m pytest tests/lifecycle

test-example: $(EXAMPLE_VENV)/.install.stamp
	$(EXAMPLE_TEST)

# `make test-repeat N=5`: `make test` N times in a row, up to the first failure (flaky tests).
N ?= 3
test-repeat:
	@for run in $$(seq $(N)); do \
		echo "=== make test: run $$run of $(N)"; \
		$(MAKE) --no-print-directory test || \
			{ echo "=== make test: run $$run of $(N) failed" >&2; exit 1; }; \
	done; echo "=== make test: all $(N) runs passed"

# Not part of `make test` (which runs test_chaos with about 120 tasks): the chaos run, CHAOS_TASKS
# tasks under injected faults, its report printed and kept in .cache/chaos-report.json.
CHAOS_TASKS ?= 1000
chaos: $(VENV)/.install.stamp node_modules/.install.stamp
	mkdir -p .cache
	FIRETASKS_TESTING=1 FIRETASKS_CHAOS_TASKS=$(CHAOS_TASKS) \
		FIRETASKS_CHAOS_REPORT=$(CURDIR)/.cache/chaos-report.json \
		$(EMULATORS) exec "$(PY) -m pytest -q -s tests/emulator/test_chaos.py"

# Not part of the tests: figures for the README (docs/benchmarks.md). `make bench` runs the
# default scenarios (about 14 minutes on 2 cores); `make bench BENCH_ARGS="noop-5000 --repeat 3"` others.
bench: install
	mkdir -p .cache && rm -f .cache/meter.jsonl
	FIRETASKS_TESTING=1 FIRETASKS_METER_FILE=$(CURDIR)/.cache/meter.jsonl \
		$(EMULATORS) exec "$(PY) benchmarks/bench.py $(BENCH_ARGS)"

# Where a task's CPU goes, per event and per function: `make profile PROFILE_ARGS="--top 25"`.
profile: install
	FIRETASKS_TESTING=1 $(EMULATORS) exec "$(PY) benchmarks/cpu_profile.py $(PROFILE_ARGS)"
