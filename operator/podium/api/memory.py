"""What an Agent remembers: its own turns within a run, and across runs only a named memory it opts into."""

from __future__ import annotations

from pydantic import Field

from podium.api.common import LABEL_PATTERN, Model

DEFAULT_MEMORY_TOKENS = 256


class Memory(Model):
    """What the agent's `llm` backend shows the model of the agent's earlier work, before each task.

    Within a run (always): the agent's own earlier turns in that run (each task it answered: the task's content and
    its answer), newest first until `maxTokens`; older turns are dropped, not summarised, and a retry of a step
    does not see the attempt that was rejected. Across runs (only with `name`): a named memory in Redis that every
    answered task is added to, shown after this run's turns within the same `maxTokens`, bounded by `maxBytes` and
    expiring `ttlSeconds` after its last write. Other backends neither get nor record memory
    (docs/agent-runtime.md)."""

    max_tokens: int = Field(default=DEFAULT_MEMORY_TOKENS, ge=0, le=1_000_000)
    """Most tokens of remembered turns put before a task's prompt, estimated at 3 characters a token (JSON and
    code run denser than prose). 0 shows none (and the named memory is still written). Keep it well inside the
    model's context window, next to the task itself and maxTokens of the answer."""
    name: str | None = Field(default=None, max_length=63, pattern=LABEL_PATTERN)
    """Opt in to memory across runs under this name: the agent's answered tasks are kept in Redis (key
    `podium:{<namespace>/<agent>}:memory:<name>`, reachable only by this Agent's Redis user) and shown in later
    runs. Another name starts an empty memory; the Agent's deletion removes it. Unset: nothing is carried from
    one run to the next."""
    ttl_seconds: int = Field(default=7 * 86400, ge=1, le=366 * 86400)
    """How long the named memory lives after its last write, in seconds; then Redis deletes it whole."""
    max_bytes: int = Field(default=16384, ge=256, le=16 * 1024 * 1024)
    """Largest size of the named memory, in bytes of its entries (JSON); each write drops the oldest entries
    until the rest fits, and an entry larger than this alone is shortened to fit."""
