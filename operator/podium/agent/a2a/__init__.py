"""A2A (Agent2Agent protocol) in the agent runtime, through the official A2A SDK (`a2a-sdk`): the server that serves
an Agent with `spec.a2a` (:mod:`.server`), the messages and answers both sides exchange (:mod:`.convert`), and the
client the `a2a` backend uses (``podium.agent.backends.a2a``).

The SDK and its HTTP server are an optional extra, as httpx's command line is: an Agent that never speaks A2A
costs nothing, and one that does without the extra installed says which command fixes it.
"""

from __future__ import annotations

import importlib.util

INSTALL_HINT = "pip install 'podium[a2a]'"

# What each side imports beyond the SDK itself.
_NEEDS = {
    "client": ("a2a", "httpx"),
    "server": ("a2a", "starlette", "sse_starlette", "uvicorn"),
}


class A2AUnavailable(RuntimeError):
    """The A2A SDK (or its HTTP server) is not installed; the message names the missing modules and the fix."""


def require(side: str) -> None:
    """Raise :class:`A2AUnavailable` unless the modules the ``client`` or ``server`` side needs are importable."""
    missing = [name for name in _NEEDS[side] if importlib.util.find_spec(name) is None]
    if missing:
        raise A2AUnavailable(
            f"A2A {side} needs the A2A SDK ({', '.join(missing)} not installed): {INSTALL_HINT} "
            f"(the podium images include it)"
        )
