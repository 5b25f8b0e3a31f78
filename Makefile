# `make demo` and `make test` work on a fresh machine: they create .venv and install with the
# torch 2.13.0 CPU constraint first.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: install demo test unit integration offline-eval bench-ann clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/streamrec demo

test: install
	$(BIN)/pytest -q -p no:cacheprovider tests

unit: install
	$(BIN)/pytest -q tests/unit

integration: install
	$(BIN)/pytest -q tests/integration tests/reliability

# Every model and the popularity baseline on both MovieLens sets (tens of minutes on 2 cores).
DATASETS ?= ../shared/datasets
offline-eval: install
	$(BIN)/python bench/offline_eval.py --datasets $(DATASETS)

bench-ann: install
	$(BIN)/python bench/ann.py

clean:
	rm -rf $(VENV) .demo state artifacts *.egg-info
