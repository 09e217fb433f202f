# One command from a fresh clone: `make test` or `make train`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CMAKE_BUILD ?= build-cmake
# torch guesses /usr/local from the nvcc symlink on PATH, which has no libcudart.
export CUDA_HOME ?= /usr/local/cuda
export RLTORCH_STRICT ?= 1
# A short list keeps a 2-core build in minutes; sm_80 code runs on every 8.x
# GPU and the 9.0 PTX is compiled by the driver for anything newer. A plain
# `pip install` (setup.py) defaults to every architecture torch and nvcc share.
export TORCH_CUDA_ARCH_LIST ?= 8.0;9.0+PTX

SOURCES := $(shell find csrc -type f) setup.py pyproject.toml

.PHONY: all setup build test test-python test-cpp train bench demo clean gpu-check

all: test

$(PY):
	$(PYTHON) -m venv $(VENV)

# The torch releases this set-up has been tested with: a new release cannot
# break a fresh clone overnight. Widen it after testing the new one.
TORCH_SPEC ?= torch>=2.14,<2.16

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

test-python: build
	$(PY) -m pytest tests -q

test-cpp: build
	$(PY) tools/cmake_build.py --build-dir $(CMAKE_BUILD)
	ctest --test-dir $(CMAKE_BUILD) --output-on-failure

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

# Everything that needs a GPU, on a machine with one: builds against that
# machine's own torch (GPU_PYTHON, in place, no build isolation), runs the full suite,
# the GPU-only checks, compute-sanitizer and the GPU benchmarks, and writes
# $(GPU_REPORT)/gpu_check.md and .json naming the device (tools/gpu_check.py).
GPU_PYTHON ?= python3
GPU_REPORT ?= gpu-report
gpu-check:
	$(GPU_PYTHON) tools/gpu_check.py --python $(GPU_PYTHON) --out $(GPU_REPORT)

clean:
	rm -rf build $(CMAKE_BUILD) rltorch/_C*.so *.egg-info
