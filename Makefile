# Two entry points for a fresh machine (Python 3.11):
#   make demo   builds the device environment (.venv-edge: no torch/TensorFlow; + matplotlib for the printable report,
#               + the operator station: .venv-edge/bin/elvmass station --demo) and runs the demo
#   make test   builds the full development environment (.venv) and runs the test suite
PYTHON ?= python3.11
EDGE_VENV ?= .venv-edge
DEV_VENV ?= .venv
PIP_FLAGS ?= --disable-pip-version-check -q

# Debian packages some tests drive for real (headless Chromium for the station, the Cortex-M cross compiler for the
# HIL kit, strace for the power-loss test). Installed when missing and running as root with apt (CI); elsewhere those tests skip with the reason.
SYSTEM_PACKAGES ?= chromium chromium-driver gcc-arm-none-eabi libnewlib-arm-none-eabi strace

.PHONY: demo test env-edge env-dev system-deps clean

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

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null; \
	else echo "note: missing system packages:$$missing (the tests that need them skip)"; fi

test: env-dev system-deps
	$(DEV_VENV)/bin/python -m pytest -q

clean:
	rm -rf $(EDGE_VENV) $(DEV_VENV) build *.egg-info
