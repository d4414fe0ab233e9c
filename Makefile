# Thin task list: the logic lives in Python (dqt CLI) and .ci/run.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: setup test demo bench clean

# Re-install only when the venv is missing or pyproject.toml changed since the last install.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -n auto --maxschedchunk=2 $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/dqt flow --out build/demo

bench: $(STAMP)
	$(BIN)/python bench/golden_gemm.py --quick

clean:
	rm -rf build .pytest_cache sim_build
