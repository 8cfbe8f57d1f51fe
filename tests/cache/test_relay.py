"""`ResponseCache` used directly as a relay (no ASGI, no server of ours), around the real
`UpstreamRelay` and a real loopback upstream: what batches or a tool loop wrapped by the
cache would see."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from anthropic_router.cache import ResponseCache
from anthropic_router.cache.stores import MemoryStore
from anthropic_router.config import Settings
from anthropic_router.relay import UpstreamRelay
from anthropic_router.routing import Router
from support import openai_chunks as oc
from support.calls import messages_call
from support.grammar import accumulate, check_grammar
from support.upstream import FakeUpstream, completion, sse

pytestmark = pytest.mark.anyio


def _cache(router: Router, **options: Any) -> tuple[ResponseCache, MemoryStore]:
    store = MemoryStore(1 << 24)
    settings = Settings(_env_file=None, openrouter_api_key="test-upstream-key-0000")
    options = {"ttl": 60, "max_entry_bytes": 1 << 20, **options}
    return ResponseCache(UpstreamRelay(settings), store, **options), store


def _stream(text: str) -> Any:
    return sse([*oc.text_chunks(text, 3), oc.finish_chunk(), oc.usage_chunk(6, 3)])


async def test_a_stream_read_to_the_end_is_stored_and_served_as_events_or_bytes(
    router: Router, upstream: FakeUpstream
) -> None:
    cache, store = _cache(router)
    upstream.enqueue(_stream("all of it"))
    miss = await cache.run(messages_call(router, stream=True))
    assert miss.events is not None and miss.encoded is None
    original = [event async for batch in miss.events for event in batch]
    assert len(store) == 1
    hit_call = messages_call(router, stream=True)
    hit = await cache.run(hit_call)
    assert hit_call.record.cache == "hit" and hit.encoded is not None and hit.events is not None
    replayed = [event async for batch in hit.events for event in batch]
    check_grammar(replayed)
    assert accumulate(replayed)["content"] == accumulate(original)["content"]
    assert replayed[0]["message"]["id"].encode() in hit.encoded
    assert len(upstream.requests) == 1


async def test_a_consumer_that_stops_early_leaves_nothing_stored(
    router: Router, upstream: FakeUpstream
) -> None:
    cache, store = _cache(router)
    upstream.enqueue(_stream("never finished reading"), _stream("second"))
    reply = await cache.run(messages_call(router, stream=True))
    assert reply.events is not None
    await reply.events.__anext__()  # message_start, then the consumer walks away
    await reply.events.aclose()
    assert len(store) == 0
    again = messages_call(router, stream=True)
    second = await cache.run(again)
    assert again.record.cache == "miss" and second.events is not None
    await second.events.aclose()


async def test_a_message_hit_has_a_fresh_id_and_the_original_usage(
    router: Router, upstream: FakeUpstream
) -> None:
    cache, _ = _cache(router)
    upstream.enqueue(completion("stored", usage=oc.usage_dict(30, 4)))
    first = await cache.run(messages_call(router, stream=False))
    call = messages_call(router, stream=False)
    second = await cache.run(call)
    assert first.message is not None and second.message is not None
    assert second.message["id"] != first.message["id"]
    assert {**second.message, "id": ""} == {**first.message, "id": ""}
    assert call.record.usage == first.message["usage"] and call.record.backend == "openrouter"
    assert second.encoded is not None and second.message["id"].encode() in second.encoded


async def test_an_answer_over_the_entry_limit_is_served_not_stored(
    router: Router, upstream: FakeUpstream
) -> None:
    cache, store = _cache(router, max_entry_bytes=2000)
    upstream.enqueue(completion("x" * 5000))
    reply = await cache.run(messages_call(router, stream=False))
    assert reply.message is not None and reply.message["content"][0]["text"] == "x" * 5000
    assert len(store) == 0


async def test_only_deterministic_caches_temperature_zero_only(
    router: Router, upstream: FakeUpstream
) -> None:
    cache, store = _cache(router, only_deterministic=True)
    sampled = messages_call(router, stream=False, temperature=0.7)
    await cache.run(sampled)
    assert sampled.record.cache == "bypass" and len(store) == 0
    greedy = messages_call(router, stream=False, temperature=0)
    await cache.run(greedy)
    assert greedy.record.cache == "miss" and len(store) == 1


async def test_a_leader_whose_stream_nobody_reads_stops_leading_after_the_wait(
    router: Router, upstream: FakeUpstream
) -> None:
    cache, store = _cache(router, wait_timeout=0.2)
    upstream.enqueue(_stream("abandoned"), _stream("led again"))
    abandoned = await cache.run(messages_call(router, stream=True))  # neither read nor closed
    follower = messages_call(router, stream=True)
    reply = await cache.run(follower)  # waits 0.2 s for the stuck leader, then leads
    assert follower.record.cache == "miss" and reply.events is not None
    events = [event async for batch in reply.events for event in batch]
    assert accumulate(events)["content"][0]["text"] == "led again" and len(store) == 1
    third = messages_call(router, stream=False)
    await cache.run(third)
    assert third.record.cache == "hit"
    assert abandoned.events is not None
    await abandoned.events.aclose()


async def test_stream_hits_are_the_same_bytes_but_the_id_and_the_store_counts_the_replay(
    router: Router, upstream: FakeUpstream
) -> None:
    cache, store = _cache(router)
    upstream.enqueue(_stream("a recorded answer, in pieces"))
    miss = await cache.run(messages_call(router, stream=True))
    assert miss.events is not None
    original = [event async for batch in miss.events for event in batch]
    json_only = store.size_bytes  # the miss rendered the JSON form only
    bodies, ids = [], []
    for _ in range(3):  # the first stream hit renders the replay, the others reuse it
        hit = await cache.run(messages_call(router, stream=True))
        assert hit.encoded is not None and hit.events is not None
        await hit.events.aclose()
        message_id = hit.encoded.split(b'"id":"', 1)[1].split(b'"', 1)[0]
        ids.append(message_id)
        bodies.append(hit.encoded.replace(message_id, b"msg_X"))
    assert len(set(ids)) == 3 and ids[0].startswith(b"msg_")
    assert bodies[0] == bodies[1] == bodies[2]
    found = await store.get(next(iter(store._entries)))
    assert found is not None and found.sse_body
    assert store.size_bytes == json_only + len(found.sse_body) == found.size
    events = _sse_events(bodies[0])
    check_grammar(events)
    recorded = accumulate(original)
    assert accumulate(events) == {**recorded, "id": "msg_X"}
    plain = await cache.run(messages_call(router, stream=False))
    assert plain.message is not None and plain.message == {**recorded, "id": plain.message["id"]}
    assert len(upstream.requests) == 1


def _sse_events(body: bytes) -> list[Any]:
    return [orjson.loads(frame.split(b"\ndata: ", 1)[1]) for frame in body.split(b"\n\n") if frame]
