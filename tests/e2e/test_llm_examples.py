"""The examples as `make demo` runs them, with real language-model agents: the chart installed with its model server
(llama-server and SmolLM2-135M-Instruct as a pod), examples/agents.yaml and teams.yaml pointed at it, and the seven
example Orchestrations submitted at once, as the demo does.

What a 135M model can guarantee is asserted, not what it says: every run succeeds; every answer a strategy asked for
in a contract honours it (read back from the run's journal); tokens and cost are counted in each Orchestration's
status; and a `maxTokens` budget stops a run that would go on, naming the limit. The agents answer at temperature 0
with a fixed seed (examples/agents.yaml).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from podium.dataplane.keys import OrchestrationKeys
from podium.dataplane.records import Entry, decode_entry
from podium.engine import contracts
from podium_localcluster.modelserver import MODEL_ALIAS, locate
from tests.support.examples import STRATEGY_FILES

from .conftest import ClusterHandle
from .helpers import ROOT, Release, diagnose, get, installed_with_model_server, wait_for

EXAMPLES = ROOT / "examples"
FILES = STRATEGY_FILES
BUDGET = 1500  # tokens: a few model calls, far less than the run below would take
BUDGET_RUN = "budget-stop"
ENDPOINT = "endpoints/hosted-api.yaml"  # docs/model-server.md's walk-through: Secret, Agent, Orchestration
ENDPOINT_RUN = "first-summary"


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d]


def pointed_at(docs: list[dict[str, Any]], base_url: str) -> list[dict[str, Any]]:
    """``docs`` with every llm Agent pointed at ``base_url`` and the model server's model (the demo's release, or a
    hosted API, is another endpoint)."""
    for doc in docs:
        llm = doc["spec"]["backend"].get("llm") if doc["kind"] == "Agent" else None
        if llm is not None:
            llm["baseURL"], llm["model"] = base_url, MODEL_ALIAS
    return docs


def example_agents(base_url: str) -> list[dict[str, Any]]:
    return pointed_at(documents("agents.yaml"), base_url)


def budget_run() -> dict[str, Any]:
    """The swarm example with twenty generations and no convergence: only the token budget can stop it."""
    (doc,) = documents(FILES["swarm"])
    doc["metadata"]["name"] = BUDGET_RUN
    doc["spec"]["swarm"] |= {"maxGenerations": 20, "convergence": {"threshold": 0.0, "patience": 20}}
    doc["spec"]["limits"] = {"timeoutSeconds": 300, "maxTokens": BUDGET}
    return doc


def members(team: dict[str, Any], agents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A Team's agents: named ones and those its selectors' matchLabels pick."""
    found = []
    for member in team["spec"]["members"]:
        labels = member.get("selector", {}).get("matchLabels")
        found += [
            a
            for a in agents
            if a["metadata"]["name"] == member.get("agent")
            or (labels and labels.items() <= a["metadata"].get("labels", {}).items())
        ]
    return found


def scope(run: dict[str, Any], agents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The agents an Orchestration's engine sees: its team's, or its selector's."""
    if run["spec"].get("team"):
        (team,) = [t for t in documents("teams.yaml") if t["metadata"]["name"] == run["spec"]["team"]]
        return members(team, agents)
    labels = run["spec"]["agentSelector"]["matchLabels"]
    return [a for a in agents if labels.items() <= a["metadata"].get("labels", {}).items()]


def contract_for(run: dict[str, Any], entry: Entry, entries: list[Entry], agents: list[dict[str, Any]]) -> Any:
    """The contract the engine sent with a step, rebuilt from the example (None: a free-form work step)."""
    spec = run["spec"]
    if entry.kind == "plan":
        if spec["strategy"] == "hierarchical":
            return contracts.assignments(spec["hierarchical"]["teams"])
        return contracts.plan(sorted({c["name"] for a in scope(run, agents) for c in a["spec"]["capabilities"]}))
    if entry.kind in ("explore", "propose"):
        return contracts.proposal(entry.kind)
    if entry.kind == "evaluate":  # one score per solution its generation's explorers proposed
        generation = entry.step.split("-")[1]
        return contracts.evaluate(sum(1 for e in entries if e.ok and e.step.startswith(f"gen-{generation}-explore-")))
    if entry.kind == "review":
        return contracts.review()
    if entry.kind == "synthesize":
        return contracts.synthesis()
    if entry.kind == "bid":
        return contracts.bid()
    stages = {f"stage-{s['name']}": s for s in spec.get("pipeline", {}).get("stages", [])}
    stage = stages.get(entry.step)
    return contracts.stage(stage["validate"]["jsonSchema"]) if stage and "validate" in stage else None


@pytest.fixture(scope="module")
def release(cluster: ClusterHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    with installed_with_model_server(cluster, "llm", tmp_path_factory.mktemp("llm-values")) as rel:
        yield rel


@pytest.fixture(scope="module")
def agents(release: Release) -> list[dict[str, Any]]:
    return example_agents(release.model_url)


@pytest.fixture(scope="module")
def runs(cluster: ClusterHandle, release: Release, agents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """strategy (and ``budget-stop``) -> its finished Orchestration; all submitted at once, as `make demo` does."""
    ns = release.namespace
    fleet = yaml.safe_dump_all(agents + documents("teams.yaml"))
    applied = cluster.kubectl("apply", "-n", ns, "-f", "-", input=fleet)
    assert applied.returncode == 0, applied.stderr
    ready = cluster.kubectl("wait", "-n", ns, "agent", "--all", "--for=condition=Ready", "--timeout=180s", timeout=200)
    assert ready.returncode == 0, f"{ready.stderr}\n{diagnose(cluster, release)}"

    # The hosted-API walk-through as written, pointed at this server instead (which ignores the key it is sent).
    endpoint = pointed_at(documents(ENDPOINT), release.model_url)
    applied = cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump_all(endpoint))
    assert applied.returncode == 0, applied.stderr
    docs = {strategy: documents(name)[0] for strategy, name in FILES.items()} | {BUDGET_RUN: budget_run()}
    applied = cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump_all(list(docs.values())))
    assert applied.returncode == 0, applied.stderr
    names = {key: doc["metadata"]["name"] for key, doc in docs.items()} | {ENDPOINT_RUN: ENDPOINT_RUN}

    def finished() -> dict[str, dict[str, Any]] | None:
        found = get(cluster, "orchestrations", "-n", ns) or {"items": []}
        by_name = {o["metadata"]["name"]: o for o in found["items"]}
        done = {k: by_name[n] for k, n in names.items() if (by_name.get(n, {}).get("status") or {}).get("completedAt")}
        return done if len(done) == len(names) else None

    try:
        # Eight runs share two model slots on a shared 2-core machine; the demo's take about a minute.
        return wait_for("the example runs to finish", finished, timeout=480)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{diagnose(cluster, release)}") from None


@pytest.fixture(scope="module")
def chart_redis(cluster: ClusterHandle, release: Release) -> Iterator[redis.Redis]:
    """The chart's Redis, at its Service address with the password Helm generated."""
    secret = get(cluster, "secret", f"{release.name}-redis", "-n", release.system)
    service = get(cluster, "service", f"{release.name}-redis", "-n", release.system)
    assert secret is not None and service is not None
    password = base64.b64decode(secret["data"]["password"]).decode()
    client = redis.Redis(host=service["spec"]["clusterIP"], port=6379, password=password, socket_timeout=10)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def journals(chart_redis: redis.Redis, release: Release, runs: dict[str, dict[str, Any]]) -> dict[str, list[Entry]]:
    """Every run's journal (one entry per step: its kind, agent, attempts and result), from the chart's Redis."""
    out = {}
    for key, run in runs.items():
        key_of = OrchestrationKeys(release.namespace, run["metadata"]["name"]).journal(run["metadata"]["uid"])
        raw = chart_redis.hgetall(key_of)
        out[key] = sorted((decode_entry(v) for v in raw.values()), key=lambda e: e.started_at)
    return out


def condition(run: dict[str, Any], kind: str) -> dict[str, Any]:
    (found,) = [c for c in run["status"]["conditions"] if c["type"] == kind]
    return found


@pytest.mark.parametrize("strategy", list(FILES))
def test_every_example_strategy_succeeds_with_language_model_agents(
    runs: dict[str, dict[str, Any]], journals: dict[str, list[Entry]], strategy: str
) -> None:
    run = runs[strategy]
    status = run["status"]
    assert status["phase"] == "Succeeded", status.get("message")
    complete = condition(run, "Complete")
    assert complete["status"] == "True" and complete["observedGeneration"] == run["metadata"]["generation"]
    assert status.get("result") or status.get("resultRef"), status
    # Every step ended, and the ones that needed a model were answered by one.
    assert journals[strategy] and all(e.state == "done" for e in journals[strategy])
    assert any(e.agent != "linter" and e.kind != "bid" and e.ok for e in journals[strategy])


@pytest.mark.parametrize("strategy", list(FILES))
def test_every_answer_honours_the_contract_it_was_asked_for(
    runs: dict[str, dict[str, Any]], journals: dict[str, list[Entry]], agents: list[dict[str, Any]], strategy: str
) -> None:
    entries = journals[strategy]
    checked = 0
    for entry in entries:
        contract = contract_for(runs[strategy], entry, entries, agents)
        if contract is None or not entry.ok:
            continue
        assert entry.result is not None
        assert contract.error(entry.result["output"]) is None, (entry.step, entry.result["output"])
        checked += 1
    assert checked, f"no step of {strategy} carried a contract: {[e.step for e in entries]}"


@pytest.mark.parametrize("strategy", list(FILES))
def test_tokens_and_cost_are_counted_in_each_orchestrations_status(
    runs: dict[str, dict[str, Any]], journals: dict[str, list[Entry]], strategy: str
) -> None:
    status, entries = runs[strategy]["status"], journals[strategy]
    results = [e.result for e in entries if e.result is not None]
    for entry in entries:
        assert entry.result is not None
        if not entry.ok:
            continue
        used_model = entry.kind != "bid" and entry.agent != "linter"
        # Model steps report the tokens the server counted; bids (the runtime's own) and ruff use none.
        assert (entry.result["tokens"] > 0) is used_model, (entry.step, entry.result["tokens"])
    tokens, cost = sum(r["tokens"] for r in results), sum(r["cost"] for r in results)
    assert status["tokens"] > 0 and status["cost"] > 0
    # The journal keeps each step's last attempt; the status counts every attempt (failed ones cost too).
    assert status["tokens"] >= tokens
    if all(e.attempt == 1 and len(e.history) <= 1 for e in entries):
        assert status["tokens"] == tokens
        assert status["cost"] == pytest.approx(cost, abs=1e-5)


def test_max_tokens_stops_a_run_and_says_which_limit(
    cluster: ClusterHandle, release: Release, runs: dict[str, dict[str, Any]], journals: dict[str, list[Entry]]
) -> None:
    run = runs[BUDGET_RUN]
    status = run["status"]
    assert status["phase"] == "Failed"
    assert condition(run, "BudgetExceeded")["status"] == "True"
    assert condition(run, "Failed")["reason"] == "BudgetExceeded"
    message = status["message"]
    assert message.startswith("budget exceeded: maxTokens used ") and message.endswith(f" of {BUDGET}"), message
    used = int(message.split("used ")[1].split(" ")[0])
    assert used >= BUDGET and status["tokens"] == used
    # Nothing went out once the budget was spent: the generation in flight was the last of the twenty.
    evaluations = [e for e in journals[BUDGET_RUN] if e.kind == "evaluate"]
    assert len(evaluations) < 20
    events = get(cluster, "events", "-n", release.namespace, "--field-selector", f"involvedObject.name={BUDGET_RUN}")
    assert events is not None
    assert any(e["reason"] == "Failed" and "BudgetExceeded" in e["message"] for e in events["items"]), events


def test_the_command_agent_lints_the_source_it_was_given(journals: dict[str, list[Entry]]) -> None:
    (lint,) = [e for e in journals["pipeline"] if e.step == "stage-lint"]
    assert lint.ok and lint.agent == "linter" and lint.result is not None
    findings = lint.result["output"]["findings"]
    assert {"line": 1, "code": "F401", "message": "`os` imported but unused"} in findings
    assert not any(f["code"] == "B018" for f in findings)  # ruff saw the code, not the task's JSON


def test_one_model_server_pod_served_every_run_without_a_restart(cluster: ClusterHandle, release: Release) -> None:
    pods = get(cluster, "pods", "-n", release.system, "-l", "app.kubernetes.io/component=model-server")
    assert pods is not None and len(pods["items"]) == 1
    assert pods["items"][0]["status"]["containerStatuses"][0]["restartCount"] == 0, diagnose(cluster, release)
    path = Path(pods["items"][0]["spec"]["containers"][0]["command"][0])
    assert path == locate().binary


def test_the_hosted_api_walk_through_runs_as_written(
    cluster: ClusterHandle, release: Release, runs: dict[str, dict[str, Any]]
) -> None:
    """examples/endpoints/hosted-api.yaml (docs/model-server.md) with only its baseURL and model changed."""
    status = runs[ENDPOINT_RUN]["status"]
    assert status["phase"] == "Succeeded", status.get("message")
    assert status["tokens"] > 0 and status["cost"] > 0
    pods = get(cluster, "pods", "-n", release.namespace, "-l", "app.kubernetes.io/instance=writer")
    assert pods is not None and pods["items"]
    env = {e["name"]: e for e in pods["items"][0]["spec"]["containers"][0]["env"]}
    # The key reaches the agent from the Secret, by reference: it is in no pod spec or ConfigMap.
    assert env["PODIUM_LLM_API_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "llm-key", "key": "apiKey"}}


def test_a_language_model_agent_writes_the_shared_state_its_agent_lists(
    cluster: ClusterHandle, release: Release, chart_redis: redis.Redis, runs: dict[str, dict[str, Any]]
) -> None:
    """An llm Agent with `blackboard.write`, as the operator deploys it: its model is asked for the keys it may
    write, and its write reaches the run's shared state through the engine, under the agent's name. (The pods' config
    once left `blackboard` out: the model was never asked, and nothing said so.)"""
    ns = release.namespace
    prompt = 'You write one short fact about the topic, and you always write that fact to the shared state key "fact".'
    backend = {"model": MODEL_ALIAS, "baseURL": release.model_url, "systemPrompt": prompt}
    writer = {
        "apiVersion": "podium.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": "fact-writer"},
        "spec": {
            "role": "worker",
            "backend": {"llm": backend | {"temperature": 0, "seed": 42, "maxTokens": 120}},
            "blackboard": {"write": ["fact"]},
        },
    }
    run = {
        "apiVersion": "podium.dev/v1alpha1",
        "kind": "Orchestration",
        "metadata": {"name": "fact"},
        "spec": {
            "strategy": "pipeline",
            "input": {"topic": "the moon"},
            "pipeline": {"stages": [{"name": "write", "agent": "fact-writer"}]},
            "limits": {"timeoutSeconds": 180},
        },
    }
    applied = cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump_all([writer, run]))
    assert applied.returncode == 0, applied.stderr

    def finished() -> dict[str, Any] | None:
        found = get(cluster, "orchestration", "fact", "-n", ns) or {}
        return found if (found.get("status") or {}).get("completedAt") else None

    done = wait_for("the run to finish", finished, timeout=240)
    assert done["status"]["phase"] == "Succeeded", f"{done['status']}\n{diagnose(cluster, release)}"
    state = OrchestrationKeys(ns, "fact").state_keys
    fact = chart_redis.hget(state.values, "fact")
    assert fact is not None, "the model wrote nothing to the shared state"
    assert json.loads(fact), fact
    assert json.loads(chart_redis.hget(state.meta, "fact"))["writer"] == "fact-writer"
