"""Single flight across router processes sharing one real redis-server: identical requests
on two routers make one upstream call; a failed leader hands over; without Redis each router
flies alone. The upstream holds its answers until the test opens a gate, once every other
request is seen waiting (the routers' waiting gauge), so the order is set by events."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from anthropic_router.convert.sse import SSEDecoder
from support import openai_chunks as oc
from support import replies
from support.grammar import accumulate, check_grammar
from support.router import RouterProcess
from support.services import RedisServer
from support.upstream import FakeUpstream

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

CACHE = "x-anthropic-router-cache"
WAITING = "anthropic_router_response_cache_waiting"


def _env(redis: RedisServer) -> dict[str, str]:
    return {"PROMPT_CACHE_ENABLE": "true", "REDIS_URL": redis.url, "REDIS_RETRY_INTERVAL": "30"}


def _body() -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": f"question {uuid.uuid4().hex}"}],
    }


async def _ask(http: httpx.AsyncClient, router: RouterProcess, body: dict[str, Any], stream: bool):
    """(status, cache header, answer text) of one request, stream or not."""
    response = await http.post(f"{router.url}/v1/messages", json={**body, "stream": stream})
    if response.status_code != 200:
        return response.status_code, response.headers.get(CACHE), response.text
    if stream:
        decoder = SSEDecoder()
        events = [json.loads(p) for p in decoder.feed(response.content) + decoder.flush()]
        check_grammar(events)
        message = accumulate(events)
    else:
        message = response.json()
    return 200, response.headers[CACHE], message["content"][0]["text"]


def _asks_over(
    http: httpx.AsyncClient, routers: list[RouterProcess], body: dict[str, Any], count: int
) -> list[asyncio.Future[Any]]:
    """`count` identical requests at once, alternating between the routers; of each four,
    two are streams (`stream` is not in the cache key)."""
    return [
        asyncio.ensure_future(_ask(http, routers[n % 2], body, stream=n % 4 >= 2))
        for n in range(count)
    ]


async def _waiting(http: httpx.AsyncClient, routers: list[RouterProcess]) -> int:
    total = 0.0
    for router in routers:
        text = (await http.get(f"{router.url}/metrics")).text
        for family in text_string_to_metric_families(text):
            total += sum(s.value for s in family.samples if s.name == WAITING)
    return int(total)


async def _until_settled(
    http: httpx.AsyncClient, routers: list[RouterProcess], upstream: FakeUpstream, **state: int
) -> None:
    """Until `waiting` requests wait and the upstream has had `calls` (a bound, no timing)."""
    seen: dict[str, int] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        seen = {"waiting": await _waiting(http, routers), "calls": len(upstream.requests)}
        if seen == state:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {state}, still {seen}")


async def test_identical_requests_on_two_routers_make_one_upstream_call(
    router_factory, upstream: FakeUpstream, redis_server
) -> None:
    routers = [router_factory(env=_env(redis_server)) for _ in range(2)]
    gate = threading.Event()
    upstream.enqueue(replies.gated(gate, replies.completion("one answer for both routers")))
    body = _body()
    async with httpx.AsyncClient(timeout=60) as http:
        asks = _asks_over(http, routers, body, 8)  # four on each router, half of them streams
        await _until_settled(http, routers, upstream, waiting=7, calls=1)
        gate.set()
        answers = await asyncio.gather(*asks)
        assert await _waiting(http, routers) == 0
    assert len(upstream.requests) == 1
    assert sorted(cache for _, cache, _ in answers) == ["hit"] * 7 + ["miss"]
    assert {(status, text) for status, _, text in answers} == {(200, "one answer for both routers")}


async def test_a_stream_leader_on_one_router_answers_the_other_routers_requests(
    router_factory, upstream: FakeUpstream, redis_server
) -> None:
    first, second = (router_factory(env=_env(redis_server)) for _ in range(2))
    gate = threading.Event()
    chunks = [*oc.text_chunks("streamed once", 2), oc.finish_chunk(), oc.usage_chunk()]
    upstream.enqueue(replies.gated(gate, replies.sse(chunks)))
    body = _body()
    async with httpx.AsyncClient(timeout=60) as http:
        leader = asyncio.ensure_future(_ask(http, first, body, stream=True))
        await _until_settled(http, [first, second], upstream, waiting=0, calls=1)
        others = [asyncio.ensure_future(_ask(http, second, body, stream=n < 2)) for n in range(4)]
        await _until_settled(http, [first, second], upstream, waiting=4, calls=1)
        gate.set()
        answers = [await leader, *await asyncio.gather(*others)]
    assert len(upstream.requests) == 1
    assert [cache for _, cache, _ in answers] == ["miss"] + ["hit"] * 4
    assert {(status, text) for status, _, text in answers} == {(200, "streamed once")}


async def test_when_the_leader_fails_a_request_on_the_other_router_leads(
    router_factory, upstream: FakeUpstream, redis_server
) -> None:
    first, second = (router_factory(env=_env(redis_server)) for _ in range(2))
    routers = [first, second]
    failing, answering = threading.Event(), threading.Event()
    upstream.enqueue(
        replies.gated(failing, replies.error(400, "the leader failed")),
        replies.gated(answering, replies.completion("the second leader's answer")),
    )
    body = _body()
    async with httpx.AsyncClient(timeout=60) as http:
        leader = asyncio.ensure_future(_ask(http, first, body, stream=False))
        await _until_settled(http, routers, upstream, waiting=0, calls=1)
        others = [
            asyncio.ensure_future(_ask(http, routers[n % 2], body, stream=n % 2 == 0))
            for n in range(5)
        ]
        await _until_settled(http, routers, upstream, waiting=5, calls=1)
        failing.set()
        failed = await leader
        # One of the five leads the next attempt; the four others wait for it.
        await _until_settled(http, routers, upstream, waiting=4, calls=2)
        answering.set()
        answers = await asyncio.gather(*others)
    assert failed[0] == 400 and "the leader failed" in failed[2]
    assert len(upstream.requests) == 2
    assert sorted(cache for _, cache, _ in answers) == ["hit"] * 4 + ["miss"]
    assert {(status, text) for status, _, text in answers} == {(200, "the second leader's answer")}


async def test_without_redis_each_router_leads_its_own_flight(
    router_factory, upstream: FakeUpstream, redis_server
) -> None:
    routers = [router_factory(env=_env(redis_server)) for _ in range(2)]
    redis_server.stop()
    gate = threading.Event()
    upstream.enqueue(
        replies.gated(gate, replies.completion("each on its own")),
        replies.gated(gate, replies.completion("each on its own")),
    )
    body = _body()
    async with httpx.AsyncClient(timeout=60) as http:
        asks = _asks_over(http, routers, body, 6)
        # One leader per router, the other two on each router waiting in its process.
        await _until_settled(http, routers, upstream, waiting=4, calls=2)
        gate.set()
        answers = await asyncio.gather(*asks)
    assert len(upstream.requests) == 2
    assert sorted(cache for _, cache, _ in answers) == ["hit"] * 4 + ["miss"] * 2
    assert {(status, text) for status, _, text in answers} == {(200, "each on its own")}
    for router in routers:
        assert "unavailable" in router.logs() and "Traceback" not in router.logs()
