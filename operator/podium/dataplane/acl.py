"""The Redis ACL of an agent replica: exactly what its consumer needs, nothing that can hurt others (pure).

Redis checks a user's ACL inside functions too, so the user is granted the library's agent functions
(``+fcall|podium_complete``...) and, key by key, the commands those functions run. Selectors (Redis 7) tie each
command to the keys it is used on: the user may XADD to its result and dead-letter streams but not to its inbox
(only the operator fills inboxes), SET its result keys but nothing else, and touch no key outside its
agent's own. It may not run EVAL, SCRIPT, FUNCTION or XGROUP, nor call the operator's functions (dispatch,
cancel, prune). ``+fcall|<name>`` grants one function: Redis 7.0 and 7.2 accept this "first argument" form for
commands without subcommands (it is deprecated, but no other way names a function in an ACL).

A user may still write its own result keys directly: what it writes that way carries no valid seal and producers
ignore it (:mod:`podium.dataplane.library`). Size limits hold on the completion path (the functions refuse
oversized results); a user that writes around it can only fill its own keys, within Redis's ``maxmemory``.
"""

from __future__ import annotations

from enum import StrEnum

from podium.dataplane.keys import AgentKeys, glob_escape
from podium.dataplane.scripts import AGENT_FUNCTIONS, AGENT_READ_ONLY_FUNCTIONS


class Deployment(StrEnum):
    standalone = "standalone"
    sentinel = "sentinel"
    cluster = "cluster"


# Commands without keys: the connection's own, TIME (the functions take time from Redis), WAIT (a primary with
# replicas: a result counts once a replica holds it, see wait_replicas), and what redis-py's Cluster client needs to
# find the nodes and follow a slot being moved (a Cluster cannot WAIT by key).
CONNECTION_COMMANDS = ("ping", "hello", "client|setname", "time")
DEPLOYMENT_COMMANDS: dict[Deployment, tuple[str, ...]] = {
    Deployment.standalone: ("wait",),
    Deployment.sentinel: ("wait",),
    Deployment.cluster: ("cluster|slots", "asking"),
}

# The commands each of an agent's keys may see, directly or inside its functions.
KEY_COMMANDS: dict[str, tuple[str, ...]] = {
    # fetch (XREADGROUP), recover (XPENDING, XCLAIM, XRANGE, XINFO CONSUMERS), complete and dead-letter (XACK, XDEL)
    "inbox": ("xreadgroup", "xack", "xdel", "xclaim", "xpending", "xrange", "xinfo|consumers"),
    "results": ("xadd",),  # completion appends results
    "dlq": ("xadd",),  # dead-lettering appends the entry
    "result:*": ("get", "set"),  # the stored result, also the dedupe marker of its attempt
    # Replicas of versions before 2026-12 pass a per-attempt marker key to podium_complete too, which the library
    # leaves alone: named (for the call's key check) so a rolling upgrade records what they hold; no command on it.
    "done:*": (),
    "hb": ("hset", "hdel", "hgetall", "hexists", "hlen", "pexpire", "pttl"),  # heartbeats
    "cancelled": ("smembers",),  # read only: the operator marks cancelled orchestrations
    # The agent's memory (spec.memory, podium.dataplane.memory): its turns in each run, its named memories.
    "turns:*": ("xadd", "xrevrange", "pexpire"),
    "memory:*": ("xadd", "xrange", "xrevrange", "xdel", "pexpire"),
}
READ_ONLY_KEYS = frozenset({"cancelled"})

# An Agent that serves A2A (spec.a2a) is a producer of its own work: each A2A message becomes a task in its own
# inbox (podium_dispatch, which may create the group, checks the queue and appends) whose result it waits for like
# any producer (XREAD of its results stream). Only its own keys, like everything else here.
A2A_FUNCTIONS: tuple[str, ...] = ("podium_dispatch",)
A2A_KEY_COMMANDS: dict[str, tuple[str, ...]] = {
    "inbox": ("exists", "xgroup|create", "xlen", "xadd"),
    "results": ("xread", "xrevrange"),  # where the stream ends when the wait starts, then XREAD from there
}


def _pattern(keys: AgentKeys, suffix: str) -> str:
    access = "%R~" if suffix in READ_ONLY_KEYS else "~"
    return access + glob_escape(keys.prefix) + suffix


def _grants(a2a: bool) -> tuple[list[str], dict[str, tuple[str, ...]]]:
    """(functions as ACL items, commands by key suffix) of an agent's user."""
    functions = [f"fcall|{f}" for f in (*AGENT_FUNCTIONS, *(A2A_FUNCTIONS if a2a else ()))]
    functions += [f"fcall_ro|{f}" for f in AGENT_READ_ONLY_FUNCTIONS]
    commands = dict(KEY_COMMANDS)
    if a2a:
        for suffix, extra in A2A_KEY_COMMANDS.items():
            commands[suffix] = (*commands[suffix], *extra)
    return functions, commands


def agent_acl_rules(
    namespace: str, agent: str, deployment: Deployment = Deployment.standalone, *, a2a: bool = False
) -> list[str]:
    """Rules for ``ACL SETUSER <user> reset on ><password> <rules...>``. Each ``(...)`` item is a selector.

    Patterns name each suffix of the agent's tag (``podium:{ns/agent/name}:``); nothing of another agent or of any
    orchestration matches, whatever its name. ``a2a``: the Agent serves A2A and queues its own tasks.
    """
    keys = AgentKeys(namespace, agent)
    functions, commands = _grants(a2a)
    every_key = " ".join(_pattern(keys, suffix) for suffix in commands if suffix not in READ_ONLY_KEYS)
    selectors = [f"({every_key} {' '.join('+' + f for f in functions)})"]
    for suffix, allowed in commands.items():
        selectors.append(f"({_pattern(keys, suffix)} {' '.join('+' + c for c in allowed)})")
    root = [*CONNECTION_COMMANDS, *DEPLOYMENT_COMMANDS[Deployment(deployment)]]
    return ["resetkeys", "resetchannels", "-@all", *(f"+{c}" for c in root), *selectors]


def allowed_commands(deployment: Deployment = Deployment.standalone, *, a2a: bool = False) -> dict[str, frozenset[str]]:
    """Every command an agent's user may run, by what it may run it on: ``""`` for no key, else a key suffix
    (``fcall|...`` on every agent key). What the ACL test asserts against a live Redis."""
    functions, commands = _grants(a2a)
    out: dict[str, frozenset[str]] = {"": frozenset([*CONNECTION_COMMANDS, *DEPLOYMENT_COMMANDS[deployment]])}
    for suffix, allowed in commands.items():
        out[suffix] = frozenset(allowed)
    out["*"] = frozenset(functions)
    return out
