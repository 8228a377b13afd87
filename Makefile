# The two commands of the README: `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-sqlite test-postgres lint format lock browsers orthanc clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

demo: install
	scripts/demo.sh

test: install
	scripts/test.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff format .

# Re-pin after changing pyproject.toml's dependencies.
lock: install
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip freeze --exclude-editable | grep -v '^-e' > requirements.lock

# Debian's Chromium and its driver, for the browser tests (Playwright's own download does not work here).
browsers:
	scripts/install_chromium.sh

# Debian's Orthanc (with its DICOMweb plugin), the real PACS of the PACS tests.
orthanc:
	scripts/install_orthanc.sh

clean:
	rm -rf var
