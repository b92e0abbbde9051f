"""Task dependency graphs (eventDriven): order, readiness and what a failure takes down with it. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class CycleError(ValueError):
    pass


def layers(deps: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Tasks grouped by depth: every task's dependencies are in earlier layers. Raises on cycles or unknown deps."""
    unknown = sorted({d for ds in deps.values() for d in ds} - set(deps))
    if unknown:
        raise ValueError(f"dependsOn names unknown tasks: {', '.join(unknown)}")
    done: set[str] = set()
    out: list[list[str]] = []
    while len(done) < len(deps):
        ready = sorted(n for n, ds in deps.items() if n not in done and set(ds) <= done)
        if not ready:
            raise CycleError(f"dependency cycle among: {', '.join(sorted(set(deps) - done))}")
        out.append(ready)
        done |= set(ready)
    return out


def ready(deps: Mapping[str, Sequence[str]], finished: set[str], started: set[str]) -> list[str]:
    """Tasks not started whose dependencies have all finished."""
    return sorted(n for n, ds in deps.items() if n not in started and set(ds) <= finished)


def downstream(deps: Mapping[str, Sequence[str]], failed: str) -> set[str]:
    """Every task that depends, directly or not, on ``failed`` (it cannot run)."""
    out: set[str] = set()
    frontier = {failed}
    while frontier:
        frontier = {n for n, ds in deps.items() if set(ds) & frontier} - out
        out |= frontier
    return out


def sinks(deps: Mapping[str, Sequence[str]]) -> list[str]:
    """Tasks nothing depends on: the ends of the graph, whose outputs make the result."""
    used = {d for ds in deps.values() for d in ds}
    return sorted(set(deps) - used)
