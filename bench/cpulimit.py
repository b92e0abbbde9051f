"""A process's CPU bounded the way a pod's ``resources.limits.cpu`` bounds it: a cgroup with a CFS quota.

The benchmarks run operator replicas as local processes on a small machine that also hosts the API server, etcd,
Redis and the agents. In a cluster each replica is a pod with its own CPU (one core at most in any case: one event
loop); here a quota gives each replica its share, so adding a replica adds CPU the way it does in a cluster.
cgroup v2 (``cpu.max``) and v1 (``cpu.cfs_quota_us``) are both handled; ``available()`` says whether this machine
lets us (root and a writable cpu controller).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PERIOD_US = 100_000
_V2 = Path("/sys/fs/cgroup")
_V1 = Path("/sys/fs/cgroup/cpu")


def _root() -> Path | None:
    if "cpu" in _read(_V2 / "cgroup.controllers").split() and os.access(_V2, os.W_OK):
        return _V2
    if (_V1 / "cpu.cfs_quota_us").exists() and os.access(_V1, os.W_OK):
        return _V1
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def available() -> bool:
    return _root() is not None


class CpuLimit:
    """One cgroup holding the processes added to it, at most ``millicores`` of CPU between them."""

    def __init__(self, group: Path, millicores: int) -> None:
        self.group = group
        self.millicores = millicores

    def add(self, pid: int) -> None:
        (self.group / "cgroup.procs").write_text(str(pid))

    def throttled_seconds(self) -> float:
        stat = dict(line.split() for line in _read(self.group / "cpu.stat").splitlines() if line.strip())
        if "throttled_usec" in stat:
            return int(stat["throttled_usec"]) / 1e6
        return int(stat.get("throttled_time", 0)) / 1e9


@contextmanager
def cpu_limit(millicores: int) -> Iterator[CpuLimit]:
    root = _root()
    if root is None:
        raise RuntimeError("no writable cgroup cpu controller here (needs root and /sys/fs/cgroup writable)")
    group = root / f"podium-bench-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    quota = PERIOD_US * millicores // 1000
    try:
        if root == _V2:
            (group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        else:
            (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(quota))
        yield CpuLimit(group, millicores)
    finally:
        # Whatever is still in it goes back to the root, so the group can be removed.
        for pid in _read(group / "cgroup.procs").split():
            try:
                (root / "cgroup.procs").write_text(pid)
            except OSError:
                pass
        group.rmdir()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (its threads included)."""
    fields = _read(Path(f"/proc/{pid}/stat")).rsplit(")", 1)[-1].split()
    if len(fields) < 13:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat: diff two of them for a share."""
    values = [int(v) for v in _read(Path("/proc/stat")).splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    tick = os.sysconf("SC_CLK_TCK")
    return (total - idle) / tick, total / tick
