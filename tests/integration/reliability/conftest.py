"""Fixtures of the reliability tests: a Bus on the test's Redis, a namespace of the test's own."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def ns() -> str:
    return "r" + uuid.uuid4().hex[:10]
