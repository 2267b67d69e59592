# The two commands a new user needs: `make test` and `make demo`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: test demo lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
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
