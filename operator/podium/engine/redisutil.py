"""Small helpers so engine code works with Redis clients that decode responses and ones that do not."""

from __future__ import annotations


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
