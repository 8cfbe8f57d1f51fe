"""The response cache as a relay around a relay (see relay.py): a hit answers from the
store in the client's mode, a miss goes to the inner relay and stores the answer once it is
known to be whole.

Not Anthropic prompt caching (`cache_control`, which upstreams honour on their side): this
cache keeps whole answers and replays them without calling the upstream at all.

- Hit: the stored bytes with a fresh message id, as JSON or as a replayed SSE stream.
- Miss: a Message is stored at once; a stream is recorded as it passes and stored only when
  it ended with message_stop, carried no error, and the consumer read it to the end.
- Single flight: while one request for a key is with the upstream, identical ones wait for
  it (at most PROMPT_CACHE_WAIT_TIMEOUT) and are answered from its entry; if it fails they
  go on themselves, one of them leading the next attempt.
- Across routers sharing Redis: a miss about to lead first claims the key (one script: the
  entry if another router stored it meanwhile, else a lease `SET NX PX` for the wait
  timeout). A router whose claim finds another's lease polls the store for that leader's
  entry instead (its own process's identical requests wait on it as above) and leads when
  the lease ends without one: released by a failed leader, or expired with a dead one.
  Redis down: the claim answers "lead", and single flight is per process.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any

import orjson

from anthropic_router.cache.entry import ID_SLOT, Entry, make_entry
from anthropic_router.cache.key import cache_key, route_fingerprint, uncacheable, upstream_headers
from anthropic_router.cache.stores import CacheStore
from anthropic_router.convert.ids import new_message_id
from anthropic_router.convert.replay import MessageAccumulator, replay_events
from anthropic_router.relay import Call, Events, Header, Relay, Reply
from anthropic_router.routing import Route

log = logging.getLogger("anthropic_router")

CACHE_HEADER = b"x-anthropic-router-cache"
HIT, MISS, BYPASS = "hit", "miss", "bypass"
_HEADER = {result: (CACHE_HEADER, result.encode()) for result in (HIT, MISS, BYPASS)}
# A follower that found a failed flight tries again (lookup, wait or lead) this often.
_FLIGHT_ROUNDS = 3
# A router following another's flight looks for its entry after this long, then at twice
# the interval up to _POLL_MAX: a quick answer is seen soon, a long one costs few polls.
_POLL_FIRST, _POLL_MAX = 0.01, 0.2

Flight = asyncio.Future[Entry | None]


class ResponseCache:
    """A `Relay` that answers repeated requests from `store`."""

    def __init__(
        self,
        inner: Relay,
        store: CacheStore,
        *,
        ttl: float,
        max_entry_bytes: int,
        only_deterministic: bool = False,
        wait_timeout: float = 60.0,
        metrics: Any = None,
    ) -> None:
        self.inner = inner
        self.store = store
        self.ttl = ttl
        self.max_entry_bytes = max_entry_bytes
        self.only_deterministic = only_deterministic
        self.wait_timeout = wait_timeout
        self.metrics = metrics
        self._flights: dict[str, Flight] = {}
        self._fingerprints: dict[int, tuple[Route, bytes]] = {}

    async def run(self, call: Call) -> Reply:
        if call.cache_mode == "no-store" or uncacheable(call.request, self.only_deterministic):
            return await self._bypass(call)
        try:
            key = self._key(call)
        except (TypeError, orjson.JSONEncodeError) as error:  # a value JSON cannot spell
            fields = {"request_id": call.record.request_id, "reason": repr(error)}
            log.warning("response cache: no key for this request", extra={"fields": fields})
            return await self._bypass(call)
        if call.cache_mode == "refresh":
            call.record.cache = BYPASS
            return await self._fetch(call, key, BYPASS)
        for _ in range(_FLIGHT_ROUNDS):
            entry = await self.store.get(key)
            if entry is not None:
                return await self._hit(call, key, entry)
            flight = self._flights.get(key)
            if flight is None:
                break
            entry = await self._wait(key, flight, call)
            if entry is not None:
                return await self._hit(call, key, entry)
        call.record.cache = MISS
        return await self._fetch(call, key, MISS)

    async def _bypass(self, call: Call) -> Reply:
        call.record.cache = BYPASS
        reply = await self.inner.run(call)
        reply.headers.append(_HEADER[BYPASS])
        return reply

    def _key(self, call: Call) -> str:
        route = call.route
        known = self._fingerprints.get(id(route))
        if known is None or known[0] is not route:
            if len(self._fingerprints) > 4096:  # routes are few; this only bounds a leak
                self._fingerprints.clear()
            known = (route, route_fingerprint(route))
            self._fingerprints[id(route)] = known
        headers = upstream_headers(route, call.client_headers)
        return cache_key(call.request, known[1], headers, call.record.client_key_id)

    # -- hits ----------------------------------------------------------------------------

    async def _hit(self, call: Call, key: str, entry: Entry) -> Reply:
        """The stored answer with a fresh message id, in the mode the client asked for."""
        if call.stream and not entry.sse_body:
            # The first stream hit renders the replay, and the store keeps it from then on
            # (a miss renders only the JSON: most entries are never hit as a stream).
            entry = entry.with_sse()
            left = self.ttl - (time.time() - entry.meta["stored_at"])
            if left > 0 and entry.size <= self.max_entry_bytes:
                await self.store.put(key, entry, left)
                if self.metrics is not None:
                    self.metrics.CACHE_BYTES.set(self.store.size_bytes)
        record, meta = call.record, entry.meta
        record.cache = HIT
        record.upstream_model, record.backend = meta.get("upstream_model"), meta.get("backend")
        record.stop_reason, record.usage = meta.get("stop_reason"), meta.get("usage")
        record.mark("cache")
        message_id = new_message_id().encode()
        headers = [*entry.headers, _HEADER[HIT], (b"age", str(entry.age()).encode())]
        if call.stream:
            body = entry.sse_body.replace(ID_SLOT, message_id, 1)
            events = _replayed(entry.json_body.replace(ID_SLOT, message_id, 1))
            return Reply(headers, events=events, encoded=body)
        body = entry.json_body.replace(ID_SLOT, message_id, 1)
        return Reply(headers, message=orjson.loads(body), encoded=body)

    def _wait_limit(self, call: Call) -> float:
        timeout = self.wait_timeout
        if call.deadline is not None:
            timeout = min(timeout, call.deadline - time.monotonic())
        return max(timeout, 0.0)

    async def _wait(self, key: str, flight: Flight, call: Call) -> Entry | None:
        self._waiting(1)
        try:
            return await asyncio.wait_for(asyncio.shield(flight), self._wait_limit(call))
        except TimeoutError:
            # A leader this slow (or one whose stream nobody reads or closes) stops leading:
            # the next request for the key leads instead of waiting as long again.
            if self._flights.get(key) is flight:
                del self._flights[key]
            return None
        finally:
            self._waiting(-1)

    def _waiting(self, change: int) -> None:
        if self.metrics is not None:
            self.metrics.CACHE_WAITING.inc(change)

    # -- misses --------------------------------------------------------------------------

    async def _fetch(self, call: Call, key: str, result: str) -> Reply:
        """The inner relay's answer, stored when whole; identical requests wait on it (in
        this process on its flight, in other routers on its lease)."""
        flight: Flight | None = None
        if key not in self._flights:
            flight = asyncio.get_running_loop().create_future()
            self._flights[key] = flight
        lease: str | None = None
        try:
            if result == MISS:  # a refresh goes upstream whatever another router does
                claimed = await self._claim(key, call)
                if isinstance(claimed, Entry):
                    self._land(key, flight, claimed)
                    return await self._hit(call, key, claimed)
                lease = claimed
            reply = await self.inner.run(call)
        except BaseException:
            self._land(key, flight, None)
            await self._release(key, lease)
            raise
        served = list(reply.headers)
        reply.headers.append(_HEADER[result])
        if reply.events is None:
            entry = self._entry(reply.message, served, call)
            self._land(key, flight, entry)
            if entry is not None:
                await self._put(key, entry, lease)
            else:
                await self._release(key, lease)
            return reply
        reply.events = self._recorded(reply.events, key, flight, served, call, lease)
        return reply

    async def _claim(self, key: str, call: Call) -> Entry | str | None:
        """Before a miss goes upstream: the entry another router stored meanwhile, or the
        lease token under which this request leads, or None when it leads without one (the
        store is not shared, Redis is down, or other routers' leaders took too long)."""
        if self.wait_timeout <= 0:
            return None
        token = secrets.token_hex(8)
        end = time.monotonic() + self._wait_limit(call)
        holders: set[bytes] = set()
        pause = _POLL_FIRST
        try:
            while True:
                found = await self.store.claim(key, token, self.wait_timeout)
                if found is None or isinstance(found, Entry):
                    return found
                if found == token.encode():
                    return token
                if not holders:
                    self._waiting(1)
                holders.add(found)
                left = end - time.monotonic()
                # Leaders that keep failing: go on alone, as waiters in one process do.
                if left <= 0 or len(holders) > _FLIGHT_ROUNDS:
                    return None
                await asyncio.sleep(min(pause, left))
                pause = min(pause * 2, _POLL_MAX)
        finally:
            if holders:
                self._waiting(-1)

    async def _release(self, key: str, lease: str | None) -> None:
        if lease is not None:
            await self.store.release(key, lease)

    async def _recorded(
        self,
        events: Events,
        key: str,
        flight: Flight | None,
        served: list[Header],
        call: Call,
        lease: str | None,
    ) -> Events:
        """`events`, passed on unchanged while they are accumulated into a Message."""
        accumulator = MessageAccumulator()
        entry: Entry | None = None
        try:
            async for batch in events:
                accumulator.feed(batch)
                yield batch
            # Only reached when the consumer asked for more after the last batch: it read
            # the whole stream (a client that went away closed this generator instead).
            entry = self._entry(accumulator.message, served, call)
            self._land(key, flight, entry)
            if entry is not None:
                await self._put(key, entry, lease)
        finally:
            try:
                if entry is None:
                    self._land(key, flight, None)
                    await self._release(key, lease)
            finally:
                await events.aclose()

    def _entry(self, message: Any, served: list[Header], call: Call) -> Entry | None:
        if not isinstance(message, dict) or call.record.error_type:
            return None
        record = {"upstream_model": call.record.upstream_model, "backend": call.record.backend}
        try:
            entry = make_entry(message, served, record)
        except (KeyError, TypeError, ValueError, UnicodeError, AttributeError) as error:
            # An answer of a shape the replay does not know: serve it, never store it.
            fields = {"request_id": call.record.request_id, "reason": repr(error)}
            log.warning("response cache: answer not stored", extra={"fields": fields})
            return None
        return entry if entry.size <= self.max_entry_bytes else None

    def _land(self, key: str, flight: Flight | None, entry: Entry | None) -> None:
        if flight is None:
            return
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.done():
            flight.set_result(entry)

    async def _put(self, key: str, entry: Entry, lease: str | None = None) -> None:
        await self.store.put(key, entry, self.ttl, lease)
        if self.metrics is not None:
            self.metrics.CACHE_STORED_BYTES.inc(entry.size)
            self.metrics.CACHE_BYTES.set(self.store.size_bytes)


async def _replayed(json_body: bytes) -> Events:
    """The events of a hit, for consumers that read events rather than the encoded body."""
    yield replay_events(orjson.loads(json_body))
