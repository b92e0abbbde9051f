"""Redis clients for the bus whose connections build commands with hiredis' C packer.

redis-py uses ``hiredis.pack_command`` only for its sync clients; the asyncio connection packs every
argument in Python, which was a quarter of a bus worker's CPU (each COMPLETE_MANY carries three
arguments per task). :func:`connect` returns an ordinary ``redis.asyncio.Redis`` whose connections
pack in C when hiredis is installed and the client encodes as UTF-8 (what hiredis does); otherwise it
behaves exactly like ``Redis.from_url``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # hiredis is an optional extra of redis-py: fall back to its Python packer
    _hiredis_pack = None

HIREDIS_PACKING = _hiredis_pack is not None


class _HiredisPacking(AbstractConnection):
    """Mixed in before a redis-py async connection class; only replaces how commands become bytes."""

    def pack_command(self, *args: Any) -> list[bytes]:
        enc = self.encoder
        # hiredis encodes str as strict UTF-8 and has no notion of redis-py's other encodings.
        if _hiredis_pack is None or enc.encoding.lower() not in ("utf-8", "utf8") or enc.encoding_errors != "strict":
            return super().pack_command(*args)
        head = args[0]
        # As redis-py does: a multi-word command name ("SCRIPT LOAD") goes out as separate words.
        if isinstance(head, str):
            if " " in head:
                args = (*head.split(), *args[1:])
        elif b" " in head:
            args = (*head.split(), *args[1:])
        for arg in args:
            # redis-py refuses these with DataError; hiredis would send bool as 1/0 or fail with TypeError.
            if arg is None or arg is True or arg is False:
                return super().pack_command(*args)
        try:
            return [_hiredis_pack(args)]
        except TypeError:
            # Types hiredis does not know (e.g. bytearray, memoryview): redis-py's packer handles them or
            # raises the DataError its callers expect.
            return super().pack_command(*args)


_PACKING_CLASSES: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def hiredis_packing(connection_class: type[AbstractConnection]) -> type[AbstractConnection]:
    """``connection_class`` with hiredis command packing (one subclass per class, reused)."""
    if issubclass(connection_class, _HiredisPacking):
        return connection_class
    made = _PACKING_CLASSES.get(connection_class)
    if made is None:
        made = type(f"Hiredis{connection_class.__name__}", (_HiredisPacking, connection_class), {})
        _PACKING_CLASSES[connection_class] = made
    return made


def connect(
    url: str, *, pool_class: type[aioredis.ConnectionPool] = aioredis.ConnectionPool, **kwargs: Any
) -> aioredis.Redis:
    """``redis.asyncio.Redis.from_url(url, **kwargs)`` with hiredis packing on its connections.

    Works for redis://, rediss:// and unix:// URLs (the scheme's own connection class is kept);
    ``pool_class`` may be e.g. ``BlockingConnectionPool``.
    """
    pool = pool_class.from_url(url, **kwargs)
    pool.connection_class = hiredis_packing(pool.connection_class)
    return aioredis.Redis(connection_pool=pool)


__all__ = ["HIREDIS_PACKING", "connect", "hiredis_packing"]
