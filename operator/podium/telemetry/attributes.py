"""Span names and attributes: the OpenTelemetry GenAI semantic conventions where they apply, ``podium.*`` for the rest.

Pure functions of plain values (no OpenTelemetry import), so what every span says is decided and tested here, and
the SDK wiring (:mod:`podium.telemetry.sdk`) only records it. The conventions followed are those of the GenAI spans
(inference ``chat {model}``, ``execute_tool {tool}``, ``invoke_agent {agent}``) as of semantic conventions 1.37+:
``gen_ai.provider.name`` is the current name of the provider attribute; ``gen_ai.system``, its name up to 1.36, is
sent too with the same value so that backends still reading it find it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Union
from urllib.parse import urlsplit

# What an attribute may hold (OpenTelemetry's AttributeValue, without importing it).
AttributeValue = Union[str, bool, int, float, tuple[str, ...], tuple[int, ...], tuple[float, ...]]  # noqa: UP007
Attributes = dict[str, AttributeValue]

# GenAI semantic conventions.
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
SYSTEM = "gen_ai.system"  # the provider's attribute name up to semantic conventions 1.36
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_SEED = "gen_ai.request.seed"
REQUEST_FREQUENCY_PENALTY = "gen_ai.request.frequency_penalty"
OUTPUT_TYPE = "gen_ai.output.type"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
AGENT_NAME = "gen_ai.agent.name"
AGENT_ID = "gen_ai.agent.id"
AGENT_DESCRIPTION = "gen_ai.agent.description"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_DESCRIPTION = "gen_ai.tool.description"
TOOL_TYPE = "gen_ai.tool.type"
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
K8S_NAMESPACE = "k8s.namespace.name"

# Podium's own.
RUN_UID = "podium.run.uid"
ORCHESTRATION = "podium.orchestration"  # <namespace>/<name>
STRATEGY = "podium.strategy"
RUN_PHASE = "podium.run.phase"
RUN_REASON = "podium.run.reason"
RUN_DEGRADED = "podium.run.degraded"
STEP = "podium.step"
TASK_KIND = "podium.task.kind"
TASK_ID = "podium.task.id"
AGENT = "podium.agent"
REPLICA = "podium.replica"
ATTEMPT = "podium.attempt"
ATTEMPTS = "podium.attempts"
COST = "podium.cost"
TOKENS = "podium.tokens"
QUALITY = "podium.quality"
OUTCOME = "podium.outcome"  # ok | error | timeout | throttled | invalid (the agent's metrics label)
TOOL_SERVER = "podium.tool.server"

CHAT = "chat"
EXECUTE_TOOL = "execute_tool"
INVOKE_AGENT = "invoke_agent"

# gen_ai.provider.name by the API's host: the well-known values of the conventions. Any other OpenAI-compatible
# endpoint (vLLM, llama.cpp, Ollama, LiteLLM, ...) speaks OpenAI's API and is named ``openai``, as the conventions
# advise for a provider reached through OpenAI's API; server.address says which server it really was.
PROVIDERS_BY_HOST = {
    "api.openai.com": "openai",
    "api.deepseek.com": "deepseek",
    "api.groq.com": "groq",
    "api.mistral.ai": "mistral_ai",
    "api.x.ai": "x_ai",
    "api.perplexity.ai": "perplexity",
    "api.anthropic.com": "anthropic",
    "generativelanguage.googleapis.com": "gcp.gemini",
}
PROVIDERS_BY_SUFFIX = {".openai.azure.com": "azure.ai.openai", ".services.ai.azure.com": "azure.ai.inference"}
DEFAULT_PROVIDER = "openai"


def trace_id_for(uid: str) -> int:
    """The trace id of a run: derived from the Orchestration's uid, so the run is one trace even when an operator
    restart resumes it, and a uid finds its trace. Hashed rather than taken as is: a UUID4's fixed version and
    variant bits would skew a ratio sampler, which reads the id's low 64 bits."""
    value = int.from_bytes(hashlib.sha256(uid.encode()).digest()[:16], "big")
    return value or 1  # zero is the invalid trace id


def trace_id_hex(uid: str) -> str:
    """The run's trace id as tracing backends show it (32 hex digits)."""
    return f"{trace_id_for(uid):032x}"


def provider_for(base_url: str) -> str:
    host = (urlsplit(base_url).hostname or "").lower()
    if host in PROVIDERS_BY_HOST:
        return PROVIDERS_BY_HOST[host]
    return next((name for suffix, name in PROVIDERS_BY_SUFFIX.items() if host.endswith(suffix)), DEFAULT_PROVIDER)


def server_of(base_url: str) -> Attributes:
    """server.address and server.port of a URL (the port its scheme implies when it names none)."""
    parts = urlsplit(base_url)
    if not parts.hostname:
        return {}
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a port that is not a number: the address alone
        return {SERVER_ADDRESS: parts.hostname}
    return {SERVER_ADDRESS: parts.hostname, SERVER_PORT: port}


def _without_none(values: Mapping[str, AttributeValue | None]) -> Attributes:
    return {k: v for k, v in values.items() if v is not None}


# ------------------------------------------------------------------------------------------------ the engine's spans
def run_name(strategy: str) -> str:
    return f"run {strategy}"


def run_attributes(uid: str, namespace: str, name: str, strategy: str) -> Attributes:
    return {
        RUN_UID: uid,
        ORCHESTRATION: f"{namespace}/{name}",
        K8S_NAMESPACE: namespace,
        STRATEGY: strategy,
    }


def run_outcome(phase: str, reason: str, cost: float, tokens: int, degraded: bool) -> Attributes:
    return {RUN_PHASE: phase, RUN_REASON: reason, COST: float(cost), TOKENS: int(tokens), RUN_DEGRADED: degraded}


def step_name(kind: str) -> str:
    # Span names stay few (one per task kind); the step itself is an attribute.
    return f"step {kind}"


def step_attributes(step: str, kind: str) -> Attributes:
    return {STEP: step, TASK_KIND: kind}


def step_outcome(agent: str, attempts: int, cost: float, tokens: int) -> Attributes:
    return {AGENT: agent, ATTEMPTS: attempts, COST: float(cost), TOKENS: int(tokens)}


def attempt_name(agent: str) -> str:
    return f"{INVOKE_AGENT} {agent}"


def attempt_attributes(agent: str, step: str, kind: str, attempt: int, task_id: str) -> Attributes:
    return {
        OPERATION: INVOKE_AGENT,
        AGENT_NAME: agent,
        AGENT: agent,
        STEP: step,
        TASK_KIND: kind,
        ATTEMPT: attempt,
        TASK_ID: task_id,
    }


def attempt_outcome(cost: float, tokens: int, quality: float | None = None, replica: str | None = None) -> Attributes:
    return _without_none({COST: float(cost), TOKENS: int(tokens), QUALITY: quality, REPLICA: replica or None})


# ------------------------------------------------------------------------------------------------ the agent's spans
def task_name(kind: str) -> str:
    return f"task {kind}"


def task_attributes(
    *, namespace: str, agent: str, replica: str, kind: str, task_id: str, attempt: int, orchestration: str, step: str
) -> Attributes:
    return _without_none(
        {
            K8S_NAMESPACE: namespace,
            AGENT_NAME: agent,
            AGENT: agent,
            REPLICA: replica,
            TASK_KIND: kind,
            TASK_ID: task_id,
            ATTEMPT: attempt,
            ORCHESTRATION: orchestration or None,
            STEP: step or None,
        }
    )


def task_outcome(
    outcome: str, cost: float, tokens: int, input_tokens: int, output_tokens: int, quality: float | None
) -> Attributes:
    values: dict[str, AttributeValue | None] = {OUTCOME: outcome, COST: float(cost), TOKENS: int(tokens)}
    if input_tokens or output_tokens:
        values[USAGE_INPUT_TOKENS] = int(input_tokens)
        values[USAGE_OUTPUT_TOKENS] = int(output_tokens)
    values[QUALITY] = quality
    return _without_none(values)


# ------------------------------------------------------------------------------------------------ model and tool calls
def model_name(model: str, operation: str = CHAT) -> str:
    return f"{operation} {model}"


def model_request(
    *,
    model: str,
    base_url: str,
    operation: str = CHAT,
    temperature: float | None = None,
    max_tokens: int | None = None,
    seed: int | None = None,
    frequency_penalty: float | None = None,
    output_type: str | None = None,
) -> Attributes:
    provider = provider_for(base_url)
    return _without_none(
        {
            OPERATION: operation,
            PROVIDER: provider,
            SYSTEM: provider,
            REQUEST_MODEL: model,
            REQUEST_TEMPERATURE: temperature,
            REQUEST_MAX_TOKENS: max_tokens,
            REQUEST_SEED: seed,
            REQUEST_FREQUENCY_PENALTY: frequency_penalty,
            OUTPUT_TYPE: output_type,
            **server_of(base_url),
        }
    )


def model_response(
    *,
    input_tokens: int,
    output_tokens: int,
    finish_reason: str | None = None,
    response_model: str | None = None,
    response_id: str | None = None,
) -> Attributes:
    return _without_none(
        {
            USAGE_INPUT_TOKENS: int(input_tokens),
            USAGE_OUTPUT_TOKENS: int(output_tokens),
            RESPONSE_FINISH_REASONS: (finish_reason,) if finish_reason else None,
            RESPONSE_MODEL: response_model or None,
            RESPONSE_ID: response_id or None,
        }
    )


def tool_name(name: str) -> str:
    return f"{EXECUTE_TOOL} {name}"


def tool_attributes(
    name: str,
    *,
    call_id: str | None = None,
    description: str | None = None,
    tool_type: str | None = "extension",
    server: str | None = None,
) -> Attributes:
    """``tool_type`` as the conventions define it: ``extension`` for a tool the agent calls itself (an MCP server's
    tool), ``function`` for one the model asks the client to run, ``datastore`` for retrieval."""
    return _without_none(
        {
            OPERATION: EXECUTE_TOOL,
            TOOL_NAME: name,
            TOOL_CALL_ID: call_id or None,
            TOOL_DESCRIPTION: description or None,
            TOOL_TYPE: tool_type or None,
            TOOL_SERVER: server or None,
        }
    )


def error_type(exc: BaseException) -> str:
    """error.type of an exception: its class name (low cardinality, as the conventions ask)."""
    return type(exc).__name__
