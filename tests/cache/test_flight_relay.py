"""Two `ResponseCache`s (two routers' worth) on one real redis-server, around the real
`UpstreamRelay` and a loopback upstream: how leases end when clients leave."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from anthropic_router import metrics
from anthropic_router.cache import ResponseCache
from anthropic_router.cache.stores import RedisStore
from anthropic_router.config import Settings
from anthropic_router.rediskv import KVUnavailable, RedisKV
from anthropic_router.relay import UpstreamRelay
from anthropic_router.routing import Router
from support import openai_chunks as oc
from support import replies
from support.calls import UPSTREAM_KEY, messages_call
from support.services import RedisServer
from support.upstream import FakeUpstream

pytestmark = pytest.mark.anyio

FLIGHTS = "return redis.call('KEYS', ARGV[1])"


@pytest.fixture
async def kvs(redis_server: RedisServer) -> AsyncIterator[list[RedisKV]]:
    clients = [RedisKV(redis_server.url, prefix="t:", retry_interval=30) for _ in range(2)]
    yield clients
    for client in clients:
        await client.close()


def _caches(kvs: list[RedisKV]) -> list[ResponseCache]:
    settings = Settings(_env_file=None, openrouter_api_key=UPSTREAM_KEY)
    return [
        ResponseCache(
            UpstreamRelay(settings),
            RedisStore(kv, "rc", KVUnavailable, lambda store, op: None),
            ttl=60,
            max_entry_bytes=1 << 20,
            wait_timeout=30,
            metrics=metrics,
        )
        for kv in kvs
    ]


def _stream(text: str) -> Any:
    return replies.sse([*oc.text_chunks(text, 3), oc.finish_chunk(), oc.usage_chunk(6, 3)])


def _waiting() -> float:
    return REGISTRY.get_sample_value("anthropic_router_response_cache_waiting") or 0.0


async def _until(condition: Any) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_a_stream_leader_whose_client_leaves_ends_its_lease(
    router: Router, upstream: FakeUpstream, kvs: list[RedisKV]
) -> None:
    one, two = _caches(kvs)
    upstream.enqueue(_stream("never read to the end"), _stream("the second leader"))
    left = await one.run(messages_call(router, stream=True))
    assert left.events is not None
    await left.events.__anext__()
    await left.events.aclose()
    assert await kvs[0].eval(FLIGHTS, [], ["t:rc:flight:*"]) == []
    call = messages_call(router, stream=True)
    led = await two.run(call)  # no lease left to wait for: leads at once
    assert call.record.cache == "miss" and led.events is not None
    assert [event async for batch in led.events for event in batch][-1]["type"] == "message_stop"
    hit = messages_call(router, stream=False)
    await one.run(hit)
    assert hit.record.cache == "hit" and len(upstream.requests) == 2


async def test_a_follower_whose_client_leaves_holds_nothing_and_the_leader_lands(
    router: Router, upstream: FakeUpstream, kvs: list[RedisKV]
) -> None:
    one, two = _caches(kvs)
    gate = threading.Event()
    upstream.enqueue(replies.gated(gate, replies.completion("landed")))
    before = _waiting()
    leader = asyncio.create_task(one.run(messages_call(router, stream=False)))
    await _until(lambda: len(upstream.requests) == 1)
    follower = asyncio.create_task(two.run(messages_call(router, stream=True)))
    await _until(lambda: _waiting() == before + 1)
    follower.cancel()
    with pytest.raises(asyncio.CancelledError):
        await follower
    assert _waiting() == before
    gate.set()
    answer = await leader
    assert answer.message is not None and answer.message["content"][0]["text"] == "landed"
    assert await kvs[0].eval(FLIGHTS, [], ["t:rc:flight:*"]) == []
    again = messages_call(router, stream=True)
    await two.run(again)
    assert again.record.cache == "hit" and len(upstream.requests) == 1
