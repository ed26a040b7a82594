# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench install emulator clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall whenever pyproject.toml changes, so a pulled dependency bump is never missed.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# `make demo PORT=9000` serves on another port; `make demo ARGS=--verbose` logs every emulated request.
PORT ?= 8765
demo: $(STAMP)
	$(VENV)/bin/tableau-steward demo --transport http --no-auth --port $(PORT) $(ARGS)

emulator: $(STAMP)
	$(VENV)/bin/tableau-steward emulator

# The store suites run on SQLite and on a throwaway PostgreSQL cluster: install PostgreSQL when missing.
test: $(STAMP)
	sh scripts/ensure-chromium.sh
	bash scripts/ensure-postgres
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
