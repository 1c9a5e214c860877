# Two commands: `make run` and `make test`. Everything else here is what they build on.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast setup asterisk asterisk-down clean distclean

run: setup asterisk
	$(BIN)/acd run

# Every tier, fastest first; the real-Asterisk tier is never skipped.
test: setup asterisk
	$(BIN)/pytest -p no:cacheprovider tests/unit tests/integration tests/asterisk

# Pure and loopback tiers only (no Asterisk): a quick check while editing.
test-fast: setup
	$(BIN)/pytest -p no:cacheprovider tests/unit tests/integration

setup: $(STAMP)

$(STAMP): pyproject.toml
	@echo "[setup] Python virtual environment in $(VENV)"
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "[setup] installing the server and its test tools (pip)"
	@$(BIN)/python -m pip install --progress-bar on -e '.[test]'
	@touch $(STAMP)

# Asterisk 20+ from the PATH, or the managed Asterisk 22 root (built once, ~1 min, shows progress).
asterisk: setup
	@$(BIN)/acd asterisk provision

asterisk-down:
	-@test -x $(BIN)/acd && $(BIN)/acd asterisk down

clean: asterisk-down
	rm -rf build *.egg-info .pytest_cache

# Also removes the managed Asterisk root and the virtual environment (not data/).
distclean: clean
	-@test -x $(BIN)/python && $(BIN)/python -c 'from pathlib import Path; from acd.asterisk.provision import release_mounts; [release_mounts(p) for p in Path(".cache").glob("asterisk-root*") if p.is_dir()]'
	rm -rf --one-file-system .cache $(VENV)
