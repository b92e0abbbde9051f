"""What each strategy sends a model, with the contract it sends it with; and an llm spec for the real model."""

from __future__ import annotations

from typing import Any

from podium.api.agent import LLMBackend
from podium.engine import contracts
from podium_localcluster.modelserver import MODEL_ALIAS as MODEL_NAME

GOAL = {"goal": "Write a short guide to caching web pages"}
NAMING = {"problem": "a short name for a tool that runs teams of AI agents on Kubernetes"}
DRAFT = {"draft": "Podium runs agents"}
SUMMARY_SCHEMA = {
    "type": "object",
    "properties": {"summary": {"type": "string", "minLength": 1, "maxLength": 200}},
    "required": ["summary"],
    "additionalProperties": False,
}

# What each strategy sends, with the contract it sends it with.
CASES: dict[str, tuple[contracts.Contract, str, Any]] = {
    "plan-tasks": (
        contracts.plan(["research", "writing"]),
        "plan",
        {
            "input": GOAL,
            "agents": [
                {"name": "researcher", "role": "researcher", "capabilities": {"research": 0.9}},
                {"name": "writer", "role": "writer", "capabilities": {"writing": 0.8}},
            ],
        },
    ),
    "plan-assignments": (
        contracts.assignments(["research", "writing"]),
        "plan",
        {"input": GOAL, "teams": ["research", "writing"]},
    ),
    "explore": (contracts.proposal("explore"), "explore", {"input": NAMING, "generation": 1}),
    "evaluate": (
        contracts.evaluate(3),
        "evaluate",
        {"input": NAMING, "generation": 1, "solutions": ["Podium", "KubeCrew", "banana bread recipe"]},
    ),
    "propose": (contracts.proposal("propose"), "propose", {"input": DRAFT, "round": 1}),
    "review": (
        contracts.review(),
        "review",
        {"input": DRAFT, "round": 1, "proposal": "Podium runs teams of AI agents on Kubernetes", "author": "peer-a"},
    ),
    "synthesize": (
        contracts.synthesis(),
        "synthesize",
        {
            "input": GOAL,
            "results": {
                "research": "Browsers cache pages by Cache-Control headers; CDNs cache at the edge.",
                "analysis": "Set max-age for static files and use ETags for pages that change.",
            },
        },
    ),
    "execute-stage": (
        contracts.stage(SUMMARY_SCHEMA),
        "execute",
        {"source": "def add(a, b):\n    return a + b\n", "instruction": "Summarise what this code does."},
    ),
}


def llm(url: str, **extra: Any) -> LLMBackend:
    spec = {"model": MODEL_NAME, "baseURL": url, "temperature": 0.0, "seed": 42, "maxTokens": 400, **extra}
    spec.setdefault("frequencyPenalty", 0.5)  # a 135M model loops without it
    return LLMBackend.model_validate(spec)
