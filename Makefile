# goodfit — every command a user needs. `make` lists them.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SYSTEM_DATA := /usr/share/datasets/fashion-mnist
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ARGS   ?=

.DEFAULT_GOAL := help
.PHONY: help install data train study test test-all bench lint format tensorboard clean

help: ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv and install goodfit, its dev tools, sweep plugins and loggers (once)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,sweeps,mlflow,wandb]'
	@touch $@

data: ## Install the real Fashion-MNIST (Debian's dataset-fashion-mnist) when it is missing
	@if [ -n "$$(ls $(SYSTEM_DATA)/train-images-idx3-ubyte* data/train-images-idx3-ubyte* \
	      data/FashionMNIST/raw/train-images-idx3-ubyte* 2>/dev/null)" ]; then \
	  echo "Fashion-MNIST: found"; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "Fashion-MNIST: installing dataset-fashion-mnist"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq dataset-fashion-mnist; \
	else \
	  echo "Fashion-MNIST: not found and no apt-get; put the four IDX files in ./data"; \
	fi

train: install data ## Train the report's good model (ARGS="trainer.max_epochs=5" to override)
	$(PY) train.py experiment=good $(ARGS)

study: install data ## Train the good and the bad model in one sweep (SEEDS=5: seeds 1 to 5 each), then report
	@seeds=""; if [ -n "$(SEEDS)" ]; then \
	  case "$(SEEDS)" in *[!0-9]*|0*) echo "make study: SEEDS must be a whole number from 1 (got '$(SEEDS)')" >&2; exit 2;; esac; \
	  seeds="seed=$$(seq -s, 1 $(SEEDS))"; \
	fi; \
	sweep=$(or $(STUDY_DIR),logs/multiruns/study_$$(date +%Y-%m-%d_%H-%M-%S)_$$$$); \
	echo "$(PY) train.py -m experiment=good,bad$${seeds:+ $$seeds} hydra.sweep.dir=$$sweep $(ARGS)"; \
	$(PY) train.py -m experiment=good,bad$${seeds:+ $$seeds} hydra.sweep.dir=$$sweep $(ARGS) && \
	$(PY) -m goodfit.report $$sweep

# Tests run in TEST_WORKERS processes (pytest-xdist), one torch thread each unless
# OMP_NUM_THREADS says otherwise: more threads per process would fight over the cores.
TEST_WORKERS ?= 2
PYTEST := OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest -n $(TEST_WORKERS)

test: install data ## Run the tests but the slow ones (~8 min on 2 cores; real data when installed)
	$(PYTEST) -m "not slow" $(ARGS)

test-all: install data ## Run every test, the slow ones too (~25 min on 2 cores)
	$(PYTEST) $(ARGS)

bench: install data ## Time goodfit against a plain PyTorch loop (ARGS="--compile" etc.)
	$(PY) -m bench $(ARGS)

# python3 where there is no .venv: a GPU machine with torch but no package index.
GPU_PYTHON ?= $(if $(wildcard $(PY)),$(PY),$(PYTHON))
.PHONY: gpu-check
gpu-check: ## Prove and time the GPU path within 8 min (GPU_CHECK_DRY=1: on the CPU; docs/performance.md)
	$(GPU_PYTHON) -m bench.gpu_check

lint: install ## Check style with ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install ## Format and fix with ruff
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

tensorboard: install ## Open TensorBoard on every run under logs/
	$(VENV)/bin/tensorboard --logdir logs

clean: ## Remove caches and build files (keeps logs/ and .venv)
	rm -rf .pytest_cache .ruff_cache src/*.egg-info
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +
