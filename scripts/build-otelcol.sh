#!/usr/bin/env bash
# A minimal OpenTelemetry Collector (the OTLP receiver and the file exporter, scripts/otelcol/main.go) built from its Go
# modules into ~/.cache/podium, for the tracing tests (docs/observability.md). Prints the binary's path. A no-op
# when built; a few minutes on 2 cores the first time (Go module downloads from the Go module proxy).
#
# All collector modules at one release: the contrib file exporter builds at v0.161.0 (core v0.161.0 / v1.67.0).
set -euo pipefail
version=v0.161.0
stable=v1.67.0
cache=${PODIUM_CACHE:-$HOME/.cache/podium}
out=$cache/otelcol-$version
bin=$out/bin/podium-otelcol
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "build-otelcol: Go not found (PATH, /usr/local/go/bin)" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
# One build at a time per cache directory: a second caller waits for the first and then finds the binary.
exec 9>"$out/.build.lock"
flock 9
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here/otelcol/main.go" "$work/"
printf 'package main\n\nconst collectorVersion = "%s"\n' "${version#v}" >"$work/version.go"
cd "$work"
{
  go mod init podium.dev/otelcol
  go get \
    "go.opentelemetry.io/collector/otelcol@$version" \
    "go.opentelemetry.io/collector/receiver/otlpreceiver@$version" \
    "github.com/open-telemetry/opentelemetry-collector-contrib/exporter/fileexporter@$version" \
    "go.opentelemetry.io/collector/component@$stable" \
    "go.opentelemetry.io/collector/confmap@$stable" \
    "go.opentelemetry.io/collector/confmap/provider/envprovider@$stable" \
    "go.opentelemetry.io/collector/confmap/provider/fileprovider@$stable" \
    "go.opentelemetry.io/collector/confmap/provider/yamlprovider@$stable" \
    "go.opentelemetry.io/collector/exporter@$stable" \
    "go.opentelemetry.io/collector/receiver@$stable" \
    "go.opentelemetry.io/collector/service@$version"
  go mod tidy
  mkdir -p "$out/bin"
  CGO_ENABLED=0 go build -trimpath -o "$bin.tmp" .
} >&2
mv "$bin.tmp" "$bin"
echo "$bin"
