# plivo-recording-archive: `make run` runs the whole system locally, `make test` checks everything.
# Both do their own set-up on a fresh clone: a .venv with the pinned dependencies, and separate
# tool environments for aws-sam-cli and checkov (each pins its own boto3; see ../shared/TOOLING.md).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
SAM_VERSION := 1.170.0
CHECKOV_VERSION := 3.3.30
RUN_ARGS ?=
BUILD_DIR ?= .aws-sam/build
QUICK ?=
# The functions' runtime is python3.13: `sam build` (without Docker) and the bytecode step need a
# python3.13 on PATH. With pyenv (these machines), select its 3.13 next to the current version.
PYENV_313 := $(shell pyenv versions --bare 2>/dev/null | grep -m1 -x '3\.13\.[0-9]*')
RUNTIME_ENV := $(if $(PYENV_313),PYENV_VERSION=$(shell pyenv version-name 2>/dev/null | cut -d: -f1):$(PYENV_313))
export SAM_CLI_TELEMETRY := 0
# sam validate needs a region and credentials even offline; these are dummies, never used remotely.
SAM_ENV := AWS_ACCESS_KEY_ID=offline AWS_SECRET_ACCESS_KEY=offline AWS_DEFAULT_REGION=us-east-1

.PHONY: help setup tools run test lint typecheck unit validate checkov requirements clean build bench chromium screenshots

help:
	@echo "make run    - the whole system on this machine (moto as local AWS), with a demo"
	@echo "make test   - format, lint, types, tests with coverage, template validation"
	@echo "make build  - sam build (no Docker) + bytecode for the runtime's Python, into $(BUILD_DIR)"
	@echo "make bench  - cold start, warm cost, archive memory/time (QUICK=1: under a minute)"

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(TOOLS)/sam/.installed:
	$(PYTHON) -m venv $(TOOLS)/sam
	$(TOOLS)/sam/bin/python -m pip install --quiet aws-sam-cli==$(SAM_VERSION)
	touch $@

$(TOOLS)/checkov/.installed:
	$(PYTHON) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/python -m pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $@

setup: $(BIN)/.installed

tools: $(TOOLS)/sam/.installed $(TOOLS)/checkov/.installed

run: setup
	$(BIN)/recording-archive local $(RUN_ARGS)

lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest --cov --cov-report=term

validate: tools
	$(SAM_ENV) $(TOOLS)/sam/bin/sam validate --lint --template template.yaml
	$(TOOLS)/checkov/bin/checkov --file template.yaml --framework cloudformation --quiet --compact --skip-download

requirements: setup
	$(BIN)/python scripts/gen_requirements.py

test: lint typecheck validate chromium unit

# The console's browser tests (tests/console/) drive Debian's chromium through Playwright
# (never `playwright install`: no browser download). Installed here on a fresh machine (root).
chromium:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

# The README's screenshots of the console (docs/console-*.png): taken by its browser test of the
# demo session, against a local stack, with the same Chromium and Playwright set-up.
screenshots: setup chromium
	CONSOLE_SCREENSHOTS=docs $(BIN)/pytest -q -p no:cacheprovider \
		tests/console/test_console_browser.py -k plays_the_wav

# Artifacts for arm64 / python3.13 (pure wheels and aarch64 binary wheels), then bytecode compiled
# by python3.13 and dev-only files stripped (scripts/post_build.py).
build: $(TOOLS)/sam/.installed
	$(RUNTIME_ENV) $(TOOLS)/sam/bin/sam build --template template.yaml --build-dir $(BUILD_DIR)
	$(RUNTIME_ENV) python3.13 scripts/post_build.py $(BUILD_DIR)
	touch $(BUILD_DIR)/.built

# `make bench` rebuilds only when the template, the requirements or a source file changed.
$(BUILD_DIR)/.built: template.yaml functions/requirements.txt $(shell find functions -name '*.py')
	$(MAKE) --no-print-directory build BUILD_DIR=$(BUILD_DIR)

# BENCH_ARGS: more options of bench/run.py (e.g. --reuse-throughput: bench/README.md).
bench: setup $(BUILD_DIR)/.built
	$(RUNTIME_ENV) $(BIN)/python bench/run.py --build-dir $(BUILD_DIR) $(if $(QUICK),--quick) $(BENCH_ARGS)

# `python -X importtime` of each latency-bound handler as Markdown tables (after `make bench`,
# which makes the native copy of the build it profiles): bench/README.md "Import time".
.PHONY: importtime
importtime: setup
	$(RUNTIME_ENV) $(BIN)/python bench/importtime.py

# Load, faults, hostile input and template checks against the local stack; the table is printed
# and written to reliability/results.json (QUICK=1: small sizes). tests/reliability/ is the subset
# that `make test` runs.
.PHONY: reliability
reliability: setup tools
	PYTHONPATH=. $(BIN)/python -m reliability $(if $(QUICK),--quick)

clean:
	rm -rf $(VENV) $(TOOLS) .aws-sam .coverage .coverage.* .pytest_cache .mypy_cache .ruff_cache
