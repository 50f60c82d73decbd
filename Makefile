# Quick start: `make demo` and `make test` work on a fresh machine: they create .venv, pip-install the
# project into it and apt-get the Debian packages the demo or the tests need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench system-deps clean dist

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q -U pip
	@$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

system-deps:
	@scripts/install-system-deps.sh

# One progress line per step; the installers' output goes to .demo/*.log and is shown only when a step fails.
# KEEP=1 leaves the fleet running (see scripts/demo.py).
demo:
	@mkdir -p .demo
	@echo "[demo] installing the project into $(VENV) (log: .demo/install.log)"
	@$(MAKE) -s $(STAMP) >.demo/install.log 2>&1 || { tail -n 30 .demo/install.log; exit 1; }
	@echo "[demo] checking the Debian packages the demo needs (log: .demo/system-deps.log)"
	@scripts/install-system-deps.sh >.demo/system-deps.log 2>&1 || { tail -n 30 .demo/system-deps.log; exit 1; }
	@KEEP=$(KEEP) $(BIN)/python scripts/demo.py

test: $(STAMP) system-deps
	@$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	@$(BIN)/ruff check fleet executor_agent metrics_publisher tests bench scripts
	@$(BIN)/ruff format --check fleet executor_agent metrics_publisher tests bench scripts

typecheck: $(STAMP)
	@$(BIN)/mypy fleet executor_agent metrics_publisher

bench: $(STAMP) system-deps
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Release artefacts into dist/ (docs/executor.md, "Installing"): the one-file executor and its SHA256SUM, info.txt,
# the DEB, the /opt tarball, and root filesystems for `docker import` (needs root and debootstrap).
dist: $(STAMP)
	@$(BIN)/python scripts/dist.py --out dist

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .demo
