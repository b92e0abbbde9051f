"""The Redis key schema of Podium: one hash tag per agent, one per orchestration run. Every key is built here.

Every key of an agent is ``podium:{<namespace>/agent/<agent>}:<suffix>`` and every key of an orchestration is
``podium:{<namespace>/run/<orchestration>}:<suffix>``. Sharing the hash tag puts an object's keys in one Redis
Cluster slot, so each multi-key function call stays legal on a cluster, and it lets a per-agent ACL user be
limited to its own keys (:mod:`podium.dataplane.acl`). The kind in the tag keeps an Agent and an Orchestration
of the same name apart: their key spaces share no prefix, so purging one never touches the other and no ACL
pattern of one can match the other's keys. (Names cannot hold '/', so no name can forge another kind's tag.)

Before this layout the tag was ``{<namespace>/<name>}`` for both kinds; :mod:`podium.dataplane.migrate` moves
keys of that layout (docs/data-plane.md, "Upgrading").
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

# Kubernetes names are DNS-1123; we accept a little more (upper case, '_') for tests and local use, but
# never the characters that would break a hash tag or an ACL glob pattern.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")

GROUP = "workers"  # the one consumer group of every inbox
RELEASED = ":released"  # the group's pseudo-consumer holding entries replicas handed back (the library's RELEASED)


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


AGENT_KIND = "agent"
RUN_KIND = "run"


def _tag(namespace: str, kind: str, name: str, what: str) -> str:
    return f"podium:{{{check_name(namespace, 'namespace')}/{kind}/{check_name(name, what)}}}:"


def agent_tag(namespace: str, agent: str) -> str:
    return _tag(namespace, AGENT_KIND, agent, "agent")


def run_tag(namespace: str, orchestration: str) -> str:
    return _tag(namespace, RUN_KIND, orchestration, "orchestration")


@dataclass(frozen=True)
class AgentKeys:
    """All keys of one agent. ``result`` keys are per task and carry a TTL."""

    namespace: str
    agent: str

    @functools.cached_property
    def prefix(self) -> str:  # cached: every key of a hot path is built from it, and building it checks the names
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
    def failures(self) -> str:  # list of the latest failures, newest first, JSON {task, error, time}
        return self.prefix + "failures"

    @property
    def breaker(self) -> str:  # the agent's circuit breaker, JSON (podium.dataplane.breakers); engines write it
        return self.prefix + "breaker"

    def result(self, task_id: str) -> str:  # the task's latest result, sealed: also its attempt's dedupe marker
        return f"{self.prefix}result:{task_id}"

    @staticmethod
    def parse_result(key: str) -> tuple[str, str]:
        """(the agent's result stream, the task id) of a key :meth:`result` made. The split is at the end of the
        hash tag, so a task id that holds ``:result:`` itself is kept whole."""
        tagged, _, task_id = key.partition("}:result:")
        return f"{tagged}}}:results", task_id

    def turns(self, run: str) -> str:  # stream of the agent's turns in one run, by run uid (podium.dataplane.memory)
        return f"{self.prefix}turns:{check_name(run, 'run uid')}"

    def memory(self, name: str) -> str:  # stream of the agent's named memory across runs (podium.dataplane.memory)
        return f"{self.prefix}memory:{check_name(name, 'memory name')}"

    @property
    def pattern(self) -> str:  # every key of this agent, for SCAN
        return glob_escape(self.prefix) + "*"


@dataclass(frozen=True)
class OrchestrationKeys:
    namespace: str
    orchestration: str

    @functools.cached_property
    def prefix(self) -> str:  # cached, as AgentKeys.prefix
        return run_tag(self.namespace, self.orchestration)

    @property
    def events(self) -> str:  # stream of published events
        return self.prefix + "events"

    def journal(self, uid: str) -> str:  # hash step -> JSON entry of one run (the uid: a re-created one starts afresh)
        return f"{self.prefix}journal:{uid}"

    @property
    def journals(self) -> str:  # the journals of every run of this name, for SCAN
        return glob_escape(self.prefix) + "journal:*"

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

    def spec(self, uid: str) -> str:  # the spec one run started with, JSON as applied (podium.dataplane.runs)
        return f"{self.prefix}spec:{uid}"

    def result(self, uid: str) -> str:  # a finished run's result too large for its status, JSON
        return f"{self.prefix}result:{uid}"

    def owner(self, uid: str) -> str:  # the operator replica running this run, with a lease (podium.dataplane.shards)
        return f"{self.prefix}owner:{uid}"

    @property
    def pattern(self) -> str:  # every key of this orchestration, for SCAN
        return glob_escape(self.prefix) + "*"

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
def orchestration_keys(ref: str) -> OrchestrationKeys:
    """:meth:`OrchestrationKeys.of`, cached (every event a run publishes names its stream)."""
    return OrchestrationKeys.of(ref)


@functools.lru_cache(maxsize=4096)
def agent_keys(namespace: str, agent: str) -> AgentKeys:
    """:class:`AgentKeys`, cached: hot paths (every dispatch, every selection) skip re-validating the names."""
    return AgentKeys(namespace, agent)


def glob_escape(text: str) -> str:
    """``text`` as a literal inside a Redis glob pattern (SCAN MATCH, ACL key patterns)."""
    # Names cannot hold glob characters, but the schema's braces are literal in Redis globs anyway;
    # escape defensively so a future schema change cannot widen a pattern by accident.
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)
