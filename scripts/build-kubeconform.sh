#!/usr/bin/env bash
# kubeconform (validates manifests against JSON Schemas, offline) built from its Go module into ~/.cache/podium.
# A no-op when built; ~1-2 minutes on 2 cores the first time (Go module downloads from the Go module proxy).
set -euo pipefail
version=v0.8.0
cache=${PODIUM_CACHE:-$HOME/.cache/podium}
bin=$cache/kubeconform-$version/bin
if [ -x "$bin/kubeconform" ]; then
  echo "$bin/kubeconform"
  exit 0
fi
export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "build-kubeconform: Go not found (PATH, /usr/local/go/bin)" >&2; exit 1; }
mkdir -p "$bin"
GOBIN="$bin" go install "github.com/yannh/kubeconform/cmd/kubeconform@$version" >&2
echo "$bin/kubeconform"
