"""RedisKV against a real redis-server: values, TTLs, prefixes, scripts, and an outage
(server stopped, paused, restarted) that callers see only as KVUnavailable."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import urllib.request
from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from anthropic_router.rediskv import KVUnavailable, RedisKV
from support.router import RouterProcess, free_port
from support.services import RedisServer

pytestmark = pytest.mark.anyio

INCR_SCRIPT = """
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return n
"""


def _kv(server: RedisServer, errors: list[str] | None = None, **options: float) -> RedisKV:
    on_error = errors.append if errors is not None else None
    return RedisKV(server.url, prefix="test:", on_error=on_error, **options)  # type: ignore[arg-type]


@pytest.fixture
async def kv(redis_server: RedisServer, anyio_backend: str) -> AsyncIterator[RedisKV]:
    store = _kv(redis_server)
    yield store
    await store.close()


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client, to look at what RedisKV wrote."""
    with redis.Redis.from_url(redis_server.url) as client:
        yield client


def _warnings(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(1 for r in caplog.records if r.levelno == logging.WARNING and text in r.message)


async def test_set_get_delete_round_trip_bytes(kv: RedisKV) -> None:
    value = bytes(range(256)) * 100
    assert await kv.get("missing") is None
    await kv.set("blob", value, ttl_seconds=60)
    assert await kv.get("blob") == value
    await kv.delete("blob")
    assert await kv.get("blob") is None
    await kv.delete("blob")  # deleting a missing key is fine


async def test_keys_are_prefixed_and_ttl_set_by_redis(kv: RedisKV, raw: redis.Redis) -> None:
    await kv.set("k", b"v", ttl_seconds=30)
    assert raw.get("test:k") == b"v"
    assert raw.get("k") is None
    assert 0 < raw.pttl("test:k") <= 30_000


async def test_entries_expire(kv: RedisKV) -> None:
    await kv.set("short", b"v", ttl_seconds=0.05)
    for _ in range(100):
        if await kv.get("short") is None:
            break
        await asyncio.sleep(0.02)
    assert await kv.get("short") is None


async def test_ttl_must_be_positive(kv: RedisKV) -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        await kv.set("k", b"v", ttl_seconds=0)


async def test_eval_prefixes_keys_and_survives_script_flush(kv: RedisKV, raw: redis.Redis) -> None:
    assert await kv.eval(INCR_SCRIPT, ["counter"], [2, 60_000]) == 2
    sha = hashlib.sha1(INCR_SCRIPT.encode()).hexdigest()
    assert raw.script_exists(sha) == [True]  # loaded once, then run by SHA
    raw.script_flush()  # what a Redis restart does to the script cache
    assert await kv.eval(INCR_SCRIPT, ["counter"], [3, 60_000]) == 5
    assert raw.get("test:counter") == b"5"


async def test_error_reply_is_unavailable_without_backoff(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture, anyio_backend: str
) -> None:
    errors: list[str] = []
    kv = _kv(redis_server, errors)
    try:
        for _ in range(3):
            with pytest.raises(KVUnavailable, match="refused"):
                await kv.eval("return redis.call('NOSUCHCOMMAND')", [], [])
        assert errors == ["response"] * 3
        assert _warnings(caplog, "answered with an error") == 1
        # Redis itself is fine: the next call goes through at once.
        assert kv.available
        await kv.set("k", b"v", ttl_seconds=10)
        assert await kv.get("k") == b"v"
    finally:
        await kv.close()


async def test_outage_warns_once_and_skips_calls_while_down(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture, anyio_backend: str
) -> None:
    errors: list[str] = []
    kv = _kv(redis_server, errors, retry_interval=600)
    try:
        await kv.set("k", b"v", ttl_seconds=10)
        redis_server.stop()
        with pytest.raises(KVUnavailable, match="unavailable"):
            await kv.get("k")
        assert not kv.available
        for _ in range(5):
            with pytest.raises(KVUnavailable):
                await kv.get("k")
            with pytest.raises(KVUnavailable):
                await kv.eval(INCR_SCRIPT, ["c"], [1, 1000])
        # One real attempt; every later call refused without touching the network.
        assert errors == ["connection"] + ["skipped"] * 10
        assert _warnings(caplog, "unavailable") == 1
        assert redis_server.url.removesuffix("/0") in caplog.text
    finally:
        await kv.close()


async def test_only_one_call_probes_a_down_redis(
    redis_server: RedisServer, anyio_backend: str
) -> None:
    errors: list[str] = []
    kv = _kv(redis_server, errors, retry_interval=0)
    try:
        redis_server.stop()
        with pytest.raises(KVUnavailable):
            await kv.get("k")
        errors.clear()
        results = await asyncio.gather(*(kv.get("k") for _ in range(10)), return_exceptions=True)
        assert all(isinstance(r, KVUnavailable) for r in results)
        assert sorted(errors) == ["connection"] + ["skipped"] * 9
    finally:
        await kv.close()


async def test_recovers_by_itself_after_restart(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture, anyio_backend: str
) -> None:
    caplog.set_level(logging.INFO, "anthropic_router.redis")
    errors: list[str] = []
    kv = _kv(redis_server, errors, retry_interval=0.05)
    try:
        await kv.set("before", b"1", ttl_seconds=60)
        redis_server.stop()
        for _ in range(20):  # several retry intervals of outage: still one warning
            with pytest.raises(KVUnavailable):
                await kv.get("before")
            await asyncio.sleep(0.02)
        assert errors.count("connection") >= 2  # it did retry
        redis_server.start()  # same port, empty
        for _ in range(200):
            try:
                await kv.set("after", b"2", ttl_seconds=60)
                break
            except KVUnavailable:
                await asyncio.sleep(0.02)
        assert kv.available
        assert await kv.get("after") == b"2"
        assert await kv.get("before") is None  # the restarted server kept nothing
        assert _warnings(caplog, "unavailable") == 1
        back = [r for r in caplog.records if "available again" in r.message]
        assert len(back) == 1 and back[0].levelno == logging.INFO
    finally:
        await kv.close()


async def test_slow_redis_times_out_as_an_outage(
    redis_server: RedisServer, raw: redis.Redis, anyio_backend: str
) -> None:
    errors: list[str] = []
    kv = _kv(redis_server, errors, socket_timeout=0.2, retry_interval=0)
    try:
        await kv.set("k", b"v", ttl_seconds=10)
        raw.execute_command("CLIENT", "PAUSE", "3000", "ALL")  # every client's command waits
        with pytest.raises(KVUnavailable):
            await kv.get("k")
        assert errors == ["timeout"]
        raw.execute_command("CLIENT", "UNPAUSE")
        assert await kv.get("k") == b"v"
        assert kv.available
    finally:
        raw.execute_command("CLIENT", "UNPAUSE")
        await kv.close()


async def test_never_reached_redis_is_unavailable(anyio_backend: str) -> None:
    errors: list[str] = []
    kv = RedisKV(f"redis://127.0.0.1:{free_port()}/0", on_error=errors.append)
    try:
        with pytest.raises(KVUnavailable):
            await kv.ping()
        assert errors == ["connection"]
    finally:
        await kv.close()


def _ready(router: RouterProcess) -> str:
    with urllib.request.urlopen(f"{router.url}/ready", timeout=5) as response:
        return str(json.loads(response.read())["status"])


@pytest.mark.integration
def test_router_with_redis_is_ready(redis_server: RedisServer) -> None:
    with RouterProcess(None, {"REDIS_URL": redis_server.url}) as router:
        assert _ready(router) == "ok"
    assert "Traceback" not in router.logs()
    assert "unavailable" not in router.logs()


@pytest.mark.integration
def test_router_starts_when_redis_is_down() -> None:
    url = f"redis://:not-a-real-password@127.0.0.1:{free_port()}/0"
    with RouterProcess(None, {"REDIS_URL": url}) as router:
        assert _ready(router) == "ok"
        logs = router.wait_for_log("unavailable")
    assert logs.count("unavailable") == 1
    assert "not-a-real-password" not in logs
    assert "Traceback" not in logs


async def test_a_failing_error_callback_does_not_escape(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture, anyio_backend: str
) -> None:
    def broken(kind: str) -> None:
        raise RuntimeError(f"metrics broke on {kind}")

    kv = RedisKV(redis_server.url, on_error=broken)
    try:
        redis_server.stop()
        with pytest.raises(KVUnavailable):
            await kv.get("k")
        assert "redis error callback failed" in caplog.text
    finally:
        await kv.close()
