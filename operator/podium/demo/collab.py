"""Small deterministic agents for ``examples/blackboard.yaml`` and ``examples/approval.yaml``
(``podium.demo.collab:<function>``): they work through the run's shared state and messages with the agent SDK
(``podium.agent.sdk``), so the examples show the blackboard, messages and approval without a model.

blackboard: an ``outliner`` writes the outline and announces it; two ``section_writer``s write their sections of
the one shared ``draft`` at the same time (the run's conflictResolution settles it: ``merge`` keeps both sections);
a ``tracker`` subscribed to ``section.done`` gets each announcement as a ``message`` task and counts it in
``progress``; the ``editor`` reads the draft and the messages and answers the article. Every function also
answers ``vote`` tasks (``conflictResolution: consensus``): it takes the proposal that holds the most sections.

approval: a ``drafter`` writes release notes, a person approves them (``podium run approve``), a ``publisher``
publishes what was approved.
"""

from __future__ import annotations

from typing import Any

from podium.agent import sdk

SECTIONS = ("intro", "details")


def _topic(task: Any) -> str:
    data = task.input if isinstance(task.input, dict) else {}
    inner = data.get("input")
    source: dict[str, Any] = inner if isinstance(inner, dict) else data
    return str(source.get("topic") or "the topic")


def _vote(task: Any) -> dict[str, Any]:
    """Keep the current value (0) unless a proposal holds more sections than it."""
    question = task.input
    best, most = 0, _sections(question.get("current"))
    for number, proposal in enumerate(question.get("proposals") or [], start=1):
        if _sections(proposal.get("value")) > most:
            best, most = number, _sections(proposal.get("value"))
    return {"choice": best, "reason": f"choice {best} holds {most} section(s)"}


def _sections(value: Any) -> int:
    return sum(1 for s in SECTIONS if isinstance(value, dict) and s in value)


def outliner(task: Any) -> Any:
    if str(task.kind) == "vote":
        return _vote(task)
    outline = {"topic": _topic(task), "sections": list(SECTIONS)}
    sdk.write("outline", outline)
    sdk.publish("outline.ready", {"sections": len(SECTIONS)})
    return outline


def section_writer(task: Any) -> Any:
    if str(task.kind) == "vote":
        return _vote(task)
    section = str(task.input.get("task", "intro"))
    outline = sdk.read("outline", {})
    draft = sdk.read("draft", {})
    text = f"{section.capitalize()}: what a reader needs to know about {outline.get('topic', 'the topic')}."
    # Both writers start from the same draft: their writes conflict and the run's policy settles them.
    sdk.write("draft", {**draft, section: text, "lastSection": section})
    sdk.publish("section.done", {"section": section})
    return {"section": section, "words": len(text.split())}


def tracker(task: Any) -> Any:
    if str(task.kind) == "vote":
        return _vote(task)
    done = list(sdk.read("progress", {}).get("done", []))
    for message in task.input.get("messages", []) if str(task.kind) == "message" else sdk.messages():
        if message.get("type") == "section.done":
            done.append(message["payload"]["section"])
    sdk.write("progress", {"done": sorted(set(done)), "of": len(SECTIONS)})
    return {"done": sorted(set(done))}


def editor(task: Any) -> Any:
    if str(task.kind) == "vote":
        return _vote(task)
    draft = sdk.read("draft", {})
    outline = sdk.read("outline", {"sections": list(SECTIONS)})
    parts = [draft[s] for s in outline.get("sections", []) if s in draft]
    heard = sorted({f"{m['type']} from {m['sender']}" for m in sdk.messages()})
    return {"article": "\n\n".join(parts), "sections": len(parts), "heard": heard}


def drafter(task: Any) -> Any:
    changes = task.input.get("changes", []) if isinstance(task.input, dict) else []
    lines = [f"- {c}" for c in changes] or ["- maintenance release"]
    return {"version": task.input.get("version", "0.0.0"), "notes": "\n".join(lines)}


def publisher(task: Any) -> Any:
    return {"published": task.input.get("version"), "notes": task.input.get("notes")}
