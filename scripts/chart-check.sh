#!/usr/bin/env bash
# The chart's manifests against the Kubernetes schemas, offline: `helm template` with each values file in
# charts/podium/ci/ (and the helm test hook), plus examples/, through kubeconform -strict (docs/operations.md).
#
# Schemas: the built-in kinds' come from a Kubernetes API server's OpenAPI, once, cached per version in
# ~/.cache/podium/kube-schemas/<version> (PODIUM_KUBE_SCHEMAS overrides the directory); making them needs KUBECONFIG
# pointing at a v1.34.4 API server (the local cluster: make cluster-up; eval $(.venv/bin/podium-cluster env)).
# The CRDs' (Podium's and kopf's) are made from charts/podium/crds every run. After that nothing is fetched.
# Kinds of other operators have no schema here and are skipped by name: the Prometheus Operator's (ServiceMonitor,
# PodMonitor, PrometheusRule) and KEDA's (ScaledObject, TriggerAuthentication, in examples/autoscaling);
# promtool checks the rules (tests/unit/test_chart_monitoring.py).
set -euo pipefail
cd "$(dirname "$0")/.."
kube_version=v1.34.4
cache=${PODIUM_CACHE:-$HOME/.cache/podium}
builtin=${PODIUM_KUBE_SCHEMAS:-$cache/kube-schemas/$kube_version}
py=${PYTHON:-.venv/bin/python}
helm=${PODIUM_HELM:-$cache/k8s-$kube_version/bin/helm}
[ -x "$helm" ] || helm=$(command -v helm) || { echo "chart-check: helm not found (make setup builds it)" >&2; exit 1; }
kubeconform=$(bash scripts/build-kubeconform.sh)

if [ ! -f "$builtin/_definitions.json" ]; then
  kubectl=${PODIUM_KUBECTL:-$cache/k8s-$kube_version/bin/kubectl}
  [ -x "$kubectl" ] || kubectl=kubectl
  server=$("$kubectl" version -o json 2>/dev/null | "$py" -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])' || true)
  if [ "$server" != "$kube_version" ]; then
    echo "chart-check: no cached schemas in $builtin, and KUBECONFIG does not reach a $kube_version API server" >&2
    echo "  (got: ${server:-no answer}). Start the local cluster once: make cluster-up; eval \$(.venv/bin/podium-cluster env)" >&2
    exit 1
  fi
  tmp=$(mktemp -d "${builtin%/*}.XXXX" 2>/dev/null || { mkdir -p "${builtin%/*}"; mktemp -d "${builtin%/*}.XXXX"; })
  "$kubectl" get --raw /openapi/v2 | "$py" scripts/kube-schemas.py --openapi - --out "$tmp"
  mkdir -p "${builtin%/*}"
  rm -rf "$builtin" && mv "$tmp" "$builtin"
fi

crds=$(mktemp -d)
rendered=$(mktemp -d)
trap 'rm -rf "$crds" "$rendered"' EXIT
"$py" scripts/kube-schemas.py --crds charts/podium/crds --out "$crds" >/dev/null
for values in charts/podium/ci/*.yaml; do
  "$helm" template podium charts/podium --namespace podium-system --kube-version "$kube_version" --include-crds \
    -f "$values" > "$rendered/$(basename "$values")"
done
"$kubeconform" -strict -summary -output text \
  -schema-location "$builtin/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
  -schema-location "$crds/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
  -skip ServiceMonitor,PodMonitor,PrometheusRule,ScaledObject,TriggerAuthentication \
  "$rendered" examples "$@"
