#!/usr/bin/env bash
# A kind cluster for `PODIUM_CLUSTER=kind make demo` / `make test` (docs/clusters.md): `up` creates it once, builds
# the images in agent-images/ with Docker under the names and tags the chart uses by default, and loads them into
# its node, so `helm install` needs no registry; `down` deletes it; `kubeconfig` prints a kubeconfig for it.
#
# Needs Docker (a running daemon) and kind; kind is built from its Go module when missing. Podium's development
# machines have no Docker: there this script is only linted (shellcheck, tests/unit/test_scripts.py), never run.
#
# Environment: PODIUM_KIND_NAME (default podium), PODIUM_KIND_MODEL_SERVER=1 also builds the model server image
# (agent-images/Dockerfile.model-server; slow: it compiles llama.cpp).
set -euo pipefail
cd "$(dirname "$0")/.."

name=${PODIUM_KIND_NAME:-podium}
kind_version=v0.33.0
app_version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/podium/Chart.yaml)
registry=ghcr.io/podium-dev

die() { echo "kind.sh: $*" >&2; exit 1; }

need_docker() {
  command -v docker >/dev/null || die "Docker is not installed: PODIUM_CLUSTER=kind needs it (or use PODIUM_CLUSTER=local)"
  docker info >/dev/null 2>&1 || die "the Docker daemon does not answer (docker info): start it, or use PODIUM_CLUSTER=local"
}

kind_bin() {
  if command -v kind >/dev/null; then
    command -v kind
    return
  fi
  local gobin="${PODIUM_CACHE:-$HOME/.cache/podium}/kind-$kind_version/bin"
  if [ ! -x "$gobin/kind" ]; then
    command -v go >/dev/null || die "kind is not installed and Go is not there to build it (go install sigs.k8s.io/kind@$kind_version)"
    GOBIN="$gobin" go install "sigs.k8s.io/kind@$kind_version" >&2
  fi
  echo "$gobin/kind"
}

build_and_load() {
  local kind=$1 image
  local -a images=(operator agent)
  if [ "${PODIUM_KIND_MODEL_SERVER:-}" = 1 ]; then images+=(model-server); fi
  for image in "${images[@]}"; do
    echo "building $registry/podium-$image:$app_version"
    docker build -q -f "agent-images/Dockerfile.$image" -t "$registry/podium-$image:$app_version" . >/dev/null
    "$kind" load docker-image --name "$name" "$registry/podium-$image:$app_version"
  done
}

case "${1:-}" in
  up)
    need_docker
    kind=$(kind_bin)
    if ! "$kind" get clusters | grep -x "$name" >/dev/null; then
      "$kind" create cluster --name "$name" --wait 180s
    fi
    build_and_load "$kind"
    echo "kind cluster $name is up with the Podium images; kube-context kind-$name"
    ;;
  down)
    kind=$(kind_bin)
    "$kind" delete cluster --name "$name"
    ;;
  kubeconfig)
    kind=$(kind_bin)
    "$kind" get kubeconfig --name "$name"
    ;;
  *)
    echo "usage: scripts/kind.sh up|down|kubeconfig" >&2
    exit 2
    ;;
esac
