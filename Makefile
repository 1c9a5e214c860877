# Two commands: `make run` and `make test`. Everything else here is what they build on.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test test-fast setup setup-test flow-tools page-libs asterisk browser postgresql asterisk-down clean distclean

run: setup asterisk
	$(BIN)/acd run

# Every tier, fastest first; the real-Asterisk tier is never skipped.
test: setup-test asterisk browser postgresql
	$(BIN)/pytest -p no:cacheprovider tests/unit tests/integration tests/asterisk tests/browser

# Pure and loopback tiers only (no Asterisk): a quick check while editing.
test-fast: setup-test postgresql
	$(BIN)/pytest -p no:cacheprovider tests/unit tests/integration

# Benchmarks beside Asterisk's app_queue, on real calls (bench/; about 40 minutes; not part of
# `make test`): bench/results/latest.json and docs/benchmarks.md. bench-quick: each measure briefly.
.PHONY: bench bench-quick
bench: setup-test asterisk
	$(BIN)/python -m bench

bench-quick: setup-test asterisk
	$(BIN)/python -m bench --quick

# Soak (bench/soak.py; not part of `make test`, which runs a short one): calls at a steady rate
# for SOAK_MINUTES (default 30) with agents changing states, holding and transferring; then
# calls lost, records whole, agents right, memory growth: bench/results/soak-latest.json and
# docs/soak.md. Exit status 1 if a call was lost or anything was wrong.
SOAK_MINUTES ?= 30
SOAK_RATE ?= 0.3
.PHONY: soak
soak: setup asterisk
	$(BIN)/python -m bench.soak --minutes $(SOAK_MINUTES) --rate $(SOAK_RATE)

# `make run` installs what runs; `make test` adds the test tools (pytest, hypothesis,
# Playwright) on top.
setup: $(STAMP) flow-tools page-libs

setup-test: setup $(TEST_STAMP)

$(STAMP): pyproject.toml
	@echo "[setup] Python virtual environment in $(VENV)"
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "[setup] installing the server (pip)"
	@$(BIN)/python -m pip install --progress-bar on -e .
	@touch $(STAMP)

$(TEST_STAMP): $(STAMP) pyproject.toml
	@echo "[setup] installing the test tools (pip)"
	@$(BIN)/python -m pip install --progress-bar on -e '.[test]'
	@touch $(TEST_STAMP)

# The pages' browser libraries (JsSIP, the agent page's browser phone) from the npm registry, at
# the versions and integrity hashes of package-lock.json, into node_modules/ (never committed;
# our server serves them to the pages as they are: no build step).
page-libs: node_modules/.package-lock.json

node_modules/.package-lock.json: package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "[setup] installing Debian's npm for the pages' libraries (apt-get)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm || { apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm; }; }
	@echo "[setup] installing the pages' libraries: JsSIP (npm ci, pinned in package-lock.json)"
	@npm ci --ignore-scripts --no-audit --no-fund --progress=true
	@touch $@

# Asterisk 20+ from the PATH, or the managed Asterisk 22 root (built once, ~1 min, shows progress);
# a C compiler for the test and demo phones' loopback shim (acd/tools/loopback_bind.c).
asterisk: setup
	@$(BIN)/acd asterisk provision
	@command -v cc >/dev/null 2>&1 || { echo "[setup] installing Debian's gcc for the phones' loopback shim (apt-get)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q gcc libc6-dev || { apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q gcc libc6-dev; }; }

# Debian's Chromium for the browser tier (tests/browser drive it with Playwright; Playwright's
# own browser download is never used).
browser:
	@command -v chromium >/dev/null 2>&1 || { echo "[setup] installing Debian's chromium for the browser tests (apt-get)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium || { apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }; }

# Debian's PostgreSQL server programs for the tests that run on PostgreSQL too (tests/postgres.py
# starts a server of its own in a temporary folder; nothing runs as a system service for them).
postgresql:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { echo "[setup] installing Debian's postgresql for the database tests (apt-get)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql || { apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; }; }

# IVR flows: Graphviz draws them (acd flows graph), espeak-ng speaks text prompts (Mandarin:
# voice cmn), sox converts recordings to 8 kHz; a CJK font for the pictures' Chinese text.
FLOW_TOOLS := graphviz espeak-ng sox fonts-wqy-microhei
flow-tools:
	@command -v dot >/dev/null 2>&1 && command -v espeak-ng >/dev/null 2>&1 && command -v sox >/dev/null 2>&1 \
	  && test -d /usr/share/fonts/truetype/wqy || { echo "[setup] installing $(FLOW_TOOLS) for IVR flows (apt-get)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(FLOW_TOOLS) || { apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(FLOW_TOOLS); }; }

asterisk-down:
	-@test -x $(BIN)/acd && $(BIN)/acd asterisk down

clean: asterisk-down
	rm -rf build *.egg-info .pytest_cache

# Also removes the managed Asterisk root and the virtual environment (not data/).
distclean: clean
	-@test -x $(BIN)/python && $(BIN)/python -c 'from pathlib import Path; from acd.asterisk.provision import release_mounts; [release_mounts(p) for p in Path(".cache").glob("asterisk-root*") if p.is_dir()]'
	rm -rf --one-file-system .cache $(VENV) node_modules
