#!/usr/bin/env bash
# The whole suite: lint, type-check, CRD drift, then every test tier. `make test` runs this after setup.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:/usr/local/go/bin:$PATH"

echo "== ruff"
ruff check operator localcluster tests bench
ruff format --check operator localcluster tests bench
echo "== import contracts (which package may import which: pyproject.toml [tool.importlinter])"
lint-imports
echo "== mypy"
mypy
echo "== crds are what the models generate"
python -m podium.api.crdgen crds charts/podium/crds >/dev/null
if git rev-parse --git-dir >/dev/null 2>&1 && [ -n "$(git status --porcelain -- crds charts/podium/crds)" ]; then
  git --no-pager diff --stat -- crds charts/podium/crds
  echo "crds/ differ from the models: run 'make crds' and commit the result" >&2
  exit 1
fi
echo "== tests"
case "${PODIUM_CLUSTER:-local}" in
  local) python -m pytest tests -ra "$@" ;;
  current | kind)
    # A cluster of your own (docs/clusters.md): tests/cluster and the e2e modules that reach Services from this
    # process need the local cluster (its node runs pods on this machine's loopback); the rest runs there.
    if [ "$PODIUM_CLUSTER" = kind ]; then bash scripts/kind.sh up; fi
    echo "PODIUM_CLUSTER=$PODIUM_CLUSTER: unit, integration and tests/e2e/test_helm_chart.py (helm test, schema, upgrade)"
    python -m pytest tests/unit tests/integration tests/e2e/test_helm_chart.py -ra "$@"
    ;;
  *) echo "PODIUM_CLUSTER=$PODIUM_CLUSTER: expected local, current or kind" >&2; exit 2 ;;
esac
