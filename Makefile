# kvmnet: `make demo` and `make test` each set up what they need on a fresh Debian 12 machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.kvmnet-installed
WHEELHOUSE := $(VENV)/wheelhouse

.PHONY: demo demo-live test lint typecheck unit integration docs notebook bench system-demo system-test corpora wheelhouse clean

# editable_mode=compat: a plain .pth path entry; the default import-hook finder costs about
# 15 ms on every start of the command line.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	$(PY) -m compileall -q kvmnet >/dev/null
	touch $(STAMP)

# The wheel test (tests/integration/test_wheel.py) installs kvmnet into fresh venvs from here:
# the runtime dependencies' wheels (libvirt-python built once, against this machine's libvirt)
# and setuptools for an isolated build. Fetched before the suite, which has no package index.
$(WHEELHOUSE)/.complete: pyproject.toml $(STAMP)
	rm -rf $(WHEELHOUSE)
	$(PY) -m pip wheel -q -w $(WHEELHOUSE) . setuptools
	rm -f $(WHEELHOUSE)/kvmnet-*.whl
	touch $@

wheelhouse: $(WHEELHOUSE)/.complete

system-demo:
	scripts/install-system-deps.sh demo

system-test:
	scripts/install-system-deps.sh test

demo: system-demo $(STAMP)
	$(PY) scripts/demo.py

# A real guest from NAT to the LAN and back, narrated; needs root (libvirtd, QEMU, namespaces).
demo-live: system-test $(STAMP)
	$(PY) scripts/demo_live.py

# The suite runs in a network namespace of its own (scripts/isolated), so what needs the
# package mirrors (other projects' configurations, the tiny guest's kernel) is fetched first.
test: system-test $(STAMP) wheelhouse
	$(VENV)/bin/ruff check kvmnet tests bench scripts
	$(VENV)/bin/mypy
	$(PY) scripts/fetch-corpora.py
	$(PY) scripts/build-tiny-guest.py >/dev/null
	scripts/isolated $(VENV)/bin/pytest
	$(MAKE) --no-print-directory docs

lint: $(STAMP)
	$(VENV)/bin/ruff check kvmnet tests bench scripts

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	scripts/isolated $(VENV)/bin/pytest -m "not integration"

integration: system-test $(STAMP) wheelhouse
	$(PY) scripts/build-tiny-guest.py >/dev/null
	scripts/isolated $(VENV)/bin/pytest -m integration

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir $(VENV)/site

# Each benchmark prints its figures against the previous run's (bench/results/<name>.json,
# committed: a fresh checkout compares with the last recorded commit) and replaces that file.
# `python bench/_results.py OLD [NEW]` compares two commits' records without running anything.
bench: $(STAMP)
	for b in bench/[!_]*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# Other projects' real configuration files for the backend tests, into ~/.cache/kvmnet-corpora
# (fetched, never committed: tests/data/corpora/*/SOURCES.md). The tests fetch them too.
corpora: $(STAMP)
	$(PY) scripts/fetch-corpora.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
