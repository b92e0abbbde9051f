"""Kubeconfig files for each identity of the local cluster (admin, controller-manager, scheduler, node)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CONTEXT = "podium"


def render(api_url: str, ca_file: Path, cert_file: Path, key_file: Path, user: str) -> dict[str, Any]:
    """A single-context kubeconfig; paths are absolute so the file works from any working directory."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": CONTEXT, "cluster": {"server": api_url, "certificate-authority": str(ca_file.resolve())}}
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate": str(cert_file.resolve()),
                    "client-key": str(key_file.resolve()),
                },
            }
        ],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": user}}],
        "current-context": CONTEXT,
    }


def write(path: Path, api_url: str, pki_dir: Path, identity: str) -> Path:
    """Write ``path`` for the identity whose cert/key are ``<pki_dir>/<identity>.{crt,key}``."""
    doc = render(api_url, pki_dir / "ca.crt", pki_dir / f"{identity}.crt", pki_dir / f"{identity}.key", identity)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write-then-rename: a kubectl reading the file during a repeated `up` never sees it half written.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(path)
    return path
