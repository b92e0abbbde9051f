"""How often a small model answers each task kind in its contract, with and without the schema sent.

    python -m bench.llm_contracts [--url http://127.0.0.1:8080/v1] [--inputs 10] [--temperature 0.7]
                                  [--max-tokens 400] [--frequency-penalty 0.5]

Starts llama-server with SmolLM2-135M-Instruct (``podium_localcluster.modelserver``) unless ``--url`` names a running
OpenAI-compatible server. For every contract the strategies send, ``--inputs`` different inputs are asked three
ways: the schema as ``response_format: json_schema`` (constrained decoding), as ``json_object`` (any JSON, shape in
the prompt), and with no response format (the prompt alone). Reported per kind and way: answers valid at the
first try, valid after the backend's one re-ask, mean completion tokens and seconds per task, and the most
common reason an answer was refused.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from podium.agent.backends.llm import LLMRunner
from podium.api.agent import LLMBackend
from podium.api.json_schema import first_error
from podium.dataplane.messages import Task
from podium.engine import contracts

TOPICS = [
    "caching web pages",
    "backing up a laptop",
    "learning to cook rice",
    "writing a good bug report",
    "choosing a password manager",
    "planning a team offsite",
    "reducing cloud costs",
    "onboarding a new engineer",
    "testing a REST API",
    "keeping a garden alive in summer",
    "naming a new open-source project",
    "explaining recursion to a child",
]
WAYS = ("json_schema", "json_object", "prompt only")


def cases(topic: str) -> dict[str, tuple[contracts.Contract, str, Any]]:
    goal = {"goal": f"Write a short guide to {topic}"}
    problem = {"problem": f"a one-line slogan about {topic}"}
    return {
        "plan": (
            contracts.plan(["research", "writing"]),
            "plan",
            {
                "input": goal,
                "agents": [
                    {"name": "researcher", "role": "researcher", "capabilities": {"research": 0.9}},
                    {"name": "writer", "role": "writer", "capabilities": {"writing": 0.8}},
                ],
            },
        ),
        "plan (teams)": (
            contracts.assignments(["research", "writing"]),
            "plan",
            {"input": goal, "teams": ["research", "writing"]},
        ),
        "explore": (contracts.proposal("explore"), "explore", {"input": problem, "generation": 1}),
        "evaluate": (
            contracts.evaluate(3),
            "evaluate",
            {"input": problem, "solutions": [f"{topic}: do it well", "banana", f"Simple {topic} for everyone"]},
        ),
        "propose": (contracts.proposal("propose"), "propose", {"input": {"draft": f"Notes on {topic}"}, "round": 1}),
        "review": (
            contracts.review(),
            "review",
            {"input": {"draft": f"Notes on {topic}"}, "proposal": f"A clear, short guide to {topic}", "round": 1},
        ),
        "synthesize": (
            contracts.synthesis(),
            "synthesize",
            {"input": goal, "results": {"research": f"Facts about {topic}.", "analysis": f"What matters in {topic}."}},
        ),
    }


class Counting(LLMRunner):
    """An LLMRunner that counts its model calls (2 = the answer needed the re-ask) and can skip the schema."""

    def __init__(self, spec: LLMBackend, way: str) -> None:
        super().__init__(spec)
        self.calls = 0
        if way == "json_object":
            self.client.json_schema = False
        self.way = way
        original = self.client.complete

        async def complete(request: Any) -> Any:
            self.calls += 1
            if way == "prompt only":
                request = type(request)(**{**request.__dict__, "schema": None})
            return await original(request)

        self.client.complete = complete  # type: ignore[method-assign]


async def measure(
    url: str, inputs: int, temperature: float, model: str, max_tokens: int, penalty: float
) -> dict[str, Any]:
    spec = LLMBackend.model_validate(
        {
            "model": model,
            "baseURL": url,
            "temperature": temperature,
            "seed": 42,
            "maxTokens": max_tokens,
            "frequencyPenalty": penalty,
        }
    )
    rows: dict[str, dict[str, Any]] = {}
    for kind in cases(TOPICS[0]):
        for way in WAYS:
            first = final = 0
            tokens: list[int] = []
            seconds: list[float] = []
            refused: Counter[str] = Counter()
            for topic in (TOPICS * 2)[:inputs]:
                contract, task_kind, data = cases(topic)[kind]
                runner = Counting(spec, way)
                task = Task(id="b", kind=task_kind, input=data, namespace="n", agent="a", output_schema=contract.schema)
                started = time.monotonic()
                try:
                    out = await runner.run(task)
                    ok = first_error(contract.schema, out.output) is None
                    tokens.append(out.completion_tokens)
                except Exception as exc:
                    ok = False
                    refused[str(exc).split(": ", 2)[-1][:90]] += 1
                finally:
                    await runner.close()
                seconds.append(time.monotonic() - started)
                final += ok
                first += ok and runner.calls == 1
            rows[f"{kind} / {way}"] = {
                "kind": kind,
                "way": way,
                "inputs": inputs,
                "valid_first_try": first,
                "valid_after_reask": final,
                "mean_completion_tokens": round(statistics.mean(tokens), 1) if tokens else None,
                "mean_seconds": round(statistics.mean(seconds), 2),
                "top_refusal": refused.most_common(1)[0][0] if refused else None,
            }
            print(json.dumps(rows[f"{kind} / {way}"]), file=sys.stderr)
    settings = {"model": model, "temperature": temperature, "max_tokens": max_tokens, "frequency_penalty": penalty}
    return {**settings, "rows": list(rows.values())}


def table(result: dict[str, Any]) -> str:
    lines = [
        "| kind | way | valid 1st try | valid after re-ask | completion tokens | s/task |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        n = r["inputs"]
        lines.append(
            f"| {r['kind']} | {r['way']} | {r['valid_first_try']}/{n} | {r['valid_after_reask']}/{n} "
            f"| {r['mean_completion_tokens']} | {r['mean_seconds']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="OpenAI base URL of a running server (default: start llama-server)")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--inputs", type=int, default=10)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--max-tokens", type=int, default=400)
    parser.add_argument("--frequency-penalty", type=float, default=0.5)
    parser.add_argument("--out", type=Path, help="write the JSON here too")
    args = parser.parse_args(argv)
    how = (args.inputs, args.temperature, args.model, args.max_tokens, args.frequency_penalty)
    if args.url:
        result = asyncio.run(measure(args.url, *how))
    else:
        from podium_localcluster.modelserver import LlamaServer, locate

        with LlamaServer(locate(), parallel=2, threads=1) as server:
            result = asyncio.run(measure(server.base_url, *how))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
