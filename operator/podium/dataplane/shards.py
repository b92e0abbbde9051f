"""Which operator replica runs which Orchestration: a membership heartbeat per replica and a lease per run.

Every replica of one group (replicas watching the same namespaces) heartbeats into a sorted set; those seen
within the lease are the live members, from which the operator picks each run's owner
(:mod:`podium.operator.orchestrations.shards`). A replica runs a run only while it holds the run's lease,
``podium:{<ns>/<name>}:owner:<uid>``, renewed every heartbeat: two replicas never drive one run at once, and a
killed replica's leases lapse within ``lease_seconds``, after which the new owner takes the run over and resumes
it from its journal. Time is Redis's (``TIME``), so the replicas' clocks do not matter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from podium.dataplane.keys import OrchestrationKeys, operators_key

# KEYS: members.  ARGV: replica, lease ms.  Records the beat, forgets long-gone members, returns the live ones.
BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 10 * lease)
redis.call('PEXPIRE', KEYS[1], 10 * lease)
return redis.call('ZRANGEBYSCORE', KEYS[1], now - lease, '+inf')
"""

# KEYS: owner.  ARGV: replica, lease ms.  1: the lease is (now) this replica's, renewed; 0: another holds it.
HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# KEYS: owner.  ARGV: replica, lease ms.  1: renewed; 0: this replica does not hold it (lapsed, or another's).
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS: owner.  ARGV: replica.  Gives the lease up if this replica holds it.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

RunRef = tuple[str, str, str]  # namespace, name, uid


class Shards:
    """One replica's membership and run leases."""

    def __init__(self, redis: aioredis.Redis, group: str, replica: str, lease_seconds: float) -> None:
        self.redis, self.replica = redis, replica
        self.members_key = operators_key(group)
        self.lease_ms = max(1, int(lease_seconds * 1000))
        self._beat = redis.register_script(BEAT)
        self._hold = redis.register_script(HOLD)
        self._renew = redis.register_script(RENEW)
        self._release = redis.register_script(RELEASE)

    async def beat(self) -> list[str]:
        """Heartbeat; the live members of the group (this replica among them), sorted."""
        live = await self._beat(keys=[self.members_key], args=[self.replica, self.lease_ms])
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in live)

    async def leave(self) -> None:
        """Stop counting as a member at once (a clean shutdown), so the others take its runs without waiting."""
        await self.redis.zrem(self.members_key, self.replica)

    async def hold(self, runs: Sequence[RunRef]) -> dict[RunRef, bool]:
        """Take or renew each run's lease in one round trip; which ones this replica holds now."""
        return await self._each(self._hold, runs, self.lease_ms)

    async def renew(self, runs: Sequence[RunRef]) -> dict[RunRef, bool]:
        """Renew the leases this replica holds, never taking one (a lease given up meanwhile stays given up); which
        ones it still holds."""
        return await self._each(self._renew, runs, self.lease_ms)

    async def release(self, runs: Iterable[RunRef]) -> None:
        await self._each(self._release, list(runs))

    async def _each(self, script: AsyncScript, runs: Sequence[RunRef], *args: int) -> dict[RunRef, bool]:
        """``script`` on each run's lease (with this replica and ``args``), in one round trip."""
        if not runs:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for ns, name, uid in runs:
            await script(keys=[OrchestrationKeys(ns, name).owner(uid)], args=[self.replica, *args], client=pipe)
        replies = await pipe.execute()
        return {run: bool(r) for run, r in zip(runs, replies, strict=True)}

    async def holder(self, namespace: str, name: str, uid: str) -> str | None:
        raw = await self.redis.get(OrchestrationKeys(namespace, name).owner(uid))
        return None if raw is None else raw.decode() if isinstance(raw, bytes) else str(raw)
