# Two entry points for a fresh machine (Python 3.11):
#   make demo   builds the device environment (.venv-edge: no torch/TensorFlow; + matplotlib for the printable report,
#               + the operator station: .venv-edge/bin/elvmass station --demo) and runs the demo
#   make test   builds the full development environment (.venv) and runs the test suite
PYTHON ?= python3.11
EDGE_VENV ?= .venv-edge
DEV_VENV ?= .venv
PIP_FLAGS ?= --disable-pip-version-check -q

.PHONY: demo test env-edge env-dev clean

$(EDGE_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(EDGE_VENV)
	$(EDGE_VENV)/bin/pip install $(PIP_FLAGS) -e '.[report,station]'
	touch $@

$(DEV_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(DEV_VENV)
	$(DEV_VENV)/bin/pip install $(PIP_FLAGS) -e '.[dev]'
	touch $@

env-edge: $(EDGE_VENV)/.installed
env-dev: $(DEV_VENV)/.installed

demo: env-edge
	$(EDGE_VENV)/bin/elvmass demo

test: env-dev
	$(DEV_VENV)/bin/python -m pytest -q

clean:
	rm -rf $(EDGE_VENV) $(DEV_VENV) build *.egg-info
