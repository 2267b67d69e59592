# The two commands a new user needs: `make test` and `make demo`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: test demo lint bench clean

# uv installs what pip would (the same constraints, the same versions) in seconds rather than a minute and a
# half (docs/benchmarks.md); it is told where pip finds local wheels (this kind of machine keeps its CPU build
# of torch there). Should uv fail, pip installs instead.
FIND_LINKS ?= $(or $(PIP_FIND_LINKS),$(shell $(PY) -m pip config get global.find-links 2>/dev/null))

$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q uv
	$(BIN)/uv pip install -q --python $(BIN)/python $(foreach f,$(FIND_LINKS),--find-links $(f)) \
		--compile-bytecode -c constraints.txt -e ".[dev]" || $(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/python -m pytest -q -n auto --dist loadfile --durations=25

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts

demo: $(STAMP)
	$(BIN)/circuitdrift run --out runs/demo

bench: $(STAMP)
	$(BIN)/python benchmarks/heads.py

clean:
	rm -rf $(VENV) runs .pytest_cache
