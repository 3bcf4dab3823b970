# Two entry points, each setting up everything it needs on a fresh machine:
#   make demo   -> encode the sample clips and edited copies, print who matches whom
#   make test   -> the test suite (CPU; GPU/TensorRT tests skip themselves)
#   make gpu-check -> scripts/gpu_check.sh: every GPU test and the CUDA paths, timed (on a GPU machine)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# The CUDA module chain_sdk._hamming_cuda is built whenever nvcc is on PATH, GPU or not (about
# 2 minutes more on 2 cores); `CHAIN_SDK_CUDA=0 make test` leaves it out. cpp_ext/CMakeLists.txt
# reads the variable at every configure.
CHAIN_SDK_CUDA ?= $(if $(shell command -v nvcc 2>/dev/null),1,0)
export CHAIN_SDK_CUDA

.PHONY: demo test bench typecheck report install clean gpu-check

install: $(VENV)/.installed

# torch 2.13.0 is pinned here only because a CPU wheel of it is on the dev/CI machines;
# the package itself accepts torch>=2.4. tensorrt-stubs is installed without its
# dependency (the real TensorRT cannot be installed from PyPI without NVIDIA's index).
$(VENV)/.installed: pyproject.toml $(shell find cpp_ext -type f)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q --no-deps tensorrt-stubs==10.13.0.35.1
	$(PIP) uninstall -q -y chain-sdk 2>/dev/null || true  # this project's old distribution name
	$(PIP) install -q -e ".[dev]"
	touch $@

demo: install
	$(VENV)/bin/chain-sdk demo

test: install
	$(PY) -m pytest -q

gpu-check: install
	scripts/gpu_check.sh

bench: install
	$(PY) -m pytest benchmarks -q --benchmark-only

typecheck: install
	$(PY) -m mypy export/tensorrt_build.py chain_sdk/backends

clean:
	rm -rf $(VENV) build
