"""The chart's model server on the local cluster: llama-server as a pod behind a Service, answering a pod in another
namespace at the URL the install notes print."""

from __future__ import annotations

import json
import re
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from podium_localcluster.modelserver import MODEL_ALIAS, ModelServerMissing, local_chart_values, locate
from tests.support.wait import wait_for

from .conftest import ClusterHandle
from .helpers import apply, get, helm, require_ready_node

CHART = Path(__file__).resolve().parents[2] / "charts" / "podium"
API_KEY = "sk-podium-test"
ANSWER = {
    "type": "object",
    "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 40}},
    "required": ["city"],
    "additionalProperties": False,
}


@dataclass
class Release:
    name: str
    namespace: str
    notes: str


def diagnose(cluster: ClusterHandle, ns: str) -> str:
    return "\n".join(
        [
            cluster.kubectl("-n", ns, "get", "pods,services", "-o", "wide").stdout,
            cluster.kubectl("-n", ns, "describe", "pods", "-l", "app.kubernetes.io/component=model-server").stdout,
            cluster.kubectl("-n", ns, "logs", "-l", "app.kubernetes.io/component=model-server", "--tail=30").stdout,
        ]
    )


@pytest.fixture(scope="module")
def release(cluster: ClusterHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    require_ready_node(cluster)
    try:
        files = locate()
    except ModelServerMissing as e:
        pytest.fail(str(e))
    values = tmp_path_factory.mktemp("model-server") / "values.json"
    values.write_text(json.dumps(local_chart_values(files)))
    suffix = uuid.uuid4().hex[:6]
    name, ns = f"podium-ms-{suffix}", f"podium-ms-{suffix}"
    installed = helm(
        cluster,
        "install", name, str(CHART), "--namespace", ns, "--create-namespace",
        "-f", str(values),
        # Its operator watches only its own namespace, so it leaves other tests' Agents alone.
        "--set", f"watchNamespaces={{{ns}}}",
        # As a hosted API would: completions need the key (/health stays open for the probes).
        "--set", f"modelServer.extraArgs={{--api-key,{API_KEY}}}",
        "--wait", "--timeout", "180s",
    )  # fmt: skip
    try:
        if installed.returncode != 0:
            pytest.fail(f"helm install failed: {installed.stderr}\n{diagnose(cluster, ns)}")
        yield Release(name, ns, helm(cluster, "get", "notes", name, "--namespace", ns).stdout)
    finally:
        # Without its operator nothing removes the podium.dev finalizers: the namespace would hang in Terminating.
        cluster.kubectl("delete", "orchestrations,agents", "--all", "-n", ns, "--wait=true", "--timeout=60s")
        helm(cluster, "uninstall", name, "--namespace", ns, "--wait", "--timeout", "60s")
        cluster.kubectl("delete", "namespace", ns, "--wait=false")


def test_model_server_runs_as_a_ready_pod_with_the_model_mounted_from_the_node(
    cluster: ClusterHandle, release: Release
) -> None:
    pods = json.loads(cluster.kubectl("get", "pods", "-n", release.namespace, "-o", "json").stdout)["items"]
    (server,) = [p for p in pods if p["metadata"]["labels"].get("app.kubernetes.io/component") == "model-server"]
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in server["status"]["conditions"]), diagnose(
        cluster, release.namespace
    )
    files = locate()
    container = server["spec"]["containers"][0]
    assert container["command"] == [str(files.binary)]
    assert container["args"][container["args"].index("--model") + 1] == str(files.model)
    assert server["spec"]["volumes"] == [
        {"name": "model", "hostPath": {"path": str(files.model.parent), "type": "Directory"}}
    ]
    assert server["status"]["containerStatuses"][0]["restartCount"] == 0


def test_a_pod_in_another_namespace_gets_a_schema_bound_completion_through_the_service(
    cluster: ClusterHandle, release: Release, namespace: str
) -> None:
    found = re.search(r"http://\S+/v1", release.notes)
    assert found, release.notes
    url = found.group(0)
    assert url == f"http://{release.name}-model-server.{release.namespace}.svc:8080/v1"
    body = {
        "messages": [{"role": "user", "content": "What is the capital of France? Answer as JSON."}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": ANSWER}},
        "temperature": 0,
        "seed": 7,
        "max_tokens": 60,
    }
    script = textwrap.dedent(f"""
        import json, urllib.request
        request = urllib.request.Request(
            {url + "/chat/completions"!r}, data={json.dumps(body)!r}.encode(),
            headers={{"Content-Type": "application/json", "Authorization": "Bearer {API_KEY}"}},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            print(response.read().decode())
    """)
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "ask"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "ask", "image": "python:3.12", "command": ["python", "-c", script]}],
                }
            },
        },
    }
    apply(cluster, namespace, job)

    def finished() -> str | None:
        status: dict[str, Any] = (get(cluster, namespace, "job", "ask") or {}).get("status") or {}
        done = [c["type"] for c in status.get("conditions") or [] if c["status"] == "True"]
        return next((t for t in done if t in ("Complete", "Failed")), None)

    outcome = wait_for("the job to finish", finished, timeout=150)
    logs = cluster.kubectl("logs", "-n", namespace, "job/ask").stdout
    assert outcome == "Complete", f"{logs}\n{diagnose(cluster, release.namespace)}"
    answer = json.loads(logs)
    assert answer["choices"][0]["finish_reason"] == "stop", answer
    jsonschema.validate(json.loads(answer["choices"][0]["message"]["content"]), ANSWER)
    assert answer["usage"]["prompt_tokens"] > 0 and answer["usage"]["completion_tokens"] > 0


def test_an_llm_agent_reaches_the_model_server_with_its_key_from_a_secret(
    cluster: ClusterHandle, release: Release
) -> None:
    """An Agent's pod, made by the chart's operator, calls the model server at the URL of the notes, with the API
    key from the Secret its apiKeySecretRef names; a pipeline through it succeeds with the tokens counted."""
    ns = release.namespace
    secret = cluster.kubectl("create", "secret", "generic", "model-key", f"--from-literal=key={API_KEY}", "-n", ns)
    assert secret.returncode == 0, secret.stderr
    apply(cluster, ns, writer(release))
    apply(cluster, ns, tagline("tagline"))
    status = finished(cluster, ns, "tagline")
    agent_logs = cluster.kubectl("logs", "-n", ns, "deploy/writer", "--tail=20").stdout
    assert status["phase"] == "Succeeded", f"{status}\n{agent_logs}"
    assert not status.get("degraded") and status["tokens"] > 0 and status["result"], status


def writer(release: Release) -> dict[str, Any]:
    """An llm Agent on the release's model server, with the key from Secret ``model-key``."""
    url = f"http://{release.name}-model-server.{release.namespace}.svc:8080/v1"
    llm = {
        "model": MODEL_ALIAS,
        "baseURL": url,
        "apiKeySecretRef": {"name": "model-key", "key": "key"},
        "temperature": 0,
        "maxTokens": 40,
    }
    spec = {"role": "writer", "capabilities": [{"name": "writing"}], "backend": {"llm": llm}}
    return {"apiVersion": "podium.dev/v1alpha1", "kind": "Agent", "metadata": {"name": "writer"}, "spec": spec}


def tagline(name: str, **extra: Any) -> dict[str, Any]:
    spec = {
        "strategy": "pipeline",
        "pipeline": {"stages": [{"name": "write", "agent": "writer"}]},
        "input": {"text": "Write a one-line tagline for a bakery."},
        "limits": {"timeoutSeconds": 120, "maxTasks": 3},
        **extra,
    }
    return {"apiVersion": "podium.dev/v1alpha1", "kind": "Orchestration", "metadata": {"name": name}, "spec": spec}


def finished(cluster: ClusterHandle, ns: str, name: str) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        status: dict[str, Any] = (get(cluster, ns, "orchestration", name) or {}).get("status") or {}
        return status if status.get("phase") in ("Succeeded", "Failed") else None

    return wait_for(f"orchestration {name} to finish", ended, timeout=180)


def test_an_agent_whose_model_server_is_down_says_so_and_runs_wait_for_it_or_pass_it_over_naming_why(
    cluster: ClusterHandle, release: Release
) -> None:
    """The model server scaled to zero: the llm Agent's pod stays up but takes no tasks, and the Agent says why
    (Degraded, Available=False BackendUnavailable). A run that may not wait for agents (agentWaitSeconds 0) fails at
    once saying so, instead of spending its attempts on calls that cannot be answered; a run with the default wait
    says whom it waits for and why, and succeeds once the server is back (a model server restart is ridden out).
    The Agent is Ready again by itself."""
    ns = release.namespace
    if cluster.kubectl("get", "secret", "model-key", "-n", ns).returncode != 0:
        made = cluster.kubectl("create", "secret", "generic", "model-key", f"--from-literal=key={API_KEY}", "-n", ns)
        assert made.returncode == 0, made.stderr
    apply(cluster, ns, writer(release))
    server = f"deploy/{release.name}-model-server"

    def available() -> dict[str, Any] | None:
        status = (get(cluster, ns, "agent", "writer") or {}).get("status") or {}
        return next((c for c in status.get("conditions") or [] if c["type"] == "Available"), None)

    def waiting(name: str) -> dict[str, Any] | None:
        status = (get(cluster, ns, "orchestration", name) or {}).get("status") or {}
        said = next((c for c in status.get("conditions") or [] if c["type"] == "Waiting"), None)
        return said if said is not None and said["status"] == "True" else None

    wait_for("writer available", lambda: (available() or {}).get("status") == "True", timeout=180)
    assert cluster.kubectl("scale", "-n", ns, server, "--replicas=0").returncode == 0
    try:
        down = wait_for(
            "writer to say its backend is down",
            lambda: c if (c := available()) and c.get("reason") == "BackendUnavailable" else None,
            timeout=90,
        )
        assert "its model server: cannot reach" in down["message"], down
        assert (get(cluster, ns, "agent", "writer") or {})["status"]["phase"] == "Degraded"
        apply(cluster, ns, tagline("no-wait", agentWaitSeconds=0))
        status = finished(cluster, ns, "no-wait")
        assert status["phase"] == "Failed", status
        assert "its backend is unavailable: replica writer-" in status["message"], status["message"]
        tasks = status.get("tasks") or []
        assert all(int(t.get("attempts") or 0) <= 1 for t in tasks), tasks  # no attempts spent on it
        apply(cluster, ns, tagline("rides-out"))
        said = wait_for("the run to say it waits for writer", lambda: waiting("rides-out"), timeout=60)
        assert "agent 'writer' is not ready (its backend is unavailable: replica writer-" in said["message"], said
    finally:
        assert cluster.kubectl("scale", "-n", ns, server, "--replicas=1").returncode == 0
    status = finished(cluster, ns, "rides-out")
    assert status["phase"] == "Succeeded" and status["result"], status
    wait_for("writer available again", lambda: (available() or {}).get("status") == "True", timeout=180)
    apply(cluster, ns, tagline("after"))
    assert finished(cluster, ns, "after")["phase"] == "Succeeded"
