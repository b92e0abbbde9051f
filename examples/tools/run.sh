#!/usr/bin/env bash
# examples/tools: an llm Agent that calls an MCP server started in its pod, on the local cluster with the chart's
# model server. Starts the cluster (`podium-cluster up`), installs or upgrades release `podium` with the model server,
# applies clock.yaml in namespace EXAMPLE_NAMESPACE (default tools), watches the run, prints its result and its
# history (the tool call and what it answered). Safe to run again. `make cluster-down` stops everything.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:/usr/local/go/bin:$PATH"
ns=${EXAMPLE_NAMESPACE:-tools}
system=podium-system

podium-cluster up
eval "$(podium-cluster env)"
values=$(mktemp --suffix=.json)
trap 'rm -f "$values"' EXIT
python -m podium_localcluster.modelserver helm-values >"$values"
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply --server-side --force-conflicts -f charts/podium/crds/ >/dev/null  # Helm never upgrades crds/
helm upgrade --install podium charts/podium --namespace "$system" --create-namespace -f "$values" --wait --timeout 4m

redis_ip=$(kubectl -n "$system" get service podium-redis -o jsonpath='{.spec.clusterIP}')
redis_pw=$(kubectl -n "$system" get secret podium-redis -o jsonpath='{.data.password}' | base64 -d)
export PODIUM_REDIS_URL="redis://:$redis_pw@$redis_ip:6379/0"

kubectl -n "$ns" delete orchestration what-day --ignore-not-found --wait=true >/dev/null
kubectl -n "$ns" apply -f examples/tools/clock.yaml
kubectl -n "$ns" wait agent clock --for=condition=Ready --timeout=180s
status=0
podium run -n "$ns" watch what-day --timeout 240 || status=$?
podium run -n "$ns" result what-day || true
echo
podium run -n "$ns" history what-day
exit "$status"
