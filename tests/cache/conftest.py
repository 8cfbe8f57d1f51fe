"""The cache tests that drive `ResponseCache` in process: a fresh loopback upstream per test
and a Router on it (support/calls.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from anthropic_router.routing import Router
from support.calls import open_router
from support.upstream import FakeUpstream


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture
async def router(upstream: FakeUpstream) -> AsyncIterator[Router]:
    async with open_router(f"{upstream.url}/api/v1") as built:
        yield built
