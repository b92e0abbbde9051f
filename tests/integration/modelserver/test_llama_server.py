"""The real llama-server with SmolLM2-135M-Instruct: what the llm backend relies on from an OpenAI-compatible server."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import jsonschema

from podium_localcluster.modelserver import MODEL_ALIAS, LlamaServer

# Bounded lengths and counts: a small model left unbounded runs into max_tokens and the JSON is cut off.
REVIEW = {
    "type": "object",
    "properties": {
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "comments": {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 80},
            "minItems": 1,
            "maxItems": 3,
        },
    },
    "required": ["score", "comments"],
    "additionalProperties": False,
}


def post(server: LlamaServer, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{server.base_url}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        answer: dict[str, Any] = json.load(response)
        return answer


def get(server: LlamaServer, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{server.base_url}{path}", timeout=10) as response:
        answer: dict[str, Any] = json.load(response)
        return answer


def test_json_schema_response_format_gives_json_matching_the_schema_with_token_usage(
    model_server: LlamaServer,
) -> None:
    answer = post(
        model_server,
        "/chat/completions",
        {
            "model": MODEL_ALIAS,
            "messages": [
                {"role": "system", "content": "You review Python code."},
                {"role": "user", "content": "Review this function:\n\ndef add(a, b):\n    return a - b\n"},
            ],
            "response_format": {"type": "json_schema", "json_schema": {"name": "review", "schema": REVIEW}},
            "temperature": 0,
            "seed": 7,
            "max_tokens": 300,
        },
    )
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "stop", answer  # not cut at max_tokens
    review = json.loads(choice["message"]["content"])
    jsonschema.validate(review, REVIEW)
    usage = answer["usage"]
    assert usage["prompt_tokens"] > 20 and usage["completion_tokens"] > 5, usage
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_json_object_response_format_gives_a_json_object(model_server: LlamaServer) -> None:
    """The fallback for servers without json_schema: any JSON object, the shape is left to the prompt."""
    answer = post(
        model_server,
        "/chat/completions",
        {
            "messages": [{"role": "user", "content": 'Answer as JSON with a key "city": the capital of France.'}],
            "response_format": {"type": "json_object"},
            "temperature": 0,
            "seed": 7,
            "max_tokens": 60,
        },
    )
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "stop", answer
    assert isinstance(json.loads(choice["message"]["content"]), dict)


def test_models_lists_the_alias_agents_name(model_server: LlamaServer) -> None:
    assert MODEL_ALIAS in [m["id"] for m in get(model_server, "/models")["data"]]
