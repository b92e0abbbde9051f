"""The agent's ACL rules (pure): its own keys only, per-key commands, named functions, no Lua of its own."""

from __future__ import annotations

import fnmatch
import re

import pytest

from podium.dataplane.acl import Deployment, agent_acl_rules, allowed_commands
from podium.dataplane.keys import AgentKeys, OrchestrationKeys


def selectors(rules: list[str]) -> list[tuple[list[str], list[str]]]:
    """(key patterns, commands) of each selector."""
    out = []
    for rule in rules:
        if rule.startswith("("):
            items = rule.strip("()").split()
            out.append(([i for i in items if "~" in i], [i for i in items if i.startswith(("+", "-"))]))
    return out


def key_glob(pattern: str) -> str:
    return re.sub(r"^%?R?~", "", pattern).replace("\\", "")


def test_every_key_pattern_is_under_the_agents_own_tag() -> None:
    rules = agent_acl_rules("ns", "a")
    patterns = [p for keys, _ in selectors(rules) for p in keys]
    assert patterns and all(key_glob(p).startswith("podium:{ns/agent/a}:") for p in patterns)
    assert not [r for r in rules if "~" in r and not r.startswith("(")], "no key pattern outside a selector"


def test_no_pattern_reaches_an_orchestration_or_another_agent_of_any_name() -> None:
    rules = agent_acl_rules("ns", "x")
    globs = [key_glob(p) for keys, _ in selectors(rules) for p in keys]
    run, other = OrchestrationKeys("ns", "x"), AgentKeys("ns", "x-2")
    foreign = [run.events, run.result("u"), run.journal("u"), run.budget, other.inbox, other.result("t")]
    assert not [k for k in foreign for g in globs if fnmatch.fnmatchcase(k, g)]


def test_commands_are_tied_to_the_keys_they_are_used_on() -> None:
    by_key = {key_glob(keys[0]).rsplit(":", 1)[-1]: cmds for keys, cmds in selectors(agent_acl_rules("ns", "a"))}
    assert "+xadd" not in by_key["inbox"]  # only the operator fills an inbox
    assert by_key["results"] == ["+xadd"] and by_key["dlq"] == ["+xadd"]
    assert by_key["cancelled"] == ["+smembers"]
    reads = [keys for keys, _ in selectors(agent_acl_rules("ns", "a")) if any("cancelled" in k for k in keys)]
    assert reads == [["%R~podium:{ns/agent/a}:cancelled"]]  # read only: a replica cannot un-cancel


def test_no_lua_no_group_admin_no_operator_functions() -> None:
    text = " ".join(agent_acl_rules("ns", "a", Deployment.cluster))
    for denied in ("+eval", "+evalsha", "+script", "+function", "+xgroup", "+@", "+fcall ", "+fcall_ro "):
        assert denied not in text
    for operator_only in ("podium_dispatch", "podium_cancel", "podium_prune", "podium_replicas"):
        assert operator_only not in text
    assert "+fcall|podium_complete" in text and "+fcall_ro|podium_info" in text


@pytest.mark.parametrize(
    ("deployment", "extra"),
    [
        (Deployment.standalone, {"wait"}),
        (Deployment.sentinel, {"wait"}),
        (Deployment.cluster, {"cluster|slots", "asking"}),
    ],
)
def test_each_deployment_adds_only_what_its_client_needs(deployment: Deployment, extra: set[str]) -> None:
    rules = agent_acl_rules("ns", "a", deployment)
    root = {r[1:] for r in rules if r.startswith("+")}
    assert root == {"ping", "hello", "client|setname", "time"} | extra
    assert allowed_commands(deployment)[""] == root
