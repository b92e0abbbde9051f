"""Orchestrations and the agents they run on, as the orchestration test modules build and watch them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import redis

from tests.support.wait import wait_for

from .conftest import ClusterHandle

HERE = Path(__file__).resolve().parent

CAPABILITIES = {
    "planner": [{"name": "planning", "level": 0.9}],
    "researcher": [{"name": "research", "level": 0.9}],
    "analyzer": [{"name": "analysis", "level": 0.8}, {"name": "evaluation", "level": 0.7}],
    "synthesizer": [{"name": "writing", "level": 0.8}],
    "documenter": [{"name": "writing", "level": 0.6}],
}

PRICES = {"planner": 0.004, "researcher": 0.002, "analyzer": 0.002, "synthesizer": 0.002, "documenter": 0.001}


def agent(name: str, role: str, fn: str, redis_url: str, slow: float = 0.0) -> dict[str, Any]:
    env = [
        {"name": "PYTHONPATH", "value": str(HERE)},
        {"name": "COUNT_REDIS_URL", "value": redis_url},
        {"name": "SLOW_SECONDS", "value": str(slow)},
    ]
    return {
        "apiVersion": "podium.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {
            "name": name,
            "labels": {"team": "research" if not slow else "slow", "podium.dev/example": "true"},
        },
        "spec": {
            "role": role,
            "capabilities": CAPABILITIES.get(fn, []),
            "backend": {"python": {"entrypoint": f"test_orchestrations_agents:{fn}"}},
            "pricing": {"perTask": PRICES.get(fn, 0.001)},
            "resilience": {"timeoutSeconds": 30},
            "template": {"env": env},
        },
    }


def kubectl_apply(cluster: ClusterHandle, ns: str, *manifests: dict[str, Any]) -> None:
    out = cluster.kubectl("apply", "-n", ns, "-f", "-", input="\n---\n".join(json.dumps(m) for m in manifests))
    assert out.returncode == 0, out.stderr


def patch_spec(cluster: ClusterHandle, ns: str, name: str, spec: dict[str, Any]) -> None:
    """An edit of the Orchestration's spec, as `kubectl patch --type=merge` makes it."""
    out = cluster.kubectl("patch", "-n", ns, "orchestration", name, "--type=merge", "-p", json.dumps({"spec": spec}))
    assert out.returncode == 0, out.stderr


def orchestration(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "podium.dev/v1alpha1", "kind": "Orchestration", "metadata": {"name": name}, "spec": spec}


def obj(cluster: ClusterHandle, ns: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "-n", ns, "orchestration", name, "-o", "json")
    return json.loads(out.stdout) if out.returncode == 0 else {}


def status(cluster: ClusterHandle, ns: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = obj(cluster, ns, name).get("status") or {}
    return found


def finished(cluster: ClusterHandle, ns: str, name: str, timeout: float = 120) -> dict[str, Any]:
    result: dict[str, Any] = wait_for(
        f"{name} to finish",
        lambda: (s := status(cluster, ns, name)).get("phase") in ("Succeeded", "Failed") and s,
        timeout=timeout,
    )
    return result


def executions(admin: redis.Redis, ns: str, name: str) -> dict[str, int]:
    return {str(k): int(v) for k, v in admin.hgetall(f"podium-test:exec:{ns}/{name}").items()}
