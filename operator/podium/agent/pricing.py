"""What one task costs, from the Agent's pricing: pure functions the runtime applies to every result."""

from __future__ import annotations

from podium.agent.backends.base import BackendOutput
from podium.api.agent import AgentSpec, ModelPricing


def token_cost(pricing: ModelPricing, prompt_tokens: int, completion_tokens: int) -> float:
    """Prompt tokens at the input price and completion tokens at the output price, both per million."""
    return (prompt_tokens * pricing.input_per_million + completion_tokens * pricing.output_per_million) / 1e6


def usage_cost(spec: AgentSpec, out: BackendOutput) -> float:
    """The tokens' cost: at the model's prices (``backend.llm.pricing``) when the usage is split into prompt and
    completion, else all tokens at ``pricing.per1kTokens``."""
    model = spec.backend.llm.pricing if spec.backend.llm is not None else None
    if model is not None and (out.prompt_tokens or out.completion_tokens):
        return token_cost(model, out.prompt_tokens, out.completion_tokens)
    return out.tokens / 1000.0 * spec.pricing.per_1k_tokens


def task_cost(spec: AgentSpec, kind: str, out: BackendOutput, *, ok: bool) -> float:
    """What the backend reported, else ``pricing.perTask`` plus the tokens' cost. A failed attempt costs only the
    tokens it used (a model call that failed was still paid for); the runtime's own bids are free."""
    if out.cost is not None:
        return out.cost
    if kind == "bid" and not out.tokens:
        return 0.0
    return round((spec.pricing.per_task if ok else 0.0) + usage_cost(spec, out), 10)
