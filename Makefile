# Two entry points for a fresh machine: `make benchmark` (the main job) and `make test` (the suite).
# Both create .venv, install what they need and fetch the data themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: install data test lint benchmark loss-benchmark tune study

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --upgrade pip
	# torch and torchvision first, unpinned, so pip takes the builds that the machine provides.
	$(BIN)/pip install torch torchvision
	$(BIN)/pip install -e '.[dev]'
	touch $@

install: $(VENV)/.installed

data: $(FASHION_MNIST)

$(FASHION_MNIST):
	$(SUDO) apt-get update
	$(SUDO) apt-get install -y dataset-fashion-mnist

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install data lint
	$(BIN)/python -m pytest -q -ra

benchmark: install data
	$(BIN)/python -m benchmarks.quality --out results/quality

tune: install data
	$(BIN)/python -m benchmarks.quality.tune --out results/tune

# One study of the paper's claims, resumable: make study STUDY=projector_dim (see docs/quality.md).
study: install data
	$(BIN)/python -m benchmarks.quality.study $(STUDY)

loss-benchmark: install
	$(BIN)/python -m benchmarks.loss_benchmark --out results/loss_benchmark
