# The README's commands. Each one creates (or reuses) its own virtualenv in .venv.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: quickstart test test-fast bench lint clean browser-deps

$(BIN)/flowship: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,spark,postgres]'
	touch $(BIN)/flowship

quickstart: $(BIN)/flowship
	$(BIN)/flowship quickstart

# --durations: the slowest tests in every run's output, so a suite that grows slow shows where.
test: $(BIN)/flowship browser-deps
	$(BIN)/python -m pytest -n 2 --durations=15 tests

# The HTML-report test drives headless chromium; install it when missing and we are root
# (otherwise that test skips and says why).
browser-deps:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium + chromium-driver for the browser test"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      chromium chromium-driver >/dev/null) || echo "chromium install failed: browser test will skip"; \
	  fi; \
	fi

test-fast: $(BIN)/flowship
	$(BIN)/python -m pytest -m "not slow and not spark" tests

lint: $(BIN)/flowship
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) .flowship
