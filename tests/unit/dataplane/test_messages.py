"""Task/Result wire format and the key schema: round trips, and clear errors for bad input."""

from __future__ import annotations

import fnmatch
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podium.dataplane.keys import AgentKeys, OrchestrationKeys, split_ref
from podium.dataplane.messages import MalformedMessage, PayloadTooLarge, Result, Task, TaskKind

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(payload=json_values, attempt=st.integers(1, 50))
def test_task_round_trips_any_json_input(payload: object, attempt: int) -> None:
    task = Task(id="t-1", kind=TaskKind.REVIEW, input=payload, namespace="ns", agent="a", attempt=attempt)
    back = Task.from_json(task.to_json())
    assert back == Task(**{**task.__dict__, "kind": "review"})


def test_result_round_trips() -> None:
    result = Result(task_id="t", attempt=2, ok=False, output=None, error="boom", quality=0.5, tokens=3, cost=0.1)
    assert Result.from_json(result.to_json()) == result
    throttled = Result(task_id="t", attempt=1, ok=False, error="429", error_type="throttled", retry_after=3.0)
    assert Result.from_json(throttled.to_json()) == throttled
    assert "error_type" not in result.to_dict()  # only failures that need one carry it


def test_the_output_schema_travels_with_the_task() -> None:
    schema = {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}
    task = Task(id="t-1", kind="review", input="x", namespace="ns", agent="a", output_schema=schema)
    assert Task.from_json(task.to_json()).output_schema == schema
    plain = Task(id="t-1", kind="execute", input="x", namespace="ns", agent="a")
    assert b"output_schema" not in plain.to_json() and Task.from_json(plain.to_json()).output_schema is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"kind": "execute"}', "no field 'id'"),
        (b'{"id": "x", "kind": "execute", "namespace": "n", "agent": "a"}', "no field 'input'"),
        (b'{"id": "x", "kind": "execute", "input": 1, "namespace": "n"}', "no field 'agent'"),
        (b'{"id": "x", "kind": "", "input": 1, "namespace": "n", "agent": "a"}', "'kind' must not be empty"),
        (b'{"id": "x", "kind": "e", "input": 1, "namespace": "n", "agent": "a", "attempt": 0}', "'attempt'"),
        (b'{"id": "x", "kind": "e", "input": 1, "namespace": "n", "agent": "a", "meta": []}', "'meta'"),
        (b'{"id": "x", "kind": "e", "input": 1, "namespace": "n", "agent": "a", "timeout_seconds": -1}', "> 0"),
        (b'{"id": "x", "kind": "e", "input": 1, "namespace": "n", "agent": "a", "output_schema": []}', "an object"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_malformed_task_says_why(raw: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        Task.from_json(raw)


def test_malformed_result_says_why() -> None:
    with pytest.raises(MalformedMessage, match="'ok' must be true or false"):
        Result.from_json(json.dumps({"task_id": "t", "attempt": 1, "ok": "yes"}))


def test_non_json_input_is_refused_at_encode_time() -> None:
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        Task(id="t", kind="execute", input=object(), namespace="n", agent="a").to_json()
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        Task(id="t", kind="execute", input=float("nan"), namespace="n", agent="a").to_json()


def test_payload_too_large_names_size_limit_and_knob() -> None:
    message = str(PayloadTooLarge("t-9", 2_000_000, 1_048_576))
    assert "2000000" in message and "1048576" in message and "max_payload_bytes" in message


def test_agent_keys_share_one_hash_tag() -> None:
    keys = AgentKeys("team-a", "reviewer")
    all_keys = [keys.inbox, keys.results, keys.heartbeats, keys.dlq, keys.direct, keys.result("x")]
    assert {k.split("}")[0] + "}" for k in all_keys} == {"podium:{team-a/agent/reviewer}"}
    assert OrchestrationKeys.of("team-a/release").events == "podium:{team-a/run/release}:events"


def test_an_agent_and_an_orchestration_of_one_name_share_no_key_prefix() -> None:
    agent, run = AgentKeys("ns", "x"), OrchestrationKeys("ns", "x")
    assert not agent.prefix.startswith(run.prefix) and not run.prefix.startswith(agent.prefix)
    # Each purge pattern matches only its own kind's keys.
    agent_keys = [agent.inbox, agent.result("u"), agent.stats]
    run_keys = [run.events, run.result("u"), run.journal("u"), run.budget, run.state]
    assert all(fnmatch.fnmatchcase(k, agent.pattern) for k in agent_keys)
    assert not any(fnmatch.fnmatchcase(k, agent.pattern) for k in run_keys)
    assert all(fnmatch.fnmatchcase(k, run.pattern) for k in run_keys)
    assert not any(fnmatch.fnmatchcase(k, run.pattern) for k in agent_keys)


@pytest.mark.parametrize("bad", ["", "a/b", "a{b", "a*", "a b", "-x"])
def test_bad_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a valid name"):
        _ = AgentKeys("ns", bad).inbox


def test_split_ref_needs_namespace_and_name() -> None:
    assert split_ref("ns/orch") == ("ns", "orch")
    with pytest.raises(ValueError, match="<namespace>/<name>"):
        split_ref("orch")
