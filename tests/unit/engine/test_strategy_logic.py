import pytest

from podium.api.common import LabelSelector
from podium.api.orchestration import AssignmentWeights, MarketSpec, MarketTask, PlannedTask, Target
from podium.dataplane.messages import Result
from podium.engine.directory import AgentDirectory, AgentInfo, TeamInfo, UnknownAgent
from podium.engine.strategies import StrategyFailed, get
from podium.engine.strategies.central_command import assign, parse_plan
from podium.engine.strategies.hierarchical import assignments
from podium.engine.strategies.market import parse_bid, reserve
from podium.engine.strategies.peer_to_peer import apply, review_score, select
from podium.engine.strategies.pipeline import schema_validator, stage_input
from podium.engine.strategies.swarm import parse_scores, top_k


def a(name: str, role: str = "worker", **caps: float) -> AgentInfo:
    return AgentInfo(name=name, role=role, capabilities=caps, labels={"tier": role})


def test_directory_lookups_by_name_role_capability_team_and_selector() -> None:
    d = AgentDirectory(
        [a("x", "coder", python=0.9), a("y", "reviewer", python=0.5), a("z", "coder")],
        [TeamInfo("core", ("x", "y", "ghost"), lead="y")],
    )
    assert [i.name for i in d.by_role("coder")] == ["x", "z"]
    assert [i.name for i in d.by_capability("python")] == ["x", "y"]
    assert [i.name for i in d.in_team("core")] == ["x", "y"]  # members that do not exist are left out
    assert [i.name for i in d.matching(LabelSelector(match_labels={"tier": "coder"}))] == ["x", "z"]
    assert [i.name for i in d.resolve(Target(capability="python"))] == ["x", "y"]
    assert [i.name for i in d.scoped(team="core").all()] == ["x", "y"] and d.lead("core") == "y"
    with pytest.raises(UnknownAgent, match="'nope'"):
        d.get("nope")


def test_stage_input_merges_stage_input_over_previous_output() -> None:
    assert stage_input({"a": 1, "b": 1}, {"b": 2}) == {"a": 1, "b": 2}
    assert stage_input("text", None) == "text"
    assert stage_input("text", {"mode": "x"}) == {"previous": "text", "stage": {"mode": "x"}}


def test_schema_validator_names_the_failing_field_and_rejects_bad_schemas() -> None:
    check = schema_validator({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}, "s")
    assert check({"n": 1}) is None
    assert "n: 'x' is not of type 'integer'" in (check({"n": "x"}) or "")
    assert "'n' is a required property" in (check({}) or "")
    with pytest.raises(StrategyFailed, match=r"stage 's'.*not a valid JSON Schema"):
        schema_validator({"type": "nonsense"}, "s")


def test_hierarchical_plan_shapes() -> None:
    assert assignments({"assignments": {"a": 1, "b": 2}}, ["a", "b"], "in") == {"a": 1, "b": 2}
    assert assignments({"a": 1, "b": 2, "c": 3}, ["a", "b"], "in") == {"a": 1, "b": 2}
    assert assignments([1, 2], ["a", "b"], "in") == {"a": 1, "b": 2}
    assert assignments("do it", ["a"], "in") == {"a": {"input": "in", "plan": "do it"}}


def test_swarm_scores_and_top_k() -> None:
    assert parse_scores([0.5, 2, -1], 3) == [0.5, 1.0, 0.0]
    assert parse_scores({"scores": [{"score": 0.3}]}, 1) == [0.3]
    with pytest.raises(ValueError, match="expected 2 scores"):
        parse_scores([0.1], 2)
    with pytest.raises(ValueError, match="not a number"):
        parse_scores(["high"], 1)
    pool = [{"score": 0.2, "id": 1}, {"score": 0.9, "id": 2}, {"score": 0.5, "id": 3}]
    assert [s["id"] for s in top_k(pool, 2)] == [2, 3]


def test_central_command_plan_and_assignment() -> None:
    assert [t.name for t in parse_plan({"tasks": [{"name": "a"}, {"name": "b", "capabilities": ["go"]}]})] == ["a", "b"]
    with pytest.raises(ValueError, match="unique"):
        parse_plan([{"name": "a"}, {"name": "a"}])
    with pytest.raises(ValueError, match="non-empty list"):
        parse_plan("just do it")
    agents = [a("py", python=1.0), a("go", go=1.0), a("both", python=0.6, go=0.6)]
    tasks = [PlannedTask(name="p", capabilities=["python"]), PlannedTask(name="g", capabilities=["go"])]
    table = assign(tasks, agents, {}, AssignmentWeights())
    assert table["p"][0] == "py" and "go" not in table["p"]  # no python at all: not a candidate
    assert table["g"][0] == "go"


def test_central_command_weights_change_the_choice() -> None:
    agents = [AgentInfo("skilled", "w", {"x": 1.0}, load=1.0), AgentInfo("idle", "w", {"x": 0.5}, load=0.0)]
    task = [PlannedTask(name="t", capabilities=["x"])]
    assert assign(task, agents, {}, AssignmentWeights())["t"][0] == "skilled"
    assert assign(task, agents, {}, AssignmentWeights(capability=0.1, performance=0.1, load=0.8))["t"][0] == "idle"


def test_peer_to_peer_selection_and_application() -> None:
    assert select({"a": [0.9, 0.7], "b": [0.4], "c": [0.95]}, 2, 0.5) == [("c", 0.95), ("a", pytest.approx(0.8))]
    assert select({"a": [0.1]}, 1, 0.5) == []
    assert apply({"x": 0}, [{"x": 2}, {"x": 1, "y": 1}]) == {"x": 2, "y": 1}  # the best wins conflicts
    assert apply("old", ["new", "other"]) == "new"
    assert review_score(Result("t", 1, True, output={"score": 1.7})) == 1.0
    assert review_score(Result("t", 1, True, output="fine", quality=0.4)) == 0.4


def test_market_bid_parsing_and_reserve() -> None:
    agent = AgentInfo("m", "w")
    assert parse_bid(agent, {"price": 2, "estimatedSeconds": 3}, 1.0, 0.5) is not None
    assert parse_bid(agent, {"decline": True}, 1.0, 0.5) is None
    assert parse_bid(agent, {"price": -1}, 1.0, 0.5) is None
    assert parse_bid(agent, "yes", 1.0, 0.5) is None
    spec = MarketSpec(reserve_price=5.0)
    assert reserve(spec, MarketTask(name="t", max_price=3.0)) == 3.0
    assert reserve(spec, MarketTask(name="t")) == 5.0
    assert reserve(MarketSpec(), MarketTask(name="t")) is None


def test_unknown_strategy_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown strategy 'mesh'"):
        get("mesh")
