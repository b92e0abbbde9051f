"""An Agent's tools: MCP servers its `llm` backend may call during a task, and how the tool loop runs."""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import Field

from podium.api.common import LABEL_PATTERN, Model, SecretKeyRef, exactly_one, unique_names

# HTTP header names are RFC 9110 tokens.
HEADER_NAME_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"
# What an MCP server may call a tool (the MCP spec's own rule): the model sees these names.
TOOL_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,128}$"
_NOT_ENV = re.compile(r"[^A-Z0-9]")


def header_env(server: str, header: str) -> str:
    """The environment variable an agent pod reads a Secret-held header of a tool server from. The operator fills
    it from the header's ``secretKeyRef`` (the kubelet reads the Secret; the value never passes through the
    operator or the agent's ConfigMap), and the runtime reads it back: this function is the one place that names
    it. ``PODIUM_MCP_<SERVER>__<HEADER>``, upper-cased, anything but letters and digits as ``_``."""
    return f"PODIUM_MCP_{_NOT_ENV.sub('_', server.upper())}__{_NOT_ENV.sub('_', header.upper())}"


class ToolHeader(Model):
    """One HTTP header sent with every request to a remote tool server: a literal value, or one read from a
    Secret (for credentials)."""

    name: str = Field(min_length=1, max_length=128, pattern=HEADER_NAME_PATTERN)
    """The header's name, e.g. `Authorization` or `X-Api-Key`."""
    value: str | None = Field(default=None, max_length=8192)
    """The header's value as written here: for what is not secret."""
    secret_key_ref: SecretKeyRef | None = None
    """The Secret key that holds the header's value (e.g. `Bearer sk-...`). The operator puts it in the agent
    pods' environment from the Secret, never in the pod spec or the ConfigMap; a missing Secret keeps the pods
    from starting (CreateContainerConfigError)."""

    rules = (exactly_one("value", "secret_key_ref"),)


class HTTPToolServer(Model):
    """A remote MCP server, reached over the Streamable HTTP transport."""

    url: str = Field(pattern=r"^https?://", max_length=2048)
    """The server's MCP endpoint, e.g. `https://tools.example.com/mcp`."""
    headers: list[ToolHeader] = Field(default_factory=list, max_length=32)
    """HTTP headers sent with every request to the server; names must be unique."""

    rules = (unique_names("headers"),)


class StdioToolServer(Model):
    """A local MCP server, started by each agent replica as a child process that speaks MCP on its stdin and
    stdout. It runs as long as the replica does (one process per replica, shared by its tasks)."""

    command: str = Field(min_length=1, max_length=4096)
    """The program, looked up on the agent container's PATH (e.g. `mcp-server-time`, from the PyPI package of
    that name). It must exist in the agent's image; if it cannot be started, the replica exits at start-up with
    code 1, naming the server and the error."""
    args: list[str] = Field(default_factory=list, max_length=64)
    """Its arguments, passed without a shell."""
    env: dict[str, str] | None = None
    """Environment variables for the server, on top of HOME, LOGNAME, PATH, SHELL, TERM and USER from the agent
    container (the MCP SDK passes nothing else: the agent's Redis password stays out of tool servers)."""
    working_dir: str | None = Field(default=None, max_length=4096)
    """Directory the server starts in. Unset: the agent process's own."""


class ToolServer(Model):
    """One MCP server whose tools the agent's model may call: remote (`http`) or started in the pod (`stdio`)."""

    name: str = Field(max_length=63, pattern=LABEL_PATTERN)
    """The server's name in this Agent: in logs, the run's history (`podium run history`) and errors. Unique
    among the Agent's servers."""
    http: HTTPToolServer | None = None
    """A remote server over Streamable HTTP. Exactly one of http and stdio."""
    stdio: StdioToolServer | None = None
    """A server started in each agent replica. Exactly one of http and stdio."""
    tools: list[str] | None = Field(default=None, max_length=128)
    """Only these tools of the server are offered to the model (by their MCP names). Unset: every tool it
    lists. A name the server does not list stops the replica at start-up, naming it."""
    timeout_seconds: int = Field(default=30, ge=1, le=3600)
    """How long one call to one of its tools may take; a call that takes longer is answered to the model as a
    failed call (`timed out after Ns`). The task's own timeout bounds the whole loop."""

    rules = (exactly_one("http", "stdio"),)


class ToolCalling(StrEnum):
    """How the model asks for a tool call:

    - `native`: OpenAI's `tools` in the request and `tool_calls` in the answer (OpenAI, vLLM and llama.cpp with
      a model trained for it).
    - `schema`: the answer is constrained by a JSON Schema (`response_format`) to be either a call,
      `{"tool": name, "arguments": {...}}`, or the final answer, `{"answer": ...}` in the task's output contract.
      Works with any server that supports structured output, and with models that never emit `tool_calls` (the
      chart's SmolLM2 model server).
    - `auto`: `native`, and `schema` from then on if the server refuses `tools` (HTTP 400). A server that takes
      `tools` but whose model never calls them is not detectable: set `schema` for it.
    """

    auto = "auto"
    native = "native"
    schema = "schema"


class Tools(Model):
    """The agent's tools: the MCP servers it may call and the bounds of the tool loop. Only the `llm` backend runs
    a tool loop (the API server checks it). Each round asks the model, which either calls a tool (its result goes
    back to the model) or answers; every call and its result is recorded in the run's history (`podium run
    history`, events `tool.call`), and every round's tokens count against the run's limits.maxTokens and
    maxCost. A failed call (an error of the tool, a timeout, an unknown tool) is answered to the model as a
    failed call, not a failed task (docs/agent-runtime.md)."""

    servers: list[ToolServer] = Field(min_length=1, max_length=16)
    """The MCP servers; names must be unique, and so must the names of the tools they offer (use a server's
    `tools` to leave one out)."""
    max_calls: int = Field(default=4, ge=1, le=64)
    """Most tool calls in one task attempt. Then the model is asked for its final answer without tools."""
    calling: ToolCalling = ToolCalling.auto
    """How the model asks for calls: `auto` (default), `native` or `schema` (see the values above)."""
    result_chars: int = Field(default=2000, ge=100, le=100_000)
    """Longest tool result the model is shown, in characters; a longer one is cut (the run's history keeps the
    first 2000 characters of each). Small context windows need it small."""

    rules = (unique_names("servers"),)
