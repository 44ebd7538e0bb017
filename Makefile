# The two commands: `make lab` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: lab test bench slides clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[all]"
	touch $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadscope

bench: $(STAMP)
	$(BIN)/python -m pip install -e ".[all,bench]"
	$(BIN)/python scripts/benchmark.py --framework both

# reveal.js decks of every notebook, offline, in build/slides/ (open build/slides/index.html).
slides: $(STAMP)
	$(BIN)/python scripts/make_slides.py --out build/slides

clean:
	rm -rf $(VENV) .pytest_cache
