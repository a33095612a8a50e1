# kvmnet: `make demo` and `make test` each set up what they need on a fresh Debian 12 machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.kvmnet-installed

.PHONY: demo demo-live test lint typecheck unit integration docs notebook bench system-demo system-test corpora clean

# editable_mode=compat: a plain .pth path entry; the default import-hook finder costs about
# 15 ms on every start of the command line.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	$(PY) -m compileall -q kvmnet >/dev/null
	touch $(STAMP)

system-demo:
	scripts/install-system-deps.sh demo

system-test:
	scripts/install-system-deps.sh test

demo: system-demo $(STAMP)
	$(PY) scripts/demo.py

# A real guest from NAT to the LAN and back, narrated; needs root (libvirtd, QEMU, namespaces).
demo-live: system-test $(STAMP)
	$(PY) scripts/demo_live.py

# Real configurations from upstream test suites, fetched into a cache (their licences differ
# from kvmnet's, so they are never committed); a failed fetch fails the run.
corpora: system-test $(STAMP)
	for s in scripts/corpora/[a-z]*.py; do $(PY) $$s || exit 1; done

test: system-test $(STAMP) corpora
	$(VENV)/bin/ruff check kvmnet tests bench scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest
	$(MAKE) --no-print-directory docs

lint: $(STAMP)
	$(VENV)/bin/ruff check kvmnet tests bench scripts

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(VENV)/bin/pytest -m "not integration"

integration: system-test $(STAMP)
	$(VENV)/bin/pytest -m integration

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir $(VENV)/site

bench: $(STAMP)
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
