"""How a Podium client's commands become bytes and its replies come back: redis-py's asyncio connection, made
cheaper per command without changing what it sends, what it returns or how long it waits.

- **Packing in C.** redis-py packs with hiredis only in its sync clients; its asyncio connection packs every
  argument in Python (a quarter of a bus worker's CPU). Here ``hiredis.pack_command`` does it, producing the
  same bytes, and redis-py's packer takes over for what hiredis cannot write the same way.
- **One deadline per wait, not per reply.** redis-py bounds each reply it reads by ``socket_timeout`` with an
  ``asyncio.timeout`` (a timer scheduled and cancelled per reply: twelve for a pipeline of twelve), and each
  write with ``asyncio.wait_for`` (a Task per write on Python 3.11). Here the bound is applied where the
  connection actually waits: each time the parser needs more bytes from the socket, and a write only when the
  transport's buffer is full. A server that stops answering still fails the call with redis-py's
  ``TimeoutError`` after ``socket_timeout`` and the connection is dropped, as before.
- **A pipeline's replies read in one loop.** redis-py reads each reply of a pipeline through four layers of
  coroutines (the client's parse, the connection's, its parser's and hiredis'), a third of the client CPU of a
  pipeline of a dozen commands. :class:`WireRedis`'s pipelines take each reply straight from hiredis and apply
  the same response callbacks, so they return, raise and time out as redis-py's do; redis-py's ``execute``
  around them (its connection handling, retries and observability) is unchanged.

All only apply where they can: another parser, another encoding, a caller's own read timeout, no
``socket_timeout`` or a transaction leave redis-py's path untouched.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Callable, Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import AbstractConnection
from redis.client import EMPTY_RESPONSE, NEVER_DECODE
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _hiredis_pack
    from redis._parsers import _AsyncHiredisParser
    from redis._parsers.hiredis import NOT_ENOUGH_DATA
except ImportError:  # hiredis is an optional extra of redis-py: fall back to its Python packer and parser
    _hiredis_pack = None
    NOT_ENOUGH_DATA = object()
    _AsyncHiredisParser = None  # type: ignore[assignment,misc]


def _refuses_what_redis_py_refuses() -> bool:
    """Whether this hiredis raises TypeError for None and bools (3.x does; older ones wrote bools as 1/0): then a
    command goes to it unchecked, and redis-py's packer only sees the commands it refused."""
    if _hiredis_pack is None:
        return False
    for value in (None, True, False):
        try:
            _hiredis_pack(("SET", "k", value))
        except TypeError:
            continue
        return False
    return True


_UNCHECKED = _refuses_what_redis_py_refuses()


if _AsyncHiredisParser is not None:

    class _BoundedHiredisParser(_AsyncHiredisParser):
        """redis-py's hiredis parser whose every wait for the socket lasts at most ``bound`` seconds."""

        bound: float | None = None

        async def read_from_socket(self) -> bool:
            if self.bound is None:
                return bool(await super().read_from_socket())
            try:
                async with asyncio.timeout(self.bound):
                    return bool(await super().read_from_socket())
            except TimeoutError:
                # redis-py's own error, not asyncio's: its read_response takes asyncio's for "the caller's
                # timeout passed" and would return None instead of failing the call.
                raise RedisTimeoutError("Timeout reading from Redis") from None


class _Wire(AbstractConnection):
    """Mixed in before a redis-py async connection class."""

    def _hiredis_writes(self) -> bool:
        # hiredis encodes str as strict UTF-8 and has no notion of redis-py's other encodings.
        enc = self.encoder
        utf8 = enc.encoding.lower() in ("utf-8", "utf8") and enc.encoding_errors == "strict"
        return _hiredis_pack is not None and utf8

    def pack_command(self, *args: Any) -> list[bytes]:
        return self._pack(args) if self._hiredis_writes() else super().pack_command(*args)

    def pack_commands(self, commands: Iterable[Iterable[Any]]) -> list[bytes]:
        # A pipeline: one chunk per command, which the transport writes together. redis-py's own loop cuts the
        # packed commands into buffers again, in Python, for the same bytes on the wire (half of packing a dozen).
        if not self._hiredis_writes():
            return super().pack_commands(commands)
        packed: list[bytes] = []
        for command in commands:
            packed += self._pack(tuple(command))
        return packed

    def _pack(self, args: tuple[Any, ...]) -> list[bytes]:
        pack = _hiredis_pack
        if pack is None:  # (the callers checked: _hiredis_writes)
            return super().pack_command(*args)
        head = args[0]
        # As redis-py does: a multi-word command name ("SCRIPT LOAD") goes out as separate words.
        if isinstance(head, str):
            if " " in head:
                args = (*head.split(), *args[1:])
        elif b" " in head:
            args = (*head.split(), *args[1:])
        if not _UNCHECKED:
            for arg in args:
                # redis-py refuses these with DataError; an older hiredis would send a bool as 1/0.
                if arg is None or arg is True or arg is False:
                    return super().pack_command(*args)
        try:
            return [pack(args)]
        except TypeError:
            # Types hiredis does not take (None, bools, bytearray): redis-py's packer handles them or raises the
            # DataError its callers expect.
            return super().pack_command(*args)

    def set_parser(self, parser_class: type[Any]) -> None:
        if _AsyncHiredisParser is not None and parser_class is _AsyncHiredisParser:
            parser_class = _BoundedHiredisParser
        super().set_parser(parser_class)

    async def read_response(
        self,
        disable_decoding: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 (redis-py's signature)
        *,
        disconnect_on_error: bool = True,
        push_request: bool | None = False,
    ) -> Any:
        parser = self._parser
        # (Without hiredis the bounded parser class does not exist.)
        if timeout is None and self.socket_timeout and _AsyncHiredisParser is not None:
            if isinstance(parser, _BoundedHiredisParser):
                parser.bound = self.socket_timeout
                try:
                    # math.inf: redis-py's "no timeout of its own" (the parser bounds each wait instead).
                    return await super().read_response(
                        disable_decoding, math.inf, disconnect_on_error=disconnect_on_error, push_request=push_request
                    )
                finally:
                    parser.bound = None
        return await super().read_response(
            disable_decoding, timeout, disconnect_on_error=disconnect_on_error, push_request=push_request
        )

    async def send_packed_command(self, command: bytes | str | Iterable[bytes], check_health: bool = True) -> None:
        writer = self._writer
        health_due = check_health and self.health_check_interval  # redis-py may PING (and reconnect) first
        if not self.is_connected or writer is None or not self.socket_timeout or health_due:
            return await super().send_packed_command(command, check_health)
        if isinstance(command, str):
            command = command.encode()
        chunks = [command] if isinstance(command, bytes) else list(command)
        transport = writer.transport
        if transport.get_write_buffer_size() + sum(map(len, chunks)) > transport.get_write_buffer_limits()[1]:
            # This write fills the buffer: the drain may wait for the server, so redis-py bounds it.
            return await super().send_packed_command(chunks, check_health)
        try:
            writer.writelines(chunks)
            await writer.drain()  # below the high-water mark: returns at once unless the connection is lost
        except OSError as e:
            await self.disconnect(nowait=True)
            raise RedisConnectionError(f"Error while writing to socket: {e}") from e
        except BaseException:
            await self.disconnect(nowait=True)
            raise


# Commands whose replies change a pipeline's state (redis-py tracks WATCH): a pipeline holding one goes redis-py's
# way, as does one with HIMPORT (bookkeeping around the send) or with reply options the loop does not apply.
_STATEFUL = frozenset({"WATCH", "UNWATCH", "MULTI", "EXEC", "DISCARD"})


def _lean(connection: Any, commands: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> bool:
    """Whether a pipeline's replies can be read straight from hiredis on ``connection``."""
    if _AsyncHiredisParser is None:
        return False
    if not isinstance(connection, _Wire) or not connection.socket_timeout:
        return False
    parser = connection._parser
    if not isinstance(parser, _BoundedHiredisParser) or not parser._connected or parser._reader is None:
        return False
    for args, options in commands:
        name = args[0]
        if not isinstance(name, str) or name in _STATEFUL or name.upper().startswith("HIMPORT"):
            return False
        if NEVER_DECODE in options or EMPTY_RESPONSE in options:
            return False
    return True


class WirePipeline(Pipeline):
    """redis-py's pipeline, its replies read in one loop (module docstring)."""

    async def _execute_pipeline(self, connection: Any, commands: Any, raise_on_error: bool) -> list[Any]:
        if not _lean(connection, commands):
            return list(await super()._execute_pipeline(connection, commands, raise_on_error))
        await connection.send_packed_command(connection.pack_commands([args for args, _ in commands]))
        parser: Any = connection._parser
        reader = parser._reader
        push = parser._hiredis_PushNotificationType  # RESP3's out-of-band messages (None before hiredis 3.2)
        callbacks = self.response_callbacks
        replies: list[Any] = []
        parser.bound = connection.socket_timeout
        try:
            for args, options in commands:
                reply = reader.gets()
                while reply is NOT_ENOUGH_DATA or (push is not None and isinstance(reply, push)):
                    if reply is NOT_ENOUGH_DATA:
                        await parser.read_from_socket()
                    else:  # handled as redis-py's parser does, then the command's own reply follows
                        await parser.handle_push_response(reply)
                    reply = reader.gets()
                # As redis-py's parser: a connection-level error (LOADING, ...) is raised, not returned.
                if isinstance(reply, RedisConnectionError):
                    raise reply
                if isinstance(reply, list) and reply and isinstance(reply[0], RedisConnectionError):
                    raise reply[0]
                if not isinstance(reply, ResponseError):
                    callback = callbacks.get(args[0])
                    if callback is not None:
                        options.pop("keys", None)
                        reply = callback(reply, **options)
                        if inspect.isawaitable(reply):
                            reply = await reply
                replies.append(reply)
        except OSError as e:
            await connection.disconnect(nowait=True)
            raise RedisConnectionError(f"Error while reading from {connection._host_error()} : {e.args}") from e
        except BaseException:
            # As redis-py: a read cut short leaves replies on the socket, so the connection cannot be reused.
            await connection.disconnect(nowait=True)
            raise
        finally:
            parser.bound = None
        if connection.health_check_interval:
            connection.next_health_check = asyncio.get_running_loop().time() + connection.health_check_interval
        if raise_on_error:
            self.raise_first_error(commands, replies)
        return replies


class WireRedis(aioredis.Redis):
    """redis-py's client whose non-transactional pipelines read their replies in one loop."""

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return WirePipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


_CLASSES: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def wire(connection_class: type[AbstractConnection]) -> type[AbstractConnection]:
    """``connection_class`` with C packing and one deadline per wait (one subclass per class, reused)."""
    if issubclass(connection_class, _Wire):
        return connection_class
    made = _CLASSES.get(connection_class)
    if made is None:
        made = type(f"Wire{connection_class.__name__}", (_Wire, connection_class), {})
        _CLASSES[connection_class] = made
    return made


__all__ = ["WirePipeline", "WireRedis", "wire"]
