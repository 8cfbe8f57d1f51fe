"""The memory store (LRU by bytes, TTL, per-entry limit) and the stored entry's byte form."""

from __future__ import annotations

import gc
import tracemalloc

import orjson
import pytest

from anthropic_router.cache.entry import (
    ID_SLOT,
    OVERHEAD,
    Entry,
    from_bytes,
    make_entry,
    to_bytes,
)
from anthropic_router.cache.stores import MemoryStore
from anthropic_router.convert.replay import replay_events
from anthropic_router.convert.sse import encode_events

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _message(text: str) -> dict:
    return {
        "id": "msg_original",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 3,
            "output_tokens": 2,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def _entry(text: str = "hi") -> Entry:
    served = [(b"x-anthropic-router-backend", b"openrouter")]
    return make_entry(_message(text), served, {"backend": "openrouter", "upstream_model": "m"})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_an_entry_lives_until_its_ttl() -> None:
    clock = Clock()
    store = MemoryStore(1 << 20, clock=clock)
    await store.put("k", _entry(), ttl=10)
    assert await store.get("k") is not None
    clock.now += 9.9
    assert await store.get("k") is not None
    clock.now += 0.2
    assert await store.get("k") is None
    assert len(store) == 0 and store.size_bytes == 0


async def test_the_least_recently_used_entries_go_when_bytes_run_out() -> None:
    size = _entry().size
    store = MemoryStore(size * 3)
    for name in "abc":
        await store.put(name, _entry(), ttl=60)
    assert await store.get("a") is not None  # a is now the most recently used
    await store.put("d", _entry(), ttl=60)
    assert await store.get("b") is None
    assert all([await store.get(name) for name in "acd"])
    assert store.size_bytes == size * 3


async def test_an_entry_larger_than_the_store_is_not_kept() -> None:
    store = MemoryStore(1000)
    await store.put("big", _entry("x" * 2000), ttl=60)
    assert await store.get("big") is None and store.size_bytes == 0


async def test_replacing_an_entry_counts_its_bytes_once() -> None:
    store = MemoryStore(1 << 20)
    await store.put("k", _entry("one"), ttl=60)
    await store.put("k", _entry("two"), ttl=60)
    assert len(store) == 1 and store.size_bytes == _entry("two").size


@pytest.mark.parametrize("text", ["short", "long " * 10_000], ids=["plain", "compressed"])
def test_the_byte_form_gives_back_the_entry(text: str) -> None:
    entry = _entry(text)
    data = to_bytes(entry)
    assert from_bytes(data) == entry.with_sse()  # Redis gets both forms, rendered once
    assert (len(data) < len(entry.json_body)) == (len(text) > 20_000)


@pytest.mark.parametrize(
    "data", [b"", b"RC9p....", b"RC1z not zlib", b"RC1p\x00\x00\x00\x09abc"], ids=repr
)
def test_bytes_of_another_format_or_damaged_read_as_nothing(data: bytes) -> None:
    assert from_bytes(data) is None


def test_the_id_slot_is_the_first_thing_replaced_in_both_forms() -> None:
    entry = _entry(ID_SLOT.decode())  # even content that spells the slot stays intact
    json_body = entry.json_body.replace(ID_SLOT, b"msg_new", 1)
    assert json_body.startswith(b'{"id":"msg_new"') and ID_SLOT in json_body
    sse_body = entry.with_sse().sse_body.replace(ID_SLOT, b"msg_new", 1)
    assert b'"message":{"id":"msg_new"' in sse_body.split(b"\n\n")[0]


def test_a_miss_renders_the_json_and_the_first_stream_wanting_it_the_replay() -> None:
    entry = _entry("hello")
    assert entry.sse_body == b""
    assert entry.size == len(entry.json_body) + OVERHEAD
    with_sse = entry.with_sse()
    slotted = {**_message("hello"), "id": ID_SLOT.decode()}
    assert with_sse.sse_body == encode_events(replay_events(slotted))
    assert with_sse.size == len(entry.json_body) + len(with_sse.sse_body) + OVERHEAD
    assert with_sse.with_sse() is with_sse
    assert orjson.loads(entry.json_body) == slotted


async def test_the_store_counts_an_entry_again_when_its_replay_is_added() -> None:
    store = MemoryStore(1 << 20)
    await store.put("k", _entry(), ttl=60)
    assert store.size_bytes == _entry().size
    found = await store.get("k")
    assert found is not None and found.sse_body == b""
    await store.put("k", found.with_sse(), ttl=60)
    again = await store.get("k")
    assert again is not None and again.sse_body == found.with_sse().sse_body
    assert len(store) == 1 and store.size_bytes == found.with_sse().size
    assert again.meta == found.meta and again.json_body == found.json_body


async def test_stored_entries_are_nothing_the_garbage_collector_walks() -> None:
    store = MemoryStore(1 << 30)
    for number in range(200):
        await store.put(f"k{number}", _entry(f"answer {number}").with_sse(), ttl=60)
    gc.collect()  # a collection untracks tuples that hold only bytes and numbers
    rows = list(store._entries.values())
    assert rows and not any(gc.is_tracked(row) for row in rows)


async def test_the_memory_an_entry_holds_is_about_the_bytes_it_counts() -> None:
    # orjson's output keeps a ~16 KB buffer whatever its length: stored as it came, a 1.5 KB
    # entry held 20 KB (the store counted 1.6 KB). The store keeps one exact-size copy.
    entries = [_entry(f"answer number {number} " * 40) for number in range(200)]
    store = MemoryStore(1 << 30)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number, entry in enumerate(entries):
            await store.put(f"{number:040x}", entry, ttl=60)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    counted = store.size_bytes
    assert counted == sum(entry.size for entry in entries)
    assert held < 1.5 * counted, (held, counted)
