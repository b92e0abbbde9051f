"""Small deterministic agents for ``examples/agents.yaml`` (``podium.demo.agents:<function>``).

Each function gets the task (``.kind``, ``.input``) and does plausible, repeatable work for every task kind,
so strategies have agents that behave: ``plan`` returns a task list, ``review``/``evaluate`` return scores
(also as ``quality``), ``explore``/``propose`` improve on the best solution they are shown, ``synthesize``
merges. ``bid`` is left to the runtime's default (price from pricing, eta from recent durations).

Inputs are free JSON; these agents look for ``goal``/``topic``/``text``/``problem``/``solution``/``results``
and fall back to the input's JSON text, so any input produces a sensible answer.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]{2,}")
STOPWORDS = frozenset(
    "the and for with that this from into over under about what which when where how why are was were "
    "will can not but all any its our your their them they have has had been being use using".split()
)
NO_BID = frozenset({"execute", "plan", "propose", "review", "explore", "evaluate", "synthesize"})


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("goal", "topic", "text", "problem", "question", "task", "description", "solution", "code"):
            if isinstance(value.get(key), str):
                return str(value[key])
        # Strategies wrap the orchestration's input: {"input": {...}, "generation": 2, ...}.
        if "input" in value and value["input"] is not None:
            return _text(value["input"])
    return json.dumps(value, sort_keys=True)


def keywords(text: str, limit: int = 8) -> list[str]:
    """Distinct content words in order of first appearance."""
    seen: dict[str, None] = {}
    for word in WORD.findall(text.lower()):
        if word not in STOPWORDS:
            seen.setdefault(word, None)
    return list(seen)[:limit]


def _digest(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def coverage(solution: Any, problem: Any) -> float:
    """Share of the problem's keywords the solution mentions, in [0, 1]: the demo notion of quality."""
    wanted = keywords(_text(problem), limit=12)
    if not wanted:
        return 1.0
    body = json.dumps(solution).lower() if not isinstance(solution, str) else solution.lower()
    return round(sum(1 for w in wanted if w in body) / len(wanted), 4)


def _solution_of(value: Any) -> Any:
    if isinstance(value, dict):
        for key in ("solution", "proposal", "candidate", "output", "result"):
            if key in value:
                return value[key]
    return value


def _improve(problem: Any, best: Any, who: str, step: int) -> dict[str, Any]:
    """A proposal that covers one more of the problem's keywords than ``best``: converges in a few rounds."""
    wanted = keywords(_text(problem), limit=12)
    best_points = list(best.get("points", [])) if isinstance(best, dict) else []
    covered = {p.split(":", 1)[0] for p in best_points}
    missing = [w for w in wanted if w not in covered]
    # Different agents start from different keywords, so explorers produce distinct candidates.
    if missing:
        pick = missing[(_digest(who) + step) % len(missing)]
        best_points.append(f"{pick}: addressed by {who}")
    return {"points": best_points, "by": who}


def _score(task_input: Any) -> float:
    problem = task_input.get("problem") or task_input.get("goal") if isinstance(task_input, dict) else None
    candidate = _solution_of(task_input)
    return coverage(candidate, problem if problem is not None else _text(task_input))


def _common(kind: str, task_input: Any, who: str) -> dict[str, Any] | None:
    """Kinds every demo agent answers the same way."""
    if kind == "evaluate" and isinstance(task_input, dict) and isinstance(task_input.get("solutions"), list):
        # swarm: one score per candidate, in order.
        asked = _text(task_input)
        scores = [coverage(_solution_of(s), asked) for s in task_input["solutions"]]
        return {"output": {"scores": scores, "by": who}, "quality": max(scores, default=0.0)}
    if kind in ("review", "evaluate"):
        score = _score(task_input)
        verdict = "good" if score >= 0.75 else "needs work" if score >= 0.4 else "poor"
        return {"output": {"score": score, "quality": score, "verdict": verdict, "by": who}, "quality": score}
    if kind in ("explore", "propose"):
        problem = task_input.get("problem") or task_input.get("goal") if isinstance(task_input, dict) else task_input
        best = task_input.get("best") or task_input.get("solution") if isinstance(task_input, dict) else None
        step = int(task_input.get("generation") or task_input.get("round") or 0) if isinstance(task_input, dict) else 0
        proposal = _improve(problem if problem is not None else task_input, _solution_of(best), who, step)
        return {"output": proposal, "quality": coverage(proposal, problem if problem is not None else task_input)}
    if kind == "synthesize":
        return {"output": synthesize_results(task_input, who)}
    return None


def synthesize_results(task_input: Any, who: str) -> dict[str, Any]:
    results = task_input.get("results", task_input) if isinstance(task_input, dict) else task_input
    items = (
        list(results.values())
        if isinstance(results, dict)
        else list(results)
        if isinstance(results, list)
        else [results]
    )
    parts = [_text(item) for item in items if item is not None]
    return {"summary": " | ".join(p[:200] for p in parts), "sources": len(parts), "by": who}


def plan_tasks(goal: str, max_tasks: int = 4) -> list[dict[str, Any]]:
    """research each facet of the goal, analyse the findings, then synthesise: a small dependency graph.

    Each task is what centralCommand accepts (name, input, capabilities); the graph is in ``input.dependsOn``."""
    facets = keywords(goal, limit=max(1, max_tasks - 2)) or ["goal"]
    tasks: list[dict[str, Any]] = [
        {"name": f"research-{facet}", "capabilities": ["research"], "input": {"topic": facet, "goal": goal}}
        for facet in facets
    ]
    research = [t["name"] for t in tasks]
    tasks.append({"name": "analyze", "capabilities": ["analysis"], "input": {"goal": goal, "dependsOn": research}})
    tasks.append({"name": "synthesize", "capabilities": ["writing"], "input": {"goal": goal, "dependsOn": ["analyze"]}})
    for t in tasks:
        t["input"].setdefault("dependsOn", [])
    return tasks


def planner(task: Any) -> Any:
    kind, data = str(task.kind), task.input
    goal = _text(data)
    if kind in ("plan", "execute"):
        limit = int(data.get("maxTasks", 4)) if isinstance(data, dict) else 4
        return {"goal": goal, "tasks": plan_tasks(goal, max(limit, 3))}
    return _common(kind, data, "planner")


def researcher(task: Any) -> Any:
    kind, data = str(task.kind), task.input
    topic = _text(data)
    if kind == "execute":
        words = keywords(topic) or [topic[:40]]
        facts = [f"{w}: finding #{(_digest(w) % 90) + 10} about {w}" for w in words]
        return {"output": {"topic": topic, "facts": facts}, "quality": round(min(1.0, 0.5 + 0.1 * len(facts)), 4)}
    return _common(kind, data, "researcher")


def analyzer(task: Any) -> Any:
    kind, data = str(task.kind), task.input
    if kind == "execute":
        text = _text(data)
        words = WORD.findall(text)
        terms = keywords(text, limit=5)
        return {
            "words": len(words),
            "sentences": max(1, len(re.findall(r"[.!?]+", text))),
            "key_terms": terms,
            "insight": f"centres on {', '.join(terms[:3])}" if terms else "no content to analyse",
        }
    return _common(kind, data, "analyzer")


def synthesizer(task: Any) -> Any:
    kind, data = str(task.kind), task.input
    if kind in ("execute", "synthesize"):
        return synthesize_results(data, "synthesizer")
    return _common(kind, data, "synthesizer")


def documenter(task: Any) -> Any:
    kind, data = str(task.kind), task.input
    if kind in ("execute", "synthesize"):
        text = _text(data)
        terms = keywords(text, limit=6)
        title = " ".join(t.capitalize() for t in terms[:3]) or "Summary"
        return {"title": title, "summary": text[:280], "keywords": terms}
    return _common(kind, data, "documenter")


for _fn in (planner, researcher, analyzer, synthesizer, documenter):
    _fn.kinds = NO_BID  # type: ignore[attr-defined]
