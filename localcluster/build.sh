#!/usr/bin/env bash
# Build the pinned control plane (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl), etcd and
# helm into $1 (default ~/.cache/podium/k8s-<version>/bin). Cached: a binary already there is not rebuilt.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="/usr/local/go/bin:$PATH"
K8S_VERSION=v1.34.4
ETCD_VERSION=v3.6.4
HELM_VERSION=v3.19.5
out=${1:-$HOME/.cache/podium/k8s-$K8S_VERSION/bin}
mkdir -p "$out"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false

minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
stamp=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  stamp+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  if [ ! -x "$out/$cmd" ]; then
    echo "building $cmd $K8S_VERSION" >&2
    go build -trimpath -ldflags "-s -w $stamp" -o "$out/$cmd.tmp" "./cmd/$cmd" && mv "$out/$cmd.tmp" "$out/$cmd"
  fi
done
if [ ! -x "$out/etcd" ]; then
  echo "building etcd $ETCD_VERSION" >&2
  (cd etcd && go build -trimpath -ldflags "-s -w" -o "$out/etcd.tmp" . && mv "$out/etcd.tmp" "$out/etcd")
fi
if [ ! -x "$out/helm" ]; then
  echo "building helm $HELM_VERSION" >&2
  GOBIN="$out" go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi
