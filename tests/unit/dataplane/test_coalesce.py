"""The dispatch coalescer: one send per tick (or per in-flight send), each caller gets its own outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from podium.dataplane.coalesce import Coalescer


class Recorder:
    """A send that records its batches; items named 'bad*' fail on their own, 'boom' fails the whole send."""

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[list[str]] = []
        self.delay = delay

    async def __call__(self, items: list[str]) -> Sequence[BaseException | None]:
        self.batches.append(list(items))
        await asyncio.sleep(self.delay)
        if "boom" in items:
            raise ConnectionError("lost the connection")
        return [ValueError(i) if i.startswith("bad") else None for i in items]


async def test_calls_of_one_tick_share_a_send_and_later_ones_wait_for_the_next() -> None:
    send = Recorder(delay=0.01)
    c: Coalescer[str] = Coalescer(send)
    first = [asyncio.create_task(c.submit(f"a{i}")) for i in range(3)]
    await asyncio.sleep(0.001)  # the first send is in flight now
    second = [asyncio.create_task(c.submit(f"b{i}")) for i in range(2)]
    await asyncio.gather(*first, *second)
    assert send.batches == [["a0", "a1", "a2"], ["b0", "b1"]]


async def test_each_caller_gets_its_own_error() -> None:
    c: Coalescer[str] = Coalescer(Recorder())
    outcomes = await asyncio.gather(c.submit("ok1"), c.submit("bad1"), c.submit("ok2"), return_exceptions=True)
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], ValueError) and str(outcomes[1]) == "bad1"


async def test_a_failed_send_fails_its_batch_only() -> None:
    send = Recorder(delay=0.01)
    c: Coalescer[str] = Coalescer(send)
    doomed = [asyncio.create_task(c.submit(x)) for x in ("x", "boom")]
    await asyncio.sleep(0.001)
    later = asyncio.create_task(c.submit("y"))
    outcomes = await asyncio.gather(*doomed, later, return_exceptions=True)
    assert [type(o) for o in outcomes] == [ConnectionError, ConnectionError, type(None)]


async def test_batches_are_capped_and_nothing_is_lost() -> None:
    send = Recorder()
    c: Coalescer[str] = Coalescer(send, max_batch=4)
    await asyncio.gather(*(c.submit(str(i)) for i in range(10)))
    assert [len(b) for b in send.batches] == [4, 4, 2]
    assert [x for b in send.batches for x in b] == [str(i) for i in range(10)]


async def test_close_waits_for_what_was_submitted() -> None:
    send = Recorder(delay=0.02)
    c: Coalescer[str] = Coalescer(send)
    pending = asyncio.create_task(c.submit("last"))
    await asyncio.sleep(0)
    await c.aclose()
    assert send.batches == [["last"]]
    await pending


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        Coalescer(Recorder(), max_batch=0)
