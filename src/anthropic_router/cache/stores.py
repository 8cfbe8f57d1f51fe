"""Where response-cache entries live: this process's memory (default), or Redis when
REDIS_URL is set so that several router processes and machines share hits.

A store never raises into a request: Redis errors (through `rediskv.RedisKV`, which warns
once per outage and skips Redis quickly while it is down) make a lookup a miss and a write
a no-op, and are counted by `on_error`.

Single flight across routers (relay.py): a miss `claim`s the key before it goes upstream,
taking a lease under `<namespace>:flight:<key>` that `put(..., lease=)` or `release` ends
(only its owner's token does). The memory store needs none: its process's flight is all
there is (`claim` answers None, "lead without a lease").
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from anthropic_router.cache.entry import Entry, from_bytes, to_bytes

OnError = Callable[[str, str], None]  # (store, operation)


class CacheStore(Protocol):
    name: str

    async def get(self, key: str) -> Entry | None: ...

    async def put(self, key: str, entry: Entry, ttl: float, lease: str | None = None) -> None:
        """Store `entry`; with `lease` (a token from `claim`), end that lease too."""

    async def claim(self, key: str, token: str, ttl: float) -> Entry | bytes | None:
        """The entry when one is stored; else the lease's owner's token (`token` itself
        when this call took it, for `ttl` seconds); None when there is no shared lease."""

    async def release(self, key: str, token: str) -> None: ...

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

    async def put(self, key: str, entry: Entry, ttl: float, lease: str | None = None) -> None:
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

    async def claim(self, key: str, token: str, ttl: float) -> Entry | bytes | None:
        return None  # one process: its in-process flight is the whole single flight

    async def release(self, key: str, token: str) -> None:
        return None


class KV(Protocol):
    """What the Redis store needs of `rediskv.RedisKV`."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None: ...

    async def eval(self, script: str, keys: list[str], args: list[Any]) -> Any: ...


# The entry if stored, else the lease taken when free and its owner's token. One round
# trip, and atomic: a leader cannot store and release between the lookup and the lease.
CLAIM_SCRIPT = """
local entry = redis.call('GET', KEYS[1])
if entry then return {1, entry} end
redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2])
return {0, redis.call('GET', KEYS[2])}
"""
# The leader's entry stored and its lease ended in one round trip (the lease only if it is
# still this leader's: once expired, another request may hold it).
PUT_SCRIPT = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
"""
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


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

    async def put(self, key: str, entry: Entry, ttl: float, lease: str | None = None) -> None:
        name = f"{self._namespace}:{key}"
        try:
            if lease is None:
                await self._kv.set(name, to_bytes(entry), ttl)
            else:
                keys = [name, f"{self._namespace}:flight:{key}"]
                args = [to_bytes(entry), _milliseconds(ttl), lease]
                await self._kv.eval(PUT_SCRIPT, keys, args)
        except self._unavailable:
            self._on_error(self.name, "put")

    async def claim(self, key: str, token: str, ttl: float) -> Entry | bytes | None:
        keys = [f"{self._namespace}:{key}", f"{self._namespace}:flight:{key}"]
        try:
            stored, value = await self._kv.eval(CLAIM_SCRIPT, keys, [token, _milliseconds(ttl)])
        except self._unavailable:
            self._on_error(self.name, "claim")
            return None
        if stored:
            return from_bytes(value)  # None (lead) for bytes this version cannot read
        return value if isinstance(value, bytes) else None

    async def release(self, key: str, token: str) -> None:
        try:
            await self._kv.eval(RELEASE_SCRIPT, [f"{self._namespace}:flight:{key}"], [token])
        except self._unavailable:
            self._on_error(self.name, "release")
