"""Each strategy's picture of a run: what its plan looked like and how far each part got. Pure.

The picture comes from the spec (the plan a user wrote), the step views (:mod:`podium.viewer.steps`, from the
journal) and the result. Step names are the strategies' own (``stage-<name>``, ``gen-<g>-explore-<agent>``, ...,
see :mod:`podium.engine.strategies`); where a name alone is ambiguous (names may hold dashes) the step's agent,
which the journal records, settles it. The strategies' pure parsers (scores, plans, review scores) are reused, so
the viewer reads an output exactly as the run did.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from podium.api.orchestration import MarketSpec, OrchestrationSpec, Target
from podium.engine import contracts
from podium.engine.graph import layers, sinks
from podium.viewer.steps import not_run

Steps = Mapping[str, dict[str, Any]]
Picture = dict[str, Any]
SYNTHESIS_NODE = ":synthesize"  # a colon cannot be in a task name, so it never clashes with one


def _get(steps: Steps, name: str, kind: str = "execute") -> dict[str, Any]:
    return steps.get(name) or not_run(name, kind)


def _target(target: Target) -> str:
    if target.agent:
        return f"agent {target.agent}"
    if target.role:
        return f"role {target.role}"
    return f"capability {target.capability}" if target.capability else "any agent"


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# --- pipeline: stages in order -----------------------------------------------------------------------------


def pipeline(spec: OrchestrationSpec, steps: Steps, result: Any) -> Picture:
    assert spec.pipeline is not None
    return {
        "kind": "stages",
        "stages": [
            {
                "name": s.name,
                "target": _target(s),
                "fallback": s.fallback,
                "retries": s.retries,
                "validated": s.validate_ is not None,
                "step": _get(steps, f"stage-{s.name}"),
            }
            for s in spec.pipeline.stages
        ],
    }


# --- eventDriven: the task graph ---------------------------------------------------------------------------


def _aggregate(views: list[dict[str, Any]]) -> str:
    """A task sent to several agents: running while any runs, succeeded when any succeeded, else failed."""
    states = {v["state"] for v in views}
    for state in ("Running", "Succeeded", "Failed", "Cancelled", "Skipped"):
        if state in states:
            return state
    return "Pending"


def event_driven(spec: OrchestrationSpec, steps: Steps, result: Any) -> Picture:
    assert spec.event_driven is not None
    tasks = spec.event_driven.tasks
    names = {t.name for t in tasks}
    deps = {t.name: list(t.depends_on) for t in tasks}
    depth = {n: i for i, layer in enumerate(layers(deps)) for n in layer}
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, str]] = []
    for task in tasks:
        single = steps.get(f"task-{task.name}")
        prefix = f"task-{task.name}-"
        fan = [
            v
            for key, v in steps.items()
            if key.startswith(prefix) and key[len("task-") :] not in names and key == prefix + str(v.get("agent"))
        ]
        views = [single] if single else sorted(fan, key=lambda v: str(v["agent"]))
        if task.agents:
            target = "agents " + ", ".join(task.agents)
        else:
            target = _target(Target(role=task.role, capability=task.capability)) + (" (all)" if task.fan_out else "")
        nodes.append(
            {
                "id": task.name,
                "label": task.name,
                "layer": depth[task.name],
                "target": target,
                "state": _aggregate(views) if views else "Pending",
                "steps": views,
            }
        )
        edges.extend({"from": d, "to": task.name} for d in task.depends_on)
    if spec.event_driven.synthesizer:
        last = max(depth.values(), default=-1) + 1
        view = _get(steps, "synthesize", "synthesize")
        target = f"agent {spec.event_driven.synthesizer}"
        node = {"id": SYNTHESIS_NODE, "label": "synthesize", "layer": last, "target": target, "steps": [view]}
        nodes.append({**node, "state": view["state"]})
        edges.extend({"from": s, "to": SYNTHESIS_NODE} for s in sinks(deps))
    return {"kind": "dag", "nodes": nodes, "edges": edges, "layers": max((n["layer"] for n in nodes), default=-1) + 1}


# --- swarm: scores per generation --------------------------------------------------------------------------

_EXPLORE = re.compile(r"gen-(\d+)-explore-(.+)")
_EVALUATE = re.compile(r"gen-(\d+)-evaluate")


def swarm(spec: OrchestrationSpec, steps: Steps, result: Any) -> Picture:
    assert spec.swarm is not None
    explorers: dict[int, list[dict[str, Any]]] = {}
    evaluations: dict[int, dict[str, Any]] = {}
    for key, view in steps.items():
        if (m := _EXPLORE.fullmatch(key)) and m.group(2) == view.get("agent"):
            explorers.setdefault(int(m.group(1)), []).append(view)
        elif m := _EVALUATE.fullmatch(key):
            evaluations[int(m.group(1))] = view
    generations, best_so_far = [], None
    for number in sorted(set(explorers) | set(evaluations)):
        # The evaluator scored the solutions in explorer order (agents sorted by name), failed explorers left out.
        found = sorted(explorers.get(number, []), key=lambda v: str(v["agent"]))
        solved = [v for v in found if v["state"] == "Succeeded"]
        evaluation = evaluations.get(number) or not_run(f"gen-{number}-evaluate", "evaluate")
        try:
            scores = contracts.read_scores(evaluation["output"]) if evaluation["state"] == "Succeeded" else []
        except (ValueError, KeyError, TypeError):
            scores = []  # an output cut for the page, or one the run rejected (and retried)
        scored = [{"agent": v["agent"], "score": s} for v, s in zip(solved, scores, strict=False)]
        best = max((s["score"] for s in scored), default=None)
        if best is not None:
            best_so_far = best if best_so_far is None else max(best_so_far, best)
        generations.append(
            {
                "generation": number,
                "explorers": [{"agent": v["agent"], "state": v["state"]} for v in found],
                "evaluator": evaluation["agent"],
                "evaluation": evaluation["state"],
                "scores": scored,
                "best": best,
                "bestSoFar": best_so_far,
            }
        )
    outcome = _mapping(result)
    return {
        "kind": "generations",
        "generations": generations,
        "maxGenerations": spec.swarm.max_generations,
        "targetScore": spec.swarm.target_score,
        "best": {"score": outcome.get("score"), "solution": outcome.get("best")} if "score" in outcome else None,
    }


# --- market: an auction table per task ---------------------------------------------------------------------

_BID = re.compile(r"(\d+)-bid-(.+)")


def _bid(view: dict[str, Any]) -> dict[str, Any]:
    out = _mapping(view["output"])
    if view["state"] != "Succeeded":
        return {"price": None, "seconds": None, "declined": False, "answered": False}
    price = out.get("price")
    return {
        "price": price if isinstance(price, int | float) and not isinstance(price, bool) else None,
        "seconds": out.get("estimatedSeconds", out.get("seconds")),
        "declined": bool(out.get("decline")),
        "answered": True,
    }


def _market_tasks(spec: MarketSpec, steps: Steps, result: Any) -> tuple[list[str], dict[str, Any]]:
    """The auctioned tasks' names and their sales: the spec's tasks, the planner's (from the result, or the steps
    while it runs), or the one task of the input."""
    sales = _mapping(result)
    if spec.integrator is not None:
        sales = _mapping(sales.get("tasks"))
    if spec.tasks:
        return [t.name for t in spec.tasks], sales
    if spec.planner is not None:
        return list(sales) or [key[len("task-") :] for key in steps if key.startswith("task-")], sales
    return ["task"], sales if spec.integrator is not None else {}


def market(spec: OrchestrationSpec, steps: Steps, result: Any) -> Picture:
    assert spec.market is not None
    names, sold = _market_tasks(spec.market, steps, result)
    auctions = []
    for name in names:
        prefix = f"auction-{name}-"
        bids = []
        for key, view in steps.items():
            m = _BID.fullmatch(key[len(prefix) :]) if key.startswith(prefix) else None
            if m and m.group(2) == view.get("agent"):
                bids.append({"agent": view["agent"], "round": int(m.group(1)), "state": view["state"], **_bid(view)})
        execution = _get(steps, f"task-{name}")
        sale = _mapping(sold.get(name))
        winner = sale.get("agent") or execution["agent"]
        win_round = sale.get("round") or max((b["round"] for b in bids), default=None)
        for b in bids:
            b["winner"] = b["agent"] == winner and b["round"] == win_round
        auctions.append(
            {
                "task": name,
                "rounds": sorted({b["round"] for b in bids}),
                "bids": sorted(bids, key=lambda b: (b["round"], b["price"] is None, b["price"] or 0.0, b["agent"])),
                "winner": winner,
                "price": sale.get("price"),
                "score": sale.get("score"),
                "execution": execution,
            }
        )
    return {"kind": "auctions", "auctions": auctions, "reservePrice": spec.market.reserve_price}


# --- peerToPeer: proposals and reviews per round -----------------------------------------------------------

_PROPOSE = re.compile(r"round-(\d+)-propose-(.+)")
_REVIEW = re.compile(r"round-(\d+)-review-(.+)")


def _score(view: dict[str, Any]) -> float | None:
    if view["state"] != "Succeeded":
        return None
    try:
        return contracts.read_review(view["output"])
    except (ValueError, KeyError, TypeError):  # an output cut for the page
        return None


def peer_to_peer(spec: OrchestrationSpec, steps: Steps, result: Any) -> Picture:
    assert spec.peer_to_peer is not None
    rounds: dict[int, dict[str, Any]] = {}

    def round_(n: int) -> dict[str, Any]:
        return rounds.setdefault(n, {"round": n, "proposals": [], "reviews": [], "applied": []})

    for key, view in steps.items():
        agent = str(view.get("agent"))
        if (m := _PROPOSE.fullmatch(key)) and m.group(2) == agent:
            round_(int(m.group(1)))["proposals"].append({"author": agent, "state": view["state"]})
        elif (m := _REVIEW.fullmatch(key)) and m.group(2).endswith(f"-by-{agent}"):
            author = m.group(2)[: -len(f"-by-{agent}")]
            review = {"author": author, "reviewer": agent, "state": view["state"], "score": _score(view)}
            round_(int(m.group(1)))["reviews"].append(review)
    for entry in _mapping(result).get("applied") or []:
        if isinstance(entry, dict) and isinstance(entry.get("round"), int):
            round_(entry["round"])["applied"] = [a.get("author") for a in entry.get("applied") or []]
    for r in rounds.values():
        scores: dict[str, list[float]] = {}
        for review in r["reviews"]:
            if review["score"] is not None:
                scores.setdefault(review["author"], []).append(review["score"])
        r["means"] = {a: sum(s) / len(s) for a, s in sorted(scores.items())}
        r["proposals"].sort(key=lambda p: p["author"])
        r["reviews"].sort(key=lambda v: (v["author"], v["reviewer"]))
    outcome = _mapping(result)
    return {
        "kind": "rounds",
        "rounds": [rounds[n] for n in sorted(rounds)],
        "maxRounds": spec.peer_to_peer.max_rounds,
        "minScore": spec.peer_to_peer.min_score,
        "score": outcome.get("score"),
    }


# --- centralCommand: the plan and who got each task --------------------------------------------------------


def central_command(spec: OrchestrationSpec, steps: Steps, result: Any) -> Picture:
    assert spec.central_command is not None
    plan = steps.get("plan")
    if spec.central_command.tasks is not None:
        planned = [(t.name, list(t.capabilities)) for t in spec.central_command.tasks]
    else:
        try:
            planned = [(t.name, list(t.capabilities)) for t in contracts.read_plan(plan["output"] if plan else None)]
        except (ValueError, KeyError, TypeError):  # no plan yet, or one cut for the page: the tasks that ran still show
            planned = sorted((k[len("task-") :], []) for k in steps if k.startswith("task-"))
    assignments = _mapping(_mapping(result).get("assignments"))
    return {
        "kind": "plan",
        "planner": plan,
        "tasks": [
            {
                "name": name,
                "capabilities": capabilities,
                "assigned": assignments.get(name) or (steps.get(f"task-{name}") or {}).get("agent"),
                "step": _get(steps, f"task-{name}"),
            }
            for name, capabilities in planned
        ],
    }


# --- hierarchical: coordinator, teams, integration ---------------------------------------------------------


_TEAM_STEP = re.compile(r"(\d+)-(research|analysis|synthesis)")


def _team_tasks(team: str, steps: Steps) -> list[dict[str, Any]]:
    """The team's tasks of the plan in order, each with its research, analysis and synthesis (one, pending, until
    its steps start)."""
    prefix = f"team-{team}-"
    found = {
        int(m.group(1)) for key in steps if key.startswith(prefix) and (m := _TEAM_STEP.fullmatch(key[len(prefix) :]))
    }
    return [
        {
            "task": n,
            "research": _get(steps, f"{prefix}{n}-research"),
            "analysis": _get(steps, f"{prefix}{n}-analysis"),
            "synthesis": _get(steps, f"{prefix}{n}-synthesis", "synthesize"),
        }
        for n in sorted(found) or [1]
    ]


def hierarchical(spec: OrchestrationSpec, steps: Steps, result: Any) -> Picture:
    assert spec.hierarchical is not None
    return {
        "kind": "teams",
        "plan": _get(steps, "plan", "plan"),
        "teams": [{"team": team, "tasks": _team_tasks(team, steps)} for team in spec.hierarchical.teams],
        "integrate": _get(steps, "integrate", "synthesize"),
    }


DRAW: dict[str, Callable[[OrchestrationSpec, Steps, Any], Picture]] = {
    "pipeline": pipeline,
    "eventDriven": event_driven,
    "swarm": swarm,
    "market": market,
    "peerToPeer": peer_to_peer,
    "centralCommand": central_command,
    "hierarchical": hierarchical,
}


def picture(spec: Mapping[str, Any], steps: Steps, result: Any) -> Picture:
    """The strategy's picture. Raises ValueError (pydantic's ValidationError is one) for a spec the API refuses."""
    parsed = OrchestrationSpec.model_validate(dict(spec))
    return DRAW[str(parsed.strategy)](parsed, steps, result)
