"""Where the pinned Kubernetes binaries live, and building them (via localcluster/build.sh) when missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

K8S_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.4"
HELM_VERSION = "v3.19.5"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "helm")
GO_BIN = Path("/usr/local/go/bin")


def module_dir() -> Path:
    # localcluster/podium_localcluster/build.py -> localcluster/, the Go module with build.sh.
    return Path(__file__).resolve().parents[1]


def bin_dir() -> Path:
    override = os.environ.get("PODIUM_K8S_BIN")
    if override:
        return Path(override)
    return Path.home() / ".cache" / "podium" / f"k8s-{K8S_VERSION}" / "bin"


def missing(directory: Path) -> list[str]:
    return [name for name in BINARIES if not os.access(directory / name, os.X_OK)]


def ensure_binaries(directory: Path | None = None) -> Path:
    """Build whatever is missing into ``directory``; progress lines from build.sh go to stderr.

    A cold build compiles Kubernetes from source and takes many minutes; later calls return at once.
    """
    target = directory or bin_dir()
    todo = missing(target)
    if not todo:
        return target
    script = module_dir() / "build.sh"
    if not script.exists():
        raise RuntimeError(f"missing {', '.join(todo)} in {target} and no build script at {script}")
    env = dict(os.environ)
    env["PATH"] = f"{GO_BIN}{os.pathsep}{env.get('PATH', '')}"
    if shutil.which("go", path=env["PATH"]) is None:
        raise RuntimeError(f"missing {', '.join(todo)} in {target}: building them needs Go (expected in {GO_BIN})")
    print(f"building {', '.join(todo)} into {target} (first time only; this takes a while)", file=sys.stderr)
    result = subprocess.run(["bash", str(script), str(target)], env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{script} failed with exit code {result.returncode}")
    still = missing(target)
    if still:
        raise RuntimeError(f"build finished but {', '.join(still)} still missing in {target}")
    return target
