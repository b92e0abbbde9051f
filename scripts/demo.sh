#!/usr/bin/env bash
# The demo: a local Kubernetes cluster, Podium installed with Helm (operator, Redis and a model server run as pods),
# the example agents (language-model agents on the model server, and a ruff linter) and teams, then one
# Orchestration per strategy, all submitted at once, each watched to the end and its result and token count printed.
# Safe to run again. `scripts/demo.sh pipeline swarm` runs only those examples.
#
# Environment: PODIUM_CLUSTER which cluster (docs/clusters.md): `local` (default) the local cluster in .podium/,
# `current` the current kube-context as it is (no cluster is started), `kind` a kind cluster with the images built
# and loaded (scripts/kind.sh; needs Docker). DEMO_NAMESPACE (default demo), DEMO_RUN_TIMEOUT seconds per
# orchestration (default 300), DEMO_DEADLINE seconds for everything after the cluster is up (default 900),
# DEMO_HELM_ARGS extra `helm upgrade --install` flags (e.g. "--set watchNamespaces={demo}").
set -euo pipefail
cd "$(dirname "$0")/.."
cluster=${PODIUM_CLUSTER:-local}
case "$cluster" in
  local | current | kind) ;;
  *) echo "demo: PODIUM_CLUSTER=$cluster: expected local, current or kind (docs/clusters.md)" >&2; exit 2 ;;
esac
# With a cluster of your own, kubectl and helm are yours too: no need to build Kubernetes for them.
if [ "$cluster" != local ] && command -v kubectl >/dev/null && command -v helm >/dev/null; then
  export PODIUM_SKIP_K8S_BUILD=1
fi
bash scripts/setup.sh
# The built kubectl and helm come last: a cluster of your own keeps the ones on your PATH.
export PATH="$PWD/.venv/bin:/usr/local/go/bin:$PATH:$HOME/.cache/podium/k8s-v1.34.4/bin"

ns=${DEMO_NAMESPACE:-demo}
run_timeout=${DEMO_RUN_TIMEOUT:-300}
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

case "$cluster" in
  local)
    step "local cluster (the first run builds Kubernetes from source: allow 20-40 minutes; later runs take seconds)"
    podium-cluster up || fail "the local cluster did not start" "podium-cluster status" "ls .podium/logs/"
    eval "$(podium-cluster env)"
    ;;
  current)
    step "the current kube-context (PODIUM_CLUSTER=current: no cluster is started)"
    context=$(kubectl config current-context 2>/dev/null) ||
      fail "no current kube-context" "kubectl config get-contexts" "export KUBECONFIG=<your kubeconfig>"
    echo "context $context (KUBECONFIG=${KUBECONFIG:-~/.kube/config})"
    ;;
  kind)
    step "kind cluster with the images in agent-images/ (PODIUM_CLUSTER=kind)"
    bash scripts/kind.sh up || fail "the kind cluster or its images did not come up" "docker info" "kind get clusters"
    kubectl config use-context "kind-${PODIUM_KIND_NAME:-podium}" >/dev/null
    ;;
esac
kubectl get nodes || fail "the cluster does not answer" "kubectl cluster-info"

deadline=$((SECONDS + ${DEMO_DEADLINE:-900}))  # everything after the cluster is up (not the first build)

step "install Podium with Helm (operator, Redis and the model server as pods)"
# The namespace first: with watchNamespaces the chart puts a Role into it.
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
# Helm installs the chart's crds/ once and never upgrades them: this checkout's, so a demo after a change runs on them.
kubectl apply --server-side --force-conflicts -f charts/podium/crds/ >/dev/null
# The model server on the local cluster runs the llama-server and model that setup built (docs/model-server.md).
model_values=$(mktemp "${TMPDIR:-/tmp}/podium-model-server.XXXXXX.json")
trap 'rm -f "$model_values"' EXIT
python -m podium_localcluster.modelserver helm-values >"$model_values" ||
  fail "llama-server or the model is missing" "bash scripts/build-model-server.sh"
# shellcheck disable=SC2086  # DEMO_HELM_ARGS is a list of flags
if ! helm upgrade --install "$release" charts/podium --namespace "$system" --create-namespace \
  -f "$model_values" --wait --timeout 4m ${DEMO_HELM_ARGS:-}; then
  kubectl -n "$system" get pods -o wide >&2 || true
  fail "the operator, Redis or the model server pod did not become Ready" \
    "kubectl -n $system describe pods" \
    "kubectl -n $system logs deploy/$release" \
    "kubectl -n $system logs statefulset/$release-redis" \
    "kubectl -n $system logs deploy/$release-model-server"
fi
kubectl -n "$system" get pods -o wide

# `podium run result` reads large results from Redis, with the password Helm generated: through a port-forward
# where the cluster offers one, else its Service address (the local cluster proxies ClusterIPs on loopback).
redis_at=$(kubectl -n "$system" get service "$release-redis" -o jsonpath='{.spec.clusterIP}'):6379
redis_pw=$(kubectl -n "$system" get secret "$release-redis" -o jsonpath='{.data.password}' | base64 -d)
if [ "$cluster" != local ]; then
  kubectl -n "$system" port-forward "service/$release-redis" 16379:6379 >/dev/null 2>&1 &
  forward=$!
  trap 'kill "$forward" 2>/dev/null || true' EXIT
  for _ in $(seq 1 20); do
    if ! kill -0 "$forward" 2>/dev/null; then break; fi
    if (exec 3<>/dev/tcp/127.0.0.1/16379) 2>/dev/null; then redis_at=127.0.0.1:16379; break; fi
    sleep 0.5
  done
fi
export PODIUM_REDIS_URL="redis://:$redis_pw@$redis_at/0"

step "agents and teams in namespace $ns"
# --prune: example Agents an earlier demo left that the file no longer has would join the teams and take work.
kubectl -n "$ns" apply -f examples/agents.yaml --prune -l podium.dev/example=true \
  --prune-allowlist=podium.dev/v1alpha1/Agent
kubectl -n "$ns" apply -f examples/teams.yaml
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
for example in "${strategies[@]}"; do
  [ -f "examples/$example.yaml" ] || fail "no example named $example" "ls examples/"
done

step "orchestrations: ${strategies[*]}"
# All at once: they share the agents and the model server, which answers two requests at a time and queues the rest.
# A finished run is never re-run by `apply`: delete one left by an earlier demo so this one runs afresh.
names=()
for example in "${strategies[@]}"; do
  kubectl -n "$ns" delete -f "examples/$example.yaml" --ignore-not-found --wait=true --timeout=60s >/dev/null
done
for example in "${strategies[@]}"; do
  names+=("$(kubectl -n "$ns" apply -f "examples/$example.yaml" -o name | cut -d/ -f2)")
done
failed=()
for name in "${names[@]}"; do
  left=$((deadline - SECONDS))
  [ "$left" -gt 0 ] || fail "the demo ran out of time (DEMO_DEADLINE=${DEMO_DEADLINE:-900}s) before $name" \
    "kubectl -n $ns get orchestrations" "kubectl -n $system logs deploy/$release | tail -50"
  strategy=$(kubectl -n "$ns" get orchestration "$name" -o jsonpath='{.spec.strategy}')
  step "$name ($strategy)"
  if podium run -n "$ns" watch "$name" --timeout "$((left < run_timeout ? left : run_timeout))" >/dev/null &&
    result=$(podium run -n "$ns" result "$name" -o yaml); then
    # What the agents wrote: long results are cut here; `podium run result` prints all of it.
    # Not `printf | head`: head leaves after 24 lines, and under pipefail the writer's SIGPIPE (141) ends the demo.
    head -n 24 <<<"$result"
    lines=$(wc -l <<<"$result")
    if [ "$lines" -gt 24 ]; then echo "  ... ($lines lines: podium run -n $ns result $name -o yaml)"; fi
    kubectl -n "$ns" get orchestration "$name" \
      -o jsonpath='{.status.phase}: {.status.progress} tasks, {.status.tokens} tokens, cost {.status.cost}{"\n"}'
  else
    failed+=("$name")
    kubectl -n "$ns" get orchestration "$name" -o jsonpath='{.status.phase}: {.status.message}{"\n"}' >&2 || true
    printf '\033[31m%s did not succeed\033[0m; try:\n  kubectl -n %s describe orchestration %s\n' "$name" "$ns" "$name" >&2
    printf '  kubectl -n %s logs deploy/%s | grep %s\n  podium run -n %s history %s\n' \
      "$system" "$release" "$name" "$ns" "$name" >&2
  fi
done

step "what ran (tokens and cost as each Orchestration's status counts them)"
kubectl -n "$ns" get orchestrations -o custom-columns='NAME:.metadata.name,STRATEGY:.spec.strategy,PHASE:.status.phase,TASKS:.status.progress,TOKENS:.status.tokens,COST:.status.cost'
echo
if [ "$cluster" = local ]; then
  echo "Use the cluster: eval \$(.venv/bin/podium-cluster env); kubectl get podium -A. Stop everything: make cluster-down"
  echo "(make test runs on a cluster of its own in .podium-test/, so it does not disturb this one.)"
else
  echo "Podium stays installed: kubectl get podium -A. Remove it: kubectl delete namespace $ns; helm uninstall $release -n $system"
fi
if [ "${#failed[@]}" -gt 0 ]; then
  fail "${#failed[@]} orchestration(s) did not succeed: ${failed[*]}" "kubectl -n $ns describe orchestrations"
fi
printf '\n\033[32mdemo done in %ss\033[0m\n' "$((SECONDS - started))"
