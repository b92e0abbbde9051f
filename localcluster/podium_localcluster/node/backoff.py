"""Restart back-off like the kubelet's: immediate first restart, then base * 2^n up to a cap."""

from __future__ import annotations


def restart_delay(restart_count: int, *, base: float = 10.0, cap: float = 300.0) -> float:
    """Seconds to wait before restart number `restart_count + 1` of a container that exited."""
    if restart_count < 0:
        raise ValueError("restart_count must be >= 0")
    if restart_count == 0:
        return 0.0
    return float(min(cap, base * (2 ** (restart_count - 1))))


def should_restart(policy: str, exit_code: int) -> bool:
    """restartPolicy semantics for a regular container that has exited."""
    if policy == "Always":
        return True
    if policy == "OnFailure":
        return exit_code != 0
    if policy == "Never":
        return False
    raise ValueError(f"unknown restartPolicy {policy!r} (expected Always, OnFailure or Never)")
