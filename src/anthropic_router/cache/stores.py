"""Where response-cache entries live: this process's memory (default), or Redis when
REDIS_URL is set so that several router processes and machines share hits.

A store never raises into a request: Redis errors (through `rediskv.RedisKV`, which warns
once per outage and skips Redis quickly while it is down) make a lookup a miss and a write
a no-op, and are counted by `on_error`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import orjson

from anthropic_router.cache.entry import Entry, from_bytes, to_bytes

OnError = Callable[[str, str], None]  # (store, operation)


class CacheStore(Protocol):
    name: str

    async def get(self, key: str) -> Entry | None: ...

    async def put(self, key: str, entry: Entry, ttl: float) -> None: ...

    @property
    def size_bytes(self) -> int: ...


class MemoryStore:
    """An LRU bounded by bytes: the least recently used entries go first when a new one
    does not fit. Expired entries are dropped when met (TTL checked on every lookup).

    Each entry is held as one flat tuple: its expiry, size, the lengths of its parts and one
    bytes object with all of them (meta JSON, Message JSON, SSE). The garbage collector stops
    tracking such a tuple at its first pass over it, so a full store does not slow the full
    passes (an Entry with its dicts and lists did: 70-110 ms each with the store filling).
    The one concatenation also sizes the bytes exactly: orjson's output keeps a buffer of
    about 16 KB whatever its length, so a stored `orjson.dumps` result of 1.5 KB held 16 KB
    (20 KB an entry with its meta, against the 1.6-3.5 KB counted).
    """

    name = "memory"

    def __init__(self, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[float, int, int, int, bytes]] = OrderedDict()
        self._bytes = 0
        self._clock = clock

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> Entry | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if found[0] <= self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        _, _, meta_end, json_end, data = found
        return Entry(orjson.loads(data[:meta_end]), data[meta_end:json_end], data[json_end:])

    async def put(self, key: str, entry: Entry, ttl: float) -> None:
        size = entry.size
        if size > self.max_bytes:
            return
        self._drop(key)
        while self._entries and self._bytes + size > self.max_bytes:
            self._drop(next(iter(self._entries)))
        meta = orjson.dumps(entry.meta)
        data = meta + entry.json_body + entry.sse_body  # one exact-size copy (see above)
        meta_end = len(meta)
        json_end = meta_end + len(entry.json_body)
        self._entries[key] = (self._clock() + ttl, size, meta_end, json_end, data)
        self._bytes += size

    def _drop(self, key: str) -> None:
        found = self._entries.pop(key, None)
        if found is not None:
            self._bytes -= found[1]


class KV(Protocol):
    """What the Redis store needs of `rediskv.RedisKV`."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None: ...


class RedisStore:
    """Entries as compressed bytes under `<namespace>:<key>`, expired by Redis itself."""

    name = "redis"

    def __init__(self, kv: KV, namespace: str, unavailable: type[Exception], on_error: OnError):
        self._kv = kv
        self._namespace = namespace
        self._unavailable = unavailable
        self._on_error = on_error

    @property
    def size_bytes(self) -> int:
        return 0  # Redis keeps the count (INFO memory); this process holds nothing

    async def get(self, key: str) -> Entry | None:
        try:
            data = await self._kv.get(f"{self._namespace}:{key}")
        except self._unavailable:
            self._on_error(self.name, "get")
            return None
        return None if data is None else from_bytes(data)

    async def put(self, key: str, entry: Entry, ttl: float) -> None:
        try:
            await self._kv.set(f"{self._namespace}:{key}", to_bytes(entry), ttl)
        except self._unavailable:
            self._on_error(self.name, "put")
