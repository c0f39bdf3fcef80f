# Two commands from a fresh clone (each creates .venv on first use):
#   make bench   the project's main job (for now: the demo; benchmarks replace it)
#   make test    the test suite, exactly what CI runs
# Setup pins the versions in constraints.txt (torch 2.13.0, CPU build where one is on disk);
# pyproject.toml itself only asks for ranges.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test,bench]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m gpt_cli demo

test: $(STAMP)
	$(PY) -m pytest

bench: demo
