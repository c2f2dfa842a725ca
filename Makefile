# ganzoo developer commands. Fresh machine: `make install`, then `make train` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Set CONSTRAINTS= to let pip choose torch/torchvision builds itself (e.g. for a CUDA machine).
CONSTRAINTS ?= constraints.txt
PIP_CONSTRAINTS := $(if $(CONSTRAINTS),-c $(CONSTRAINTS),)
FMNIST_SYSTEM_DIR := /usr/share/datasets/fashion-mnist

.PHONY: install train test test-unit lint format clean bench gpu-check results

install:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install $(PIP_CONSTRAINTS) -e ".[dev,inception-offline]"
	@# Fashion-MNIST from Debian's package where we can: no download needed, and the learning tests use it.
	@if [ -f /etc/debian_version ] && [ "$$(id -u)" = 0 ] && [ ! -d $(FMNIST_SYSTEM_DIR) ]; then \
		echo "installing Debian package dataset-fashion-mnist"; \
		(apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
		 (apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null)) || \
		echo "warning: could not install dataset-fashion-mnist; Fashion-MNIST will be downloaded on first use"; \
	fi

train:
	$(BIN)/python -m ganzoo.train $(ARGS)

# The whole suite, one pytest-xdist worker per core; a worker and the processes it starts get its share of the cores,
# the learning tests start first, and an idle worker takes tests queued for another (--dist worksteal).
test:
	$(BIN)/python -m pytest -n auto --dist worksteal $(ARGS)

# In-process tests only: no end-to-end runs of the entry points (marker cli) and no learning on real data (marker
# slow), one pytest-xdist worker per core; about a minute on 2 CPU cores (README).
test-unit:
	$(BIN)/python -m pytest -n auto -m "not cli and not slow" $(ARGS)

# Throughput of ganzoo (python -m ganzoo.train's full stack, and a bare Trainer) vs a plain PyTorch loop, and the
# per-iteration overhead on tiny networks (bench/results/<device>.json and .md); ARGS=--quick for a smoke check.
bench:
	$(BIN)/python -m bench.throughput $(ARGS)

# On one CUDA GPU, in at most 8 minutes: host syncs, throughput (fp32/bf16/channels_last/compile/CUDA graphs),
# evaluation and DDP (bench/results/gpu.json and .md). Without a GPU it says so and exits 2.
gpu-check:
	$(BIN)/python -m bench.gpu_check $(ARGS)

# The README's results: trains each README experiment (outputs/results/<experiment>), writes the tables between the
# README's results markers, the sheets to docs/images/ and the raw values to docs/results.json; about 25 minutes on
# 2 CPU cores. ARGS="--only biggan_fmnist" reruns one; ARGS=--smoke checks the pipeline in seconds (README copy).
results:
	$(BIN)/python -m bench.experiments $(ARGS)

lint:
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

format:
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache build src/*.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
