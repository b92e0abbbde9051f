"""Small deterministic agents for ``examples/agents.yaml`` (``podium.demo.agents:<function>``).

Each function gets the task (``.kind``, ``.input``) and does plausible, repeatable work for every task kind,
answering in the engine's output contract for the kind (``podium.engine.contracts``, also in
``task.output_schema``): ``plan`` returns tasks (or one part per team), ``review``/``evaluate`` return scores
0..10 (also as ``quality`` in [0, 1]), ``explore``/``propose`` improve on the best solution they are shown,
``synthesize`` merges into one answer. ``bid`` is left to the runtime's default (price from pricing, estimated
seconds from recent durations).

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
        for key in ("goal", "topic", "text", "problem", "question", "task", "description", "solution", "code", "draft"):
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


def _solution_of(value: Any, first: str = "solution") -> Any:
    """The candidate in a strategy's input: ``first`` if it is there, else the first of the usual keys that is set
    (peerToPeer sends ``solution: null`` until a proposal was applied, next to the ``proposal`` under review)."""
    if isinstance(value, dict):
        for key in (first, "solution", "proposal", "candidate", "output", "result"):
            if value.get(key) is not None:
                return value[key]
    return value


def _improve(problem: Any, best: Any, who: str, step: int) -> str:
    """A solution (``point; point; ...``) that covers one more of the problem's keywords than ``best``: converges
    in a few rounds."""
    wanted = keywords(_text(problem), limit=12)
    best_points = [p for p in best.split("; ") if p] if isinstance(best, str) else []
    covered = {p.split(":", 1)[0] for p in best_points}
    missing = [w for w in wanted if w not in covered]
    # Different agents start from different keywords, so explorers produce distinct candidates.
    if missing:
        pick = missing[(_digest(who) + step) % len(missing)]
        best_points.append(f"{pick}: addressed by {who}")
    return "; ".join(best_points) or f"nothing to add ({who})"


def _tenths(score: float) -> int:
    """A [0, 1] score as the contracts' 0..10."""
    return round(score * 10)


def _score(task_input: Any) -> float:
    problem = task_input.get("problem") or task_input.get("goal") if isinstance(task_input, dict) else None
    candidate = _solution_of(task_input, first="proposal")  # a review scores the proposal, not the current one
    return coverage(candidate, problem if problem is not None else _text(task_input))


def _common(kind: str, task_input: Any, who: str) -> dict[str, Any] | None:
    """Kinds every demo agent answers the same way."""
    if kind == "evaluate" and isinstance(task_input, dict) and isinstance(task_input.get("solutions"), list):
        # swarm: one score per candidate, in order.
        asked = _text(task_input)
        scores = [coverage(_solution_of(s), asked) for s in task_input["solutions"]]
        return {"output": {"scores": [_tenths(s) for s in scores]}, "quality": max(scores, default=0.0)}
    if kind in ("review", "evaluate"):
        score = _score(task_input)
        verdict = "good" if score >= 0.75 else "needs work" if score >= 0.4 else "poor"
        comment = f"{verdict}: covers {score:.0%} of the problem's keywords ({who})"
        return {"output": {"score": _tenths(score), "comment": comment}, "quality": score}
    if kind in ("explore", "propose"):
        problem = task_input.get("problem") or task_input.get("goal") if isinstance(task_input, dict) else task_input
        best = task_input.get("best") or task_input.get("solution") if isinstance(task_input, dict) else None
        if best is None and kind == "propose" and isinstance(task_input, dict) and task_input.get("input") is not None:
            best = _text(task_input["input"])  # peerToPeer improves the current solution: at first, the input itself
        step = int(task_input.get("generation") or task_input.get("round") or 0) if isinstance(task_input, dict) else 0
        solution = _improve(problem if problem is not None else task_input, _solution_of(best), who, step)
        return {
            "output": {"solution": solution},
            "quality": coverage(solution, problem if problem is not None else task_input),
        }
    if kind == "synthesize":
        return {"output": {"answer": synthesize_results(task_input, who)["summary"]}}
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


def plan_tasks(goal: str, max_tasks: int = 4, capabilities: set[str] | None = None) -> list[dict[str, Any]]:
    """research each facet of the goal, analyse the findings, then synthesise: the engine's plan contract
    (name, description, capabilities), asking only for ``capabilities`` the agents have (all when None)."""
    facets = [f for f in keywords(goal, limit=max(1, max_tasks - 2)) if re.fullmatch(r"[a-z][a-z0-9-]*[a-z0-9]", f)]

    def task(name: str, description: str, skill: str) -> dict[str, Any]:
        skills = [skill] if capabilities is None or skill in capabilities else []
        return {"name": name[:32].rstrip("-"), "description": description[:200], "capabilities": skills}

    tasks = [task(f"research-{f}", f"Collect facts about {f} for: {goal}", "research") for f in facets or ["goal"]]
    tasks.append(task("analyze", f"Analyse the findings for: {goal}", "analysis"))
    tasks.append(task("synthesize", f"Write the answer to: {goal}", "writing"))
    return tasks


def team_parts(goal: str, teams: list[str], per_team: int = 2) -> dict[str, list[str]]:
    """Each team's tasks (hierarchical's plan contract): the goal's facets dealt out in turn, one task each."""
    facets = keywords(goal, limit=max(len(teams) * per_team, 4)) or [goal[:40]]
    parts = {}
    for i, team in enumerate(teams):
        mine = (facets[i :: len(teams)] or facets[:1])[:per_team]
        parts[team] = [f"{facet}: its part in {goal[:200]}"[:300] for facet in mine]
    return parts


def _roster_capabilities(data: Any) -> set[str] | None:
    agents = data.get("agents") if isinstance(data, dict) else None
    if not isinstance(agents, list):
        return None
    return {c for a in agents if isinstance(a, dict) for c in (a.get("capabilities") or {})}


def planner(task: Any) -> Any:
    kind, data = str(task.kind), task.input
    goal = _text(data)
    if kind == "plan" and isinstance(data, dict) and isinstance(data.get("teams"), list):
        return {"assignments": team_parts(goal, [str(t) for t in data["teams"]])}
    if kind in ("plan", "execute"):
        limit = int(data.get("maxTasks", 4)) if isinstance(data, dict) else 4
        return {"tasks": plan_tasks(goal, max(limit, 3), _roster_capabilities(data))}
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
    if kind == "execute":
        return synthesize_results(data, "synthesizer")
    return _common(kind, data, "synthesizer")


def documenter(task: Any) -> Any:
    kind, data = str(task.kind), task.input
    if kind == "execute":
        text = _text(data)
        terms = keywords(text, limit=6)
        title = " ".join(t.capitalize() for t in terms[:3]) or "Summary"
        return {"title": title, "summary": text[:280], "keywords": terms}
    return _common(kind, data, "documenter")


for _fn in (planner, researcher, analyzer, synthesizer, documenter):
    _fn.kinds = NO_BID  # type: ignore[attr-defined]
