"""`podium-cluster node`: a node agent that runs the pods bound to it as local processes (no container runtime)."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    # Imported lazily so `import podium_localcluster.node` stays cheap for the CLI dispatcher.
    from podium_localcluster.node.cli import main as _main

    return _main(argv)


__all__ = ["main"]
