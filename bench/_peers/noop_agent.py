"""A no-op agent function for `bench.sharding`: agent pods import it (PYTHONPATH points at bench/_peers)."""

from __future__ import annotations

from typing import Any


def noop(task: Any) -> Any:
    return {"ok": True}
