# One command from a fresh clone: `make test` or `make train`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CMAKE_BUILD ?= build-cmake
# torch guesses /usr/local from the nvcc symlink on PATH, which has no libcudart.
export CUDA_HOME ?= /usr/local/cuda
export RLTORCH_STRICT ?= 1
# One architecture keeps a 2-core build (and CI's compile check) short: sm_80
# code runs on every 8.x GPU and its PTX is compiled by the driver for anything
# newer (make gpu-check builds for the GPU at hand instead). A plain
# `pip install` (setup.py) defaults to every architecture torch and nvcc share.
export TORCH_CUDA_ARCH_LIST ?= 8.0+PTX

SOURCES := $(shell find csrc -type f) setup.py pyproject.toml

.PHONY: all setup build test test-python test-cpp test-oldest train bench demo clean gpu-check gpu-wheels

all: test

$(PY):
	$(PYTHON) -m venv $(VENV)

# The torch releases this set-up has been tested with: a new release cannot
# break a fresh clone overnight. Widen it after testing the new one. 2.11 is
# the GPU image's torch (`make test-oldest` runs the suite on it).
TORCH_SPEC ?= torch>=2.11,<2.16

# torch first (the extension compiles against it), then the package with its
# test extras; --no-build-isolation builds against this very torch, and the
# pin on the installed version keeps an extra's requirement from replacing it.
$(VENV)/.installed: $(PY) pyproject.toml
	$(PY) -m pip install -q '$(TORCH_SPEC)' numpy setuptools wheel ninja
	$(PY) -m pip install -q --no-build-isolation -e '.[test]' \
		"torch==$$($(PY) -c 'import torch; print(torch.__version__.split("+")[0])')"
	touch $@ $(VENV)/.built

# Incremental rebuild after a C++/CUDA change (ninja keeps build/). The
# install step has just built the extension on a fresh clone, so compile only
# when a source is newer than the last build.
$(VENV)/.built: $(SOURCES) | $(VENV)/.installed
	@if [ -n "$$(find $(SOURCES) -newer $@ 2>/dev/null)" ]; then $(PY) setup.py -q build_ext --inplace; fi
	@touch $@

setup: $(VENV)/.installed
build: $(VENV)/.built

test: test-python test-cpp

# One pytest worker per core (CI has two); each test file runs whole on one worker, so the Ray tests
# of test_distributed.py never see another test's cluster.
PYTEST_WORKERS ?= 2

test-python: build
	$(PY) -m ruff check .
	$(PY) -m pytest tests -q -n $(PYTEST_WORKERS) --dist loadfile

test-cpp: build
	$(PY) tools/cmake_build.py --build-dir $(CMAKE_BUILD)
	ctest --test-dir $(CMAKE_BUILD) --output-on-failure

# The oldest stack rltorch is tested on: the GPU image's torch 2.11 (the same
# cu130 build) on Python 3.12, in its own venv. The suite runs in a copy of the
# tree (OLDEST_TREE, kept between runs so ninja rebuilds only what changed):
# an in-place build here would replace the library that .venv's torch loads.
# CPU-only by default; OLDEST_CUDA=1 also compiles the CUDA kernels against
# torch 2.11's headers.
OLDEST_PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python) python3.12)
OLDEST_VENV ?= .venv-oldest
OLDEST_TORCH ?= torch==2.11.0
OLDEST_TREE ?= build-oldest/tree
OLDEST_CUDA ?= 0
OLDEST_TESTS ?= tests
OLDEST_PYTEST_FLAGS ?= -q -p no:cacheprovider
OLDEST_PY = $(abspath $(OLDEST_VENV))/bin/python

$(OLDEST_VENV)/.installed: pyproject.toml
	$(OLDEST_PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_PY) -m pip install -q '$(OLDEST_TORCH)' numpy setuptools wheel ninja
	$(OLDEST_PY) -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; print(*p["dependencies"], *p["optional-dependencies"]["test"], sep="\n")' \
		> $(OLDEST_VENV)/requirements.txt
	$(OLDEST_PY) -m pip install -q -r $(OLDEST_VENV)/requirements.txt '$(OLDEST_TORCH)'
	touch $@

test-oldest: $(OLDEST_VENV)/.installed
	mkdir -p $(OLDEST_TREE)
	find $(OLDEST_TREE) -mindepth 1 -maxdepth 1 ! -name build -exec rm -rf {} +
	git ls-files -z -co --exclude-standard | tar --null -T - -cf - | tar -xf - -C $(OLDEST_TREE)
	cd $(OLDEST_TREE) && RLTORCH_CUDA=$(OLDEST_CUDA) $(OLDEST_PY) setup.py -q build_ext --inplace
	cd $(OLDEST_TREE) && RLTORCH_CUDA=$(OLDEST_CUDA) $(OLDEST_PY) -m pytest $(OLDEST_TESTS) $(OLDEST_PYTEST_FLAGS)

# The main job: DQN on rltorch's vectorized CartPole-v1 until greedy
# evaluation reaches 475 over 100 episodes; prints the time to solve.
train: build
	$(PY) -m rltorch train dqn --env CartPole-v1 --seed 1

demo: build
	$(PY) -m rltorch demo

# rltorch beside its peers in one run (under 3 minutes on 2 cores): a table of
# medians and speed-ups, the issues' targets, and PNG plots under bench-results/.
# BENCH_FLAGS=--full measures every size (what BENCHMARKS.md is made from).
BENCH_FLAGS ?= --quick
bench: build
	$(PY) -m rltorch bench $(BENCH_FLAGS)

# Everything that needs a GPU, in one lease-sized run on a machine with one
# (tools/gpu_check.py): builds against that machine's own torch for its own
# GPU only, then the CUDA tests, compute-sanitizer, the GPU benchmarks and
# training on CUDA, each in its own time box within GPU_BUDGET_S, and rewrites
# $(GPU_REPORT)/gpu_check.md and .json after every step. `--dry-run` prints the plan.
GPU_PYTHON ?= python3
GPU_REPORT ?= gpu-report
GPU_BUDGET_S ?= 480
gpu-check:
	$(GPU_PYTHON) tools/gpu_check.py --python $(GPU_PYTHON) --out $(GPU_REPORT) --budget-s $(GPU_BUDGET_S)

# The packages the GPU image lacks (gymnasium, ...), as wheels for its Python
# 3.12 in .whl/ (git-ignored): gpu-check installs them there with no network.
gpu-wheels:
	$(PYTHON) tools/gpu_check.py --download-wheels

clean:
	rm -rf build $(CMAKE_BUILD) rltorch/_C*.so *.egg-info
