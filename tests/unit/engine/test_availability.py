"""Whether an agent can take work: decided per agent, from what the directory knows of it."""

from __future__ import annotations

from typing import Any

from podium.engine.availability import State, blocked, of, usable
from podium.engine.directory import AgentInfo


def agent(name: str = "a", **facts: Any) -> AgentInfo:
    return AgentInfo(name=name, role="worker", **facts)


def test_ready_replicas_make_an_agent_available() -> None:
    assert of(agent(replicas=2, ready_replicas=1)).state is State.AVAILABLE


def test_an_autoscaled_agent_at_zero_is_woken_not_passed_over() -> None:
    at_zero = of(agent(replicas=0, ready_replicas=0, autoscaled=True))
    assert at_zero.state is State.WAKING and "autoscaler starts one" in at_zero.reason
    scaling = of(agent(replicas=1, ready_replicas=0, autoscaled=True))
    assert scaling.state is State.WAKING and "starting a replica" in scaling.reason


def test_a_new_agent_starting_its_first_replicas_is_worth_a_wait() -> None:
    assert of(agent(replicas=1, ready_replicas=0, starting=True)).state is State.WAKING


def test_unavailable_agents_say_why() -> None:
    zero = of(agent(replicas=0, ready_replicas=0))
    assert zero.state is State.UNAVAILABLE and "without spec.autoscaling" in zero.reason
    drained = of(agent(replicas=2, ready_replicas=2, maintenance=True))
    assert drained.state is State.UNAVAILABLE and "maintenance" in drained.reason
    lost = of(agent(replicas=2, ready_replicas=0))
    assert lost.state is State.UNAVAILABLE and "none of its 2 replicas is ready" in lost.reason
    # Maintenance wins even over autoscaling: a drained agent is not woken.
    assert of(agent(replicas=0, ready_replicas=0, autoscaled=True, maintenance=True)).state is State.UNAVAILABLE


def test_usable_keeps_order_and_drops_only_the_unavailable() -> None:
    agents = [
        agent("down", replicas=0, ready_replicas=0),
        agent("up"),
        agent("waking", replicas=0, ready_replicas=0, autoscaled=True),
    ]
    assert [a.name for a in usable(agents)] == ["up", "waking"]


def test_only_work_left_to_unavailable_critical_agents_blocks_a_run() -> None:
    gate = agent("gate", replicas=0, ready_replicas=0, priority="critical")
    extra = agent("extra", replicas=0, ready_replicas=0, priority="optional")
    backup = agent("backup")
    assert blocked([("stage 'check'", [gate])]) == (
        "stage 'check' needs critical agent 'gate', which is unavailable: scaled to zero replicas, without "
        "spec.autoscaling to wake it"
    )
    assert blocked([("stage 'check'", [gate, backup])]) is None  # the step goes to the next suitable agent
    assert blocked([("stage 'extra'", [extra])]) is None  # non-critical work degrades when the run gets there
    woken = agent("gate", replicas=0, ready_replicas=0, priority="critical", autoscaled=True)
    assert blocked([("stage 'check'", [woken])]) is None  # woken by the work, waited for
    assert blocked([("nothing", [])]) is None
