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
# The suite mostly waits (for pods, leases, the model), so on the local cluster it runs as two pytest processes at
# once, each with servers and a cluster of its own: `PODIUM_CLUSTER_DIR` gives the second its own directory, hence
# its own loopback range. Half "servers" is unit, integration and the e2e modules that install the chart; half
# "cluster" is tests/cluster and the other e2e modules (about 20 minutes each on 2 cores, 39 in one process).
# Arguments are pytest options for both halves; PODIUM_TEST_JOBS=1 runs the suite as one process.
SERVERS_E2E=(tests/e2e/test_demo_current_cluster.py tests/e2e/test_helm_chart.py tests/e2e/test_helm_demo.py)

run_half() {  # name, then pytest arguments; prefixes each output line with the half's name
  local name=$1 rc
  shift
  set +e
  python -m pytest -ra --basetemp="$TMP_ROOT/$name" "$@" 2>&1 | sed -u "s/^/[$name] /"
  rc=${PIPESTATUS[0]}
  set -e
  echo "[$name] exit status $rc"
  return "$rc"
}

run_halves() {
  if [ "${PODIUM_TEST_JOBS:-2}" = 1 ]; then
    python -m pytest tests -ra "$@"
    return
  fi
  TMP_ROOT=$(mktemp -d)
  local cluster_half=(tests/cluster) f
  for f in tests/e2e/test_*.py; do
    [[ " ${SERVERS_E2E[*]} " == *" $f "* ]] || cluster_half+=("$f")
  done
  PODIUM_CLUSTER_DIR="$PWD/.podium-test-2" run_half servers tests/unit tests/integration "${SERVERS_E2E[@]}" "$@" &
  local servers=$!
  run_half cluster "${cluster_half[@]}" "$@" &
  local cluster=$!
  local a=0 b=0
  wait "$servers" || a=$?
  wait "$cluster" || b=$?
  rm -rf "$TMP_ROOT"
  echo "== tests: servers exit status $a, cluster exit status $b (each half's lines carry its name: grep '^\[cluster\]')"
  # 5 is "no tests collected": options such as -k may leave one half empty, not both.
  if [ "$a" = 5 ] && [ "$b" = 5 ]; then return 5; fi
  [ "$a" = 5 ] && a=0
  [ "$b" = 5 ] && b=0
  [ "$a" = 0 ] && [ "$b" = 0 ]
}
case "${PODIUM_CLUSTER:-local}" in
  local) run_halves "$@" ;;
  current | kind)
    # A cluster of your own (docs/clusters.md): tests/cluster and the e2e modules that reach Services from this
    # process need the local cluster (its node runs pods on this machine's loopback); the rest runs there.
    if [ "$PODIUM_CLUSTER" = kind ]; then bash scripts/kind.sh up; fi
    echo "PODIUM_CLUSTER=$PODIUM_CLUSTER: unit, integration and tests/e2e/test_helm_chart.py (helm test, schema, upgrade)"
    python -m pytest tests/unit tests/integration tests/e2e/test_helm_chart.py -ra "$@"
    ;;
  *) echo "PODIUM_CLUSTER=$PODIUM_CLUSTER: expected local, current or kind" >&2; exit 2 ;;
esac
