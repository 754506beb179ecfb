# Two commands do all the set-up: `make demo` and `make test`.
# Each creates or updates .venv and installs what it needs.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEB_PACKAGES := mosquitto postgresql openssl victoria-metrics g++ chromium

.PHONY: demo test lint typecheck pytest bench system-packages clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Atelier Access needs Python 3.11 or newer (found $$($(PYTHON) --version))"; exit 1; }
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then \
			echo "Installing Debian's python3-venv (python3 -m venv needs it)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; \
		else \
			echo "python3 -m venv needs Debian's python3-venv: sudo apt-get install python3-venv"; exit 1; \
		fi; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Debian packages for the real services the tests spawn (never started system-wide), g++
# for the firmware's protocol core, which the tests build for this machine, and chromium for
# the web interface's browser tests (driven by Playwright; no browser is ever downloaded).
system-packages:
	@missing=""; \
	command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || missing="$$missing mosquitto"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v openssl >/dev/null 2>&1 || missing="$$missing openssl"; \
	command -v victoria-metrics >/dev/null 2>&1 || missing="$$missing victoria-metrics"; \
	command -v g++ >/dev/null 2>&1 || missing="$$missing g++"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "Installing Debian packages:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PACKAGES) >/dev/null; \
		else \
			echo "The tests need the Debian packages:$$missing"; \
			echo "Run: sudo apt-get update && sudo apt-get install -y$$missing  (or run make test as root)"; \
			exit 1; \
		fi; \
	fi

demo: $(STAMP)
	$(BIN)/atelier demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Two workers, each with its own Mosquitto, PostgreSQL and victoria-metrics; a test file stays
# on one worker (its module fixtures are made once).
pytest: $(STAMP) system-packages
	$(BIN)/pytest -n 2 --dist loadfile

test: $(STAMP) system-packages lint typecheck pytest

bench: $(STAMP) system-packages
	$(BIN)/python bench/decision_latency.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
