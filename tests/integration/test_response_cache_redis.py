"""The response cache on a real redis-server: routers share hits, and a Redis outage
costs hits, never requests."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from support import replies
from support.router import RouterProcess
from support.services import RedisServer
from support.upstream import FakeUpstream

pytestmark = pytest.mark.integration

CACHE = "x-anthropic-router-cache"
RETRY_INTERVAL = 0.2


def _env(redis: RedisServer) -> dict[str, str]:
    return {
        "PROMPT_CACHE_ENABLE": "true",
        "REDIS_URL": redis.url,
        "REDIS_RETRY_INTERVAL": str(RETRY_INTERVAL),
    }


def _body() -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": f"question {uuid.uuid4().hex}"}],
    }


def _post(router: RouterProcess, body: dict[str, Any], **extra: Any) -> httpx.Response:
    return httpx.post(f"{router.url}/v1/messages", json={**body, **extra}, timeout=30)


def test_two_router_processes_share_a_hit(router_factory, upstream: FakeUpstream, redis_server):
    first, second = router_factory(env=_env(redis_server)), router_factory(env=_env(redis_server))
    body = _body()
    upstream.enqueue(replies.completion("from one for both " * 2000))  # compressed in Redis
    miss = _post(first, body)
    hit = _post(second, body)
    streamed = _post(second, body, stream=True)
    assert miss.headers[CACHE] == "miss" and hit.headers[CACHE] == "hit"
    assert streamed.headers[CACHE] == "hit" and b"event: message_stop" in streamed.content
    assert hit.json()["content"] == miss.json()["content"]
    assert len(upstream.requests) == 1


def _errors(router: RouterProcess) -> float:
    text = httpx.get(f"{router.url}/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "anthropic_router_response_cache_errors_total"
    )


def test_requests_succeed_while_redis_is_down_and_hits_return_with_it(
    router_factory, upstream: FakeUpstream, redis_server
):
    router = router_factory(env=_env(redis_server))
    body = _body()
    assert _post(router, body).headers[CACHE] == "miss"
    assert _post(router, body).headers[CACHE] == "hit"

    redis_server.stop()
    during = [_post(router, body), _post(router, body, stream=True), _post(router, _body())]
    assert [response.status_code for response in during] == [200, 200, 200]
    assert {response.headers[CACHE] for response in during} == {"miss"}
    assert b"event: message_stop" in during[1].content
    assert _errors(router) >= 3
    assert len(upstream.requests) == 4

    redis_server.start()  # back, and empty
    time.sleep(RETRY_INTERVAL * 2)  # past the interval in which calls skip Redis
    again = _body()
    assert _post(router, again).headers[CACHE] == "miss"
    assert _post(router, again).headers[CACHE] == "hit"
    assert router.logs().count("response cache") == 0  # Redis warns once; the cache not at all
