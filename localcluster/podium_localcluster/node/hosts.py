"""The pod's own /etc/hosts: itself, localhost, and every Service by its short and qualified names."""

from __future__ import annotations

from typing import Any


def render_hosts(
    pod_name: str, pod_ip: str, namespace: str, services: list[dict[str, Any]], domain: str = "cluster.local"
) -> str:
    lines = [
        "# Kubernetes-managed hosts file (podium node).",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        f"{pod_ip}\t{pod_name}",
    ]
    for svc in sorted(services, key=lambda s: (s["metadata"]["namespace"], s["metadata"]["name"])):
        meta, spec = svc["metadata"], svc.get("spec", {})
        ip = spec.get("clusterIP")
        if not ip or ip == "None":
            continue
        name, ns = meta["name"], meta["namespace"]
        names = [f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.{domain}"]
        if ns == namespace:
            # Short name only resolves inside the same namespace, as with the cluster DNS search path.
            names.insert(0, name)
        lines.append(f"{ip}\t" + " ".join(names))
    return "\n".join(lines) + "\n"
