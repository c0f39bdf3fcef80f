# Two commands from a fresh clone (each creates .venv on first use):
#   make bench   the project's main job: the benchmark suite (NumPy vs torch, CPU vs CUDA)
#   make test    the fast suite, on every core: every equivalence proof, the bad-input matrix, the resume tests
#   make lint    ruff, configured in pyproject.toml
# Also: make test-all (make test plus the long replays marked slow and the browser test; CI runs it, and make lint),
#   make demo (124M in both implementations, compared), make bench-quick (seconds),
#   make read (the side-by-side reading site, written to site/; open site/index.html),
#   make gpu (on a CUDA machine, no .venv: CUDA tests, benchmarks and a training run; scripts/gpu_run.sh).
#   make lab (JupyterLab on the learner's notebooks, from notebooks/01_embedding.ipynb),
#   make notebooks (re-execute the notebooks from clean kernels and save them with their outputs).
# Setup pins the versions in constraints.txt (torch 2.13.0, CPU build where one is on disk);
# pyproject.toml itself only asks for ranges.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-all lint bench bench-quick read gpu notebooks lab

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test,bench,lint,read]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m gpt_cli demo

# -n auto: one pytest-xdist worker per core; loadscope keeps each module (and its module-scoped fixtures) on one.
test: $(STAMP)
	$(PY) -m pytest -n auto --dist loadscope -m "not slow and not browser"

test-all: $(STAMP)
	$(PY) -m pytest -n auto --dist loadscope

lint: $(STAMP)
	$(PY) -m ruff check .

bench: $(STAMP)
	$(PY) -m benchmarks

bench-quick: $(STAMP)
	$(PY) -m benchmarks --quick

read: $(STAMP)
	$(PY) -m gpt_cli read --out site

notebooks: $(STAMP)
	$(PY) notebooks/execute.py

$(VENV)/.notebooks: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[notebooks]"
	touch $@

lab: $(VENV)/.notebooks
	$(VENV)/bin/jupyter lab notebooks/01_embedding.ipynb

# On a CUDA machine, with its own python3 and no .venv: CUDA tests, CUDA benchmark rows, a short training run.
gpu:
	bash scripts/gpu_run.sh
