"""Container environment as the kubelet builds it: service links, envFrom, env (with valueFrom), $(VAR) expansion.

Pure: every Secret/ConfigMap the pod refers to is fetched by the caller first and passed in as `Sources`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]


class EnvError(ValueError):
    """The container cannot start: a reference it does not mark optional is missing (CreateContainerConfigError)."""


@dataclass
class Sources:
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> decoded data
    config_maps: dict[str, dict[str, str]] = field(default_factory=dict)


def referenced_objects(pod: Obj) -> tuple[set[str], set[str]]:
    """Names of the Secrets and ConfigMaps the pod's env, envFrom and volumes use (same namespace)."""
    secrets: set[str] = set()
    cms: set[str] = set()
    spec = pod.get("spec", {})
    for c in list(spec.get("initContainers") or []) + list(spec.get("containers") or []):
        for e in c.get("env") or []:
            vf = e.get("valueFrom") or {}
            if "secretKeyRef" in vf:
                secrets.add(vf["secretKeyRef"]["name"])
            if "configMapKeyRef" in vf:
                cms.add(vf["configMapKeyRef"]["name"])
        for ef in c.get("envFrom") or []:
            if "secretRef" in ef:
                secrets.add(ef["secretRef"]["name"])
            if "configMapRef" in ef:
                cms.add(ef["configMapRef"]["name"])
    for v in spec.get("volumes") or []:
        if "secret" in v:
            secrets.add(v["secret"]["secretName"])
        if "configMap" in v:
            cms.add(v["configMap"]["name"])
        for src in (v.get("projected") or {}).get("sources") or []:
            if "secret" in src:
                secrets.add(src["secret"]["name"])
            if "configMap" in src:
                cms.add(src["configMap"]["name"])
    return secrets, cms


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: known variables are replaced, unknown stay literal, `$$` escapes `$`."""

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _VAR.sub(repl, text)


def field_value(pod: Obj, path: str, pod_ip: str) -> str:
    """fieldRef values the node can answer (the kubelet's supported downward API fields)."""
    meta = pod.get("metadata", {})
    spec = pod.get("spec", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": "127.0.0.1",
        "status.hostIPs": "127.0.0.1",
    }
    if path in simple:
        return str(simple[path])
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    raise EnvError(f"unsupported fieldRef fieldPath {path!r}")


def _key_ref(kind: str, ref: Obj, store: dict[str, dict[str, str]]) -> str | None:
    optional = bool(ref.get("optional"))
    data = store.get(ref["name"])
    if data is None:
        if optional:
            return None
        raise EnvError(f'{kind} "{ref["name"]}" not found')
    if ref["key"] not in data:
        if optional:
            return None
        raise EnvError(f"couldn't find key {ref['key']} in {kind} {ref['name']}")
    return data[ref["key"]]


def resource_value(container: Obj, ref: Obj) -> str:
    res = ref.get("resource", "")
    kind, _, name = res.partition(".")
    value = ((container.get("resources") or {}).get(kind) or {}).get(name)
    if value is None:
        # Like the kubelet: an unset limit reads as the node's allocatable; we report 0 ("no limit known").
        return "0"
    return str(value)


def container_env(
    pod: Obj, container: Obj, sources: Sources, pod_ip: str, base: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment of one container. `base` holds node-level vars (service links, KUBERNETES_*)."""
    env: dict[str, str] = dict(base or {})
    for ef in container.get("envFrom") or []:
        prefix = ef.get("prefix", "")
        if "configMapRef" in ef:
            ref, kind, store = ef["configMapRef"], "configmap", sources.config_maps
        elif "secretRef" in ef:
            ref, kind, store = ef["secretRef"], "secret", sources.secrets
        else:
            continue
        data = store.get(ref["name"])
        if data is None:
            if ref.get("optional"):
                continue
            raise EnvError(f'{kind} "{ref["name"]}" not found')
        for k, v in data.items():
            env[prefix + k] = v
    for e in container.get("env") or []:
        name = e["name"]
        if "valueFrom" not in e:
            env[name] = expand(e.get("value", ""), env)
            continue
        vf = e["valueFrom"]
        value: str | None
        if "secretKeyRef" in vf:
            value = _key_ref("secret", vf["secretKeyRef"], sources.secrets)
        elif "configMapKeyRef" in vf:
            value = _key_ref("configmap", vf["configMapKeyRef"], sources.config_maps)
        elif "fieldRef" in vf:
            value = field_value(pod, vf["fieldRef"]["fieldPath"], pod_ip)
        elif "resourceFieldRef" in vf:
            value = resource_value(container, vf["resourceFieldRef"])
        else:
            raise EnvError(f"env {name}: unsupported valueFrom {sorted(vf)}")
        if value is not None:
            env[name] = value
    return env


def service_env(services: list[Obj], namespace: str) -> dict[str, str]:
    """`<SVC>_SERVICE_HOST/PORT` (+ docker-link style vars) for the services of the pod's namespace."""
    env: dict[str, str] = {}
    for svc in services:
        meta, spec = svc.get("metadata", {}), svc.get("spec", {})
        ip = spec.get("clusterIP")
        if meta.get("namespace") != namespace or not ip or ip == "None":
            continue
        ports = spec.get("ports") or []
        if not ports:
            continue
        prefix = meta["name"].upper().replace("-", "_")
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        for p in ports:
            proto = p.get("protocol", "TCP")
            if p.get("name"):
                env[f"{prefix}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = str(p["port"])
            base = f"{prefix}_PORT_{p['port']}_{proto}"
            env[base] = f"{proto.lower()}://{ip}:{p['port']}"
            env[f"{base}_PROTO"] = proto.lower()
            env[f"{base}_PORT"] = str(p["port"])
            env[f"{base}_ADDR"] = ip
        env[f"{prefix}_PORT"] = f"{ports[0].get('protocol', 'TCP').lower()}://{ip}:{ports[0]['port']}"
    return env
