# fl-dp-lab: two commands. `make lab` opens the course, `make test` proves it runs.
# Both create or update .venv and install through constraints.txt (pinned versions),
# and reinstall nothing when pyproject.toml and constraints.txt have not changed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.fl-dp-lab-installed
# Extra pip arguments for torch only, e.g. a CPU wheel index on a Linux machine
# without one: make lab TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_PIP_ARGS ?=
# Notebooks and tests share the two cores: one BLAS thread per worker.
TEST_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONHASHSEED=0

.PHONY: setup lab test unit notebooks browser lint typecheck html strip clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt torch $(TORCH_PIP_ARGS)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test,flower]"
	@touch $(STAMP)

lab: setup
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/00_start_here.ipynb

test: setup lint typecheck
	$(TEST_ENV) $(BIN)/python -m pytest -n 2 --dist loadfile \
		--doctest-modules fl_dp_lab tests \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=300 notebooks

unit: setup
	$(TEST_ENV) $(BIN)/python -m pytest -n 2 --dist loadfile --doctest-modules fl_dp_lab tests

notebooks: setup
	$(TEST_ENV) $(BIN)/python -m pytest -n 2 --dist loadfile \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=300 notebooks

browser: setup
	$(BIN)/python -m pytest -m browser tests/test_browser.py

lint: setup
	$(BIN)/ruff check fl_dp_lab tests benchmarks scripts data notebooks
	$(BIN)/python scripts/strip_outputs.py --check notebooks

# mypy (configured in pyproject.toml) over the package: the types the docstrings promise.
typecheck: setup
	$(BIN)/python -m mypy fl_dp_lab

html: setup
	$(BIN)/python scripts/run_notebooks.py --out build/html

strip:
	$(PYTHON) scripts/strip_outputs.py notebooks

clean:
	rm -rf build .pytest_cache
