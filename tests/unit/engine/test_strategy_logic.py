import pytest

from podium.api.common import LabelSelector
from podium.api.orchestration import AssignmentWeights, MarketSpec, MarketTask, PlannedTask, Stage, Target
from podium.engine.directory import AgentDirectory, AgentInfo, TeamInfo, UnknownAgent
from podium.engine.strategies import StrategyFailed, get, work_input
from podium.engine.strategies.central_command import assign
from podium.engine.strategies.market import parse_bid, reserve
from podium.engine.strategies.peer_to_peer import apply, select
from podium.engine.strategies.pipeline import stage_contract, stage_input
from podium.engine.strategies.swarm import top_k


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


def test_a_stage_schema_becomes_the_contract_its_tasks_carry() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    contract = stage_contract(Stage.model_validate({"name": "s", "agent": "a", "validate": {"jsonSchema": schema}}))
    assert contract is not None and contract.kind == "execute" and contract.schema == schema
    assert contract.error({"n": 1}) is None
    assert contract.error({"n": "x"}) == "field 'n' must be integer, got string \"x\""
    assert contract.error({}) == "missing field 'n'"
    assert stage_contract(Stage(name="s", agent="a")) is None
    bad = Stage.model_validate({"name": "s", "agent": "a", "validate": {"jsonSchema": {"type": "nonsense"}}})
    with pytest.raises(StrategyFailed, match=r"stage 's': validate.jsonSchema is not a valid JSON Schema"):
        stage_contract(bad)


def test_swarm_top_k() -> None:
    pool = [{"score": 0.2, "id": 1}, {"score": 0.9, "id": 2}, {"score": 0.5, "id": 3}]
    assert [s["id"] for s in top_k(pool, 2)] == [2, 3]


def test_planned_work_carries_the_task_description() -> None:
    described = PlannedTask(name="t", description="count the words")
    assert work_input(described, "text") == {"input": "text", "task": "t", "description": "count the words"}
    assert work_input(PlannedTask(name="t", input={"n": 1}), "text") == {"input": {"n": 1}, "task": "t"}


def test_central_command_assignment() -> None:
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


def test_market_bid_parsing_and_reserve() -> None:
    agent = AgentInfo("m", "w")
    made = parse_bid(agent, {"price": 2, "estimatedSeconds": 3}, 1.0, 0.5)
    assert made is not None and (made.price, made.seconds) == (2.0, 3.0)
    assert parse_bid(agent, {"decline": True}, 1.0, 0.5) is None
    spec = MarketSpec(reserve_price=5.0)
    assert reserve(spec, MarketTask(name="t", max_price=3.0)) == 3.0
    assert reserve(spec, MarketTask(name="t")) == 5.0
    assert reserve(MarketSpec(), MarketTask(name="t")) is None


def test_unknown_strategy_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown strategy 'mesh'"):
        get("mesh")
