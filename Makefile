# The README's two commands. Each sets up .venv when it is missing or pyproject.toml has
# changed (nothing to do otherwise), then runs. ARGS passes more arguments through:
#   make run ARGS="parallel=8 source.experiment=PATH"     make test ARGS="-k judge -x"
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test system-packages
# Debian packages the tests use: chromium renders the HTML reports, GNU parallel is a
# peer the comparison benchmark's quick mode measures. Installed only when missing.
DEBIAN_PACKAGES := chromium parallel
# Test processes: 4 on 2 cores, since many tests wait on the processes and sleeps they
# start; -n 0 runs them in this process. worksteal: a process that runs out of tests takes
# some of another's, so that no long test is left queued behind others at the end
# (pytest 210 s with it, 241 s without, here). pytest runs with bytecode written: where
# PYTHONDONTWRITEBYTECODE is set (as on the machines this project is built on), each of
# its processes would rewrite the asserts of every test module anew (7 s each, not 3).
TEST_WORKERS ?= 4
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)

run: $(VENV)/.installed
	$(BIN)/python -m runner parallel=6 task=judge_rerun $(ARGS)

test: $(VENV)/.installed-dev system-packages
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy runner plugins/executors
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal $(ARGS)

# The stamp is touched last: a venv whose creation failed half-way is made anew.
$(VENV)/.created:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
		{ echo "runner needs Python >= 3.10; run e.g. make PYTHON=python3.11 ..." >&2; exit 2; }
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	touch $@

# The first install builds antlr4-python3-runtime (Hydra's dependency) from source.
# An editable install leaves runner's own modules uncompiled (pip compiles what it copies
# into site-packages, not a source tree): compile them once, as an install would, so that
# no start-up pays for it (with PYTHONDONTWRITEBYTECODE set, every start-up would).
# Until 0.1 the distribution was called "runner", a name another project holds on the
# package index: a venv made then drops it first, or both would declare our entry points.
$(VENV)/.installed: pyproject.toml | $(VENV)/.created
	$(BIN)/python -m pip uninstall --quiet --yes runner 2>/dev/null || true
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m compileall -q runner plugins conf
	touch $@

# The dev extra includes everything the plain install has.
$(VENV)/.installed-dev: pyproject.toml | $(VENV)/.created
	$(BIN)/python -m pip uninstall --quiet --yes runner 2>/dev/null || true
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m compileall -q runner plugins conf
	touch $@ $(VENV)/.installed

system-packages:
	@missing=""; for p in $(DEBIAN_PACKAGES); do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
