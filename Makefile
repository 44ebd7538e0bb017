# The two commands: `make lab` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Extra options for jupyter lab, e.g. `make lab LAB_ARGS="--port=8899"`.
LAB_ARGS ?=

.PHONY: lab test test-other-cpu test-colab bench slides check-platforms clean

# .venv's Python: $(PYTHON) if it is 3.10-3.13, else the newest python3.1x on PATH; when there is
# none, scripts/find_python.sh says what to do and make stops before installing anything.
VENV_PYTHON = $(or $(shell $(SHELL) scripts/find_python.sh "$(PYTHON)"),$(error no Python 3.10-3.13 to create $(VENV) with))

$(BIN)/python:
	$(VENV_PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[all]"
	touch $(STAMP)

# Jupyter refuses to run as root (containers, CI) without --allow-root. Without a display (ssh, a
# container) it gets --no-browser: it prints the URL to open instead of starting a console browser
# such as w3m in this terminal.
LAB_AS_ROOT  = $(if $(filter 0,$(shell id -u)),--allow-root)
LAB_HEADLESS = $(if $(DISPLAY)$(WAYLAND_DISPLAY)$(BROWSER)$(filter Darwin,$(shell uname -s)),,--no-browser)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks $(LAB_AS_ROOT) $(LAB_HEADLESS) $(LAB_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadscope

# `make test-other-cpu`: every notebook again on other float kernels than this CPU's own (oneDNN's
# SSE4.1 code, ATen's unvectorised baseline, TensorFlow without oneDNN) and with two threads in one
# process, as a reader's laptop would run them: an output that only one CPU or one thread count
# reproduces fails here, whatever machine CI runs on. One process: two pytest workers of two threads each
# oversubscribe a 2-core machine and took twice as long (19.8 against 10 minutes).
OTHER_CPU := ONEDNN_MAX_CPU_ISA=SSE41 ATEN_CPU_CAPABILITY=default TF_ENABLE_ONEDNN_OPTS=0 COURSE_THREADS=2

test-other-cpu: $(STAMP)
	$(OTHER_CPU) $(BIN)/python -m pytest -p no:xdist notebooks

# `make test-colab`: the course under Colab's versions (tests/colab_runtime.txt), installed the way each
# notebook's first cell installs it on Colab, in .venv-colab on Python 3.13 (PYTHON_COLAB=... picks one).
# No PyTorch there (its wheel is gigabytes), so the lane runs only what needs none.
COLAB_VENV   := .venv-colab
COLAB_BIN    := $(COLAB_VENV)/bin
COLAB_STAMP  := $(COLAB_VENV)/.installed
COLAB_PINS   := tests/colab_runtime.txt
IS_PY313     := -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))'
PYTHON_COLAB ?= $(firstword $(foreach p,$(shell command -v python3.13) $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python /root/.pyenv/versions/3.13*/bin/python),\
                  $(if $(shell $(p) $(IS_PY313) 2>/dev/null && echo ok),$(p))))

$(COLAB_STAMP): $(COLAB_PINS) pyproject.toml
	@test -n "$(PYTHON_COLAB)" && $(PYTHON_COLAB) $(IS_PY313) 2>/dev/null || { echo "make test-colab needs Python\
	 3.13 (Colab's version) and found none (PYTHON_COLAB='$(PYTHON_COLAB)'; looked for python3.13 on PATH and in\
	 ~/.pyenv/versions/3.13*). Install it, or pass PYTHON_COLAB=/path/to/python3.13." >&2; exit 1; }
	test -x $(COLAB_BIN)/python || $(PYTHON_COLAB) -m venv $(COLAB_VENV)
	$(COLAB_BIN)/python -m pip install --upgrade pip
	# Colab's preinstalled packages, PyTorch left out
	grep -v -E '^(torch|torchvision)==' $(COLAB_PINS) > $(COLAB_VENV)/colab-no-torch.txt
	$(COLAB_BIN)/python -m pip install -r $(COLAB_VENV)/colab-no-torch.txt
	# what the notebooks' setup cell installs on Colab: the course and the core dependencies Colab lacks
	# (tests/test_colab.py checks that the setup cell names the same ones)
	$(COLAB_BIN)/python -c 'import re, tomllib; pins = {re.split("[=<>;]", l)[0].strip().lower() for l in open("$(COLAB_PINS)") if l.strip() and not l.startswith("#")}; print("\n".join(d for d in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"] if re.split("[=<>;]", d)[0].strip().lower() not in pins))' \
	    > $(COLAB_VENV)/colab-lacks.txt
	$(COLAB_BIN)/python -m pip install --no-deps -e . -r $(COLAB_VENV)/colab-lacks.txt
	# the test tools (pyproject's `test` extra), never moving a Colab version
	$(COLAB_BIN)/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["test"]))' \
	    > $(COLAB_VENV)/test-tools.txt
	$(COLAB_BIN)/python -m pip install -c $(COLAB_PINS) -r $(COLAB_VENV)/test-tools.txt
	$(COLAB_BIN)/python -m pip check
	touch $(COLAB_STAMP)

test-colab: $(COLAB_STAMP)
	$(COLAB_BIN)/python -m pytest -n 2 --dist loadscope \
	    tests/test_core_*.py \
	    tests/test_colab.py \
	    tests/test_explorer.py \
	    tests/test_methods_contract.py tests/test_method_table.py tests/test_cam_family.py \
	    notebooks/*/*_tensorflow.ipynb

bench: $(STAMP)
	$(BIN)/python -m pip install -e ".[all,bench]"
	$(BIN)/python scripts/benchmark.py --framework both

# reveal.js decks of every notebook, offline, in build/slides/ (open build/slides/index.html).
slides: $(STAMP)
	$(BIN)/python scripts/make_slides.py --out build/slides

# `make check-platforms`: `pip install -e ".[all]"` resolved, with uv (the `platforms` extra), for Linux x86_64
# and aarch64, macOS 14+ on Apple silicon and Windows x86_64, each on Python 3.10-3.13, every package a wheel;
# and Python 3.14 refused. Reads the index's metadata only (under a minute); one line per case, exit 1 on a failure.
check-platforms: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[platforms]"
	$(BIN)/python scripts/check_platforms.py

clean:
	rm -rf $(VENV) $(COLAB_VENV) .pytest_cache
