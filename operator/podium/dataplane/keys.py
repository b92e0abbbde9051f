"""The Redis key schema of Podium: one hash tag per agent, one per orchestration. Every key is built here.

Every key of an agent is ``podium:{<namespace>/<agent>}:<suffix>`` and every key of an orchestration is
``podium:{<namespace>/<orchestration>}:<suffix>``. Sharing the hash tag puts them in one Redis Cluster slot,
so each multi-key Lua script stays legal on a cluster, and it lets a per-agent ACL user be limited to its
own keys (:func:`agent_acl_rules`). Agent and orchestration suffixes never overlap, so an agent and an
orchestration with the same name in one namespace cannot see each other's keys through the ACL.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

# Kubernetes names are DNS-1123; we accept a little more (upper case, '_') for tests and local use, but
# never the characters that would break a hash tag or an ACL glob pattern.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")

GROUP = "workers"  # the one consumer group of every inbox


def check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(
            f"{what} {value!r} is not a valid name: use letters, digits, '.', '_' or '-' "
            f"(starting with a letter or digit, at most 253 characters)"
        )
    return value


def split_ref(ref: str) -> tuple[str, str]:
    """``"<namespace>/<name>"`` -> ``(namespace, name)`` with a clear error for anything else."""
    namespace, sep, name = ref.partition("/")
    if not sep:
        raise ValueError(f"expected '<namespace>/<name>', got {ref!r}")
    return check_name(namespace, "namespace"), check_name(name, "name")


def _tag(namespace: str, name: str, what: str) -> str:
    return f"podium:{{{check_name(namespace, 'namespace')}/{check_name(name, what)}}}:"


def agent_tag(namespace: str, agent: str) -> str:
    return _tag(namespace, agent, "agent")


@dataclass(frozen=True)
class AgentKeys:
    """All keys of one agent. ``result``/``done`` keys are per task and carry a TTL."""

    namespace: str
    agent: str

    @property
    def prefix(self) -> str:
        return agent_tag(self.namespace, self.agent)

    @property
    def inbox(self) -> str:  # stream of tasks; consumer group GROUP; acked entries are deleted
        return self.prefix + "inbox"

    @property
    def results(self) -> str:  # stream of results (and the agent's reply history); producers XREAD it
        return self.prefix + "results"

    @property
    def heartbeats(self) -> str:  # hash replica -> "load in_flight last_seen lease"
        return self.prefix + "hb"

    @property
    def dlq(self) -> str:  # dead-letter stream
        return self.prefix + "dlq"

    @property
    def direct(self) -> str:  # stream of direct messages to this agent
        return self.prefix + "direct"

    @property
    def cancelled(self) -> str:  # set of cancelled orchestrations ("ns/name" or "ns/name@uid"); the operator writes it
        return self.prefix + "cancelled"

    @property
    def stats(self) -> str:  # hash of task outcomes and reputation (podium.dataplane.perf); engines write it
        return self.prefix + "stats"

    @property
    def recent(self) -> str:  # list of the latest outcomes, newest first ("1" ok, "0" failed)
        return self.prefix + "recent"

    @property
    def breaker(self) -> str:  # the agent's circuit breaker, JSON (podium.dataplane.breakers); engines write it
        return self.prefix + "breaker"

    def result(self, task_id: str) -> str:
        return f"{self.prefix}result:{task_id}"

    def turns(self, run: str) -> str:  # stream of the agent's turns in one run, by run uid (podium.dataplane.memory)
        return f"{self.prefix}turns:{check_name(run, 'run uid')}"

    def memory(self, name: str) -> str:  # stream of the agent's named memory across runs (podium.dataplane.memory)
        return f"{self.prefix}memory:{check_name(name, 'memory name')}"

    def done(self, task_id: str, attempt: int) -> str:  # dedupe marker of one attempt
        return f"{self.prefix}done:{task_id}:{attempt}"

    @property
    def pattern(self) -> str:  # every key of this agent, for SCAN
        return _glob_escape(self.prefix) + "*"


@dataclass(frozen=True)
class OrchestrationKeys:
    namespace: str
    orchestration: str

    @property
    def prefix(self) -> str:
        return _tag(self.namespace, self.orchestration, "orchestration")

    @property
    def events(self) -> str:  # stream of published events
        return self.prefix + "events"

    def journal(self, uid: str) -> str:  # hash step -> JSON entry of one run (the uid: a re-created one starts afresh)
        return f"{self.prefix}journal:{uid}"

    @property
    def journals(self) -> str:  # the journals of every run of this name, for SCAN
        return _glob_escape(self.prefix) + "journal:*"

    @property
    def budget(self) -> str:  # hash of the run's usage (podium.dataplane.usage)
        return self.prefix + "budget"

    @property
    def state(self) -> str:  # prefix of the shared state's keys (podium.dataplane.state)
        return self.prefix + "state"

    @property
    def state_keys(self) -> StateKeys:  # every key of the shared state (podium.dataplane.state)
        return StateKeys(self.state)

    def cursors(self, uid: str) -> str:  # hash: how far each agent of one run was told (podium.dataplane.mailbox)
        return f"{self.prefix}cursors:{uid}"

    def effects(self, uid: str) -> str:  # hash task id -> "1": results whose state updates and messages were applied
        return f"{self.prefix}effects:{uid}"

    def approvals(self, uid: str) -> str:  # hash step -> JSON approval record (podium.dataplane.approvals)
        return f"{self.prefix}approvals:{uid}"

    def result(self, uid: str) -> str:  # a finished run's result too large for its status, JSON
        return f"{self.prefix}result:{uid}"

    def owner(self, uid: str) -> str:  # the operator replica running this run, with a lease (podium.dataplane.shards)
        return f"{self.prefix}owner:{uid}"

    @property
    def pattern(self) -> str:  # every key of this orchestration, for SCAN
        return _glob_escape(self.prefix) + "*"

    @classmethod
    def of(cls, ref: str) -> OrchestrationKeys:
        return cls(*split_ref(ref))


def operators_key(group: str) -> str:
    """Sorted set of the operator replicas of one group (same watched namespaces) by last heartbeat, in ms."""
    return f"podium:operators:{{{check_name(group, 'operator group')}}}:members"


@dataclass(frozen=True)
class StateKeys:
    """The keys of one orchestration's shared state, all under ``<prefix>`` (``OrchestrationKeys.state``)."""

    prefix: str

    @property
    def values(self) -> str:  # hash key -> canonical JSON value
        return self.prefix

    @property
    def versions(self) -> str:  # hash key -> version
        return self.prefix + ":ver"

    @property
    def meta(self) -> str:  # hash key -> JSON {writer, at, priority}
        return self.prefix + ":meta"

    @property
    def past(self) -> str:  # hash "<key>#<version>" -> value (merge bases)
        return self.prefix + ":past"

    @property
    def history(self) -> str:  # stream of changes and snapshot markers
        return self.prefix + ":history"

    @property
    def audit(self) -> str:  # stream of conflict resolutions
        return self.prefix + ":audit"

    @property
    def proposals(self) -> str:  # hash proposal id -> JSON
        return self.prefix + ":proposals"

    @property
    def votes(self) -> str:  # hash proposal id -> JSON {voter: accept}
        return self.prefix + ":votes"

    def all(self) -> list[str]:
        """In the order the state's Lua scripts take them as KEYS."""
        return [self.values, self.versions, self.meta, self.past, self.history, self.audit, self.proposals, self.votes]


@functools.lru_cache(maxsize=4096)
def agent_keys(namespace: str, agent: str) -> AgentKeys:
    """:class:`AgentKeys`, cached: hot paths (every dispatch, every selection) skip re-validating the names."""
    return AgentKeys(namespace, agent)


def _glob_escape(text: str) -> str:
    # Names cannot hold glob characters, but the schema's braces are literal in Redis globs anyway;
    # escape defensively so a future schema change cannot widen a pattern by accident.
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


# Commands an agent replica runs, directly or inside the bus's Lua scripts (Redis checks both).
# Only commands Redis 7.0 knows: `client|setinfo` (7.2+) would make ACL SETUSER fail there, and redis-py
# ignores the refusal of the CLIENT SETINFO it sends on connect, so leaving it out costs only CLIENT LIST labels.
AGENT_COMMANDS: tuple[str, ...] = (
    "ping",
    "time",
    "hello",
    "client|setname",
    "xreadgroup",
    # Its own results stream only (the key patterns below): an Agent serving A2A (spec.a2a) queues each message
    # as a task in its own inbox and waits for the result like any producer, whose result reader XREADs.
    "xread",
    "xack",
    "xclaim",
    "xpending",
    "xadd",
    "xdel",
    "xrange",
    "xrevrange",
    "xlen",
    "xgroup|create",
    "xgroup|delconsumer",
    "xinfo|consumers",
    "xinfo|groups",
    "get",
    "set",
    "smembers",
    "hset",
    "hget",
    "hgetall",
    "hdel",
    "pexpire",
    "pttl",
    "evalsha",
    "eval",
    "script|load",
    "script|exists",
)


def agent_acl_rules(namespace: str, agent: str) -> list[str]:
    """ACL rules for ``ACL SETUSER <user> on ><password> <rules...>`` limiting a replica to its agent's keys.

    The key patterns name each suffix rather than ``<prefix>*`` so that an orchestration that happens to
    share the agent's name (and so its hash tag) stays out of reach. The ``cancelled`` set is read-only
    (``%R~``): the operator writes it, a replica only checks it, so a replica cannot un-cancel anything.
    """
    keys = AgentKeys(namespace, agent)
    prefix = _glob_escape(keys.prefix)
    patterns = ["inbox", "results", "hb", "dlq", "direct", "result:*", "done:*"]
    # collab-tools (memory): the agent's own turns per run and its named memories; streams, so the commands above
    # (xadd, xrevrange, xdel, pexpire) serve them and no command is added.
    patterns += ["turns:*", "memory:*"]
    return [
        "resetkeys",
        *(f"~{prefix}{p}" for p in patterns),
        f"%R~{prefix}cancelled",
        "resetchannels",
        "-@all",
        *(f"+{c}" for c in AGENT_COMMANDS),
    ]
