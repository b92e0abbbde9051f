"""The node's Service proxy with real sockets on loopback (no API server needed)."""

from __future__ import annotations

import asyncio

from podium_localcluster.node.services import ServiceProxy
from podium_localcluster.redis_server import free_port


async def _backend(host: str, name: bytes) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.readline()
        writer.write(name + b":" + data)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, host, 0)
    return server, server.sockets[0].getsockname()[1]


async def _ask(host: str, port: int) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"hello\n")
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    return data


async def test_cluster_ip_forwards_round_robin_and_follows_endpoint_changes() -> None:
    a, pa = await _backend("127.64.250.2", b"a")
    b, pb = await _backend("127.64.250.3", b"b")
    vip, vport = "127.96.250.9", free_port("127.96.250.9")
    proxy = ServiceProxy()
    try:
        await proxy.apply({(vip, vport): [("127.64.250.2", pa), ("127.64.250.3", pb)]})
        answers = {await _ask(vip, vport) for _ in range(4)}
        assert answers == {b"a:hello\n", b"b:hello\n"}
        # One endpoint goes unready: only the other gets traffic.
        await proxy.apply({(vip, vport): [("127.64.250.3", pb)]})
        assert {await _ask(vip, vport) for _ in range(3)} == {b"b:hello\n"}
        # No ready endpoint: the connection is dropped without an answer, like a rejected service.
        await proxy.apply({(vip, vport): []})
        try:
            assert await _ask(vip, vport) == b""
        except ConnectionResetError:
            pass
        # Service deleted: nothing listens any more.
        await proxy.apply({})
        try:
            await _ask(vip, vport)
            raise AssertionError("the ClusterIP still answers after the Service was removed")
        except ConnectionRefusedError:
            pass
    finally:
        await proxy.close()
        a.close()
        b.close()
