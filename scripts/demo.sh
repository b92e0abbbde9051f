#!/usr/bin/env bash
# The demo: a local Kubernetes cluster, Podium installed with Helm (operator and Redis run as pods), the example
# agents and teams, then one Orchestration per strategy, watched to the end. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:/usr/local/go/bin:$PATH"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "local cluster (first run builds Kubernetes from source: allow ~20-40 minutes; later runs take seconds)"
podium cluster up
eval "$(podium cluster env)"
kubectl get nodes

step "install Podium with Helm (operator + Redis as pods)"
helm upgrade --install podium charts/podium --namespace podium-system --create-namespace \
  --set image.pullPolicy=Never --wait --timeout 5m
kubectl -n podium-system get pods

step "agents and teams"
kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f -
kubectl -n demo apply -f examples/agents.yaml -f examples/teams.yaml
kubectl -n demo wait agent --all --for=condition=Ready --timeout=180s
kubectl -n demo get agents,teams

strategies=(pipeline hierarchical swarm event-driven central-command peer-to-peer market)
if [ "$#" -gt 0 ]; then strategies=("$@"); fi
for example in "${strategies[@]}"; do
  step "orchestration: $example"
  name=$(kubectl -n demo apply -f "examples/$example.yaml" -o name | cut -d/ -f2)
  podium run watch "$name" -n demo --timeout 300
  podium run result "$name" -n demo
done

step "what ran"
kubectl -n demo get orchestrations
echo
echo "Stop everything with: make cluster-down"
