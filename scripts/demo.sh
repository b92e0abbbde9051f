#!/usr/bin/env bash
# The demo: a local Kubernetes cluster, Podium installed with Helm (operator and Redis run as pods), the example
# agents and teams, then one Orchestration per strategy, watched to the end and its result printed.
# Safe to run again. `scripts/demo.sh pipeline swarm` runs only those examples.
#
# Environment: DEMO_NAMESPACE (default demo), DEMO_RUN_TIMEOUT seconds per orchestration (default 180),
# DEMO_DEADLINE seconds for everything after the cluster is up (default 900),
# DEMO_HELM_ARGS extra `helm upgrade --install` flags (e.g. "--set watchNamespaces={demo}").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:/usr/local/go/bin:$PATH"

ns=${DEMO_NAMESPACE:-demo}
run_timeout=${DEMO_RUN_TIMEOUT:-180}
release=podium
system=podium-system
started=$SECONDS

step() { printf '\n\033[1m== %s\033[0m  (%ss)\n' "$*" "$((SECONDS - started))"; }
fail() {
  printf '\n\033[31mdemo failed: %s\033[0m\n' "$1" >&2
  shift
  for hint in "$@"; do printf '  try: %s\n' "$hint" >&2; done
  exit 1
}

step "local cluster (the first run builds Kubernetes from source: allow 20-40 minutes; later runs take seconds)"
podium-cluster up || fail "the local cluster did not start" "podium-cluster status" "ls .podium/logs/"
eval "$(podium-cluster env)"
kubectl get nodes

deadline=$((SECONDS + ${DEMO_DEADLINE:-900}))  # everything after the cluster is up (not the first build)

step "install Podium with Helm (operator + Redis as pods)"
# The namespace first: with watchNamespaces the chart puts a Role into it.
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
# shellcheck disable=SC2086  # DEMO_HELM_ARGS is a list of flags
if ! helm upgrade --install "$release" charts/podium --namespace "$system" --create-namespace \
  --wait --timeout 4m ${DEMO_HELM_ARGS:-}; then
  kubectl -n "$system" get pods -o wide >&2 || true
  fail "the operator or Redis pod did not become Ready" \
    "kubectl -n $system describe pods" \
    "kubectl -n $system logs deploy/$release" \
    "kubectl -n $system logs statefulset/$release-redis"
fi
kubectl -n "$system" get pods -o wide

# `podium run result` reads large results from Redis: reach it through its Service (the node proxies
# ClusterIPs on loopback) with the password Helm generated.
redis_ip=$(kubectl -n "$system" get service "$release-redis" -o jsonpath='{.spec.clusterIP}')
redis_pw=$(kubectl -n "$system" get secret "$release-redis" -o jsonpath='{.data.password}' | base64 -d)
export PODIUM_REDIS_URL="redis://:$redis_pw@$redis_ip:6379/0"

step "agents and teams in namespace $ns"
kubectl -n "$ns" apply -f examples/agents.yaml -f examples/teams.yaml
if ! kubectl -n "$ns" wait agent --all --for=condition=Ready --timeout=180s; then
  kubectl -n "$ns" get agents,pods >&2 || true
  fail "agents did not become Ready" \
    "kubectl -n $ns describe agents" \
    "kubectl -n $ns describe pods" \
    "kubectl -n $system logs deploy/$release | tail -50"
fi
kubectl -n "$ns" get agents,teams

strategies=(pipeline hierarchical swarm event-driven central-command peer-to-peer market)
if [ "$#" -gt 0 ]; then strategies=("$@"); fi
failed=()
for example in "${strategies[@]}"; do
  [ -f "examples/$example.yaml" ] || fail "no example named $example" "ls examples/"
  step "orchestration: $example"
  # A finished run is never re-run by `apply`: delete one left by an earlier demo so this one runs afresh.
  kubectl -n "$ns" delete -f "examples/$example.yaml" --ignore-not-found --wait=true --timeout=60s >/dev/null
  name=$(kubectl -n "$ns" apply -f "examples/$example.yaml" -o name | cut -d/ -f2)
  left=$((deadline - SECONDS))
  [ "$left" -gt 0 ] || fail "the demo ran out of time (DEMO_DEADLINE=${DEMO_DEADLINE:-900}s) before $name" \
    "kubectl -n $ns get orchestrations" "kubectl -n $system logs deploy/$release | tail -50"
  if podium run -n "$ns" watch "$name" --timeout "$((left < run_timeout ? left : run_timeout))"; then
    if result=$(podium run -n "$ns" result "$name"); then
      # Results can be long: the first lines show the shape; the command prints all of it.
      printf '%s\n' "$result" | head -n 30
      lines=$(printf '%s\n' "$result" | wc -l)
      if [ "$lines" -gt 30 ]; then echo "  ... ($lines lines: podium run -n $ns result $name)"; fi
    else
      failed+=("$name")
    fi
  else
    failed+=("$name")
    printf '\033[31m%s did not succeed\033[0m; try:\n  kubectl -n %s describe orchestration %s\n' "$name" "$ns" "$name" >&2
    printf '  kubectl -n %s logs deploy/%s | grep %s\n  podium run -n %s history %s\n' \
      "$system" "$release" "$name" "$ns" "$name" >&2
  fi
done

step "what ran"
kubectl -n "$ns" get orchestrations
echo
echo "Use the cluster: eval \$(.venv/bin/podium-cluster env); kubectl get podium -A. Stop everything: make cluster-down"
echo "(make test runs on a cluster of its own in .podium-test/, so it does not disturb this one.)"
if [ "${#failed[@]}" -gt 0 ]; then
  fail "${#failed[@]} orchestration(s) did not succeed: ${failed[*]}" "kubectl -n $ns describe orchestrations"
fi
printf '\n\033[32mdemo done in %ss\033[0m\n' "$((SECONDS - started))"
