"""Two `ResponseCache`s (two routers' worth) on one real redis-server, around the real
`UpstreamRelay` and a loopback upstream: how leases end when clients leave."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from anthropic_router import metrics
from anthropic_router.cache import ResponseCache
from anthropic_router.cache.stores import RedisStore
from anthropic_router.config import Settings
from anthropic_router.observability import Exchange, new_request_id
from anthropic_router.rediskv import KVUnavailable, RedisKV
from anthropic_router.relay import Call, UpstreamRelay
from anthropic_router.routing import Router
from anthropic_router.wire.anthropic import parse_messages_request
from support import openai_chunks as oc
from support import replies
from support.services import RedisServer
from support.upstream import FakeUpstream

pytestmark = pytest.mark.anyio

KEY = "test-upstream-key-0000"
FLIGHTS = "return redis.call('KEYS', ARGV[1])"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture
async def router(upstream: FakeUpstream) -> AsyncIterator[Router]:
    settings = Settings(
        _env_file=None, openrouter_api_key=KEY, openrouter_base_url=f"{upstream.url}/api/v1"
    )
    built = Router(settings)
    for provider in built.providers():
        provider.open()
    yield built
    for provider in built.providers():
        await provider.aclose()


@pytest.fixture
async def kvs(redis_server: RedisServer) -> AsyncIterator[list[RedisKV]]:
    clients = [RedisKV(redis_server.url, prefix="t:", retry_interval=30) for _ in range(2)]
    yield clients
    for client in clients:
        await client.close()


def _caches(kvs: list[RedisKV]) -> list[ResponseCache]:
    settings = Settings(_env_file=None, openrouter_api_key=KEY)
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


def _call(router: Router, stream: bool) -> Call:
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "hi"}],
    }
    request = parse_messages_request(body)
    record = Exchange(new_request_id(), "POST", "/v1/messages")
    return Call(request, router.resolve(request["model"]), record, stream=stream)


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
    left = await one.run(_call(router, stream=True))
    assert left.events is not None
    await left.events.__anext__()
    await left.events.aclose()
    assert await kvs[0].eval(FLIGHTS, [], ["t:rc:flight:*"]) == []
    call = _call(router, stream=True)
    led = await two.run(call)  # no lease left to wait for: leads at once
    assert call.record.cache == "miss" and led.events is not None
    assert [event async for batch in led.events for event in batch][-1]["type"] == "message_stop"
    hit = _call(router, stream=False)
    await one.run(hit)
    assert hit.record.cache == "hit" and len(upstream.requests) == 2


async def test_a_follower_whose_client_leaves_holds_nothing_and_the_leader_lands(
    router: Router, upstream: FakeUpstream, kvs: list[RedisKV]
) -> None:
    one, two = _caches(kvs)
    gate = threading.Event()
    upstream.enqueue(replies.gated(gate, replies.completion("landed")))
    before = _waiting()
    leader = asyncio.create_task(one.run(_call(router, stream=False)))
    await _until(lambda: len(upstream.requests) == 1)
    follower = asyncio.create_task(two.run(_call(router, stream=True)))
    await _until(lambda: _waiting() == before + 1)
    follower.cancel()
    with pytest.raises(asyncio.CancelledError):
        await follower
    assert _waiting() == before
    gate.set()
    answer = await leader
    assert answer.message is not None and answer.message["content"][0]["text"] == "landed"
    assert await kvs[0].eval(FLIGHTS, [], ["t:rc:flight:*"]) == []
    again = _call(router, stream=True)
    await two.run(again)
    assert again.record.cache == "hit" and len(upstream.requests) == 1
