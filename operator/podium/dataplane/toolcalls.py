"""The record of one tool call an agent made during a task: what the agent reports in its Result
(``Result.tool_calls``) and what the engine publishes on the run's event stream (``tool.call``), so that every
call and its result is in the run's history (``podium run history``). Pure data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from podium.dataplane.messages import MalformedMessage

# The run's event for one call (podium.engine publishes it, sender: the agent).
TOOL_CALL_EVENT = "tool.call"
# How much of a tool's result the history keeps: enough to see what the model was told, not a copy of big results.
HISTORY_CHARS = 2000


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"... [{len(text) - limit} more characters]"


@dataclass(frozen=True)
class ToolCall:
    server: str  # the Agent's name for the MCP server (spec.tools.servers[].name)
    tool: str
    arguments: Any
    ok: bool  # False: the call failed, and the model was told so (result says why)
    result: str  # what the model was shown, shortened to HISTORY_CHARS
    ms: float = 0.0  # how long the call took
    round: int = 0  # the model call (1, 2, ...) that asked for it

    def to_wire(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "tool": self.tool,
            "arguments": self.arguments,
            "ok": self.ok,
            "result": shorten(self.result, HISTORY_CHARS),
            "ms": round(self.ms, 3),
            "round": self.round,
        }

    @classmethod
    def from_wire(cls, data: Any) -> ToolCall:
        if not isinstance(data, dict):
            raise MalformedMessage(f"a tool call must be an object, got {type(data).__name__}")
        server, tool, ok, result = data.get("server"), data.get("tool"), data.get("ok"), data.get("result")
        if not isinstance(tool, str) or not tool or not isinstance(server, str):
            raise MalformedMessage(f"a tool call needs string fields 'server' and 'tool', got {data!r}"[:300])
        if not isinstance(ok, bool) or not isinstance(result, str):
            raise MalformedMessage(f"tool call {tool!r} needs 'ok' (true/false) and 'result' (text)")
        ms, turn = data.get("ms", 0.0), data.get("round", 0)
        return cls(
            server=server,
            tool=tool,
            arguments=data.get("arguments"),
            ok=ok,
            result=result,
            ms=float(ms) if isinstance(ms, int | float) and not isinstance(ms, bool) else 0.0,
            round=turn if isinstance(turn, int) and not isinstance(turn, bool) else 0,
        )
