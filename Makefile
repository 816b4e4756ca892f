# The README's commands. Each one creates (or reuses) its own virtualenv in .venv.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: quickstart test test-fast bench lint clean

$(BIN)/flowship: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,spark,postgres]'
	touch $(BIN)/flowship

quickstart: $(BIN)/flowship
	$(BIN)/flowship quickstart

test: $(BIN)/flowship
	$(BIN)/python -m pytest -n 2 tests

test-fast: $(BIN)/flowship
	$(BIN)/python -m pytest -m "not slow and not spark" tests

lint: $(BIN)/flowship
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) .flowship
