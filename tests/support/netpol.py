"""What a set of NetworkPolicies allows, by the semantics of networking.k8s.io/v1 (as a CNI enforces them): the local
cluster has no CNI, so the chart's policies are checked by asking this evaluator who may connect to whom.

- A pod is isolated for ingress (egress) when a policy in its namespace selects it and lists Ingress (Egress) in
  policyTypes; an isolated pod accepts (opens) only what one of those policies' rules allows; others allow all.
- A connection happens when the source's egress and the destination's ingress both allow it.
- A peer with only podSelector means pods of the policy's namespace; with namespaceSelector, pods (matching the
  podSelector, if any) of matching namespaces; ipBlock, addresses in the CIDR minus its exceptions (endpoints that
  are not pods: an external Redis, the internet). A rule without peers allows every peer; without ports, every port.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Endpoint:
    """A pod (namespace, labels, address) or, with no namespace, an address outside the cluster."""

    namespace: str | None
    labels: dict[str, str] = field(default_factory=dict)
    ip: str = "10.0.0.1"
    namespace_labels: dict[str, str] = field(default_factory=dict)

    def ns_labels(self) -> dict[str, str]:
        assert self.namespace is not None
        return {"kubernetes.io/metadata.name": self.namespace, **self.namespace_labels}


def pod(namespace: str, labels: dict[str, str], ip: str = "10.0.0.1", **namespace_labels: str) -> Endpoint:
    return Endpoint(namespace, labels, ip, namespace_labels)


def outside(ip: str) -> Endpoint:
    return Endpoint(None, {}, ip)


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        present = key in labels
        ok = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[op]
        if not ok:
            return False
    return True


def _peer_matches(peer: dict[str, Any], other: Endpoint, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        address = ipaddress.ip_address(other.ip)
        inside = address in ipaddress.ip_network(block["cidr"])
        return inside and not any(address in ipaddress.ip_network(e) for e in block.get("except") or [])
    if other.namespace is None:
        return False  # pod and namespace selectors select pods only
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], other.ns_labels()):
            return False
    elif other.namespace != policy_namespace:
        return False
    return "podSelector" not in peer or selects(peer["podSelector"], other.labels)


def _port_matches(ports: list[dict[str, Any]] | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    return any(p.get("protocol", "TCP") == protocol and p.get("port") in (None, port) for p in ports)


def _side(policies: list[dict[str, Any]], me: Endpoint, other: Endpoint, port: int, protocol: str, kind: str) -> bool:
    if me.namespace is None:
        return True  # outside the cluster: no policy applies
    direction, peers_key = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
    isolating = [
        p
        for p in policies
        if p["metadata"]["namespace"] == me.namespace
        and selects(p["spec"]["podSelector"], me.labels)
        and kind in p["spec"].get("policyTypes", ["Ingress"])
    ]
    if not isolating:
        return True
    for policy in isolating:
        for rule in policy["spec"].get(direction) or []:
            peers = rule.get(peers_key)
            if peers and not any(_peer_matches(peer, other, policy["metadata"]["namespace"]) for peer in peers):
                continue
            if _port_matches(rule.get("ports"), port, protocol):
                return True
    return False


def allowed(policies: list[dict[str, Any]], src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP") -> bool:
    """Whether ``src`` may open a connection to ``dst`` on ``port``."""
    return _side(policies, src, dst, port, protocol, "Egress") and _side(policies, dst, src, port, protocol, "Ingress")
