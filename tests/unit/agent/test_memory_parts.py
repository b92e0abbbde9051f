"""What of its memory an agent is shown (podium.agent.memory) and how the store keeps it in bounds."""

from __future__ import annotations

from typing import Any

from podium.agent.backends.llm_prompts import build_messages
from podium.agent.memory import estimate_tokens, run_of, shown, step_of, turn_of
from podium.dataplane.memory import Turn, clip, over_cap
from podium.dataplane.messages import Task


def turn(name: str, chars: int = 30, run: str = "r") -> Turn:
    return Turn(run=run, step=name, kind="execute", input=name + "x" * (chars - len(name)), output="ok")


def test_the_newest_turns_that_fit_are_shown_oldest_first_this_runs_before_earlier_runs() -> None:
    run = [turn("c"), turn("b"), turn("a")]  # newest first, as read
    earlier = [turn("z", run="old")]
    each = estimate_tokens(run[0])
    assert [t.step for t in shown(run, earlier, 4 * each)] == ["z", "a", "b", "c"]
    assert [t.step for t in shown(run, earlier, 2 * each)] == ["b", "c"]
    assert shown(run, earlier, each - 1) == []
    # The first turn that does not fit ends the list: an older, smaller one is not slipped in after it.
    assert [t.step for t in shown([turn("c"), turn("big", 3000), turn("a")], [], 3 * each)] == ["c"]


def test_a_turn_keeps_what_the_model_read_and_what_it_answered() -> None:
    task = Task(id="u:s2:1", kind="review", input={"draft": "Podium"}, namespace="n", agent="a",
                orchestration="n/run", meta={"uid": "u", "step": "s2"})  # fmt: skip
    remembered = turn_of(task, {"score": 7}, 5.0)
    assert (remembered.run, remembered.step, remembered.kind) == ("u", "s2", "review")
    assert (remembered.input, remembered.output) == ("Draft: Podium", '{"score": 7}')
    outside = Task(id="t", kind="execute", input="hi", namespace="n", agent="a", meta={"uid": "u"})
    assert run_of(outside) == "" and step_of(outside) == "t"  # no orchestration: no run turns


def test_remembered_turns_come_between_the_system_prompt_and_the_task() -> None:
    messages: list[dict[str, Any]] = build_messages("Be brief.", {"q": "now?"}, None, history=[("Q: before?", "yes")])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1:3] == [{"role": "user", "content": "Q: before?"}, {"role": "assistant", "content": "yes"}]
    tools = build_messages(None, "x", None, tools="You can call these tools: ...")
    assert tools[0] == {"role": "system", "content": "You can call these tools: ..."}


def test_the_store_keeps_the_newest_entries_within_the_cap_and_shortens_one_too_big() -> None:
    assert over_cap([("3", 100), ("2", 100), ("1", 100)], 250) == ["1"]
    assert over_cap([("3", 300), ("2", 10)], 250) == ["3", "2"]
    big = Turn("r", "s", "execute", "i" * 5000, "o" * 5000)
    small = clip(big, 1000)
    assert small.size <= 1000 and small.output == big.output[: len(small.output) - 3] + "..." and small.input == ""
