"""`podium selftest`: prove an installation works end to end, as the Helm chart's test hook does (`helm test`).

It creates a tiny Agent (the demo documenter, one replica) and a one-stage pipeline Orchestration that runs one task
on it through the bus, waits for the run to succeed, checks the result, and deletes both again. Each step says what
it waits for and, when it does not come, what to look at. It needs only create/get/delete on Agents and
Orchestrations in one namespace (the chart's test Role).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from podium.api.common import API_VERSION, GROUP, VERSION

INPUT = "Podium selftest: one task from an Orchestration, through the bus, to an Agent and back"
LABEL = "podium.dev/selftest"


def manifests(name: str, image: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Agent and the Orchestration of one selftest, both named ``name``."""
    labels = {LABEL: name}
    agent: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "Agent",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "role": "selftest",
            "description": "Made by `podium selftest` (helm test); deleted when it ends",
            "capabilities": [{"name": "writing", "level": 1.0}],
            "backend": {"python": {"entrypoint": "podium.demo.agents:documenter"}},
            "replicas": 1,
            "resilience": {"timeoutSeconds": 30, "retry": {"limit": 1}},
        },
    }
    if image:
        agent["spec"]["template"] = {"image": image}
    orchestration = {
        "apiVersion": API_VERSION,
        "kind": "Orchestration",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "strategy": "pipeline",
            "agentSelector": {"matchLabels": labels},
            "input": {"text": INPUT},
            "pipeline": {
                "stages": [
                    {
                        "name": "summarize",
                        "agent": name,
                        "validate": {"jsonSchema": {"type": "object", "required": ["summary"]}},
                    }
                ]
            },
            "limits": {"timeoutSeconds": 120, "maxTasks": 4},
        },
    }
    return agent, orchestration


class Failed(Exception):
    """The selftest did not pass; the message says what did not happen and what to look at."""


def verdict(status: dict[str, Any]) -> str | None:
    """Why a finished run does not prove the install (None: it does)."""
    if status.get("phase") != "Succeeded":
        return f"the Orchestration ended {status.get('phase')}: {status.get('message') or 'no message'}"
    result = status.get("result")
    # A pipeline's result is its last stage's output: the documenter's summary of the input.
    if not isinstance(result, dict) or result.get("summary") != INPUT:
        return f"the run succeeded but its result is not the agent's answer to the input: {result!r}"
    return None


class Selftest:
    def __init__(self, api: Any, namespace: str, name: str, timeout: float, say: Callable[[str], None]) -> None:
        self.api, self.namespace, self.name, self.timeout, self.say = api, namespace, name, timeout, say
        self.deadline = time.monotonic() + timeout

    def _call(self, verb: str, plural: str, *args: Any) -> Any:
        method = getattr(self.api, f"{verb}_namespaced_custom_object")
        return method(GROUP, VERSION, self.namespace, plural, *args)

    def _get(self, plural: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            found: dict[str, Any] = self._call("get", plural, self.name)
            return found
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def _delete(self, plural: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self._call("delete", plural, self.name)
        except ApiException as e:
            if e.status != 404:
                raise

    def _wait(self, what: str, check: Callable[[], Any], hint: str, every: float = 1.0) -> Any:
        last = ""
        while True:
            value, line = check()
            if line and line != last:
                self.say(f"  {line}")
                last = line
            if value:
                return value
            if time.monotonic() > self.deadline:
                raise Failed(f"{what} did not happen within {self.timeout:.0f}s (last: {last or 'nothing'}); {hint}")
            time.sleep(every)

    def clean(self) -> None:
        for plural in ("orchestrations", "agents"):
            self._delete(plural)

    def run(self, image: str | None) -> None:
        where = f"{self.namespace}/{self.name}"
        describe = f"kubectl -n {self.namespace} describe"
        if self._get("orchestrations") or self._get("agents"):
            self.say(f"removing the leftovers of an earlier selftest {where}")
            self.clean()
            self._wait(
                "the earlier selftest's removal",
                lambda: (not self._get("orchestrations") and not self._get("agents"), ""),
                "is the operator running? (its finalizers release them)",
            )
        agent, orchestration = manifests(self.name, image)
        self.say(f"creating Agent {where} (demo documenter, 1 replica)")
        self._call("create", "agents", agent)

        def agent_ready() -> tuple[bool, str]:
            status = (self._get("agents") or {}).get("status") or {}
            line = f"Agent {status.get('phase') or 'Pending'} {status.get('ready') or ''} {status.get('message') or ''}"
            return status.get("phase") in ("Ready", "Busy") and status.get("readyReplicas", 0) >= 1, line.strip()

        self._wait(
            f"Agent {where} Ready",
            agent_ready,
            f"look at `{describe} agent {self.name}` and `{describe} pods -l podium.dev/agent={self.name}`",
        )
        self.say(f"creating Orchestration {where} (pipeline, one stage on the Agent)")
        self._call("create", "orchestrations", orchestration)

        def run_finished() -> tuple[dict[str, Any] | None, str]:
            status = (self._get("orchestrations") or {}).get("status") or {}
            line = f"Orchestration {status.get('phase') or 'Pending'} {status.get('progress') or ''}"
            return (status if status.get("phase") in ("Succeeded", "Failed") else None), line.strip()

        status = self._wait(
            f"Orchestration {where} finishing",
            run_finished,
            f"look at `{describe} orchestration {self.name}` and the operator's log",
        )
        why = verdict(status)
        if why is not None:
            raise Failed(f"{why}; look at `{describe} orchestration {self.name}`")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="podium selftest", description=__doc__)
    parser.add_argument("-n", "--namespace", required=True, help="where the Agent and the Orchestration are made")
    parser.add_argument("--name", default="podium-selftest", help="their name (default podium-selftest)")
    parser.add_argument("--image", default=None, help="the Agent's image (default: the operator's agent image)")
    parser.add_argument("--timeout", type=float, default=240, help="seconds for everything (default 240)")
    parser.add_argument("--keep", action="store_true", help="leave the Agent and the Orchestration behind")
    args = parser.parse_args(argv)

    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    test = Selftest(client.CustomObjectsApi(), args.namespace, args.name, args.timeout, lambda s: print(s, flush=True))
    started = time.monotonic()
    try:
        test.run(args.image)
    except Failed as e:
        print(f"podium selftest FAILED: {e}", file=sys.stderr, flush=True)
        return 1
    finally:
        if not args.keep:
            test.clean()
    print(f"podium selftest passed in {time.monotonic() - started:.0f}s: an Agent ran one task of an Orchestration")
    return 0
