# Two entry points for a fresh machine: `make benchmark` (the main job) and `make test` (the suite).
# Both create .venv, install what they need and fetch the data themselves.
PYTHON ?= python3
# The developer's environment: this checkout installed editable, the benchmarks' packages.
VENV := .venv
BIN := $(VENV)/bin
# The suite's: the built wheel with every extra, in a clean environment; nothing from the checkout.
WHEEL_VENV := .venv-wheel
# The oldest torch and lightly that pyproject.toml allows (.ci/oldest.txt), for the core and lightly tests.
OLDEST_VENV := .venv-oldest
DIST := dist
# The tests and benchmarks/ come from the checkout, appended after site-packages (not prepended, as
# pytest's default would), so `import music_ssl` finds the installed wheel. The venv's own pytest
# script, not `python -m pytest`, which would put the working directory first on sys.path.
PYTEST := pytest -q -ra -o pythonpath= --import-mode=append
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: install data browser docs dist gpu-site test test-fast test-wheel test-oldest lint benchmark loss-benchmark tune study field

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

# The headless browser that tests/test_docs_site.py opens the built site in.
browser:
	command -v chromium >/dev/null || { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }

# lightly's losses for the GPU check's peer rows, without dependencies, in a folder small enough to carry
# with the working tree to a GPU machine that has torch and Triton alone (benchmarks/gpu_check.sh).
gpu-site: install
	rm -rf .gpu-site
	$(BIN)/pip install --no-deps --target .gpu-site "lightly==$$($(BIN)/python -c 'import lightly; print(lightly.__version__)')"

# The documentation site, warnings as errors, into docs-site/ (open docs-site/index.html, or serve the folder).
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The core's tests without those that start processes of their own (the `processes` marker: data
# parallelism, torchrun, the suite rerun with a registered implementation), on the checkout: the quick loop
# while working on music_ssl/ (about two minutes on 2 cores); `make test` runs everything.
test-fast: install
	$(BIN)/pytest -q -m "not processes" tests/music_ssl

# The whole suite on the built wheel, then the core's and the lightly adapter's tests on the oldest
# releases allowed.
test: lint docs test-wheel test-oldest

# The sdist, the wheel built from it, and a second wheel straight from the tree (the suite checks that the
# two wheels hold the same files), with the standard build front end; then their metadata.
dist: install
	rm -rf $(DIST) build
	$(BIN)/python -m build --outdir $(DIST) .
	$(BIN)/python -m build --wheel --outdir $(DIST)/from-tree .
	$(BIN)/twine check --strict $(DIST)/*.tar.gz $(DIST)/*.whl

$(WHEEL_VENV)/.torch:
	rm -rf $(WHEEL_VENV)
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/pip install --upgrade pip
	$(WHEEL_VENV)/bin/pip install torch torchvision
	touch $@

test-wheel: dist data browser $(WHEEL_VENV)/.torch
	$(WHEEL_VENV)/bin/pip install "$$(ls $(DIST)/*.whl)[dev]"
	$(WHEEL_VENV)/bin/pip install --force-reinstall --no-deps $(DIST)/*.whl
	MUSIC_SSL_DIST=$(DIST) $(WHEEL_VENV)/bin/$(PYTEST)

$(OLDEST_VENV)/.installed: .ci/oldest.txt
	rm -rf $(OLDEST_VENV)
	$(PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/pip install --upgrade pip
	$(OLDEST_VENV)/bin/pip install -c .ci/oldest.txt torch torchvision lightly pytorch-lightning
	touch $@

test-oldest: dist $(OLDEST_VENV)/.installed
	$(OLDEST_VENV)/bin/pip install -c .ci/oldest.txt "$$(ls $(DIST)/*.whl)[lightly,test]"
	$(OLDEST_VENV)/bin/pip install --force-reinstall --no-deps $(DIST)/*.whl
	MUSIC_SSL_DIST=$(DIST) $(OLDEST_VENV)/bin/$(PYTEST) tests/music_ssl tests/integrations/lightly tests/test_packaging.py

benchmark: install data
	$(BIN)/python -m benchmarks.quality --out results/quality

tune: install data
	$(BIN)/python -m benchmarks.quality.tune --out results/tune

# One study of the paper's claims, resumable: make study STUDY=projector_dim (see docs/quality.md).
study: install data
	$(BIN)/python -m benchmarks.quality.study $(STUDY)

# MUSIC against lightly's other losses, every part of it: the peers' tuning search (resumed from
# tuned.json), the field study, its long schedule and the stability check (each resumed from its run
# files); every step writes each finished piece as it goes, so a finished part only rebuilds its table.
field: install data
	$(BIN)/python -m benchmarks.quality.tune --methods simclr lejepa visreg wmse --reuse-trials --out results/tune_field
	$(BIN)/python -m benchmarks.quality.study field
	$(BIN)/python -m benchmarks.quality.study field_long
	$(BIN)/python -m benchmarks.quality.study stability

loss-benchmark: install
	$(BIN)/python -m benchmarks.loss_benchmark --out results/loss_benchmark
