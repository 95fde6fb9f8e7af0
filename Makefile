# Two commands for a newcomer: `make run` and `make test`. Everything else is set up on the way.
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))

.PHONY: run test test-fast test-slow test-ha lint fmt typecheck bench setup clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

setup: $(VENV)/.synced

run: setup
	MANA_CREDITS_ENV=$${MANA_CREDITS_ENV:-development} $(VENV)/bin/mana-credits serve

# The whole suite (what CI runs). test-fast leaves out the slow fault tests (real server processes, a
# database that stops) and the schemathesis runs; test-slow runs only those.
test: setup
	$(VENV)/bin/pytest --ignore=tests/ha $(PYTEST_ARGS)

test-fast: setup
	$(VENV)/bin/pytest --ignore=tests/ha -m "not slow" $(PYTEST_ARGS)

test-slow: setup
	$(VENV)/bin/pytest --ignore=tests/ha -m slow $(PYTEST_ARGS)

# A real PostgreSQL cluster (etcd + three Patroni nodes, two service replicas) and faults one after another
# (tests/ha). Needs root (Patroni runs as the user mana-ha); deploy/ha/install.sh sets the machine up.
test-ha: setup
	deploy/ha/install.sh
	$(VENV)/bin/pytest tests/ha -v $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

fmt: setup
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

# wrk is the HTTP load generator (Debian package); pgbench ships with the embedded PostgreSQL.
bench: setup
	@command -v wrk >/dev/null || (apt-get update -q && apt-get install -y -q wrk)
	$(VENV)/bin/python -m bench.run_all $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) .data
