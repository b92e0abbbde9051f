"""LLM backend: an OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, vLLM, Ollama, llama.cpp, LiteLLM)."""

from __future__ import annotations

import json
import os
from typing import Any

from podium.agent.backends._http import JSONPoster
from podium.agent.backends.base import BackendError, BackendOutput, TaskLike, parse_text, tail
from podium.api.agent import LLM_API_KEY_ENV, LLMBackend

KIND_INSTRUCTIONS = {
    "execute": "Do the task described by the input.",
    "plan": 'Split the goal into tasks. Answer JSON: {"tasks": [{"name": ..., "description": ...}]}.',
    "propose": "Propose a solution or an improvement for the input.",
    "explore": "Propose a new, different candidate solution for the input.",
    "review": 'Review the input. Answer JSON: {"score": <0..1>, "comments": [...]}.',
    "evaluate": 'Score the candidate in the input. Answer JSON: {"quality": <0..1>, "reason": ...}.',
    "synthesize": "Merge the results in the input into one coherent answer.",
    "bid": "Estimate the effort for the task.",
}


def build_messages(system_prompt: str | None, task: TaskLike) -> list[dict[str, str]]:
    kind = str(task.kind)
    body = task.input if isinstance(task.input, str) else json.dumps(task.input, indent=1)
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": f"{KIND_INSTRUCTIONS.get(kind, '')}\n\n{body}".strip()})
    return messages


def chat_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base if base.endswith("/chat/completions") else base + "/chat/completions"


def read_completion(payload: Any) -> BackendOutput:
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise BackendError(f"llm: answer has no choices[0].message.content: {tail(json.dumps(payload), 500)}") from None
    usage = payload.get("usage") or {}
    tokens = usage.get("total_tokens")
    if not isinstance(tokens, int):
        tokens = int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0)
    output = parse_text(content or "")
    quality = None
    if isinstance(output, dict) and isinstance(output.get("quality"), int | float):
        quality = max(0.0, min(1.0, float(output["quality"])))
    return BackendOutput(output, quality, tokens)


class LLMRunner:
    name = "llm"

    def __init__(self, spec: LLMBackend) -> None:
        self.spec = spec
        self.timeout_seconds = spec.timeout_seconds
        self.client = JSONPoster("llm")

    async def start(self) -> None:
        await self.client.start()

    def handles(self, kind: str) -> bool:
        # Prices and capacity are the runtime's knowledge, not the model's.
        return kind != "bid"

    async def run(self, task: TaskLike) -> BackendOutput:
        body: dict[str, Any] = {
            "model": self.spec.model,
            "messages": build_messages(self.spec.system_prompt, task),
            "temperature": self.spec.temperature,
        }
        if self.spec.max_tokens:
            body["max_tokens"] = self.spec.max_tokens
        headers = {"Content-Type": "application/json"}
        api_key = os.environ.get(LLM_API_KEY_ENV)
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        text = await self.client.post(chat_url(self.spec.base_url), body, headers, shown_url=self.spec.base_url)
        try:
            payload = json.loads(text)
        except json.JSONDecodeError:
            raise BackendError(f"llm: answer is not JSON: {tail(text, 500)}") from None
        return read_completion(payload)

    async def close(self) -> None:
        await self.client.close()
