"""What a task is told of its run's budget (podium.engine.budget.allowance)."""

from __future__ import annotations

from podium.api.orchestration import Limits
from podium.dataplane.allowance import Allowance
from podium.engine.budget import Usage, allowance


def test_a_task_carries_what_is_left_of_each_limit_that_is_set() -> None:
    limits = Limits.model_validate({"maxTokens": 1000, "maxCost": 2.0})
    assert allowance(limits, Usage(tokens=400, cost=0.5)) == Allowance(tokens=600, cost=1.5)
    assert allowance(limits, Usage(tokens=1500, cost=3.0)) == Allowance(tokens=0, cost=0.0)
    assert allowance(Limits(), Usage(tokens=5)) == Allowance()
