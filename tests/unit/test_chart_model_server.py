"""The chart's model server (`modelServer.*`): off by default; when on, llama-server as a Deployment and Service,
sized from values, probed on /health, PSS restricted, and the same model the image and the local build carry."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from podium_localcluster.modelserver import MODEL_ALIAS, MODEL_FILE
from tests.support.chart import CHART, KUBE, NAMESPACE, find, helm, helm_is_built, one, render  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
ON = "modelServer.enabled=true"

pytestmark = pytest.mark.usefixtures(helm_is_built.__name__)


def server(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(docs, "Deployment", "podium-model-server")


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = server(docs)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def flags(args: list[str]) -> dict[str, str]:
    """``--flag value`` pairs; a flag without a value maps to ""."""
    out: dict[str, str] = {}
    for i, a in enumerate(args):
        if a.startswith("--"):
            nxt = args[i + 1] if i + 1 < len(args) else ""
            out[a] = "" if nxt.startswith("--") else nxt
    return out


def test_off_by_default() -> None:
    docs = render()
    assert not [d for d in docs if "model-server" in d["metadata"]["name"]]


def test_lint_passes_with_the_model_server_on() -> None:
    for sets in ([ON], [ON, "modelServer.model.hostPath=/var/lib/models", "modelServer.extraArgs={--verbose}"]):
        args = ["lint", str(CHART), "--strict", "--namespace", NAMESPACE, *KUBE]
        for s in sets:
            args += ["--set", s]
        out = helm(*args)
        assert out.returncode == 0, out.stdout + out.stderr


def test_service_selects_the_server_pods_by_label_and_nothing_has_an_owner() -> None:
    docs = render(ON)
    service, deployment = one(docs, "Service", "podium-model-server"), server(docs)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pod_labels["app.kubernetes.io/component"] == "model-server"
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "model-server"  # never the operator's pods
    assert service["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http"}]
    for obj in (service, deployment):
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "podium"
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert "ownerReferences" not in obj["metadata"]


def test_arguments_come_from_values() -> None:
    c = container(
        render(
            ON,
            "modelServer.contextSize=1024",
            "modelServer.parallel=4",
            "modelServer.threads=3",
            "modelServer.model.alias=tiny",
            "modelServer.extraArgs={--api-key-file,/keys/k}",
        )
    )
    assert c["command"] == ["llama-server"]
    got = flags(c["args"])
    # The pod's own address: on the local cluster pods share the host network, and a wildcard bind would collide.
    assert got["--host"] == "$(POD_IP)" and got["--port"] == "8080"
    assert got["--model"] == f"/models/{MODEL_FILE}" and got["--alias"] == "tiny"
    assert (got["--ctx-size"], got["--parallel"], got["--threads"]) == ("4096", "4", "3")
    assert c["args"][-2:] == ["--api-key-file", "/keys/k"]
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"


def test_probes_use_health_and_startup_covers_a_slow_load() -> None:
    c = container(render(ON))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # minutes to load a big model
    assert c["resources"]["requests"]["memory"] and c["resources"]["limits"]["memory"]


def test_pod_is_pss_restricted_and_has_no_host_path_unless_asked() -> None:
    pod = server(render(ON))["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    sc = pod["containers"][0]["securityContext"]
    assert sc == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
    # PSS baseline already forbids hostPath: only the local cluster's values add one.
    assert "volumes" not in pod and "volumeMounts" not in pod["containers"][0]


def test_host_path_mounts_the_model_directory_read_only() -> None:
    pod = server(render(ON, "modelServer.model.hostPath=/cache/models", "modelServer.model.dir=/cache/models"))
    spec = pod["spec"]["template"]["spec"]
    assert spec["volumes"] == [{"name": "model", "hostPath": {"path": "/cache/models", "type": "Directory"}}]
    assert spec["containers"][0]["volumeMounts"] == [{"name": "model", "mountPath": "/cache/models", "readOnly": True}]
    assert flags(spec["containers"][0]["args"])["--model"] == f"/cache/models/{MODEL_FILE}"


def test_image_defaults_to_the_app_version_and_carries_the_charts_model() -> None:
    c = container(render(ON))
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert c["image"] == f"ghcr.io/podium-dev/podium-model-server:{chart['appVersion']}"
    values = yaml.safe_load((CHART / "values.yaml").read_text())["modelServer"]
    assert (values["model"]["file"], values["model"]["alias"]) == (MODEL_FILE, MODEL_ALIAS)
    dockerfile = (ROOT / "agent-images" / "Dockerfile.model-server").read_text()
    assert re.search(r"^COPY --from=build /opt/llama/models/ /models/$", dockerfile, re.M)
    assert values["model"]["dir"] == "/models"
