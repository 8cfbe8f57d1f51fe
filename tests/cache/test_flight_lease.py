"""The Redis store's single-flight lease on a real redis-server: one claim leads, the entry
and the lease end together, and only the lease's owner can end it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from anthropic_router.cache.entry import Entry, make_entry
from anthropic_router.cache.stores import MemoryStore, RedisStore
from anthropic_router.rediskv import KVUnavailable, RedisKV
from support.services import RedisServer

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def kv(redis_server: RedisServer) -> AsyncIterator[RedisKV]:
    client = RedisKV(redis_server.url, prefix="test:", retry_interval=30)
    yield client
    await client.close()


def _store(kv: RedisKV, errors: list[tuple[str, str]] | None = None) -> RedisStore:
    seen = errors if errors is not None else []
    return RedisStore(kv, "rc", KVUnavailable, lambda store, op: seen.append((store, op)))


def _entry(text: str) -> Entry:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    return make_entry(message, [], {"backend": "b", "upstream_model": "m"})


async def test_the_first_claim_leads_and_the_others_see_its_token(kv: RedisKV) -> None:
    one, two = _store(kv), _store(kv)
    assert await one.claim("k", "token-a", 30) == b"token-a"
    assert await two.claim("k", "token-b", 30) == b"token-a"
    assert await one.claim("k", "token-a", 30) == b"token-a"


async def test_the_leaders_put_stores_the_entry_and_ends_its_lease(kv: RedisKV) -> None:
    store = _store(kv)
    await store.claim("k", "token-a", 30)
    await store.put("k", _entry("landed"), 60, lease="token-a")
    found = await store.claim("k", "token-b", 30)
    assert isinstance(found, Entry) and b"landed" in found.json_body
    assert await kv.get("rc:flight:k") is None


async def test_only_the_owner_ends_a_lease(kv: RedisKV) -> None:
    store = _store(kv)
    await store.claim("k", "token-a", 30)
    await store.release("k", "token-b")
    await store.put("k2", _entry("other"), 60, lease="token-b")
    assert await store.claim("k", "token-b", 30) == b"token-a"
    await store.release("k", "token-a")
    assert await store.claim("k", "token-b", 30) == b"token-b"


async def test_a_lease_whose_leader_is_gone_expires_and_another_leads(kv: RedisKV) -> None:
    store = _store(kv)
    assert await store.claim("k", "dead-leader", 0.05) == b"dead-leader"
    deadline = time.monotonic() + 10
    while (found := await store.claim("k", "next", 30)) != b"next":
        assert found == b"dead-leader" and time.monotonic() < deadline
        await asyncio.sleep(0.01)
    # The dead leader's late put stores its (whole) answer but leaves the new lease alone.
    await store.put("k", _entry("late"), 60, lease="dead-leader")
    assert await kv.get("rc:flight:k") == b"next"


async def test_redis_down_means_no_lease_and_a_counted_error(
    kv: RedisKV, redis_server: RedisServer
) -> None:
    errors: list[tuple[str, str]] = []
    store = _store(kv, errors)
    redis_server.stop()
    assert await store.claim("k", "token-a", 30) is None
    await store.release("k", "token-a")
    await store.put("k", _entry("lost"), 60, lease="token-a")
    assert errors == [("redis", "claim"), ("redis", "release"), ("redis", "put")]


async def test_the_memory_store_has_no_lease() -> None:
    store = MemoryStore(1 << 20)
    assert await store.claim("k", "token-a", 30) is None
    await store.release("k", "token-a")
    await store.put("k", _entry("kept"), 60, lease="token-a")
    assert await store.get("k") is not None
