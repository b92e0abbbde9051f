"""The ``podium`` function library in Redis: building it, loading it, and checking the seals its results carry.

The operator loads the library (:func:`ensure_library`) when it starts, and whenever it applies an Agent and
finds it missing or of another version (:func:`is_current`), on every primary of a Redis Cluster; agents only
call it. The library's code holds the seal secret, so a secret survives as long as the library does (functions
are kept in RDB and AOF files and replicated), and loading a new version keeps the secret already there: results
sealed before an upgrade still verify after it.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError, RedisError, ResponseError

from podium.dataplane import topology
from podium.dataplane.redisutil import text
from podium.dataplane.scripts import LIBRARY_TEMPLATE

NAME = "podium"
DEFAULT_MAX_BYTES = 1 << 20  # the largest task entry or result the library stores, unless the operator says else
VERSION = hashlib.sha1(LIBRARY_TEMPLATE.encode()).hexdigest()[:12]
SEAL_LENGTH = 40  # hex digits of a seal (SHA-1)

_SECRET = re.compile(r"^local SEAL = '([0-9a-f]{40})'$", re.M)
_MAX_BYTES = re.compile(r"^local MAX_BYTES = (\d+)$", re.M)


class LibraryMissing(RedisError):
    """The function library is not loaded and this client may not load it (an agent's Redis user). A RedisError, so
    that a replica's usual handling (log, back off, try again) applies until the operator loads it."""


_MISSING = (
    "the podium function library is not loaded in this Redis and this user may not load it: the operator loads it "
    "when it starts and whenever it applies an Agent"
)


def library_code(secret: str, max_bytes: int) -> str:
    if not re.fullmatch(r"[0-9a-f]{40}", secret):
        raise ValueError("the seal secret must be 40 lower-case hex digits")
    if not isinstance(max_bytes, int) or max_bytes < 1024:
        raise ValueError(f"max_bytes must be an integer >= 1024, got {max_bytes!r}")
    return (
        LIBRARY_TEMPLATE.replace("__SEAL__", secret)
        .replace("__MAX_BYTES__", str(max_bytes))
        .replace("__VERSION__", VERSION)
    )


def seal(secret: str, message: bytes) -> str:
    """What the library's ``seal()`` computes: SHA-1 of the secret and SHA-1 of the secret and the message (the
    outer hash hides the inner one, so a seal cannot be extended to a longer message)."""
    return _seal(secret.encode(), message).decode()


def _seal(key: bytes, message: bytes) -> bytes:
    inner = hashlib.sha1(key + message).hexdigest().encode()
    return hashlib.sha1(key + inner).hexdigest().encode()


def result_message(task_id: str | bytes, result: bytes) -> bytes:
    return (task_id if isinstance(task_id, bytes) else task_id.encode()) + b"\n" + result


@dataclass(frozen=True)
class Library:
    secret: str
    max_bytes: int

    @property
    def code(self) -> str:
        return library_code(self.secret, self.max_bytes)

    def verify(self, task_id: str | bytes, result: bytes, sealed: bytes | str) -> bool:
        """True when ``sealed`` is the library's seal of this task's result (recorded by the completion function)."""
        want = _seal(self._key, result_message(task_id, result))
        return secrets.compare_digest(want, sealed if isinstance(sealed, bytes) else sealed.encode())

    @functools.cached_property
    def _key(self) -> bytes:
        return self.secret.encode()

    def open_value(self, task_id: str, value: bytes) -> bytes | None:
        """The result JSON of a result key's value (seal + JSON), or None when its seal does not verify."""
        if len(value) < SEAL_LENGTH:
            return None
        body = value[SEAL_LENGTH:]
        return body if self.verify(task_id, body, value[:SEAL_LENGTH]) else None


def parse_code(code: str) -> Library | None:
    """The secret and size limit of loaded library code, or None when it is not ours."""
    secret, limit = _SECRET.search(code), _MAX_BYTES.search(code)
    if secret is None or limit is None:
        return None
    return Library(secret.group(1), int(limit.group(1)))


def _library_entries(reply: Any) -> list[dict[str, Any]]:
    out = []
    for item in reply or []:
        if isinstance(item, dict):
            out.append({text(k): v for k, v in item.items()})
        else:
            out.append({text(item[i]): item[i + 1] for i in range(0, len(item) - 1, 2)})
    return out


async def loaded_code(redis: aioredis.Redis, node: Any = None) -> str | None:
    """The code of the ``podium`` library on one node (the client's own when ``node`` is None), or None."""
    reply = await topology.on_node(redis, node, "FUNCTION", "LIST", "LIBRARYNAME", NAME, "WITHCODE")
    for lib in _library_entries(reply):
        if text(lib.get("library_name")) == NAME:
            return text(lib.get("library_code"))
    return None


async def read_library(redis: aioredis.Redis) -> Library | None:
    """The library as loaded (the first primary that has it), or None when none has it."""
    await topology.ready(redis)
    for node in topology.primaries(redis):
        code = await loaded_code(redis, node)
        lib = parse_code(code) if code else None
        if lib is not None:
            return lib
    return None


async def is_current(redis: aioredis.Redis, *, max_bytes: int | None = None) -> bool:
    """Whether every primary holds this version of the library (with ``max_bytes``, when given): asked of the
    library itself (``podium_info``, a few bytes), where :func:`ensure_library` reads the whole code of each. An
    operator applying two thousand Agents asks this two thousand times."""
    await topology.ready(redis)
    for node in topology.primaries(redis):
        try:
            version, limit = await topology.on_node(redis, node, "FCALL_RO", "podium_info", 0)
        except ResponseError:  # not loaded ("function not found"), or this client may not ask: ensure_library says
            return False
        if text(version) != VERSION or (max_bytes is not None and int(limit) != max_bytes):
            return False
    return True


async def ensure_library(
    redis: aioredis.Redis, *, max_bytes: int | None = None, known: Library | None = None
) -> Library:
    """Load the library on every primary where it is missing or differs, keeping the secret already loaded.

    ``max_bytes`` None keeps the loaded limit (or the default when nothing is loaded), so producers that only need
    the library never change the limit the operator chose. ``known``: a library this process loaded before (its
    secret is reused if Redis lost the library, so results sealed earlier still verify). Raises
    :class:`LibraryMissing` when it is missing and this client may not load it.
    """
    await topology.ready(redis)
    nodes = topology.primaries(redis)
    try:
        codes = [await loaded_code(redis, node) for node in nodes]
    except NoPermissionError as exc:
        raise LibraryMissing(_MISSING) from exc
    found = next((lib for code in codes if code and (lib := parse_code(code)) is not None), None)
    base = found or known
    lib = Library(
        base.secret if base else secrets.token_hex(20),
        max_bytes if max_bytes is not None else (base.max_bytes if base else DEFAULT_MAX_BYTES),
    )
    want = lib.code
    for node, code in zip(nodes, codes, strict=True):
        if code == want:
            continue
        try:
            if code is None:
                # No REPLACE: when two processes load a fresh Redis at once, the second one fails here and
                # adopts the first one's secret instead of replacing it.
                await topology.on_node(redis, node, "FUNCTION", "LOAD", want)
            else:
                await topology.on_node(redis, node, "FUNCTION", "LOAD", "REPLACE", want)
        except ResponseError as exc:
            message = str(exc)
            if "already exists" in message:
                return await ensure_library(redis, max_bytes=max_bytes, known=known)
            if isinstance(exc, NoPermissionError):
                raise LibraryMissing(_MISSING) from exc
            raise
    return lib
