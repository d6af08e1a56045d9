# autoballoon: the two commands of the README, and what they stand on.
#   make bench      bootstrap, then the default benchmark: quick, vanilla vs auto+fpr
#   make test       bootstrap, then the test suite through tox
#   make bench-matrix  every scenario of the suite x every mode, 2 runs each (hours)
# Debian's interpreter, explicitly: a pyenv python3 on PATH lacks the Debian modules.
PYTHON ?= /usr/bin/python3
VENV := .venv
# Packages the virtual environment itself needs before `rig bootstrap` can run.
VENV_DEBS := python3-venv python3-dev libvirt-dev pkg-config gcc

.PHONY: bench bench-full bench-matrix test bootstrap lint clean-venv

bench: bootstrap
	$(VENV)/bin/rig bench quick --modes vanilla auto+fpr

test: bootstrap
	$(VENV)/bin/tox run -e lint,unit,integration,reproduce,cache

bench-full: bootstrap
	$(VENV)/bin/tox run -e bench-full

bench-matrix: bootstrap
	$(VENV)/bin/rig matrix

bootstrap: $(VENV)/.installed
	$(VENV)/bin/rig bootstrap

$(VENV)/.installed: pyproject.toml
	@test "$$(id -u)" = 0 || { echo "make: run as root (the rig installs packages, cgroups, swap)" >&2; exit 2; }
	@missing=$$(for p in $(VENV_DEBS); do dpkg-query -W -f '$${db:Status-Status}\n' $$p 2>/dev/null | grep -qx installed || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "==> installing $$missing (for the Python environment)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@echo "==> Python environment $(VENV) (pinned dependencies from pyproject.toml)"
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

clean-venv:
	rm -rf $(VENV)
