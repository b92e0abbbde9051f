"""Write a pod's volumes (secret, configMap, emptyDir, downwardAPI, projected, hostPath) into its directory.

The caller fetches the Secrets/ConfigMaps (`envvars.Sources`) and service-account tokens first; this module only
lays out files, so it can be tested without an API server.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podium_localcluster.node.envvars import EnvError, Sources, field_value

Obj = dict[str, Any]
TokenKey = tuple[str, int]  # (audience, expirationSeconds)


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool


class VolumeError(ValueError):
    pass


def token_requests(pod: Obj) -> set[TokenKey]:
    """The service-account tokens the pod's projected volumes ask for; "" audience means the API server's."""
    out: set[TokenKey] = set()
    for v in pod.get("spec", {}).get("volumes") or []:
        for src in (v.get("projected") or {}).get("sources") or []:
            t = src.get("serviceAccountToken")
            if t is not None:
                out.add((t.get("audience", ""), int(t.get("expirationSeconds", 3607))))
    return out


def _write(path: Path, content: str | bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(content.encode() if isinstance(content, str) else content)
    tmp.chmod(mode)
    os.replace(tmp, path)


def _keyed(
    root: Path, kind: str, name: str, data: dict[str, str] | None, items: list[Obj] | None, optional: bool, mode: int
) -> None:
    if data is None:
        if optional:
            return
        raise VolumeError(f'{kind} "{name}" not found')
    if items:
        for it in items:
            if it["key"] not in data:
                if optional:
                    continue
                raise VolumeError(f'{kind} "{name}" has no key "{it["key"]}"')
            _write(root / it["path"], data[it["key"]], int(it.get("mode", mode)))
    else:
        for k, v in data.items():
            _write(root / k, v, mode)


def _downward(root: Path, pod: Obj, items: list[Obj], pod_ip: str, mode: int) -> None:
    for it in items:
        if "fieldRef" in it:
            try:
                value = field_value(pod, it["fieldRef"]["fieldPath"], pod_ip)
            except EnvError as e:
                raise VolumeError(str(e)) from e
            _write(root / it["path"], value, int(it.get("mode", mode)))


def _keyed_volume(root: Path, v: Obj, sources: Sources) -> None:
    """A secret or configMap volume's files under ``root``."""
    if "secret" in v:
        s = v["secret"]
        n, kind, data = s["secretName"], "secret", sources.secrets.get(s["secretName"])
    else:
        s = v["configMap"]
        n, kind, data = s["name"], "configmap", sources.config_maps.get(s["name"])
    _keyed(root, kind, n, data, s.get("items"), bool(s.get("optional")), int(s.get("defaultMode", 0o644)))


def refresh(pod: Obj, pod_dir: Path, sources: Sources) -> list[str]:
    """Bring running pods' secret and configMap volumes up to date in place, as the kubelet does; returns the
    names of the volumes that changed.

    Files are replaced inside the existing directories: containers see the volume through a bind mount of that
    directory, so a new directory would stay invisible to them. A volume whose object vanished keeps its files.
    """
    changed: list[str] = []
    staging = pod_dir / "volumes-refresh"
    for v in pod.get("spec", {}).get("volumes") or []:
        live = pod_dir / "volumes" / v["name"]
        if ("secret" not in v and "configMap" not in v) or not live.is_dir():
            continue
        stage = staging / v["name"]
        if stage.exists():
            shutil.rmtree(stage)
        stage.mkdir(parents=True)
        try:
            _keyed_volume(stage, v, sources)
        except VolumeError:
            continue
        if _sync_tree(stage, live):
            changed.append(v["name"])
    if staging.exists():
        shutil.rmtree(staging)
    return changed


def _sync_tree(staged: Path, live: Path) -> bool:
    changed = False
    wanted = {f.relative_to(staged) for f in staged.rglob("*") if f.is_file()}
    for rel in sorted(wanted):
        src, dst = staged / rel, live / rel
        content, mode = src.read_bytes(), src.stat().st_mode & 0o7777
        if not dst.is_file() or dst.read_bytes() != content or dst.stat().st_mode & 0o7777 != mode:
            _write(dst, content, mode)
            changed = True
    for f in [f for f in live.rglob("*") if f.is_file() and f.relative_to(live) not in wanted]:
        f.unlink()
        changed = True
    return changed


_HOST_PATH_KINDS = {
    "Directory": (stat.S_ISDIR, "a directory"),
    "File": (stat.S_ISREG, "a file"),
    "Socket": (stat.S_ISSOCK, "a socket"),
    "CharDevice": (stat.S_ISCHR, "a character device"),
    "BlockDevice": (stat.S_ISBLK, "a block device"),
}


def host_path(spec: Obj) -> Path:
    """A hostPath volume's path after the checks its ``type`` asks for (the kubelet's, with its wording).

    An unset type creates a missing directory, as containerd does for a bind mount's source: the container then
    starts, where a missing source would fail the bind mount with nothing said about which volume.
    """
    path, kind = Path(spec["path"]), spec.get("type") or ""
    if kind in ("", "DirectoryOrCreate"):
        if not path.exists():
            path.mkdir(parents=True, mode=0o755)
        elif kind and not path.is_dir():
            raise VolumeError(f"hostPath type check failed: {path} is not a directory")
        return path
    if kind == "FileOrCreate":
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o644)
        kind = "File"
    if kind not in _HOST_PATH_KINDS:
        raise VolumeError(f'hostPath type "{kind}" is not supported')
    is_kind, what = _HOST_PATH_KINDS[kind]
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise VolumeError(f"hostPath type check failed: {path} does not exist") from None
    if not is_kind(mode):
        raise VolumeError(f"hostPath type check failed: {path} is not {what}")
    return path


def materialize(pod: Obj, pod_dir: Path, sources: Sources, tokens: dict[TokenKey, str], pod_ip: str) -> dict[str, Path]:
    """Create every volume under `pod_dir/volumes/<name>`; returns volume name -> host path."""
    out: dict[str, Path] = {}
    vol_root = pod_dir / "volumes"
    for v in pod.get("spec", {}).get("volumes") or []:
        name = v["name"]
        if "hostPath" in v:
            out[name] = host_path(v["hostPath"])
            continue
        root = vol_root / name
        if root.exists() and "emptyDir" not in v:
            shutil.rmtree(root)  # rewritten from the current objects on every (re)start
        root.mkdir(parents=True, exist_ok=True)
        out[name] = root
        if "emptyDir" in v:
            continue
        if "secret" in v or "configMap" in v:
            _keyed_volume(root, v, sources)
        elif "downwardAPI" in v:
            d = v["downwardAPI"]
            _downward(root, pod, d.get("items") or [], pod_ip, int(d.get("defaultMode", 0o644)))
        elif "projected" in v:
            p = v["projected"]
            mode = int(p.get("defaultMode", 0o644))
            for src in p.get("sources") or []:
                if "serviceAccountToken" in src:
                    t = src["serviceAccountToken"]
                    key = (t.get("audience", ""), int(t.get("expirationSeconds", 3607)))
                    _write(root / t["path"], tokens[key], 0o600 if mode == 0o644 else mode)
                elif "configMap" in src:
                    c = src["configMap"]
                    _keyed(
                        root,
                        "configmap",
                        c["name"],
                        sources.config_maps.get(c["name"]),
                        c.get("items"),
                        bool(c.get("optional")),
                        mode,
                    )
                elif "secret" in src:
                    s = src["secret"]
                    _keyed(
                        root,
                        "secret",
                        s["name"],
                        sources.secrets.get(s["name"]),
                        s.get("items"),
                        bool(s.get("optional")),
                        mode,
                    )
                elif "downwardAPI" in src:
                    _downward(root, pod, src["downwardAPI"].get("items") or [], pod_ip, mode)
        else:
            raise VolumeError(f"volume {name}: unsupported type {sorted(k for k in v if k != 'name')}")
    return out


def container_mounts(container: Obj, volumes: dict[str, Path]) -> list[Mount]:
    mounts: list[Mount] = []
    for m in container.get("volumeMounts") or []:
        if m["name"] not in volumes:
            raise VolumeError(f'volumeMount "{m["name"]}" refers to no volume of the pod')
        src = volumes[m["name"]]
        if m.get("subPath"):
            src = src / m["subPath"]
            if not src.exists():
                src.mkdir(parents=True)
        mounts.append(Mount(src, m["mountPath"], bool(m.get("readOnly"))))
    return mounts
