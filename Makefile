# The commands users type. Everything installs what it needs first (scripts/setup.sh is idempotent).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
CLUSTER := $(VENV)/bin/podium-cluster

.PHONY: setup test test-unit test-integration test-cluster lint typecheck crds crds-check chart-check bench \
        cluster-up cluster-down demo clean

setup:
	@bash scripts/setup.sh

test: setup
	@bash scripts/test.sh

test-unit: setup
	$(PY) -m pytest tests/unit -q

test-integration: setup
	$(PY) -m pytest tests/integration -q

test-cluster: setup
	$(PY) -m pytest tests/cluster -q

lint: setup
	$(VENV)/bin/ruff check operator localcluster tests bench
	$(VENV)/bin/ruff format --check operator localcluster tests bench
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

typecheck: setup
	$(VENV)/bin/mypy

crds: setup
	$(PY) -m podium.api.crdgen crds charts/podium/crds

crds-check: crds
	git diff --exit-code crds/ charts/podium/crds/

# The rendered chart (charts/podium/ci/*.yaml) and examples/ against the Kubernetes schemas, offline (kubeconform).
chart-check: setup
	@bash scripts/chart-check.sh

bench: setup
	$(PY) -m bench.run

cluster-up: setup
	$(CLUSTER) up

cluster-down: setup
	$(CLUSTER) down

demo: setup
	@bash scripts/demo.sh

clean:
	-$(CLUSTER) down
	-$(CLUSTER) down --dir .podium-test
	-$(CLUSTER) down --dir .podium-test-2
	rm -rf .podium .podium-test .podium-test-2 .pytest_cache .mypy_cache .ruff_cache
