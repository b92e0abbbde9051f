"""The Agent's tools and memory fields: what the API accepts and the messages it refuses with."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from podium.api.agent import AgentSpec

LLM = {"llm": {"model": "m", "baseURL": "http://model/v1"}}


def spec(**extra: Any) -> AgentSpec:
    return AgentSpec.model_validate({"role": "clock", "backend": LLM, **extra})


def server(**extra: Any) -> dict[str, Any]:
    return {"name": "time", "stdio": {"command": "mcp-server-time"}, **extra}


def test_defaults_bound_the_loop_and_keep_memory_within_the_run() -> None:
    tools = spec(tools={"servers": [server()]}).tools
    assert tools is not None and (tools.max_calls, tools.calling, tools.result_chars) == (4, "auto", 2000)
    assert tools.servers[0].timeout_seconds == 30
    assert spec().memory is None and spec().tools is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"tools": {"servers": [server()]}, "backend": {"command": {"args": ["cat"]}}}, "spec.tools needs backend.llm"),
        ({"tools": {"servers": [server(), server()]}}, "each of servers needs a unique name"),
        ({"tools": {"servers": [server(http={"url": "http://x/mcp"})]}}, "exactly one of http, stdio"),
        ({"tools": {"servers": []}}, "at least 1 item"),
        ({"tools": {"servers": [{"name": "s", "http": {"url": "http://x", "headers": [{"name": "A"}]}}]}},
         "exactly one of value, secretKeyRef"),
        ({"memory": {"name": "Not A Label"}}, "memory.name"),
        ({"memory": {"maxBytes": 10}}, "memory.maxBytes"),
    ],
)  # fmt: skip
def test_bad_tools_or_memory_are_refused_naming_the_fix(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        spec(**extra)
    assert message in str(caught.value) or message.split(".")[-1] in str(caught.value)
