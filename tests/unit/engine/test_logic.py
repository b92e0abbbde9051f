import pytest

from podium.api.agent import PerformanceTargets
from podium.api.orchestration import Limits
from podium.engine.budget import BudgetExceeded, Usage, check
from podium.engine.context import TaskFailed
from podium.engine.convergence import reached, round_converged, stalled_generations, swarm_converged
from podium.engine.degradation import Verdict, assess, partial_verdict
from podium.engine.graph import CycleError, downstream, layers, ready, sinks
from podium.engine.stats import PerfStats, next_reputation, recommendation

DEPS = {"fetch": [], "parse": ["fetch"], "lint": ["parse"], "test": ["parse"], "report": ["lint", "test"]}


def test_layers_order_tasks_after_their_dependencies() -> None:
    assert layers(DEPS) == [["fetch"], ["parse"], ["lint", "test"], ["report"]]


def test_cycles_and_unknown_dependencies_are_errors() -> None:
    with pytest.raises(CycleError, match="a, b"):
        layers({"a": ["b"], "b": ["a"], "c": []})
    with pytest.raises(ValueError, match="unknown tasks: nope"):
        layers({"a": ["nope"]})


def test_ready_downstream_and_sinks() -> None:
    assert ready(DEPS, finished={"fetch", "parse"}, started={"fetch", "parse"}) == ["lint", "test"]
    assert downstream(DEPS, "parse") == {"lint", "test", "report"}
    assert sinks(DEPS) == ["report"]


def test_swarm_converges_after_patience_generations_without_improvement() -> None:
    assert stalled_generations([0.2, 0.5, 0.505, 0.507], threshold=0.01) == 2
    assert not swarm_converged([0.2, 0.5, 0.505], 0.01, patience=2)
    assert swarm_converged([0.2, 0.5, 0.505, 0.507], 0.01, patience=2)
    assert not swarm_converged([0.2, 0.5, 0.505, 0.6], 0.01, patience=2)  # improvement resets patience
    assert reached(0.9, 0.9) and not reached(0.89, 0.9) and not reached(0.99, None)


def test_round_converged() -> None:
    assert round_converged(0.7, None, 0.01)  # nothing applied
    assert not round_converged(None, 0.5, 0.01)
    assert round_converged(0.5, 0.505, 0.01) and not round_converged(0.5, 0.6, 0.01)


def test_degradation_by_priority() -> None:
    assert assess(["optional"]) is Verdict.DEGRADE
    assert assess(["important", "optional"]) is Verdict.DEGRADE
    assert assess(["optional", "critical"]) is Verdict.FAIL
    assert partial_verdict(3, 0) is None
    assert partial_verdict(1, 2) is Verdict.DEGRADE
    assert partial_verdict(0, 2) is Verdict.FAIL


@pytest.mark.parametrize(
    ("usage", "limit"),
    [
        (Usage(elapsed=10), "timeoutSeconds"),
        (Usage(tasks=5), "maxTasks"),
        (Usage(cost=1.0), "maxCost"),
        (Usage(tokens=100), "maxTokens"),
    ],
)
def test_budget_check_names_the_limit_hit(usage: Usage, limit: str) -> None:
    limits = Limits(timeout_seconds=10, max_tasks=5, max_cost=1.0, max_tokens=100)
    with pytest.raises(BudgetExceeded) as exc:
        check(limits, usage)
    assert exc.value.limit == limit and limit in str(exc.value)
    check(limits, Usage(tasks=4, cost=0.99, tokens=99, elapsed=9.9))


TARGETS = PerformanceTargets()


def test_recommendation_follows_the_patterns_rules_in_order() -> None:
    assert (TARGETS.min_success_rate, TARGETS.max_average_seconds, TARGETS.min_quality) == (0.8, 30.0, 0.7)
    assert recommendation(PerfStats(), TARGETS) == "no data yet"
    fine = PerfStats(completed=10, total_ms=10 * 2000.0, quality_sum=8.0, quality_n=10)
    assert recommendation(fine, TARGETS) == "Agent performing within acceptable parameters"
    failing = PerfStats(completed=7, failed=3, total_ms=10 * 2000.0)
    assert recommendation(failing, TARGETS) == ("Agent requires attention - high failure rate (success rate 70% < 80%)")
    slow = PerfStats(completed=4, total_ms=4 * 45_000.0)
    assert recommendation(slow, TARGETS) == "Agent performance is slow - consider optimization (average 45.0s > 30s)"
    poor = PerfStats(completed=2, total_ms=2000.0, quality_sum=1.2, quality_n=2)
    assert recommendation(poor, TARGETS) == "Agent output quality is below threshold (average 0.60 < 0.7)"
    # The first rule that applies wins: failing and slow and poor reads as failing.
    worst = PerfStats(completed=1, failed=4, total_ms=5 * 60_000.0, quality_sum=0.1, quality_n=1)
    assert recommendation(worst, TARGETS).startswith("Agent requires attention")
    # At exactly the threshold an agent is within parameters (the rules are strict inequalities, as the pattern's).
    edge = PerfStats(completed=8, failed=2, total_ms=10 * 30_000.0, quality_sum=0.7, quality_n=1)
    assert recommendation(edge, TARGETS) == "Agent performing within acceptable parameters"


def test_recommendation_thresholds_are_the_agents_own() -> None:
    slow = PerfStats(completed=4, total_ms=4 * 45_000.0, quality_sum=3.2, quality_n=4)
    patient = PerformanceTargets(max_average_seconds=60)
    assert recommendation(slow, patient) == "Agent performing within acceptable parameters"
    strict = PerformanceTargets(min_success_rate=0.99, max_average_seconds=60)
    assert recommendation(PerfStats(completed=98, failed=2), strict).startswith("Agent requires attention")
    assert recommendation(slow, PerformanceTargets(max_average_seconds=60, min_quality=0.9)).startswith(
        "Agent output quality is below threshold"
    )


def test_reputation_and_expected_success() -> None:
    assert PerfStats().expected_success == 0.5
    assert next_reputation(None, True, None) > 0.5 > next_reputation(None, False, None)
    assert next_reputation(0.5, True, 0.2) < 0.5


def test_a_failed_step_says_each_different_error_once_with_how_often_it_came() -> None:
    unreachable = "w1: llm: cannot reach http://127.0.0.1:9/v1"
    failed = TaskFailed("critique", [unreachable] * 3, ["important"])
    assert str(failed) == f"step 'critique' failed: {unreachable} (3 times)"
    mixed = TaskFailed("critique", ["w1: timeout", unreachable, unreachable, "w2: bad output", "w2: bad output"], [])
    assert str(mixed) == f"step 'critique' failed: w1: timeout; {unreachable} (2 times); w2: bad output (2 times)"
