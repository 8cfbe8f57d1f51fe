"""Redis behind one small module: bytes in and out under a key prefix, Lua scripts by SHA,
and graceful degradation built in, so callers (the response cache, shared rate limits) only
handle one exception: `KVUnavailable`, upon which they carry on without Redis.

The official `redis` package's asyncio client, on a blocking pool of connections with short
socket and connect timeouts and no client-side retries: an answer from Redis takes well under
a millisecond, so one that takes longer than the timeout counts as an outage. During an
outage the warning is logged once; calls then fail at once, without touching the network,
for `retry_interval` seconds; after that one call (never a crowd) tries Redis again, and the
first success logs that Redis is back. Nothing needs restarting.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from anthropic_router.store.base import redact_url

if TYPE_CHECKING:
    from anthropic_router.config import Settings

log = logging.getLogger("anthropic_router.redis")
T = TypeVar("T")

# Errors after which Redis is treated as down: the network, a timeout, a server still loading.
_OUTAGE = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    OSError,
    asyncio.TimeoutError,
)


class KVUnavailable(Exception):
    """Redis did not answer (down, slow, refusing, or skipped while it recovers): go on
    without it. The Redis error, if there was one, is the `__cause__`."""


ErrorCallback = Callable[[str], None]
"""Called once per failed call with its kind: "connection", "timeout", "response" (Redis
answered with an error) or "skipped" (not tried: Redis is down). For metrics."""


class RedisKV:
    """A prefixed key/value view of one Redis database. Every method raises KVUnavailable
    instead of a Redis error; keys (also a script's `keys`) get `prefix` in front, a
    script's `args` are sent as they are. Replies are Redis's own: strings as bytes,
    integers as int, arrays as lists."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "anthropic-router:",
        socket_timeout: float = 0.25,
        connect_timeout: float = 0.25,
        max_connections: int = 64,
        retry_interval: float = 2.0,
        on_error: ErrorCallback | None = None,
    ) -> None:
        self.url = redact_url(url)
        self.prefix = prefix
        self.retry_interval = retry_interval
        self._on_error = on_error
        # Pool wait, connect and reply: an upper bound for one call, whatever hangs.
        self._deadline = connect_timeout + 2 * socket_timeout
        self._pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=socket_timeout,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._redis = Redis(connection_pool=self._pool)
        self._scripts: dict[str, str] = {}
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._probing = False
        self._logged_errors: set[str] = set()

    @property
    def available(self) -> bool:
        """False from a failed call until the next successful one."""
        return self._down_since is None

    def key(self, name: str) -> str:
        return self.prefix + name

    async def get(self, key: str) -> bytes | None:
        value = await self._call(lambda: self._redis.get(self.key(key)))
        return value if value is None or isinstance(value, bytes) else str(value).encode()

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        """Store `value`, expiring after `ttl_seconds` (millisecond precision, > 0)."""
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        milliseconds = max(1, round(ttl_seconds * 1000))
        await self._call(lambda: self._redis.set(self.key(key), value, px=milliseconds))

    async def delete(self, key: str) -> None:
        await self._call(lambda: self._redis.delete(self.key(key)))

    async def eval(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """Run a Lua script by its SHA (EVALSHA), loading it when Redis does not have it
        (first use, or after a restart emptied its script cache)."""
        sha = self._scripts.get(script)
        if sha is None:
            sha = self._scripts[script] = hashlib.sha1(script.encode()).hexdigest()
        names = [self.key(k) for k in keys]

        async def run() -> Any:
            try:
                return await self._redis.evalsha(sha, len(names), *names, *args)
            except redis_errors.NoScriptError:
                await self._redis.script_load(script)
                return await self._redis.evalsha(sha, len(names), *names, *args)

        return await self._call(run)

    async def ping(self) -> bool:
        result: bool = await self._call(lambda: self._redis.ping())
        return result

    async def close(self) -> None:
        await self._redis.aclose()
        await self._pool.disconnect()

    async def _call(self, command: Callable[[], Awaitable[T]]) -> T:
        probe = self._admit()
        try:
            async with asyncio.timeout(self._deadline):
                result = await command()
        except _OUTAGE as exc:
            await self._went_down(exc)
            raise KVUnavailable(f"redis at {self.url} unavailable: {_describe(exc)}") from exc
        except redis_errors.RedisError as exc:
            self._refused(exc)
            raise KVUnavailable(f"redis at {self.url} refused: {_describe(exc)}") from exc
        finally:
            if probe:
                self._probing = False
        if self._down_since is not None:
            self._came_back()
        return result

    def _admit(self) -> bool:
        """Let a call through, or refuse it while Redis is down. True for the one call that
        probes Redis after `retry_interval`: the others are refused until it answers."""
        if self._down_since is None:
            return False
        if self._probing or time.monotonic() < self._retry_at:
            self._count("skipped")
            raise KVUnavailable(f"redis at {self.url} unavailable; retrying soon")
        self._probing = True
        return True

    async def _went_down(self, exc: BaseException) -> None:
        self._count("timeout" if _is_timeout(exc) else "connection")
        now = time.monotonic()
        self._retry_at = now + self.retry_interval
        if self._down_since is None:
            self._down_since = now
            log.warning(
                "redis at %s unavailable (%s); going on without it, retrying every %gs",
                self.url,
                _describe(exc),
                self.retry_interval,
            )
            # Connections opened before the outage are dead: do not let each fail in turn.
            await self._pool.disconnect(inuse_connections=False)

    def _came_back(self) -> None:
        assert self._down_since is not None
        log.info(
            "redis at %s available again after %.1fs",
            self.url,
            time.monotonic() - self._down_since,
        )
        self._down_since = None

    def _refused(self, exc: redis_errors.RedisError) -> None:
        # An error reply (a script bug, OOM, a read-only replica): Redis is up, so no
        # back-off, but the same message is logged once, not per call.
        self._count("response")
        message = _describe(exc)
        if message not in self._logged_errors and len(self._logged_errors) < 100:
            self._logged_errors.add(message)
            log.warning("redis at %s answered with an error: %s", self.url, message)

    def _count(self, kind: str) -> None:
        if self._on_error is not None:
            try:
                self._on_error(kind)
            except Exception:  # a broken metrics hook must not turn into a request error
                log.exception("redis error callback failed")


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, redis_errors.TimeoutError | asyncio.TimeoutError | TimeoutError)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def open_redis(settings: Settings, on_error: ErrorCallback | None = None) -> RedisKV:
    """The RedisKV of REDIS_URL and the REDIS_* settings (REDIS_URL must be set)."""
    assert settings.redis_url is not None
    return RedisKV(
        settings.redis_url,
        prefix=settings.redis_key_prefix,
        socket_timeout=settings.redis_socket_timeout,
        connect_timeout=settings.redis_connect_timeout,
        max_connections=settings.redis_max_connections,
        retry_interval=settings.redis_retry_interval,
        on_error=on_error,
    )


__all__ = ["ErrorCallback", "KVUnavailable", "RedisKV", "open_redis"]
